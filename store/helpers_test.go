package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// postgresDSNEnv names the environment variable that points the tests at a
// PostgreSQL server where they may CREATE DATABASE.
const postgresDSNEnv = "TRACELESS_TEST_POSTGRES_DSN"

// testBackend is one database the tests run against.
type testBackend struct {
	// Name is the subtest name: "sqlite" or "postgres".
	Name string
	// config returns the Config of a fresh, empty database that is removed
	// when the test ends. It skips the test (or fails it in CI) when the
	// backend is not available.
	config func(tb testing.TB) Config
}

// Config returns the Config of a fresh, empty database.
func (b testBackend) Config(tb testing.TB) Config {
	tb.Helper()
	return b.config(tb)
}

// Open returns a migrated Store on a fresh database, closed at cleanup.
func (b testBackend) Open(tb testing.TB) *Store {
	tb.Helper()
	return MustOpen(tb, b.Config(tb))
}

// openTestStores returns the backends every store test runs against:
// SQLite in t.TempDir() always, and PostgreSQL when postgresDSNEnv is set.
// Without it the PostgreSQL subtests skip with a reason, except in CI
// (CI=true), where they fail: CI must exercise PostgreSQL.
func openTestStores(t *testing.T) []testBackend {
	t.Helper()
	return []testBackend{
		{Name: DriverSQLite, config: sqliteConfig},
		{Name: DriverPostgres, config: postgresConfig},
	}
}

// eachStore runs fn as a subtest on a freshly migrated store of every backend.
func eachStore(t *testing.T, fn func(t *testing.T, s *Store)) {
	t.Helper()
	for _, b := range openTestStores(t) {
		t.Run(b.Name, func(t *testing.T) {
			b.require(t)
			fn(t, b.Open(t))
		})
	}
}

// eachBackend runs fn as a subtest for every backend.
func eachBackend(t *testing.T, fn func(t *testing.T, b testBackend)) {
	t.Helper()
	for _, b := range openTestStores(t) {
		t.Run(b.Name, func(t *testing.T) {
			b.require(t)
			fn(t, b)
		})
	}
}

// requirePostgres returns the admin DSN of the test PostgreSQL server. When
// there is none it skips the test with the reason, or fails it in CI.
func requirePostgres(tb testing.TB) string {
	tb.Helper()
	admin := os.Getenv(postgresDSNEnv)
	if admin == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("%s not set, but CI=true: CI must run the PostgreSQL tests (.ci/run starts a throwaway PostgreSQL)", postgresDSNEnv)
		}
		tb.Skipf("%s not set; .ci/run starts a throwaway PostgreSQL", postgresDSNEnv)
	}
	return admin
}

// require skips (or fails) the test when the backend is not available.
func (b testBackend) require(tb testing.TB) {
	tb.Helper()
	if b.Name == DriverPostgres {
		requirePostgres(tb)
	}
}

func sqliteConfig(tb testing.TB) Config {
	tb.Helper()
	return Config{Driver: DriverSQLite, DSN: filepath.Join(tb.TempDir(), "traceless.db")}
}

