package store

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"sync"

	"gorm.io/gorm/schema"
)

// Manifest is the privacy manifest: every table and column Traceless
// persists, with why it exists and how long it is kept.
type Manifest struct {
	Tables []ManifestTable
	// NeverStored lists what no table may hold.
	NeverStored []string
}

// ManifestTable describes one table.
type ManifestTable struct {
	Name      string
	Purpose   string
	Retention string
	Subject   string
	Columns   []ManifestColumn
}

// ManifestColumn describes one column.
type ManifestColumn struct {
	Name    string
	Purpose string
}

// NeverStored is the promise, in words, that the schema guard enforces.
var NeverStored = []string{
	"end-user IP addresses or endpoints",
	"WireGuard handshake times",
	"bytes received or sent",
	"connection or session events",
	"DNS queries or visited addresses",
	"user agents",
	"device-level timestamps (no created/updated/deleted time on devices)",
	"soft-deleted rows: deletion is a hard delete and SQLite overwrites freed pages",
}

// bookkeeping tables are not models but exist in the database.
var bookkeeping = []ManifestTable{{
	Name:      migrationsTable,
	Purpose:   "which schema migrations have been applied",
	Retention: "for the life of the installation",
	Subject:   SubjectInfrastructure,
	Columns:   []ManifestColumn{{Name: "id", Purpose: "migration identifier"}},
}}

// Placeholders in purpose tags for the installation's tunnel networks,
// which Config sets: Store.Manifest fills them in.
const (
	TunnelIPv4Placeholder = "{tunnel_ipv4}"
	TunnelIPv6Placeholder = "{tunnel_ipv6}"
)

// WithTunnels returns a copy of m with the tunnel network placeholders
// replaced by v4 and v6.
func (m Manifest) WithTunnels(v4, v6 netip.Prefix) Manifest {
	r := strings.NewReplacer(TunnelIPv4Placeholder, v4.String(), TunnelIPv6Placeholder, v6.String())
	out := Manifest{NeverStored: m.NeverStored, Tables: make([]ManifestTable, len(m.Tables))}
	for i, t := range m.Tables {
		t.Purpose = r.Replace(t.Purpose)
		cols := make([]ManifestColumn, len(t.Columns))
		for j, c := range t.Columns {
			cols[j] = ManifestColumn{Name: c.Name, Purpose: r.Replace(c.Purpose)}
		}
		t.Columns = cols
		out.Tables[i] = t
	}
	return out
}

// Manifest returns the privacy manifest of this installation: that of
// GenerateManifest with its tunnel networks filled in.
func (s *Store) Manifest() (Manifest, error) {
	m, err := GenerateManifest()
	if err != nil {
		return Manifest{}, err
	}
	return m.WithTunnels(s.TunnelNetworks()), nil
}

var (
	manifestOnce sync.Once
	manifest     Manifest
	manifestErr  error
)

// GenerateManifest builds the manifest from the models' gorm schema, their
// `purpose` tags and privacyDoc methods. It fails when a column has no
// purpose, so an undocumented field can never ship.
func GenerateManifest() (Manifest, error) {
	manifestOnce.Do(func() { manifest, manifestErr = generateManifest(Models()) })
	return manifest, manifestErr
}

func generateManifest(models []any) (Manifest, error) {
	m := Manifest{NeverStored: NeverStored}
	cache := &sync.Map{}
	for _, model := range models {
		sch, err := schema.Parse(model, cache, schema.NamingStrategy{})
		if err != nil {
			return Manifest{}, fmt.Errorf("parse %T: %w", model, err)
		}
		d, ok := model.(documented)
		if !ok {
			return Manifest{}, fmt.Errorf("model %T has no privacyDoc", model)
		}
		doc := d.privacyDoc()
		t := ManifestTable{Name: sch.Table, Purpose: doc.Purpose, Retention: doc.Retention, Subject: doc.Subject}
		for _, f := range sch.Fields {
			if f.DBName == "" {
				continue
			}
			purpose := f.StructField.Tag.Get("purpose")
			if purpose == "" {
				return Manifest{}, fmt.Errorf("%s.%s (%s.%s) has no purpose tag", sch.Table, f.DBName, reflect.TypeOf(model).Elem().Name(), f.Name)
			}
			t.Columns = append(t.Columns, ManifestColumn{Name: f.DBName, Purpose: purpose})
		}
		m.Tables = append(m.Tables, t)
	}
	m.Tables = append(m.Tables, bookkeeping...)
	return m, nil
}

// Table returns the manifest entry for name.
func (m Manifest) Table(name string) (ManifestTable, bool) {
	for _, t := range m.Tables {
		if t.Name == name {
			return t, true
		}
	}
	return ManifestTable{}, false
}

// Column reports whether the manifest explains table.column.
func (m Manifest) Column(table, column string) bool {
	t, ok := m.Table(table)
	if !ok {
		return false
	}
	for _, c := range t.Columns {
		if c.Name == column {
			return true
		}
	}
	return false
}
