package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Drivers accepted by Open.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// Errors returned by the repositories. Callers compare with errors.Is.
var (
	ErrNotFound  = errors.New("not found")
	ErrConflict  = errors.New("conflict")
	ErrPlanLimit = errors.New("plan limit reached")
	ErrLegalHold = errors.New("legal hold")
	// ErrPaymentRequired is a plan limit reached by an owner whose payment
	// is overdue past the grace period: they are held to the free plan's
	// limits until they pay. errors.Is(err, ErrPlanLimit) holds for it too.
	ErrPaymentRequired = fmt.Errorf("payment required: held to the free plan's limits: %w", ErrPlanLimit)
)

// ValidationError reports a field that fails a model's Validate.
type ValidationError struct {
	Field   string
	Message string
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Message }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Config selects the database.
type Config struct {
	// Driver is DriverSQLite or DriverPostgres.
	Driver string
	// DSN is a file path for SQLite and a libpq URL or key/value string for
	// PostgreSQL.
	DSN string
	// MaxReaders bounds the SQLite reader pool (default 4). SQLite always has
	// exactly one writer connection.
	MaxReaders int
	// TunnelIPv4 and TunnelIPv6 are the networks device addresses come from
	// (DefaultTunnelIPv4 and DefaultTunnelIPv6 when zero).
	TunnelIPv4, TunnelIPv6 netip.Prefix
	// OnCommit, when set, is the first commit hook (see Store.OnCommit).
	OnCommit func(Change)
}

// ParseDSN splits a URL such as sqlite://./data/traceless.db or
// postgres://user@host/db into a Config.
func ParseDSN(dsn string) (Config, error) {
	switch {
	case strings.HasPrefix(dsn, "sqlite://"):
		p := strings.TrimPrefix(dsn, "sqlite://")
		if p == "" {
			return Config{}, errors.New("sqlite DSN has no path")
		}
		return Config{Driver: DriverSQLite, DSN: p}, nil
	case strings.HasPrefix(dsn, "sqlite:"):
		return ParseDSN("sqlite://" + strings.TrimPrefix(dsn, "sqlite:"))
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		if _, err := url.Parse(dsn); err != nil {
			return Config{}, fmt.Errorf("postgres DSN: %w", err)
		}
		return Config{Driver: DriverPostgres, DSN: dsn}, nil
	default:
		return Config{}, errors.New("DSN must start with sqlite:// or postgres://")
	}
}

// Store is the handle on the database. Writes go through w; reads that need
// no transaction go through r (on PostgreSQL both are the same pool).
type Store struct {
	w, r   *gorm.DB
	driver string
	path   string      // SQLite file path
	opened os.FileInfo // SQLite: the file as opened, for Ready
	dsn    string      // PostgreSQL DSN, for the LISTEN connection

	tunnel4, tunnel6 netip.Prefix
	reg              registrar
	hot              hotStmts
	hooks            commitHooks

	ckpt     *sql.DB // SQLite: the background checkpointer's connection
	ckptStop context.CancelFunc
	ckptDone chan struct{}
	ckptKick chan struct{} // SQLite: a commit found the WAL past WALLimit
	walPath  string
}

// Open connects, applies the SQLite pragmas, and runs pending migrations.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	gcfg := &gorm.Config{
		Logger:                 logger.Discard, // gorm's logger would print SQL and values
		SkipDefaultTransaction: true,
		NowFunc:                func() time.Time { return time.Now().UTC() },
		TranslateError:         false,
		// Cache prepared statements: the hot paths run the same few
		// statements, and preparing them dominates SQLite's cost otherwise.
		PrepareStmt: true,
	}
	s := &Store{driver: cfg.Driver, dsn: cfg.DSN, tunnel4: cfg.TunnelIPv4, tunnel6: cfg.TunnelIPv6}
	if cfg.OnCommit != nil {
		s.OnCommit(cfg.OnCommit)
	}
	if !s.tunnel4.IsValid() {
		s.tunnel4 = DefaultTunnelIPv4
	}
	if !s.tunnel6.IsValid() {
		s.tunnel6 = DefaultTunnelIPv6
	}
	if !s.tunnel4.Addr().Is4() || s.tunnel4.Bits() > 30 || !s.tunnel6.Addr().Is6() || s.tunnel6.Bits() > 120 {
		return nil, fmt.Errorf("tunnel networks must be an IPv4 prefix of /30 or wider and an IPv6 prefix of /120 or wider")
	}
	switch cfg.Driver {
	case DriverSQLite:
		if err := s.openSQLite(ctx, cfg, gcfg); err != nil {
			return nil, err
		}
	case DriverPostgres:
		db, err := gorm.Open(postgres.Open(cfg.DSN), gcfg)
		if err != nil {
			return nil, fmt.Errorf("open postgres: %w", err)
		}
		sqlDB, err := db.DB()
		if err != nil {
			return nil, err
		}
		sqlDB.SetMaxOpenConns(16)
		sqlDB.SetMaxIdleConns(16)
		s.w, s.r = db, db
	default:
		return nil, fmt.Errorf("unknown driver %q", cfg.Driver)
	}
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := migrate(s.w.WithContext(ctx)); err != nil {
		s.Close()
		return nil, err
	}
	if cfg.Driver == DriverSQLite {
		walOwnerOnly(s.path)
		// The readers connected (Ping) before the migrations changed the
		// schema. SQLite re-prepares a statement whose schema changed, but
		// the driver fails the first query whose column count changed that
		// way ("bad parameter or other API misuse"); new connections read
		// the schema as migrated.
		rdb, err := s.r.DB()
		if err != nil {
			s.Close()
			return nil, err
		}
		n := cfg.MaxReaders
		if n <= 0 {
			n = 4
		}
		rdb.SetMaxIdleConns(0) // closes the idle connections
		rdb.SetMaxIdleConns(n)
	}
	wdb, err := s.w.DB()
	if err != nil {
		s.Close()
		return nil, err
	}
	s.hot.db, s.hot.pg = wdb, cfg.Driver == DriverPostgres
	return s, nil
}

