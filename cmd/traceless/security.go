package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/controlplane/client"
)

// Sign-in security: the password, two-factor authentication, email
// verification and password reset.

// loginWithSecondFactor signs in; when the account has two-factor
// authentication and no code was given, it asks for one (a TOTP code or a
// recovery code) and signs in again with it.
func (a *cli) loginWithSecondFactor(ctx context.Context, c *client.Client, email, password, code string) (api.AuthResponse, error) {
	if code != "" {
		return c.LoginWithCode(ctx, email, password, code)
	}
	res, err := c.Login(ctx, email, password)
	if !client.IsCode(err, api.CodeSecondFactorRequired) {
		return res, err
	}
	code, perr := a.prompt("Code from your authenticator app (or a recovery code): ")
	if perr != nil || code == "" {
		if _, tty := a.terminal(); !tty {
			return api.AuthResponse{}, usagef("this account has two-factor authentication: pass --code")
		}
		return api.AuthResponse{}, errors.New("a code is required")
	}
	return c.LoginWithCode(ctx, email, password, code)
}

// securityCommands are the 'account' subcommands of this file.
func (a *cli) securityCommands() []*cobra.Command {
	return []*cobra.Command{a.passwordCommand(), a.twoFactorCommand(), a.verifyEmailCommand(), a.resetPasswordCommand()}
}

func (a *cli) passwordCommand() *cobra.Command {
	var stdin bool
	cmd := &cobra.Command{
		Use:   "password",
		Short: "Change your password",
		Long: `Change your password. It asks for the current password and the new one
(twice on a terminal); with --password-stdin, stdin holds the current
password on its first line and the new one on the second. Every other
session of the account is signed out; this one is saved anew.`,
		Args: args(),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			c, err := a.ownerClient()
			if err != nil {
				return err
			}
			var cur, next string
			if stdin {
				if cur, err = a.readLine(); err == nil {
					next, err = a.readLine()
				}
				if err != nil {
					return usagef("--password-stdin: stdin must hold the current and the new password, one a line")
				}
			} else {
				if cur, err = a.promptPassword("Current password: "); err != nil {
					return a.inputError("password", err)
				}
				if next, err = a.readNewPassword(); err != nil {
					return err
				}
			}
			res, err := c.ChangePassword(cmd.Context(), cur, next)
			if err != nil {
				return err
			}
			if _, err := saveSession(session{Server: a.server, Token: res.Token, ExpiresAt: res.ExpiresAt}); err != nil {
				return err
			}
			return a.done("Password changed. Every other session of %s is signed out.", res.Owner.Email)
		}),
	}
	cmd.Flags().BoolVar(&stdin, "password-stdin", false, "read the current and the new password from stdin, one a line")
	return cmd
}

// readNewPassword asks for a new password, twice on a terminal.
func (a *cli) readNewPassword() (string, error) {
	next, err := a.promptPassword("New password: ")
	if err != nil {
		return "", a.inputError("password", err)
	}
	if _, tty := a.terminal(); tty {
		again, err := a.promptPassword("New password again: ")
		if err != nil {
			return "", err
		}
		if again != next {
			return "", errors.New("the passwords differ")
		}
	}
	return next, nil
}

// twoFactorResult is the JSON output of '2fa enable'.
type twoFactorResult struct {
	Secret        string   `json:"secret"`
	OtpauthURL    string   `json:"otpauth_url"`
	RecoveryCodes []string `json:"recovery_codes"`
}

