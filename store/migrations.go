package store

import (
	"fmt"
	"strings"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// migrationsTable is where gormigrate records applied migrations.
const migrationsTable = "schema_migrations"

// migrations is the ordered list of schema changes. A released migration is
// never edited: add a new one. TestMigrationGolden compares the baseline
// with the dump in testdata so an accidental edit fails.
//
// The DDL is written out by hand rather than derived from the models so that
// a reviewer sees exactly what reaches the disk; TestModelsMatchSchema checks
// that models and migrations agree.
func migrations() []*gormigrate.Migration {
	return []*gormigrate.Migration{
		{ID: "0001_baseline", Migrate: execAll(baselineDDL)},
		{ID: "0002_owner_token_epoch", Migrate: execAll([]string{
			`ALTER TABLE owners ADD COLUMN token_epoch BIGINT NOT NULL DEFAULT 0`,
		})},
		{ID: "0003_app_device_count", Migrate: execAll([]string{
			`ALTER TABLE apps ADD COLUMN device_count BIGINT NOT NULL DEFAULT 0`,
		})},
		{ID: "0004_enrollment_tokens", Migrate: execAll([]string{
			`CREATE TABLE enrollment_tokens (
				hash VARCHAR(64) NOT NULL PRIMARY KEY,
				pool_id VARCHAR(36) NOT NULL REFERENCES pools (id) ON DELETE CASCADE,
				expires_at {{ts}} NOT NULL
			)`,
			`CREATE INDEX idx_enrollment_tokens_pool_id ON enrollment_tokens (pool_id)`,
		})},
		{ID: "0005_pool_names_per_owner", Migrate: execAll([]string{
			// Shared pool names are unique among shared pools; a dedicated
			// pool's name only among its owner's, so one owner cannot probe
			// another's pool names.
			`DROP INDEX idx_pools_name`,
			`CREATE UNIQUE INDEX idx_pools_shared_name ON pools (name) WHERE owner_id IS NULL`,
			`CREATE UNIQUE INDEX idx_pools_owner_name ON pools (owner_id, name) WHERE owner_id IS NOT NULL`,
		})},
		{ID: "0006_app_rotation_days", Migrate: execAll([]string{
			`ALTER TABLE apps ADD COLUMN rotation_days INTEGER NOT NULL DEFAULT 0`,
		})},
		{ID: "0007_alerts", Migrate: execAll([]string{
			// Alert settings and the opt-in monitoring history go with the
			// owner (ON DELETE CASCADE). History rows name nodes and pools
			// without a foreign key, so they outlive a removed node until
			// their retention ends.
			`CREATE TABLE alert_settings (
				owner_id VARCHAR(36) NOT NULL PRIMARY KEY REFERENCES owners (id) ON DELETE CASCADE,
				webhook_url VARCHAR(2048) NOT NULL DEFAULT '',
				webhook_secret VARCHAR(64) NOT NULL DEFAULT '',
				email VARCHAR(254) NOT NULL DEFAULT '',
				events VARCHAR(300) NOT NULL DEFAULT '',
				keep_history BOOLEAN NOT NULL DEFAULT FALSE,
				retention_days INTEGER NOT NULL DEFAULT 30
			)`,
			`CREATE TABLE alert_history (
				id VARCHAR(36) NOT NULL PRIMARY KEY,
				owner_id VARCHAR(36) NOT NULL REFERENCES owners (id) ON DELETE CASCADE,
				kind VARCHAR(32) NOT NULL,
				pool_id VARCHAR(36) NOT NULL,
				pool_name VARCHAR(100) NOT NULL,
				node_id VARCHAR(36) NOT NULL DEFAULT '',
				node_name VARCHAR(100) NOT NULL DEFAULT '',
				detail VARCHAR(300) NOT NULL DEFAULT '',
				occurred_at {{ts}} NOT NULL,
				expires_at {{ts}} NOT NULL
			)`,
			`CREATE INDEX idx_alert_history_owner ON alert_history (owner_id, occurred_at)`,
			`CREATE INDEX idx_alert_history_expires_at ON alert_history (expires_at)`,
		})},
		{ID: "0008_app_credentials", Migrate: migrateAppCredentials},
		{ID: "0009_sign_in", Migrate: execAll([]string{
			// Accounts that exist before verification was introduced count
			// as verified: nobody asked them to prove their address.
			`ALTER TABLE owners ADD COLUMN email_verified BOOLEAN NOT NULL DEFAULT TRUE`,
			`CREATE TABLE owner_tokens (
				hash VARCHAR(64) NOT NULL PRIMARY KEY,
				owner_id VARCHAR(36) NOT NULL REFERENCES owners (id) ON DELETE CASCADE,
				kind VARCHAR(16) NOT NULL,
				expires_at {{ts}} NOT NULL
			)`,
			`CREATE INDEX idx_owner_tokens_owner_id ON owner_tokens (owner_id)`,
			`CREATE INDEX idx_owner_tokens_expires_at ON owner_tokens (expires_at)`,
			`CREATE TABLE totp_credentials (
				owner_id VARCHAR(36) NOT NULL PRIMARY KEY REFERENCES owners (id) ON DELETE CASCADE,
				secret VARCHAR(255) NOT NULL,
				enabled BOOLEAN NOT NULL DEFAULT FALSE,
				last_step BIGINT NOT NULL DEFAULT 0
			)`,
			`CREATE TABLE recovery_codes (
				hash VARCHAR(64) NOT NULL PRIMARY KEY,
				owner_id VARCHAR(36) NOT NULL REFERENCES owners (id) ON DELETE CASCADE
			)`,
			`CREATE INDEX idx_recovery_codes_owner_id ON recovery_codes (owner_id)`,
		})},
		{ID: "0010_owner_identities", Migrate: execAll([]string{
			// Single sign-on: the provider's issuer and the person's subject
			// there, nothing else. They go with the account.
			`CREATE TABLE owner_identities (
				id VARCHAR(36) NOT NULL PRIMARY KEY,
				owner_id VARCHAR(36) NOT NULL REFERENCES owners (id) ON DELETE CASCADE,
				issuer VARCHAR(512) NOT NULL,
				subject VARCHAR(255) NOT NULL
			)`,
			`CREATE INDEX idx_owner_identities_owner_id ON owner_identities (owner_id)`,
			`CREATE UNIQUE INDEX idx_owner_identities_issuer_subject ON owner_identities (issuer, subject)`,
		})},
		{ID: "0011_alert_outbox", Migrate: execAll([]string{
			// Alert deliveries wait here until delivered or given up, so a
			// replica that dies loses none; they go with the account.
			`CREATE TABLE alert_outbox (
				id {{serial}},
				owner_id VARCHAR(36) NOT NULL REFERENCES owners (id) ON DELETE CASCADE,
				channel VARCHAR(16) NOT NULL,
				event_id VARCHAR(36) NOT NULL,
				kind VARCHAR(32) NOT NULL,
				body VARCHAR(4000) NOT NULL,
				attempts INTEGER NOT NULL DEFAULT 0,
				queued_at {{ts}} NOT NULL,
				retry_at {{ts}} NOT NULL,
				claimed_by VARCHAR(36) NOT NULL DEFAULT ''
			)`,
			`CREATE INDEX idx_alert_outbox_queue ON alert_outbox (owner_id, channel, id)`,
		})},
		{ID: "0012_owner_billing", Migrate: execAll([]string{
			// Paid plans: the payment provider's customer and subscription
			// references and the state the plan follows. No card data,
			// invoices or addresses. The row goes with the account.
			`CREATE TABLE owner_billing (
				owner_id VARCHAR(36) NOT NULL PRIMARY KEY REFERENCES owners (id) ON DELETE CASCADE,
				customer_id VARCHAR(255),
				subscription_id VARCHAR(255),
				subscription_status VARCHAR(32) NOT NULL DEFAULT '',
				current_period_end {{ts}},
				cancel_at_period_end BOOLEAN NOT NULL DEFAULT FALSE,
				grace_until {{ts}},
				limit_plan_id VARCHAR(36) REFERENCES plans (id) ON DELETE SET NULL,
				comp_reason VARCHAR(500)
			)`,
			`CREATE UNIQUE INDEX idx_owner_billing_customer_id ON owner_billing (customer_id)`,
		})},
		{ID: "0013_owner_billing_cancelled_subscription", Migrate: execAll([]string{
			// A second subscription an owner paid for at the same time,
			// cancelled at the provider: the owner and the operator are
			// told, so that its payment can be refunded.
			`ALTER TABLE owner_billing ADD COLUMN cancelled_subscription_id VARCHAR(255)`,
		})},
	}
}

// migrateAppCredentials adds the credentials that can ship inside an app:
// key kinds (existing keys become secret keys, which is what they were),
// an optional expiry and grace period on keys, device tokens, registration
// tickets and the per-app registration cap.
//
// Key names become unique per app. Earlier versions accepted duplicates;
// the second and later keys of a name (in ID order) are renamed to
// "name (2)", "name (3)", … — a suffix no key of the app uses yet — before
// the unique index is created. The keys themselves keep working; only the
// label changes, and the owner sees the new name in the key list.
func migrateAppCredentials(tx *gorm.DB) error {
	if err := execAll([]string{
		`ALTER TABLE api_keys ADD COLUMN kind VARCHAR(16) NOT NULL DEFAULT 'secret'`,
		`ALTER TABLE api_keys ADD COLUMN expires_at {{ts}}`,
		`ALTER TABLE api_keys ADD COLUMN replaced_by VARCHAR(36)`,
		`ALTER TABLE apps ADD COLUMN registration_cap INTEGER NOT NULL DEFAULT 0`,
		`ALTER TABLE apps ADD COLUMN registration_cap_hits BIGINT NOT NULL DEFAULT 0`,
		// No device-level time: a device token has no expiry; rotation
		// replaces it and the owner can reset it.
		`ALTER TABLE devices ADD COLUMN token_hash VARCHAR(64)`,
		`CREATE UNIQUE INDEX idx_devices_token_hash ON devices (token_hash)`,
		`CREATE TABLE registration_tickets (
			hash VARCHAR(64) NOT NULL PRIMARY KEY,
			app_id VARCHAR(36) NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
			external_ref VARCHAR(128),
			expires_at {{ts}} NOT NULL
		)`,
		`CREATE INDEX idx_registration_tickets_app_id ON registration_tickets (app_id)`,
		`CREATE INDEX idx_registration_tickets_expires_at ON registration_tickets (expires_at)`,
	})(tx); err != nil {
		return err
	}
	if err := renameDuplicateKeyNames(tx); err != nil {
		return err
	}
	return execAll([]string{
		`CREATE UNIQUE INDEX idx_api_keys_app_name ON api_keys (app_id, name)`,
	})(tx)
}

// renameDuplicateKeyNames gives every key a name unique within its app
// (see migrateAppCredentials).
func renameDuplicateKeyNames(tx *gorm.DB) error {
	var keys []struct{ ID, AppID, Name string }
	if err := tx.Raw(`SELECT id, app_id, name FROM api_keys ORDER BY app_id, id`).Scan(&keys).Error; err != nil {
		return fmt.Errorf("read key names: %w", err)
	}
	taken := map[[2]string]bool{}
	for _, k := range keys {
		taken[[2]string{k.AppID, k.Name}] = true
	}
	seen := map[[2]string]bool{}
	for _, k := range keys {
		key := [2]string{k.AppID, k.Name}
		if !seen[key] {
			seen[key] = true
			continue
		}
		name := uniqueKeyName(k.Name, func(n string) bool { return taken[[2]string{k.AppID, n}] })
		taken[[2]string{k.AppID, name}] = true
		if err := tx.Exec(`UPDATE api_keys SET name = ? WHERE id = ?`, name, k.ID).Error; err != nil {
			return fmt.Errorf("rename key: %w", err)
		}
	}
	return nil
}

// uniqueKeyName returns name with the first suffix " (n)", n >= 2, that
// taken does not report, shortening name so the result fits 100
// characters.
func uniqueKeyName(name string, taken func(string) bool) string {
	for n := 2; ; n++ {
		suffix := fmt.Sprintf(" (%d)", n)
		base := []rune(name)
		if len(base)+len([]rune(suffix)) > 100 {
			base = base[:100-len([]rune(suffix))]
		}
		if c := string(base) + suffix; !taken(c) {
			return c
		}
	}
}

// baselineDDL creates the first schema. {{ts}} is the dialect's timestamp type.
var baselineDDL = []string{
	`CREATE TABLE plans (
		id VARCHAR(36) NOT NULL PRIMARY KEY,
		slug VARCHAR(32) NOT NULL,
		name VARCHAR(64) NOT NULL,
		max_apps INTEGER NOT NULL,
		max_devices INTEGER NOT NULL,
		max_own_nodes INTEGER NOT NULL,
		price_cents INTEGER NOT NULL,
		currency VARCHAR(3) NOT NULL,
		retired BOOLEAN NOT NULL DEFAULT FALSE
	)`,
	`CREATE UNIQUE INDEX idx_plans_slug ON plans (slug)`,
	`CREATE TABLE owners (
		id VARCHAR(36) NOT NULL PRIMARY KEY,
		email VARCHAR(254) NOT NULL,
		password_hash VARCHAR(255) NOT NULL,
		role VARCHAR(16) NOT NULL,
		plan_id VARCHAR(36) NOT NULL REFERENCES plans (id) ON DELETE RESTRICT,
		status VARCHAR(16) NOT NULL,
		legal_hold VARCHAR(500),
		accepted_policy_version VARCHAR(32) NOT NULL DEFAULT '',
		created_at {{ts}} NOT NULL
	)`,
	`CREATE UNIQUE INDEX idx_owners_email ON owners (email)`,
	`CREATE INDEX idx_owners_plan_id ON owners (plan_id)`,
	`CREATE TABLE pools (
		id VARCHAR(36) NOT NULL PRIMARY KEY,
		name VARCHAR(100) NOT NULL,
		region VARCHAR(64) NOT NULL,
		country VARCHAR(2) NOT NULL,
		city VARCHAR(100) NOT NULL,
		owner_id VARCHAR(36) REFERENCES owners (id) ON DELETE CASCADE
	)`,
	`CREATE UNIQUE INDEX idx_pools_name ON pools (name)`,
	`CREATE INDEX idx_pools_owner_id ON pools (owner_id)`,
	`CREATE TABLE plan_pools (
		plan_id VARCHAR(36) NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
		pool_id VARCHAR(36) NOT NULL REFERENCES pools (id) ON DELETE CASCADE,
		PRIMARY KEY (plan_id, pool_id)
	)`,
	`CREATE INDEX idx_plan_pools_pool_id ON plan_pools (pool_id)`,
	`CREATE TABLE apps (
		id VARCHAR(36) NOT NULL PRIMARY KEY,
		owner_id VARCHAR(36) NOT NULL REFERENCES owners (id) ON DELETE CASCADE,
		name VARCHAR(100) NOT NULL
	)`,
	`CREATE INDEX idx_apps_owner_id ON apps (owner_id)`,
	`CREATE TABLE api_keys (
		id VARCHAR(36) NOT NULL PRIMARY KEY,
		app_id VARCHAR(36) NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
		name VARCHAR(100) NOT NULL,
		prefix VARCHAR(16) NOT NULL,
		hash VARCHAR(64) NOT NULL,
		scopes VARCHAR(200) NOT NULL
	)`,
	`CREATE INDEX idx_api_keys_app_id ON api_keys (app_id)`,
	`CREATE UNIQUE INDEX idx_api_keys_hash ON api_keys (hash)`,
	`CREATE TABLE nodes (
		id VARCHAR(36) NOT NULL PRIMARY KEY,
		pool_id VARCHAR(36) NOT NULL REFERENCES pools (id) ON DELETE CASCADE,
		name VARCHAR(100) NOT NULL,
		endpoint VARCHAR(300) NOT NULL,
		public_key VARCHAR(44) NOT NULL,
		credential_hash VARCHAR(64) NOT NULL,
		enabled BOOLEAN NOT NULL DEFAULT TRUE
	)`,
	`CREATE INDEX idx_nodes_pool_id ON nodes (pool_id)`,
	`CREATE UNIQUE INDEX idx_nodes_public_key ON nodes (public_key)`,
	`CREATE UNIQUE INDEX idx_nodes_credential_hash ON nodes (credential_hash)`,
	`CREATE TABLE devices (
		id VARCHAR(36) NOT NULL PRIMARY KEY,
		app_id VARCHAR(36) NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
		public_key VARCHAR(44) NOT NULL,
		ipv4 VARCHAR(15) NOT NULL,
		ipv6 VARCHAR(39) NOT NULL,
		external_ref VARCHAR(128),
		revision BIGINT NOT NULL
	)`,
	`CREATE INDEX idx_devices_app_id ON devices (app_id)`,
	`CREATE UNIQUE INDEX idx_devices_public_key ON devices (public_key)`,
	`CREATE UNIQUE INDEX idx_devices_ipv4 ON devices (ipv4)`,
	`CREATE UNIQUE INDEX idx_devices_ipv6 ON devices (ipv6)`,
	`CREATE INDEX idx_devices_revision ON devices (revision)`,
	`CREATE TABLE sync_state (
		id INTEGER NOT NULL PRIMARY KEY,
		revision BIGINT NOT NULL
	)`,
	`INSERT INTO sync_state (id, revision) VALUES (1, 0)`,
}

// execAll returns a migration step that runs stmts in order, rewriting the
// few dialect-specific placeholders.
func execAll(stmts []string) gormigrate.MigrateFunc {
	return func(tx *gorm.DB) error {
		// {{serial}} is an ascending integer key (SQLite's rowid).
		ts, serial := "DATETIME", "INTEGER NOT NULL PRIMARY KEY"
		if tx.Dialector.Name() == "postgres" {
			ts, serial = "TIMESTAMPTZ", "BIGINT NOT NULL GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
		}
		for _, s := range stmts {
			s = strings.ReplaceAll(s, "{{ts}}", ts)
			s = strings.ReplaceAll(s, "{{serial}}", serial)
			if err := tx.Exec(s).Error; err != nil {
				return fmt.Errorf("exec %q: %w", firstLine(s), err)
			}
		}
		return nil
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// migrationLockKey names the PostgreSQL advisory lock that serialises
// migrations (advisory locks are per database).
const migrationLockKey int64 = 0x7472_6163_656c_6573 // ASCII "traceles"

func newMigrator(db *gorm.DB, useTransaction bool) *gormigrate.Gormigrate {
	opts := *gormigrate.DefaultOptions
	opts.TableName = migrationsTable
	opts.UseTransaction = useTransaction
	return gormigrate.New(db, &opts, migrations())
}

// Migrate applies every pending migration.
func migrate(db *gorm.DB) error {
	if err := runMigrations(db, ""); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// runMigrations applies the pending migrations up to id (all when id is
// empty) in one transaction.
//
// Several control-plane replicas may start at once on one PostgreSQL
// database. Without a lock each would find no migrations table and create
// it, and all but one would fail; a transaction-scoped advisory lock makes
// them take turns, and the later ones find the work done. On SQLite the
// writer's BEGIN IMMEDIATE already serialises them.
func runMigrations(db *gorm.DB, id string) error {
	run := func(g *gormigrate.Gormigrate) error {
		if id == "" {
			return g.Migrate()
		}
		return g.MigrateTo(id)
	}
	if db.Dialector.Name() != DriverPostgres {
		return run(newMigrator(db, true))
	}
	return db.Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec("SELECT pg_advisory_xact_lock(?)", migrationLockKey).Error; err != nil {
			return fmt.Errorf("lock migrations: %w", err)
		}
		return run(newMigrator(tx, false))
	})
}
