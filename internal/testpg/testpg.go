// Package testpg gives tests a fresh PostgreSQL database on the server
// named by TRACELESS_TEST_POSTGRES_DSN (which .ci/run starts). Without the
// variable a test skips with the reason — or fails when CI=true, because CI
// must exercise PostgreSQL.
//
// Only tests import it.
package testpg

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

// EnvDSN names the variable holding the admin DSN of the test server.
const EnvDSN = "TRACELESS_TEST_POSTGRES_DSN"

// Database creates a uniquely named database, drops it when the test ends,
// and returns its DSN.
func Database(tb testing.TB) string {
	tb.Helper()
	admin := os.Getenv(EnvDSN)
	if admin == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("%s not set, but CI=true: CI must run the PostgreSQL tests (.ci/run starts a throwaway PostgreSQL)", EnvDSN)
		}
		tb.Skipf("%s not set; .ci/run starts a throwaway PostgreSQL", EnvDSN)
	}
	u, err := url.Parse(admin)
	if err != nil {
		tb.Fatalf("parse %s: %v", EnvDSN, err)
	}
	var b [8]byte
	rand.Read(b[:])
	name := "traceless_test_" + hex.EncodeToString(b[:])
	db, err := sql.Open("pgx", admin)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := db.ExecContext(context.Background(), "CREATE DATABASE "+name); err != nil {
		db.Close()
		tb.Fatalf("create database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		defer db.Close()
		if _, err := db.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Errorf("drop database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}
