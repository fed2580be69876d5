package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Firewall is the agent's netfilter: its own nftables table, and the scan
// for logging rules that the posture check needs.
type Firewall interface {
	// Apply atomically replaces the agent's table with rules r.
	Apply(r FirewallRules) error
	// LogRules counts the rules of every table that log packets: a "log"
	// expression, or an xtables LOG, NFLOG or ULOG target (iptables-nft).
	LogRules() (int, error)
}

// FirewallRules is what the agent's table holds.
type FirewallRules struct {
	// ListenPort is the WireGuard UDP port: packets to and from it skip
	// connection tracking, so no conntrack entry names a client's address.
	// Zero means no such rules.
	ListenPort int
	// Egress, when set, is the interface whose traffic from Sources is
	// masqueraded.
	Egress  string
	Sources []netip.Prefix
}

// tableName is the agent's nftables table (family inet).
const tableName = "traceless"

// nftFirewall is Firewall over nf_tables netlink. Each call opens its own
// netlink socket in the network namespace of the calling thread.
type nftFirewall struct{}

// NewNFTables returns the nftables Firewall.
func NewNFTables() Firewall { return nftFirewall{} }

func (nftFirewall) Apply(r FirewallRules) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := &nftables.Table{Name: tableName, Family: nftables.TableFamilyINet}
	// Add (a no-op if it exists), delete and add again in one
	// transaction: the table is replaced whole, never seen half-built.
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	if r.ListenPort > 0 {
		port := binary.BigEndian.AppendUint16(nil, uint16(r.ListenPort))
		pre := c.AddChain(&nftables.Chain{Name: "raw-prerouting", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRaw})
		out := c.AddChain(&nftables.Chain{Name: "raw-output", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityRaw})
		c.AddRule(&nftables.Rule{Table: t, Chain: pre, Exprs: udpPortNotrack(2, port)}) // udp dport
		c.AddRule(&nftables.Rule{Table: t, Chain: out, Exprs: udpPortNotrack(0, port)}) // udp sport
	}
	if r.Egress != "" {
		post := c.AddChain(&nftables.Chain{Name: "nat-postrouting", Table: t, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
		for _, src := range r.Sources {
			c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: masquerade(r.Egress, src.Masked())})
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: replace table %s: %w", tableName, err)
	}
	return nil
}

// udpPortNotrack matches UDP packets whose port at offset (0 source, 2
// destination) is port, and exempts them from connection tracking.
func udpPortNotrack(offset uint32, port []byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: offset, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: port},
		&expr.Notrack{},
	}
}

// masquerade matches packets leaving through egress with a source address
// in src, and masquerades them.
func masquerade(egress string, src netip.Prefix) []expr.Any {
	name := make([]byte, unix.IFNAMSIZ)
	copy(name, egress)
	proto, offset := byte(unix.NFPROTO_IPV4), uint32(12)
	if src.Addr().Is6() {
		proto, offset = unix.NFPROTO_IPV6, 8
	}
	size := uint32(src.Addr().BitLen() / 8)
	mask := make([]byte, size)
	for i := 0; i < src.Bits(); i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: name},
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: size},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: size, Mask: mask, Xor: make([]byte, size)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: src.Addr().AsSlice()},
		&expr.Masq{},
	}
}

func (nftFirewall) LogRules() (int, error) {
	c, err := nftables.New()
	if err != nil {
		return 0, fmt.Errorf("nftables: %w", err)
	}
	chains, err := c.ListChains()
	if err != nil {
		if noNFTables(err) {
			return 0, nil
		}
		return 0, fmt.Errorf("nftables: list chains: %w", err)
	}
	n := 0
	for _, ch := range chains {
		rules, err := c.GetRules(ch.Table, ch)
		if err != nil {
			return 0, fmt.Errorf("nftables: list rules: %w", err)
		}
		for _, r := range rules {
			if logs(r.Exprs) {
				n++
			}
		}
	}
	return n, nil
}

// logs reports whether a rule logs packets.
func logs(exprs []expr.Any) bool {
	for _, e := range exprs {
		switch e := e.(type) {
		case *expr.Log:
			return true
		case *expr.Target:
			switch e.Name {
			case "LOG", "NFLOG", "ULOG":
				return true
			}
		}
	}
	return false
}

// noNFTables reports whether err means the kernel has no nf_tables, and
// so no nftables rules.
func noNFTables(err error) bool {
	return errors.Is(err, syscall.EPROTONOSUPPORT) || errors.Is(err, syscall.EAFNOSUPPORT)
}
