package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/controlplane/client"
)

// keyAction is an action with an app API key's client.
func (a *cli) keyAction(fn func(ctx context.Context, c *client.Client, args []string) error) func(*cobra.Command, []string) error {
	return action(func(cmd *cobra.Command, argv []string) error {
		c, err := a.keyClient()
		if err != nil {
			return err
		}
		return fn(cmd.Context(), c, argv)
	})
}

func (a *cli) devicesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "devices",
		Short:   "Provision an app's devices",
		GroupID: "provisioning",
		Long: `Register, list, rotate and remove end-user devices of the app that the
credential (TRACELESS_API_KEY or --api-key) belongs to. A device is only its
WireGuard public key and its tunnel addresses; its private key stays on
the device. With --generate, a key pair is made on this machine and only
the public key is sent.

Registration answers the device's own token (tld_, shown once; keep it
with --device-token-file). With it as TRACELESS_API_KEY a device gets,
configures, rotates and deletes itself, and nothing else; every rotation
replaces it. A secret key (tlk_) may do everything, a publishable key
(tlp_) only register; 'register --ticket' registers with a registration
ticket from 'traceless tickets create' and needs no key.`,
	}
	cmd.AddCommand(a.devicesRegisterCommand(), a.devicesListCommand(), a.devicesGetCommand(),
		a.devicesDeleteCommand(), a.devicesRotateCommand(), a.devicesRotateIfDueCommand(), a.devicesConfigCommand(),
		a.devicesTokenCommand())
	return cmd
}

// keyFlags are the --public-key, --generate and --private-key-file flags
// of register and rotate.
type keyFlags struct {
	publicKey      string
	generate       bool
	privateKeyFile string
	// replace lets --private-key-file replace an existing file (the
	// device's old key, useless after a rotation).
	replace bool
	// tokenFile receives the device token the answer carries.
	tokenFile string
}

func (f *keyFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.publicKey, "public-key", "", "the device's WireGuard public key (base64)")
	cmd.Flags().BoolVar(&f.generate, "generate", false, "generate a key pair here and send only the public key; the private key is printed once")
	cmd.Flags().StringVar(&f.privateKeyFile, "private-key-file", "", "with --generate: write the private key to this new file (mode 0600) instead of printing it")
	cmd.Flags().StringVar(&f.tokenFile, "device-token-file", "", "write the device's new token to this file (mode 0600, replaced) instead of printing it")
}

// check reports a usage error in the flags.
func (f *keyFlags) check() error {
	switch {
	case f.generate && f.publicKey != "":
		return usagef("--public-key and --generate exclude each other")
	case f.privateKeyFile != "" && !f.generate:
		return usagef("--private-key-file goes with --generate")
	case !f.generate && f.publicKey == "":
		return usagef("give the device's --public-key, or --generate a key pair here")
	}
	return nil
}

// resolve returns the public key to send and, with --generate, the pair.
func (f *keyFlags) resolve() (string, *keyPair, error) {
	if err := f.check(); err != nil {
		return "", nil, err
	}
	switch {
	case f.generate:
		kp, err := generateKeyPair()
		if err != nil {
			return "", nil, err
		}
		return kp.public.String(), &kp, nil
	default:
		pub, err := parsePublicKey(f.publicKey)
		return pub, nil, err
	}
}

// generatedDevice is a registered or rotated device and, when its key pair
// was generated here, its private key.
type generatedDevice struct {
	api.DeviceCreated
	PrivateKey string `json:"private_key,omitempty"`
}

// emitDevice prints a registered or rotated device; a private key generated
// here goes to stdout or --private-key-file and nowhere else.
func (a *cli) emitDevice(d api.DeviceCreated, kp *keyPair, f keyFlags) error {
	out, err := a.generated(d, kp, f)
	if err != nil {
		return err
	}
	return a.emit(out, func(t *table) { generatedDetail(t, out) })
}

