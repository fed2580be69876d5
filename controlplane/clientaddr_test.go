package controlplane

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// clientAddrReaders are the only functions of the control plane's non-test
// code that may read a client's address: the rate limiter's keying, which
// hashes it with a salt that is never written down. Anything else that
// reads RealIP, RemoteAddr or a forwarding header could log or store it.
var clientAddrReaders = map[string]string{
	"clientip.go:ipExtractor": "chooses which address keys the rate limiters",
	"clientip.go:clientKey":   "hands the address to the limiter, which hashes it with an in-memory salt",
}

// clientAddrIdents are identifiers that read a client address.
var clientAddrIdents = map[string]bool{
	"RealIP": true, "RemoteAddr": true,
	"ExtractIPDirect": true, "ExtractIPFromXFFHeader": true, "ExtractIPFromRealIPHeader": true,
	"HeaderXForwardedFor": true, "HeaderXRealIP": true, "HeaderForwarded": true,
	"HeaderXForwardedProto": false, // the scheme, not an address
}

// clientAddrHeader matches header names that carry a client address.
var clientAddrHeader = regexp.MustCompile(`(?i)^(x-forwarded-for|x-real-ip|forwarded|true-client-ip|cf-connecting-ip|x-client-ip|x-cluster-client-ip|fastly-client-ip)$`)

// clientAddrUses returns "file:line: func: what" for every read of a client
// address in f.
func clientAddrUses(fset *token.FileSet, name string, f *ast.File) []string {
	var uses []string
	for _, decl := range f.Decls {
		fn := "(package level)"
		if fd, ok := decl.(*ast.FuncDecl); ok {
			fn = fd.Name.Name
		}
		ast.Inspect(decl, func(n ast.Node) bool {
			what := ""
			switch x := n.(type) {
			case *ast.SelectorExpr:
				if clientAddrIdents[x.Sel.Name] {
					what = x.Sel.Name
				}
			case *ast.BasicLit:
				if x.Kind == token.STRING {
					if s, err := strconv.Unquote(x.Value); err == nil && clientAddrHeader.MatchString(strings.TrimSpace(s)) {
						what = strconv.Quote(s)
					}
				}
			}
			if what != "" {
				uses = append(uses, name+":"+fn+"\t"+fset.Position(n.Pos()).String()+": "+what)
			}
			return true
		})
	}
	return uses
}

// TestClientAddressSource enforces that only the rate-limit keying reads a
// client's address, anywhere in the control plane and its server binary.
func TestClientAddressSource(t *testing.T) {
	fset := token.NewFileSet()
	found := map[string]int{}
	for _, root := range []string{".", "../cmd/traceless-server"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				return err
			}
			name := filepath.ToSlash(path)
			if filepath.Dir(path) == "." {
				name = filepath.Base(path)
			}
			for _, u := range clientAddrUses(fset, name, f) {
				where, detail, _ := strings.Cut(u, "\t")
				if _, ok := clientAddrReaders[where]; !ok {
					t.Errorf("%s reads a client address; only the rate-limit keying may (%s)", detail, where)
					continue
				}
				found[where]++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var missing []string
	for where := range clientAddrReaders {
		if found[where] == 0 {
			missing = append(missing, where)
		}
	}
	sort.Strings(missing)
	for _, where := range missing {
		t.Errorf("%s no longer reads a client address: is the check still looking at the right code? Update clientAddrReaders", where)
	}
}

// TestClientAddressSourceCatches checks the checker on code that breaks
// the rule in each way it knows.
func TestClientAddressSourceCatches(t *testing.T) {
	src := `package controlplane
func leak(c echo.Context, r *http.Request) []string {
	return []string{c.RealIP(), r.RemoteAddr, r.Header.Get("X-Forwarded-For"),
		c.Request().Header.Get(echo.HeaderXRealIP), r.Header.Get("forwarded"), r.Header.Get("Accept")}
}
var x = echo.ExtractIPDirect()`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "leak.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	uses := clientAddrUses(fset, "leak.go", f)
	if len(uses) != 6 {
		t.Errorf("found %d reads, want 6:\n%s", len(uses), strings.Join(uses, "\n"))
	}
	for _, u := range uses {
		if where, _, _ := strings.Cut(u, "\t"); where != "leak.go:leak" && where != "leak.go:(package level)" {
			t.Errorf("use attributed to %q", where)
		}
	}
}