// postgresConfig creates a uniquely named database on the server named by
// postgresDSNEnv and drops it at cleanup.
func postgresConfig(tb testing.TB) Config {
	tb.Helper()
	admin := requirePostgres(tb)
	u, err := url.Parse(admin)
	if err != nil {
		tb.Fatalf("parse %s: %v", postgresDSNEnv, err)
	}
	name := "traceless_test_" + randomHex(tb, 8)
	adb := mustGorm(tb, postgres.Open(admin))
	if err := adb.Exec("CREATE DATABASE " + name).Error; err != nil {
		tb.Fatalf("create database %s: %v", name, err)
	}
	// Registered before any Store on the database, so it runs after they
	// are closed (cleanups run last-in first-out).
	tb.Cleanup(func() {
		defer closeGorm(adb)
		if err := adb.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)").Error; err != nil {
			tb.Errorf("drop database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return Config{Driver: DriverPostgres, DSN: u.String()}
}

// MustOpen opens (and migrates) the store and closes it at cleanup.
func MustOpen(tb testing.TB, cfg Config) *Store {
	tb.Helper()
	s, err := Open(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("Open(%s): %v", cfg.Driver, err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

// MustRawDB opens cfg's database without migrating it, for tests that need
// to build an old schema by hand. It is closed at cleanup.
func MustRawDB(tb testing.TB, cfg Config) *gorm.DB {
	tb.Helper()
	switch cfg.Driver {
	case DriverSQLite:
		return mustGorm(tb, sqliteDialector(sqliteDSN(cfg.DSN, sqliteOptions{})))
	case DriverPostgres:
		return mustGorm(tb, postgres.Open(cfg.DSN))
	}
	tb.Fatalf("unknown driver %q", cfg.Driver)
	return nil
}

func mustGorm(tb testing.TB, d gorm.Dialector) *gorm.DB {
	tb.Helper()
	db, err := gorm.Open(d, &gorm.Config{Logger: logger.Discard})
	if err != nil {
		tb.Fatalf("open database: %v", err)
	}
	tb.Cleanup(func() { closeGorm(db) })
	return db
}

func closeGorm(db *gorm.DB) {
	if sqlDB, err := db.DB(); err == nil {
		sqlDB.Close()
	}
}

// MustExec runs SQL statements on db.
func MustExec(tb testing.TB, db *gorm.DB, stmts ...string) {
	tb.Helper()
	for _, s := range stmts {
		if err := db.Exec(s).Error; err != nil {
			tb.Fatalf("exec %q: %v", s, err)
		}
	}
}

// MustReadSchema reads db's columns from the database catalogue.
func MustReadSchema(tb testing.TB, db *gorm.DB) []SchemaColumn {
	tb.Helper()
	cols, err := ReadSchema(context.Background(), db)
	if err != nil {
		tb.Fatalf("ReadSchema: %v", err)
	}
	return cols
}

// MustSchemaDump returns a normalised, driver-specific description of
// everything the schema holds: for SQLite the rows of sqlite_master, for
// PostgreSQL the columns (with type, nullability and default) and indexes of
// the current schema. Two databases with equal dumps have equal schemas.
func MustSchemaDump(tb testing.TB, db *gorm.DB) string {
	tb.Helper()
	var lines []string
	switch db.Dialector.Name() {
	case "sqlite":
		var rows []struct {
			Type, Name string
			SQL        *string
		}
		if err := db.Raw("SELECT type, name, sql FROM sqlite_master ORDER BY type, name").Scan(&rows).Error; err != nil {
			tb.Fatalf("read sqlite_master: %v", err)
		}
		for _, r := range rows {
			if r.SQL == nil {
				lines = append(lines, fmt.Sprintf("-- %s %s (automatic)", r.Type, r.Name))
				continue
			}
			lines = append(lines, fmt.Sprintf("-- %s %s", r.Type, r.Name), normaliseSQL(*r.SQL)+";")
		}
	case "postgres":
		var cols []struct {
			TableName, ColumnName, DataType, IsNullable string
			CharacterMaximumLength                      *int
			ColumnDefault                               *string
		}
		if err := db.Raw(`SELECT table_name, column_name, data_type, is_nullable, character_maximum_length, column_default
			FROM information_schema.columns WHERE table_schema = current_schema()
			ORDER BY table_name, column_name`).Scan(&cols).Error; err != nil {
			tb.Fatalf("read information_schema.columns: %v", err)
		}
		for _, c := range cols {
			l := fmt.Sprintf("column %s.%s %s", c.TableName, c.ColumnName, c.DataType)
			if c.CharacterMaximumLength != nil {
				l += fmt.Sprintf("(%d)", *c.CharacterMaximumLength)
			}
			if c.IsNullable == "NO" {
				l += " NOT NULL"
			}
			if c.ColumnDefault != nil {
				l += " DEFAULT " + *c.ColumnDefault
			}
			lines = append(lines, l)
		}
		var idx []string
		if err := db.Raw(`SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() ORDER BY indexname`).Scan(&idx).Error; err != nil {
			tb.Fatalf("read pg_indexes: %v", err)
		}
		lines = append(lines, idx...)
		var cons []string
		if err := db.Raw(`SELECT conrelid::regclass::text || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
			WHERE connamespace = current_schema()::regnamespace ORDER BY 1`).Scan(&cons).Error; err != nil {
			tb.Fatalf("read pg_constraint: %v", err)
		}
		lines = append(lines, cons...)
	default:
		tb.Fatalf("unknown dialect %q", db.Dialector.Name())
	}
	return strings.Join(lines, "\n") + "\n"
}

// normaliseSQL collapses runs of white space, so indentation in the Go
// source does not show in dumps.
func normaliseSQL(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	s = strings.ReplaceAll(s, "( ", "(")
	return strings.ReplaceAll(s, " )", ")")
}

// columnSet returns table -> sorted column names, leaving out skip.
func columnSet(cols []SchemaColumn, skip ...string) map[string][]string {
	out := map[string][]string{}
	for _, c := range cols {
		if contains(skip, c.Table) {
			continue
		}
		out[c.Table] = append(out[c.Table], c.Name)
	}
	for _, v := range out {
		sort.Strings(v)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func randomHex(tb testing.TB, n int) string {
	tb.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// MustSeedPlans seeds DefaultPlans and returns them by slug.
func MustSeedPlans(tb testing.TB, s *Store) map[string]PlanWithPools {
	tb.Helper()
	ctx := context.Background()
	if _, err := s.SeedPlans(ctx, DefaultPlans()); err != nil {
		tb.Fatalf("SeedPlans: %v", err)
	}
	plans, err := s.ListPlans(ctx, true)
	if err != nil {
		tb.Fatalf("ListPlans: %v", err)
	}
	out := map[string]PlanWithPools{}
	for _, p := range plans {
		out[p.Slug] = p
	}
	return out
}

// MustCreateOwner creates an owner with the given email on planSlug.
func MustCreateOwner(tb testing.TB, s *Store, email, planSlug string) Owner {
	tb.Helper()
	o, err := s.CreateOwner(context.Background(), Owner{Email: email, PasswordHash: "$argon2id$test", Role: RoleOwner}, planSlug)
	if err != nil {
		tb.Fatalf("CreateOwner(%s): %v", email, err)
	}
	return o
}

// MustInsertApp inserts an app directly through the write handle (the app
// repository is not part of this package's tests' subject).
func MustInsertApp(tb testing.TB, s *Store, ownerID, name string) App {
	tb.Helper()
	a := App{ID: uuid.NewString(), OwnerID: ownerID, Name: name}
	if err := s.w.Create(&a).Error; err != nil {
		tb.Fatalf("insert app: %v", err)
	}
	return a
}

// MustInsertDevice inserts a device with the n-th tunnel addresses directly
// through the write handle.
func MustInsertDevice(tb testing.TB, s *Store, appID string, n int) Device {
	tb.Helper()
	d := Device{
		ID:        uuid.NewString(),
		AppID:     appID,
		PublicKey: fmt.Sprintf("%043d=", n),
		IPv4:      fmt.Sprintf("10.64.%d.%d", n/250, n%250+2),
		IPv6:      fmt.Sprintf("fd00::%x", n+2),
		Revision:  int64(n + 1),
	}
	if err := s.w.Create(&d).Error; err != nil {
		tb.Fatalf("insert device: %v", err)
	}
	return d
}

// MustCreatePlan creates a plan with the given limits through the repository.
func MustCreatePlan(tb testing.TB, s *Store, slug string, maxApps, maxDevices int) PlanWithPools {
	tb.Helper()
	p, err := s.CreatePlan(context.Background(), PlanWithPools{Plan: Plan{
		Slug: slug, Name: slug, MaxApps: maxApps, MaxDevices: maxDevices, Currency: "EUR"}})
	if err != nil {
		tb.Fatalf("CreatePlan(%s): %v", slug, err)
	}
	return p
}

// MustCreateApp creates an app through the repository.
func MustCreateApp(tb testing.TB, s *Store, ownerID, name string) App {
	tb.Helper()
	a, err := s.CreateApp(context.Background(), ownerID, name)
	if err != nil {
		tb.Fatalf("CreateApp(%s): %v", name, err)
	}
	return a
}

// MustRegister registers a device with a random key in the app.
func MustRegister(tb testing.TB, s *Store, appID string) Device {
	tb.Helper()
	d, err := s.RegisterDevice(context.Background(), appID, NewDevice{PublicKey: randomKey(tb)})
	if err != nil {
		tb.Fatalf("RegisterDevice: %v", err)
	}
	return d
}

// MustRegisterN registers n devices with random keys in the app, many at
// once so that they are group-committed, and returns them in the order of
// their keys' creation.
func MustRegisterN(tb testing.TB, s *Store, appID string, n int) []Device {
	tb.Helper()
	keys := make([]string, n)
	for i := range keys {
		keys[i] = randomKey(tb)
	}
	devs := make([]Device, n)
	errs := make([]error, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, 2*maxGroup) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				devs[i], errs[i] = s.RegisterDevice(context.Background(), appID, NewDevice{PublicKey: keys[i]})
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		tb.Fatalf("registering %d devices: %v", n, err)
	}
	return devs
}

// MustRevision returns the global sync revision.
func MustRevision(tb testing.TB, s *Store) int64 {
	tb.Helper()
	rev, err := s.Revision(context.Background())
	if err != nil {
		tb.Fatalf("Revision: %v", err)
	}
	return rev
}

// MustCountWhere returns the number of rows of model matching the condition.
func MustCountWhere(tb testing.TB, s *Store, model any, where string, args ...any) int64 {
	tb.Helper()
	var n int64
	if err := s.w.Model(model).Where(where, args...).Count(&n).Error; err != nil {
		tb.Fatalf("count %T where %s: %v", model, where, err)
	}
	return n
}

// MustDeviceCounts checks that every app's device_count equals the number
// of its device rows, and returns app ID -> count.
func MustDeviceCounts(tb testing.TB, s *Store) map[string]int64 {
	tb.Helper()
	var rows []struct {
		ID          string
		DeviceCount int64
		N           int64
	}
	if err := s.w.Raw(`SELECT apps.id, apps.device_count,
			(SELECT COUNT(*) FROM devices WHERE devices.app_id = apps.id) AS n
		FROM apps ORDER BY apps.id`).Scan(&rows).Error; err != nil {
		tb.Fatalf("read device counts: %v", err)
	}
	out := map[string]int64{}
	for _, r := range rows {
		if r.DeviceCount != r.N {
			tb.Errorf("app %s: device_count = %d but %d device rows", r.ID, r.DeviceCount, r.N)
		}
		out[r.ID] = r.N
	}
	return out
}

// MustAllDevices returns every device row ordered by ID.
func MustAllDevices(tb testing.TB, s *Store) []Device {
	tb.Helper()
	var out []Device
	if err := s.w.Order("id").Find(&out).Error; err != nil {
		tb.Fatalf("read devices: %v", err)
	}
	return out
}

// MustAllDevicesOf returns the app's device rows ordered by ID.
func MustAllDevicesOf(tb testing.TB, s *Store, appID string) []Device {
	tb.Helper()
	var out []Device
	if err := s.w.Where("app_id = ?", appID).Order("id").Find(&out).Error; err != nil {
		tb.Fatalf("read devices: %v", err)
	}
	return out
}

// ignoreChangeOwner leaves Change.OwnerID (which nodes a removal concerns,
// the sync layer's business) out of the device tests' comparisons.
var ignoreChangeOwner = cmpopts.IgnoreFields(Change{}, "OwnerID")

// changeLog records what the store hands its commit hooks.
type changeLog struct {
	mu      sync.Mutex
	changes []Change
}

// MustRecordChanges records every commit of s until the test ends.
func MustRecordChanges(tb testing.TB, s *Store) *changeLog {
	tb.Helper()
	l := &changeLog{}
	tb.Cleanup(s.OnCommit(func(ch Change) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.changes = append(l.changes, ch)
	}))
	return l
}

// Take returns the commits recorded since the last Take.
func (l *changeLog) Take() []Change {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.changes
	l.changes = nil
	return out
}

// One returns the Change of the one commit since the last Take (or One),
// failing tb when there was not exactly one.
func (l *changeLog) One(tb testing.TB) Change {
	tb.Helper()
	got := l.Take()
	if len(got) != 1 {
		tb.Fatalf("%d commits reached the hook; want 1: %+v", len(got), got)
	}
	return got[0]
}
