package store

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gorm.io/gorm"
)

// MustManifest returns the generated privacy manifest.
func MustManifest(tb testing.TB) Manifest {
	tb.Helper()
	m, err := GenerateManifest()
	if err != nil {
		tb.Fatalf("GenerateManifest: %v", err)
	}
	return m
}

// TestSchemaGuard reads the schema the migrations really create back from
// the database catalogue and checks it against the manifest.
func TestSchemaGuard(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		cols := MustReadSchema(t, s.w)
		if len(cols) == 0 {
			t.Fatal("ReadSchema returned no columns")
		}
		if diff := cmp.Diff([]Violation(nil), Guard(cols, MustManifest(t))); diff != "" {
			t.Errorf("Guard found violations (-want +got):\n%s", diff)
		}
		vs, err := s.CheckSchema(t.Context())
		if err != nil {
			t.Fatalf("CheckSchema: %v", err)
		}
		if diff := cmp.Diff([]Violation(nil), vs); diff != "" {
			t.Errorf("CheckSchema (-want +got):\n%s", diff)
		}
	})
}

// TestReadSchemaTypes checks that ReadSchema lists only this database's
// tables and reports time columns with a type the guard recognises.
func TestReadSchemaTypes(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		cols := MustReadSchema(t, s.w)
		var tables []string
		for _, c := range cols {
			if len(tables) == 0 || tables[len(tables)-1] != c.Table {
				tables = append(tables, c.Table)
			}
			if c.Type == "" {
				t.Errorf("%s.%s has no type", c.Table, c.Name)
			}
		}
		want := []string{"alert_history", "alert_outbox", "alert_settings", "api_keys", "apps", "devices", "enrollment_tokens", "nodes", "owner_billing", "owner_identities", "owner_tokens", "owners", "plan_pools", "plans", "pools",
			"recovery_codes", "registration_tickets", "schema_migrations", "sync_state", "totp_credentials"}
		if diff := cmp.Diff(want, tables); diff != "" {
			t.Errorf("tables (-want +got):\n%s", diff)
		}
		if s.Driver() == DriverPostgres {
			// Tables of another schema are not this store's; views store nothing.
			MustExec(t, s.w, "CREATE SCHEMA other", "CREATE TABLE other.devices (client_ip VARCHAR(45))",
				"CREATE VIEW device_keys AS SELECT public_key FROM devices")
			if diff := cmp.Diff(cols, MustReadSchema(t, s.w)); diff != "" {
				t.Errorf("ReadSchema with another schema and a view (-want +got):\n%s", diff)
			}
		}
		for _, c := range cols {
			if c.Table == "owners" && c.Name == "created_at" {
				if !strings.Contains(c.Type, "TIME") && !strings.Contains(c.Type, "DATE") {
					t.Errorf("owners.created_at has type %q; the guard would not see a time column", c.Type)
				}
			}
		}
	})
}

