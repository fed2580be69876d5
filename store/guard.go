package store

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"gorm.io/gorm"
)

// SchemaColumn is one column as the database itself reports it.
type SchemaColumn struct {
	Table string
	Name  string
	Type  string // database type name, upper case
}

// Violation is one finding of the schema guard. Column is empty when the
// finding is about a whole table.
type Violation struct {
	Table, Column, Reason string
}

func (v Violation) String() string {
	if v.Column == "" {
		return v.Table + ": " + v.Reason
	}
	return v.Table + "." + v.Column + ": " + v.Reason
}

// forbidden are column-name patterns that describe end users' activity. A
// match is a violation unless the exact table.column is in allow, with the
// reason it is not end-user activity, or the name matches except.
var forbidden = []struct {
	re     *regexp.Regexp
	except *regexp.Regexp
	what   string
	allow  map[string]string
}{
	{
		re: regexp.MustCompile(`(^|_)(ip|ips|ipv4|ipv6|addr|address|remote|src|source)($|_)` +
			`|ip_?addr|ipaddress|remote_?addr|(client|remote|src|source|peer|real|user|origin|public)_?ip`),
		except: regexp.MustCompile(`(e?mail|postal|billing|street)_?addr`),
		what:   "an IP address",
		allow: map[string]string{
			"devices.ipv4": "tunnel address Traceless assigns, not the user's address",
			"devices.ipv6": "tunnel address Traceless assigns, not the user's address",
		},
	},
	{re: regexp.MustCompile(`endpoint`), what: "an endpoint",
		allow: map[string]string{"nodes.endpoint": "the server's own public address"}},
	{re: regexp.MustCompile(`handshake`), what: "a handshake time"},
	{re: regexp.MustCompile(`bytes|packet|(^|_)(rx|tx|traffic|bandwidth|transfer|transferred|received|sent)($|_)`), what: "a byte counter"},
	{re: regexp.MustCompile(`last_?(seen|used|login|active|activity|connect)|seen_at|used_at|login_at|conn(ect|ection)`), what: "an activity time"},
	{re: regexp.MustCompile(`user_?agent|(^|_)ua($|_)`), what: "a user agent"},
	{re: regexp.MustCompile(`session`), what: "a session"},
	{re: regexp.MustCompile(`dns|quer(y|ies)|visit|url|domain|host`), what: "browsing data",
		allow: map[string]string{"alert_settings.webhook_url": "the owner's own alert receiver, not an address anyone visited"}},
	{re: regexp.MustCompile(`(^|_)(geo|geoip|location|latitude|longitude|lat|lon|lng)($|_)`), what: "a location"},
	{re: regexp.MustCompile(`deleted`), what: "a soft delete"},
	// Payment data stays with the payment provider, which keeps it for tax
	// law; the control plane keeps its references only (owner_billing).
	{re: regexp.MustCompile(`card|(^|_)(pan|cvc|cvv|iban|bic|swift|last_?4|vat|tax_?id|phone)($|_)|invoice|receipt|charge|payment_?method|` +
		`(billing|postal|street|mailing|shipping)_?addr|(^|_)(street|postcode|postal_?code|zip)($|_)`), what: "payment data kept by the payment provider"},
}

// timeAllowed lists the only time columns that may exist.
var timeAllowed = map[string]string{
	"owners.created_at":            "account registration date of an app owner",
	"enrollment_tokens.expires_at": "when an unused node enrollment token stops working",
	"alert_history.occurred_at":    "when a node or pool changed status, kept only for owners who opted in",
	"alert_history.expires_at":     "when the retention job deletes an opt-in history entry",
	"api_keys.expires_at": "a credential's expiry, set in advance by the owner (or the end of a replaced key's grace period); " +
		"not a time the key was used",
	"registration_tickets.expires_at": "a credential's expiry: when an unused one-use registration ticket stops working " +
		"(at most 10 minutes after minting); the ticket is deleted when used or expired",
	"owner_tokens.expires_at": "when an unused email verification or password reset link stops working; " +
		"the row is deleted when the link is used, replaced or expired",
	"alert_outbox.queued_at": "when a node or pool alert was queued for an owner's channel; the row is deleted when delivered " +
		"or given up (a server's event, not an end user's activity)",
	"alert_outbox.retry_at": "when the next delivery attempt of a queued alert is due",
	"owner_billing.current_period_end": "an owner's paid period: when their subscription renews or, cancelled, returns them to the free plan " +
		"(an account-level billing fact shown to the owner, not end-user activity)",
	"owner_billing.grace_until": "the end of the grace period a failed payment of the owner's subscription opened " +
		"(an account-level billing deadline, not end-user activity)",
}

