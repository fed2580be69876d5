package store

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"gorm.io/gorm"
)

var slugRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)
var currencyRE = regexp.MustCompile(`^[A-Z]{3}$`)

// Validate reports whether p can be stored.
func (p *Plan) Validate() error {
	switch {
	case !slugRE.MatchString(p.Slug):
		return invalid("slug", "must be 1-32 lower-case letters, digits or dashes")
	case !validText(p.Name, 64):
		return invalid("name", "must be 1-64 printable characters")
	case p.MaxApps < 0 || p.MaxApps > 1_000_000:
		return invalid("max_apps", "must be between 0 and 1000000")
	case p.MaxDevices < 0 || p.MaxDevices > 100_000_000:
		return invalid("max_devices", "must be between 0 and 100000000")
	case p.MaxOwnNodes < 0 || p.MaxOwnNodes > 10_000:
		return invalid("max_own_nodes", "must be between 0 and 10000")
	case p.PriceCents < 0 || p.PriceCents > 100_000_000:
		return invalid("price_cents", "must be between 0 and 100000000")
	case !currencyRE.MatchString(p.Currency):
		return invalid("currency", "must be an ISO 4217 code such as EUR")
	}
	return nil
}

// PlanWithPools is a plan and the IDs of the pools it grants.
type PlanWithPools struct {
	Plan
	PoolIDs []string
}

// DefaultPlans is the catalogue seeded on first start.
func DefaultPlans() []Plan {
	return []Plan{
		{Slug: "free", Name: "Free", MaxApps: 1, MaxDevices: 10, MaxOwnNodes: 0, PriceCents: 0, Currency: "EUR"},
		{Slug: "pro", Name: "Pro", MaxApps: 5, MaxDevices: 10_000, MaxOwnNodes: 2, PriceCents: 4900, Currency: "EUR"},
		{Slug: "business", Name: "Business", MaxApps: 50, MaxDevices: 1_000_000, MaxOwnNodes: 20, PriceCents: 49900, Currency: "EUR"},
	}
}

// seedLockKey names the PostgreSQL advisory lock that serialises SeedPlans.
const seedLockKey = migrationLockKey + 1

// SeedPlans inserts plans when the catalogue is empty, and reports whether
// it did. Replicas starting together take turns (SQLite's writer lock, a
// PostgreSQL advisory lock), so exactly one of them seeds.
func (s *Store) SeedPlans(ctx context.Context, plans []Plan) (bool, error) {
	seeded := false
	err := s.write(ctx, func(tx *gorm.DB) error {
		if tx.Dialector.Name() == DriverPostgres {
			if err := tx.Exec("SELECT pg_advisory_xact_lock(?)", seedLockKey).Error; err != nil {
				return err
			}
		}
		var n int64
		if err := tx.Model(&Plan{}).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		for i := range plans {
			p := plans[i]
			if err := p.Validate(); err != nil {
				return err
			}
			p.ID = uuid.NewString()
			if err := tx.Create(&p).Error; err != nil {
				return err
			}
		}
		seeded = true
		return nil
	})
	return seeded, err
}

// ListPlans returns the catalogue ordered by price; retired plans only when
// asked.
func (s *Store) ListPlans(ctx context.Context, includeRetired bool) ([]PlanWithPools, error) {
	db := s.read(ctx)
	var plans []Plan
	q := db.Order("price_cents, slug")
	if !includeRetired {
		q = q.Where("retired = ?", false)
	}
	if err := q.Find(&plans).Error; err != nil {
		return nil, translate(err)
	}
	var links []PlanPool
	if err := db.Order("pool_id").Find(&links).Error; err != nil {
		return nil, translate(err)
	}
	pools := map[string][]string{}
	for _, l := range links {
		pools[l.PlanID] = append(pools[l.PlanID], l.PoolID)
	}
	out := make([]PlanWithPools, len(plans))
	for i, p := range plans {
		out[i] = PlanWithPools{Plan: p, PoolIDs: pools[p.ID]}
	}
	return out, nil
}

// GetPlan returns a plan by ID.
func (s *Store) GetPlan(ctx context.Context, id string) (PlanWithPools, error) {
	return getPlan(s.read(ctx), "id = ?", id)
}

// GetPlanBySlug returns a plan by slug.
func (s *Store) GetPlanBySlug(ctx context.Context, slug string) (PlanWithPools, error) {
	return getPlan(s.read(ctx), "slug = ?", slug)
}

func getPlan(db *gorm.DB, where string, arg string) (PlanWithPools, error) {
	var p Plan
	if err := db.Where(where, arg).Take(&p).Error; err != nil {
		return PlanWithPools{}, translate(err)
	}
	var ids []string
	if err := db.Model(&PlanPool{}).Where("plan_id = ?", p.ID).Order("pool_id").Pluck("pool_id", &ids).Error; err != nil {
		return PlanWithPools{}, translate(err)
	}
	if len(ids) == 0 {
		ids = nil // as ListPlans reports a plan without pools
	}
	return PlanWithPools{Plan: p, PoolIDs: ids}, nil
}

