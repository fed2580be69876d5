package store

import (
	"errors"
	"net/url"
	"strconv"
	"strings"

	"github.com/ncruces/go-sqlite3"
	_ "github.com/ncruces/go-sqlite3/driver" // registers "sqlite3" with database/sql
	"gorm.io/gorm"

	"github.com/traceless-vpn/traceless/store/internal/gormsqlite"
)

// The SQLite driver is github.com/ncruces/go-sqlite3: SQLite compiled to
// WebAssembly and translated to Go, so the binaries need no cgo and link
// statically. BENCHMARKS.md ("The SQLite driver") has the figures that
// chose it over mattn/go-sqlite3 (cgo) and modernc.org/sqlite.

// sqliteDriverName is the database/sql name of the SQLite driver.
const sqliteDriverName = "sqlite3"

// sqliteOptions are the per-connection settings beyond the pragmas every
// SQLite connection of the store has.
type sqliteOptions struct {
	immediate bool // BEGIN IMMEDIATE: take the write lock at BEGIN
	queryOnly bool // refuse writes
	cacheKiB  int  // page cache size; 0 keeps SQLite's default
}

// sqliteTimeLayout is how times are written to and read from SQLite: the
// format of mattn/go-sqlite3, the store's earlier driver, so databases it
// wrote read the same, and times compare in SQL as they did (the store
// writes UTC, "+00:00"). It keeps nanoseconds; the driver's own "sqlite"
// format would drop everything below the second.
const sqliteTimeLayout = "2006-01-02 15:04:05.999999999-07:00"

// sqliteDSN is the DSN of a connection to path. Every connection has
// foreign keys, secure_delete (deleted content is overwritten), WAL,
// synchronous=NORMAL and a 10 s busy timeout; busy_timeout comes first,
// so that switching to WAL waits for a lock.
func sqliteDSN(path string, o sqliteOptions) string {
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=secure_delete(1)" +
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)" +
		"&_timefmt=" + strings.ReplaceAll(url.QueryEscape(sqliteTimeLayout), "+", "%20")
	if o.immediate {
		dsn += "&_txlock=immediate"
	}
	if o.queryOnly {
		dsn += "&_pragma=query_only(1)"
	}
	if o.cacheKiB > 0 {
		dsn += "&_pragma=cache_size(-" + strconv.Itoa(o.cacheKiB) + ")"
	}
	return dsn
}

// sqliteDialector is gorm's dialector for dsn.
func sqliteDialector(dsn string) gorm.Dialector {
	return gormsqlite.New(gormsqlite.Config{DriverName: sqliteDriverName, DSN: dsn})
}

// sqliteCode is the primary result code of a SQLite error in err.
func sqliteCode(err error) (int, bool) {
	var se *sqlite3.Error
	if errors.As(err, &se) {
		return int(se.Code()), true
	}
	var code sqlite3.ErrorCode
	if errors.As(err, &code) {
		return int(code), true
	}
	var ext sqlite3.ExtendedErrorCode
	if errors.As(err, &ext) {
		return int(ext) & 0xff, true
	}
	return 0, false
}

// SQLite's primary result codes (https://sqlite.org/rescode.html).
const (
	sqliteBusy       = int(sqlite3.BUSY)
	sqliteLocked     = int(sqlite3.LOCKED)
	sqliteNomem      = int(sqlite3.NOMEM)
	sqliteReadonly   = int(sqlite3.READONLY)
	sqliteIOErr      = int(sqlite3.IOERR)
	sqliteFull       = int(sqlite3.FULL)
	sqliteCantOpen   = int(sqlite3.CANTOPEN)
	sqliteConstraint = int(sqlite3.CONSTRAINT)
)
