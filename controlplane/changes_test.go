package controlplane

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// hubFeeders are the only functions that may hand changes to the hub: the
// store's commit hook, and the listener for other replicas' announcements.
// A handler that published by hand could publish a change twice, or (the
// bug this rules out) forget one.
var hubFeeders = map[string]bool{
	"changes.go:committed": true,
	"changes.go:listen":    true,
}

// hubFeeds returns "file:func" and the position of every call in f that
// hands the hub a change: hub.publish, hub.publishLost, or the commit hook
// called directly.
func hubFeeds(fset *token.FileSet, name string, f *ast.File) (feeders, where []string) {
	for _, decl := range f.Decls {
		fn := "(package level)"
		if fd, ok := decl.(*ast.FuncDecl); ok {
			fn = fd.Name.Name
		}
		ast.Inspect(decl, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			var sel string
			switch x := call.Fun.(type) {
			case *ast.SelectorExpr:
				sel = x.Sel.Name
			case *ast.Ident:
				sel = x.Name
			}
			switch sel {
			case "publish", "publishLost", "committed":
				feeders = append(feeders, name+":"+fn)
				where = append(where, fset.Position(call.Pos()).String()+": "+sel)
			}
			return true
		})
	}
	return feeders, where
}

// TestNoHandlerPublishes enforces that changes reach node sync only
// through the store's commit hook (and the replica listener): no handler
// publishes by hand. It also checks that New installs the hook.
func TestNoHandlerPublishes(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	installed := false
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		feeders, where := hubFeeds(fset, path, f)
		for i, fd := range feeders {
			if !hubFeeders[fd] {
				t.Errorf("%s: %s hands node sync a change by hand; the store's commit hook (Server.committed) publishes every committed write", where[i], fd)
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if call, ok := n.(*ast.CallExpr); ok {
				if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "OnCommit" && len(call.Args) == 1 {
					if arg, ok := call.Args[0].(*ast.SelectorExpr); ok && arg.Sel.Name == "committed" {
						installed = true
					}
				}
			}
			return true
		})
	}
	if !installed {
		t.Error("no non-test file installs Server.committed with Store.OnCommit: changes would never reach node sync")
	}
}

// TestNoHandlerPublishesCatches shows the check finds hand-written
// publication in a handler.
func TestNoHandlerPublishesCatches(t *testing.T) {
	src := `package controlplane
func (s *Server) handleSomething(c echo.Context) error {
	ch, err := s.store.DeleteThing(c.Request().Context())
	if err != nil {
		return err
	}
	s.hub.publish(ch)
	s.committed(ch)
	return nil
}
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "planted.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	feeders, _ := hubFeeds(fset, "planted.go", f)
	sort.Strings(feeders)
	want := []string{"planted.go:handleSomething", "planted.go:handleSomething"}
	if strings.Join(feeders, ",") != strings.Join(want, ",") {
		t.Errorf("hubFeeds found %v; want %v", feeders, want)
	}
	for _, fd := range feeders {
		if hubFeeders[fd] {
			t.Errorf("%s is allowed to feed the hub; want it refused", fd)
		}
	}
}
