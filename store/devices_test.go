package store

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
)

func TestValidatePublicKey(t *testing.T) {
	var seq, ones [32]byte
	for i := range seq {
		seq[i] = byte(i + 1)
		ones[i] = 0xff
	}
	valid := base64.StdEncoding.EncodeToString(seq[:])
	allOnes := base64.StdEncoding.EncodeToString(ones[:]) // "////…/8=": uses '/'
	tests := []struct {
		name, in string
		want     string // canonical key; "" means invalid
	}{
		{name: "valid", in: valid, want: valid},
		{name: "valid with slashes", in: allOnes, want: allOnes},
		{name: "43 characters", in: valid[:43]},
		{name: "45 characters", in: valid + "="},
		{name: "no padding", in: strings.TrimRight(valid, "=")},
		{name: "empty", in: ""},
		{name: "not base64", in: valid[:10] + "!" + valid[11:]},
		{name: "URL-safe alphabet", in: strings.NewReplacer("+", "-", "/", "_").Replace(allOnes)},
		{name: "31 bytes", in: base64.StdEncoding.EncodeToString(seq[:31])},
		{name: "33 bytes", in: base64.StdEncoding.EncodeToString(append(seq[:], 0x21))},
		{name: "all-zero key", in: base64.StdEncoding.EncodeToString(make([]byte, 32))},
		{name: "non-canonical final bits", in: allOnes[:42] + "9="},
		{name: "leading space", in: " " + valid[:43]},
		{name: "trailing space", in: valid + " "},
		{name: "trailing newline", in: valid + "\n"},
		{name: "newline inside", in: valid[:20] + "\n" + valid[20:43]},
		{name: "tab inside", in: valid[:20] + "\t" + valid[20:43]},
		{name: "hex instead of base64", in: strings.Repeat("ab", 22)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ValidatePublicKey("public_key", tt.in)
			if tt.want == "" {
				wantValidation(t, err, "public_key")
				if got != "" {
					t.Errorf("ValidatePublicKey(%q) = %q with an error; want \"\"", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ValidatePublicKey(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ValidatePublicKey(%q) = %q; want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRegisterDevice(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		o := MustCreateOwner(t, s, "a@example.com", "pro")
		app := MustCreateApp(t, s, o.ID, "app")
		key := randomKey(t)
		ref := "user-1234"
		rev := MustRevision(t, s)

		changes := MustRecordChanges(t, s)
		d, err := s.RegisterDevice(ctx, app.ID, NewDevice{PublicKey: key, ExternalRef: &ref})
		if err != nil {
			t.Fatalf("RegisterDevice: %v", err)
		}
		ch := changes.One(t)
		if _, err := uuid.Parse(d.ID); err != nil {
			t.Errorf("ID %q is not a UUID", d.ID)
		}
		want := Device{ID: d.ID, AppID: app.ID, PublicKey: key, IPv4: d.IPv4, IPv6: d.IPv6, ExternalRef: &ref, Revision: rev + 1}
		if diff := cmp.Diff(want, d); diff != "" {
			t.Errorf("RegisterDevice (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(Change{Revision: rev + 1, Upserted: []Device{want}}, ch); diff != "" {
			t.Errorf("RegisterDevice Change (-want +got):\n%s", diff)
		}
		mustDeviceInNetworks(t, s, d)
		got, err := s.GetDevice(ctx, app.ID, d.ID)
		if err != nil {
			t.Fatalf("GetDevice: %v", err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("GetDevice (-want +got):\n%s", diff)
		}
		if got := MustRevision(t, s); got != rev+1 {
			t.Errorf("revision = %d; want %d", got, rev+1)
		}

		// external_ref is optional.
		d2, err := s.RegisterDevice(ctx, app.ID, NewDevice{PublicKey: randomKey(t)})
		if err != nil {
			t.Fatalf("RegisterDevice without external_ref: %v", err)
		}
		if got, err := s.GetDevice(ctx, app.ID, d2.ID); err != nil || got.ExternalRef != nil {
			t.Errorf("GetDevice = %+v, %v; want no external_ref", got, err)
		}

		if _, err := s.RegisterDevice(ctx, uuid.NewString(), NewDevice{PublicKey: randomKey(t)}); !errors.Is(err, ErrNotFound) {
			t.Errorf("RegisterDevice(unknown app) error = %v; want ErrNotFound", err)
		}
		if _, err := s.GetDevice(ctx, uuid.NewString(), d.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetDevice through another app error = %v; want ErrNotFound", err)
		}
		if got := MustRevision(t, s); got != rev+2 {
			t.Errorf("revision = %d after a failed registration; want %d", got, rev+2)
		}
		if diff := cmp.Diff(map[string]int64{app.ID: 2}, MustDeviceCounts(t, s)); diff != "" {
			t.Errorf("device counts (-want +got):\n%s", diff)
		}
	})
}

func TestRegisterDeviceRejects(t *testing.T) {
	tests := []struct {
		name  string
		nd    func(t *testing.T) NewDevice
		field string
	}{
		{"bad key", func(t *testing.T) NewDevice { return NewDevice{PublicKey: "not-a-key"} }, "public_key"},
		{"zero key", func(t *testing.T) NewDevice { return NewDevice{PublicKey: strings.Repeat("A", 43) + "="} }, "public_key"},
		{"external_ref too long", func(t *testing.T) NewDevice {
			return NewDevice{PublicKey: randomKey(t), ExternalRef: ptr(strings.Repeat("r", 129))}
		}, "external_ref"},
		{"external_ref too many bytes", func(t *testing.T) NewDevice {
			return NewDevice{PublicKey: randomKey(t), ExternalRef: ptr(strings.Repeat("é", 65))}
		}, "external_ref"},
		{"external_ref empty", func(t *testing.T) NewDevice { return NewDevice{PublicKey: randomKey(t), ExternalRef: ptr("")} }, "external_ref"},
		{"external_ref NUL", func(t *testing.T) NewDevice { return NewDevice{PublicKey: randomKey(t), ExternalRef: ptr("a\x00b")} }, "external_ref"},
		{"external_ref newline", func(t *testing.T) NewDevice { return NewDevice{PublicKey: randomKey(t), ExternalRef: ptr("a\nb")} }, "external_ref"},
		{"external_ref bidi", func(t *testing.T) NewDevice { return NewDevice{PublicKey: randomKey(t), ExternalRef: ptr("a\u202eb")} }, "external_ref"},
		{"external_ref invalid UTF-8", func(t *testing.T) NewDevice { return NewDevice{PublicKey: randomKey(t), ExternalRef: ptr("a\xffb")} }, "external_ref"},
	}
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		o := MustCreateOwner(t, s, "a@example.com", "pro")
		app := MustCreateApp(t, s, o.ID, "app")
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := s.RegisterDevice(ctx, app.ID, tt.nd(t))
				wantValidation(t, err, tt.field)
				if n := MustCount(t, s, &Device{}); n != 0 {
					t.Errorf("%d devices stored; want 0", n)
				}
				if rev := MustRevision(t, s); rev != 0 {
					t.Errorf("revision = %d; want 0", rev)
				}
			})
		}
		// The longest accepted external_ref.
		long := strings.Repeat("r", 128)
		d, err := s.RegisterDevice(ctx, app.ID, NewDevice{PublicKey: randomKey(t), ExternalRef: &long})
		if err != nil {
			t.Fatalf("RegisterDevice with a 128-character external_ref: %v", err)
		}
		if got, err := s.GetDevice(ctx, app.ID, d.ID); err != nil || got.ExternalRef == nil || *got.ExternalRef != long {
			t.Errorf("GetDevice = %+v, %v; want the 128-character external_ref", got, err)
		}
		MustDeviceCounts(t, s)
	})
}

func TestRegisterDeviceDuplicateKey(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		alice := MustCreateOwner(t, s, "alice@example.com", "pro")
		bob := MustCreateOwner(t, s, "bob@example.com", "pro")
		a1 := MustCreateApp(t, s, alice.ID, "one")
		a2 := MustCreateApp(t, s, alice.ID, "two")
		b1 := MustCreateApp(t, s, bob.ID, "bob's")
		d := MustRegister(t, s, a1.ID)
		before := MustAllDevices(t, s)
		rev := MustRevision(t, s)
		for _, app := range []App{a1, a2, b1} {
			t.Run(app.Name, func(t *testing.T) {
				if _, err := s.RegisterDevice(ctx, app.ID, NewDevice{PublicKey: d.PublicKey}); !errors.Is(err, ErrConflict) {
					t.Errorf("RegisterDevice(known key) error = %v; want ErrConflict", err)
				}
				if diff := cmp.Diff(before, MustAllDevices(t, s)); diff != "" {
					t.Errorf("devices after a rejected registration (-want +got):\n%s", diff)
				}
				if got := MustRevision(t, s); got != rev {
					t.Errorf("revision = %d; want %d (unchanged)", got, rev)
				}
				if diff := cmp.Diff(map[string]int64{a1.ID: 1, a2.ID: 0, b1.ID: 0}, MustDeviceCounts(t, s)); diff != "" {
					t.Errorf("device counts (-want +got):\n%s", diff)
				}
			})
		}
	})
}

