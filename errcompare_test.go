package traceless_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// sentinelPackages are the packages whose error variables (Err…) are
// sentinels that callers must match with errors.Is: a store error may come
// wrapped (errors.Join, %w), and == would then miss it.
var sentinelPackages = map[string]bool{"store": true, "gorm": true}

// sentinelComparisons returns "file:line: expr" for every == or !=
// against a sentinel error in src: pkg.ErrX for a package of
// sentinelPackages, or a bare ErrX inside package store.
func sentinelComparisons(fset *token.FileSet, file *ast.File) []string {
	isSentinel := func(e ast.Expr) bool {
		switch e := e.(type) {
		case *ast.SelectorExpr:
			x, ok := e.X.(*ast.Ident)
			return ok && sentinelPackages[x.Name] && strings.HasPrefix(e.Sel.Name, "Err")
		case *ast.Ident:
			return file.Name.Name == "store" && strings.HasPrefix(e.Name, "Err")
		}
		return false
	}
	var out []string
	ast.Inspect(file, func(n ast.Node) bool {
		// An Is method compares its target with ==: that is how
		// errors.Is asks it.
		if fn, ok := n.(*ast.FuncDecl); ok && fn.Recv != nil && fn.Name.Name == "Is" {
			return false
		}
		b, ok := n.(*ast.BinaryExpr)
		if ok && (b.Op == token.EQL || b.Op == token.NEQ) && (isSentinel(b.X) || isSentinel(b.Y)) {
			out = append(out, fset.Position(b.Pos()).String())
		}
		return true
	})
	return out
}

// TestSentinelErrorsMatchedWithErrorsIs: the module's code (tests
// included) matches store and gorm errors with errors.Is, never ==.
func TestSentinelErrorsMatchedWithErrorsIs(t *testing.T) {
	fset := token.NewFileSet()
	n := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != "." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		n++
		for _, at := range sentinelComparisons(fset, f) {
			t.Errorf("%s: compares a sentinel error with == or !=; use errors.Is", at)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 100 {
		t.Fatalf("only %d Go files parsed; the walk is broken", n)
	}
}

// TestSentinelComparisonsCatches shows the check seeing each form.
func TestSentinelComparisonsCatches(t *testing.T) {
	const src = `package store

func f(err error) bool {
	if err == store.ErrNotFound || gorm.ErrRecordNotFound != err {
		return true
	}
	return err == ErrConflict || errors.Is(err, ErrLegalHold) || err == io.EOF
}

func (e *HoldError) Is(target error) bool { return target == ErrLegalHold }
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "x.go", src, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	got := sentinelComparisons(fset, f)
	want := []string{"x.go:4:5", "x.go:4:33", "x.go:7:9"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("found %v, want %v", got, want)
	}
}