func (a *cli) twoFactorCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "2fa",
		Short: "Turn two-factor authentication (TOTP) on or off",
	}
	var code, password string
	var stdin bool
	enable := &cobra.Command{
		Use:   "enable",
		Short: "Turn two-factor authentication on",
		Long: `Turn two-factor authentication on: it prints a key (and its otpauth:// URL)
to add to an authenticator app, asks for the code the app then shows, and
prints ten recovery codes. Keep them: they are shown only once, and each
signs in once when the phone is lost. (From a script: the code is read as
the next line of stdin.)`,
		Args: args(),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			c, err := a.ownerClient()
			if err != nil {
				return err
			}
			e, err := c.StartTwoFactor(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "Add this key to your authenticator app:\n\n    %s\n\nor open: %s\n\n", e.Secret, e.OtpauthURL)
			answer, err := a.prompt("Code the app shows: ")
			if err != nil || answer == "" {
				return errors.New("no code given; two-factor authentication stays off (run 'traceless account 2fa enable' again)")
			}
			codes, err := c.ConfirmTwoFactor(cmd.Context(), answer)
			if err != nil {
				return err
			}
			return a.emit(twoFactorResult{Secret: e.Secret, OtpauthURL: e.OtpauthURL, RecoveryCodes: codes}, func(t *table) {
				t.row("Two-factor authentication is on. Recovery codes (each works once; shown only now):")
				for _, rc := range codes {
					t.row("  " + rc)
				}
			})
		}),
	}
	disable := &cobra.Command{
		Use:   "disable",
		Short: "Turn two-factor authentication off",
		Long: `Turn two-factor authentication off. It needs your password (asked for, or
the first line of stdin with --password-stdin) and a code from the
authenticator app or a recovery code (--code, or asked for).`,
		Args: args(),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			c, err := a.ownerClient()
			if err != nil {
				return err
			}
			if stdin {
				password, err = a.readLine()
			} else {
				password, err = a.promptPassword("Password: ")
			}
			if err != nil {
				return a.inputError("password", err)
			}
			if code == "" {
				if code, err = a.prompt("Code (or a recovery code): "); err != nil || code == "" {
					return usagef("a code is required: pass --code")
				}
			}
			if err := c.DisableTwoFactor(cmd.Context(), password, code); err != nil {
				return err
			}
			return a.done("Two-factor authentication is off.")
		}),
	}
	disable.Flags().StringVar(&code, "code", "", "a code from the authenticator app, or a recovery code")
	disable.Flags().BoolVar(&stdin, "password-stdin", false, "read the password from the first line of stdin")
	cmd.AddCommand(enable, disable)
	return cmd
}

func (a *cli) verifyEmailCommand() *cobra.Command {
	var resend bool
	cmd := &cobra.Command{
		Use:   "verify-email [TOKEN]",
		Short: "Verify your email address with the mailed link's token, or ask for a new link",
		Long: `Verify your email address with the token of the link mailed to you (the
token= part of the link), or with --resend ask for a new link.`,
		Args: cobra.MaximumNArgs(1),
		RunE: action(func(cmd *cobra.Command, argv []string) error {
			if resend {
				c, err := a.ownerClient()
				if err != nil {
					return err
				}
				q, err := c.ResendVerification(cmd.Context())
				if err != nil {
					return err
				}
				return a.emit(q, func(t *table) { t.row(q.Message) })
			}
			if len(argv) != 1 {
				return usagef("give the TOKEN of the mailed link, or --resend")
			}
			c, err := a.newClient()
			if err != nil {
				return err
			}
			if err := c.VerifyEmail(cmd.Context(), argv[0]); err != nil {
				return err
			}
			return a.done("Your email address is verified.")
		}),
	}
	cmd.Flags().BoolVar(&resend, "resend", false, "mail a new verification link")
	return cmd
}

func (a *cli) resetPasswordCommand() *cobra.Command {
	var email, token string
	var stdin bool
	cmd := &cobra.Command{
		Use:   "reset-password",
		Short: "Reset a forgotten password by mail",
		Long: `With --email, ask for a reset link by mail (the answer is the same whether
or not an account uses the address). With --token (the token= part of the
mailed link), set a new password, asked for or read from stdin with
--password-stdin. Every session of the account is signed out.`,
		Args: args(),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			c, err := a.newClient()
			if err != nil {
				return err
			}
			switch {
			case email != "" && token == "":
				q, rerr := c.RequestPasswordReset(cmd.Context(), email)
				if rerr != nil {
					return rerr
				}
				return a.emit(q, func(t *table) { t.row(q.Message) })
			case token != "" && email == "":
				var next string
				if stdin {
					next, err = a.readPassword(true, false)
				} else {
					next, err = a.readNewPassword()
				}
				if err != nil {
					return err
				}
				if err := c.ConfirmPasswordReset(cmd.Context(), token, next); err != nil {
					return err
				}
				return a.done("Your password is reset. Sign in with it: traceless login")
			}
			return usagef("give --email to ask for a link, or --token to set the new password")
		}),
	}
	cmd.Flags().StringVar(&email, "email", "", "the account's email: mail a reset link")
	cmd.Flags().StringVar(&token, "token", "", "the token of the mailed link: set a new password")
	cmd.Flags().BoolVar(&stdin, "password-stdin", false, "read the new password from stdin")
	return cmd
}