// TestSchemaGuardCatches proves the guard can fail: each case adds to a
// migrated database what the no-logs promise forbids and asserts the exact
// violations the guard reports.
func TestSchemaGuardCatches(t *testing.T) {
	const notExplained = "not explained by the privacy manifest"
	tests := []struct {
		name string
		ddl  []string
		want []Violation
	}{
		{
			name: "handshake time",
			ddl:  []string{"ALTER TABLE devices ADD COLUMN last_handshake BIGINT"},
			want: []Violation{
				{"devices", "last_handshake", notExplained},
				{"devices", "last_handshake", "looks like a handshake time"},
			},
		},
		{
			name: "client address",
			ddl:  []string{"ALTER TABLE devices ADD COLUMN client_ip VARCHAR(45)"},
			want: []Violation{
				{"devices", "client_ip", notExplained},
				{"devices", "client_ip", "looks like an IP address"},
			},
		},
		{
			name: "client address without separator",
			ddl:  []string{"ALTER TABLE owners ADD COLUMN remoteaddr VARCHAR(45)"},
			want: []Violation{
				{"owners", "remoteaddr", notExplained},
				{"owners", "remoteaddr", "looks like an IP address"},
			},
		},
		{
			name: "byte counter",
			ddl:  []string{"ALTER TABLE devices ADD COLUMN rx_bytes BIGINT"},
			want: []Violation{
				{"devices", "rx_bytes", notExplained},
				{"devices", "rx_bytes", "looks like a byte counter"},
			},
		},
		{
			name: "user agent",
			ddl:  []string{"ALTER TABLE devices ADD COLUMN user_agent VARCHAR(200)"},
			want: []Violation{
				{"devices", "user_agent", notExplained},
				{"devices", "user_agent", "looks like a user agent"},
			},
		},
		{
			name: "device timestamp",
			ddl:  []string{"ALTER TABLE devices ADD COLUMN created_at {{ts}}"},
			want: []Violation{
				{"devices", "created_at", notExplained},
				{"devices", "created_at", "time column on an end-user table"},
			},
		},
		{
			name: "device timestamp with an innocent name",
			ddl:  []string{"ALTER TABLE devices ADD COLUMN note {{ts}}"},
			want: []Violation{
				{"devices", "note", notExplained},
				{"devices", "note", "time column on an end-user table"},
			},
		},
		{
			name: "card data beside the billing references",
			ddl:  []string{"ALTER TABLE owner_billing ADD COLUMN card_last4 VARCHAR(4)"},
			want: []Violation{
				{"owner_billing", "card_last4", notExplained},
				{"owner_billing", "card_last4", "looks like payment data kept by the payment provider"},
			},
		},
		{
			name: "billing address and invoices",
			ddl: []string{"ALTER TABLE owner_billing ADD COLUMN billing_address VARCHAR(300)",
				"ALTER TABLE owner_billing ADD COLUMN last_invoice_id VARCHAR(64)"},
			want: []Violation{
				{"owner_billing", "billing_address", notExplained},
				{"owner_billing", "billing_address", "looks like payment data kept by the payment provider"},
				{"owner_billing", "last_invoice_id", notExplained},
				{"owner_billing", "last_invoice_id", "looks like payment data kept by the payment provider"},
			},
		},
		{
			name: "payment history time",
			ddl:  []string{"ALTER TABLE owner_billing ADD COLUMN paid_at {{ts}}"},
			want: []Violation{
				{"owner_billing", "paid_at", notExplained},
				{"owner_billing", "paid_at", "time column not on the allow list"},
			},
		},
		{
			name: "soft delete",
			ddl:  []string{"ALTER TABLE api_keys ADD COLUMN deleted_at {{ts}}"},
			want: []Violation{
				{"api_keys", "deleted_at", notExplained},
				{"api_keys", "deleted_at", "looks like a soft delete"},
				{"api_keys", "deleted_at", "time column not on the allow list"},
			},
		},
		{
			name: "session",
			ddl:  []string{"ALTER TABLE owners ADD COLUMN session_id VARCHAR(64)"},
			want: []Violation{
				{"owners", "session_id", notExplained},
				{"owners", "session_id", "looks like a session"},
			},
		},
		{
			name: "device endpoint",
			ddl:  []string{"ALTER TABLE devices ADD COLUMN endpoint VARCHAR(300)"},
			want: []Violation{
				{"devices", "endpoint", notExplained},
				{"devices", "endpoint", "looks like an endpoint"},
			},
		},
		{
			name: "activity time on an account",
			ddl:  []string{"ALTER TABLE owners ADD COLUMN last_seen_at {{ts}}"},
			want: []Violation{
				{"owners", "last_seen_at", notExplained},
				{"owners", "last_seen_at", "looks like an activity time"},
				{"owners", "last_seen_at", "time column not on the allow list"},
			},
		},
		{
			name: "time column outside the allow list",
			ddl:  []string{"ALTER TABLE pools ADD COLUMN updated_at {{ts}}"},
			want: []Violation{
				{"pools", "updated_at", notExplained},
				{"pools", "updated_at", "time column not on the allow list"},
			},
		},
		{
			name: "undocumented harmless column",
			ddl:  []string{"ALTER TABLE plans ADD COLUMN colour VARCHAR(10)"},
			want: []Violation{
				{"plans", "colour", notExplained},
			},
		},
		{
			name: "new table",
			ddl:  []string{"CREATE TABLE connection_log (id INTEGER PRIMARY KEY, device_id VARCHAR(36), note VARCHAR(10))"},
			want: []Violation{
				{"connection_log", "", "table not in the privacy manifest"},
				{"connection_log", "device_id", notExplained},
				{"connection_log", "id", notExplained},
				{"connection_log", "note", notExplained},
			},
		},
		{
			name: "new table with a forbidden column",
			ddl:  []string{"CREATE TABLE peer_stats (peer VARCHAR(44), tx_bytes BIGINT, seen {{ts}})"},
			want: []Violation{
				{"peer_stats", "", "table not in the privacy manifest"},
				{"peer_stats", "peer", notExplained},
				{"peer_stats", "seen", notExplained},
				{"peer_stats", "seen", "time column not on the allow list"},
				{"peer_stats", "tx_bytes", notExplained},
				{"peer_stats", "tx_bytes", "looks like a byte counter"},
			},
		},
	}
	errRollback := errors.New("rollback")
	eachStore(t, func(t *testing.T, s *Store) {
		m := MustManifest(t)
		ts := "DATETIME"
		if s.Driver() == DriverPostgres {
			ts = "TIMESTAMPTZ"
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				// DDL is transactional on both databases: each case sees the
				// migrated schema plus its own change, which is rolled back.
				var got []Violation
				err := s.w.Transaction(func(tx *gorm.DB) error {
					for _, stmt := range tt.ddl {
						MustExec(t, tx, strings.ReplaceAll(stmt, "{{ts}}", ts))
					}
					got = Guard(MustReadSchema(t, tx), m)
					return errRollback
				})
				if !errors.Is(err, errRollback) {
					t.Fatalf("transaction: %v", err)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("Guard (-want +got):\n%s", diff)
				}
			})
		}
		if diff := cmp.Diff([]Violation(nil), Guard(MustReadSchema(t, s.w), m)); diff != "" {
			t.Errorf("Guard after the cases were rolled back (-want +got):\n%s", diff)
		}
	})
}