// CreatePlan stores a new plan; ErrConflict when the slug is taken.
func (s *Store) CreatePlan(ctx context.Context, p PlanWithPools) (PlanWithPools, error) {
	if err := p.Validate(); err != nil {
		return PlanWithPools{}, err
	}
	p.ID = uuid.NewString()
	err := s.write(ctx, func(tx *gorm.DB) error {
		if err := tx.Create(&p.Plan).Error; err != nil {
			return err
		}
		return setPlanPools(tx, p.ID, p.PoolIDs)
	})
	if err != nil {
		return PlanWithPools{}, err
	}
	return p, nil
}

// UpdatePlan replaces a plan's fields and pools. When the pools change,
// its Change asks the affected pools' nodes to resync.
func (s *Store) UpdatePlan(ctx context.Context, p PlanWithPools) (PlanWithPools, error) {
	if err := p.Validate(); err != nil {
		return PlanWithPools{}, err
	}
	_, err := s.writeChange(ctx, func(tx *gorm.DB, ch *Change) error {
		before, err := planPools(tx, p.ID)
		if err != nil {
			return err
		}
		res := tx.Model(&Plan{}).Where("id = ?", p.ID).Select("*").Omit("id").Updates(&p.Plan)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		if err := tx.Where("plan_id = ?", p.ID).Delete(&PlanPool{}).Error; err != nil {
			return err
		}
		if err := setPlanPools(tx, p.ID, p.PoolIDs); err != nil {
			return err
		}
		after, err := planPools(tx, p.ID)
		if err != nil {
			return err
		}
		// Nodes of a pool the plan gained or lost carry a different set
		// of devices now.
		*ch, err = resyncChange(tx, symDiff(before, after))
		return err
	})
	if err != nil {
		return PlanWithPools{}, err
	}
	return p, nil
}

func setPlanPools(tx *gorm.DB, planID string, poolIDs []string) error {
	seen := map[string]bool{}
	for _, id := range poolIDs {
		if seen[id] {
			continue
		}
		seen[id] = true
		var n int64
		if err := tx.Model(&Pool{}).Where("id = ?", id).Count(&n).Error; err != nil {
			return err
		}
		if n == 0 {
			return invalid("pools", "unknown pool %q", id)
		}
		if err := tx.Create(&PlanPool{PlanID: planID, PoolID: id}).Error; err != nil {
			return err
		}
	}
	return nil
}

// CreateSharedPool stores a shared pool and includes it in plans (each a
// plan's slug or ID), in one transaction: invalid "plans" for an unknown
// plan, ErrConflict when the name is taken. A new pool has no nodes yet,
// so including it changes no node's peers.
func (s *Store) CreateSharedPool(ctx context.Context, p Pool, plans []string) (Pool, error) {
	p.ID = uuid.NewString()
	p.OwnerID = nil
	if err := p.Validate(); err != nil {
		return Pool{}, err
	}
	err := s.write(ctx, func(tx *gorm.DB) error {
		ids := make([]string, 0, len(plans))
		for _, ref := range plans {
			var id []string
			if err := tx.Model(&Plan{}).Where("id = ? OR slug = ?", ref, ref).Pluck("id", &id).Error; err != nil {
				return err
			}
			if len(id) != 1 {
				return invalid("plans", "unknown plan %q", ref)
			}
			ids = append(ids, id[0])
		}
		if err := tx.Create(&p).Error; err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, id := range ids {
			if seen[id] {
				continue
			}
			seen[id] = true
			if err := tx.Create(&PlanPool{PlanID: id, PoolID: p.ID}).Error; err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return Pool{}, err
	}
	return p, nil
}

// PoolPlans returns, by pool ID, the slugs of the plans that include each
// pool (retired plans too), in slug order. A pool that no plan includes is
// absent.
func (s *Store) PoolPlans(ctx context.Context) (map[string][]string, error) {
	var rows []struct{ PoolID, Slug string }
	err := s.read(ctx).Table("plan_pools").Select("plan_pools.pool_id, plans.slug").
		Joins("JOIN plans ON plans.id = plan_pools.plan_id").Order("plans.slug").Scan(&rows).Error
	if err != nil {
		return nil, translate(err)
	}
	out := map[string][]string{}
	for _, r := range rows {
		out[r.PoolID] = append(out[r.PoolID], r.Slug)
	}
	return out, nil
}

// DeletePlan removes a plan; ErrConflict while owners are on it (retire it
// instead).
func (s *Store) DeletePlan(ctx context.Context, id string) error {
	return s.write(ctx, func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&Owner{}).Where("plan_id = ?", id).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return errors.Join(ErrConflict, errors.New("owners are on this plan; retire it instead"))
		}
		res := tx.Where("id = ?", id).Delete(&Plan{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// validText reports whether s is 1..max runes of printable, valid UTF-8
// without surrounding space.
func validText(s string, max int) bool {
	if s == "" || !utf8.ValidString(s) || utf8.RuneCountInString(s) > max || strings.TrimSpace(s) != s {
		return false
	}
	for _, r := range s {
		if !printable(r) {
			return false
		}
	}
	return true
}

// printable rejects control, format (bidi overrides, zero-width) and
// private-use characters, which have no place in names.
func printable(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0:
		return false
	case r >= 0x200b && r <= 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2060 && r <= 0x206f, r == 0xfeff:
		return false
	case r >= 0xe000 && r <= 0xf8ff, r >= 0xfff0:
		return false
	}
	return true
}
