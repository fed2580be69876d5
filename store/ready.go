package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrUnavailable means the database cannot take writes now: the disk is
// full, the file or the server is read-only, the database is gone or does
// not answer. It is the store's condition, not the request's; the same
// request may work later.
var ErrUnavailable = errors.New("storage unavailable")

// IsUnavailable reports whether err is ErrUnavailable or a driver error
// that means the same, for errors that did not pass through the store's
// own translation.
func IsUnavailable(err error) bool {
	return errors.Is(err, ErrUnavailable) || unavailable(err)
}

// unavailable classifies driver errors that say the database cannot
// write, as opposed to errors about the statement or the data.
func unavailable(err error) bool {
	if err == nil {
		return false
	}
	if code, ok := sqliteCode(err); ok {
		switch code {
		case sqliteFull, // disk full
			sqliteIOErr,    // read or write failed (also disk full on some file systems)
			sqliteReadonly, // read-only file or file system
			sqliteCantOpen, // the file, its WAL or its directory went away
			sqliteNomem:
			return true
		}
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && len(pe.Code) == 5 {
		switch pe.Code[:2] {
		case "08", // connection exception
			"53", // insufficient resources: disk full, out of memory, too many connections
			"58": // system error: I/O error, missing file
			return true
		case "57": // operator intervention, except a statement cancelled or timed out
			return pe.Code != "57014"
		}
		return pe.Code == "25006" // read-only transaction: a standby, or default_transaction_read_only
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) || errors.Is(err, driver.ErrBadConn) {
		return true
	}
	var ne *net.OpError
	return errors.As(err, &ne)
}

// readyMinFree is the free space below which a SQLite store is not ready:
// the next WAL growth or checkpoint would fail with "disk full". The write
// in Ready alone does not notice a full disk: after a checkpoint, SQLite
// writes small commits into WAL space the file already has
// (TestStorageFull saw /readyz stay 200 while registrations failed).
const readyMinFree = 1 << 20

// Ready reports whether the store can take writes now: for SQLite, that
// its file is still the one it opened and its file system has room; for
// both drivers, that a write commits. It writes nothing that changes:
// the sync revision is set to itself. An error wraps ErrUnavailable.
func (s *Store) Ready(ctx context.Context) error {
	if s.driver == DriverSQLite {
		fi, err := os.Stat(s.path)
		if err != nil {
			return fmt.Errorf("%w: database file: %w", ErrUnavailable, err)
		}
		if s.opened != nil && !os.SameFile(s.opened, fi) {
			return fmt.Errorf("%w: the database file %s was replaced since it was opened", ErrUnavailable, s.path)
		}
		if free, ok := freeBytes(filepath.Dir(s.path)); ok && free < readyMinFree {
			return fmt.Errorf("%w: %d bytes free on the database's file system", ErrUnavailable, free)
		}
	}
	err := s.w.WithContext(ctx).Exec(`UPDATE sync_state SET revision = revision WHERE id = 1`).Error
	if err != nil {
		return fmt.Errorf("%w: write: %w", ErrUnavailable, err)
	}
	return nil
}
