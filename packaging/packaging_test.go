// Package packaging holds the tests of the release artefacts that
// packaging/dist.sh (make dist) builds into dist/: the archives, the
// SHA256SUMS file, and the deb packages, installed and purged for real.
package packaging

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// distDir is where make dist put the artefacts: TRACELESS_DIST_DIR, else
// dist/ at the root of the checkout.
func distDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("TRACELESS_DIST_DIR")
	if dir == "" {
		dir = filepath.Join("..", "dist")
	}
	if _, err := os.Stat(filepath.Join(dir, "SHA256SUMS")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true: no release artefacts in %s (.ci/run runs make dist before make test): %v", dir, err)
		}
		t.Skipf("no release artefacts in %s; run make dist first: %v", dir, err)
	}
	return dir
}

// sums reads SHA256SUMS and checks every file it lists.
func sums(t *testing.T, dir string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("SHA256SUMS: bad line %q", sc.Text())
		}
		out[name] = sum
	}
	return out
}

// TestDistSums: SHA256SUMS lists every artefact, each with its checksum,
// and there is an archive, a deb, an rpm and SBOMs for each architecture.
func TestDistSums(t *testing.T) {
	dir := distDir(t)
	listed := sums(t, dir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == "SHA256SUMS" {
			continue
		}
		want, ok := listed[e.Name()]
		if !ok {
			t.Errorf("%s is not in SHA256SUMS", e.Name())
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != want {
			t.Errorf("%s: sha256 %s, SHA256SUMS says %s", e.Name(), got, want)
		}
		delete(listed, e.Name())
	}
	for name := range listed {
		t.Errorf("SHA256SUMS lists %s, which is not there", name)
	}
	for _, arch := range []string{"amd64", "arm64"} {
		for _, pattern := range []string{
			"traceless_*_linux_" + arch + ".tar.gz",
			"traceless-server_*_" + arch + ".deb",
			"traceless-agent_*_" + arch + ".deb",
			"traceless-server-*." + rpmArch(arch) + ".rpm",
			"traceless-agent-*." + rpmArch(arch) + ".rpm",
			"traceless-server_*_linux_" + arch + ".cdx.json",
			"traceless-agent_*_linux_" + arch + ".cdx.json",
			"traceless_*_linux_" + arch + ".cdx.json",
		} {
			if m, _ := filepath.Glob(filepath.Join(dir, pattern)); len(m) != 1 {
				t.Errorf("%s: %d files, want 1 (%v)", pattern, len(m), m)
			}
		}
	}
}

func rpmArch(goarch string) string {
	if goarch == "arm64" {
		return "aarch64"
	}
	return "x86_64"
}

// TestDistArchives: each archive holds one directory with the server, the
// agent and the CLI (static executables for its architecture, no load
// driver), README.md and configs/; entries are sorted, owned by 0:0 and
// all carry one timestamp, so that the archive depends on the commit only.
func TestDistArchives(t *testing.T) {
	dir := distDir(t)
	machines := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
	for arch, machine := range machines {
		m, _ := filepath.Glob(filepath.Join(dir, "traceless_*_linux_"+arch+".tar.gz"))
		if len(m) != 1 {
			t.Errorf("%s: %d archives, want 1", arch, len(m))
			continue
		}
		top := strings.TrimSuffix(filepath.Base(m[0]), ".tar.gz") + "/"
		files := readTarGz(t, m[0])
		var names []string
		mtimes := map[int64]bool{}
		for _, f := range files {
			names = append(names, f.hdr.Name)
			mtimes[f.hdr.ModTime.Unix()] = true
			if f.hdr.Uid != 0 || f.hdr.Gid != 0 {
				t.Errorf("%s: %s owned by %d:%d, want 0:0", arch, f.hdr.Name, f.hdr.Uid, f.hdr.Gid)
			}
			if !strings.HasPrefix(f.hdr.Name, top) {
				t.Errorf("%s: %s is outside %s", arch, f.hdr.Name, top)
			}
		}
		if !sort.StringsAreSorted(names) {
			t.Errorf("%s: entries not sorted: %v", arch, names)
		}
		if len(mtimes) != 1 {
			t.Errorf("%s: %d distinct timestamps, want 1", arch, len(mtimes))
		}
		byName := map[string]tarFile{}
		for _, f := range files {
			byName[strings.TrimPrefix(f.hdr.Name, top)] = f
		}
		for _, cmd := range []string{"traceless-server", "traceless-agent", "traceless"} {
			f, ok := byName[cmd]
			if !ok {
				t.Errorf("%s: no %s in the archive", arch, cmd)
				continue
			}
			if f.hdr.Mode&0o777 != 0o755 {
				t.Errorf("%s: %s mode %o, want 755", arch, cmd, f.hdr.Mode&0o777)
			}
			checkStatic(t, arch+"/"+cmd, f.data, machine)
			if arch == runtime.GOARCH && runtime.GOOS == "linux" {
				// The install path of the archive, tried: the binary as
				// extracted runs and knows its version.
				bin := filepath.Join(t.TempDir(), cmd)
				if err := os.WriteFile(bin, f.data, 0o755); err != nil {
					t.Fatal(err)
				}
				out, err := exec.Command(bin, "--version").CombinedOutput()
				if f := strings.Fields(string(out)); err != nil || len(f) < 2 || !strings.Contains(top, "_"+f[1]+"_") {
					t.Errorf("%s --version from the archive: %q (%v); want the version in %s", cmd, out, err, top)
				}
			}
		}
		for _, name := range []string{"README.md", "configs/traceless-server.service", "configs/traceless-agent.service", "configs/docker-compose.example.yml"} {
			if _, ok := byName[name]; !ok {
				t.Errorf("%s: no %s in the archive", arch, name)
			}
		}
		for name := range byName {
			if strings.Contains(name, "bench") {
				t.Errorf("%s: %s is in the archive; the load driver is not shipped", arch, name)
			}
		}
	}
}

// checkStatic fails unless data is an ELF executable for machine with no
// program interpreter (statically linked).
func checkStatic(t *testing.T, name string, data []byte, machine elf.Machine) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Errorf("%s: not an ELF file: %v", name, err)
		return
	}
	defer f.Close()
	if f.Machine != machine {
		t.Errorf("%s: machine %v, want %v", name, f.Machine, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s: has a program interpreter; want a static executable", name)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("%s: links %v; want a static executable", name, libs)
	}
}

