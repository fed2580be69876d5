package traceless_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// module is this repository's module path.
const module = "github.com/traceless-vpn/traceless"

// pkg is one package as `go list -deps` reports it.
type pkg struct {
	standard bool
	imports  []string
}

// depGraph lists patterns and their dependencies (not their tests') with
// the go command. It returns the root packages the patterns name and every
// package reachable from them.
func depGraph(t *testing.T, patterns ...string) (roots []string, graph map[string]pkg) {
	t.Helper()
	out := goList(t, append([]string{"-f", "{{.ImportPath}}"}, patterns...)...)
	roots = strings.Fields(out)
	out = goList(t, append([]string{"-deps", "-f", "{{.ImportPath}}\t{{.Standard}}\t{{join .Imports \" \"}}"}, patterns...)...)
	graph = map[string]pkg{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			t.Fatalf("go list: unexpected line %q", line)
		}
		graph[f[0]] = pkg{standard: f[1] == "true", imports: strings.Fields(f[2])}
	}
	return roots, graph
}

func goList(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return string(out)
}

// importChain returns the shortest import chain from root to target, as
// "a -> b -> c", so a failure says where a dependency comes in.
func importChain(graph map[string]pkg, root, target string) string {
	prev := map[string]string{root: ""}
	queue := []string{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p == target {
			var chain []string
			for ; p != ""; p = prev[p] {
				chain = append([]string{p}, chain...)
			}
			return strings.Join(chain, " -> ")
		}
		for _, imp := range graph[p].imports {
			if _, seen := prev[imp]; !seen {
				prev[imp] = p
				queue = append(queue, imp)
			}
		}
	}
	return root + " -> … -> " + target
}

// reachable returns the packages root depends on, itself included, sorted.
func reachable(graph map[string]pkg, root string) []string {
	seen := map[string]bool{root: true}
	queue := []string{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, imp := range graph[p].imports {
			if !seen[imp] {
				seen[imp] = true
				queue = append(queue, imp)
			}
		}
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// existing keeps the patterns whose directory holds Go files (directly
// for "dir", anywhere below for "dir/..."), so the test covers packages as
// they are added without failing before they exist.
func existing(t *testing.T, patterns ...string) []string {
	t.Helper()
	var out []string
	for _, p := range patterns {
		dir, tree := strings.CutSuffix(p, "/...")
		if tree && hasGoFiles(dir) {
			out = append(out, p)
		} else if files, _ := filepath.Glob(filepath.Join(dir, "*.go")); !tree && len(files) > 0 {
			out = append(out, p)
		}
	}
	return out
}

func hasGoFiles(dir string) bool {
	found := false
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".go") {
			found = true
			return filepath.SkipAll
		}
		return nil
	})
	return found
}

// heavy says why dep may not be linked into what agents and SDK users
// build, or returns "" when it may.
func heavy(dep string) string {
	for _, prefix := range []string{"gorm.io/", "github.com/labstack/echo", "github.com/ncruces/go-sqlite3", "github.com/jackc/pgx"} {
		if strings.HasPrefix(dep, prefix) {
			return "server-side library"
		}
	}
	switch {
	case dep == module+"/store" || strings.HasPrefix(dep, module+"/store/"):
		return "the database layer"
	case dep == module+"/controlplane":
		return "the server"
	case strings.HasPrefix(dep, module+"/controlplane/") &&
		!strings.HasPrefix(dep, module+"/controlplane/api") && !strings.HasPrefix(dep, module+"/controlplane/client"):
		return "server-side package; only controlplane/api and controlplane/client are shared"
	}
	return ""
}

// retiredModules are modules nothing here may use any more, with the
// reason and what to use instead.
var retiredModules = map[string]string{
	"gopkg.in/yaml.v3": "archived upstream; go.yaml.in/yaml/v3 is its maintained continuation (same API)",
}

// retired says why dep, a package path, may not be used, or returns "".
func retired(dep string) string {
	for mod, why := range retiredModules {
		if dep == mod || strings.HasPrefix(dep, mod+"/") {
			return why
		}
	}
	return ""
}

func needGo(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("go command not on PATH (%v); TestDeps runs `go list -deps`", err)
	}
}