// generated is the output of a registered or rotated device; it saves a
// private key generated here to --private-key-file, or puts it in the
// output.
func (a *cli) generated(d api.DeviceCreated, kp *keyPair, f keyFlags) (generatedDevice, error) {
	out := generatedDevice{DeviceCreated: d}
	if d.DeviceToken != "" {
		if f.tokenFile != "" {
			if err := writeFileAtomic(f.tokenFile, []byte(d.DeviceToken+"\n")); err != nil {
				return out, fmt.Errorf("device %s has a new token, but it could not be saved (a secret key can reset it): %w", d.ID, err)
			}
			out.DeviceToken = ""
			a.note("The device token was saved to %s; it replaces any earlier one.", f.tokenFile)
		} else {
			a.note("The device token is shown only once and replaces any earlier one: keep it on the device.")
		}
	}
	if kp == nil {
		return out, nil
	}
	if f.privateKeyFile != "" {
		b := []byte(kp.private.String() + "\n")
		var err error
		if f.replace {
			err = writeFileAtomic(f.privateKeyFile, b)
		} else {
			err = writeSecretFile(f.privateKeyFile, b)
		}
		if err != nil {
			return out, fmt.Errorf("the device is registered as %s, but its private key could not be saved: %w", d.ID, err)
		}
		a.note("The private key was generated here, never sent, and saved to %s.", f.privateKeyFile)
	} else {
		out.PrivateKey = kp.private.String()
		a.note("The private key was generated here and never sent; it is shown only once. Put it on the device.")
	}
	return out, nil
}

func generatedDetail(t *table, d generatedDevice) {
	deviceDetail(t, d.Device)
	if d.PrivateKey != "" {
		t.row("PRIVATE KEY", d.PrivateKey)
	}
	if d.DeviceToken != "" {
		t.row("DEVICE TOKEN", d.DeviceToken)
	}
	t.row("SERVERS", len(d.Servers))
}

func (a *cli) devicesRegisterCommand() *cobra.Command {
	var kf keyFlags
	var ref, ticket string
	cmd := &cobra.Command{
		Use:   "register",
		Short: "Register a device by its public key",
		Long: `Register a device by its public key, with the app key in TRACELESS_API_KEY
or, with --ticket, with a registration ticket (which this spends; no key is
needed). The answer holds the device's own token, shown only once.`,
		Args: args(),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			var c *client.Client
			var err error
			if ticket != "" {
				c, err = a.newClient()
			} else {
				c, err = a.keyClient()
			}
			if err != nil {
				return err
			}
			pub, kp, err := kf.resolve()
			if err != nil {
				return err
			}
			in := api.DeviceInput{PublicKey: pub}
			if ref != "" {
				in.ExternalRef = &ref
			}
			var d api.DeviceCreated
			if ticket != "" {
				d, err = c.RegisterWithTicket(ctx, ticket, in)
			} else {
				d, err = c.RegisterDevice(ctx, in)
			}
			if err != nil {
				return err
			}
			return a.emitDevice(d, kp, kf)
		}),
	}
	kf.add(cmd)
	cmd.Flags().StringVar(&ref, "external-ref", "", "your own reference for the device, such as a user ID")
	cmd.Flags().StringVar(&ticket, "ticket", "", "register with this registration ticket (tlt_…) instead of an app key")
	return cmd
}

func (a *cli) devicesTokenCommand() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "token DEVICE_ID",
		Short: "Reset a device's token (secret key; the old one stops working)",
		Args:  args("DEVICE_ID"),
	}
	cmd.RunE = a.keyAction(func(ctx context.Context, c *client.Client, argv []string) error {
		tok, err := c.ResetDeviceToken(ctx, argv[0])
		if err != nil {
			return err
		}
		out := api.DeviceToken{DeviceToken: tok}
		if file != "" {
			if err := writeFileAtomic(file, []byte(tok+"\n")); err != nil {
				return fmt.Errorf("device %s has a new token, but it could not be saved: %w", argv[0], err)
			}
			out.DeviceToken = ""
			return a.done("Saved device %s's new token to %s; the old one no longer works.", argv[0], file)
		}
		a.note("The device token is shown only once: hand it to the device. The old one no longer works.")
		return a.emit(out, func(t *table) { t.row("DEVICE TOKEN", tok) })
	})
	cmd.Flags().StringVar(&file, "device-token-file", "", "write the new token to this file (mode 0600, replaced) instead of printing it")
	return cmd
}

