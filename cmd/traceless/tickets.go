package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/controlplane/client"
)

// Registration tickets and the time flags of keys.

func (a *cli) ticketsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "tickets",
		Short:   "Mint registration tickets (secret key)",
		GroupID: "provisioning",
		Long: `A registration ticket lets one app install register one device, once,
within minutes, so that no long-lived key ships inside the app. Your
backend mints one with the app's secret key (TRACELESS_API_KEY) and hands
it to the app, which registers with it ('traceless devices register
--ticket') and keeps the device token of the answer.`,
	}
	var ref string
	var ttl time.Duration
	create := &cobra.Command{
		Use:   "create",
		Short: "Mint a registration ticket (shown only once)",
		Args:  args(),
	}
	create.RunE = a.keyAction(func(ctx context.Context, c *client.Client, _ []string) error {
		in := api.TicketInput{}
		if create.Flags().Changed("external-ref") {
			in.ExternalRef = &ref
		}
		if create.Flags().Changed("ttl") {
			if ttl%time.Second != 0 || ttl < 10*time.Second || ttl > 10*time.Minute {
				return usagef("--ttl must be whole seconds from 10s to 10m")
			}
			in.TTLSeconds = int(ttl / time.Second)
		}
		t, err := c.CreateTicket(ctx, in)
		if err != nil {
			return err
		}
		a.note("The ticket registers one device, once, before %s; hand it to the app install.", t.ExpiresAt.UTC().Format(time.RFC3339))
		return a.emit(t, func(tb *table) {
			tb.row("TICKET", t.Ticket)
			tb.row("EXPIRES", t.ExpiresAt)
			tb.row("EXTERNAL REF", t.ExternalRef)
		})
	})
	create.Flags().StringVar(&ref, "external-ref", "", "bind the ticket: the device registered with it gets this reference and no other")
	create.Flags().DurationVar(&ttl, "ttl", 10*time.Minute, "how long the unused ticket works (10s to 10m)")
	cmd.AddCommand(create)
	return cmd
}

// parseWhen reads a point in time: an RFC 3339 time, or a span from now
// such as 90d, 36h or 30m.
func parseWhen(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a span such as 90d or 36h", s)
		}
		return now.Add(time.Duration(n) * 24 * time.Hour), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a span such as 90d or 36h", s)
	}
	return now.Add(d), nil
}

// keyState describes a listed key's kind and state.
func keyState(k api.APIKey) string {
	switch {
	case k.Expired:
		return "expired"
	case k.ReplacedBy != nil:
		return "grace (replaced)"
	}
	return "active"
}