// mustDeviceInNetworks checks that d's addresses are host addresses of the
// store's tunnel networks, never the network, gateway or broadcast address.
func mustDeviceInNetworks(tb testing.TB, s *Store, d Device) {
	tb.Helper()
	p4, p6 := s.TunnelNetworks()
	for _, c := range []struct {
		addr string
		p    netip.Prefix
	}{{d.IPv4, p4}, {d.IPv6, p6}} {
		a, err := netip.ParseAddr(c.addr)
		if err != nil {
			tb.Errorf("device %s: address %q does not parse: %v", d.ID, c.addr, err)
			continue
		}
		if a.String() != c.addr {
			tb.Errorf("device %s: address %q is not in canonical form %q", d.ID, c.addr, a)
		}
		if !c.p.Contains(a) || a.Is4() != c.p.Addr().Is4() {
			tb.Errorf("device %s: address %s outside %s", d.ID, a, c.p)
		}
		if a == c.p.Masked().Addr() {
			tb.Errorf("device %s: got the network address %s", d.ID, a)
		}
		if a == Gateway(c.p) {
			tb.Errorf("device %s: got the gateway address %s", d.ID, a)
		}
		if a.Is4() && a == lastAddr(c.p) {
			tb.Errorf("device %s: got the broadcast address %s", d.ID, a)
		}
	}
}

