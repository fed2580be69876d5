package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// Forwarding sysctls; the node routes between the tunnel and the world.
const (
	sysctlForward4 = "/proc/sys/net/ipv4/ip_forward"
	sysctlForward6 = "/proc/sys/net/ipv6/conf/all/forwarding"
)

// tunnelAddrs parses the tunnel's gateway addresses, e.g. 10.64.0.1/10
// and fd74:6c73:7670:1::1/64. IPv6 is optional.
func tunnelAddrs(t api.Tunnel) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range []struct {
		field, v string
		v4       bool
	}{{"ipv4", t.IPv4, true}, {"ipv6", t.IPv6, false}} {
		if s.v == "" {
			if s.v4 {
				return nil, errors.New("tunnel: no ipv4 address")
			}
			continue
		}
		p, err := netip.ParsePrefix(s.v)
		if err != nil || p.Addr().Is4() != s.v4 {
			return nil, fmt.Errorf("tunnel: %s %q is not an address with a prefix length", s.field, s.v)
		}
		out = append(out, p)
	}
	return out, nil
}

// setupInterface configures the link for tunnel t: MTU, addresses, up;
// forwarding on; the agent's nftables table (notrack for the WireGuard
// port, masquerade out of --nat-egress). Every step keeps what is already
// right, so running it on an interface that carries traffic changes
// nothing there.
func (a *Agent) setupInterface(t api.Tunnel) error {
	addrs, err := tunnelAddrs(t)
	if err != nil {
		return err
	}
	mtu := t.MTU
	if mtu <= 0 {
		mtu = a.opts.MTU
	}
	l, name := a.iface.Links, a.iface.Name
	if err := l.SetMTU(name, mtu); err != nil {
		return fmt.Errorf("interface %s: %w", name, err)
	}
	if err := l.SetAddrs(name, addrs); err != nil {
		return fmt.Errorf("interface %s: %w", name, err)
	}
	if err := l.Up(name); err != nil {
		return fmt.Errorf("interface %s: %w", name, err)
	}
	if err := a.host.WriteFile(sysctlForward4, []byte("1\n")); err != nil {
		return fmt.Errorf("enable IPv4 forwarding: %w", err)
	}
	if len(addrs) > 1 {
		if err := a.host.WriteFile(sysctlForward6, []byte("1\n")); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("enable IPv6 forwarding: %w", err)
		}
	}
	rules := FirewallRules{ListenPort: a.opts.ListenPort, Egress: a.opts.NATEgress}
	for _, p := range addrs {
		rules.Sources = append(rules.Sources, p.Masked())
	}
	if err := a.host.Firewall.Apply(rules); err != nil {
		if a.opts.NATEgress != "" {
			return err
		}
		// Without NAT the table only keeps the WireGuard port out of
		// conntrack; the node still works, so warn and go on.
		a.log.Warn("cannot install the notrack rules for the WireGuard port", slog.Any(keyErr, err))
	}
	a.log.Info("interface set up", slog.String(keyInterface, name), slog.Int(keyMTU, mtu),
		slog.String(keyEgress, a.opts.NATEgress))
	return nil
}
