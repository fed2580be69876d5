package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/ncruces/go-sqlite3"
)

// TestUnavailableErrors: the driver errors that mean "the database cannot
// write now" become ErrUnavailable; errors about a statement or the data
// do not.
func TestUnavailableErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"sqlite full", sqlite3.FULL, true},
		{"sqlite io", sqlite3.IOERR_WRITE, true},
		{"sqlite read-only", sqlite3.READONLY, true},
		{"sqlite cannot open", sqlite3.CANTOPEN, true},
		{"sqlite wrapped", fmt.Errorf("register: %w", sqlite3.FULL), true},
		{"sqlite constraint", sqlite3.CONSTRAINT, false},
		{"sqlite syntax", sqlite3.ERROR, false},
		{"postgres disk full", &pgconn.PgError{Code: "53100"}, true},
		{"postgres too many connections", &pgconn.PgError{Code: "53300"}, true},
		{"postgres read-only", &pgconn.PgError{Code: "25006"}, true},
		{"postgres shutting down", &pgconn.PgError{Code: "57P01"}, true},
		{"postgres starting up", &pgconn.PgError{Code: "57P03"}, true},
		{"postgres io", &pgconn.PgError{Code: "58030"}, true},
		{"postgres connection", &pgconn.PgError{Code: "08006"}, true},
		{"postgres statement timeout", &pgconn.PgError{Code: "57014"}, false},
		{"postgres unique", &pgconn.PgError{Code: "23505"}, false},
		{"postgres syntax", &pgconn.PgError{Code: "42601"}, false},
		{"network", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, true},
		{"plain", errors.New("something"), false},
		{"context", context.DeadlineExceeded, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsUnavailable(tc.err); got != tc.want {
				t.Errorf("IsUnavailable(%v) = %v, want %v", tc.err, got, tc.want)
			}
			if got := errors.Is(translate(tc.err), ErrUnavailable); got != tc.want {
				t.Errorf("translate(%v) is ErrUnavailable: %v, want %v", tc.err, got, tc.want)
			}
		})
	}
	if err := translate(sqlite3.CONSTRAINT); !errors.Is(err, ErrConflict) {
		t.Errorf("a constraint error is no longer a conflict: %v", err)
	}
}

// TestReadyWrites: Ready answers nil on a healthy store, and changes no
// revision.
func TestReadyWrites(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		before, err := s.Revision(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Ready(ctx); err != nil {
			t.Fatalf("Ready = %v", err)
		}
		if after, _ := s.Revision(ctx); after != before {
			t.Errorf("Ready changed the revision from %d to %d", before, after)
		}
	})
}