// lastAddr returns the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	host := len(b)*8 - p.Bits()
	for i := len(b) - 1; host > 0; i-- {
		n := min(host, 8)
		b[i] |= byte(1<<n - 1)
		host -= n
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// TestRegisterDeviceAddresses registers 2,000 devices in six apps of three
// owners, in parallel, on networks small enough (/20, /116) that random
// probes collide often, and checks every address.
func TestRegisterDeviceAddresses(t *testing.T) {
	eachBackend(t, func(t *testing.T, b testBackend) {
		ctx := context.Background()
		cfg := b.Config(t)
		cfg.TunnelIPv4 = netip.MustParsePrefix("10.64.0.0/20")
		cfg.TunnelIPv6 = netip.MustParsePrefix("fd74:6c73:7670:1::/116")
		s := MustOpen(t, cfg)
		MustSeedPlans(t, s)
		var apps []string
		for i := range 3 {
			o := MustCreateOwner(t, s, fmt.Sprintf("o%d@example.com", i), "business")
			for j := range 2 {
				apps = append(apps, MustCreateApp(t, s, o.ID, fmt.Sprint("app", j)).ID)
			}
		}
		const total, workers = 2000, 8
		devs := make([]Device, total)
		errs := make([]error, total)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < total; i += workers {
					devs[i], errs[i] = s.RegisterDevice(ctx, apps[i%len(apps)], NewDevice{PublicKey: randomKey(t)})
				}
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("RegisterDevice: %v", err)
		}
		seen4, seen6 := map[string]bool{}, map[string]bool{}
		for _, d := range devs {
			mustDeviceInNetworks(t, s, d)
			if seen4[d.IPv4] {
				t.Errorf("IPv4 %s given twice", d.IPv4)
			}
			if seen6[d.IPv6] {
				t.Errorf("IPv6 %s given twice", d.IPv6)
			}
			seen4[d.IPv4], seen6[d.IPv6] = true, true
		}
		sort.Slice(devs, func(i, j int) bool { return devs[i].ID < devs[j].ID })
		if diff := cmp.Diff(devs, MustAllDevices(t, s)); diff != "" {
			t.Errorf("stored devices differ from the returned ones (-want +got):\n%s", diff)
		}
		counts := MustDeviceCounts(t, s)
		for _, id := range apps {
			if want := int64(total / len(apps)); counts[id] < want {
				t.Errorf("app %s has %d devices; want at least %d", id, counts[id], want)
			}
		}
	})
}

// TestRegisterDeviceExhaustsAddresses uses a /29, which has exactly five
// addresses for devices (.2-.6): not the network (.0), the gateway (.1) or
// the broadcast address (.7).
func TestRegisterDeviceExhaustsAddresses(t *testing.T) {
	eachBackend(t, func(t *testing.T, b testBackend) {
		ctx := context.Background()
		cfg := b.Config(t)
		cfg.TunnelIPv4 = netip.MustParsePrefix("10.64.0.0/29")
		s := MustOpen(t, cfg)
		MustSeedPlans(t, s)
		o := MustCreateOwner(t, s, "a@example.com", "pro")
		app := MustCreateApp(t, s, o.ID, "app")
		var got []string
		for range 5 {
			got = append(got, MustRegister(t, s, app.ID).IPv4)
		}
		sort.Strings(got)
		want := []string{"10.64.0.2", "10.64.0.3", "10.64.0.4", "10.64.0.5", "10.64.0.6"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("addresses of a full /29 (-want +got):\n%s", diff)
		}
		rev := MustRevision(t, s)
		if _, err := s.RegisterDevice(ctx, app.ID, NewDevice{PublicKey: randomKey(t)}); !errors.Is(err, ErrAddressesExhausted) {
			t.Errorf("RegisterDevice in a full network error = %v; want ErrAddressesExhausted", err)
		}
		if n := MustCount(t, s, &Device{}); n != 5 {
			t.Errorf("%d devices; want 5", n)
		}
		if got := MustRevision(t, s); got != rev {
			t.Errorf("revision = %d; want %d (unchanged)", got, rev)
		}
		MustDeviceCounts(t, s)
	})
}

