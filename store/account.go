package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
)

// LegalHoldError refuses a deletion while an operator holds the account.
type LegalHoldError struct{ Reason string }

func (e *LegalHoldError) Error() string { return "legal hold: " + e.Reason }

// Is makes errors.Is(err, ErrLegalHold) true.
func (e *LegalHoldError) Is(target error) bool { return target == ErrLegalHold }

// DeleteOwner hard-deletes an owner with every app, key and device, and the
// owner's dedicated pools and their nodes. Its Change lists the removed
// device keys so nodes drop them. A legal hold refuses with
// *LegalHoldError and deletes nothing.
func (s *Store) DeleteOwner(ctx context.Context, ownerID string) error {
	_, err := s.writeChange(ctx, func(tx *gorm.DB, ch *Change) error {
		if err := lockRevision(tx); err != nil {
			return err
		}
		var o Owner
		if err := tx.Where("id = ?", ownerID).Take(&o).Error; err != nil {
			return err
		}
		if o.LegalHold != nil {
			return &LegalHoldError{Reason: *o.LegalHold}
		}
		if err := deleteDevicesWhere(tx, ch, ownerID, "app_id IN (SELECT id FROM apps WHERE owner_id = ?)", ownerID); err != nil {
			return err
		}
		// Apps, keys, dedicated pools, their nodes and enrollment tokens,
		// and linked sign-in identities go by ON DELETE CASCADE.
		return tx.Where("id = ?", ownerID).Delete(&Owner{}).Error
	})
	return err
}

// withheld are stored columns an export names but does not reveal:
// credential hashes and the encrypted TOTP secret, useless to the owner
// and useful to an attacker.
var withheld = map[string]bool{
	"owners.password_hash":      true,
	"api_keys.hash":             true,
	"nodes.credential_hash":     true,
	"enrollment_tokens.hash":    true,
	"registration_tickets.hash": true,
	"devices.token_hash":        true,
	"owner_tokens.hash":         true,
	"totp_credentials.secret":   true,
	"recovery_codes.hash":       true,
}

// Withheld is the value an export shows for a withheld column.
const Withheld = "(stored, not exported: a credential hash or encrypted secret)"

// exportScopes selects an owner's rows in each table that holds them.
var exportScopes = []struct{ table, where string }{
	{"owners", "id = ?"},
	{"apps", "owner_id = ?"},
	{"api_keys", "app_id IN (SELECT id FROM apps WHERE owner_id = ?)"},
	{"devices", "app_id IN (SELECT id FROM apps WHERE owner_id = ?)"},
	{"pools", "owner_id = ?"},
	{"nodes", "pool_id IN (SELECT id FROM pools WHERE owner_id = ?)"},
	{"enrollment_tokens", "pool_id IN (SELECT id FROM pools WHERE owner_id = ?)"},
	{"registration_tickets", "app_id IN (SELECT id FROM apps WHERE owner_id = ?)"},
	{"owner_tokens", "owner_id = ?"},
	{"totp_credentials", "owner_id = ?"},
	{"recovery_codes", "owner_id = ?"},
	{"owner_identities", "owner_id = ?"},
	{"owner_billing", "owner_id = ?"},
}

// ExportOwner returns every stored row about the owner, table by table,
// with exactly the columns the privacy manifest lists (so the export and
// the manifest cannot drift apart). Credential hashes are withheld.
func (s *Store) ExportOwner(ctx context.Context, ownerID string) (map[string][]map[string]any, error) {
	m, err := GenerateManifest()
	if err != nil {
		return nil, err
	}
	out := map[string][]map[string]any{}
	err = s.r.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for _, sc := range exportScopes {
			t, ok := m.Table(sc.table)
			if !ok {
				return fmt.Errorf("export: %s is not in the manifest", sc.table)
			}
			cols := make([]string, len(t.Columns))
			for i, c := range t.Columns {
				cols[i] = c.Name
			}
			rows, err := tx.Raw(`SELECT `+strings.Join(cols, ", ")+` FROM `+sc.table+` WHERE `+sc.where+` ORDER BY 1`, ownerID).Rows()
			if err != nil {
				return err
			}
			recs, err := scanMaps(rows, sc.table, cols)
			if err != nil {
				return err
			}
			out[sc.table] = recs
		}
		return nil
	})
	if err != nil {
		return nil, translate(err)
	}
	if len(out["owners"]) == 0 {
		return nil, ErrNotFound
	}
	return out, nil
}

func scanMaps(rows interface {
	Next() bool
	Scan(...any) error
	Err() error
	Close() error
}, table string, cols []string) ([]map[string]any, error) {
	defer rows.Close()
	recs := []map[string]any{}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		rec := make(map[string]any, len(cols))
		for i, c := range cols {
			switch v := vals[i].(type) {
			case []byte:
				rec[c] = string(v)
			case time.Time:
				rec[c] = v.UTC().Format(time.RFC3339)
			default:
				rec[c] = v
			}
			if withheld[table+"."+c] && vals[i] != nil { // a null says truly that nothing is stored
				rec[c] = Withheld
			}
		}
		recs = append(recs, rec)
	}
	return recs, rows.Err()
}
