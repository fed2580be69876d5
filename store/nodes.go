package store

import (
	"context"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
)

var countryRE = regexp.MustCompile(`^[A-Z]{2}$`)

// Validate reports whether p can be stored.
func (p *Pool) Validate() error {
	switch {
	case !validText(p.Name, 100):
		return invalid("name", "must be 1-100 printable characters")
	case !validText(p.Region, 64):
		return invalid("region", "must be 1-64 printable characters")
	case !countryRE.MatchString(p.Country):
		return invalid("country", "must be an ISO 3166 alpha-2 code such as DE")
	case !validText(p.City, 100):
		return invalid("city", "must be 1-100 printable characters")
	}
	return nil
}

// CreatePool stores a pool; OwnerID set makes it that owner's dedicated
// pool. ErrConflict when the name is taken.
func (s *Store) CreatePool(ctx context.Context, p Pool) (Pool, error) {
	p.ID = uuid.NewString()
	if err := p.Validate(); err != nil {
		return Pool{}, err
	}
	if err := s.write(ctx, func(tx *gorm.DB) error { return tx.Create(&p).Error }); err != nil {
		return Pool{}, err
	}
	return p, nil
}

// ListPools returns every pool (ownerID "") or one owner's dedicated pools.
func (s *Store) ListPools(ctx context.Context, ownerID string) ([]Pool, error) {
	var out []Pool
	q := s.read(ctx).Order("region, name")
	if ownerID != "" {
		q = q.Where("owner_id = ?", ownerID)
	}
	err := q.Find(&out).Error
	return out, translate(err)
}

// GetPool returns a pool by ID.
func (s *Store) GetPool(ctx context.Context, id string) (Pool, error) {
	var p Pool
	err := s.read(ctx).Where("id = ?", id).Take(&p).Error
	return p, translate(err)
}

// CreateEnrollmentToken stores the hash of a one-use token for the pool and
// purges the tokens that expired before now (the caller's clock, the one the
// expiry was computed with and that EnrollNode checks against).
func (s *Store) CreateEnrollmentToken(ctx context.Context, poolID, hash string, expires, now time.Time) error {
	if !hexHashRE.MatchString(hash) {
		return invalid("hash", "must be a hex SHA-256")
	}
	return s.write(ctx, func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&Pool{}).Where("id = ?", poolID).Count(&n).Error; err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		// Purge expired tokens while here: they are useless and unneeded.
		if err := tx.Where("expires_at < ?", now.UTC()).Delete(&EnrollmentToken{}).Error; err != nil {
			return err
		}
		return tx.Create(&EnrollmentToken{Hash: hash, PoolID: poolID, ExpiresAt: expires.UTC()}).Error
	})
}

// ValidateEndpoint checks a node's public host:port.
func ValidateEndpoint(field, ep string) error {
	host, port, err := net.SplitHostPort(ep)
	if err != nil || host == "" || len(ep) > 300 {
		return invalid(field, "must be host:port")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return invalid(field, "port must be 1-65535")
	}
	if strings.ContainsAny(host, " /\\@") || !validText(host, 253) {
		return invalid(field, "host is not valid")
	}
	return nil
}

// EnrollNode spends a one-use enrollment token (given as its hash) and
// stores the node. ErrNotFound when the token is unknown, used or expired;
// ErrConflict when the public key is already enrolled.
func (s *Store) EnrollNode(ctx context.Context, tokenHash string, n Node, now time.Time) (Node, error) {
	pub, err := ValidatePublicKey("public_key", n.PublicKey)
	if err != nil {
		return Node{}, err
	}
	n.PublicKey = pub
	if !validText(n.Name, 100) {
		return Node{}, invalid("name", "must be 1-100 printable characters")
	}
	if err := ValidateEndpoint("endpoint", n.Endpoint); err != nil {
		return Node{}, err
	}
	if !hexHashRE.MatchString(n.CredentialHash) {
		return Node{}, invalid("credential_hash", "must be a hex SHA-256")
	}
	n.ID = uuid.NewString()
	n.Enabled = true
	err = s.write(ctx, func(tx *gorm.DB) error {
		var t EnrollmentToken
		if err := tx.Where("hash = ?", tokenHash).Take(&t).Error; err != nil {
			return err
		}
		if err := tx.Where("hash = ?", tokenHash).Delete(&EnrollmentToken{}).Error; err != nil {
			return err
		}
		if !now.Before(t.ExpiresAt) {
			return ErrNotFound
		}
		var taken int64
		if err := tx.Model(&Node{}).Where("public_key = ?", pub).Count(&taken).Error; err != nil {
			return err
		}
		if taken > 0 {
			return ErrConflict
		}
		n.PoolID = t.PoolID
		if err := checkOwnNodeLimit(tx, t.PoolID); err != nil {
			return err
		}
		return tx.Create(&n).Error
	})
	if err != nil {
		return Node{}, err
	}
	return n, nil
}

// NodeByCredential looks a node up by the SHA-256 of its credential.
func (s *Store) NodeByCredential(ctx context.Context, hash string) (Node, error) {
	var n Node
	err := s.read(ctx).Where("credential_hash = ?", hash).Take(&n).Error
	return n, translate(err)
}

// GetNode returns a node by ID.
func (s *Store) GetNode(ctx context.Context, id string) (Node, error) {
	var n Node
	err := s.read(ctx).Where("id = ?", id).Take(&n).Error
	return n, translate(err)
}

// NodeWithPool is a node with its pool, for operators' lists.
type NodeWithPool struct {
	Node
	Pool Pool
}

