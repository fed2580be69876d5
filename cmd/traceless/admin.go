package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/controlplane/client"
)

func (a *cli) adminCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "admin",
		Short:   "Operator commands: plans, pools, nodes and owner accounts",
		GroupID: "operator",
		Long:    "Operator commands. They need a session of an account with the admin role.",
	}
	plans := &cobra.Command{Use: "plans", Short: "Manage the plan catalogue"}
	plans.AddCommand(a.adminPlansListCommand(), a.adminPlanCommand(false), a.adminPlanCommand(true),
		a.adminPlansDeleteCommand())
	owners := &cobra.Command{Use: "owners", Short: "Manage owner accounts"}
	owners.AddCommand(a.adminOwnersListCommand(), a.adminOwnersUpdateCommand(), a.adminOwnersDeleteCommand())
	owners.AddCommand(a.adminBillingCommands()...)
	cmd.AddCommand(plans, a.poolsCommand(adminScope), a.nodesCommand(adminScope), owners)
	return cmd
}

func (a *cli) adminPlansListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List every plan, retired ones included",
		Args:  args(),
		RunE: a.ownerAction(func(ctx context.Context, c *client.Client, _ []string) error {
			plans, err := c.AdminPlans(ctx)
			if err != nil {
				return err
			}
			return a.emit(nonNil(plans), func(t *table) { planTable(t, plans, true) })
		}),
	}
}

// findPlan returns the plan with the given ID or slug.
func findPlan(ctx context.Context, c *client.Client, ref string) (api.Plan, error) {
	plans, err := c.AdminPlans(ctx)
	if err != nil {
		return api.Plan{}, err
	}
	for _, p := range plans {
		if p.ID == ref || p.Slug == ref {
			return p, nil
		}
	}
	return api.Plan{}, fmt.Errorf("no plan has the ID or slug %q", ref)
}

// adminPlanCommand is 'create', or 'update PLAN' when update is true, which
// changes only the fields whose flags are given.
func (a *cli) adminPlanCommand(update bool) *cobra.Command {
	in := api.PlanInput{Currency: "EUR"}
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Add a plan",
		Args:  args(),
	}
	if update {
		cmd.Use = "update PLAN"
		cmd.Short = "Change a plan (only the fields given; PLAN is its ID or slug)"
		cmd.Args = args("PLAN")
	}
	var addPools []string
	cmd.RunE = a.ownerAction(func(ctx context.Context, c *client.Client, argv []string) error {
		var p api.Plan
		var err error
		if update {
			p, err = updatePlan(ctx, c, argv[0], in, addPools, cmd.Flags().Changed)
		} else {
			p, err = createPlan(ctx, c, in)
		}
		if err != nil {
			return err
		}
		return a.emit(p, func(t *table) { planTable(t, []api.Plan{p}, true) })
	})
	f := cmd.Flags()
	f.StringVar(&in.Slug, "slug", "", "short name owners choose the plan by (a-z, 0-9, -)")
	f.StringVar(&in.Name, "name", "", "display name")
	f.IntVar(&in.MaxApps, "max-apps", 0, "apps an owner may have")
	f.IntVar(&in.MaxDevices, "max-devices", 0, "devices an owner may have across apps")
	f.IntVar(&in.MaxOwnNodes, "max-own-nodes", 0, "nodes an owner may run")
	f.IntVar(&in.PriceCents, "price-cents", 0, "monthly price in cents")
	f.StringVar(&in.Currency, "currency", "EUR", "ISO 4217 currency of the price")
	f.BoolVar(&in.Retired, "retired", false, "closed to new owners")
	f.StringSliceVar(&in.Pools, "pool", nil, "ID of a pool the plan grants (repeat or comma-separate); replaces the plan's pools")
	if update {
		f.StringSliceVar(&addPools, "add-pool", nil, "ID or name of a pool to include in the plan, keeping its others (repeat or comma-separate)")
	}
	return cmd
}

// createPlan adds the plan in; its slug and name are required.
func createPlan(ctx context.Context, c *client.Client, in api.PlanInput) (api.Plan, error) {
	if in.Slug == "" || in.Name == "" {
		return api.Plan{}, usagef("--slug and --name are required")
	}
	return c.CreatePlan(ctx, in)
}

// updatePlan replaces the plan ref (an ID or slug) with its current fields,
// overwritten by those of in whose flag changed reports as given, and adds
// the pools addPools names (IDs or names).
func updatePlan(ctx context.Context, c *client.Client, ref string, in api.PlanInput, addPools []string,
	changed func(flag string) bool) (api.Plan, error) {
	cur, err := findPlan(ctx, c, ref)
	if err != nil {
		return api.Plan{}, err
	}
	var added []string
	for _, pool := range addPools {
		id, err := adminScope.resolvePool(ctx, c, pool)
		if err != nil {
			return api.Plan{}, err
		}
		added = append(added, id)
	}
	merged := api.PlanInput{Slug: cur.Slug, Name: cur.Name, MaxApps: cur.MaxApps, MaxDevices: cur.MaxDevices,
		MaxOwnNodes: cur.MaxOwnNodes, PriceCents: cur.PriceCents, Currency: cur.Currency, Retired: cur.Retired,
		Pools: cur.Pools}
	set := func(flag string, apply func()) {
		if changed(flag) {
			apply()
		}
	}
	set("slug", func() { merged.Slug = in.Slug })
	set("name", func() { merged.Name = in.Name })
	set("max-apps", func() { merged.MaxApps = in.MaxApps })
	set("max-devices", func() { merged.MaxDevices = in.MaxDevices })
	set("max-own-nodes", func() { merged.MaxOwnNodes = in.MaxOwnNodes })
	set("price-cents", func() { merged.PriceCents = in.PriceCents })
	set("currency", func() { merged.Currency = in.Currency })
	set("retired", func() { merged.Retired = in.Retired })
	set("pool", func() { merged.Pools = in.Pools })
	for _, id := range added {
		if !slices.Contains(merged.Pools, id) {
			merged.Pools = append(merged.Pools, id)
		}
	}
	return c.UpdatePlan(ctx, cur.ID, merged)
}