// TestRegisterDeviceAddressesRandom checks that sequential registrations do
// not get sequential addresses, which would reveal the order of sign-up.
func TestRegisterDeviceAddressesRandom(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		MustSeedPlans(t, s)
		o := MustCreateOwner(t, s, "a@example.com", "pro")
		app := MustCreateApp(t, s, o.ID, "app")
		const n = 200
		v4 := make([]netip.Addr, n)
		v6 := make([]netip.Addr, n)
		for i := range n {
			d := MustRegister(t, s, app.ID)
			v4[i], v6[i] = netip.MustParseAddr(d.IPv4), netip.MustParseAddr(d.IPv6)
		}
		for name, seq := range map[string][]netip.Addr{"IPv4": v4, "IPv6": v6} {
			up, down := 0, 0
			for i := 1; i < n; i++ {
				switch seq[i].Compare(seq[i-1]) {
				case 1:
					up++
				case -1:
					down++
				}
			}
			// A random sequence goes up about as often as down; a counter
			// (or any monotonic allocator) only goes one way.
			if up < n/4 || down < n/4 {
				t.Errorf("%s addresses of %d sequential registrations went up %d and down %d times; want a random order", name, n, up, down)
			}
		}
	})
}

func TestRegisterDeviceRevision(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		o := MustCreateOwner(t, s, "a@example.com", "pro")
		apps := []App{MustCreateApp(t, s, o.ID, "one"), MustCreateApp(t, s, o.ID, "two")}
		last := MustRevision(t, s)
		changes := MustRecordChanges(t, s)
		for i := range 10 {
			d, err := s.RegisterDevice(ctx, apps[i%2].ID, NewDevice{PublicKey: randomKey(t)})
			if err != nil {
				t.Fatal(err)
			}
			ch := changes.One(t)
			if ch.Revision <= last {
				t.Errorf("registration %d: revision %d after %d; want strictly increasing", i, ch.Revision, last)
			}
			if d.Revision != ch.Revision {
				t.Errorf("registration %d: device revision %d, Change revision %d; want equal", i, d.Revision, ch.Revision)
			}
			stored, err := s.GetDevice(ctx, d.AppID, d.ID)
			if err != nil {
				t.Fatal(err)
			}
			if stored.Revision != ch.Revision {
				t.Errorf("registration %d: stored revision %d; want the Change revision %d", i, stored.Revision, ch.Revision)
			}
			if rev := MustRevision(t, s); rev != ch.Revision {
				t.Errorf("registration %d: global revision %d; want %d", i, rev, ch.Revision)
			}
			last = ch.Revision
		}
	})
}

// eachReplicaSet runs fn on every backend twice: with one Store, and with
// four Stores on the same database, as several control-plane replicas (or
// processes on one SQLite file) would be. Registrations within one Store
// are group-committed; only several Stores race on the database itself.
func eachReplicaSet(t *testing.T, fn func(t *testing.T, stores []*Store)) {
	eachBackend(t, func(t *testing.T, b testBackend) {
		for _, n := range []int{1, 4} {
			t.Run(fmt.Sprintf("stores=%d", n), func(t *testing.T) {
				cfg := b.Config(t)
				stores := make([]*Store, n)
				for i := range stores {
					stores[i] = MustOpen(t, cfg)
				}
				fn(t, stores)
			})
		}
	})
}

// TestRegisterDevicePlanLimitConcurrent is the plan limit under load: an
// owner on a plan of 50 devices has 40 and fires 50 registrations at once
// (spread over two apps). Exactly 10 may succeed.
func TestRegisterDevicePlanLimitConcurrent(t *testing.T) {
	eachReplicaSet(t, func(t *testing.T, stores []*Store) {
		ctx := context.Background()
		s := stores[0]
		MustCreatePlan(t, s, "fifty", 5, 50)
		o := MustCreateOwner(t, s, "a@example.com", "fifty")
		apps := []App{MustCreateApp(t, s, o.ID, "one"), MustCreateApp(t, s, o.ID, "two")}
		MustRegisterN(t, s, apps[0].ID, 25)
		MustRegisterN(t, s, apps[1].ID, 15)
		// Another owner's devices count for that owner only.
		MustCreatePlan(t, s, "other", 1, 100)
		other := MustCreateOwner(t, s, "b@example.com", "other")
		MustRegisterN(t, s, MustCreateApp(t, s, other.ID, "b").ID, 30)

		const workers = 50
		errs := make([]error, workers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = stores[i%len(stores)].RegisterDevice(ctx, apps[i%2].ID, NewDevice{PublicKey: randomKey(t)})
			}()
		}
		close(start)
		wg.Wait()
		got := map[string]int{}
		for _, err := range errs {
			switch {
			case err == nil:
				got["ok"]++
			case errors.Is(err, ErrPlanLimit):
				got["plan limit"]++
			default:
				t.Errorf("RegisterDevice: unexpected error %v", err)
			}
		}
		if diff := cmp.Diff(map[string]int{"ok": 10, "plan limit": 40}, got); diff != "" {
			t.Errorf("outcomes of %d parallel registrations (-want +got):\n%s", workers, diff)
		}
		if n := MustCountWhere(t, s, &Device{}, "app_id IN ?", []string{apps[0].ID, apps[1].ID}); n != 50 {
			t.Errorf("owner has %d devices; want exactly 50", n)
		}
		counts := MustDeviceCounts(t, s)
		if sum := counts[apps[0].ID] + counts[apps[1].ID]; sum != 50 {
			t.Errorf("device_count sums to %d; want 50", sum)
		}
		if _, err := s.RegisterDevice(ctx, apps[0].ID, NewDevice{PublicKey: randomKey(t)}); !errors.Is(err, ErrPlanLimit) {
			t.Errorf("RegisterDevice at the limit error = %v; want ErrPlanLimit", err)
		}
	})
}

