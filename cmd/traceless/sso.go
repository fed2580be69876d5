package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/controlplane/client"
)

// ssoStartResult is the JSON output of 'login --sso'.
type ssoStartResult struct {
	URL string `json:"url"`
}

// ssoLogin answers 'login --sso PROVIDER': single sign-on finishes in a
// browser, so it prints the URL that starts it there.
func (a *cli) ssoLogin(provider string) error {
	c, err := a.newClient()
	if err != nil {
		return err
	}
	res := ssoStartResult{URL: c.SSOStartURL(provider, "")}
	a.note("Single sign-on finishes in a browser: open the URL below there. The session it opens is that " +
		"browser's; the server keeps no sign-in state that could hand it to this terminal. Sign in to the CLI " +
		"with your email and password (after linking the provider, if you have none: see the README).")
	return a.emit(res, func(t *table) { t.row(res.URL) })
}

func (a *cli) accountIdentitiesCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "identities",
		Short: "The single sign-on providers linked to your account",
		Long: `List the single sign-on (OpenID Connect) providers linked to your
account, and the providers this server offers. Only the provider's issuer
and the identifier it gives you are stored.`,
		Args: args(),
		RunE: a.ownerAction(func(ctx context.Context, c *client.Client, _ []string) error {
			list, err := c.Identities(ctx)
			if err != nil {
				return err
			}
			return a.emit(list, func(t *table) {
				t.row("ID", "PROVIDER", "ISSUER")
				for _, i := range list.Identities {
					t.row(i.ID, i.Label, i.Issuer)
				}
				if len(list.Identities) == 0 {
					t.row("(none linked)", "", "")
				}
				for _, p := range list.Providers {
					t.row("", "offered: "+p.Label, "link with: traceless login --sso "+p.Name)
				}
			})
		}),
	}
}

// unlinkResult is the JSON output of 'account unlink'.
type unlinkResult struct {
	Unlinked string `json:"unlinked"`
}

func (a *cli) accountUnlinkCommand() *cobra.Command {
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "unlink ID",
		Short: "Unlink a single sign-on provider from your account",
		Long: `Unlink a provider (an ID from 'traceless account identities'): it no
longer signs in to your account. Unlinking the last one needs your
password, asked for on a terminal or read from stdin with
--password-stdin, so that the account keeps a way in.`,
		Args: args("ID"),
		RunE: a.ownerAction(func(ctx context.Context, c *client.Client, argv []string) error {
			list, err := c.Identities(ctx)
			if err != nil {
				return err
			}
			password := ""
			if len(list.Identities) == 1 && list.Identities[0].ID == argv[0] {
				if password, err = a.readPassword(passwordStdin, false); err != nil {
					return err
				}
			}
			if err := c.UnlinkIdentity(ctx, argv[0], password); err != nil {
				if client.IsCode(err, api.CodeConflict) {
					a.note("Operators of this server sign in only through single sign-on: link another provider first.")
				}
				return err
			}
			res := unlinkResult{Unlinked: argv[0]}
			return a.emit(res, func(t *table) { t.row(fmt.Sprintf("Unlinked %s.", argv[0])) })
		}),
	}
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from stdin")
	return cmd
}
