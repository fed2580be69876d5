package traceless_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The linters are Go tools pinned in go.mod (go get -tool …@version), so
// every machine runs the same versions with `go tool NAME`:
//
//   - staticcheck, over the non-test code of the whole module;
//   - ineffassign (assignments whose value is never used), likewise;
//   - shadow (a variable declared over another of the same name that is
//     used afterwards), over shadowPackages only: the idiom it catches lost
//     a server's error in the CLI once, but in the rest of the code it also
//     flags many harmless `if err := …` forms.
//
// Run them by hand with
//
//	go tool staticcheck -tests=false ./...
//	go tool ineffassign ./...        (it also reads _test.go files; TestLint ignores those)
//	go tool shadow -test=false ./cmd/traceless ./controlplane/client

// shadowPackages are the packages the shadow check covers.
var shadowPackages = []string{"./cmd/traceless", "./controlplane/client"}

// pendingFindings are findings tolerated for now. It is empty, and meant to
// stay so: TestLint fails on a finding not listed here and on an entry that
// no longer matches a finding. Entries name tool, file, check and message,
// not lines, so that edits around them do not break the list.
var pendingFindings = []finding{}

// finding is one report of a linter. File is relative to the module root.
type finding struct {
	Tool, File   string
	Line, Column int
	Check        string // staticcheck's check, such as SA4006; empty for the others
	Message      string
}

func (f finding) String() string {
	check := ""
	if f.Check != "" {
		check = " (" + f.Check + ")"
	}
	return fmt.Sprintf("%s:%d:%d: %s: %s%s", f.File, f.Line, f.Column, f.Tool, f.Message, check)
}

// key is what pendingFindings match on.
func (f finding) key() string {
	return strings.Join([]string{f.Tool, f.File, f.Check, f.Message}, "\x00")
}

func TestLint(t *testing.T) {
	var got []finding
	got = append(got, staticcheck(t, "./...")...)
	got = append(got, ineffassign(t, "./...")...)
	got = append(got, shadow(t, shadowPackages...)...)

	pending := map[string]bool{}
	for _, f := range pendingFindings {
		pending[f.key()] = true
	}
	matched := map[string]bool{}
	for _, f := range got {
		if pending[f.key()] {
			matched[f.key()] = true
			continue
		}
		t.Errorf("%s", f)
	}
	for _, f := range pendingFindings {
		if !matched[f.key()] {
			t.Errorf("pendingFindings lists %s: %s: %s, which is no longer reported: remove the entry", f.Tool, f.File, f.Message)
		}
	}
}

// TestLintCatches shows that each linter, as TestLint runs it, reports a
// lost error in testdata/lint and ignores the defect in its test file.
func TestLintCatches(t *testing.T) {
	pkg := "./testdata/lint"
	want := []string{
		"testdata/lint/lint.go:20:3: staticcheck: this value of err is never used (SA4006)",
		"testdata/lint/lint.go:20:6: ineffassign: ineffectual assignment to err",
		`testdata/lint/lint.go:16:8: shadow: declaration of "err" shadows declaration at line 14`,
	}
	var got []string
	for _, f := range slices.Concat(staticcheck(t, pkg), ineffassign(t, pkg), shadow(t, pkg)) {
		got = append(got, f.String())
	}
	if !slices.Equal(got, want) {
		t.Fatalf("findings in %s:\n%s\nwant:\n%s", pkg, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// goTool runs `go tool name args...` in the module root. It returns the
// output and the exit code; failing to start is fatal.
func goTool(t *testing.T, name string, args ...string) (stdout, stderr []byte, code int) {
	t.Helper()
	cmd := exec.Command("go", append([]string{"tool", name}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.Bytes(), errb.Bytes(), 0
	case errors.As(err, &ee):
		return out.Bytes(), errb.Bytes(), ee.ExitCode()
	}
	t.Fatalf("go tool %s: %v", name, err)
	return nil, nil, 0
}

// staticcheck runs staticcheck over the non-test code of the packages.
func staticcheck(t *testing.T, patterns ...string) []finding {
	t.Helper()
	out, stderr, code := goTool(t, "staticcheck", append([]string{"-tests=false", "-f", "json"}, patterns...)...)
	if code != 0 && code != 1 {
		t.Fatalf("staticcheck: exit %d\n%s%s", code, out, stderr)
	}
	var fs []finding
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var d struct {
			Code     string
			Message  string
			Location struct {
				File   string
				Line   int
				Column int
			}
		}
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatalf("staticcheck: %v in %q", err, sc.Text())
		}
		fs = append(fs, finding{Tool: "staticcheck", File: relative(t, d.Location.File), Line: d.Location.Line,
			Column: d.Location.Column, Check: d.Code, Message: d.Message})
	}
	if code == 1 && len(fs) == 0 {
		t.Fatalf("staticcheck failed without findings:\n%s%s", out, stderr)
	}
	return fs
}

// ineffassign runs ineffassign over the packages. It always reads their
// test files too; their findings are dropped.
func ineffassign(t *testing.T, patterns ...string) []finding {
	t.Helper()
	_, stderr, code := goTool(t, "ineffassign", patterns...)
	if code != 0 && code != 3 {
		t.Fatalf("ineffassign: exit %d\n%s", code, stderr)
	}
	var fs []finding
	for _, f := range positioned(t, "ineffassign", stderr) {
		if !strings.HasSuffix(f.File, "_test.go") && !slices.Contains(fs, f) { // it reports a package and its test variant
			fs = append(fs, f)
		}
	}
	return fs
}

// shadow runs the shadow analyzer over the non-test code of the packages.
func shadow(t *testing.T, patterns ...string) []finding {
	t.Helper()
	_, stderr, code := goTool(t, "shadow", append([]string{"-test=false"}, patterns...)...)
	if code != 0 && code != 3 {
		t.Fatalf("shadow: exit %d\n%s", code, stderr)
	}
	return positioned(t, "shadow", stderr)
}

var positionRE = regexp.MustCompile(`^(.+?):(\d+):(\d+): (.+)$`)

// positioned parses "file:line:col: message" lines; any other line is
// fatal, so that a tool's failure cannot pass as "no findings".
func positioned(t *testing.T, tool string, out []byte) []finding {
	t.Helper()
	var fs []finding
	for line := range strings.Lines(string(out)) {
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			continue
		}
		m := positionRE.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("%s: unexpected output %q\n%s", tool, line, out)
		}
		ln, _ := strconv.Atoi(m[2])
		col, _ := strconv.Atoi(m[3])
		fs = append(fs, finding{Tool: tool, File: relative(t, m[1]), Line: ln, Column: col, Message: m[4]})
	}
	return fs
}

// relative turns a tool's absolute path into one relative to the module
// root, with forward slashes.
func relative(t *testing.T, p string) string {
	t.Helper()
	if !filepath.IsAbs(p) {
		return filepath.ToSlash(p)
	}
	root, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(root, p)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.ToSlash(rel)
}
