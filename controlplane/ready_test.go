package controlplane

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// requireRootCI skips a test that needs root, except with CI=true, where
// it must run and fails instead.
func requireRootCI(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	const msg = "this test mounts a tmpfs and needs root; .ci/run runs it as root"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// mustTmpfs mounts a tmpfs of size bytes on a directory of its own and
// unmounts it at cleanup (after everything registered later, such as the
// store on it, is closed).
func mustTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700"); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// mustFill writes to path until the file system is full.
func mustFill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill: %v", err)
			}
			break
		}
	}
	// Whatever is smaller than a block may still fit.
	for {
		if _, err := f.Write(buf[:512]); err != nil {
			break
		}
	}
}

// readyStatus is GET /readyz's status and, for an error, its code.
func readyStatus(t *testing.T, h *harness) (int, string) {
	t.Helper()
	r := h.Do(request{Method: http.MethodGet, Path: "/readyz"})
	if r.Status == http.StatusOK {
		return r.Status, ""
	}
	return r.Status, r.MustError(t).Code
}

// waitReady polls /readyz until it answers want (the store may need a
// moment, such as a checkpoint, to notice a change).
func waitReady(t *testing.T, h *harness, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, code := readyStatus(t, h)
		if status == want {
			if want != http.StatusOK && code != api.CodeStorageUnavailable {
				t.Fatalf("/readyz %d has code %q, want %s", status, code, api.CodeStorageUnavailable)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz = %d %s, want %d", status, code, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestStorageFull runs a server whose database lives on a small tmpfs,
// fills the disk, and checks that registrations get 503
// storage_unavailable (never 500 internal), that /readyz says 503 while
// /healthz, a liveness check, stays 200; then frees the space and checks
// that writes work again, that every registration answered 201 is there,
// and that the database is intact.
func TestStorageFull(t *testing.T) {
	requireRootCI(t)
	dir := mustTmpfs(t, "8m")
	path := filepath.Join(dir, "traceless.db")
	st, err := store.Open(context.Background(), store.Config{Driver: store.DriverSQLite, DSN: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w := newProvWorld(t, func(o *Options) { o.Store = st })
	h := w.h
	registered := 1
	w.register(t)
	waitReady(t, h, http.StatusOK)

	register := func() response {
		return h.Do(request{Method: "POST", Path: "/api/v1/devices", Token: w.key, Body: api.DeviceInput{PublicKey: newWGKey(t)}})
	}
	fill := filepath.Join(dir, "fill")
	mustFill(t, fill)
	refused := 0
	for i := 0; i < 200 && refused < 5; i++ {
		r := register()
		switch r.Status {
		case http.StatusCreated:
			registered++
		case http.StatusServiceUnavailable:
			if code := r.MustError(t).Code; code != api.CodeStorageUnavailable {
				t.Fatalf("503 with code %q", code)
			}
			refused++
		default:
			t.Fatalf("registration on a full disk = %d %s, want 201 or 503 storage_unavailable", r.Status, r.Body)
		}
	}
	if refused == 0 {
		t.Fatalf("200 registrations on a full disk all succeeded")
	}
	waitReady(t, h, http.StatusServiceUnavailable)
	h.Do(request{Method: http.MethodGet, Path: "/healthz"}).MustStatus(t, http.StatusOK)
	if r := h.Do(request{Method: http.MethodHead, Path: "/readyz"}); r.Status != http.StatusServiceUnavailable {
		t.Errorf("HEAD /readyz on a full disk = %d", r.Status)
	}

	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	waitReady(t, h, http.StatusOK)
	register().MustStatus(t, http.StatusCreated)
	registered++

	devs, err := st.ListDevices(context.Background(), w.appID, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != registered {
		t.Errorf("%d devices stored, %d registrations answered 201", len(devs), registered)
	}
	if err := st.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var result string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&result); err != nil || result != "ok" {
		t.Errorf("integrity_check = %q, %v", result, err)
	}
	if logs := h.logs.String(); !strings.Contains(logs, `"msg":"storage unavailable"`) {
		t.Errorf("the refused writes were not logged as storage unavailable")
	}
}

// TestReadyDatabaseGone: a SQLite file removed or replaced under a running
// server makes /readyz answer 503 storage_unavailable, since what the
// server writes would be lost.
func TestReadyDatabaseGone(t *testing.T) {
	h := newHarness(t)
	waitReady(t, h, http.StatusOK)
	if err := os.Remove(h.dbPath); err != nil {
		t.Fatal(err)
	}
	waitReady(t, h, http.StatusServiceUnavailable)
	if err := os.WriteFile(h.dbPath, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	waitReady(t, h, http.StatusServiceUnavailable)
	h.Do(request{Method: http.MethodGet, Path: "/healthz"}).MustStatus(t, http.StatusOK)
}