// TestRegisterDeviceSameKeyRace registers one key from 20 goroutines, in
// apps of two owners: exactly one registration wins.
func TestRegisterDeviceSameKeyRace(t *testing.T) {
	eachReplicaSet(t, func(t *testing.T, stores []*Store) {
		ctx := context.Background()
		s := stores[0]
		MustSeedPlans(t, s)
		var apps []App
		for i := range 2 {
			o := MustCreateOwner(t, s, fmt.Sprintf("o%d@example.com", i), "pro")
			apps = append(apps, MustCreateApp(t, s, o.ID, "one"), MustCreateApp(t, s, o.ID, "two"))
		}
		key := randomKey(t)
		const workers = 20
		errs := make([]error, workers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = stores[i%len(stores)].RegisterDevice(ctx, apps[i%len(apps)].ID, NewDevice{PublicKey: key})
			}()
		}
		close(start)
		wg.Wait()
		got := map[string]int{}
		for _, err := range errs {
			switch {
			case err == nil:
				got["ok"]++
			case errors.Is(err, ErrConflict):
				got["conflict"]++
			default:
				t.Errorf("RegisterDevice: unexpected error %v", err)
			}
		}
		if diff := cmp.Diff(map[string]int{"ok": 1, "conflict": workers - 1}, got); diff != "" {
			t.Errorf("outcomes of %d parallel registrations of one key (-want +got):\n%s", workers, diff)
		}
		if n := MustCountWhere(t, s, &Device{}, "public_key = ?", key); n != 1 {
			t.Errorf("%d devices hold the key; want 1", n)
		}
		if rev := MustRevision(t, s); rev != 1 {
			t.Errorf("revision = %d; want 1 (refused registrations change nothing)", rev)
		}
		MustDeviceCounts(t, s)
	})
}

func TestRotateDevice(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		o := MustCreateOwner(t, s, "a@example.com", "pro")
		app := MustCreateApp(t, s, o.ID, "app")
		otherApp := MustCreateApp(t, s, o.ID, "other")
		ref := "ref-1"
		old, err := s.RegisterDevice(ctx, app.ID, NewDevice{PublicKey: randomKey(t), ExternalRef: &ref})
		if err != nil {
			t.Fatal(err)
		}
		neighbour := MustRegister(t, s, otherApp.ID)
		rev := MustRevision(t, s)

		newKey := randomKey(t)
		changes := MustRecordChanges(t, s)
		d, err := s.RotateDevice(ctx, app.ID, old.ID, newKey, "")
		if err != nil {
			t.Fatalf("RotateDevice: %v", err)
		}
		ch := changes.One(t)
		want := Device{ID: old.ID, AppID: app.ID, PublicKey: newKey, IPv4: d.IPv4, IPv6: d.IPv6, ExternalRef: &ref, Revision: rev + 1}
		if diff := cmp.Diff(want, d); diff != "" {
			t.Errorf("RotateDevice (-want +got):\n%s", diff)
		}
		if d.IPv4 == old.IPv4 || d.IPv6 == old.IPv6 {
			t.Errorf("rotated addresses %s, %s; want both different from %s, %s", d.IPv4, d.IPv6, old.IPv4, old.IPv6)
		}
		mustDeviceInNetworks(t, s, d)
		if diff := cmp.Diff(Change{Revision: rev + 1, Upserted: []Device{want}, Removed: []string{old.PublicKey}, OwnerID: o.ID}, ch); diff != "" {
			t.Errorf("RotateDevice Change (-want +got):\n%s", diff)
		}
		if got, err := s.GetDevice(ctx, app.ID, old.ID); err != nil {
			t.Fatal(err)
		} else if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("GetDevice after rotation (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(map[string]int64{app.ID: 1, otherApp.ID: 1}, MustDeviceCounts(t, s)); diff != "" {
			t.Errorf("device counts after rotation (-want +got):\n%s", diff)
		}

		// Failed rotations change nothing.
		before := MustAllDevices(t, s)
		rev = MustRevision(t, s)
		tests := []struct {
			name    string
			app, id string
			key     string
			wantErr error
		}{
			{"to another device's key", app.ID, d.ID, neighbour.PublicKey, ErrConflict},
			{"to its own key", app.ID, d.ID, d.PublicKey, ErrConflict},
			{"through another app", otherApp.ID, d.ID, randomKey(t), ErrNotFound},
			{"of another app's device", app.ID, neighbour.ID, randomKey(t), ErrNotFound},
			{"unknown device", app.ID, uuid.NewString(), randomKey(t), ErrNotFound},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if _, err := s.RotateDevice(ctx, tt.app, tt.id, tt.key, ""); !errors.Is(err, tt.wantErr) {
					t.Errorf("RotateDevice error = %v; want %v", err, tt.wantErr)
				}
				if diff := cmp.Diff(before, MustAllDevices(t, s)); diff != "" {
					t.Errorf("devices after a failed rotation (-want +got):\n%s", diff)
				}
				if got := MustRevision(t, s); got != rev {
					t.Errorf("revision = %d; want %d (unchanged)", got, rev)
				}
			})
		}
		_, err = s.RotateDevice(ctx, app.ID, d.ID, "bad", "")
		wantValidation(t, err, "public_key")

		// The old key is free again.
		if _, err := s.RegisterDevice(ctx, otherApp.ID, NewDevice{PublicKey: old.PublicKey}); err != nil {
			t.Errorf("RegisterDevice(rotated-away key): %v", err)
		}
		MustDeviceCounts(t, s)
	})
}

