package agent

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/traceless-vpn/traceless/internal/logpolicy"
)

// TestLogKeys: logKeys, the agent's log allowlist, is exactly the key
// constants declared in log.go.
func TestLogKeys(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "log.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var declared []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					t.Fatalf("log.go: %s is not a string literal", name.Name)
				}
				v, _ := strconv.Unquote(lit.Value)
				declared = append(declared, v)
			}
		}
	}
	if len(declared) == 0 {
		t.Fatal("no key constants found in log.go")
	}
	slices.Sort(declared)
	got := slices.Sorted(slices.Values(logKeys))
	if !slices.Equal(declared, got) {
		t.Errorf("logKeys = %v\nlog.go declares %v", got, declared)
	}
}

// TestLogPolicy: the agent's logger keeps declared keys, drops any other
// in production and panics on it in tests.
func TestLogPolicy(t *testing.T) {
	var buf bytes.Buffer
	h := newHarness(t, []string{"http://127.0.0.1:1"}, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&buf, nil))
	})
	a, err := New(h.opts)
	if err != nil {
		t.Fatal(err)
	}
	a.log.Info("declared", slog.Int(keyPeers, 3))
	if !strings.Contains(buf.String(), "peers=3") {
		t.Errorf("a declared key is missing: %s", buf.String())
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("an undeclared key did not panic in a test binary")
			}
		}()
		a.log.Info("undeclared", slog.String("endpoint", "198.51.100.7:51820"))
	}()

	// In production (not strict) the same allowlist drops the attribute.
	buf.Reset()
	prod := slog.New(logpolicy.New(slog.NewTextHandler(&buf, nil), false, logKeys...))
	prod.Info("undeclared", slog.String("endpoint", "198.51.100.7:51820"), slog.Int(keyPeers, 3))
	out := buf.String()
	if strings.Contains(out, "198.51.100.7") || strings.Contains(out, "endpoint") || !strings.Contains(out, "peers=3") ||
		!strings.Contains(out, logpolicy.DroppedKey+"=1") {
		t.Errorf("production log line = %q; want the endpoint dropped and counted, peers kept", out)
	}
}
