package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/controlplane/client"
)

// The pools and nodes commands exist twice: for an owner's dedicated pools
// ('traceless pools', 'traceless nodes') and for an operator's view of all
// of them ('traceless admin pools', 'traceless admin nodes'). scope picks
// the API calls of one.
type scope struct {
	admin       bool
	listPools   func(*client.Client, context.Context) ([]api.Pool, error)
	createPool  func(*client.Client, context.Context, api.PoolInput) (api.Pool, error)
	deletePool  func(*client.Client, context.Context, string) error
	enrollToken func(*client.Client, context.Context, string) (api.EnrollmentToken, error)
	listNodes   func(*client.Client, context.Context) ([]api.Node, error)
	deleteNode  func(*client.Client, context.Context, string) error
}

var (
	ownerScope = scope{
		listPools:   (*client.Client).Pools,
		createPool:  (*client.Client).CreatePool,
		deletePool:  (*client.Client).DeletePool,
		enrollToken: (*client.Client).CreateEnrollmentToken,
		listNodes:   (*client.Client).Nodes,
		deleteNode:  (*client.Client).DeleteNode,
	}
	adminScope = scope{
		admin:       true,
		listPools:   (*client.Client).AdminPools,
		createPool:  (*client.Client).AdminCreatePool,
		deletePool:  (*client.Client).AdminDeletePool,
		enrollToken: (*client.Client).AdminCreateEnrollmentToken,
		listNodes:   (*client.Client).AdminNodes,
		deleteNode:  (*client.Client).AdminDeleteNode,
	}
)

func (a *cli) poolsCommand(sc scope) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pools",
		Short: "Manage your dedicated pools (bring your own nodes)",
		Long: `Dedicated pools hold nodes you run yourself; only your apps' devices are
carried there. Your plan must allow own nodes. POOL is a pool's ID or
its name.`,
	}
	if sc.admin {
		cmd.Short = "Manage every pool"
		cmd.Long = `Shared pools group the nodes that plans grant; owners' dedicated pools are
listed too. POOL is a pool's ID or its name.`
	} else {
		cmd.GroupID = "owner"
	}
	cmd.AddCommand(a.poolsListCommand(sc), a.poolsCreateCommand(sc), a.poolsDeleteCommand(sc), a.poolsTokenCommand(sc))
	return cmd
}

func poolTable(t *table, admin bool, pools ...api.Pool) {
	if admin {
		t.row("ID", "NAME", "REGION", "COUNTRY", "CITY", "OWNER", "CAPACITY", "PLANS")
	} else {
		t.row("ID", "NAME", "REGION", "COUNTRY", "CITY", "CAPACITY")
	}
	for _, p := range pools {
		if admin {
			owner, plans := "shared", strings.Join(p.Plans, ",")
			if p.OwnerID != nil {
				owner, plans = *p.OwnerID, "(dedicated)"
			}
			if p.InNoPlan {
				plans = inNoPlanCell
			}
			t.row(p.ID, p.Name, p.Region, p.Country, p.City, owner, capacityCell(p.Capacity), plans)
		} else {
			t.row(p.ID, p.Name, p.Region, p.Country, p.City, capacityCell(p.Capacity))
		}
	}
}

// capacityCell is a pool's peers against its smallest node's limit,
// flagged NEAR: from api.CapacityWarnPercent on; "" before a node
// reported a limit.
func capacityCell(c *api.PoolCapacity) string {
	if c == nil {
		return ""
	}
	s := fmt.Sprintf("%d/%d", c.Peers, c.SmallestNodeLimit)
	if c.Warning {
		s = "NEAR:" + s
	}
	return s
}

// noteCapacity warns of pools whose device count nears their smallest
// node's peer limit.
func (a *cli) noteCapacity(pools ...api.Pool) {
	for _, p := range pools {
		if c := p.Capacity; c != nil && c.Warning {
			a.note("Pool %s carries %d devices; its smallest node, %s, holds at most %d peers: past that it applies only part "+
				"of the pool. Enroll nodes on the kernel backend, or split the pool.", cell(p.Name), c.Peers, cell(c.SmallestNode), c.SmallestNodeLimit)
		}
	}
}