func (a *cli) devicesListCommand() *cobra.Command {
	var pageSize int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List all of the app's devices",
		Args:  args(),
		RunE: a.keyAction(func(ctx context.Context, c *client.Client, _ []string) error {
			if pageSize < 1 || pageSize > 500 {
				return usagef("--page-size must be from 1 to 500")
			}
			devs := []api.Device{}
			for d, err := range c.AllDevices(ctx, pageSize) {
				if err != nil {
					return err
				}
				devs = append(devs, d)
			}
			return a.emit(devs, func(t *table) {
				t.row("ID", "PUBLIC KEY", "IPV4", "IPV6", "EXTERNAL REF")
				for _, d := range devs {
					t.row(d.ID, d.PublicKey, d.IPv4, d.IPv6, d.ExternalRef)
				}
			})
		}),
	}
	cmd.Flags().IntVar(&pageSize, "page-size", 200, "devices fetched per request")
	return cmd
}

func deviceDetail(t *table, d api.Device) {
	t.row("ID", d.ID)
	t.row("PUBLIC KEY", d.PublicKey)
	t.row("IPV4", d.IPv4)
	t.row("IPV6", d.IPv6)
	t.row("EXTERNAL REF", d.ExternalRef)
}

func (a *cli) devicesGetCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "get DEVICE_ID",
		Short: "Show a device",
		Args:  args("DEVICE_ID"),
		RunE: a.keyAction(func(ctx context.Context, c *client.Client, argv []string) error {
			d, err := c.Device(ctx, argv[0])
			if err != nil {
				return err
			}
			return a.emit(d, func(t *table) { deviceDetail(t, d) })
		}),
	}
}

func (a *cli) devicesDeleteCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "delete DEVICE_ID",
		Short: "Remove a device from the app and every node",
		Args:  args("DEVICE_ID"),
		RunE: a.keyAction(func(ctx context.Context, c *client.Client, argv []string) error {
			if err := c.DeleteDevice(ctx, argv[0]); err != nil {
				return err
			}
			return a.done("Deleted device %s.", argv[0])
		}),
	}
}

func (a *cli) devicesRotateCommand() *cobra.Command {
	var kf keyFlags
	cmd := &cobra.Command{
		Use:   "rotate DEVICE_ID",
		Short: "Replace a device's key (it also gets new addresses)",
		Args:  args("DEVICE_ID"),
		RunE: a.keyAction(func(ctx context.Context, c *client.Client, argv []string) error {
			pub, kp, err := kf.resolve()
			if err != nil {
				return err
			}
			d, err := c.RotateDevice(ctx, argv[0], pub)
			if err != nil {
				return err
			}
			return a.emitDevice(d, kp, kf)
		}),
	}
	kf.add(cmd)
	return cmd
}

func (a *cli) devicesConfigCommand() *cobra.Command {
	var node, keyFile, qrFile, outFile string
	cmd := &cobra.Command{
		Use:   "config DEVICE_ID",
		Short: "Write a device's wg-quick config for one server",
		Long: `Write the wg-quick config of a device for one server (--node, from
'traceless servers list'; optional when the app has only one).

The server does not know the device's private key, so its config holds a
placeholder. Give --private-key-file (as written by 'devices register
--generate --private-key-file' or 'wg genkey') to put the key in here;
the key is checked against the device and never sent. With --qr the
config is written as a PNG QR code instead, rendered here when it holds
the private key.`,
		Args: args("DEVICE_ID"),
		RunE: a.keyAction(func(ctx context.Context, c *client.Client, argv []string) error {
			if qrFile != "" && outFile != "" {
				return usagef("--qr and --out exclude each other")
			}
			if node == "" {
				list, err := c.ListServers(ctx)
				if err != nil {
					return err
				}
				servers := list.Servers
				if len(servers) == 0 && list.Explanation != nil {
					return fmt.Errorf("no server to write a config for: %s", list.Explanation.Message)
				}
				if len(servers) != 1 {
					return usagef("--node is required: the app may use %d servers (see 'traceless servers list')", len(servers))
				}
				node = servers[0].ID
			}
			return a.writeConfig(ctx, c, argv[0], node, keyFile, qrFile, outFile)
		}),
	}
	cmd.Flags().StringVar(&node, "node", "", "ID of the server (node) to connect to")
	cmd.Flags().StringVar(&keyFile, "private-key-file", "", "file holding the device's private key, to fill in locally")
	cmd.Flags().StringVar(&qrFile, "qr", "", "write a PNG QR code to this file")
	cmd.Flags().StringVar(&outFile, "out", "", "write the config to this file (mode 0600) instead of stdout")
	return cmd
}

