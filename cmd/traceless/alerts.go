package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/controlplane/client"
)

func (a *cli) alertsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "alerts",
		Short:   "Health alerts about the nodes carrying your devices",
		GroupID: "owner",
		Long: `Health alerts tell you when a node or pool that carries your devices goes
offline, lags behind or fails a privacy posture check, through a signed
webhook or email. Event kinds: ` + strings.Join(api.AlertKinds, ", ") + `.`,
	}
	cmd.AddCommand(a.alertsShowCommand(), a.alertsSetCommand(), a.alertsTestCommand(), a.alertsDeliveryCommand(),
		a.alertsHistoryCommand(), a.alertsClearHistoryCommand())
	return cmd
}

func alertSettingsDetail(t *table, s api.AlertSettings) {
	t.row("WEBHOOK URL", s.WebhookURL)
	if s.WebhookSecret != "" {
		t.row("WEBHOOK SECRET", s.WebhookSecret)
	}
	email := s.Email
	if !s.EmailAvailable {
		email = "(this server sends no email)"
	}
	t.row("EMAIL", email)
	t.row("EVENTS", strings.Join(s.Events, ", "))
	t.row("HISTORY", s.History)
	t.row("RETENTION DAYS", s.RetentionDays)
	for _, d := range s.Delivery {
		t.row("DELIVERY ("+strings.ToUpper(d.Channel)+")", deliverySummary(d))
	}
}

// deliverySummary says in one line how a channel fares: "retrying
// (3 attempts): webhook answered 503; 2 waiting".
func deliverySummary(d api.AlertDelivery) string {
	s := strings.ReplaceAll(d.State, "_", " ")
	switch d.State {
	case api.DeliveryIdle:
		s += " (nothing sent since the server started)"
	case api.DeliveryRetrying, api.DeliveryGaveUp:
		s += fmt.Sprintf(" (%s, %d attempts): %s", d.Kind, d.Attempts, d.Error)
	case api.DeliveryDelivered:
		s += " (" + d.Kind + ")"
	}
	if d.Pending > 0 {
		s += fmt.Sprintf("; %d waiting", d.Pending)
	}
	return s
}

func (a *cli) alertsDeliveryCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "delivery",
		Short: "Show how your alerts fare on each channel",
		Long: `Show, for your webhook and email, whether the last alert was delivered,
is being retried (later ones wait behind it) or was given up, with the
last failure, as the server has seen since it started. Nothing about
deliveries is stored.`,
		Args: args(),
		RunE: a.ownerAction(func(ctx context.Context, c *client.Client, _ []string) error {
			s, err := c.AlertSettings(ctx)
			if err != nil {
				return err
			}
			d := s.Delivery
			if d == nil {
				d = []api.AlertDelivery{}
			}
			return a.emit(d, func(t *table) {
				if len(d) == 0 {
					t.row("No channel is set up ('traceless alerts set --webhook-url URL').")
					return
				}
				t.row("CHANNEL", "STATE", "LAST KIND", "ATTEMPTS", "WAITING", "DELIVERED", "GAVE UP", "LAST ERROR")
				for _, x := range d {
					t.row(x.Channel, strings.ReplaceAll(x.State, "_", " "), x.Kind, x.Attempts, x.Pending, x.Delivered, x.GaveUp, x.Error)
				}
			})
		}),
	}
}

func (a *cli) alertsShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show",
		Short: "Show your alert settings",
		Args:  args(),
		RunE: a.ownerAction(func(ctx context.Context, c *client.Client, _ []string) error {
			s, err := c.AlertSettings(ctx)
			if err != nil {
				return err
			}
			s.Events = nonNil(s.Events)
			return a.emit(s, func(t *table) { alertSettingsDetail(t, s) })
		}),
	}
}

