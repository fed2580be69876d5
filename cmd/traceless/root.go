package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/traceless-vpn/traceless/controlplane/client"
	"github.com/traceless-vpn/traceless/internal/version"
)

const (
	defaultServer = "http://127.0.0.1:8080"

	envServer = "TRACELESS_SERVER"
	envToken  = "TRACELESS_TOKEN"
	envAPIKey = "TRACELESS_API_KEY"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// cli is one invocation of the command: its streams and global flags.
type cli struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	lines  *bufio.Reader // stdin, read line by line for prompts

	server string
	output string
	apiKey string
}

// run executes the command line args and returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &cli{stdin: stdin, stdout: stdout, stderr: stderr}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	return a.report(cmd, err)
}

func (a *cli) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "traceless",
		Short: "Manage a Traceless VPN control plane",
		Long: `traceless manages a Traceless control plane: your account, apps, API keys
and dedicated pools and nodes as an owner; plans, pools, nodes and owner
accounts as an operator; and devices through an app API key.

Sign in with 'traceless login' (the session and its server are saved in
your user config directory) or set TRACELESS_TOKEN. Commands go to
--server, else TRACELESS_SERVER, else the server of the last login, else
` + defaultServer + `. Device, server and ticket commands use the credential
in TRACELESS_API_KEY or --api-key: an app's secret key (tlk_), a
publishable key (tlp_) or a device's own token (tld_); 'devices register
--ticket' uses a registration ticket (tlt_) instead.`,
		Version:           version.Line("traceless"),
		SilenceErrors:     true,
		SilenceUsage:      true,
		DisableAutoGenTag: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if a.output != "text" && a.output != "json" {
				return usagef("--output must be text or json")
			}
			if a.apiKey == "" {
				a.apiKey = strings.TrimSpace(os.Getenv(envAPIKey))
			}
			if err := a.resolveServer(); err != nil {
				return failure{err}
			}
			return nil
		},
	}
	root.SetVersionTemplate("{{.Version}}\n")
	pf := root.PersistentFlags()
	pf.StringVar(&a.server, "server", "", "control plane URL (env "+envServer+"; default: the server of the last login, else "+defaultServer+")")
	pf.StringVarP(&a.output, "output", "o", "text", "output format: text or json")
	pf.StringVar(&a.apiKey, "api-key", "", "app key or device token for device, server and ticket commands (prefer env "+envAPIKey+": flags show in the process list)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddGroup(
		&cobra.Group{ID: "owner", Title: "Owner commands:"},
		&cobra.Group{ID: "provisioning", Title: "Provisioning commands (app key, ticket or device token):"},
		&cobra.Group{ID: "operator", Title: "Operator commands:"},
	)
	root.AddCommand(a.accountCommands()...)
	root.AddCommand(a.appsCommand(), a.keysCommand(), a.poolsCommand(ownerScope), a.nodesCommand(ownerScope),
		a.alertsCommand())
	root.AddCommand(a.devicesCommand(), a.serversCommand(), a.ticketsCommand())
	root.AddCommand(a.adminCommand())
	for _, c := range root.Commands() {
		strictGroups(c)
	}
	return root
}

// strictGroups makes commands that only hold subcommands reject unknown
// subcommands as usage errors; cobra would print help and succeed.
func strictGroups(cmd *cobra.Command) {
	if cmd.HasSubCommands() && !cmd.Runnable() {
		cmd.Args = cobra.ArbitraryArgs
		cmd.RunE = func(cmd *cobra.Command, argv []string) error {
			if len(argv) > 0 {
				return usagef("unknown command %q for %q", argv[0], cmd.CommandPath())
			}
			return cmd.Help()
		}
	}
	for _, c := range cmd.Commands() {
		strictGroups(c)
	}
}

// usageError is a mistake in the command line; it exits with exitUsage.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// failure marks an error returned by a command's action, as opposed to
// cobra's own parsing errors (unknown commands and the like).
type failure struct{ err error }

