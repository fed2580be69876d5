package store

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Validate reports whether o can be stored. Email syntax is checked by the
// caller; here only the stored invariants.
func (o *Owner) Validate() error {
	switch {
	case o.Email == "" || len(o.Email) > 254:
		return invalid("email", "must be 1-254 characters")
	case o.PasswordHash == "":
		return invalid("password", "is required")
	case o.Role != RoleOwner && o.Role != RoleAdmin:
		return invalid("role", "must be owner or admin")
	case o.Status != StatusActive && o.Status != StatusSuspended:
		return invalid("status", "must be active or suspended")
	case o.LegalHold != nil && !validText(*o.LegalHold, 500):
		return invalid("legal_hold", "must be 1-500 printable characters")
	}
	return nil
}

// CreateOwner stores a new account on the plan with the given slug (the
// cheapest active plan when empty). ErrConflict when the email is taken.
func (s *Store) CreateOwner(ctx context.Context, o Owner, planSlug string) (Owner, error) {
	prepareOwner(&o)
	err := s.write(ctx, func(tx *gorm.DB) error { return createOwner(tx, &o, planSlug) })
	if err != nil {
		return Owner{}, err
	}
	return o, nil
}

// operatorLockKey names the PostgreSQL advisory lock that serialises
// CreateOperator.
const operatorLockKey = migrationLockKey + 2

// CreateOperator creates the first operator account unless an operator
// already exists, and reports whether it did. Replicas starting together
// with the same operator credentials take turns (SQLite's writer lock, a
// PostgreSQL advisory lock): exactly one creates the account, the others
// find it and return false without an error.
func (s *Store) CreateOperator(ctx context.Context, o Owner) (Owner, bool, error) {
	o.Role = RoleAdmin
	prepareOwner(&o)
	created := false
	err := s.write(ctx, func(tx *gorm.DB) error {
		if tx.Dialector.Name() == DriverPostgres {
			if err := tx.Exec("SELECT pg_advisory_xact_lock(?)", operatorLockKey).Error; err != nil {
				return err
			}
		}
		var n int64
		if err := tx.Model(&Owner{}).Where("role = ?", RoleAdmin).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		if err := createOwner(tx, &o, ""); err != nil {
			return err
		}
		created = true
		return nil
	})
	if err != nil || !created {
		return Owner{}, false, err
	}
	return o, true, nil
}

// prepareOwner sets a new account's ID, default status and registration
// time.
func prepareOwner(o *Owner) {
	o.ID = uuid.NewString()
	if o.Status == "" {
		o.Status = StatusActive
	}
	o.CreatedAt = time.Now().UTC().Truncate(time.Second)
}

// createOwner inserts o inside tx on the plan with planSlug (the cheapest
// active plan when empty).
func createOwner(tx *gorm.DB, o *Owner, planSlug string) error {
	var p Plan
	q := tx.Where("retired = ?", false).Order("price_cents, slug")
	if planSlug != "" {
		q = tx.Where("slug = ? AND retired = ?", planSlug, false)
	}
	if err := q.Take(&p).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return invalid("plan", "no such plan")
		}
		return err
	}
	o.PlanID = p.ID
	if err := o.Validate(); err != nil {
		return err
	}
	return tx.Create(o).Error
}

// GetOwner returns an owner by ID.
func (s *Store) GetOwner(ctx context.Context, id string) (Owner, error) {
	var o Owner
	if err := s.read(ctx).Where("id = ?", id).Take(&o).Error; err != nil {
		return Owner{}, translate(err)
	}
	return o, nil
}

// GetOwnerByEmail returns an owner by (normalised) email.
func (s *Store) GetOwnerByEmail(ctx context.Context, email string) (Owner, error) {
	var o Owner
	if err := s.read(ctx).Where("email = ?", email).Take(&o).Error; err != nil {
		return Owner{}, translate(err)
	}
	return o, nil
}

// CountAdmins returns how many operator accounts exist.
func (s *Store) CountAdmins(ctx context.Context) (int64, error) {
	var n int64
	err := s.read(ctx).Model(&Owner{}).Where("role = ?", RoleAdmin).Count(&n).Error
	return n, translate(err)
}

// ListOwners pages through accounts ordered by ID.
func (s *Store) ListOwners(ctx context.Context, after string, limit int) ([]Owner, error) {
	var out []Owner
	err := s.read(ctx).Where("id > ?", after).Order("id").Limit(limit).Find(&out).Error
	return out, translate(err)
}

// SetOwnerPlan moves an owner to an active plan. Moving to a plan whose
// limits are below the owner's current usage is refused with ErrPlanLimit.
func (s *Store) SetOwnerPlan(ctx context.Context, ownerID, planSlug string, allowRetired bool) (Owner, error) {
	var o Owner
	_, err := s.writeChange(ctx, func(tx *gorm.DB, ch *Change) error {
		var err error
		o, *ch, err = setOwnerPlan(tx, ownerID, planSlug, allowRetired)
		return err
	})
	if err != nil {
		return Owner{}, err
	}
	return o, nil
}

// setOwnerPlan moves the owner to the plan with planSlug inside tx and
// returns the updated owner, and a Change asking the nodes of pools the
// owner gained or lost to resync.
func setOwnerPlan(tx *gorm.DB, ownerID, planSlug string, allowRetired bool) (Owner, Change, error) {
	return moveOwnerPlan(tx, ownerID, planSlug, allowRetired, true)
}