func (a *cli) alertsSetCommand() *cobra.Command {
	var webhook, email string
	var events []string
	var history, rotate bool
	var retention int
	cmd := &cobra.Command{
		Use:   "set",
		Short: "Change your alert settings (only the flags given)",
		Long: `Change the alert settings whose flags are given. Setting a webhook for the
first time, or --rotate-secret, creates the secret that signs deliveries
(header ` + api.AlertSignatureHeader + `); it is shown only this once.
--webhook-url "" and --email "" turn a channel off; --history=false
deletes the monitoring history at once.`,
		Args: args(),
	}
	cmd.RunE = a.ownerAction(func(ctx context.Context, c *client.Client, _ []string) error {
		var in api.AlertSettingsInput
		fl := cmd.Flags()
		if fl.Changed("webhook-url") {
			in.WebhookURL = &webhook
		}
		if fl.Changed("email") {
			in.Email = &email
		}
		if fl.Changed("events") {
			ev := nonNil(events)
			in.Events = &ev
		}
		if fl.Changed("history") {
			in.History = &history
		}
		if fl.Changed("retention-days") {
			in.RetentionDays = &retention
		}
		in.RotateSecret = rotate
		if in == (api.AlertSettingsInput{}) {
			return usagef("give at least one of --webhook-url, --email, --events, --history, --retention-days, --rotate-secret")
		}
		s, err := c.UpdateAlertSettings(ctx, in)
		if err != nil {
			return err
		}
		if s.WebhookSecret != "" {
			a.note("The webhook secret is shown only this once: store it where your receiver verifies deliveries.")
		}
		s.Events = nonNil(s.Events)
		return a.emit(s, func(t *table) { alertSettingsDetail(t, s) })
	})
	f := cmd.Flags()
	f.StringVar(&webhook, "webhook-url", "", `https:// URL that receives each event as a signed POST ("" for none)`)
	f.StringVar(&email, "email", "", `address that receives each event ("" for none)`)
	f.StringSliceVar(&events, "events", nil, "event kinds to receive (comma-separated; \"\" for none)")
	f.BoolVar(&history, "history", false, "keep a monitoring history (--history=false deletes it)")
	f.IntVar(&retention, "retention-days", 0, "days to keep history entries (1-365)")
	f.BoolVar(&rotate, "rotate-secret", false, "replace the webhook secret")
	return cmd
}

func (a *cli) alertsTestCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "test",
		Short: "Send a test event to your webhook and email",
		Args:  args(),
		RunE: a.ownerAction(func(ctx context.Context, c *client.Client, _ []string) error {
			res, err := c.TestAlert(ctx)
			if err != nil {
				return err
			}
			res.Queued = nonNil(res.Queued)
			return a.emit(res, func(t *table) {
				if len(res.Queued) == 0 {
					t.row("No channel is set up: nothing was sent.")
					return
				}
				t.row("Test event queued for: " + strings.Join(res.Queued, ", ") + ".")
			})
		}),
	}
}

func (a *cli) alertsHistoryCommand() *cobra.Command {
	var pageSize int
	cmd := &cobra.Command{
		Use:   "history",
		Short: "List your monitoring history, newest first",
		Long:  "List the stored status changes, newest first. The history is kept only when turned on ('alerts set --history').",
		Args:  args(),
		RunE: a.ownerAction(func(ctx context.Context, c *client.Client, _ []string) error {
			if pageSize < 1 || pageSize > 500 {
				return usagef("--page-size must be from 1 to 500")
			}
			entries := []api.AlertHistoryEntry{}
			for e, err := range c.AllAlertHistory(ctx, pageSize) {
				if err != nil {
					return err
				}
				entries = append(entries, e)
			}
			return a.emit(entries, func(t *table) {
				t.row("OCCURRED", "KIND", "POOL", "NODE", "DETAIL")
				for _, e := range entries {
					t.row(e.OccurredAt, e.Kind, e.PoolName, e.NodeName, e.Detail)
				}
			})
		}),
	}
	cmd.Flags().IntVar(&pageSize, "page-size", 200, "entries fetched per request")
	return cmd
}

func (a *cli) alertsClearHistoryCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "clear-history",
		Short: "Delete your whole monitoring history",
		Args:  args(),
		RunE: a.ownerAction(func(ctx context.Context, c *client.Client, _ []string) error {
			if err := c.DeleteAlertHistory(ctx); err != nil {
				return err
			}
			return a.done("Deleted the monitoring history.")
		}),
	}
}
