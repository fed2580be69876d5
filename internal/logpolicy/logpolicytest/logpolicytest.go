// Package logpolicytest reads a package's declared log attribute keys from
// its source, for the tests that check a program's allowlist
// (internal/logpolicy) against them.
//
// Only tests import it.
package logpolicytest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// parse reads the non-test Go files of dir.
func parse(tb testing.TB, dir string) (*token.FileSet, []*ast.File) {
	tb.Helper()
	fset := token.NewFileSet()
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		tb.Fatal(err)
	}
	var files []*ast.File
	for _, n := range names {
		if strings.HasSuffix(n, "_test.go") {
			continue
		}
		src, err := os.ReadFile(n)
		if err != nil {
			tb.Fatal(err)
		}
		f, err := parser.ParseFile(fset, n, src, 0)
		if err != nil {
			tb.Fatal(err)
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		tb.Fatalf("no Go files in %s", dir)
	}
	return fset, files
}

// DeclaredKeys returns the string constants of the package in dir whose
// names are prefix followed by an upper-case letter (logRoute for prefix
// "log"), by name.
func DeclaredKeys(tb testing.TB, dir, prefix string) map[string]string {
	tb.Helper()
	_, files := parse(tb, dir)
	out := map[string]string{}
	for _, f := range files {
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, spec := range g.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					rest, ok := strings.CutPrefix(name.Name, prefix)
					if !ok || rest == "" || !unicode.IsUpper(rune(rest[0])) || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						tb.Errorf("%s is not a string literal", name.Name)
						continue
					}
					out[name.Name], _ = strconv.Unquote(lit.Value)
				}
			}
		}
	}
	return out
}

// Values are the keys of a DeclaredKeys map, sorted.
func Values(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// attrFuncs are the slog functions that make an attribute from a key.
var attrFuncs = map[string]bool{
	"String": true, "Int": true, "Int64": true, "Uint64": true, "Float64": true, "Bool": true,
	"Time": true, "Duration": true, "Any": true, "Group": true,
}

// logMethods are the *slog.Logger methods that take alternating keys and
// values (after the message, or from the first argument for With).
var logMethods = map[string]int{"Debug": 1, "Info": 1, "Warn": 1, "Error": 1, "With": 0}

// UndeclaredUses returns the places in the package in dir where a log
// attribute's key is not one of the declared constants: slog.String("ip",
// …), or logger.Info("msg", "ip", …). A logger is a receiver whose text
// contains "log" (s.log, logger). Each place is "file:line: what".
func UndeclaredUses(tb testing.TB, dir string, declared map[string]string) []string {
	tb.Helper()
	fset, files := parse(tb, dir)
	var out []string
	isAttr := func(e ast.Expr) bool {
		call, ok := e.(*ast.CallExpr)
		if !ok {
			return false
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return false
		}
		pkg, ok := sel.X.(*ast.Ident)
		return ok && pkg.Name == "slog" && attrFuncs[sel.Sel.Name]
	}
	checkKey := func(e ast.Expr, what string) {
		if id, ok := e.(*ast.Ident); ok {
			if _, ok := declared[id.Name]; ok {
				return
			}
		}
		out = append(out, fset.Position(e.Pos()).String()+": "+what+" key is not a declared log key constant")
	}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if isAttr(call) && len(call.Args) > 0 {
				checkKey(call.Args[0], "slog."+sel.Sel.Name)
				return true
			}
			first, ok := logMethods[sel.Sel.Name]
			if !ok || !strings.Contains(strings.ToLower(exprText(sel.X)), "log") {
				return true
			}
			for i := first; i < len(call.Args); i++ {
				if isAttr(call.Args[i]) {
					continue
				}
				checkKey(call.Args[i], sel.Sel.Name)
				i++ // its value
			}
			return true
		})
	}
	return out
}

// exprText is a selector chain as text ("a.s.log").
func exprText(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return exprText(e.X) + "." + e.Sel.Name
	}
	return ""
}