func TestDeleteDevice(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		o := MustCreateOwner(t, s, "a@example.com", "pro")
		app := MustCreateApp(t, s, o.ID, "app")
		otherApp := MustCreateApp(t, s, o.ID, "other")
		d := MustRegister(t, s, app.ID)
		MustRegister(t, s, app.ID)
		neighbour := MustRegister(t, s, otherApp.ID)
		rev := MustRevision(t, s)

		changes := MustRecordChanges(t, s)
		if err := s.DeleteDevice(ctx, app.ID, d.ID); err != nil {
			t.Fatalf("DeleteDevice: %v", err)
		}
		if diff := cmp.Diff(Change{Revision: rev + 1, Removed: []string{d.PublicKey}, OwnerID: o.ID}, changes.One(t)); diff != "" {
			t.Errorf("DeleteDevice Change (-want +got):\n%s", diff)
		}
		if n := MustCountWhere(t, s, &Device{}, "id = ? OR public_key = ?", d.ID, d.PublicKey); n != 0 {
			t.Errorf("%d rows of the deleted device left; want 0 (hard delete)", n)
		}
		if _, err := s.GetDevice(ctx, app.ID, d.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetDevice(deleted) error = %v; want ErrNotFound", err)
		}
		if diff := cmp.Diff(map[string]int64{app.ID: 1, otherApp.ID: 1}, MustDeviceCounts(t, s)); diff != "" {
			t.Errorf("device counts after the delete (-want +got):\n%s", diff)
		}
		before := MustAllDevices(t, s)
		for _, tt := range []struct{ name, app, id string }{
			{"second delete", app.ID, d.ID},
			{"another app's device", app.ID, neighbour.ID},
			{"unknown device", app.ID, uuid.NewString()},
		} {
			t.Run(tt.name, func(t *testing.T) {
				if err := s.DeleteDevice(ctx, tt.app, tt.id); !errors.Is(err, ErrNotFound) {
					t.Errorf("DeleteDevice error = %v; want ErrNotFound", err)
				}
				if diff := cmp.Diff(before, MustAllDevices(t, s)); diff != "" {
					t.Errorf("devices after a failed delete (-want +got):\n%s", diff)
				}
				if got := MustRevision(t, s); got != rev+1 {
					t.Errorf("revision = %d; want %d (unchanged)", got, rev+1)
				}
			})
		}
		// The key of a deleted device may be registered again.
		if _, err := s.RegisterDevice(ctx, otherApp.ID, NewDevice{PublicKey: d.PublicKey}); err != nil {
			t.Errorf("RegisterDevice(deleted device's key): %v", err)
		}
	})
}

// TestDeleteDeviceConcurrent deletes one device from several goroutines:
// exactly one delete happens, and only it reports the removed key.
func TestDeleteDeviceConcurrent(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		o := MustCreateOwner(t, s, "a@example.com", "pro")
		app := MustCreateApp(t, s, o.ID, "app")
		d := MustRegister(t, s, app.ID)
		MustRegister(t, s, app.ID)
		rev := MustRevision(t, s)
		const workers = 10
		errs := make([]error, workers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs[i] = s.DeleteDevice(ctx, app.ID, d.ID)
			}()
		}
		close(start)
		wg.Wait()
		got := map[string]int{}
		for _, err := range errs {
			switch {
			case err == nil:
				got["ok"]++
			case errors.Is(err, ErrNotFound):
				got["not found"]++
			default:
				t.Errorf("DeleteDevice: unexpected error %v", err)
			}
		}
		if diff := cmp.Diff(map[string]int{"ok": 1, "not found": workers - 1}, got); diff != "" {
			t.Errorf("outcomes of %d parallel deletes of one device (-want +got):\n%s", workers, diff)
		}
		if got := MustRevision(t, s); got != rev+1 {
			t.Errorf("revision = %d; want %d (one delete)", got, rev+1)
		}
		if diff := cmp.Diff(map[string]int64{app.ID: 1}, MustDeviceCounts(t, s)); diff != "" {
			t.Errorf("device counts (-want +got):\n%s", diff)
		}
	})
}