type tarFile struct {
	hdr  *tar.Header
	data []byte
}

func readTarGz(t *testing.T, path string) []tarFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if !zr.ModTime.IsZero() || zr.Name != "" {
		t.Errorf("%s: gzip header has a time (%v) or a name (%q)", path, zr.ModTime, zr.Name)
	}
	var out []tarFile
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarFile{hdr, data})
	}
}

// TestDistSBOM: each SBOM is CycloneDX JSON naming its command as the
// main component and listing the SQLite driver among the components.
func TestDistSBOM(t *testing.T) {
	dir := distDir(t)
	m, _ := filepath.Glob(filepath.Join(dir, "*.cdx.json"))
	if len(m) != 6 {
		t.Errorf("%d SBOMs, want 6 (3 commands × 2 architectures): %v", len(m), m)
	}
	for _, path := range m {
		var bom struct {
			BOMFormat string `json:"bomFormat"`
			Metadata  struct {
				Component struct{ Name string } `json:"component"`
			} `json:"metadata"`
			Components []struct{ Name, Version string } `json:"components"`
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &bom); err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if bom.BOMFormat != "CycloneDX" || bom.Metadata.Component.Name == "" {
			t.Errorf("%s: format %q, main component %q", filepath.Base(path), bom.BOMFormat, bom.Metadata.Component.Name)
		}
		want := "github.com/ncruces/go-sqlite3" // the server
		switch name := filepath.Base(path); {
		case strings.HasPrefix(name, "traceless-agent_"):
			want = "golang.zx2c4.com/wireguard/wgctrl"
		case strings.HasPrefix(name, "traceless_"): // the CLI
			want = "github.com/spf13/cobra"
		}
		found := false
		for _, c := range bom.Components {
			found = found || c.Name == want
		}
		if !found {
			t.Errorf("%s: %s is not among its %d components", filepath.Base(path), want, len(bom.Components))
		}
	}
}

// dpkgReady returns the dpkg binary, skipping outside CI: the test
// installs packages onto this machine and purges them again, which needs
// root, and is only done under CI=true or with TRACELESS_TEST_DPKG=1.
func dpkgReady(t *testing.T) string {
	t.Helper()
	ci := os.Getenv("CI") == "true"
	if !ci && os.Getenv("TRACELESS_TEST_DPKG") != "1" {
		t.Skip("installs the .deb packages onto this machine: runs under CI=true or TRACELESS_TEST_DPKG=1")
	}
	if runtime.GOOS != "linux" {
		t.Skip("deb packages are for Linux")
	}
	fail := t.Skipf
	if ci {
		fail = t.Fatalf
	}
	if os.Geteuid() != 0 {
		fail("installing a .deb needs root")
	}
	dpkg, err := exec.LookPath("dpkg")
	if err != nil {
		fail("no dpkg: %v", err)
	}
	return dpkg
}

// entry is what a path installed by the packages must look like.
type entry struct {
	path        string
	dir         bool
	mode        os.FileMode
	owner, grp  string
	description string
}

