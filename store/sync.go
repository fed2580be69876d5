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
const (
	sharedPoolPeers = `SELECT d.id, d.public_key, d.ipv4, d.ipv6, d.revision
		FROM devices d JOIN apps a ON a.id = d.app_id JOIN owners o ON o.id = a.owner_id
		WHERE o.status = 'active' AND o.plan_id IN (SELECT plan_id FROM plan_pools WHERE pool_id = ?)`
	dedicatedPoolPeers = `SELECT d.id, d.public_key, d.ipv4, d.ipv6, d.revision
		FROM devices d JOIN apps a ON a.id = d.app_id JOIN owners o ON o.id = a.owner_id
		WHERE o.status = 'active' AND o.id = ?`
)

// snapshotChunk is how many rows a full snapshot reads at a time.
const snapshotChunk = 5000

// PoolPeers calls fn for each device the nodes of pool carry whose
// revision is in (since, upto]. It reads in one transaction, so the rows
// are consistent, and in chunks, so memory does not grow with the pool.
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
	base, arg := sharedPoolPeers, p.ID
	if p.OwnerID != nil {
		base, arg = dedicatedPoolPeers, *p.OwnerID
	}
	return translate(s.r.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if start != nil {
			var n int64
			if err := tx.Raw(`SELECT COUNT(*) FROM (`+base+` AND d.revision > ? AND d.revision <= ?) AS sel`, arg, since, upto).
				Scan(&n).Error; err != nil {
				return err
			}
			if err := start(n); err != nil {
				return err
			}
		}
		after := ""
		for {
			rows, err := tx.Raw(base+` AND d.revision > ? AND d.revision <= ? AND d.id > ? ORDER BY d.id LIMIT ?`,
				arg, since, upto, after, snapshotChunk).Rows()
			if err != nil {
				return err
			}
			n, last, err := scanPeers(rows, fn)
			if err != nil {
				return err
			}
			if n < snapshotChunk {
				return nil
			}
			after = last
		}
	}, &sql.TxOptions{ReadOnly: true}))
}

// scanPeers feeds rows to fn and returns how many there were and the last
// row's device ID for keyset paging.
func scanPeers(rows *sql.Rows, fn func(PeerRow) error) (int, string, error) {
	defer rows.Close()
	n, last := 0, ""
	for rows.Next() {
		var r PeerRow
		if err := rows.Scan(&last, &r.PublicKey, &r.IPv4, &r.IPv6, &r.Revision); err != nil {
			return n, last, err
		}
		n++
		if err := fn(r); err != nil {
			return n, last, err
		}
	}
	return n, last, rows.Err()
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
