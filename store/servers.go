package store

import "context"

// Server is a node with its pool, as offered to an owner's devices.
type Server struct {
	Node
	PoolName, Region, Country, City string
}

// serversQuery selects enabled nodes of the pools an owner may use: the
// shared pools the owner's plan grants and the owner's own dedicated pools
// (another owner's dedicated pool never, even if a plan names it).
const serversQuery = `SELECT nodes.id, nodes.pool_id, nodes.name, nodes.endpoint, nodes.public_key, nodes.enabled,
		pools.name, pools.region, pools.country, pools.city
	FROM nodes JOIN pools ON pools.id = nodes.pool_id
	WHERE nodes.enabled = ? AND (
		(pools.owner_id IS NULL AND pools.id IN (SELECT plan_pools.pool_id FROM plan_pools JOIN owners ON owners.plan_id = plan_pools.plan_id WHERE owners.id = ?))
		OR pools.owner_id = ?)`

// ListServers returns the servers the owner's devices may use, ordered by
// region and name.
func (s *Store) ListServers(ctx context.Context, ownerID string) ([]Server, error) {
	return s.servers(ctx, serversQuery+` ORDER BY pools.region, nodes.name, nodes.id`, true, ownerID, ownerID)
}

// GetServer returns one server the owner's devices may use.
func (s *Store) GetServer(ctx context.Context, ownerID, nodeID string) (Server, error) {
	out, err := s.servers(ctx, serversQuery+` AND nodes.id = ?`, true, ownerID, ownerID, nodeID)
	if err != nil {
		return Server{}, err
	}
	if len(out) == 0 {
		return Server{}, ErrNotFound
	}
	return out[0], nil
}

// ServerGrant is what an owner's servers come from: the owner's plan, how
// many shared pools it includes and how many dedicated pools the owner
// has. It explains an empty ListServers.
type ServerGrant struct {
	PlanName  string
	PlanPools int
	OwnPools  int
}

// GetServerGrant returns where the owner's servers come from.
func (s *Store) GetServerGrant(ctx context.Context, ownerID string) (ServerGrant, error) {
	var rows []ServerGrant
	err := s.read(ctx).Raw(`SELECT plans.name AS plan_name,
		(SELECT COUNT(*) FROM plan_pools JOIN pools ON pools.id = plan_pools.pool_id
			WHERE plan_pools.plan_id = plans.id AND pools.owner_id IS NULL) AS plan_pools,
		(SELECT COUNT(*) FROM pools WHERE pools.owner_id = owners.id) AS own_pools
		FROM owners JOIN plans ON plans.id = owners.plan_id WHERE owners.id = ?`, ownerID).Scan(&rows).Error
	if err != nil {
		return ServerGrant{}, translate(err)
	}
	if len(rows) == 0 {
		return ServerGrant{}, ErrNotFound
	}
	return rows[0], nil
}

func (s *Store) servers(ctx context.Context, q string, args ...any) ([]Server, error) {
	rows, err := s.read(ctx).Raw(q, args...).Rows()
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	var out []Server
	for rows.Next() {
		var v Server
		if err := rows.Scan(&v.ID, &v.PoolID, &v.Name, &v.Endpoint, &v.PublicKey, &v.Enabled,
			&v.PoolName, &v.Region, &v.Country, &v.City); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, translate(rows.Err())
}