// TestDeleteRacesRotate runs DeleteDevice and RotateDevice of the same
// device at once: whatever the order, the key the delete reports removed is
// the key the device had when it was deleted, so nodes do not keep a peer.
func TestDeleteRacesRotate(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		o := MustCreateOwner(t, s, "a@example.com", "pro")
		app := MustCreateApp(t, s, o.ID, "app")
		changes := MustRecordChanges(t, s)
		for round := range 20 {
			d := MustRegister(t, s, app.ID)
			newKey := randomKey(t)
			var (
				wg        sync.WaitGroup
				delErr    error
				rotErr    error
				startOnce = make(chan struct{})
			)
			changes.Take()
			wg.Add(2)
			go func() { defer wg.Done(); <-startOnce; delErr = s.DeleteDevice(ctx, app.ID, d.ID) }()
			go func() { defer wg.Done(); <-startOnce; _, rotErr = s.RotateDevice(ctx, app.ID, d.ID, newKey, "") }()
			close(startOnce)
			wg.Wait()
			if delErr != nil {
				t.Fatalf("round %d: DeleteDevice: %v", round, delErr)
			}
			// The delete's Change is the one that removes without adding.
			var del Change
			for _, ch := range changes.Take() {
				if ch.Revision != 0 && len(ch.Upserted) == 0 {
					del = ch
				}
			}
			switch {
			case rotErr == nil: // rotated first: the delete removes the new key
				if diff := cmp.Diff([]string{newKey}, del.Removed); diff != "" {
					t.Errorf("round %d: rotate then delete: removed keys (-want +got):\n%s", round, diff)
				}
			case errors.Is(rotErr, ErrNotFound): // deleted first
				if diff := cmp.Diff([]string{d.PublicKey}, del.Removed); diff != "" {
					t.Errorf("round %d: delete then rotate: removed keys (-want +got):\n%s", round, diff)
				}
			default:
				t.Fatalf("round %d: RotateDevice: %v", round, rotErr)
			}
		}
		if n := MustCount(t, s, &Device{}); n != 0 {
			t.Errorf("%d devices left; want 0", n)
		}
		MustDeviceCounts(t, s)
	})
}

func TestListDevices(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		o := MustCreateOwner(t, s, "a@example.com", "pro")
		app := MustCreateApp(t, s, o.ID, "app")
		other := MustCreateApp(t, s, o.ID, "other")
		var want []Device
		for i := range 25 {
			want = append(want, MustRegister(t, s, app.ID))
			if i%5 == 0 {
				MustRegister(t, s, other.ID)
			}
		}
		sort.Slice(want, func(i, j int) bool { return want[i].ID < want[j].ID })

		var got []Device
		var sizes []int
		after := ""
		for range 10 { // more rounds than pages, to catch a loop
			page, err := s.ListDevices(ctx, app.ID, after, 10)
			if err != nil {
				t.Fatalf("ListDevices: %v", err)
			}
			sizes = append(sizes, len(page))
			if len(page) == 0 {
				break
			}
			got = append(got, page...)
			after = page[len(page)-1].ID
		}
		if diff := cmp.Diff([]int{10, 10, 5, 0}, sizes); diff != "" {
			t.Errorf("page sizes (-want +got):\n%s", diff)
		}
		// Equal to the sorted list: no duplicates, no gaps, nothing of the
		// other app, and in ID order.
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("devices over all pages (-want +got):\n%s", diff)
		}
		if page, err := s.ListDevices(ctx, uuid.NewString(), "", 10); err != nil || len(page) != 0 {
			t.Errorf("ListDevices(unknown app) = %v, %v; want none", page, err)
		}
	})
}

// deviceCanary is the external_ref the on-disk privacy tests look for.
const deviceCanary = "canary-ref-5a17"

// mustOnDisk reports which of the SQLite database's files (the main file
// and the WAL) hold any of needles, as "file: needle".
func mustOnDisk(tb testing.TB, path string, needles []string) []string {
	tb.Helper()
	var found []string
	for _, f := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(f)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			tb.Fatal(err)
		}
		for _, n := range needles {
			if bytes.Contains(b, []byte(n)) {
				found = append(found, filepath.Base(f)+": "+n)
			}
		}
	}
	return found
}