// TestGuardPatterns checks the forbidden patterns on their own: each column
// is explained by the manifest (as if a developer had added a model field
// with a purpose tag), so only the pattern and time checks can object.
func TestGuardPatterns(t *testing.T) {
	tests := []struct {
		table, column, typ string
		want               []string // reasons; nil when the column is fine
	}{
		// Caught.
		{"devices", "last_handshake", "BIGINT", []string{"looks like a handshake time"}},
		{"devices", "handshake_unix", "BIGINT", []string{"looks like a handshake time"}},
		{"devices", "client_ip", "VARCHAR", []string{"looks like an IP address"}},
		{"devices", "clientip", "VARCHAR", []string{"looks like an IP address"}},
		{"devices", "src_ip", "VARCHAR", []string{"looks like an IP address"}},
		{"devices", "ip_address", "VARCHAR", []string{"looks like an IP address"}},
		{"devices", "ipaddr", "VARCHAR", []string{"looks like an IP address"}},
		{"devices", "remote_addr", "VARCHAR", []string{"looks like an IP address"}},
		{"devices", "real_ip", "VARCHAR", []string{"looks like an IP address"}},
		{"apps", "peer_endpoint", "VARCHAR", []string{"looks like an endpoint"}},
		{"devices", "rx_bytes", "BIGINT", []string{"looks like a byte counter"}},
		{"devices", "rxbytes", "BIGINT", []string{"looks like a byte counter"}},
		{"devices", "bytes_sent", "BIGINT", []string{"looks like a byte counter"}},
		{"devices", "packet_count", "BIGINT", []string{"looks like a byte counter"}},
		{"devices", "bandwidth", "BIGINT", []string{"looks like a byte counter"}},
		{"owners", "last_login", "VARCHAR", []string{"looks like an activity time"}},
		{"devices", "lastseen", "BIGINT", []string{"looks like an activity time", "time column on an end-user table"}},
		{"devices", "connections", "BIGINT", []string{"looks like an activity time"}},
		{"devices", "connected", "BOOLEAN", []string{"looks like an activity time"}},
		{"devices", "useragent", "VARCHAR", []string{"looks like a user agent"}},
		{"devices", "ua", "VARCHAR", []string{"looks like a user agent"}},
		{"devices", "session_key", "VARCHAR", []string{"looks like a session"}},
		{"devices", "dns_query", "VARCHAR", []string{"looks like browsing data"}},
		{"devices", "visited", "VARCHAR", []string{"looks like browsing data"}},
		{"devices", "geoip_city", "VARCHAR", []string{"looks like a location"}},
		{"devices", "latitude", "VARCHAR", []string{"looks like a location"}},
		{"devices", "is_deleted", "BOOLEAN", []string{"looks like a soft delete"}},
		{"devices", "updated_at", "BIGINT", []string{"time column on an end-user table"}},
		{"devices", "expires", "BIGINT", []string{"time column on an end-user table"}},
		{"devices", "valid_until", "VARCHAR", []string{"time column on an end-user table"}},
		{"devices", "note", "TIMESTAMP", []string{"time column on an end-user table"}},
		{"devices", "note", "TIMESTAMPTZ", []string{"time column on an end-user table"}},
		{"devices", "note", "DATE", []string{"time column on an end-user table"}},
		{"api_keys", "created_at", "DATETIME", []string{"time column not on the allow list"}},
		{"api_keys", "last_used_at", "DATETIME", []string{"looks like an activity time", "time column not on the allow list"}},
		{"registration_tickets", "created_at", "DATETIME", []string{"time column not on the allow list"}},
		{"registration_tickets", "used_at", "DATETIME", []string{"looks like an activity time", "time column not on the allow list"}},
		{"devices", "token_expires_at", "DATETIME", []string{"time column on an end-user table"}},
		{"devices", "expires_at", "DATETIME", []string{"time column on an end-user table"}},
		{"pools", "created_on", "VARCHAR", []string{"time column not on the allow list"}},
		{"pools", "started_ts", "BIGINT", []string{"time column not on the allow list"}},
		{"owners", "updated_at", "TIMESTAMPTZ", []string{"time column not on the allow list"}},
		// Payment data stays with the payment provider.
		{"owner_billing", "card_number", "VARCHAR", []string{"looks like payment data kept by the payment provider"}},
		{"owner_billing", "cardholder", "VARCHAR", []string{"looks like payment data kept by the payment provider"}},
		{"owner_billing", "last4", "VARCHAR", []string{"looks like payment data kept by the payment provider"}},
		{"owner_billing", "iban", "VARCHAR", []string{"looks like payment data kept by the payment provider"}},
		{"owner_billing", "vat_number", "VARCHAR", []string{"looks like payment data kept by the payment provider"}},
		{"owner_billing", "tax_id", "VARCHAR", []string{"looks like payment data kept by the payment provider"}},
		{"owners", "billing_address", "VARCHAR", []string{"looks like payment data kept by the payment provider"}},
		{"owners", "postal_code", "VARCHAR", []string{"looks like payment data kept by the payment provider"}},
		{"owners", "street", "VARCHAR", []string{"looks like payment data kept by the payment provider"}},
		{"owners", "phone", "VARCHAR", []string{"looks like payment data kept by the payment provider"}},
		{"owner_billing", "invoice_pdf", "VARCHAR", []string{"looks like payment data kept by the payment provider"}},
		{"owner_billing", "receipt_url", "VARCHAR", []string{"looks like browsing data", "looks like payment data kept by the payment provider"}},
		{"owner_billing", "charge_id", "VARCHAR", []string{"looks like payment data kept by the payment provider"}},
		{"owner_billing", "payment_method", "VARCHAR", []string{"looks like payment data kept by the payment provider"}},
		{"owner_billing", "last_payment_at", "DATETIME", []string{"time column not on the allow list"}},
		{"owner_billing", "renewed_at", "DATETIME", []string{"time column not on the allow list"}},
		// Fine.
		{"owner_billing", "customer_id", "VARCHAR", nil},
		{"owner_billing", "subscription_id", "VARCHAR", nil},
		{"owner_billing", "subscription_status", "VARCHAR", nil},
		{"owner_billing", "current_period_end", "DATETIME", nil},
		{"owner_billing", "grace_until", "TIMESTAMPTZ", nil},
		{"owner_billing", "comp_reason", "VARCHAR", nil},
		{"owners", "created_at", "TIMESTAMPTZ", nil},
		{"owners", "created_at", "DATETIME", nil},
		{"devices", "ipv4", "VARCHAR", nil},
		{"devices", "ipv6", "VARCHAR", nil},
		{"nodes", "endpoint", "VARCHAR", nil},
		{"owners", "token_epoch", "BIGINT", nil},
		{"owners", "accepted_policy_version", "VARCHAR", nil},
		{"plans", "max_own_nodes", "INTEGER", nil},
		{"plans", "max_attempts", "INTEGER", nil},
		{"nodes", "keepalive_timeout", "INTEGER", nil},
		{"nodes", "description", "VARCHAR", nil},
		{"nodes", "shipping", "VARCHAR", nil},
		{"owners", "time_zone", "VARCHAR", nil},
		{"plans", "retired", "BOOLEAN", nil},
		{"nodes", "credential_hash", "VARCHAR", nil},
		{"api_keys", "scopes", "VARCHAR", nil},
		// A credential's expiry, each with its reason in timeAllowed.
		{"api_keys", "expires_at", "DATETIME", nil},
		{"api_keys", "expires_at", "TIMESTAMPTZ", nil},
		{"registration_tickets", "expires_at", "DATETIME", nil},
		{"registration_tickets", "expires_at", "TIMESTAMPTZ", nil},
		{"devices", "token_hash", "VARCHAR", nil},
		{"api_keys", "kind", "VARCHAR", nil},
		{"apps", "registration_cap_hits", "BIGINT", nil},
		{"owners", "consent_version", "VARCHAR", nil},
		{"owners", "email_address", "VARCHAR", nil},
		{"pools", "city", "VARCHAR", nil},
	}
	for _, tt := range tests {
		t.Run(tt.table+"."+tt.column+"_"+tt.typ, func(t *testing.T) {
			col := SchemaColumn{Table: tt.table, Name: tt.column, Type: tt.typ}
			m := Manifest{Tables: []ManifestTable{{
				Name:    tt.table,
				Columns: []ManifestColumn{{Name: tt.column, Purpose: "test"}},
			}}}
			var got []string
			for _, v := range Guard([]SchemaColumn{col}, m) {
				got = append(got, v.Reason)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Guard(%s.%s %s) reasons (-want +got):\n%s", tt.table, tt.column, tt.typ, diff)
			}
		})
	}
}

func TestViolationString(t *testing.T) {
	tests := []struct {
		v    Violation
		want string
	}{
		{Violation{"devices", "rx_bytes", "looks like a byte counter"}, "devices.rx_bytes: looks like a byte counter"},
		{Violation{"peer_stats", "", "table not in the privacy manifest"}, "peer_stats: table not in the privacy manifest"},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, tt.v.String()); diff != "" {
			t.Errorf("String() (-want +got):\n%s", diff)
		}
	}
}