func (s *Store) openSQLite(ctx context.Context, cfg Config, gcfg *gorm.Config) error {
	path := cfg.DSN
	if path == ":memory:" {
		return errors.New("sqlite: use a file path; an in-memory database cannot be shared by the writer and readers")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create database directory: %w", err)
		}
	}
	s.path = path
	// Create the database, its shared-memory file and its WAL owner-only
	// before SQLite does: the driver creates files with mode 0666 less the
	// umask. The WAL is created only for a database already in WAL mode:
	// an empty WAL appearing while another connection switches a new
	// database to WAL makes that connection fail with a disk I/O error
	// (TestOpenConcurrently); a new database's WAL is narrowed after the
	// migrations, its first writes, which hold no one's data. SQLite
	// deletes the WAL when the last connection closes; so this is done
	// again once the writer is connected, before anything is written.
	ownerOnly(path, path+"-shm")
	walOwnerOnly(path)
	// secure_delete overwrites deleted content; WAL lets readers run beside the
	// single writer; _txlock=immediate takes the write lock at BEGIN so two
	// writers never deadlock on lock upgrade. The writer's page cache (64 MiB)
	// holds the hot index pages of a million devices, so a registration's
	// random index probes stay in memory as the table grows; readers get
	// 16 MiB each.
	w, err := openSQLiteDB(ctx, sqliteDSN(path, sqliteOptions{immediate: true, cacheKiB: 65536}), gcfg)
	if err != nil {
		return fmt.Errorf("open sqlite: %w", err)
	}
	wdb, err := w.DB()
	if err != nil {
		return err
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	ownerOnly(path + "-shm")
	walOwnerOnly(path)
	r, err := openSQLiteDB(ctx, sqliteDSN(path, sqliteOptions{queryOnly: true, cacheKiB: 16384}), gcfg)
	if err != nil {
		wdb.Close()
		return fmt.Errorf("open sqlite reader: %w", err)
	}
	rdb, err := r.DB()
	if err != nil {
		return err
	}
	n := cfg.MaxReaders
	if n <= 0 {
		n = 4
	}
	rdb.SetMaxOpenConns(n)
	rdb.SetMaxIdleConns(n)
	s.w, s.r = w, r
	s.opened, _ = os.Stat(path)
	return s.startCheckpointer(path)
}

// ownerOnly creates each file that is missing with mode 0600 and takes
// group and other access away from each that exists.
func ownerOnly(names ...string) {
	for _, name := range names {
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			continue // SQLite reports what is wrong with the path
		}
		if fi, err := f.Stat(); err == nil && fi.Mode().Perm()&0o077 != 0 {
			_ = f.Chmod(fi.Mode().Perm() &^ 0o077)
		}
		f.Close()
	}
}

// walOwnerOnly makes the WAL of the database at path owner-only: created
// so (ownerOnly) when the database is in WAL mode, narrowed if it exists
// otherwise.
func walOwnerOnly(path string) {
	hdr := make([]byte, 20)
	if f, err := os.Open(path); err == nil {
		n, _ := io.ReadFull(f, hdr)
		f.Close()
		// Bytes 18 and 19 of the header: the file format's write and read
		// versions, 2 in WAL mode.
		if n == len(hdr) && hdr[18] == 2 && hdr[19] == 2 {
			ownerOnly(path + "-wal")
			return
		}
	}
	narrow(path + "-wal")
}

