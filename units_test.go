package traceless_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// units are the systemd units shipped in configs/.
var units = []string{"traceless-agent.service", "traceless-server.service"}

// maxExposure is the highest `systemd-analyze security` exposure a unit
// may have (0 is the safest, 10 the least safe; 3.0 is the top of "OK").
const maxExposure = 3.0

// systemdAnalyze returns the path of systemd-analyze, skipping the test
// without it, or failing it under CI=true (CI installs the systemd
// package).
func systemdAnalyze(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("systemd-analyze")
	if err == nil {
		return bin
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true: systemd-analyze is missing (apt-get install -y systemd): %v", err)
	}
	t.Skipf("checking the systemd units needs systemd-analyze (apt-get install -y systemd): %v", err)
	return ""
}

// TestUnitsVerify runs `systemd-analyze verify` on the units as installed:
// in a root directory of the test's own holding the host's system units,
// the units in /etc/systemd/system and an executable at each ExecStart
// path. Any message (an unknown key, a value that does not parse) fails
// the test, not only a non-zero exit.
func TestUnitsVerify(t *testing.T) {
	bin := systemdAnalyze(t)
	root := t.TempDir()
	sys := "/usr/lib/systemd/system"
	if _, err := os.Stat(filepath.Join(sys, "multi-user.target")); err != nil {
		t.Fatalf("the host's system units are not in %s: %v", sys, err)
	}
	copyTree(t, sys, filepath.Join(root, sys))
	for _, u := range units {
		data, err := os.ReadFile(filepath.Join("configs", u))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(root, "etc/systemd/system", u), data, 0o644)
		for _, exe := range execPaths(data) {
			writeFile(t, filepath.Join(root, exe), []byte("#!/bin/sh\n"), 0o755)
		}
	}
	cmd := exec.Command(bin, append([]string{"verify", "--root=" + root}, units...)...)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", strings.Join(units, " "), err, out)
	}
}

// TestUnitsSecurity rates each unit with `systemd-analyze security
// --offline=true` and fails above maxExposure.
func TestUnitsSecurity(t *testing.T) {
	bin := systemdAnalyze(t)
	overall := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)
	for _, u := range units {
		path := filepath.Join("configs", u)
		// --threshold takes tenths: the command itself fails above it.
		cmd := exec.Command(bin, "security", "--offline=true", "--threshold="+strconv.Itoa(int(maxExposure*10)), path)
		out, err := cmd.CombinedOutput()
		m := overall.FindSubmatch(out)
		if m == nil {
			t.Errorf("systemd-analyze security %s: no overall exposure in the output (%v):\n%s", u, err, out)
			continue
		}
		level, _ := strconv.ParseFloat(string(m[1]), 64)
		t.Logf("%s: exposure %.1f", u, level)
		if level > maxExposure || err != nil {
			t.Errorf("%s: exposure %.1f (exit: %v), want at most %.1f; what is open:\n%s", u, level, err, maxExposure, failedChecks(out))
		}
	}
}

// execPaths returns the absolute programs of a unit's Exec*= lines.
func execPaths(unit []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(unit))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || !strings.HasPrefix(k, "Exec") {
			continue
		}
		f := strings.Fields(strings.TrimLeft(v, "@-:+!"))
		if len(f) > 0 && filepath.IsAbs(f[0]) {
			out = append(out, f[0])
		}
	}
	return out
}

// failedChecks keeps the lines of a security report that cost exposure.
func failedChecks(out []byte) string {
	var b strings.Builder
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "✗") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		dst := filepath.Join(to, rel)
		switch {
		case d.Type()&os.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(target, dst)
		case d.IsDir():
			return os.MkdirAll(dst, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
}
