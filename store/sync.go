package store

import (
	"context"
	"database/sql"
	"fmt"

	"gorm.io/gorm"
)

// PeerRow is one device as a node needs it.
type PeerRow struct {
	PublicKey, IPv4, IPv6 string
	Revision              int64
}

// Eligibility: a node of pool P carries the devices of active owners who
// either own P (a dedicated pool) or are on a plan that grants P (a shared
// pool). A disabled node carries nothing.
//
// Two shapes of the same question. A full snapshot walks the owners' apps
// to their devices and streams them all. A delta starts from the revision
// index — few rows — and checks each device's app against the eligible
// apps; "app_id || ”" keeps SQLite from walking the app index instead,
// which would read every device of a large owner for each delta.
const (
	eligibleShared = `SELECT a.id FROM apps a JOIN owners o ON o.id = a.owner_id
		WHERE o.status = 'active' AND o.plan_id IN (SELECT plan_id FROM plan_pools WHERE pool_id = ?)`
	eligibleDedicated = `SELECT a.id FROM apps a JOIN owners o ON o.id = a.owner_id
		WHERE o.status = 'active' AND o.id = ?`
	snapshotPeers = `SELECT d.public_key, d.ipv4, d.ipv6, d.revision FROM devices d
		WHERE d.app_id IN (%s) AND d.revision <= ?`
	deltaPeers = `SELECT d.public_key, d.ipv4, d.ipv6, d.revision FROM devices d
		WHERE d.revision > ? AND d.revision <= ? AND (d.app_id || '') IN (%s)`
)

// PoolPeers calls fn for each device the nodes of pool carry whose
// revision is in (since, upto]. It reads in one transaction, so the rows
// are consistent, and streams them, so memory does not grow with the pool.
func (s *Store) PoolPeers(ctx context.Context, poolID string, since, upto int64, fn func(PeerRow) error) error {
	return s.poolPeers(ctx, poolID, since, upto, nil, fn)
}

// PoolSnapshot is PoolPeers for the complete set at upto (since 0), first
// telling start how many rows follow — counted in the same transaction,
// so the count is exact.
func (s *Store) PoolSnapshot(ctx context.Context, poolID string, upto int64, start func(count int64) error, fn func(PeerRow) error) error {
	return s.poolPeers(ctx, poolID, 0, upto, start, fn)
}

func (s *Store) poolPeers(ctx context.Context, poolID string, since, upto int64, start func(int64) error, fn func(PeerRow) error) error {
	p, err := s.GetPool(ctx, poolID)
	if err != nil {
		return err
	}
	eligible, arg := eligibleShared, p.ID
	if p.OwnerID != nil {
		eligible, arg = eligibleDedicated, *p.OwnerID
	}
	q, args := fmt.Sprintf(snapshotPeers, eligible), []any{arg, upto}
	if since > 0 {
		q, args = fmt.Sprintf(deltaPeers, eligible), []any{since, upto, arg}
	}
	return translate(s.r.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if start != nil {
			var n int64
			if err := tx.Raw(`SELECT COUNT(*) FROM (`+q+`) AS sel`, args...).Scan(&n).Error; err != nil {
				return err
			}
			if err := start(n); err != nil {
				return err
			}
		}
		// One query, read row by row: the driver streams the rows, so memory
		// stays flat however large the pool.
		rows, err := tx.Raw(q, args...).Rows()
		if err != nil {
			return err
		}
		return scanPeers(rows, fn)
	}, &sql.TxOptions{ReadOnly: true}))
}

// scanPeers feeds rows to fn.
func scanPeers(rows *sql.Rows, fn func(PeerRow) error) error {
	defer rows.Close()
	for rows.Next() {
		var r PeerRow
		if err := rows.Scan(&r.PublicKey, &r.IPv4, &r.IPv6, &r.Revision); err != nil {
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return rows.Err()
}

// CountPoolPeers returns how many devices the nodes of pool carry.
func (s *Store) CountPoolPeers(ctx context.Context, poolID string) (int64, error) {
	var n int64
	err := s.PoolPeers(ctx, poolID, 0, 1<<62, func(PeerRow) error { n++; return nil })
	return n, err
}

// planPools returns the shared pools a plan grants.
func planPools(tx *gorm.DB, planID string) (map[string]bool, error) {
	var ids []string
	if err := tx.Raw(`SELECT pp.pool_id FROM plan_pools pp JOIN pools p ON p.id = pp.pool_id
		WHERE pp.plan_id = ? AND p.owner_id IS NULL`, planID).Scan(&ids).Error; err != nil {
		return nil, fmt.Errorf("plan pools: %w", err)
	}
	out := make(map[string]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}

// ownerPools returns every pool carrying the owner's devices.
func ownerPools(tx *gorm.DB, ownerID, planID string) (map[string]bool, error) {
	pools, err := planPools(tx, planID)
	if err != nil {
		return nil, err
	}
	var own []string
	if err := tx.Model(&Pool{}).Where("owner_id = ?", ownerID).Pluck("id", &own).Error; err != nil {
		return nil, err
	}
	for _, id := range own {
		pools[id] = true
	}
	return pools, nil
}

// symDiff lists the keys in exactly one of a and b.
func symDiff(a, b map[string]bool) []string {
	var out []string
	for k := range a {
		if !b[k] {
			out = append(out, k)
		}
	}
	for k := range b {
		if !a[k] {
			out = append(out, k)
		}
	}
	return out
}

// resyncChange bumps the revision and returns a Change asking the nodes of
// pools for a full snapshot, or no Change when pools is empty.
func resyncChange(tx *gorm.DB, pools []string) (Change, error) {
	if len(pools) == 0 {
		return Change{}, nil
	}
	rev, err := bumpRevision(tx)
	if err != nil {
		return Change{}, err
	}
	return Change{Revision: rev, Resync: pools}, nil
}