// narrow takes group and other access away from each file that exists.
func narrow(names ...string) {
	for _, name := range names {
		if fi, err := os.Stat(name); err == nil && fi.Mode().Perm()&0o077 != 0 {
			_ = os.Chmod(name, fi.Mode().Perm()&^0o077)
		}
	}
}

// checkpointEvery is how often the background checkpointer copies the WAL
// into the database file.
const checkpointEvery = 250 * time.Millisecond

// WALLimit bounds the SQLite WAL. Under sustained writes with readers
// always active, PASSIVE checkpoints never catch up, SQLite never starts
// the WAL over, and it grows without end (370 MiB in 10 s of
// registrations at full speed beside a 7 MiB database). So the WAL file
// is cut back to WALLimit whenever SQLite starts it over
// (journal_size_limit), and a commit that finds it larger wakes the
// checkpointer, which then runs a RESTART checkpoint: it holds writers
// back while it copies the WAL and waits for the readers of older
// snapshots, so that the next commit starts the WAL over. With
// registrations at full speed the WAL stays under 48 MiB
// (BenchmarkWALSustained, TestWALBounded; BENCHMARKS.md). The limit
// trades size for speed: each restart writes the WAL's pages into the
// database and syncs it, and a larger WAL holds more rewrites of the same
// pages (with readers always active, 8 MiB cost half the registration
// rate of 32 MiB). TRUNCATE instead of RESTART cost more still: the file
// is cut to nothing and grown again every time.
const WALLimit = 32 << 20

// startCheckpointer takes WAL checkpoints off the commit path. SQLite
// otherwise checkpoints inside whichever commit crosses 1,000 WAL pages,
// and that commit — with every registration batched behind it — waits
// for the database file to be written and synced. The writer's automatic
// checkpoints are turned off and a connection of its own runs a PASSIVE
// checkpoint, which never blocks the writer, every checkpointEvery or
// when a commit finds the WAL past WALLimit (walCommitted); when the WAL
// holds more than WALLimit all the same, a RESTART one.
func (s *Store) startCheckpointer(path string) error {
	if err := s.w.Exec("PRAGMA wal_autocheckpoint = 0").Error; err != nil {
		return fmt.Errorf("turn off automatic checkpoints: %w", err)
	}
	var limit int64
	if err := s.w.Raw(fmt.Sprintf("PRAGMA journal_size_limit = %d", WALLimit)).Scan(&limit).Error; err != nil {
		return fmt.Errorf("set journal_size_limit: %w", err)
	}
	s.walPath, s.ckptKick = path+"-wal", make(chan struct{}, 1)
	db, err := sql.Open(sqliteDriverName, sqliteDSN(path, sqliteOptions{}))
	if err != nil {
		return fmt.Errorf("open checkpoint connection: %w", err)
	}
	db.SetMaxOpenConns(1)
	s.ckpt = db
	ctx, cancel := context.WithCancel(context.Background())
	s.ckptStop = cancel
	s.ckptDone = make(chan struct{})
	go func() {
		defer close(s.ckptDone)
		t := time.NewTicker(checkpointEvery)
		defer t.Stop()
		var pageSize int64
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-s.ckptKick:
			}
			if pageSize == 0 {
				_ = db.QueryRowContext(ctx, "PRAGMA page_size").Scan(&pageSize)
			}
			var busy, log, done int64
			if db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &log, &done) != nil {
				continue
			}
			// A WAL frame is a page and its 24-byte header. The RESTART
			// checkpoint runs on the writer's own connection: holding it,
			// no write is in progress, and the next waits. (On a
			// connection of its own it would wait for the writer lock,
			// which back-to-back group commits hardly ever leave free.)
			if pageSize > 0 && log*(pageSize+24) >= WALLimit {
				_ = s.w.WithContext(ctx).Raw("PRAGMA wal_checkpoint(RESTART)").Row().Scan(&busy, &log, &done)
			}
		}
	}()
	return nil
}

// walCommitted wakes the checkpointer when the WAL file has grown past
// WALLimit (journal_size_limit keeps it at most that after SQLite starts
// it over, so a larger file is one that is not being started over). One
// stat(2) per commit; registrations commit in batches.
func (s *Store) walCommitted() {
	if s.ckptKick == nil {
		return
	}
	if fi, err := os.Stat(s.walPath); err == nil && fi.Size() > WALLimit {
		select {
		case s.ckptKick <- struct{}{}:
		default:
		}
	}
}

