package wg

import (
	"errors"
	"fmt"
	"os"

	"github.com/mdlayher/genetlink"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/wgctrl"
)

// Backends, as --backend names them.
const (
	BackendAuto      = "auto"
	BackendKernel    = "kernel"
	BackendUserspace = "userspace"
	// BackendFake is the Backend of interfaces from NewFakeInterface.
	BackendFake = "fake"
)

// Peer limits of the backends. A device refuses a peer past its limit;
// the agent never asks for one (it keeps the rest of a larger pool
// waiting, see agent's capacity handling).
const (
	// UserspacePeerLimit is wireguard-go's device.MaxPeers: 65,536.
	UserspacePeerLimit = device.MaxPeers
	// KernelPeerLimit is the Linux module's MAX_PEERS_PER_DEVICE
	// (drivers/net/wireguard/messages.h): 1,048,576.
	KernelPeerLimit = 1 << 20
)

// Config says which interface Open brings up.
type Config struct {
	// Name is the interface name, e.g. "tl0".
	Name string
	// Backend is BackendAuto (the default), BackendKernel or
	// BackendUserspace.
	Backend string
	// MTU is the MTU a new userspace TUN device starts with; link setup
	// sets it again. Zero means 1420.
	MTU int
	// Holder runs a userspace device in a detached holder process (see
	// RunHolder) instead of in this one, so that it and its sessions
	// outlive an agent restart. The program must dispatch HolderCommand
	// to RunHolder.
	Holder bool
}

// Interface is an open WireGuard interface: its wgctrl client and its
// link. Close releases it; see Close for what stays.
type Interface struct {
	Name string
	// Backend is BackendKernel, BackendUserspace or BackendFake.
	Backend string
	// Client configures the device and reads it redacted; its errors are
	// classified (*Error).
	Client *Control
	// Links sets the link up; Netlink for the real backends.
	Links Links
	// Existed reports whether the interface was there before Open: a
	// kernel interface kept across an agent restart, with its peers.
	Existed bool
	// PeerLimit is the most peers the device holds (see the Peer limits
	// constants); 0 is no known limit.
	PeerLimit int

	closers []func() error
}

// Close releases the interface. A kernel interface stays, with its peers,
// so a restarted agent takes it over without breaking tunnels; a
// userspace device lives in this process and goes away with its TUN
// device and UAPI socket.
func (i *Interface) Close() error {
	var errs []error
	for j := len(i.closers) - 1; j >= 0; j-- {
		errs = append(errs, i.closers[j]())
	}
	i.closers = nil
	return errors.Join(errs...)
}

// Open brings up the configured interface, or takes over an existing
// kernel one. BackendAuto uses the kernel module when the "wireguard"
// generic netlink family is present or a WireGuard link can be created
// (which loads the module), and the userspace device otherwise.
func Open(cfg Config) (*Interface, error) {
	if cfg.MTU == 0 {
		cfg.MTU = 1420
	}
	links, err := NewNetlink()
	if err != nil {
		return nil, err
	}
	var i *Interface
	switch cfg.Backend {
	case BackendKernel:
		i, err = openKernel(cfg, links)
	case BackendUserspace:
		i, err = openUserspace(cfg, links)
	case "", BackendAuto:
		i, err = openKernel(cfg, links)
		if errors.Is(err, ErrNoKernel) {
			i, err = openUserspace(cfg, links)
		}
	default:
		err = &Error{Op: "open", Err: fmt.Errorf("unknown backend %q: %w", cfg.Backend, errInvalid)}
	}
	if err != nil {
		links.Close()
		return nil, err
	}
	return i, nil
}

// KernelAvailable reports whether the running kernel has WireGuard loaded
// (its generic netlink family exists). A kernel with the module available
// but not loaded reports false until a WireGuard link is created.
func KernelAvailable() bool {
	c, err := genetlink.Dial(nil)
	if err != nil {
		return false
	}
	defer c.Close()
	_, err = c.GetFamily("wireguard")
	return err == nil
}