// configResult is the JSON output of devices config.
type configResult struct {
	DeviceID string `json:"device_id"`
	ServerID string `json:"server_id"`
	Config   string `json:"config,omitempty"`
	File     string `json:"file,omitempty"`
}

// configWithKey puts the private key read from keyFile into conf, after
// checking that it is the key of the device.
func configWithKey(ctx context.Context, c *client.Client, deviceID, keyFile, conf string) (string, error) {
	key, err := readPrivateKey(keyFile)
	if err != nil {
		return "", err
	}
	d, err := c.Device(ctx, deviceID)
	if err != nil {
		return "", err
	}
	if key.PublicKey().String() != d.PublicKey {
		return "", fmt.Errorf("the private key in %s does not belong to device %s", keyFile, deviceID)
	}
	return insertPrivateKey(conf, key)
}

// savedQR writes the QR code of conf to the file p.
func (a *cli) savedQR(res configResult, p, conf string) error {
	b, err := qrPNG(conf)
	if err != nil {
		return err
	}
	return a.saved(res, p, b)
}

func (a *cli) writeConfig(ctx context.Context, c *client.Client, deviceID, node, keyFile, qrFile, outFile string) error {
	res := configResult{DeviceID: deviceID, ServerID: node}
	if keyFile == "" && qrFile != "" {
		b, err := c.DeviceConfigQR(ctx, deviceID, node)
		if err != nil {
			return err
		}
		return a.saved(res, qrFile, b)
	}
	conf, err := c.DeviceConfig(ctx, deviceID, node)
	if err != nil {
		return err
	}
	if keyFile != "" {
		if conf, err = configWithKey(ctx, c, deviceID, keyFile, conf); err != nil {
			return err
		}
		a.note("The config holds the device's private key: keep it secret.")
	}
	switch {
	case qrFile != "":
		return a.savedQR(res, qrFile, conf)
	case outFile != "":
		return a.saved(res, outFile, []byte(conf))
	case a.json():
		res.Config = conf
		return a.emit(res, nil)
	}
	_, err = fmt.Fprint(a.stdout, conf)
	return err
}

// saved writes b to file (mode 0600) and reports it.
func (a *cli) saved(res configResult, file string, b []byte) error {
	if err := writeOutputFile(file, b); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	res.File = file
	return a.emit(res, func(t *table) { t.row("Wrote " + file + ".") })
}

func (a *cli) serversCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "servers", Short: "The servers the app's plan grants", GroupID: "provisioning"}
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the servers devices may connect to",
		Args:  args(),
		RunE: a.keyAction(func(ctx context.Context, c *client.Client, _ []string) error {
			list, err := c.ListServers(ctx)
			if err != nil {
				return err
			}
			servers := list.Servers
			if len(servers) == 0 && list.Explanation != nil {
				// Why there is none, rather than an empty table; scripts
				// reading JSON still get their empty list.
				if a.json() {
					a.note("No servers: %s", cell(list.Explanation.Message))
				} else {
					_, err := fmt.Fprintf(a.stdout, "No servers: %s\n", cell(list.Explanation.Message))
					return err
				}
			}
			return a.emit(nonNil(servers), func(t *table) {
				t.row("ID", "NAME", "POOL", "REGION", "COUNTRY", "CITY", "ENDPOINT", "ONLINE")
				for _, s := range servers {
					t.row(s.ID, s.Name, s.Pool, s.Region, s.Country, s.City, s.Endpoint, s.Online)
				}
			})
		}),
	})
	return cmd
}
