package wg

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
)

// Links sets up network interfaces: the part of a WireGuard interface that
// is not WireGuard (its existence, addresses, MTU and state). Netlink
// implements it on Linux; FakeLinks in tests.
type Links interface {
	// Kind returns the kind of the named link ("wireguard", "tun", …). It
	// returns an error satisfying errors.Is(err, os.ErrNotExist) when
	// there is no such link.
	Kind(name string) (string, error)
	// AddWireGuard creates a kernel WireGuard link. It returns an error
	// satisfying errors.Is(err, ErrNoKernel) when the kernel has no
	// WireGuard, and errors.Is(err, os.ErrExist) when the name is taken.
	AddWireGuard(name string) error
	// SetAddrs makes addrs the link's addresses: missing ones are added,
	// others removed (IPv6 link-local addresses stay). Each prefix holds
	// the interface address and the network's length, e.g. 10.64.0.1/10.
	SetAddrs(name string, addrs []netip.Prefix) error
	// SetMTU sets the link's MTU.
	SetMTU(name string, mtu int) error
	// Up sets the link up; a link that is up stays so.
	Up(name string) error
	// IsUp reports whether the link is administratively up.
	IsUp(name string) (bool, error)
	// Delete removes the link; deleting a missing link is not an error.
	Delete(name string) error
}

// ErrNoKernel is wrapped by AddWireGuard's error when the kernel lacks
// WireGuard; the auto backend then falls back to userspace.
var ErrNoKernel = errors.New("kernel has no WireGuard support")

// FakeLinks is an in-memory Links, safe for concurrent use. Links created
// with AddWireGuard (or Add) have kind "wireguard" (or the given kind).
type FakeLinks struct {
	mu       sync.Mutex
	links    map[string]*FakeLink
	noKernel bool
	fail     error
}

// FakeLink is the state of one fake link.
type FakeLink struct {
	Kind  string
	Addrs []netip.Prefix
	MTU   int
	Up    bool
}

// NewFakeLinks returns FakeLinks without links. With noKernel,
// AddWireGuard fails as on a kernel without WireGuard.
func NewFakeLinks(noKernel bool) *FakeLinks {
	return &FakeLinks{links: map[string]*FakeLink{}, noKernel: noKernel}
}

// Add creates a link of the given kind, as creating a TUN device would.
func (l *FakeLinks) Add(name, kind string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.links[name] == nil {
		l.links[name] = &FakeLink{Kind: kind, MTU: 1500}
	}
}

// Link returns a copy of the named link's state, and whether it exists.
func (l *FakeLinks) Link(name string) (FakeLink, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := l.links[name]
	if k == nil {
		return FakeLink{}, false
	}
	c := *k
	c.Addrs = slices.Clone(k.Addrs)
	return c, true
}

// Fail makes every later call fail with err (nil to stop).
func (l *FakeLinks) Fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fail = err
}

func (l *FakeLinks) get(name string) (*FakeLink, error) {
	if l.fail != nil {
		return nil, l.fail
	}
	k := l.links[name]
	if k == nil {
		return nil, fmt.Errorf("link %s: %w", name, os.ErrNotExist)
	}
	return k, nil
}

func (l *FakeLinks) Kind(name string) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k, err := l.get(name)
	if err != nil {
		return "", err
	}
	return k.Kind, nil
}

func (l *FakeLinks) AddWireGuard(name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.fail != nil:
		return l.fail
	case l.noKernel:
		return fmt.Errorf("link %s: %w", name, ErrNoKernel)
	case l.links[name] != nil:
		return fmt.Errorf("link %s: %w", name, os.ErrExist)
	}
	l.links[name] = &FakeLink{Kind: "wireguard", MTU: 1420}
	return nil
}

func (l *FakeLinks) SetAddrs(name string, addrs []netip.Prefix) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	k, err := l.get(name)
	if err != nil {
		return err
	}
	k.Addrs = slices.Clone(addrs)
	return nil
}

func (l *FakeLinks) SetMTU(name string, mtu int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	k, err := l.get(name)
	if err != nil {
		return err
	}
	k.MTU = mtu
	return nil
}

func (l *FakeLinks) Up(name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	k, err := l.get(name)
	if err != nil {
		return err
	}
	k.Up = true
	return nil
}

func (l *FakeLinks) IsUp(name string) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k, err := l.get(name)
	if err != nil {
		return false, err
	}
	return k.Up, nil
}

func (l *FakeLinks) Delete(name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail != nil {
		return l.fail
	}
	delete(l.links, name)
	return nil
}
