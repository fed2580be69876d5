package main

import (
	"context"
	"fmt"
	"regexp"

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
	var days int
	cmd := &cobra.Command{
		Use:   "update APP",
		Short: "Rename an app or set its key rotation policy",
		Long: `Change an app's name (--name) or its key rotation policy (--rotation-days):
its devices are asked to rotate their WireGuard key, and with it their
tunnel addresses, every D days; 0 turns the policy off. Devices keep their
own rotation time and check the policy themselves (see 'traceless devices
rotate-if-due'); the server keeps no device-level time.`,
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
		if u.Name == nil && u.RotationDays == nil {
			return usagef("give --name, --rotation-days or both")
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
	t.row("ID", "NAME", "DEVICES", "KEY ROTATION")
	for _, app := range apps {
		t.row(app.ID, app.Name, app.DeviceCount, rotationText(app.RotationDays))
	}
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
		Long: `API keys let an app's backend provision devices (TRACELESS_API_KEY). A key
is shown once, when it is created; the server keeps only a hash.`,
	}
	cmd.AddCommand(
		&cobra.Command{
			Use:   "create APP NAME",
			Short: "Create an API key (shown only once)",
			Args:  args("APP", "NAME"),
			RunE: a.ownerAction(func(ctx context.Context, c *client.Client, argv []string) error {
				id, err := resolveApp(ctx, c, argv[0])
				if err != nil {
					return err
				}
				k, err := c.CreateAPIKey(ctx, id, argv[1])
				if err != nil {
					return err
				}
				a.note("This key is shown only once: store it now (for example in a secret manager). The server keeps only a hash.")
				return a.emit(k, func(t *table) {
					t.row("ID", k.ID)
					t.row("NAME", k.Name)
					t.row("PREFIX", k.Prefix)
					t.row("KEY", k.Key)
				})
			}),
		},
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
					t.row("ID", "NAME", "PREFIX")
					for _, k := range keys {
						t.row(k.ID, k.Name, k.Prefix+"…")
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