// moveOwnerPlan is setOwnerPlan; with checkUsage false it moves the owner
// even when they use more than the new plan allows (billing returning an
// owner to the free plan: what is registered stays registered, and new
// registrations are held to the new limits).
func moveOwnerPlan(tx *gorm.DB, ownerID, planSlug string, allowRetired, checkUsage bool) (Owner, Change, error) {
	// On PostgreSQL, take the locks CreateApp (owner row) and device
	// writers (revision row) take, so the usage counted below cannot grow
	// before the new plan is committed.
	if err := lockRevision(tx); err != nil {
		return Owner{}, Change{}, err
	}
	q := tx.Where("id = ?", ownerID)
	if tx.Dialector.Name() == DriverPostgres {
		q = q.Clauses(clause.Locking{Strength: "NO KEY UPDATE"})
	}
	var o Owner
	if err := q.Take(&o).Error; err != nil {
		return Owner{}, Change{}, err
	}
	var p Plan
	if err := tx.Where("slug = ?", planSlug).Take(&p).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return Owner{}, Change{}, invalid("plan", "no such plan")
		}
		return Owner{}, Change{}, err
	}
	if p.Retired && !allowRetired && p.ID != o.PlanID {
		return Owner{}, Change{}, invalid("plan", "this plan is retired")
	}
	var apps, devices int64
	if err := tx.Model(&App{}).Where("owner_id = ?", ownerID).Count(&apps).Error; err != nil {
		return Owner{}, Change{}, err
	}
	if err := tx.Model(&Device{}).Joins("JOIN apps ON apps.id = devices.app_id").Where("apps.owner_id = ?", ownerID).Count(&devices).Error; err != nil {
		return Owner{}, Change{}, err
	}
	if checkUsage && (apps > int64(p.MaxApps) || devices > int64(p.MaxDevices)) {
		return Owner{}, Change{}, ErrPlanLimit
	}
	before, err := planPools(tx, o.PlanID)
	if err != nil {
		return Owner{}, Change{}, err
	}
	after, err := planPools(tx, p.ID)
	if err != nil {
		return Owner{}, Change{}, err
	}
	o.PlanID = p.ID
	if err := tx.Model(&Owner{}).Where("id = ?", ownerID).Update("plan_id", p.ID).Error; err != nil {
		return Owner{}, Change{}, err
	}
	var ch Change
	if devices > 0 {
		if ch, err = resyncChange(tx, symDiff(before, after)); err != nil {
			return Owner{}, Change{}, err
		}
	}
	return o, ch, nil
}

// OwnerUpdate holds the fields an operator may change; nil leaves a field
// as it is. ClearLegalHold releases a hold.
type OwnerUpdate struct {
	Status         *string
	PlanSlug       *string
	LegalHold      *string
	ClearLegalHold bool
}

// UpdateOwner applies an operator's change, all of it or (on an error)
// none of it.
func (s *Store) UpdateOwner(ctx context.Context, id string, u OwnerUpdate) (Owner, error) {
	var o Owner
	_, err := s.writeChange(ctx, func(tx *gorm.DB, ch *Change) error {
		if u.PlanSlug != nil {
			var err error
			if _, *ch, err = setOwnerPlan(tx, id, *u.PlanSlug, true); err != nil {
				return err
			}
		}
		if err := tx.Where("id = ?", id).Take(&o).Error; err != nil {
			return err
		}
		wasActive := o.Status == StatusActive
		if u.Status != nil {
			o.Status = *u.Status
		}
		if u.ClearLegalHold {
			o.LegalHold = nil
		} else if u.LegalHold != nil {
			o.LegalHold = u.LegalHold
		}
		if err := o.Validate(); err != nil {
			return err
		}
		if err := tx.Model(&Owner{}).Where("id = ?", id).
			Updates(map[string]any{"status": o.Status, "legal_hold": o.LegalHold}).Error; err != nil {
			return err
		}
		if wasActive == (o.Status == StatusActive) {
			return nil
		}
		// Suspending takes the owner's devices off every node; reactivating
		// puts them back.
		pools, err := ownerPools(tx, id, o.PlanID)
		if err != nil {
			return err
		}
		for p := range pools {
			ch.Resync = append(ch.Resync, p)
		}
		if len(ch.Resync) > 0 && ch.Revision == 0 {
			ch.Revision, err = bumpRevision(tx)
		}
		return err
	})
	if err != nil {
		return Owner{}, err
	}
	return o, nil
}

// SetAcceptedPolicy records the privacy policy version the owner accepted.
func (s *Store) SetAcceptedPolicy(ctx context.Context, ownerID, version string) error {
	if !validText(version, 32) {
		return invalid("version", "must be 1-32 printable characters")
	}
	return s.write(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&Owner{}).Where("id = ?", ownerID).Update("accepted_policy_version", version)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// BumpTokenEpoch invalidates every sign-in token issued to the owner so far.
func (s *Store) BumpTokenEpoch(ctx context.Context, id string) error {
	return s.write(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&Owner{}).Where("id = ?", id).Update("token_epoch", gorm.Expr("token_epoch + 1"))
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// Stats are aggregate counts for /metrics.
type Stats struct {
	Owners, Apps, Devices, Nodes int64
	Revision                     int64
}

// Stats counts rows; nothing per owner or device.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	db := s.read(ctx)
	for _, c := range []struct {
		model any
		dst   *int64
	}{{&Owner{}, &st.Owners}, {&App{}, &st.Apps}, {&Device{}, &st.Devices}, {&Node{}, &st.Nodes}} {
		if err := db.Model(c.model).Count(c.dst).Error; err != nil {
			return Stats{}, translate(err)
		}
	}
	if err := db.Model(&SyncState{}).Where("id = 1").Pluck("revision", &st.Revision).Error; err != nil {
		return Stats{}, translate(err)
	}
	return st, nil
}
