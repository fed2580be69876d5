package controlplane

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// TestDeleteMeLeavesNothing deletes an account and checks that its
// devices leave the node within a second and that no byte of its email,
// API key or device keys stays in the SQLite file or its WAL.
func TestDeleteMeLeavesNothing(t *testing.T) {
	w := newSyncWorld(t)
	ref := "canary-ref-d31e7e"
	var d api.DeviceCreated
	w.h.Do(request{Method: "POST", Path: "/api/v1/devices", Token: w.key, Body: api.DeviceInput{PublicKey: newWGKey(t), ExternalRef: &ref}}).
		MustStatus(t, http.StatusCreated).MustDecode(t, &d)
	snap := w.peers(t, w.nodeToken, 0)
	if len(snap.Upserts) != 1 {
		t.Fatalf("snapshot before deletion = %+v", snap)
	}

	got := make(chan api.PeersResponse, 1)
	go func() {
		var pr api.PeersResponse
		res, err := http.DefaultClient.Do(mustReq(t, "GET", fmt.Sprintf("%s/agent/v1/peers?since=%d", w.h.ts.URL, snap.Revision), w.nodeToken))
		if err == nil {
			json.NewDecoder(res.Body).Decode(&pr)
			res.Body.Close()
		}
		got <- pr
	}()
	time.Sleep(100 * time.Millisecond)
	w.h.Do(request{Method: "DELETE", Path: "/api/v1/me", Token: w.owner.Token}).MustStatus(t, http.StatusNoContent)
	start := time.Now()
	select {
	case pr := <-got:
		if diff := cmp.Diff([]string{d.PublicKey}, pr.Removes); diff != "" {
			t.Errorf("node removals after account deletion (-want +got):\n%s", diff)
		}
	case <-time.After(time.Second):
		t.Fatal("the node did not hear of the deletion within a second")
	}
	t.Logf("device left the node %v after the deletion answered", time.Since(start).Round(time.Millisecond))

	w.h.Do(request{Method: "GET", Path: "/api/v1/me", Token: w.owner.Token}).MustStatus(t, http.StatusUnauthorized)
	w.h.Do(request{Method: "GET", Path: "/api/v1/devices", Token: w.key}).MustStatus(t, http.StatusUnauthorized)
	if _, err := w.h.store.GetOwnerByEmail(context.Background(), w.owner.Owner.Email); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("owner still stored: %v", err)
	}
	for _, canary := range []string{w.owner.Owner.Email, d.PublicKey, ref, w.key[:12], hashAPIKey(w.key)} {
		for _, f := range []string{w.h.dbPath, w.h.dbPath + "-wal"} {
			b, err := os.ReadFile(f)
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte(canary)) {
				t.Errorf("%s still holds %q after account deletion", f, canary)
			}
		}
	}
}

func TestLegalHoldBlocksDeletion(t *testing.T) {
	w := newSyncWorld(t)
	d := w.register(t)
	reason := "unresolved dispute #42"
	w.h.Do(request{Method: "PUT", Path: "/api/v1/admin/owners/" + w.owner.Owner.ID, Token: w.admin, Body: map[string]any{"legal_hold": reason}}).MustStatus(t, http.StatusOK)

	for _, q := range []request{
		{Method: "DELETE", Path: "/api/v1/me", Token: w.owner.Token},
		{Method: "DELETE", Path: "/api/v1/admin/owners/" + w.owner.Owner.ID, Token: w.admin},
	} {
		res := w.h.Do(q)
		res.MustHaveError(t, wantErr{Status: http.StatusConflict, Code: api.CodeLegalHold})
		if e := res.MustError(t); !bytes.Contains([]byte(e.Message), []byte(reason)) {
			t.Errorf("%s %s: message %q does not give the reason", q.Method, q.Path, e.Message)
		}
	}
	var list api.DeviceList
	w.h.Do(request{Method: "GET", Path: "/api/v1/devices", Token: w.key}).MustStatus(t, http.StatusOK).MustDecode(t, &list)
	if len(list.Devices) != 1 || list.Devices[0].ID != d.ID {
		t.Fatalf("devices while held = %d, want 1 (nothing deleted)", len(list.Devices))
	}

	w.h.Do(request{Method: "PUT", Path: "/api/v1/admin/owners/" + w.owner.Owner.ID, Token: w.admin, Body: map[string]any{"legal_hold": nil}}).MustStatus(t, http.StatusOK)
	w.h.Do(request{Method: "DELETE", Path: "/api/v1/admin/owners/" + w.owner.Owner.ID, Token: w.admin}).MustStatus(t, http.StatusNoContent)
	w.h.Do(request{Method: "GET", Path: "/api/v1/me", Token: w.owner.Token}).MustStatus(t, http.StatusUnauthorized)
}

// TestExportMatchesManifest checks the export field for field against the
// privacy manifest and that it holds the owner's data and no other's.
func TestExportMatchesManifest(t *testing.T) {
	w := newSyncWorld(t)
	d := w.register(t)
	other := w.h.MustOwner()
	var ex api.Export
	w.h.Do(request{Method: "GET", Path: "/api/v1/me/export", Token: w.owner.Token}).MustStatus(t, http.StatusOK).MustDecode(t, &ex)
	m, err := store.GenerateManifest()
	if err != nil {
		t.Fatal(err)
	}
	for table, rows := range ex.Tables {
		mt, ok := m.Table(table)
		if !ok {
			t.Errorf("export table %s is not in the manifest", table)
			continue
		}
		var want []string
		for _, c := range mt.Columns {
			want = append(want, c.Name)
		}
		sort.Strings(want)
		for _, r := range rows {
			var got []string
			for k := range r {
				got = append(got, k)
			}
			sort.Strings(got)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("export of %s differs from the manifest's columns (-manifest +export):\n%s", table, diff)
			}
		}
	}
	if n := len(ex.Tables["owners"]); n != 1 || ex.Tables["owners"][0]["email"] != w.owner.Owner.Email {
		t.Errorf("owners in the export = %+v", ex.Tables["owners"])
	}
	if ex.Tables["owners"][0]["password_hash"] != store.Withheld {
		t.Errorf("password hash exported: %v", ex.Tables["owners"][0]["password_hash"])
	}
	if len(ex.Tables["devices"]) != 1 || ex.Tables["devices"][0]["public_key"] != d.PublicKey {
		t.Errorf("devices in the export = %+v", ex.Tables["devices"])
	}
	if len(ex.Tables["api_keys"]) != 1 || ex.Tables["api_keys"][0]["hash"] != store.Withheld {
		t.Errorf("api keys in the export = %+v", ex.Tables["api_keys"])
	}
	b, _ := json.Marshal(ex)
	if bytes.Contains(b, []byte(other.Owner.Email)) || bytes.Contains(b, []byte(w.key)) {
		t.Error("the export holds another owner's email or the API key secret")
	}
}