var installed = []entry{
	{"/usr/bin/traceless-server", false, 0o755, "root", "root", "the server"},
	{"/usr/bin/traceless", false, 0o755, "root", "root", "the CLI"},
	{"/usr/bin/traceless-agent", false, 0o755, "root", "root", "the agent"},
	{"/usr/lib/systemd/system/traceless-server.service", false, 0o644, "root", "root", "the server's unit"},
	{"/usr/lib/systemd/system/traceless-agent.service", false, 0o644, "root", "root", "the agent's unit"},
	{"/etc/traceless", true, 0o755, "root", "root", "the configuration directory"},
	{"/etc/traceless/traceless-server.env", false, 0o640, "root", "traceless", "the server's settings (readable by its user, not by others)"},
	{"/etc/traceless/traceless-agent.yaml", false, 0o600, "root", "root", "the agent's configuration (root only)"},
	{"/var/lib/traceless", true, 0o700, "traceless", "traceless", "the server's data: database and session key"},
	{"/var/lib/traceless-agent", true, 0o700, "root", "root", "the agent's credential"},
}

// TestDebInstall installs the server and agent packages for this machine's
// architecture with dpkg, checks owners and modes of what they installed,
// the system user, that nothing was enabled or started, runs
// `traceless-server --version` and `traceless-agent --version` from them
// and `systemd-analyze verify` on the installed units; then purges both
// and checks that nothing is left but the traceless system user, which
// packaging policy keeps (files it owned may remain elsewhere, and a
// reused ID would inherit them).
func TestDebInstall(t *testing.T) {
	dpkg := dpkgReady(t)
	dir := distDir(t)
	var debs []string
	for _, pkg := range []string{"traceless-server", "traceless-agent"} {
		m, _ := filepath.Glob(filepath.Join(dir, pkg+"_*_"+runtime.GOARCH+".deb"))
		if len(m) != 1 {
			t.Fatalf("%s for %s: %d packages in %s, want 1", pkg, runtime.GOARCH, len(m), dir)
		}
		if out, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", pkg).Output(); strings.Contains(string(out), "installed") {
			t.Fatalf("%s is already installed on this machine (%s); the test would replace it", pkg, out)
		}
		debs = append(debs, m[0])
	}
	_, userErr := user.Lookup("traceless")
	userExisted := userErr == nil
	t.Cleanup(func() {
		// After a failure half-way: purge what is there, and the user if
		// this test created it.
		_ = exec.Command(dpkg, "--purge", "traceless-server", "traceless-agent").Run()
		if !userExisted {
			_ = exec.Command("userdel", "traceless").Run()
			_ = exec.Command("groupdel", "traceless").Run()
		}
	})

	run(t, dpkg, append([]string{"-i"}, debs...)...)

	for _, e := range installed {
		checkEntry(t, e)
	}
	u, err := user.Lookup("traceless")
	if err != nil {
		t.Fatalf("the traceless system user: %v", err)
	}
	if uid, _ := strconv.Atoi(u.Uid); uid <= 0 || uid >= 1000 {
		t.Errorf("traceless has UID %s; want a system UID (1-999)", u.Uid)
	}
	if pw := passwdLine(t, "traceless"); !strings.HasSuffix(pw, ":/var/lib/traceless:/usr/sbin/nologin") {
		t.Errorf("passwd entry %q; want home /var/lib/traceless and shell /usr/sbin/nologin", pw)
	}
	// Nothing is enabled or started before it is configured.
	for _, unit := range []string{"traceless-server.service", "traceless-agent.service"} {
		m, _ := filepath.Glob("/etc/systemd/system/*.wants/" + unit)
		if len(m) > 0 {
			t.Errorf("%s was enabled on install: %v", unit, m)
		}
	}
	if unit, err := os.ReadFile("/usr/lib/systemd/system/traceless-server.service"); err != nil {
		t.Error(err)
	} else {
		for _, want := range []string{"\nExecStart=/usr/bin/traceless-server\n", "\nUser=traceless\n", "\nGroup=traceless\n", "\nStateDirectory=traceless\n"} {
			if !bytes.Contains(unit, []byte(want)) {
				t.Errorf("installed server unit lacks %q", strings.TrimSpace(want))
			}
		}
		if bytes.Contains(unit, []byte("\nDynamicUser=")) {
			t.Error("installed server unit still has DynamicUser=; the package's user owns /var/lib/traceless")
		}
	}

	version := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(debs[0]), "traceless-server_"), "_"+runtime.GOARCH+".deb")
	for _, bin := range []string{"/usr/bin/traceless-server", "/usr/bin/traceless-agent"} {
		out := run(t, bin, "--version")
		v := strings.TrimSpace(out)
		if v == "" || strings.Contains(v, "devel") || !strings.Contains(strings.ReplaceAll(version, "-", "."), versionField(v)) {
			t.Errorf("%s --version = %q; want the packaged version (package %s)", bin, v, version)
		}
		data, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		checkStatic(t, bin, data, map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[runtime.GOARCH])
	}

	if analyze, err := exec.LookPath("systemd-analyze"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Errorf("CI=true: systemd-analyze is missing (apt-get install systemd): %v", err)
		}
	} else {
		cmd := exec.Command(analyze, "verify", "/usr/lib/systemd/system/traceless-server.service", "/usr/lib/systemd/system/traceless-agent.service")
		out, err := cmd.CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify on the installed units: %v\n%s", err, out)
		}
	}

	// The server runs from the package as its user, with its data in
	// /var/lib/traceless, as the unit starts it.
	checkServerStarts(t)

	run(t, dpkg, "--purge", "traceless-server", "traceless-agent")
	for _, e := range installed {
		if _, err := os.Lstat(e.path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after purge, %s (%s) is still there (%v)", e.path, e.description, err)
		}
	}
	for _, pkg := range []string{"traceless-server", "traceless-agent"} {
		if out, _ := exec.Command("dpkg-query", "-W", "-f=${db:Status-Abbrev}", pkg).Output(); strings.TrimSpace(string(out)) != "" {
			t.Errorf("after purge, dpkg still knows %s: %q", pkg, out)
		}
	}
	if _, err := user.Lookup("traceless"); err != nil {
		t.Errorf("after purge the traceless user is gone (%v); policy keeps it", err)
	}
}

