package controlplane

import (
	"context"
	"net/http"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

func TestPrivacyManifest(t *testing.T) {
	h := newHarness(t)
	r := h.Do(request{Method: http.MethodGet, Path: "/api/v1/privacy"})
	r.MustStatus(t, http.StatusOK)
	var got api.PrivacyManifest
	r.MustDecode(t, &got)

	m, err := store.GenerateManifest()
	if err != nil {
		t.Fatal(err)
	}
	m = m.WithTunnels(store.DefaultTunnelIPv4, store.DefaultTunnelIPv6)
	want := api.PrivacyManifest{NeverStored: m.NeverStored, ThirdParties: []api.PrivacyThirdParty{}}
	for _, tb := range m.Tables {
		pt := api.PrivacyTable{Name: tb.Name, Subject: tb.Subject, Purpose: tb.Purpose, Retention: tb.Retention}
		for _, c := range tb.Columns {
			pt.Columns = append(pt.Columns, api.PrivacyColumn{Name: c.Name, Purpose: c.Purpose})
		}
		want.Tables = append(want.Tables, pt)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("served manifest differs from store.GenerateManifest (-want +got):\n%s", diff)
	}

	seen := map[string]bool{}
	forbidden := regexp.MustCompile(`(?i)endpoint|handshake|bytes|rx_|tx_|last_seen|user_agent|remote|client_ip|^ip$|_ip$`)
	for _, tb := range got.Tables {
		seen[tb.Name] = true
		if tb.Purpose == "" || tb.Retention == "" || tb.Subject == "" || len(tb.Columns) == 0 {
			t.Errorf("table %s is not explained: %+v", tb.Name, tb)
		}
		for _, c := range tb.Columns {
			if c.Purpose == "" {
				t.Errorf("%s.%s has no purpose", tb.Name, c.Name)
			}
			if forbidden.MatchString(c.Name) && !(tb.Name == "nodes" && c.Name == "endpoint") {
				t.Errorf("%s.%s matches a forbidden pattern", tb.Name, c.Name)
			}
			if tb.Subject == store.SubjectEndUserDevice && regexp.MustCompile(`(?i)_at$|time|date`).MatchString(c.Name) {
				t.Errorf("%s.%s is a time column on a device-level table", tb.Name, c.Name)
			}
		}
	}
	for _, name := range []string{"plans", "owners", "apps", "api_keys", "pools", "nodes", "devices"} {
		if !seen[name] {
			t.Errorf("manifest has no table %s", name)
		}
	}
	if len(got.NeverStored) == 0 {
		t.Error("manifest has no never_stored list")
	}
}

// TestPrivacyManifestTunnelNetworks: the manifest, served and on the
// privacy page, names the tunnel networks this installation is configured
// with, not the defaults.
func TestPrivacyManifestTunnelNetworks(t *testing.T) {
	v4, v6 := netip.MustParsePrefix("10.99.0.0/16"), netip.MustParsePrefix("fd12:3456:789a:1::/64")
	st, err := store.Open(context.Background(), store.Config{Driver: store.DriverSQLite,
		DSN: filepath.Join(t.TempDir(), "t.db"), TunnelIPv4: v4, TunnelIPv6: v6})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := newHarness(t, func(o *Options) { o.Store = st })
	h.store = st

	var got api.PrivacyManifest
	h.Do(request{Method: http.MethodGet, Path: "/api/v1/privacy"}).MustStatus(t, http.StatusOK).MustDecode(t, &got)
	purposes := map[string]string{}
	for _, tb := range got.Tables {
		for _, c := range tb.Columns {
			purposes[tb.Name+"."+c.Name] = c.Purpose
			if strings.Contains(c.Purpose, "{") {
				t.Errorf("%s.%s: a placeholder is left: %q", tb.Name, c.Name, c.Purpose)
			}
		}
	}
	for col, want := range map[string]string{"devices.ipv4": "10.99.0.0/16", "devices.ipv6": "fd12:3456:789a:1::/64"} {
		if !strings.Contains(purposes[col], want) || strings.Contains(purposes[col], store.DefaultTunnelIPv4.String()) {
			t.Errorf("%s purpose %q does not name the configured network %s", col, purposes[col], want)
		}
	}
	b := newBrowser(t, h)
	b.get("/privacy").mustStatus(t, http.StatusOK).mustContain(t, "inside 10.99.0.0/16", "inside fd12:3456:789a:1::/64").
		mustNotContain(t, store.DefaultTunnelIPv4.String(), store.TunnelIPv4Placeholder)
}
