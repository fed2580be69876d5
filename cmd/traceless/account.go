package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/controlplane/client"
)

// accountCommands are login, logout, signup, me, account, plans, plan and
// policy.
func (a *cli) accountCommands() []*cobra.Command {
	cmds := []*cobra.Command{a.loginCommand(false), a.loginCommand(true), a.logoutCommand(), a.meCommand(),
		a.accountCommand(), a.plansCommand(), a.planCommand(), a.policyCommand()}
	for _, c := range cmds {
		c.GroupID = "owner"
	}
	return cmds
}

// credentials reads the email and password for login or signup: the email
// from --email or a prompt; the password from stdin with --password-stdin,
// without echo from a terminal, or as the next line of piped input. Input
// that ends early without a terminal is a usage error that names the flags
// to use instead.
func (a *cli) credentials(email string, passwordStdin, confirm bool) (string, string, error) {
	if passwordStdin && email == "" {
		return "", "", usagef("--password-stdin needs --email")
	}
	if email == "" {
		e, err := a.prompt("Email: ")
		if err != nil {
			return "", "", a.inputError("email", err)
		}
		email = e
	}
	password, err := a.readPassword(passwordStdin, confirm)
	if err != nil {
		return "", "", err
	}
	if email == "" || password == "" {
		return "", "", errors.New("email and password are required")
	}
	return email, password, nil
}

// readPassword reads the password: all of stdin with passwordStdin, else
// a prompt (twice on a terminal when confirm is true).
func (a *cli) readPassword(passwordStdin, confirm bool) (string, error) {
	if passwordStdin {
		b, err := io.ReadAll(io.LimitReader(a.stdin, 64<<10))
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	password, err := a.promptPassword("Password: ")
	if err != nil {
		return "", a.inputError("password", err)
	}
	if _, tty := a.terminal(); tty && confirm {
		again, err := a.promptPassword("Password again: ")
		if err != nil {
			return "", err
		}
		if again != password {
			return "", errors.New("the passwords differ")
		}
	}
	return password, nil
}

// inputError explains a failed read of what ("email" or "password"). When
// stdin is no terminal and ran out, nobody can be prompted: it says which
// flags give the credentials to a script.
func (a *cli) inputError(what string, err error) error {
	if _, tty := a.terminal(); !tty && errors.Is(err, errEndOfInput) {
		return usagef("no %s on stdin and no terminal to ask on: pass --email, and the password on stdin with --password-stdin", what)
	}
	return fmt.Errorf("read %s: %w", what, err)
}

// loginCommand is 'login', or 'signup' when signup is true; both save the
// session.
func (a *cli) loginCommand(signup bool) *cobra.Command {
	var email, code string
	var passwordStdin bool
	var sso string
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Sign in and save the session for this server",
		Long: `Sign in and save the session token in <user config dir>/traceless/token
(mode 0600), tied to the --server it was issued by. That server is also
remembered (in config.json beside it) as the server of later commands
that give neither --server nor TRACELESS_SERVER.

The password is read without echo from a terminal, or from stdin with
--password-stdin (or as the second line of piped input) for scripts. An
account with two-factor authentication is asked for a code from the
authenticator app (or a recovery code), or takes it with --code.`,
		Args: args(),
	}
	if signup {
		cmd.Use = "signup"
		cmd.Short = "Create an owner account and sign in"
		cmd.Long = strings.Replace(cmd.Long, "Sign in and save", "Create an owner account, sign in and save", 1)
	}
	cmd.RunE = action(func(cmd *cobra.Command, _ []string) error {
		if sso != "" {
			return a.ssoLogin(sso)
		}
		addr, password, err := a.credentials(email, passwordStdin, signup)
		if err != nil {
			return err
		}
		c, err := a.newClient()
		if err != nil {
			return err
		}
		var res api.AuthResponse
		if signup {
			res, err = c.Signup(cmd.Context(), addr, password)
		} else {
			res, err = a.loginWithSecondFactor(cmd.Context(), c, addr, password, code)
		}
		if err != nil {
			return err
		}
		p, err := saveSession(session{Server: a.server, Token: res.Token, ExpiresAt: res.ExpiresAt})
		if err != nil {
			return err
		}
		if err := saveServer(a.server); err != nil {
			return err
		}
		return a.emit(res.Owner, func(t *table) {
			t.row(fmt.Sprintf("Signed in to %s as %s (%s).", a.server, res.Owner.Email, res.Owner.Role))
			t.row(fmt.Sprintf("Session saved to %s; it expires at %s.", p, cell(res.ExpiresAt)))
		})
	})
	cmd.Flags().StringVar(&email, "email", "", "account email (prompted for when absent)")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from stdin")
	if !signup {
		cmd.Flags().StringVar(&sso, "sso", "", "print the URL that signs in through this single sign-on provider in a browser")
		cmd.Flags().StringVar(&code, "code", "", "two-factor code (or a recovery code), for an account that has two-factor authentication")
	}
	return cmd
}