// endUserTables hold data about end users' devices; they may have no time
// column at all, whatever its name. (An app's keys may carry their own
// expiry, which timeAllowed names; any other time on them is refused like
// any time column not on that list.)
var endUserTables = map[string]bool{"devices": true}

// timeName matches column names that hold a time whatever their type (a
// Unix time in a BIGINT is still a time). The suffixes are anchored so that
// names such as max_attempts or idle_timeout are not mistaken for times.
var timeName = regexp.MustCompile(`(^|_)(at|on|ts|time|date|until|expires|expiry)$|timestamp|datetime|seen`)

// ReadSchema returns every column of every table, read from the database's
// own catalogue (not from the Go models). On PostgreSQL it lists the base
// tables of the current schema; on SQLite every table but SQLite's own.
func ReadSchema(ctx context.Context, db *gorm.DB) ([]SchemaColumn, error) {
	db = db.WithContext(ctx)
	tables, err := db.Migrator().GetTables()
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	var out []SchemaColumn
	for _, t := range tables {
		if strings.HasPrefix(t, "sqlite_") {
			continue
		}
		var cols []SchemaColumn
		if db.Dialector.Name() == DriverSQLite {
			cols, err = sqliteColumns(db, t)
		} else {
			cols, err = catalogueColumns(db, t)
		}
		if err != nil {
			return nil, fmt.Errorf("columns of %s: %w", t, err)
		}
		out = append(out, cols...)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Table != out[j].Table {
			return out[i].Table < out[j].Table
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// sqliteColumns reads SQLite's own column list (PRAGMA table_xinfo, which
// includes generated columns). gorm's ColumnTypes re-parses the CREATE
// TABLE text instead, and misreads the columns around one added by ALTER
// TABLE.
func sqliteColumns(db *gorm.DB, table string) ([]SchemaColumn, error) {
	var rows []struct{ Name, Type string }
	if err := db.Raw("SELECT name, type FROM pragma_table_xinfo(?)", table).Scan(&rows).Error; err != nil {
		return nil, err
	}
	out := make([]SchemaColumn, len(rows))
	for i, r := range rows {
		out[i] = SchemaColumn{Table: table, Name: r.Name, Type: strings.ToUpper(r.Type)}
	}
	return out, nil
}

// catalogueColumns reads the columns through gorm's migrator, which on
// PostgreSQL queries information_schema for the current schema.
func catalogueColumns(db *gorm.DB, table string) ([]SchemaColumn, error) {
	cols, err := db.Migrator().ColumnTypes(table)
	if err != nil {
		return nil, err
	}
	out := make([]SchemaColumn, len(cols))
	for i, c := range cols {
		out[i] = SchemaColumn{Table: table, Name: c.Name(), Type: strings.ToUpper(c.DatabaseTypeName())}
	}
	return out, nil
}

// Guard checks cols against the manifest and the forbidden patterns. It
// returns every violation, or none. A table the manifest does not know is
// reported once (with an empty Column), and each of its columns as well.
func Guard(cols []SchemaColumn, m Manifest) []Violation {
	var vs []Violation
	reported := map[string]bool{}
	for _, c := range cols {
		name := strings.ToLower(c.Name)
		key := c.Table + "." + name
		if _, ok := m.Table(c.Table); !ok && !reported[c.Table] {
			reported[c.Table] = true
			vs = append(vs, Violation{c.Table, "", "table not in the privacy manifest"})
		}
		if !m.Column(c.Table, name) {
			vs = append(vs, Violation{c.Table, c.Name, "not explained by the privacy manifest"})
		}
		for _, f := range forbidden {
			if !f.re.MatchString(name) || (f.except != nil && f.except.MatchString(name)) {
				continue
			}
			if _, ok := f.allow[key]; !ok {
				vs = append(vs, Violation{c.Table, c.Name, "looks like " + f.what})
			}
		}
		typ := strings.ToUpper(c.Type)
		isTime := strings.Contains(typ, "TIME") || strings.Contains(typ, "DATE") || timeName.MatchString(name)
		switch {
		case isTime && endUserTables[c.Table]:
			vs = append(vs, Violation{c.Table, c.Name, "time column on an end-user table"})
		case isTime:
			if _, ok := timeAllowed[key]; !ok {
				vs = append(vs, Violation{c.Table, c.Name, "time column not on the allow list"})
			}
		}
	}
	return vs
}

// CheckSchema reads the store's schema and runs the guard over it.
func (s *Store) CheckSchema(ctx context.Context) ([]Violation, error) {
	cols, err := ReadSchema(ctx, s.w)
	if err != nil {
		return nil, err
	}
	m, err := GenerateManifest()
	if err != nil {
		return nil, err
	}
	return Guard(cols, m), nil
}