// noteOverCapacity warns of nodes that hold only part of their pool.
func (a *cli) noteOverCapacity(nodes ...api.Node) {
	for _, n := range nodes {
		if n.Status != nil && n.Status.OverCapacity != nil {
			o := n.Status.OverCapacity
			a.note("Node %s is over capacity: it holds %d of its pool's %d peers (its WireGuard backend holds at most %d); %d wait for a place.",
				cell(n.Name), o.Applied, o.Desired, n.Status.PeerLimit, o.NotApplied)
		}
	}
}

// inNoPlanCell flags a shared pool that no plan includes.
const inNoPlanCell = "NONE: serves nobody"

// noteInNoPlan tells the operator which of pools no plan includes and how
// to include them: their nodes would serve nobody.
func (a *cli) noteInNoPlan(pools ...api.Pool) {
	for _, p := range pools {
		if p.InNoPlan {
			a.note("Pool %s is in no plan: its nodes serve nobody until a plan includes it "+
				"('traceless admin plans update PLAN --add-pool %s').", cell(p.Name), cell(p.ID))
		}
	}
}

func (a *cli) poolsListCommand(sc scope) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the pools",
		Args:  args(),
		RunE: a.ownerAction(func(ctx context.Context, c *client.Client, _ []string) error {
			pools, err := sc.listPools(c, ctx)
			if err != nil {
				return err
			}
			a.noteInNoPlan(pools...)
			a.noteCapacity(pools...)
			return a.emit(nonNil(pools), func(t *table) { poolTable(t, sc.admin, pools...) })
		}),
	}
}

func (a *cli) poolsCreateCommand(sc scope) *cobra.Command {
	var in api.PoolInput
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a pool",
		Args:  args(),
		RunE: a.ownerAction(func(ctx context.Context, c *client.Client, _ []string) error {
			if in.Name == "" || in.Region == "" || in.Country == "" || in.City == "" {
				return usagef("--name, --region, --country and --city are required")
			}
			p, err := sc.createPool(c, ctx, in)
			if err != nil {
				return err
			}
			a.noteInNoPlan(p)
			return a.emit(p, func(t *table) { poolTable(t, sc.admin, p) })
		}),
	}
	f := cmd.Flags()
	f.StringVar(&in.Name, "name", "", "name of the pool")
	f.StringVar(&in.Region, "region", "", "region, such as eu-central")
	f.StringVar(&in.Country, "country", "", "ISO 3166 alpha-2 country code, such as DE")
	f.StringVar(&in.City, "city", "", "city")
	if sc.admin {
		cmd.Long = `Create a shared pool. A pool serves the owners whose plan includes it:
name those plans with --plan (a slug or ID; repeat it or comma-separate).
A pool in no plan serves nobody until a plan includes it
('traceless admin plans update PLAN --add-pool POOL').`
		cmd.Example = "  traceless admin pools create --name Frankfurt --region eu-central --country DE --city Frankfurt --plan pro --plan business"
		f.StringSliceVar(&in.Plans, "plan", nil, "slug or ID of a plan that includes the pool (repeat or comma-separate)")
	}
	return cmd
}

// resolve turns an ID or a unique name into an ID, among the items that
// list returns; kind names them in errors.
func resolve[T any](ctx context.Context, kind, ref string, list func(context.Context) ([]T, error), idName func(T) (string, string)) (string, error) {
	if uuidRE.MatchString(ref) {
		return ref, nil
	}
	items, err := list(ctx)
	if err != nil {
		return "", err
	}
	var id string
	for _, it := range items {
		iid, name := idName(it)
		if iid == ref {
			return iid, nil
		}
		if name == ref {
			if id != "" {
				return "", fmt.Errorf("more than one %s is named %q; use its ID", kind, ref)
			}
			id = iid
		}
	}
	if id == "" {
		return "", fmt.Errorf("no %s has the ID or name %q", kind, ref)
	}
	return id, nil
}

func (sc scope) resolvePool(ctx context.Context, c *client.Client, ref string) (string, error) {
	return resolve(ctx, "pool", ref, func(ctx context.Context) ([]api.Pool, error) { return sc.listPools(c, ctx) },
		func(p api.Pool) (string, string) { return p.ID, p.Name })
}