func (a *cli) logoutCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Revoke the session and forget it",
		Long:  "Revoke every session of the signed-in owner at the server and delete the saved one.",
		Args:  args(),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			tok, err := a.sessionToken()
			if err != nil && !errors.Is(err, errSessionExpired) {
				return err
			}
			var revokeErr error
			if tok != "" {
				c, err := a.newClient(client.WithToken(tok))
				if err != nil {
					return err
				}
				if err := c.Logout(cmd.Context()); err != nil && !client.IsCode(err, api.CodeUnauthorized) {
					revokeErr = err
				}
			}
			if s, ok, _ := loadSession(); ok && sameServer(s.Server, a.server) {
				if err := removeSession(); err != nil {
					return err
				}
			}
			if revokeErr != nil {
				a.note("Forgot the local session, but the server did not revoke it:")
				return revokeErr
			}
			return a.done("Signed out of %s.", a.server)
		}),
	}
}

func (a *cli) meCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "me",
		Short: "Show the signed-in account and its server",
		Long: `Show the signed-in account and the server it is on: --server, else
TRACELESS_SERVER, else the server of the last login or signup.`,
		Args: args(),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			c, err := a.ownerClient()
			if err != nil {
				return err
			}
			o, err := c.Me(cmd.Context())
			if err != nil {
				return err
			}
			return a.emit(meResult{Owner: o, Server: a.server}, func(t *table) {
				t.row("SERVER", a.server)
				ownerDetail(t, o)
			})
		}),
	}
}

// meResult is the output of 'me': the account and the server it is on.
type meResult struct {
	api.Owner
	Server string `json:"server"`
}

func ownerDetail(t *table, o api.Owner) {
	t.row("ID", o.ID)
	t.row("EMAIL", o.Email)
	t.row("ROLE", o.Role)
	t.row("PLAN", o.Plan)
	t.row("STATUS", o.Status)
	t.row("LEGAL HOLD", o.LegalHold)
	t.row("EMAIL VERIFIED", o.EmailVerified)
	t.row("TWO-FACTOR", o.TwoFactor)
	t.row("CREATED", o.CreatedAt)
}

func (a *cli) plansCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "plans", Short: "The plan catalogue"}
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the plans on offer",
		Args:  args(),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			c, err := a.newClient()
			if err != nil {
				return err
			}
			plans, err := c.Plans(cmd.Context())
			if err != nil {
				return err
			}
			return a.emit(nonNil(plans), func(t *table) { planTable(t, plans, false) })
		}),
	})
	return cmd
}

func planTable(t *table, plans []api.Plan, admin bool) {
	if admin {
		t.row("ID", "SLUG", "NAME", "APPS", "DEVICES", "OWN NODES", "PRICE", "POOLS", "RETIRED")
	} else {
		t.row("SLUG", "NAME", "APPS", "DEVICES", "OWN NODES", "PRICE")
	}
	for _, p := range plans {
		if admin {
			t.row(p.ID, p.Slug, p.Name, p.MaxApps, p.MaxDevices, p.MaxOwnNodes, price(p.PriceCents, p.Currency),
				len(p.Pools), p.Retired)
		} else {
			t.row(p.Slug, p.Name, p.MaxApps, p.MaxDevices, p.MaxOwnNodes, price(p.PriceCents, p.Currency))
		}
	}
}