// checkServerStarts runs /usr/bin/traceless-server as the traceless user
// with the unit's settings until it creates its database and session key,
// and checks their owner and modes.
func checkServerStarts(t *testing.T) {
	t.Helper()
	u, err := user.Lookup("traceless")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cmd := exec.Command("/usr/bin/traceless-server")
	cmd.Dir = "/var/lib/traceless"
	cmd.Env = []string{
		"TRACELESS_LISTEN=127.0.0.1:0",
		"TRACELESS_DB=sqlite:///var/lib/traceless/traceless.db",
		"TRACELESS_SESSION_KEY_FILE=/var/lib/traceless/session.key",
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	// The server's stderr is written by exec's copying goroutine while
	// this one reads it: a buffer behind a lock.
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-done
	}()
	for i := 0; i < 200; i++ {
		if bytes.Contains(stderr.Bytes(), []byte("setup?token=")) || bytes.Contains(stderr.Bytes(), []byte(`"listening"`)) {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("traceless-server exited: %v\n%s", err, stderr.String())
		default:
		}
		sleep()
	}
	for _, name := range []string{"traceless.db", "session.key"} {
		checkEntry(t, entry{"/var/lib/traceless/" + name, false, 0o600, "traceless", "traceless", "created by the server"})
	}
}

// lockedBuffer is a bytes.Buffer safe for one writer and one reader.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Bytes returns a copy of what was written so far.
func (b *lockedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

func (b *lockedBuffer) String() string { return string(b.Bytes()) }

func checkEntry(t *testing.T, e entry) {
	t.Helper()
	fi, err := os.Lstat(e.path)
	if err != nil {
		t.Errorf("%s (%s): %v", e.path, e.description, err)
		return
	}
	if fi.IsDir() != e.dir || (!e.dir && !fi.Mode().IsRegular()) {
		t.Errorf("%s: mode %v; want a %s", e.path, fi.Mode(), map[bool]string{true: "directory", false: "regular file"}[e.dir])
	}
	if got := fi.Mode().Perm(); got != e.mode {
		t.Errorf("%s (%s): mode %04o, want %04o", e.path, e.description, got, e.mode)
	}
	st := fi.Sys().(*syscall.Stat_t)
	owner, grp := strconv.Itoa(int(st.Uid)), strconv.Itoa(int(st.Gid))
	if u, err := user.LookupId(owner); err == nil {
		owner = u.Username
	}
	if g, err := user.LookupGroupId(grp); err == nil {
		grp = g.Name
	}
	if owner != e.owner || grp != e.grp {
		t.Errorf("%s (%s): owned by %s:%s, want %s:%s", e.path, e.description, owner, grp, e.owner, e.grp)
	}
}

func passwdLine(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("getent", "passwd", name).Output()
	if err != nil {
		t.Fatalf("getent passwd %s: %v", name, err)
	}
	return strings.TrimSpace(string(out))
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// versionField is the version in "traceless-server <version> (go…)", with
// "-" written "." as in package versions.
func versionField(s string) string {
	f := strings.Fields(s)
	if len(f) < 2 {
		return "(none)"
	}
	return strings.ReplaceAll(f[1], "-", ".")
}

func sleep() { time.Sleep(50 * time.Millisecond) }
