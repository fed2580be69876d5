package main

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/spf13/cobra"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/controlplane/client"
)

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// resolveApp turns an app ID or a unique app name into an app ID.
func resolveApp(ctx context.Context, c *client.Client, ref string) (string, error) {
	if uuidRE.MatchString(ref) {
		return ref, nil
	}
	apps, err := c.Apps(ctx)
	if err != nil {
		return "", err
	}
	var id string
	for _, app := range apps {
		if app.Name == ref {
			if id != "" {
				return "", fmt.Errorf("more than one app is named %q; use its ID", ref)
			}
			id = app.ID
		}
	}
	if id == "" {
		return "", fmt.Errorf("no app has the ID or name %q", ref)
	}
	return id, nil
}

func (a *cli) appsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "apps",
		Short:   "Manage your apps",
		GroupID: "owner",
		Long:    "Apps group devices and API keys. APP is an app's ID or its name.",
	}
	cmd.AddCommand(
		&cobra.Command{
			Use:   "create NAME",
			Short: "Create an app",
			Args:  args("NAME"),
			RunE: a.ownerAction(func(ctx context.Context, c *client.Client, argv []string) error {
				app, err := c.CreateApp(ctx, argv[0])
				if err != nil {
					return err
				}
				return a.emit(app, func(t *table) { appTable(t, app) })
			}),
		},
		&cobra.Command{
			Use:   "list",
			Short: "List your apps",
			Args:  args(),
			RunE: a.ownerAction(func(ctx context.Context, c *client.Client, _ []string) error {
				apps, err := c.Apps(ctx)
				if err != nil {
					return err
				}
				return a.emit(nonNil(apps), func(t *table) { appTable(t, apps...) })
			}),
		},
		&cobra.Command{
			Use:   "get APP",
			Short: "Show an app",
			Args:  args("APP"),
			RunE: a.ownerAction(func(ctx context.Context, c *client.Client, argv []string) error {
				id, err := resolveApp(ctx, c, argv[0])
				if err != nil {
					return err
				}
				app, err := c.App(ctx, id)
				if err != nil {
					return err
				}
				return a.emit(app, func(t *table) { appTable(t, app) })
			}),
		},
		&cobra.Command{
			Use:   "rename APP NAME",
			Short: "Rename an app",
			Args:  args("APP", "NAME"),
			RunE: a.ownerAction(func(ctx context.Context, c *client.Client, argv []string) error {
				id, err := resolveApp(ctx, c, argv[0])
				if err != nil {
					return err
				}
				app, err := c.RenameApp(ctx, id, argv[1])
				if err != nil {
					return err
				}
				return a.emit(app, func(t *table) { appTable(t, app) })
			}),
		},
		a.appsUpdateCommand(),
		a.appsDeleteCommand(),
	)
	return cmd
}

func (a *cli) appsUpdateCommand() *cobra.Command {
	var name string
	var days, regCap int
	cmd := &cobra.Command{
		Use:   "update APP",
		Short: "Rename an app or set its key rotation policy or registration cap",
		Long: `Change an app's name (--name) or its key rotation policy (--rotation-days):
its devices are asked to rotate their WireGuard key, and with it their
tunnel addresses, every D days; 0 turns the policy off. Devices keep their
own rotation time and check the policy themselves (see 'traceless devices
rotate-if-due'); the server keeps no device-level time.

--registration-cap bounds the registrations per hour made with the app's
publishable keys (per control-plane replica; 0 removes the cap); beyond it
they are refused with 429, and 'apps get' shows how many were refused.`,
		Args: args("APP"),
	}
	cmd.RunE = a.ownerAction(func(ctx context.Context, c *client.Client, argv []string) error {
		var u api.AppUpdate
		if cmd.Flags().Changed("name") {
			u.Name = &name
		}
		if cmd.Flags().Changed("rotation-days") {
			u.RotationDays = &days
		}
		if cmd.Flags().Changed("registration-cap") {
			u.RegistrationCap = &regCap
		}
		if u.Name == nil && u.RotationDays == nil && u.RegistrationCap == nil {
			return usagef("give --name, --rotation-days or --registration-cap")
		}
		id, err := resolveApp(ctx, c, argv[0])
		if err != nil {
			return err
		}
		app, err := c.UpdateApp(ctx, id, u)
		if err != nil {
			return err
		}
		return a.emit(app, func(t *table) { appTable(t, app) })
	})
	cmd.Flags().StringVar(&name, "name", "", "new name of the app")
	cmd.Flags().IntVar(&days, "rotation-days", 0, "ask devices to rotate their key every this many days (0: no policy)")
	cmd.Flags().IntVar(&regCap, "registration-cap", 0, "registrations per hour allowed with publishable keys (0: no cap)")
	return cmd
}

