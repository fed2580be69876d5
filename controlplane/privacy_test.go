package controlplane

import (
	"net/http"
	"regexp"
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
	want := api.PrivacyManifest{NeverStored: m.NeverStored}
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
