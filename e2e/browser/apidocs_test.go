package browser

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserAPIDocs: the API reference renders in Chromium under the
// server's strict CSP with no console error or CSP violation; it is
// reached from the dashboard's footer, lists the operations, and its
// table of contents leads to an operation's request and responses.
func TestBrowserAPIDocs(t *testing.T) {
	w := newWorld(t)
	tb := w.newTab(t, "api-docs")
	tb.open("/login")
	tb.navigate("open the API reference from the footer", 200, "/api/docs", chromedp.Click(chromedp.CSS(`footer a[href="/api/docs"]`)))
	tb.mustSee("API reference", "Operations", "Schemas", "POST /api/v1/devices", "Register a device")
	if n := run(tb, "operations", chromedp.Evaluate[int](`document.querySelectorAll("article.api-op").length`)); n < 50 {
		t.Errorf("%d operations on the page", n)
	}
	if n := run(tb, "scripts", chromedp.Evaluate[int](`document.scripts.length`)); n != 1 {
		t.Errorf("%d scripts on the page, want the dashboard's one", n)
	}
	tb.do("follow the table of contents", chromedp.Click(chromedp.CSS(`nav.api-toc a[href="#op-registerDevice"]`)))
	target := run(tb, "target", chromedp.Evaluate[string](`location.hash`))
	if target != "#op-registerDevice" {
		t.Errorf("after the click the page is at %q", target)
	}
	text := run(tb, "the operation", chromedp.Text(chromedp.CSS(`#op-registerDevice`)))
	for _, want := range []string{"POST", "/api/v1/devices", "Request body:", "201", "401"} {
		if !strings.Contains(text, want) {
			t.Errorf("registerDevice's section lacks %q:\n%s", want, text)
		}
	}
	tb.screenshot("api-docs")
	tb.clean()
}