// ListNodes returns every node (ownerID "") or those of one owner's
// dedicated pools, with their pools.
func (s *Store) ListNodes(ctx context.Context, ownerID string) ([]NodeWithPool, error) {
	pools, err := s.ListPools(ctx, ownerID)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]Pool, len(pools))
	ids := make([]string, 0, len(pools))
	for _, p := range pools {
		byID[p.ID] = p
		ids = append(ids, p.ID)
	}
	var nodes []Node
	if len(ids) > 0 {
		if err := s.read(ctx).Where("pool_id IN ?", ids).Order("name, id").Find(&nodes).Error; err != nil {
			return nil, translate(err)
		}
	}
	out := make([]NodeWithPool, len(nodes))
	for i, n := range nodes {
		out[i] = NodeWithPool{Node: n, Pool: byID[n.PoolID]}
	}
	return out, nil
}

// SetNodeEnabled enables or disables a node. A disabled node is offered to
// no client and is sent an empty peer set; its Change makes the
// nodes of its pool resync so the node drops or regains its peers at once.
func (s *Store) SetNodeEnabled(ctx context.Context, id string, enabled bool) (Node, error) {
	var n Node
	_, err := s.writeChange(ctx, func(tx *gorm.DB, ch *Change) error {
		if err := tx.Where("id = ?", id).Take(&n).Error; err != nil {
			return err
		}
		if n.Enabled == enabled {
			return nil
		}
		n.Enabled = enabled
		if err := tx.Model(&Node{}).Where("id = ?", id).Update("enabled", enabled).Error; err != nil {
			return err
		}
		var err error
		*ch, err = resyncChange(tx, []string{n.PoolID})
		return err
	})
	if err != nil {
		return Node{}, err
	}
	return n, nil
}

// DeleteNode removes a node; its credential stops working at once.
func (s *Store) DeleteNode(ctx context.Context, id string) error {
	return s.write(ctx, func(tx *gorm.DB) error {
		res := tx.Where("id = ?", id).Delete(&Node{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// checkOwnNodeLimit returns ErrPlanLimit when pool is an owner's dedicated
// pool and the owner already runs as many nodes as the plan allows.
func checkOwnNodeLimit(tx *gorm.DB, poolID string) error {
	var q struct {
		OwnerID     *string
		MaxOwnNodes int64
		Held        bool
		Nodes       int64
	}
	err := tx.Raw(`SELECT pools.owner_id AS owner_id,
			COALESCE((SELECT plans.max_own_nodes FROM owners `+limitsPlanJoin+` WHERE owners.id = pools.owner_id), 0) AS max_own_nodes,
			EXISTS (SELECT 1 FROM owner_billing WHERE owner_billing.owner_id = pools.owner_id AND owner_billing.limit_plan_id IS NOT NULL) AS held,
			(SELECT COUNT(*) FROM nodes JOIN pools p2 ON p2.id = nodes.pool_id WHERE p2.owner_id = pools.owner_id) AS nodes
		FROM pools WHERE pools.id = ?`, poolID).Scan(&q).Error
	switch {
	case err != nil:
		return err
	case q.OwnerID == nil:
		return nil // a shared pool: the operator's own infrastructure
	case q.Nodes >= q.MaxOwnNodes:
		return planLimit{Max: q.MaxOwnNodes, Held: q.Held}.err()
	}
	return nil
}

// CreateOwnerPool creates a dedicated pool for the owner, whose plan must
// allow own nodes.
func (s *Store) CreateOwnerPool(ctx context.Context, ownerID string, p Pool) (Pool, error) {
	p.ID = uuid.NewString()
	p.OwnerID = &ownerID
	if err := p.Validate(); err != nil {
		return Pool{}, err
	}
	err := s.write(ctx, func(tx *gorm.DB) error {
		var max []planLimit
		if err := tx.Raw(`SELECT plans.max_own_nodes AS max, owner_billing.limit_plan_id IS NOT NULL AS held FROM owners `+limitsPlanJoin+` WHERE owners.id = ?`, ownerID).
			Scan(&max).Error; err != nil {
			return err
		}
		if len(max) == 0 {
			return ErrNotFound
		}
		if max[0].Max == 0 {
			return max[0].err()
		}
		return tx.Create(&p).Error
	})
	if err != nil {
		return Pool{}, err
	}
	return p, nil
}

// GetOwnerPool returns one of the owner's dedicated pools.
func (s *Store) GetOwnerPool(ctx context.Context, ownerID, poolID string) (Pool, error) {
	var p Pool
	err := s.read(ctx).Where("id = ? AND owner_id = ?", poolID, ownerID).Take(&p).Error
	return p, translate(err)
}

// DeletePool removes a pool with its nodes; ownerID scopes the deletion to
// that owner's dedicated pools ("" for an operator, any pool).
func (s *Store) DeletePool(ctx context.Context, ownerID, poolID string) error {
	return s.write(ctx, func(tx *gorm.DB) error {
		q := tx.Where("id = ?", poolID)
		if ownerID != "" {
			q = q.Where("owner_id = ?", ownerID)
		}
		res := q.Delete(&Pool{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// DeleteOwnerNode removes a node of one of the owner's dedicated pools.
func (s *Store) DeleteOwnerNode(ctx context.Context, ownerID, nodeID string) error {
	return s.write(ctx, func(tx *gorm.DB) error {
		res := tx.Where("id = ? AND pool_id IN (SELECT id FROM pools WHERE owner_id = ?)", nodeID, ownerID).Delete(&Node{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return nil
	})
}