// TestDeps keeps dependencies pointing down (README, Layout): node agents, the
// CLI, the Go client and the wire types never pull in the server's
// database or HTTP framework, the wire types use only the standard
// library, the store imports nothing of ours, and nothing imports cmd/.
func TestDeps(t *testing.T) {
	needGo(t)

	t.Run("light", func(t *testing.T) {
		patterns := existing(t, "./controlplane/api", "./controlplane/client", "./agent/...",
			"./cmd/traceless-agent", "./cmd/traceless")
		roots, graph := depGraph(t, patterns...)
		if len(roots) == 0 {
			t.Fatal("no packages to check")
		}
		for _, root := range roots {
			for _, dep := range reachable(graph, root) {
				if why := heavy(dep); why != "" {
					t.Errorf("%s must not depend on %s (%s):\n\t%s", root, dep, why, importChain(graph, root, dep))
				}
			}
		}
	})

	t.Run("api is standard library only", func(t *testing.T) {
		roots, graph := depGraph(t, "./controlplane/api/...")
		for _, root := range roots {
			for _, dep := range reachable(graph, root) {
				if !graph[dep].standard && !strings.HasPrefix(dep, module+"/controlplane/api") {
					t.Errorf("%s must import only the standard library:\n\t%s", root, importChain(graph, root, dep))
				}
			}
		}
	})

	t.Run("store imports nothing of ours", func(t *testing.T) {
		roots, graph := depGraph(t, "./store/...")
		for _, root := range roots {
			for _, dep := range reachable(graph, root) {
				if strings.HasPrefix(dep, module+"/") && dep != module+"/store" && !strings.HasPrefix(dep, module+"/store/") {
					t.Errorf("%s must not depend on %s:\n\t%s", root, dep, importChain(graph, root, dep))
				}
			}
		}
	})

	t.Run("alerts see the server through their Deps only", func(t *testing.T) {
		roots, graph := depGraph(t, existing(t, "./controlplane/alerts/...")...)
		for _, root := range roots {
			for _, dep := range reachable(graph, root) {
				if dep == module+"/controlplane" || strings.HasPrefix(dep, "github.com/labstack/echo") {
					t.Errorf("%s must not depend on %s (the server and its HTTP framework reach it through alerts.Deps):\n\t%s",
						root, dep, importChain(graph, root, dep))
				}
			}
		}
	})

	t.Run("no retired module", func(t *testing.T) {
		// Tests included: they build here too.
		roots, graph := depGraph(t, "-test", "./...")
		for _, root := range roots {
			for _, dep := range reachable(graph, root) {
				if why := retired(dep); why != "" {
					t.Errorf("%s depends on %s (%s):\n\t%s", root, dep, why, importChain(graph, root, dep))
				}
			}
		}
	})

	t.Run("nothing imports cmd", func(t *testing.T) {
		// Test imports count too: tests reuse cmd/ only from inside it.
		out := goList(t, "-f", "{{.ImportPath}}\t{{join .Imports \" \"}} {{join .TestImports \" \"}} {{join .XTestImports \" \"}}", "./...")
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			p, imports, _ := strings.Cut(line, "\t")
			for _, imp := range strings.Fields(imports) {
				if strings.HasPrefix(imp, module+"/cmd/") && imp != p {
					t.Errorf("%s imports %s; cmd/ packages are mains, imported by nothing", p, imp)
				}
			}
		}
	})
}

// TestDepsCatches checks that the checker itself sees a forbidden import:
// controlplane (the server) does depend on echo, gorm and store.
func TestDepsCatches(t *testing.T) {
	needGo(t)
	roots, graph := depGraph(t, "./controlplane")
	if len(roots) != 1 {
		t.Fatalf("roots = %v, want one", roots)
	}
	deps := reachable(graph, roots[0])
	for _, want := range []string{"github.com/labstack/echo/v4", "gorm.io/gorm", module + "/store"} {
		i := sort.SearchStrings(deps, want)
		if i == len(deps) || deps[i] != want {
			t.Errorf("controlplane does not reach %s; the dependency walk is broken", want)
		}
	}
	chain := importChain(graph, roots[0], "gorm.io/gorm")
	if !strings.HasPrefix(chain, module+"/controlplane -> ") || !strings.HasSuffix(chain, " -> gorm.io/gorm") {
		t.Errorf("importChain = %q", chain)
	}
}

func TestRetired(t *testing.T) {
	for dep, want := range map[string]bool{
		"gopkg.in/yaml.v3":       true,
		"gopkg.in/yaml.v3/sub":   true,
		"go.yaml.in/yaml/v3":     false,
		"gopkg.in/yaml.v30":      false,
		"github.com/x/yaml.v3":   false,
		module + "/internal/cfg": false,
	} {
		if got := retired(dep) != ""; got != want {
			t.Errorf("retired(%q) = %q, want retired=%v", dep, retired(dep), want)
		}
	}
}

func TestHeavy(t *testing.T) {
	for _, tc := range []struct {
		dep  string
		want bool
	}{
		{"gorm.io/gorm", true},
		{"gorm.io/driver/sqlite", true},
		{"github.com/labstack/echo/v4", true},
		{"github.com/labstack/echo/v4/middleware", true},
		{"github.com/ncruces/go-sqlite3", true},
		{"github.com/ncruces/go-sqlite3/driver", true},
		{module + "/store/internal/gormsqlite", true},
		{"github.com/jackc/pgx/v5/pgconn", true},
		{module + "/store", true},
		{module + "/store/storetest", true},
		{module + "/controlplane", true},
		{module + "/controlplane/cptest", true},
		{module + "/storefront", false},
		{module + "/controlplane/api", false},
		{module + "/controlplane/client", false},
		{module + "/agent/wg", false},
		{"golang.zx2c4.com/wireguard/wgctrl", false},
		{"net/http", false},
	} {
		if got := heavy(tc.dep) != ""; got != tc.want {
			t.Errorf("heavy(%q) = %q, want forbidden=%v", tc.dep, heavy(tc.dep), tc.want)
		}
	}
}
