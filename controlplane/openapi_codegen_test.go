package controlplane_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	// The generated client imports the oapi-codegen runtime; importing it
	// here keeps it (pinned) in go.mod.
	_ "github.com/oapi-codegen/runtime"
)

// oapigenPackage is where the generated client is built: a directory of
// this module that does not exist on disk, filled by a build overlay, so
// that it builds with the module's own pinned dependencies and nothing is
// written into the checkout.
const oapigenPackage = "controlplane/oapigencheck"

// oapigenCheck uses what the generated client must have: the operations
// as methods, and the fields that are null in real answers as pointers.
const oapigenCheck = `package oapigencheck

var (
	_ *NodeStatus  = Node{}.Status
	_ *Policy      = PolicyStatus{}.Upcoming
	_ *Explanation = ServerList{}.Explanation
	_ *string      = Owner{}.LegalHold
	_ []string     = Pool{}.Plans
	_ bool         = Pool{}.InNoPlan

	_ = (*ClientWithResponses).ListServersWithResponse
	_ = (*ClientWithResponses).RegisterDeviceWithResponse
	_ = (*ClientWithResponses).AdminCreatePoolWithResponse
	_ = (*ClientWithResponses).AdminListNodesWithResponse
	_ = NewClientWithResponses
)
`

// TestOpenAPIGeneratedClientBuilds generates a Go client from the served
// document with oapi-codegen (a pinned tool of this module) and compiles
// it, so that the contract stays one that client generators accept.
func TestOpenAPIGeneratedClientBuilds(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("go command not on PATH (%v)", err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := newOAServer(t)
	docFile, genFile, checkFile := filepath.Join(dir, "openapi.json"), filepath.Join(dir, "client.go"), filepath.Join(dir, "check.go")
	cfgFile, overlayFile := filepath.Join(dir, "oapi-codegen.yaml"), filepath.Join(dir, "overlay.json")
	cfg := "package: oapigencheck\ngenerate:\n  models: true\n  client: true\noutput: " + genFile + "\n"
	overlay, _ := json.Marshal(map[string]map[string]string{"Replace": {
		filepath.Join(root, oapigenPackage, "client.go"): genFile,
		filepath.Join(root, oapigenPackage, "check.go"):  checkFile,
	}})
	for file, content := range map[string][]byte{docFile: fetchOpenAPI(t, s.srv.Handler()), cfgFile: []byte(cfg),
		checkFile: []byte(oapigenCheck), overlayFile: overlay} {
		if err := os.WriteFile(file, content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, oapigenPackage)); err == nil {
		t.Fatalf("%s exists in the checkout; the test builds it from an overlay", oapigenPackage)
	}

	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("tool", "oapi-codegen", "-config", cfgFile, docFile)
	run("build", "-overlay", overlayFile, "./"+oapigenPackage)
}
