package controlplane_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// redoclyConfig is the lint configuration, at the repository's root.
const redoclyConfig = "../redocly.yaml"

// redocly returns the path of the @redocly/cli binary from
// TRACELESS_REDOCLY (.ci/run installs it and sets it). Without it the
// test skips, except in CI (CI=true), where it fails.
func redocly(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("TRACELESS_REDOCLY")
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("TRACELESS_REDOCLY is not set: CI must lint the OpenAPI document with @redocly/cli (see .ci/run)")
		}
		t.Skip("TRACELESS_REDOCLY is not set; install @redocly/cli (npm install --prefix DIR @redocly/cli@2.77.0) " +
			"and set it to DIR/node_modules/.bin/redocly to lint the OpenAPI document")
	}
	return bin
}

// redoclyLint writes doc to a file and lints it with the repository's
// configuration; it returns the linter's output and whether it passed.
func redoclyLint(t *testing.T, bin string, doc []byte) (string, bool) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "openapi.json")
	if err := os.WriteFile(file, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "lint", "--config", redoclyConfig, "--format", "stylish", "--max-problems", "1000", file)
	// No telemetry, no update check, nothing written to the user's home.
	cmd.Env = append(os.Environ(), "REDOCLY_TELEMETRY=off", "REDOCLY_SUPPRESS_UPDATE_NOTICE=true", "NO_COLOR=1",
		"HOME="+dir, "XDG_CONFIG_HOME="+dir)
	out, err := cmd.CombinedOutput()
	if _, isExit := err.(*exec.ExitError); err != nil && !isExit {
		t.Fatalf("run %s: %v", bin, err)
	}
	return string(out), err == nil
}

// TestOpenAPIRedoclyLint lints the served document with an independent
// validator, @redocly/cli, and its recommended ruleset (redocly.yaml), so
// that the contract stays what other tools accept.
func TestOpenAPIRedoclyLint(t *testing.T) {
	bin := redocly(t)
	s := newOAServer(t)
	doc := fetchOpenAPI(t, s.srv.Handler())
	if out, ok := redoclyLint(t, bin, doc); !ok {
		t.Fatalf("redocly lint fails on the served document:\n%s", out)
	}

	// The lint can fail: the same document without its servers does.
	t.Run("catches", func(t *testing.T) {
		var m map[string]any
		if err := json.Unmarshal(doc, &m); err != nil {
			t.Fatal(err)
		}
		delete(m, "servers")
		broken, _ := json.Marshal(m)
		out, ok := redoclyLint(t, bin, broken)
		if ok || !strings.Contains(out, "no-empty-servers") {
			t.Fatalf("redocly lint passed a document without servers:\n%s", out)
		}
		if bytes.Equal(broken, doc) {
			t.Fatal("the document was not changed")
		}
	})
}
