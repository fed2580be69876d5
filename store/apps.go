package store

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"gorm.io/gorm"
)

// Change is what a device write did, for the sync layer: the revision it
// committed at, the devices added or changed, and the public keys that
// nodes must drop. Removed keys are never written to disk. The store hands
// each committed write's Change to the commit hooks (Store.OnCommit); a
// write that changes nothing nodes carry has the zero Change.
type Change struct {
	Revision int64
	Upserted []Device
	Removed  []string
	// OwnerID owns the removed devices: nodes of shared pools and of this
	// owner's dedicated pools are told to drop them, no other node.
	OwnerID string
	// Resync lists pools whose nodes must fetch a full snapshot because the
	// devices they carry changed wholesale (a plan's pools, an owner's plan
	// or status changed).
	Resync []string
}

// MaxRotationDays bounds an app's rotation policy.
const MaxRotationDays = 365

// MaxRegistrationCap bounds an app's cap on registrations per hour with
// publishable keys.
const MaxRegistrationCap = 1_000_000

// Validate reports whether a can be stored.
func (a *App) Validate() error {
	if !validText(a.Name, 100) {
		return invalid("name", "must be 1-100 printable characters")
	}
	if a.RotationDays < 0 || a.RotationDays > MaxRotationDays {
		return invalid("rotation_days", "must be 0 (no policy) to %d", MaxRotationDays)
	}
	if a.RegistrationCap < 0 || a.RegistrationCap > MaxRegistrationCap {
		return invalid("registration_cap", "must be 0 (no cap) to %d", MaxRegistrationCap)
	}
	return nil
}

// CreateApp adds an app for the owner within the plan's app limit.
func (s *Store) CreateApp(ctx context.Context, ownerID, name string) (App, error) {
	a := App{ID: uuid.NewString(), OwnerID: ownerID, Name: name}
	if err := a.Validate(); err != nil {
		return App{}, err
	}
	err := s.write(ctx, func(tx *gorm.DB) error {
		q := `SELECT plans.max_apps AS max, owner_billing.limit_plan_id IS NOT NULL AS held FROM owners ` + limitsPlanJoin + ` WHERE owners.id = ?`
		if tx.Dialector.Name() == DriverPostgres {
			// Serialise the owner's CreateApp calls, or parallel ones
			// all pass the count below (SQLite's writer already does).
			q += ` FOR NO KEY UPDATE OF owners`
		}
		var limit []planLimit
		if err := tx.Raw(q, ownerID).Scan(&limit).Error; err != nil {
			return err
		}
		if len(limit) == 0 {
			return ErrNotFound
		}
		var n int64
		if err := tx.Model(&App{}).Where("owner_id = ?", ownerID).Count(&n).Error; err != nil {
			return err
		}
		if n >= limit[0].Max {
			return limit[0].err()
		}
		return tx.Create(&a).Error
	})
	if err != nil {
		return App{}, err
	}
	return a, nil
}

// ListApps returns the owner's apps, each with its device count.
func (s *Store) ListApps(ctx context.Context, ownerID string) ([]App, error) {
	var out []App
	err := s.read(ctx).Where("owner_id = ?", ownerID).Order("name, id").Find(&out).Error
	return out, translate(err)
}

// GetApp returns one of the owner's apps; ErrNotFound for another owner's.
func (s *Store) GetApp(ctx context.Context, ownerID, appID string) (App, error) {
	var a App
	err := s.read(ctx).Where("id = ? AND owner_id = ?", appID, ownerID).Take(&a).Error
	return a, translate(err)
}

// RenameApp changes an app's name.
func (s *Store) RenameApp(ctx context.Context, ownerID, appID, name string) (App, error) {
	return s.UpdateApp(ctx, ownerID, appID, AppUpdate{Name: &name})
}

// AppUpdate changes an app; nil fields stay as they are.
type AppUpdate struct {
	Name         *string
	RotationDays *int
	// RegistrationCap is the cap on registrations per hour with the app's
	// publishable keys; 0 removes it.
	RegistrationCap *int
}