// TestDeviceDeleteLeavesNoCopy checks on SQLite that a deleted (or rotated
// away) device's public key and external_ref are gone from the database
// file and the WAL once Checkpoint has run.
func TestDeviceDeleteLeavesNoCopy(t *testing.T) {
	tests := []struct {
		name string
		// remove registers devices in app and removes them (or their old
		// keys) through the repository; it returns what must be gone.
		remove func(t *testing.T, s *Store, o Owner, app App) []string
	}{
		{"DeleteDevice", func(t *testing.T, s *Store, o Owner, app App) []string {
			key := randomKey(t)
			d, err := s.RegisterDevice(context.Background(), app.ID, NewDevice{PublicKey: key, ExternalRef: ptr(deviceCanary)})
			if err != nil {
				t.Fatal(err)
			}
			mustBeOnDisk(t, s, key, deviceCanary)
			if err := s.DeleteDevice(context.Background(), app.ID, d.ID); err != nil {
				t.Fatal(err)
			}
			return []string{key, deviceCanary}
		}},
		{"DeleteApp", func(t *testing.T, s *Store, o Owner, app App) []string {
			var gone []string
			for i := range 5 {
				key, ref := randomKey(t), fmt.Sprintf("%s-%d", deviceCanary, i)
				if _, err := s.RegisterDevice(context.Background(), app.ID, NewDevice{PublicKey: key, ExternalRef: &ref}); err != nil {
					t.Fatal(err)
				}
				gone = append(gone, key, ref)
			}
			mustBeOnDisk(t, s, gone...)
			if err := s.DeleteApp(context.Background(), o.ID, app.ID); err != nil {
				t.Fatal(err)
			}
			return gone
		}},
		{"RotateDevice", func(t *testing.T, s *Store, o Owner, app App) []string {
			key := randomKey(t)
			d, err := s.RegisterDevice(context.Background(), app.ID, NewDevice{PublicKey: key, ExternalRef: ptr(deviceCanary)})
			if err != nil {
				t.Fatal(err)
			}
			mustBeOnDisk(t, s, key)
			if _, err := s.RotateDevice(context.Background(), app.ID, d.ID, randomKey(t), ""); err != nil {
				t.Fatal(err)
			}
			return []string{key}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := MustOpen(t, sqliteConfig(t))
			MustSeedPlans(t, s)
			o := MustCreateOwner(t, s, "a@example.com", "pro")
			app := MustCreateApp(t, s, o.ID, "app")
			kept := MustCreateApp(t, s, o.ID, "kept")
			MustRegisterN(t, s, kept.ID, 20) // neighbours on the same pages

			gone := tt.remove(t, s, o, app)
			if err := s.Checkpoint(ctx); err != nil {
				t.Fatalf("Checkpoint: %v", err)
			}
			if found := mustOnDisk(t, s.Path(), gone); len(found) != 0 {
				t.Errorf("removed device data still on disk:\n%s", strings.Join(found, "\n"))
			}
			if fi, err := os.Stat(s.Path() + "-wal"); err == nil && fi.Size() != 0 {
				t.Errorf("WAL is %d bytes after Checkpoint; want truncated", fi.Size())
			}
			if n := MustCountWhere(t, s, &Device{}, "app_id = ?", kept.ID); n != 20 {
				t.Errorf("%d devices of the other app left; want 20", n)
			}
		})
	}
}

// mustBeOnDisk fails unless every needle is in the database or its WAL, so
// that the privacy tests can fail at all.
func mustBeOnDisk(tb testing.TB, s *Store, needles ...string) {
	tb.Helper()
	found := strings.Join(mustOnDisk(tb, s.Path(), needles), "\n")
	for _, n := range needles {
		if !strings.Contains(found, n) {
			tb.Fatalf("%q not on disk before the delete; the test cannot see what it checks", n)
		}
	}
}

// TestRotateDeviceAtPlanLimit: rotation goes through the same admission
// as registration, but replaces a device rather than adding one, so an
// owner at the plan's limit can still rotate.
func TestRotateDeviceAtPlanLimit(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustCreatePlan(t, s, "two", 1, 2)
		o := MustCreateOwner(t, s, "a@example.com", "two")
		app := MustCreateApp(t, s, o.ID, "app")
		devs := MustRegisterN(t, s, app.ID, 2)
		if _, err := s.RegisterDevice(ctx, app.ID, NewDevice{PublicKey: randomKey(t)}); !errors.Is(err, ErrPlanLimit) {
			t.Fatalf("RegisterDevice at the limit error = %v; want ErrPlanLimit", err)
		}
		if _, err := s.RotateDevice(ctx, app.ID, devs[0].ID, randomKey(t), ""); err != nil {
			t.Errorf("RotateDevice at the plan's limit: %v; want it allowed", err)
		}
		if diff := cmp.Diff(map[string]int64{app.ID: 2}, MustDeviceCounts(t, s)); diff != "" {
			t.Errorf("device counts after rotation (-want +got):\n%s", diff)
		}
	})
}