// openSQLiteDB opens and pings dsn. Switching a new database to WAL needs
// an exclusive lock, and SQLite reports SQLITE_BUSY for it at once instead
// of waiting for the busy timeout; so when another process is creating the
// same database, the open is retried for up to openBusyTimeout.
func openSQLiteDB(ctx context.Context, dsn string, gcfg *gorm.Config) (*gorm.DB, error) {
	deadline := time.Now().Add(openBusyTimeout)
	for {
		db, err := gorm.Open(sqliteDialector(dsn), gcfg)
		if err == nil {
			return db, nil
		}
		if db != nil {
			if sqlDB, dbErr := db.DB(); dbErr == nil {
				sqlDB.Close()
			}
		}
		code, ok := sqliteCode(err)
		if !ok || (code != sqliteBusy && code != sqliteLocked) || time.Now().After(deadline) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, errors.Join(err, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// openBusyTimeout matches the _busy_timeout of the SQLite connections.
const openBusyTimeout = 10 * time.Second

// Driver reports which database the store talks to.
func (s *Store) Driver() string { return s.driver }

// TunnelNetworks returns the IPv4 and IPv6 networks devices are numbered from.
func (s *Store) TunnelNetworks() (netip.Prefix, netip.Prefix) { return s.tunnel4, s.tunnel6 }

// Path is the SQLite database file ("" on PostgreSQL).
func (s *Store) Path() string { return s.path }

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	db, err := s.r.DB()
	if err != nil {
		return err
	}
	if err := db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// Checkpoint moves the SQLite WAL into the main file and truncates it, so
// that deleted (and, with secure_delete, overwritten) pages leave no copy in
// the WAL. It is a no-op on PostgreSQL.
func (s *Store) Checkpoint(ctx context.Context) error {
	if s.driver != DriverSQLite {
		return nil
	}
	// The pragma returns a row (busy, log, checkpointed); it must be read,
	// or the cached statement stays active and blocks the next COMMIT.
	// A reader or the background checkpointer may hold the WAL for a
	// moment; try again for up to two seconds.
	for try := 0; ; try++ {
		var res struct{ Busy, Log, Checkpointed int }
		if err := s.w.WithContext(ctx).Raw("PRAGMA wal_checkpoint(TRUNCATE)").Scan(&res).Error; err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
		if res.Busy == 0 {
			return nil
		}
		if try == 40 {
			return errors.New("checkpoint: database busy; WAL not truncated")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Close releases the connections.
func (s *Store) Close() error {
	s.reg.wg.Wait() // let queued registrations finish
	s.hot.close()
	var errs []error
	if s.ckpt != nil {
		s.ckptStop()
		<-s.ckptDone
		errs = append(errs, s.ckpt.Close())
	}
	for _, g := range []*gorm.DB{s.w, s.r} {
		if g == nil {
			continue
		}
		if db, err := g.DB(); err == nil {
			errs = append(errs, db.Close())
		}
		if s.w == s.r {
			break
		}
	}
	return errors.Join(errs...)
}

// write runs fn in a write transaction that changes nothing nodes carry;
// once it commits, the commit hooks are called with an empty Change.
func (s *Store) write(ctx context.Context, fn func(tx *gorm.DB) error) error {
	_, err := s.writeChange(ctx, func(tx *gorm.DB, _ *Change) error { return fn(tx) })
	return err
}

// writeChange runs fn in a write transaction; fn records in ch what nodes
// must learn. Once the transaction commits, ch goes to the commit hooks.
// Every write of the store goes through here, or through hotWrite, its
// twin on the prepared statements of device admission.
func (s *Store) writeChange(ctx context.Context, fn func(tx *gorm.DB, ch *Change) error) (Change, error) {
	var ch Change
	err := translate(s.w.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		ch = Change{}
		return fn(tx, &ch)
	}))
	if err != nil {
		return Change{}, err
	}
	s.walCommitted()
	s.committed(ch)
	return ch, nil
}

// read returns the reader handle bound to ctx.
func (s *Store) read(ctx context.Context) *gorm.DB { return s.r.WithContext(ctx) }

// translate maps driver errors to the store's sentinels.
func translate(err error) error {
	if err == nil {
		return nil
	}
	var ve *ValidationError
	if errors.As(err, &ve) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) ||
		errors.Is(err, ErrPlanLimit) || errors.Is(err, ErrLegalHold) || errors.Is(err, ErrUnavailable) ||
		errors.Is(err, ErrTicketInvalid) {
		return err
	}
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return ErrNotFound
	}
	if unavailable(err) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if code, ok := sqliteCode(err); ok && code == sqliteConstraint {
		return fmt.Errorf("%w: %s", ErrConflict, constraintName(err.Error()))
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "23505" || pe.Code == "23503") {
		return fmt.Errorf("%w: %s", ErrConflict, pe.ConstraintName)
	}
	return err
}

// constraintName keeps the column list of a SQLite constraint message
// ("UNIQUE constraint failed: owners.email") and drops anything else.
func constraintName(msg string) string {
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		return msg[i+2:]
	}
	return "constraint"
}
