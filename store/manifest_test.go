package store

import (
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gorm.io/gorm/schema"
)

// MustParseModel returns gorm's schema for model.
func MustParseModel(tb testing.TB, model any) *schema.Schema {
	tb.Helper()
	sch, err := schema.Parse(model, &sync.Map{}, schema.NamingStrategy{})
	if err != nil {
		tb.Fatalf("parse %T: %v", model, err)
	}
	return sch
}

// TestManifestCoversModels checks that every column gorm derives from a
// model is in the manifest with a purpose, and every table says why it
// exists, how long it is kept and whose data it is.
func TestManifestCoversModels(t *testing.T) {
	m := MustManifest(t)
	subjects := map[string]bool{SubjectOperator: true, SubjectOwner: true, SubjectEndUserDevice: true, SubjectInfrastructure: true}

	var want, got []string
	for _, model := range Models() {
		sch := MustParseModel(t, model)
		for _, f := range sch.Fields {
			if f.DBName != "" {
				want = append(want, sch.Table+"."+f.DBName)
			}
		}
	}
	want = append(want, migrationsTable+".id")
	for _, tbl := range m.Tables {
		if tbl.Purpose == "" || tbl.Retention == "" || tbl.Subject == "" {
			t.Errorf("table %s: purpose %q, retention %q, subject %q; all are required", tbl.Name, tbl.Purpose, tbl.Retention, tbl.Subject)
		}
		if !subjects[tbl.Subject] {
			t.Errorf("table %s: unknown subject %q", tbl.Name, tbl.Subject)
		}
		if len(tbl.Columns) == 0 {
			t.Errorf("table %s has no columns", tbl.Name)
		}
		for _, c := range tbl.Columns {
			got = append(got, tbl.Name+"."+c.Name)
			if strings.TrimSpace(c.Purpose) == "" {
				t.Errorf("%s.%s has an empty purpose", tbl.Name, c.Name)
			}
			if !m.Column(tbl.Name, c.Name) {
				t.Errorf("Manifest.Column(%q, %q) = false for a listed column", tbl.Name, c.Name)
			}
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("manifest columns (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(NeverStored, m.NeverStored); diff != "" {
		t.Errorf("NeverStored (-want +got):\n%s", diff)
	}
	if m.Column("devices", "created_at") || m.Column("no_such_table", "id") {
		t.Error("Manifest.Column reports columns that do not exist")
	}
	if _, ok := m.Table("no_such_table"); ok {
		t.Error("Manifest.Table found a table that does not exist")
	}
}

// TestDevicesHaveNoTimestamps pins the most important promise to the model
// itself, independent of the guard's patterns: a device has no time at
// all, and the credentials an app carries have their own expiry only.
func TestDevicesHaveNoTimestamps(t *testing.T) {
	allowed := map[string][]string{"devices": nil, "api_keys": {"expires_at"}, "registration_tickets": {"expires_at"}}
	for _, model := range []any{&Device{}, &APIKey{}, &RegistrationTicket{}} {
		sch := MustParseModel(t, model)
		var got []string
		for _, f := range sch.Fields {
			if f.DataType == schema.Time {
				got = append(got, f.DBName)
			}
		}
		if diff := cmp.Diff(allowed[sch.Table], got); diff != "" {
			t.Errorf("time columns of %s (-want +got):\n%s", sch.Table, diff)
		}
	}
}

// undocumentedModel has a field without a purpose tag.
type undocumentedModel struct {
	ID       string `gorm:"primaryKey" purpose:"random identifier"`
	Nickname string
}

func (undocumentedModel) privacyDoc() tableDoc {
	return tableDoc{Purpose: "test", Retention: "test", Subject: SubjectOwner}
}

// undescribedModel documents its fields but not itself.
type undescribedModel struct {
	ID string `gorm:"primaryKey" purpose:"random identifier"`
}

func TestGenerateManifestRejects(t *testing.T) {
	tests := []struct {
		name  string
		model any
		want  string // substring of the error
	}{
		{"field without purpose", &undocumentedModel{}, "undocumented_models.nickname (undocumentedModel.Nickname) has no purpose tag"},
		{"model without privacyDoc", &undescribedModel{}, "has no privacyDoc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := generateManifest([]any{&Plan{}, tt.model})
			if err == nil {
				t.Fatalf("generateManifest succeeded with %d tables; want an error", len(m.Tables))
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("generateManifest error = %q; want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestGenerateManifestStable(t *testing.T) {
	a, err := generateManifest(Models())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(MustManifest(t), a); diff != "" {
		t.Errorf("GenerateManifest differs from generateManifest(Models()) (-want +got):\n%s", diff)
	}
}
