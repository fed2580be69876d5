package controlplane

import (
	"html"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestAPIDocs: /api/docs is the reference of every operation and schema of
// the served OpenAPI document, rendered on the server: the page's CSP is
// the dashboard's strict one, it loads no script but the dashboard's own
// and nothing from another origin, and the dashboard links to it.
func TestAPIDocs(t *testing.T) {
	h := newHarness(t)
	b := newBrowser(t, h)
	p := b.get("/api/docs").mustStatus(t, http.StatusOK)
	if ct := p.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type %q", ct)
	}
	csp := p.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'", "object-src 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") || strings.Contains(csp, "http") {
		t.Errorf("CSP %q is not strict", csp)
	}
	scripts := regexp.MustCompile(`<script[^>]*>`).FindAllString(p.Body, -1)
	if len(scripts) != 1 || scripts[0] != `<script src="/static/app.js" defer>` {
		t.Errorf("scripts %v; want only the dashboard's /static/app.js", scripts)
	}
	if m := regexp.MustCompile(`(?:src|href)="(?:https?:)?//`).FindString(p.Body); m != "" {
		t.Errorf("the page loads or links something elsewhere: %s", m)
	}
	if strings.Contains(p.Body, " style=") || strings.Contains(p.Body, "<style") {
		t.Error("inline style in the page; the CSP forbids it")
	}
	doc, err := buildOpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			n++
			if !strings.Contains(p.Body, `id="op-`+op.OperationID+`"`) {
				t.Errorf("%s %s (%s) is not in the reference", method, path, op.OperationID)
			}
			if !strings.Contains(p.Body, "<code>"+html.EscapeString(path)+"</code>") {
				t.Errorf("path %s is not in the reference", path)
			}
		}
	}
	for name := range doc.Components.Schemas {
		if !strings.Contains(p.Body, `id="schema-`+name+`"`) {
			t.Errorf("schema %s is not in the reference", name)
		}
	}
	if n < 50 {
		t.Errorf("only %d operations in the document", n)
	}
	// The request body of registration links its schema, and an error
	// response names the error body.
	p.mustContain(t, `href="#schema-`, "Request body:", "<strong>JSON.</strong>")
	// Linked from the dashboard.
	b.get("/login").mustStatus(t, http.StatusOK).mustContain(t, `<a href="/api/docs"`)
}

// TestAPIDocsMarkdown: descriptions' Markdown becomes markup, and nothing
// else does: text that looks like HTML is escaped.
func TestAPIDocsMarkdown(t *testing.T) {
	got := string(markdown("**JSON.** Use `a<b>` and [the docs](https://example.com/x).\n\n## Changelog\n\n- one\n  more\n- <two>\n\n[bad](javascript:alert(1))"))
	want := `<p><strong>JSON.</strong> Use <code>a&lt;b&gt;</code> and <a href="https://example.com/x">the docs</a>.</p>` +
		`<h4>Changelog</h4><ul><li>one more</li><li>&lt;two&gt;</li></ul><p>[bad](javascript:alert(1))</p>`
	if got != want {
		t.Errorf("markdown:\n got %s\nwant %s", got, want)
	}
}
