package api

import "time"

// Pool is a group of nodes, usually a region.
type Pool struct {
	ID      string  `json:"id"`
	Name    string  `json:"name"`
	Region  string  `json:"region"`
	Country string  `json:"country"`
	City    string  `json:"city"`
	OwnerID *string `json:"owner_id"`
	// Plans are the slugs of the plans that include a shared pool, retired
	// ones too; empty for a dedicated pool, which serves its owner alone.
	Plans []string `json:"plans"`
	// InNoPlan is true for a shared pool that no plan includes: its nodes
	// serve nobody until a plan includes it.
	InNoPlan bool `json:"in_no_plan"`
}

// PoolInput creates a pool.
type PoolInput struct {
	Name    string `json:"name"`
	Region  string `json:"region"`
	Country string `json:"country"`
	City    string `json:"city"`
	// Plans are the plans (by slug, or by ID) that include a new shared
	// pool; operators only. A shared pool created without plans serves
	// nobody until a plan includes it. Owners' dedicated pools are in no
	// plan, so an owner sending plans gets invalid_request.
	Plans []string `json:"plans,omitempty"`
}

// PoolList is a list of pools.
type PoolList struct {
	Pools []Pool `json:"pools"`
}

// EnrollmentToken is a one-use token, shown once.
type EnrollmentToken struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	PoolID    string    `json:"pool_id"`
}

// Node is a node as operators see it, with its last aggregate status.
type Node struct {
	ID        string      `json:"id"`
	PoolID    string      `json:"pool_id"`
	Pool      string      `json:"pool"`
	Name      string      `json:"name"`
	Endpoint  string      `json:"endpoint"`
	PublicKey string      `json:"public_key"`
	Enabled   bool        `json:"enabled"`
	Online    bool        `json:"online"`
	Status    *NodeStatus `json:"status"`
}

// NodeList is a list of nodes.
type NodeList struct {
	Nodes []Node `json:"nodes"`
}

// NodeUpdate enables or disables a node.
type NodeUpdate struct {
	Enabled *bool `json:"enabled"`
}