func (a *cli) planCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "plan", Short: "Your account's plan"}
	cmd.AddCommand(&cobra.Command{
		Use:   "set SLUG",
		Short: "Move your account to another plan",
		Args:  args("SLUG"),
		RunE: action(func(cmd *cobra.Command, argv []string) error {
			c, err := a.ownerClient()
			if err != nil {
				return err
			}
			o, err := c.ChangePlan(cmd.Context(), argv[0])
			if err != nil {
				return err
			}
			return a.emit(o, func(t *table) { t.row("Your plan is now " + o.Plan + ".") })
		}),
	})
	cmd.AddCommand(a.planBillingCommands()...)
	return cmd
}

func (a *cli) accountCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "account",
		Short: "Your account: password, two-factor, email, export, deletion",
		Long: `Change your password, turn two-factor authentication on or off, verify your
email address, reset a forgotten password by mail, export everything the
control plane stores about your account, or delete the account for good.`,
	}
	cmd.AddCommand(a.accountExportCommand(), a.accountDeleteCommand(), a.accountIdentitiesCommand(), a.accountUnlinkCommand())
	cmd.AddCommand(a.securityCommands()...)
	return cmd
}

// exportResult is the JSON output of 'account export --out'.
type exportResult struct {
	File   string `json:"file"`
	Tables int    `json:"tables"`
}

func (a *cli) accountExportCommand() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Export everything stored about your account, as JSON",
		Long: `Export everything the control plane stores about your account: for each
table that holds your rows, those rows with the columns the privacy
manifest lists (credential hashes are named but withheld). The JSON goes
to stdout, or with --out to a new or replaced file of mode 0600.`,
		Args: args(),
		RunE: a.ownerAction(func(ctx context.Context, c *client.Client, _ []string) error {
			ex, err := c.ExportMe(ctx)
			if err != nil {
				return err
			}
			b, err := json.MarshalIndent(ex, "", "  ")
			if err != nil {
				return err
			}
			b = append(b, '\n')
			if out == "" {
				_, err := a.stdout.Write(b)
				return err
			}
			if err := writeOutputFile(out, b); err != nil {
				return fmt.Errorf("write %s: %w", out, err)
			}
			a.note("The export holds your account's data: keep the file private.")
			res := exportResult{File: out, Tables: len(ex.Tables)}
			return a.emit(res, func(t *table) { t.row(fmt.Sprintf("Wrote %s (%d tables).", out, res.Tables)) })
		}),
	}
	cmd.Flags().StringVar(&out, "out", "", "write the export to this file (mode 0600) instead of stdout")
	return cmd
}

func (a *cli) accountDeleteCommand() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete your account and everything of it, for good",
		Long: `Delete your account for good, with all its apps, API keys, devices and
dedicated pools and nodes; the devices leave every node at once. There is
no undo: run 'traceless account export' first to keep a copy.

Asks you to type your email on a terminal unless --yes is given. An
account under legal hold cannot be deleted; the error gives the reason.`,
		Args: args(),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			tok, err := a.sessionToken()
			if err != nil {
				return err
			}
			c, err := a.ownerClient()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			me, err := c.Me(ctx)
			if err != nil {
				return err
			}
			if !yes {
				q := fmt.Sprintf("Delete the account %s with all its apps, keys, devices and pools, for good?\nType the email to confirm: ", me.Email)
				if err := a.confirm("deleting the account", q, me.Email); err != nil {
					return err
				}
			}
			if err := c.DeleteMe(ctx); err != nil {
				if client.IsCode(err, api.CodeLegalHold) {
					a.note("Nothing was deleted: the account is under legal hold until an operator releases it.")
				}
				return err
			}
			if s, ok, _ := loadSession(); ok && sameServer(s.Server, a.server) && s.Token == tok {
				if err := removeSession(); err != nil {
					return err
				}
			}
			return a.done("Deleted the account %s and everything of it.", me.Email)
		}),
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}