func (e failure) Error() string { return e.err.Error() }
func (e failure) Unwrap() error { return e.err }

// action wraps a command's work so that report can tell its errors from
// cobra's usage errors.
func action(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := fn(cmd, args); err != nil {
			var ue usageError
			if errors.As(err, &ue) {
				return ue
			}
			return failure{err}
		}
		return nil
	}
}

// args checks the number of positional arguments and names them in the
// error.
func args(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, got []string) error {
		if len(got) != len(names) {
			if len(names) == 0 {
				return usagef("%s takes no arguments", cmd.CommandPath())
			}
			return usagef("%s needs %d argument(s): %s", cmd.CommandPath(), len(names), strings.Join(names, " "))
		}
		return nil
	}
}

// report prints err as "traceless: <code>: <message>" and returns the exit
// code.
func (a *cli) report(cmd *cobra.Command, err error) int {
	if err == nil {
		return exitOK
	}
	var f failure
	var ce *client.Error
	switch {
	case !errors.As(err, &f):
		path := "traceless"
		if cmd != nil {
			path = cmd.CommandPath()
		}
		fmt.Fprintf(a.stderr, "traceless: %v\nRun '%s --help' for usage.\n", err, path)
		return exitUsage
	case errors.As(err, &ce) && ce.Code != "":
		msg := ce.Message
		if ce.Field != "" {
			msg += " (" + ce.Field + ")"
		}
		fmt.Fprintf(a.stderr, "traceless: %s: %s\n", ce.Code, msg)
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(a.stderr, "traceless: interrupted")
	default:
		fmt.Fprintf(a.stderr, "traceless: %v\n", err)
	}
	return exitError
}

// resolveServer picks the server when --server is not given:
// TRACELESS_SERVER, else the one 'traceless login' remembered, else
// defaultServer.
func (a *cli) resolveServer() error {
	if strings.TrimSpace(a.server) != "" {
		return nil
	}
	if env := strings.TrimSpace(os.Getenv(envServer)); env != "" {
		a.server = env
		return nil
	}
	remembered, err := loadServer()
	if err != nil {
		return err
	}
	a.server = cmp.Or(remembered, defaultServer)
	return nil
}

// newClient returns a client for the --server URL with the given options.
func (a *cli) newClient(opts ...client.Option) (*client.Client, error) {
	opts = append([]client.Option{client.WithUserAgent("traceless-cli/" + version.String())}, opts...)
	c, err := client.New(a.server, opts...)
	if err != nil {
		return nil, usageError{fmt.Errorf("--server: %w", err)}
	}
	if u, err := url.Parse(a.server); err == nil && u.Scheme == "http" && !loopback(u.Hostname()) {
		a.note("warning: %s is plain HTTP; passwords, tokens and keys cross the network unencrypted", a.server)
	}
	return c, nil
}

// loopback reports whether host is this machine.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// ownerClient returns a client with the owner's session: TRACELESS_TOKEN or
// the one 'traceless login' saved for this server.
func (a *cli) ownerClient() (*client.Client, error) {
	tok, err := a.sessionToken()
	if err != nil {
		return nil, err
	}
	if tok == "" {
		return nil, fmt.Errorf("not logged in to %s: run 'traceless login' or set %s", a.server, envToken)
	}
	return a.newClient(client.WithToken(tok))
}

// keyClient returns a client with the app API key.
func (a *cli) keyClient() (*client.Client, error) {
	if a.apiKey == "" {
		return nil, fmt.Errorf("no app API key: set %s or pass --api-key (create one with 'traceless keys create')", envAPIKey)
	}
	return a.newClient(client.WithAPIKey(a.apiKey))
}

// json reports whether --output json was asked for.
func (a *cli) json() bool { return a.output == "json" }

// note writes a message for the person at the terminal to stderr, so
// stdout stays parseable.
func (a *cli) note(format string, args ...any) {
	fmt.Fprintf(a.stderr, format+"\n", args...)
}
