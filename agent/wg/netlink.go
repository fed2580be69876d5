package wg

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Netlink is Links over rtnetlink (github.com/vishvananda/netlink). It
// acts in the network namespace that was current for the thread that
// called NewNetlink.
type Netlink struct {
	h *netlink.Handle
}

var _ Links = (*Netlink)(nil)

// NewNetlink opens an rtnetlink handle in the current network namespace.
func NewNetlink() (*Netlink, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, wrapErr("netlink", err)
	}
	return &Netlink{h: h}, nil
}

// Close releases the handle.
func (n *Netlink) Close() error {
	n.h.Close()
	return nil
}

func (n *Netlink) link(name string) (netlink.Link, error) {
	l, err := n.h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, syscall.ENODEV) {
			return nil, &Error{Op: "link " + name, Err: os.ErrNotExist}
		}
		return nil, wrapErr("link "+name, err)
	}
	return l, nil
}

func (n *Netlink) Kind(name string) (string, error) {
	l, err := n.link(name)
	if err != nil {
		return "", err
	}
	return l.Type(), nil
}

func (n *Netlink) AddWireGuard(name string) error {
	err := n.h.LinkAdd(&netlink.Wireguard{LinkAttrs: netlink.LinkAttrs{Name: name}})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.EPROTONOSUPPORT):
		return &Error{Op: "add link " + name, Err: fmt.Errorf("%w (%v)", ErrNoKernel, err)}
	}
	return wrapErr("add link "+name, err)
}

func (n *Netlink) SetAddrs(name string, addrs []netip.Prefix) error {
	l, err := n.link(name)
	if err != nil {
		return err
	}
	have, err := n.h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return wrapErr("list addresses", err)
	}
	present := map[netip.Prefix]bool{}
	for _, a := range have {
		p, ok := prefixOfAddr(a)
		if !ok || (p.Addr().Is6() && p.Addr().IsLinkLocalUnicast()) {
			continue
		}
		if slices.Contains(addrs, p) {
			present[p] = true
			continue
		}
		if err := n.h.AddrDel(l, &a); err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) {
			return wrapErr("delete address", err)
		}
	}
	for _, p := range addrs {
		if present[p] {
			continue
		}
		a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
		if p.Addr().Is6() {
			// A tunnel has no neighbours to detect duplicates with.
			a.Flags = unix.IFA_F_NODAD
		}
		if err := n.h.AddrAdd(l, a); err != nil && !errors.Is(err, syscall.EEXIST) {
			return wrapErr("add address", err)
		}
	}
	return nil
}

func prefixOfAddr(a netlink.Addr) (netip.Prefix, bool) {
	if a.IPNet == nil {
		return netip.Prefix{}, false
	}
	ip, ok := netip.AddrFromSlice(a.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := a.Mask.Size()
	return netip.PrefixFrom(ip.Unmap(), ones), true
}

func (n *Netlink) SetMTU(name string, mtu int) error {
	l, err := n.link(name)
	if err != nil {
		return err
	}
	if l.Attrs().MTU == mtu {
		return nil
	}
	return wrapErr("set mtu", n.h.LinkSetMTU(l, mtu))
}

func (n *Netlink) Up(name string) error {
	l, err := n.link(name)
	if err != nil {
		return err
	}
	if l.Attrs().Flags&net.FlagUp != 0 {
		return nil
	}
	return wrapErr("set up", n.h.LinkSetUp(l))
}

func (n *Netlink) IsUp(name string) (bool, error) {
	l, err := n.link(name)
	if err != nil {
		return false, err
	}
	return l.Attrs().Flags&net.FlagUp != 0, nil
}

func (n *Netlink) Delete(name string) error {
	l, err := n.link(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return wrapErr("delete link", n.h.LinkDel(l))
}