func (a *cli) adminPlansDeleteCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "delete PLAN",
		Short: "Remove a plan no owner is on (PLAN is its ID or slug)",
		Args:  args("PLAN"),
		RunE: a.ownerAction(func(ctx context.Context, c *client.Client, argv []string) error {
			p, err := findPlan(ctx, c, argv[0])
			if err != nil {
				return err
			}
			if err := c.DeletePlan(ctx, p.ID); err != nil {
				return err
			}
			return a.done("Deleted plan %s.", p.Slug)
		}),
	}
}

func (a *cli) adminOwnersListCommand() *cobra.Command {
	var pageSize int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List every owner account",
		Args:  args(),
		RunE: a.ownerAction(func(ctx context.Context, c *client.Client, _ []string) error {
			if pageSize < 1 || pageSize > 500 {
				return usagef("--page-size must be from 1 to 500")
			}
			owners := []api.Owner{}
			for o, err := range c.AllOwners(ctx, pageSize) {
				if err != nil {
					return err
				}
				owners = append(owners, o)
			}
			return a.emit(owners, func(t *table) {
				t.row("ID", "EMAIL", "ROLE", "PLAN", "STATUS", "LEGAL HOLD", "CREATED")
				for _, o := range owners {
					t.row(o.ID, o.Email, o.Role, o.Plan, o.Status, o.LegalHold, o.CreatedAt)
				}
			})
		}),
	}
	cmd.Flags().IntVar(&pageSize, "page-size", 200, "owners fetched per request")
	return cmd
}

// findOwner turns an owner ID or email into an ID.
func findOwner(ctx context.Context, c *client.Client, ref string) (string, error) {
	if !strings.Contains(ref, "@") {
		return ref, nil
	}
	for o, err := range c.AllOwners(ctx, 500) {
		if err != nil {
			return "", err
		}
		if strings.EqualFold(o.Email, ref) {
			return o.ID, nil
		}
	}
	return "", fmt.Errorf("no owner has the email %s", ref)
}

func (a *cli) adminOwnersUpdateCommand() *cobra.Command {
	var status, plan, hold string
	var release bool
	cmd := &cobra.Command{
		Use:   "update OWNER",
		Short: "Change an owner's status, plan or legal hold (OWNER is an ID or email)",
		Long: `Change an owner's status (active or suspended), plan, or legal hold. A
legal hold keeps the account from being deleted; set it with
--legal-hold REASON and lift it with --release-hold.`,
		Args: args("OWNER"),
		RunE: a.ownerAction(func(ctx context.Context, c *client.Client, argv []string) error {
			var u api.OwnerUpdate
			if status != "" {
				u.Status = &status
			}
			if plan != "" {
				u.Plan = &plan
			}
			switch {
			case hold != "" && release:
				return usagef("--legal-hold and --release-hold exclude each other")
			case hold != "":
				u.LegalHold = client.SetLegalHold(hold)
			case release:
				u.LegalHold = client.ReleaseLegalHold()
			}
			if u.Status == nil && u.Plan == nil && !u.LegalHold.Set {
				return usagef("give at least one of --status, --plan, --legal-hold, --release-hold")
			}
			id, err := findOwner(ctx, c, argv[0])
			if err != nil {
				return err
			}
			o, err := c.UpdateOwner(ctx, id, u)
			if err != nil {
				return err
			}
			return a.emit(o, func(t *table) { ownerDetail(t, o) })
		}),
	}
	f := cmd.Flags()
	f.StringVar(&status, "status", "", "active or suspended")
	f.StringVar(&plan, "plan", "", "slug of the plan to move the owner to")
	f.StringVar(&hold, "legal-hold", "", "place a legal hold, with its reason")
	f.BoolVar(&release, "release-hold", false, "release the legal hold")
	return cmd
}

func (a *cli) adminOwnersDeleteCommand() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete OWNER",
		Short: "Delete an owner account and everything of it (OWNER is an ID or email)",
		Long: `Delete an owner account for good, with all its apps, API keys, devices and
dedicated pools and nodes. An account under legal hold cannot be deleted;
the error gives the reason. Asks for confirmation on a terminal unless
--yes is given.`,
		Args: args("OWNER"),
		RunE: a.ownerAction(func(ctx context.Context, c *client.Client, argv []string) error {
			id, err := findOwner(ctx, c, argv[0])
			if err != nil {
				return err
			}
			if !yes {
				q := fmt.Sprintf("Delete the account %s with all its apps, keys, devices and pools, for good? [y/N] ", argv[0])
				if err := a.confirm("deleting an account", q, "y", "yes"); err != nil {
					return err
				}
			}
			if err := c.DeleteOwner(ctx, id); err != nil {
				return err
			}
			return a.done("Deleted the account %s.", argv[0])
		}),
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}