func openKernel(cfg Config, links *Netlink) (*Interface, error) {
	kind, err := links.Kind(cfg.Name)
	existed := err == nil
	switch {
	case existed && kind != "wireguard":
		return nil, &Error{Op: "open " + cfg.Name, Err: fmt.Errorf("interface exists and is a %q link, not WireGuard: %w", kind, os.ErrExist)}
	case errors.Is(err, os.ErrNotExist):
		if err := links.AddWireGuard(cfg.Name); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	}
	c, err := wgctrl.New()
	if err == nil {
		_, err = c.Device(cfg.Name)
		if err != nil {
			c.Close()
		}
	}
	if err != nil {
		if !existed {
			links.Delete(cfg.Name)
		}
		return nil, wrapErr("open "+cfg.Name, err)
	}
	return &Interface{
		Name: cfg.Name, Backend: BackendKernel, Client: NewControl(c), Links: links, Existed: existed, PeerLimit: KernelPeerLimit,
		closers: []func() error{links.Close, c.Close},
	}, nil
}

func openUserspace(cfg Config, links *Netlink) (*Interface, error) {
	if cfg.Holder {
		return openHeld(cfg, links)
	}
	if kind, err := links.Kind(cfg.Name); err == nil {
		return nil, &Error{Op: "open " + cfg.Name, Err: fmt.Errorf("a %q link of that name exists: %w", kind, os.ErrExist)}
	}
	if holderAnswers(cfg.Name) {
		// No link here, yet a device answers: another namespace's.
		return nil, foreignDevice(cfg.Name)
	}
	// A socket nobody answers on (its process is gone) is replaced.
	u, err := startUserspace(cfg.Name, cfg.MTU)
	if err != nil {
		return nil, err
	}
	c, err := wgctrl.New()
	if err == nil {
		_, err = c.Device(cfg.Name)
		if err != nil {
			c.Close()
		}
	}
	if err != nil {
		u.Close()
		return nil, wrapErr("open "+cfg.Name, err)
	}
	// The device's state is in this process's heap: collect it by
	// growth only, as the holder does (collect.go).
	return &Interface{
		Name: cfg.Name, Backend: BackendUserspace, Client: newUserspaceControl(c), Links: links, PeerLimit: UserspacePeerLimit,
		closers: []func() error{startCollector(), links.Close, u.Close, c.Close},
	}, nil
}

// openHeld takes over the device of a running holder, or starts one.
func openHeld(cfg Config, links *Netlink) (*Interface, error) {
	existed := holderAnswers(cfg.Name)
	if existed {
		// The socket is shared by every network namespace; the device
		// behind it is this namespace's only if its link is here.
		if kind, err := links.Kind(cfg.Name); err != nil || kind != tunKind {
			return nil, foreignDevice(cfg.Name)
		}
	} else {
		// Nothing answers: no socket, or one whose holder is gone, which
		// the new holder replaces.
		if kind, err := links.Kind(cfg.Name); err == nil {
			return nil, &Error{Op: "open " + cfg.Name, Err: fmt.Errorf("a %q link of that name exists: %w", kind, os.ErrExist)}
		}
		if err := startHolder(cfg); err != nil {
			return nil, err
		}
	}
	c, err := wgctrl.New()
	if err == nil {
		_, err = c.Device(cfg.Name)
		if err != nil {
			c.Close()
		}
	}
	if err != nil {
		return nil, wrapErr("open "+cfg.Name, err)
	}
	// Like a kernel interface, the held device stays when the agent
	// closes it; a restarted agent takes it over.
	return &Interface{
		Name: cfg.Name, Backend: BackendUserspace, Client: newUserspaceControl(c), Links: links, Existed: existed, PeerLimit: UserspacePeerLimit,
		closers: []func() error{links.Close, c.Close},
	}, nil
}

// NewFakeInterface returns an Interface over a Fake device and a fake
// link of the given name, creating both unless they exist. Like a kernel
// interface, it stays in f and links after Close. Its PeerLimit is the
// device's (Fake.SetPeerLimit).
func NewFakeInterface(name string, f *Fake, links *FakeLinks) *Interface {
	_, err := links.Kind(name)
	existed := err == nil
	f.AddDevice(name)
	links.Add(name, "wireguard")
	return &Interface{Name: name, Backend: BackendFake, Client: NewControl(f), Links: links, Existed: existed, PeerLimit: f.peerLimit(name)}
}