func (sc scope) resolveNode(ctx context.Context, c *client.Client, ref string) (string, error) {
	return resolve(ctx, "node", ref, func(ctx context.Context) ([]api.Node, error) { return sc.listNodes(c, ctx) },
		func(n api.Node) (string, string) { return n.ID, n.Name })
}

func (a *cli) poolsDeleteCommand(sc scope) *cobra.Command {
	return &cobra.Command{
		Use:   "delete POOL",
		Short: "Delete a pool with its nodes",
		Long: `Delete a pool with its nodes and unused enrollment tokens; the nodes lose
their credentials at once.`,
		Args: args("POOL"),
		RunE: a.ownerAction(func(ctx context.Context, c *client.Client, argv []string) error {
			id, err := sc.resolvePool(ctx, c, argv[0])
			if err != nil {
				return err
			}
			if err := sc.deletePool(c, ctx, id); err != nil {
				return err
			}
			return a.done("Deleted pool %s.", argv[0])
		}),
	}
}

// tokenResult is the output of 'pools token'.
type tokenResult struct {
	api.EnrollmentToken
	// Command starts the node agent with the token, keeping the
	// credential on disk (api.AgentCredentialFile).
	Command string `json:"command"`
	// TmpfsCommand does the same with the credential on a tmpfs
	// (api.AgentTmpfsCredentialFile): after a reboot the node needs a new
	// token.
	TmpfsCommand string `json:"tmpfs_command"`
}

func (a *cli) poolsTokenCommand(sc scope) *cobra.Command {
	var endpoint string
	cmd := &cobra.Command{
		Use:   "token POOL",
		Short: "Issue a one-use enrollment token for a new node (shown once)",
		Long: `Issue a one-use token that lets one node join the pool before it expires,
and print the command that starts the node agent with it. The token is
shown only this once; the server keeps a hash. Give the node's public
--endpoint (HOST:PORT, what devices dial) to fill it in.

The command passes the token in the agent's environment, not as a flag,
and keeps the node's credential in ` + api.AgentCredentialFile + `, so the
node rejoins by itself after a reboot. The second command keeps it on
the tmpfs /run instead: nothing reaches the disk, but ` + api.AgentTmpfsConsequence + `.`,
		Args: args("POOL"),
		RunE: a.ownerAction(func(ctx context.Context, c *client.Client, argv []string) error {
			id, err := sc.resolvePool(ctx, c, argv[0])
			if err != nil {
				return err
			}
			if sc.admin {
				if err = a.warnPoolInNoPlan(ctx, c, sc, id); err != nil {
					return err
				}
			}
			tok, err := sc.enrollToken(c, ctx, id)
			if err != nil {
				return err
			}
			res := tokenResult{EnrollmentToken: tok,
				Command:      api.EnrollCommand(c.BaseURL(), tok.Token, endpoint, api.AgentCredentialFile),
				TmpfsCommand: api.EnrollCommand(c.BaseURL(), tok.Token, endpoint, api.AgentTmpfsCredentialFile)}
			a.note("The token is shown only this once and works once, until %s.", cell(tok.ExpiresAt))
			if endpoint == "" {
				a.note("Replace %s with the node's public address that devices dial, or give --endpoint.", api.EndpointPlaceholder)
			}
			if a.json() {
				return a.emit(res, nil)
			}
			_, err = fmt.Fprintf(a.stdout, "Enrollment token for pool %s:\n\n  %s\n\n"+
				"On the node, start the agent with (the token goes in its environment, out of the process list):\n\n  %s\n\n"+
				"It keeps its credential in %s and rejoins by itself after a reboot.\n"+
				"To keep the credential off the disk, on a tmpfs, use instead (%s):\n\n  %s\n",
				cell(argv[0]), cell(tok.Token), cell(res.Command), api.AgentCredentialFile, api.AgentTmpfsConsequence,
				cell(res.TmpfsCommand))
			return err
		}),
	}
	cmd.Flags().StringVar(&endpoint, "endpoint", "", "the node's public HOST:PORT, to fill in the command line")
	return cmd
}

