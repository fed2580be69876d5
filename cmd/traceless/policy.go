package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/controlplane/client"
)

func (a *cli) policyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Read and accept the privacy policy",
		Long: `The control plane's privacy policy: the version in effect and, during the
notice period before it takes effect, the next one.`,
	}
	cmd.AddCommand(a.policyShowCommand(), a.policyAcceptCommand())
	return cmd
}

// policyResult is the JSON output of 'policy show'.
type policyResult struct {
	api.PolicyStatus
	// AcceptedVersion is the version the signed-in owner accepted, when
	// signed in.
	AcceptedVersion *string `json:"accepted_version,omitempty"`
}

func (a *cli) policyShowCommand() *cobra.Command {
	var brief bool
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show the privacy policy",
		Long: `Show the versions of the privacy policy in effect and announced, then
their text (not with --brief). When you are signed in, also the version
you accepted.`,
		Args: args(),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			c, err := a.newClient()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			st, err := c.Policy(ctx)
			if err != nil {
				return err
			}
			res := policyResult{PolicyStatus: st, AcceptedVersion: a.acceptedVersion(ctx)}
			err = a.emit(res, func(t *table) {
				t.row("VERSION", "STATUS", "EFFECTIVE", "ANNOUNCED")
				t.row(st.Current.Version, "current", st.Current.EffectiveAt, st.Current.AnnouncedAt)
				if up := st.Upcoming; up != nil {
					t.row(up.Version, "upcoming", up.EffectiveAt, up.AnnouncedAt)
				}
			})
			if err != nil || a.json() {
				return err
			}
			var b strings.Builder
			if res.AcceptedVersion != nil {
				v := *res.AcceptedVersion
				if v == "" {
					v = "none yet"
				}
				fmt.Fprintf(&b, "\nYou accepted: %s\n", cell(v))
			}
			if !brief {
				fmt.Fprintf(&b, "\n%s\n", policyText(st.Current.Text))
				if up := st.Upcoming; up != nil {
					fmt.Fprintf(&b, "\n--- Version %s, in effect from %s ---\n\n%s\n", cell(up.Version), cell(up.EffectiveAt),
						policyText(up.Text))
				}
			}
			_, err = fmt.Fprint(a.stdout, b.String())
			return err
		}),
	}
	cmd.Flags().BoolVar(&brief, "brief", false, "show the versions only, not the text")
	return cmd
}

// acceptedVersion returns the policy version the signed-in owner accepted,
// or nil when not signed in or the server does not say.
func (a *cli) acceptedVersion(ctx context.Context) *string {
	if tok, err := a.sessionToken(); err != nil || tok == "" {
		return nil
	}
	c, err := a.ownerClient()
	if err != nil {
		return nil
	}
	me, err := c.Me(ctx)
	if err != nil {
		return nil
	}
	return &me.AcceptedPolicyVersion
}

// policyText strips control characters other than line breaks and tabs
// from the policy text, so the server cannot move the terminal's cursor.
func policyText(s string) string {
	return strings.TrimRight(strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' {
			return r
		}
		if r < 0x20 || (r >= 0x7f && r < 0xa0) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD")), "\n")
}

func (a *cli) policyAcceptCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "accept [VERSION]",
		Short: "Accept a version of the privacy policy (default: the current one)",
		Long: `Accept a version of the privacy policy: the current one by default, or the
announced upcoming one by its VERSION.`,
		Args: func(cmd *cobra.Command, got []string) error {
			if len(got) > 1 {
				return usagef("%s takes at most one argument: VERSION", cmd.CommandPath())
			}
			return nil
		},
		RunE: a.ownerAction(func(ctx context.Context, c *client.Client, argv []string) error {
			var version string
			if len(argv) == 1 {
				version = argv[0]
			} else {
				st, err := c.Policy(ctx)
				if err != nil {
					return err
				}
				version = st.Current.Version
			}
			o, err := c.AcceptPolicy(ctx, version)
			if err != nil {
				return err
			}
			return a.emit(o, func(t *table) {
				t.row(fmt.Sprintf("You accepted version %s of the privacy policy.", cell(o.AcceptedPolicyVersion)))
			})
		}),
	}
}
