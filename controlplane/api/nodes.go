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
	// Capacity compares the pool's peer set with the smallest peer limit
	// its nodes report; absent until a node of the pool reports a limit.
	Capacity *PoolCapacity `json:"capacity,omitempty"`
}

// PoolCapacity compares a pool's size with what its smallest node holds.
// Every node of a pool carries every device of the pool, so the pool
// outgrows its smallest node first.
type PoolCapacity struct {
	// Peers is the largest peer count a node of the pool reports: the
	// devices the pool carries.
	Peers int `json:"peers"`
	// SmallestNodeLimit is the smallest peer limit a node of the pool
	// reports (65,536 for a userspace node, 1,048,576 for a kernel one),
	// and SmallestNode that node's name.
	SmallestNodeLimit int    `json:"smallest_node_limit"`
	SmallestNode      string `json:"smallest_node"`
	// Warning is set when Peers reaches CapacityWarnPercent of
	// SmallestNodeLimit: that node will soon hold only part of the pool.
	Warning bool `json:"warning"`
}

// CapacityWarnPercent is how full (in percent of its smallest node's
// limit) a pool is when the control plane warns.
const CapacityWarnPercent = 90

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
