package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// MustPragma returns the value of PRAGMA name on the writer connection.
func MustPragma(tb testing.TB, s *Store, name string) string {
	tb.Helper()
	var v string
	if err := s.w.Raw("PRAGMA " + name).Scan(&v).Error; err != nil {
		tb.Fatalf("PRAGMA %s: %v", name, err)
	}
	return v
}

func TestSQLitePragmas(t *testing.T) {
	s := MustOpen(t, sqliteConfig(t))
	got := map[string]string{}
	for _, p := range []string{"foreign_keys", "secure_delete", "journal_mode", "cache_size", "journal_size_limit", "wal_autocheckpoint"} {
		got[p] = MustPragma(t, s, p)
	}
	want := map[string]string{"foreign_keys": "1", "secure_delete": "1", "journal_mode": "wal", "cache_size": "-65536",
		"journal_size_limit": fmt.Sprint(WALLimit), "wal_autocheckpoint": "0"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("writer pragmas (-want +got):\n%s", diff)
	}

	wdb, err := s.w.DB()
	if err != nil {
		t.Fatal(err)
	}
	if n := wdb.Stats().MaxOpenConnections; n != 1 {
		t.Errorf("writer pool allows %d connections; want exactly 1", n)
	}
	rdb, err := s.r.DB()
	if err != nil {
		t.Fatal(err)
	}
	if n := rdb.Stats().MaxOpenConnections; n != 4 {
		t.Errorf("reader pool allows %d connections; want the default 4", n)
	}

	// Readers are read-only and share the pragmas that matter for reads.
	if err := s.r.Exec("DELETE FROM plans").Error; err == nil {
		t.Error("a write through the reader pool succeeded; readers must be query_only")
	}
	var secure int
	if err := s.r.Raw("PRAGMA secure_delete").Scan(&secure).Error; err != nil || secure != 1 {
		t.Errorf("reader secure_delete = %d, %v; want 1", secure, err)
	}
}

// canaryRows stores an owner (under a legal hold) with an app and a
// device, each holding a random canary string, and returns the canary and
// the owner.
func canaryRows(t *testing.T, s *Store) (string, Owner) {
	t.Helper()
	ctx := context.Background()
	MustSeedPlans(t, s)
	canary := "canary-" + randomHex(t, 16)
	o := MustCreateOwner(t, s, canary+"@example.com", "")
	if _, err := s.UpdateOwner(ctx, o.ID, OwnerUpdate{LegalHold: ptr("hold " + canary)}); err != nil {
		t.Fatal(err)
	}
	app := MustInsertApp(t, s, o.ID, "app "+canary)
	ref := canary
	if err := s.w.Create(&Device{ID: "dev-" + canary[:20], AppID: app.ID, PublicKey: "pk-" + canary[:20], IPv4: "10.64.0.2", IPv6: "fd00::2", ExternalRef: &ref, Revision: 1}).Error; err != nil {
		t.Fatal(err)
	}
	return canary, o
}

// canaryOnDisk lists the files of the database (the file and its WAL)
// that hold canary.
func canaryOnDisk(cfg Config, canary string) ([]string, error) {
	var in []string
	for _, f := range []string{cfg.DSN, cfg.DSN + "-wal"} {
		b, err := os.ReadFile(f)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if bytes.Contains(b, []byte(canary)) {
			in = append(in, filepath.Base(f))
		}
	}
	return in, nil
}

// TestSQLiteDeleteLeavesNoCopy deletes a row holding a canary and checks,
// after Checkpoint, that its bytes are neither in the database file nor in
// the WAL: deletion really is erasure on disk.
func TestSQLiteDeleteLeavesNoCopy(t *testing.T) {
	ctx := context.Background()
	cfg := sqliteConfig(t)
	s := MustOpen(t, cfg)
	canary, o := canaryRows(t, s)
	found := func() []string {
		in, err := canaryOnDisk(cfg, canary)
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	// The test must be able to fail: before the delete the canary is on disk.
	if got := found(); len(got) == 0 {
		t.Fatal("canary not found on disk before the delete; the test cannot see what it checks")
	}

	// Deleting the owner cascades to the app and its device.
	if err := s.w.Exec("DELETE FROM owners WHERE id = ?", o.ID).Error; err != nil {
		t.Fatal(err)
	}
	if n := MustCount(t, s, &Device{}); n != 0 {
		t.Fatalf("%d devices left; the cascade did not run", n)
	}
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
	if got := found(); len(got) != 0 {
		t.Errorf("canary of a deleted row still on disk in %v", got)
	}
	if fi, err := os.Stat(cfg.DSN + "-wal"); err == nil && fi.Size() != 0 {
		t.Errorf("WAL is %d bytes after Checkpoint; want truncated", fi.Size())
	}
}

// TestSQLiteDeleteLeavesNoCopyUnderLoad is TestSQLiteDeleteLeavesNoCopy
// while registrations run at full speed with readers active, as they do
// on a busy server, and the background checkpointer keeps the WAL within
// WALLimit by starting it over: the checkpoint that an account deletion
// forces (Checkpoint) still leaves no copy of the deleted rows, neither
// right after it nor once the load has gone on writing the WAL.
func TestSQLiteDeleteLeavesNoCopyUnderLoad(t *testing.T) {
	ctx := context.Background()
	cfg := sqliteConfig(t)
	s := MustOpen(t, cfg)
	canary, o := canaryRows(t, s)
	if got, err := canaryOnDisk(cfg, canary); err != nil || len(got) == 0 {
		t.Fatalf("canary on disk before the delete: %v, %v; the test cannot see what it checks", got, err)
	}
	type result struct {
		in  []string
		err error
	}
	after := make(chan result, 1)
	go func() {
		time.Sleep(time.Second) // the load runs, the WAL is busy
		if err := s.w.Exec("DELETE FROM owners WHERE id = ?", o.ID).Error; err != nil {
			after <- result{err: err}
			return
		}
		if err := s.Checkpoint(ctx); err != nil {
			after <- result{err: fmt.Errorf("Checkpoint: %w", err)}
			return
		}
		in, err := canaryOnDisk(cfg, canary)
		after <- result{in, err}
	}()
	maxWAL, regs := walLoad(t, s, 3*time.Second, 0)
	r := <-after
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.in) != 0 {
		t.Errorf("canary of a deleted row on disk in %v right after the deletion's checkpoint", r.in)
	}
	if got, err := canaryOnDisk(cfg, canary); err != nil || len(got) != 0 {
		t.Errorf("canary of a deleted row on disk in %v, %v after the load went on", got, err)
	}
	t.Logf("%d registrations beside the deletion; the WAL reached %.1f MiB at most", regs, float64(maxWAL)/(1<<20))
}

