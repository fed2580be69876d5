package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/traceless-vpn/traceless/controlplane"
	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/controlplane/client"
	"github.com/traceless-vpn/traceless/store"
)

func TestSetup(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{Driver: store.DriverSQLite, DSN: filepath.Join(t.TempDir(), "t.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv, err := controlplane.New(controlplane.Options{Store: st, Argon2: controlplane.Argon2Params{Memory: 64, Time: 1, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	msg, err := srv.Bootstrap(ctx, "", "", hs.URL)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`/setup\?token=(\S+)`).FindStringSubmatch(msg)
	if m == nil {
		t.Fatalf("no setup link in %q", msg)
	}

	c := mustNew(t, hs.URL)
	_, err = c.Setup(ctx, "wrong", opEmail, opPassword)
	wantCode(t, err, http.StatusForbidden, api.CodeForbidden)
	res, err := c.Setup(ctx, m[1], opEmail, opPassword)
	if err != nil || res.Owner.Role != "admin" || c.Token() != res.Token {
		t.Fatalf("setup: %+v, %v", res.Owner, err)
	}
	if _, err := c.AdminPlans(ctx); err != nil {
		t.Fatalf("the new operator is no operator: %v", err)
	}
	_, err = mustNew(t, hs.URL).Setup(ctx, m[1], "second@example.com", opPassword)
	wantCode(t, err, http.StatusForbidden, api.CodeForbidden)
}

func TestPolicyExportDelete(t *testing.T) {
	ctx := context.Background()
	url := newServer(t)

	st, err := mustNew(t, url).Policy(ctx)
	if err != nil || st.Current.Version == "" || st.Current.Text == "" || st.Current.EffectiveAt.IsZero() {
		t.Fatalf("policy: %+v, %v", st, err)
	}

	c := owner(t, url, "rita@example.com")
	o, err := c.AcceptPolicy(ctx, st.Current.Version)
	if err != nil || o.AcceptedPolicyVersion != st.Current.Version {
		t.Fatalf("accept: %+v, %v", o, err)
	}
	_, err = c.AcceptPolicy(ctx, "no-such-version")
	wantCode(t, err, http.StatusBadRequest, api.CodeInvalidRequest)
	if _, err := c.CreateApp(ctx, "exported app"); err != nil {
		t.Fatal(err)
	}

	ex, err := c.ExportMe(ctx)
	if err != nil || ex.GeneratedAt.IsZero() {
		t.Fatalf("export: %+v, %v", ex, err)
	}
	owners := ex.Tables["owners"]
	if len(owners) != 1 || owners[0]["email"] != "rita@example.com" {
		t.Fatalf("export owners: %+v", owners)
	}
	if apps := ex.Tables["apps"]; len(apps) != 1 || apps[0]["name"] != "exported app" {
		t.Fatalf("export apps: %+v", apps)
	}
	b, _ := json.Marshal(ex)
	if strings.Contains(string(b), "argon2") || strings.Contains(string(b), password) {
		t.Fatal("the export holds the password hash")
	}
	// Numbers keep their precision.
	for _, row := range ex.Tables["apps"] {
		if v, ok := row["rotation_days"]; ok {
			if _, isNum := v.(json.Number); !isNum {
				t.Fatalf("rotation_days decoded as %T", v)
			}
		}
	}

	// A legal hold refuses deletion with its reason.
	op := mustNew(t, url)
	if _, err := op.Login(ctx, opEmail, opPassword); err != nil {
		t.Fatal(err)
	}
	me, _ := c.Me(ctx)
	if _, err := op.UpdateOwner(ctx, me.ID, api.OwnerUpdate{LegalHold: client.SetLegalHold("court order 4711")}); err != nil {
		t.Fatal(err)
	}
	err = c.DeleteMe(ctx)
	wantCode(t, err, http.StatusConflict, api.CodeLegalHold)
	var ae *api.Error
	if !errors.As(err, &ae) || !strings.Contains(ae.Message, "court order 4711") {
		t.Fatalf("legal hold message: %+v", ae)
	}
	if c.Token() == "" {
		t.Fatal("a refused deletion forgot the token")
	}
	if _, err := c.Me(ctx); err != nil {
		t.Fatalf("the held account is gone: %v", err)
	}

	if _, err := op.UpdateOwner(ctx, me.ID, api.OwnerUpdate{LegalHold: client.ReleaseLegalHold()}); err != nil {
		t.Fatal(err)
	}
	tok := c.Token()
	if err := c.DeleteMe(ctx); err != nil {
		t.Fatalf("delete me: %v", err)
	}
	if c.Token() != "" {
		t.Fatal("DeleteMe kept the token")
	}
	_, err = mustNew(t, url, client.WithToken(tok)).Me(ctx)
	wantCode(t, err, http.StatusUnauthorized, api.CodeUnauthorized)
	_, err = mustNew(t, url).Login(ctx, "rita@example.com", password)
	wantCode(t, err, http.StatusUnauthorized, api.CodeUnauthorized)
}

// TestDeleteMeNotRetried checks that a lost answer to DeleteMe is not
// repeated into a misleading 401.
func TestDeleteMeNotRetried(t *testing.T) {
	hs, calls := fake(t, 503, 204)
	c := mustNew(t, hs.URL, fastBackoff, client.WithToken("t"))
	if err := c.DeleteMe(context.Background()); client.StatusOf(err) != http.StatusServiceUnavailable {
		t.Fatalf("err %v", err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d calls, want 1", n)
	}
}

func TestUpdateAppAndPolicy(t *testing.T) {
	ctx := context.Background()
	url := newServer(t)
	c := owner(t, url, "sam@example.com")
	app, err := c.CreateApp(ctx, "rotating")
	if err != nil {
		t.Fatal(err)
	}
	days := 30
	app, err = c.UpdateApp(ctx, app.ID, api.AppUpdate{RotationDays: &days})
	if err != nil || app.RotationDays != 30 || app.Name != "rotating" {
		t.Fatalf("update rotation: %+v, %v", app, err)
	}
	app, err = c.RenameApp(ctx, app.ID, "renamed")
	if err != nil || app.Name != "renamed" || app.RotationDays != 30 {
		t.Fatalf("rename kept the policy? %+v, %v", app, err)
	}
	bad := 366
	_, err = c.UpdateApp(ctx, app.ID, api.AppUpdate{RotationDays: &bad})
	wantCode(t, err, http.StatusBadRequest, api.CodeInvalidRequest)
	_, err = c.UpdateApp(ctx, "00000000-0000-0000-0000-000000000000", api.AppUpdate{RotationDays: &days})
	wantCode(t, err, http.StatusNotFound, api.CodeNotFound)

	key, err := c.CreateAPIKey(ctx, app.ID, "device")
	if err != nil {
		t.Fatal(err)
	}
	p := mustNew(t, url, client.WithAPIKey(key.Key))
	pol, err := p.AppPolicy(ctx)
	if err != nil || pol.RotationDays != 30 {
		t.Fatalf("app policy: %+v, %v", pol, err)
	}
	_, err = c.AppPolicy(ctx) // an owner session is no API key
	wantCode(t, err, http.StatusUnauthorized, api.CodeUnauthorized)
}