// warnPoolInNoPlan notes when the pool with id is in no plan: a node
// enrolled there would serve nobody.
func (a *cli) warnPoolInNoPlan(ctx context.Context, c *client.Client, sc scope, id string) error {
	pools, err := sc.listPools(c, ctx)
	if err != nil {
		return err
	}
	for _, p := range pools {
		if p.ID == id {
			a.noteInNoPlan(p)
		}
	}
	return nil
}

func (a *cli) nodesCommand(sc scope) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "nodes",
		Short: "The nodes of your dedicated pools",
		Long: `The nodes you enrolled into your dedicated pools, with their last
aggregate status. NODE is a node's ID or its name.`,
	}
	if sc.admin {
		cmd.Short = "Manage every node"
		cmd.Long = `Every node with its last aggregate status and privacy posture. NODE is a
node's ID or its name.`
		cmd.AddCommand(a.nodesListCommand(sc), a.nodesEnableCommand(sc, true), a.nodesEnableCommand(sc, false),
			a.nodesDeleteCommand(sc))
	} else {
		cmd.GroupID = "owner"
		cmd.AddCommand(a.nodesListCommand(sc), a.nodesDeleteCommand(sc))
	}
	return cmd
}

// posture is OK when every privacy check of the node holds, FAIL when one
// does not, and "" before the node reported.
func posture(st *api.NodeStatus) string {
	switch {
	case st == nil:
		return ""
	case st.Posture.OK():
		return "OK"
	}
	return "FAIL"
}

func nodeTable(t *table, nodes ...api.Node) {
	t.row("ID", "NAME", "POOL", "ENDPOINT", "ENABLED", "ONLINE", "PEERS", "REVISION", "POSTURE")
	for _, n := range nodes {
		var peers, rev string
		if n.Status != nil {
			peers, rev = fmt.Sprint(n.Status.PeerCount), fmt.Sprint(n.Status.AppliedRevision)
			if o := n.Status.OverCapacity; o != nil {
				peers = fmt.Sprintf("OVER:%d/%d", o.Applied, o.Desired)
			}
		}
		t.row(n.ID, n.Name, n.Pool, n.Endpoint, n.Enabled, n.Online, peers, rev, posture(n.Status))
	}
}

func (a *cli) nodesListCommand(sc scope) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the nodes with their status",
		Long: `List the nodes: whether each is enabled and online (reported recently),
its peer count (OVER:applied/desired when the pool has more devices than
the node's WireGuard backend holds) and applied revision, and its privacy
posture (OK when
every check holds, FAIL otherwise; '-' before it reported).`,
		Args: args(),
		RunE: a.ownerAction(func(ctx context.Context, c *client.Client, _ []string) error {
			nodes, err := sc.listNodes(c, ctx)
			if err != nil {
				return err
			}
			a.noteOverCapacity(nodes...)
			return a.emit(nonNil(nodes), func(t *table) { nodeTable(t, nodes...) })
		}),
	}
}

func (a *cli) nodesEnableCommand(sc scope, enable bool) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "enable NODE",
		Short: "Offer a node to devices again",
		Args:  args("NODE"),
	}
	if !enable {
		cmd.Use = "disable NODE"
		cmd.Short = "Stop offering a node; it drops its peers"
	}
	cmd.RunE = a.ownerAction(func(ctx context.Context, c *client.Client, argv []string) error {
		id, err := sc.resolveNode(ctx, c, argv[0])
		if err != nil {
			return err
		}
		n, err := c.SetNodeEnabled(ctx, id, enable)
		if err != nil {
			return err
		}
		return a.emit(n, func(t *table) { nodeTable(t, n) })
	})
	return cmd
}

func (a *cli) nodesDeleteCommand(sc scope) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NODE",
		Short: "Remove a node; it loses its credential at once",
		Args:  args("NODE"),
		RunE: a.ownerAction(func(ctx context.Context, c *client.Client, argv []string) error {
			id, err := sc.resolveNode(ctx, c, argv[0])
			if err != nil {
				return err
			}
			if err := sc.deleteNode(c, ctx, id); err != nil {
				return err
			}
			return a.done("Deleted node %s.", argv[0])
		}),
	}
}