func (a *cli) appsDeleteCommand() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete APP",
		Short: "Delete an app with all its keys and devices",
		Long: `Delete an app for good, with all its API keys and devices; the devices
leave every node at once. Asks for confirmation unless --yes is given.`,
		Args: args("APP"),
		RunE: a.ownerAction(func(ctx context.Context, c *client.Client, argv []string) error {
			id, err := resolveApp(ctx, c, argv[0])
			if err != nil {
				return err
			}
			if !yes {
				if err := a.confirm("deleting an app", fmt.Sprintf("Delete app %s with all its keys and devices? [y/N] ", argv[0]),
					"y", "yes"); err != nil {
					return err
				}
			}
			if err := c.DeleteApp(ctx, id); err != nil {
				return err
			}
			return a.done("Deleted app %s.", id)
		}),
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

func appTable(t *table, apps ...api.App) {
	t.row("ID", "NAME", "DEVICES", "KEY ROTATION", "REGISTRATION CAP")
	for _, app := range apps {
		t.row(app.ID, app.Name, app.DeviceCount, rotationText(app.RotationDays), capText(app))
	}
}

// capText describes an app's registration cap and how often it refused.
func capText(app api.App) string {
	if app.RegistrationCap == 0 {
		if app.RegistrationCapHits > 0 {
			return fmt.Sprintf("off (%d refused earlier)", app.RegistrationCapHits)
		}
		return "off"
	}
	return fmt.Sprintf("%d/h (%d refused)", app.RegistrationCap, app.RegistrationCapHits)
}

// ownerAction is an action with an owner's client.
func (a *cli) ownerAction(fn func(ctx context.Context, c *client.Client, args []string) error) func(*cobra.Command, []string) error {
	return action(func(cmd *cobra.Command, argv []string) error {
		c, err := a.ownerClient()
		if err != nil {
			return err
		}
		return fn(cmd.Context(), c, argv)
	})
}

func (a *cli) keysCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "keys",
		Short:   "Manage an app's API keys",
		GroupID: "owner",
		Long: `An app has two kinds of key. A secret key (tlk_, the default) is for your
backend: it provisions devices and mints registration tickets
(TRACELESS_API_KEY); never ship it inside an app. A publishable key (tlp_)
is safe inside an app: it registers devices and reads the app's policy and
servers, nothing else. A key is shown once, when it is created; the server
keeps only a hash. Names are unique per app.`,
	}
	cmd.AddCommand(a.keysCreateCommand(), a.keysReplaceCommand(),
		&cobra.Command{
			Use:   "list APP",
			Short: "List an app's keys (prefixes only)",
			Args:  args("APP"),
			RunE: a.ownerAction(func(ctx context.Context, c *client.Client, argv []string) error {
				id, err := resolveApp(ctx, c, argv[0])
				if err != nil {
					return err
				}
				keys, err := c.APIKeys(ctx, id)
				if err != nil {
					return err
				}
				return a.emit(nonNil(keys), func(t *table) {
					t.row("ID", "NAME", "KIND", "PREFIX", "EXPIRES", "STATE")
					for _, k := range keys {
						var exp any = "never"
						if k.ExpiresAt != nil {
							exp = *k.ExpiresAt
						}
						t.row(k.ID, k.Name, k.Kind, k.Prefix+"…", exp, keyState(k))
					}
				})
			}),
		},
		&cobra.Command{
			Use:     "revoke APP KEY_ID",
			Aliases: []string{"delete"},
			Short:   "Revoke an API key at once",
			Args:    args("APP", "KEY_ID"),
			RunE: a.ownerAction(func(ctx context.Context, c *client.Client, argv []string) error {
				id, err := resolveApp(ctx, c, argv[0])
				if err != nil {
					return err
				}
				if err := c.DeleteAPIKey(ctx, id, argv[1]); err != nil {
					return err
				}
				return a.done("Revoked key %s.", argv[1])
			}),
		},
	)
	return cmd
}