// UpdateApp renames an app or sets its rotation policy.
func (s *Store) UpdateApp(ctx context.Context, ownerID, appID string, u AppUpdate) (App, error) {
	var a App
	err := s.write(ctx, func(tx *gorm.DB) error {
		if err := tx.Where("id = ? AND owner_id = ?", appID, ownerID).Take(&a).Error; err != nil {
			return err
		}
		if u.Name != nil {
			a.Name = *u.Name
		}
		if u.RotationDays != nil {
			a.RotationDays = *u.RotationDays
		}
		if u.RegistrationCap != nil {
			a.RegistrationCap = *u.RegistrationCap
		}
		if err := a.Validate(); err != nil {
			return err
		}
		return tx.Model(&App{}).Where("id = ?", appID).
			Updates(map[string]any{"name": a.Name, "rotation_days": a.RotationDays, "registration_cap": a.RegistrationCap}).Error
	})
	return a, err
}

// DeleteApp hard-deletes an app with its keys and devices. Its Change
// lists the removed devices' keys so that nodes drop them.
func (s *Store) DeleteApp(ctx context.Context, ownerID, appID string) error {
	_, err := s.writeChange(ctx, func(tx *gorm.DB, ch *Change) error {
		var a App
		if err := tx.Where("id = ? AND owner_id = ?", appID, ownerID).Take(&a).Error; err != nil {
			return err
		}
		if err := deleteDevicesWhere(tx, ch, ownerID, "app_id = ?", appID); err != nil {
			return err
		}
		return tx.Where("id = ?", appID).Delete(&App{}).Error
	})
	return err
}

// deleteDevicesWhere removes matching devices of ownerID, keeps
// apps.device_count in step, and when anything was removed bumps the
// revision and records the removed keys in ch.
func deleteDevicesWhere(tx *gorm.DB, ch *Change, ownerID, where string, args ...any) error {
	// Lock before reading, so that no registration or rotation changes the
	// rows between the read of their keys and the delete.
	if err := lockRevision(tx); err != nil {
		return err
	}
	var keys []string
	if err := tx.Model(&Device{}).Where(where, args...).Pluck("public_key", &keys).Error; err != nil {
		return err
	}
	if len(keys) == 0 {
		return nil
	}
	rev, err := bumpRevision(tx)
	if err != nil {
		return err
	}
	var perApp []struct {
		AppID string
		N     int64
	}
	if err := tx.Model(&Device{}).Select("app_id, COUNT(*) AS n").Where(where, args...).Group("app_id").Scan(&perApp).Error; err != nil {
		return err
	}
	for _, a := range perApp {
		if err := tx.Model(&App{}).Where("id = ?", a.AppID).Update("device_count", gorm.Expr("device_count - ?", a.N)).Error; err != nil {
			return err
		}
	}
	if err := tx.Where(where, args...).Delete(&Device{}).Error; err != nil {
		return err
	}
	*ch = Change{Revision: rev, Removed: keys, OwnerID: ownerID}
	return nil
}

// bumpRevision increments the global sync revision and returns it. It
// takes the counter row's write lock, which orders every device-changing
// transaction (on PostgreSQL too, where it serialises concurrent writers).
func bumpRevision(tx *gorm.DB) (int64, error) {
	var rev int64
	if err := tx.Raw(`UPDATE sync_state SET revision = revision + 1 WHERE id = 1 RETURNING revision`).Scan(&rev).Error; err != nil {
		return 0, err
	}
	if rev == 0 {
		return 0, errors.New("sync_state row missing")
	}
	return rev, nil
}

// lockRevision takes the revision row's lock without bumping it. On SQLite
// a write transaction already excludes every other writer.
func lockRevision(tx *gorm.DB) error {
	if tx.Dialector.Name() != DriverPostgres {
		return nil
	}
	return tx.Exec(`SELECT revision FROM sync_state WHERE id = 1 FOR UPDATE`).Error
}

// Revision returns the current global sync revision.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	var rev int64
	err := s.read(ctx).Model(&SyncState{}).Where("id = 1").Pluck("revision", &rev).Error
	return rev, translate(err)
}