func TestSQLiteFileMode(t *testing.T) {
	cfg := sqliteConfig(t)
	check := func(when string) {
		t.Helper()
		for _, f := range []string{cfg.DSN, cfg.DSN + "-wal"} {
			fi, err := os.Stat(f)
			if err != nil {
				t.Fatal(err)
			}
			if mode := fi.Mode().Perm(); mode&0o077 != 0 {
				t.Errorf("%s: %s has mode %v; want no access for group or others", when, filepath.Base(f), mode)
			}
		}
	}
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	MustSeedPlans(t, s)
	check("new database")
	// Closed (SQLite deletes the WAL with the last connection) and opened
	// again: the WAL of a database in WAL mode is created owner-only.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cfg.DSN + "-wal"); !os.IsNotExist(err) {
		t.Logf("the WAL outlived the last connection (%v)", err)
	}
	s = MustOpen(t, cfg)
	MustCreateOwner(t, s, "after-reopen@example.com", "")
	check("reopened database")
}

func TestOpenRejects(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"in-memory SQLite", Config{Driver: DriverSQLite, DSN: ":memory:"}},
		{"unknown driver", Config{Driver: "mysql", DSN: "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(context.Background(), tt.cfg)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded; want an error")
			}
		})
	}
}

func TestParseDSN(t *testing.T) {
	tests := []struct {
		dsn     string
		want    Config
		wantErr bool
	}{
		{dsn: "sqlite://./data/traceless.db", want: Config{Driver: DriverSQLite, DSN: "./data/traceless.db"}},
		{dsn: "sqlite:///var/lib/traceless/db.sqlite", want: Config{Driver: DriverSQLite, DSN: "/var/lib/traceless/db.sqlite"}},
		{dsn: "sqlite:data.db", want: Config{Driver: DriverSQLite, DSN: "data.db"}},
		{dsn: "postgres://u@db:5432/traceless?sslmode=require", want: Config{Driver: DriverPostgres, DSN: "postgres://u@db:5432/traceless?sslmode=require"}},
		{dsn: "postgresql://u@db/traceless", want: Config{Driver: DriverPostgres, DSN: "postgresql://u@db/traceless"}},
		{dsn: "sqlite://", wantErr: true},
		{dsn: "mysql://u@db/x", wantErr: true},
		{dsn: "", wantErr: true},
		{dsn: "postgres://u@db:bad port/x", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.dsn, func(t *testing.T) {
			got, err := ParseDSN(tt.dsn)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseDSN(%q) error = %v; want error %v", tt.dsn, err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateComparable(netip.Prefix{})); diff != "" {
				t.Errorf("ParseDSN(%q) (-want +got):\n%s", tt.dsn, diff)
			}
		})
	}
}

// TestSQLiteTimeFormat: times are stored as the earlier driver
// (mattn/go-sqlite3) stored them, to the nanosecond, so databases it wrote
// read the same and times compare in SQL as they did; such a value reads
// back as the same instant.
func TestSQLiteTimeFormat(t *testing.T) {
	s := MustOpen(t, sqliteConfig(t))
	at := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	if err := s.w.Exec("CREATE TABLE time_format_test (at DATETIME NOT NULL)").Error; err != nil {
		t.Fatal(err)
	}
	if err := s.w.Exec("INSERT INTO time_format_test (at) VALUES (?), (?)", at, "2023-01-02 03:04:05+00:00").Error; err != nil {
		t.Fatal(err)
	}
	var raw []string
	if err := s.w.Raw("SELECT CAST(at AS TEXT) FROM time_format_test ORDER BY rowid").Scan(&raw).Error; err != nil {
		t.Fatal(err)
	}
	if want := []string{"2024-05-06 07:08:09.123456789+00:00", "2023-01-02 03:04:05+00:00"}; !slices.Equal(raw, want) {
		t.Errorf("stored %q, want %q", raw, want)
	}
	var got []time.Time
	if err := s.w.Raw("SELECT at FROM time_format_test ORDER BY rowid").Scan(&got).Error; err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[0].Equal(at) || !got[1].Equal(time.Date(2023, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("read back %v", got)
	}
}