// emitKey prints a created key, shown only this once.
func (a *cli) emitKey(k api.APIKeyCreated, out any) error {
	a.note("This key is shown only once: store it now (for example in a secret manager). The server keeps only a hash.")
	return a.emit(out, func(t *table) {
		t.row("ID", k.ID)
		t.row("NAME", k.Name)
		t.row("KIND", k.Kind)
		t.row("PREFIX", k.Prefix)
		if k.ExpiresAt != nil {
			t.row("EXPIRES", *k.ExpiresAt)
		}
		t.row("KEY", k.Key)
	})
}

func (a *cli) keysCreateCommand() *cobra.Command {
	var kind, expires string
	cmd := &cobra.Command{
		Use:   "create APP NAME",
		Short: "Create an API key (shown only once)",
		Args:  args("APP", "NAME"),
	}
	cmd.RunE = a.ownerAction(func(ctx context.Context, c *client.Client, argv []string) error {
		if kind != api.KeySecret && kind != api.KeyPublishable {
			return usagef("--kind must be %s or %s", api.KeySecret, api.KeyPublishable)
		}
		in := api.APIKeyInput{Name: argv[1], Kind: kind}
		if expires != "" {
			t, err := parseWhen(expires, time.Now())
			if err != nil {
				return usagef("--expires: %v", err)
			}
			in.ExpiresAt = &t
		}
		id, err := resolveApp(ctx, c, argv[0])
		if err != nil {
			return err
		}
		k, err := c.CreateKey(ctx, id, in)
		if err != nil {
			return err
		}
		return a.emitKey(k, k)
	})
	cmd.Flags().StringVar(&kind, "kind", api.KeySecret, "secret (your backend) or publishable (safe inside an app)")
	cmd.Flags().StringVar(&expires, "expires", "", "when the key stops working: an RFC 3339 time or a span such as 90d (default: never)")
	return cmd
}

func (a *cli) keysReplaceCommand() *cobra.Command {
	var grace, expires string
	cmd := &cobra.Command{
		Use:   "replace APP KEY_ID NAME",
		Short: "Replace a key; the old one keeps working for a grace period",
		Long: `Create a key of the same kind that replaces KEY_ID, and let the old key
work until --grace (a time or a span from now; 0s ends it at once), so that
app versions shipped with it keep working while users update.`,
		Args: args("APP", "KEY_ID", "NAME"),
	}
	cmd.RunE = a.ownerAction(func(ctx context.Context, c *client.Client, argv []string) error {
		if grace == "" {
			return usagef("--grace is required: until when the old key keeps working (such as 30d)")
		}
		now := time.Now()
		until, err := parseWhen(grace, now)
		if err != nil {
			return usagef("--grace: %v", err)
		}
		in := api.KeyReplaceInput{Name: argv[2], GraceUntil: until}
		if expires != "" {
			t, expErr := parseWhen(expires, now)
			if expErr != nil {
				return usagef("--expires: %v", expErr)
			}
			in.ExpiresAt = &t
		}
		id, err := resolveApp(ctx, c, argv[0])
		if err != nil {
			return err
		}
		r, err := c.ReplaceAPIKey(ctx, id, argv[1], in)
		if err != nil {
			return err
		}
		a.note("Key %s keeps working until %s.", r.Replaced.ID, cell(r.Replaced.ExpiresAt.UTC()))
		return a.emitKey(r.APIKeyCreated, r)
	})
	cmd.Flags().StringVar(&grace, "grace", "", "until when the old key keeps working: an RFC 3339 time or a span such as 30d")
	cmd.Flags().StringVar(&expires, "expires", "", "when the new key stops working (default: never)")
	return cmd
}

// rotationText describes a rotation policy of days days.
func rotationText(days int) string {
	switch days {
	case 0:
		return "off"
	case 1:
		return "every day"
	}
	return fmt.Sprintf("every %d days", days)
}
