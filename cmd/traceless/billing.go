package main

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/controlplane/client"
)

// billingDetail prints an owner's plan and billing state.
func billingDetail(t *table, b api.Billing) {
	t.row("PLAN", b.Plan)
	t.row("PROVIDER", b.Provider)
	t.row("SELF-SERVICE", b.SelfService)
	t.row("SUBSCRIPTION", b.Status)
	t.row("STRIPE CUSTOMER", b.CustomerID)
	t.row("STRIPE SUBSCRIPTION", b.SubscriptionID)
	renews := "RENEWS"
	if b.CancelAtPeriodEnd {
		renews = "ENDS"
	}
	t.row(renews, timeOrNone(b.CurrentPeriodEnd))
	t.row("GRACE UNTIL", timeOrNone(b.GraceUntil))
	t.row("PAYMENT REQUIRED", b.PaymentRequired)
	t.row("COMPED", b.CompReason)
	t.row("FOR SALE", strings.Join(b.PaidPlans, ", "))
}

func timeOrNone(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// planBillingCommands are plan show, buy and portal.
func (a *cli) planBillingCommands() []*cobra.Command {
	owner := func(fn func(ctx context.Context, c *client.Client, argv []string) error) func(*cobra.Command, []string) error {
		return action(func(cmd *cobra.Command, argv []string) error {
			c, err := a.ownerClient()
			if err != nil {
				return err
			}
			return fn(cmd.Context(), c, argv)
		})
	}
	return []*cobra.Command{
		{
			Use:   "show",
			Short: "Your plan and its billing: subscription, next renewal, grace period",
			Args:  args(),
			RunE: owner(func(ctx context.Context, c *client.Client, _ []string) error {
				b, err := c.Billing(ctx)
				if err != nil {
					return err
				}
				return a.emit(b, func(t *table) { billingDetail(t, b) })
			}),
		},
		{
			Use:   "buy SLUG",
			Short: "Buy a paid plan: prints the Stripe Checkout link to pay at",
			Long: `Open a Stripe Checkout session for a paid plan and print its link; open it in
a browser to pay. Your plan changes as soon as Stripe confirms the payment.`,
			Args: args("SLUG"),
			RunE: owner(func(ctx context.Context, c *client.Client, argv []string) error {
				u, err := c.Checkout(ctx, argv[0])
				if err != nil {
					return err
				}
				return a.emit(api.BillingRedirect{URL: u}, func(t *table) { t.row("Pay at: " + u) })
			}),
		},
		{
			Use:   "portal",
			Short: "Manage billing: prints the link to Stripe's customer portal",
			Long: `Open a session of Stripe's customer portal and print its link: change your
card, read your invoices or cancel (your plan then returns to the free plan
at the end of the paid period).`,
			Args: args(),
			RunE: owner(func(ctx context.Context, c *client.Client, _ []string) error {
				u, err := c.Portal(ctx)
				if err != nil {
					return err
				}
				return a.emit(api.BillingRedirect{URL: u}, func(t *table) { t.row("Manage billing at: " + u) })
			}),
		},
	}
}

// adminBillingCommands are admin owners billing, comp and uncomp.
func (a *cli) adminBillingCommands() []*cobra.Command {
	var plan, reason string
	comp := &cobra.Command{
		Use:   "comp OWNER",
		Short: "Give an owner a plan without charge, with the reason (OWNER is an ID or email)",
		Long: `Move an owner to a plan without charge and record why; while comped, their
subscription never moves the plan and no grace period holds the account.
The owner sees the reason.`,
		Args: args("OWNER"),
		RunE: a.ownerAction(func(ctx context.Context, c *client.Client, argv []string) error {
			if plan == "" || reason == "" {
				return usagef("--plan and --reason are required")
			}
			id, err := findOwner(ctx, c, argv[0])
			if err != nil {
				return err
			}
			b, err := c.CompPlan(ctx, id, plan, reason)
			if err != nil {
				return err
			}
			return a.emit(b, func(t *table) { billingDetail(t, b) })
		}),
	}
	comp.Flags().StringVar(&plan, "plan", "", "slug of the plan to give")
	comp.Flags().StringVar(&reason, "reason", "", "why it is given without charge")
	return []*cobra.Command{
		{
			Use:   "billing OWNER",
			Short: "An owner's plan and billing state (OWNER is an ID or email)",
			Args:  args("OWNER"),
			RunE: a.ownerAction(func(ctx context.Context, c *client.Client, argv []string) error {
				id, err := findOwner(ctx, c, argv[0])
				if err != nil {
					return err
				}
				b, err := c.OwnerBilling(ctx, id)
				if err != nil {
					return err
				}
				return a.emit(b, func(t *table) { billingDetail(t, b) })
			}),
		},
		comp,
		{
			Use:   "uncomp OWNER",
			Short: "End a comp: the plan follows the owner's subscription again (OWNER is an ID or email)",
			Args:  args("OWNER"),
			RunE: a.ownerAction(func(ctx context.Context, c *client.Client, argv []string) error {
				id, err := findOwner(ctx, c, argv[0])
				if err != nil {
					return err
				}
				b, err := c.EndComp(ctx, id)
				if err != nil {
					return err
				}
				return a.emit(b, func(t *table) { billingDetail(t, b) })
			}),
		},
	}
}
