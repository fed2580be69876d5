package client_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/controlplane/client"
)

// TestTicketAndDeviceTokenFlow is the recommended pattern end to end: the
// owner's backend mints a ticket with its secret key, the app registers
// with it and from then on manages its device with the device token,
// RotateIfDue included.
func TestTicketAndDeviceTokenFlow(t *testing.T) {
	ctx := context.Background()
	url := newServer(t)
	o := owner(t, url, "tina@example.com")
	app, err := o.CreateApp(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	secret, err := o.CreateKey(ctx, app.ID, api.APIKeyInput{Name: "backend"})
	if err != nil || !strings.HasPrefix(secret.Key, client.SecretKeyPrefix) || secret.Kind != api.KeySecret {
		t.Fatalf("CreateKey = %+v, %v", secret, err)
	}
	backend := mustNew(t, url, client.WithAPIKey(secret.Key))

	ref := "account-9"
	tk, err := backend.CreateTicket(ctx, api.TicketInput{ExternalRef: &ref, TTLSeconds: 120})
	if err != nil || !strings.HasPrefix(tk.Ticket, client.TicketPrefix) || time.Until(tk.ExpiresAt) > 2*time.Minute {
		t.Fatalf("CreateTicket = %+v, %v", tk, err)
	}

	// The app holds no credential of its own until it registers.
	appc := mustNew(t, url)
	d, err := appc.RegisterWithTicket(ctx, tk.Ticket, api.DeviceInput{PublicKey: randomKey(t)})
	if err != nil {
		t.Fatalf("RegisterWithTicket: %v", err)
	}
	if d.ExternalRef == nil || *d.ExternalRef != ref || !strings.HasPrefix(d.DeviceToken, client.DeviceTokenPrefix) {
		t.Fatalf("registered device = %+v", d)
	}
	_, err = appc.RegisterWithTicket(ctx, tk.Ticket, api.DeviceInput{PublicKey: randomKey(t)})
	wantCode(t, err, http.StatusUnauthorized, api.CodeUnauthorized)

	dev := mustNew(t, url, client.WithDeviceToken(d.DeviceToken))
	if got, err := dev.Device(ctx, d.ID); err != nil || got.ID != d.ID {
		t.Fatalf("Device with its token = %+v, %v", got, err)
	}
	if _, err := dev.Servers(ctx); err != nil {
		t.Fatalf("Servers with a device token: %v", err)
	}
	_, err = dev.Devices(ctx, client.ListOptions{})
	wantCode(t, err, http.StatusForbidden, api.CodeForbidden)
	_, err = dev.CreateTicket(ctx, api.TicketInput{})
	wantCode(t, err, http.StatusForbidden, api.CodeForbidden)

	// RotateIfDue with the device token: the policy comes with the
	// device's record, and the client follows the new token.
	days := 7
	if _, err := o.UpdateApp(ctx, app.ID, api.AppUpdate{RotationDays: &days}); err != nil {
		t.Fatal(err)
	}
	if _, rotated, err := dev.RotateIfDue(ctx, d.ID, time.Now().Add(-time.Hour), func() (string, error) { return randomKey(t), nil }); err != nil || rotated {
		t.Fatalf("RotateIfDue within the policy: rotated %v, %v", rotated, err)
	}
	newPub := randomKey(t)
	rot, rotated, err := dev.RotateIfDue(ctx, d.ID, time.Now().Add(-8*24*time.Hour), func() (string, error) { return newPub, nil })
	if err != nil || !rotated || rot.PublicKey != newPub || rot.DeviceToken == "" || rot.DeviceToken == d.DeviceToken {
		t.Fatalf("RotateIfDue when due = %+v, %v, %v", rot, rotated, err)
	}
	if got, err := dev.Device(ctx, d.ID); err != nil || got.PublicKey != newPub {
		t.Fatalf("Device after the rotation, with the client's followed token: %+v, %v", got, err)
	}
	old := mustNew(t, url, client.WithDeviceToken(d.DeviceToken))
	_, err = old.Device(ctx, d.ID)
	wantCode(t, err, http.StatusUnauthorized, api.CodeUnauthorized)

	// The backend resets a lost token; the device deletes itself.
	tok, err := backend.ResetDeviceToken(ctx, d.ID)
	if err != nil || !strings.HasPrefix(tok, client.DeviceTokenPrefix) {
		t.Fatalf("ResetDeviceToken = %q, %v", tok, err)
	}
	_, err = dev.Device(ctx, d.ID)
	wantCode(t, err, http.StatusUnauthorized, api.CodeUnauthorized)
	dev.SetAPIKey(tok)
	if err := dev.DeleteDevice(ctx, d.ID); err != nil {
		t.Fatalf("DeleteDevice with the device token: %v", err)
	}
}

// TestPublishableKeyFlow: an app without a backend registers with a
// publishable key, which lists nothing; replacing it keeps the old one
// for the grace period.
func TestPublishableKeyFlow(t *testing.T) {
	ctx := context.Background()
	url := newServer(t)
	o := owner(t, url, "pia@example.com")
	app, err := o.CreateApp(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	pub, err := o.CreateKey(ctx, app.ID, api.APIKeyInput{Name: "shipped", Kind: api.KeyPublishable, ExpiresAt: &exp})
	if err != nil || !strings.HasPrefix(pub.Key, client.PublishableKeyPrefix) || pub.ExpiresAt == nil || !pub.ExpiresAt.Equal(exp) {
		t.Fatalf("CreateKey = %+v, %v", pub, err)
	}
	_, err = o.CreateKey(ctx, app.ID, api.APIKeyInput{Name: "shipped"})
	wantCode(t, err, http.StatusConflict, api.CodeConflict)

	p := mustNew(t, url, client.WithAPIKey(pub.Key))
	d, err := p.RegisterDevice(ctx, api.DeviceInput{PublicKey: randomKey(t)})
	if err != nil || d.DeviceToken == "" {
		t.Fatalf("RegisterDevice with a publishable key = %+v, %v", d, err)
	}
	if _, err := p.AppPolicy(ctx); err != nil {
		t.Fatalf("AppPolicy with a publishable key: %v", err)
	}
	_, err = p.Devices(ctx, client.ListOptions{})
	wantCode(t, err, http.StatusForbidden, api.CodeForbidden)
	_, err = p.Device(ctx, d.ID)
	wantCode(t, err, http.StatusForbidden, api.CodeForbidden)

	grace := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	rep, err := o.ReplaceAPIKey(ctx, app.ID, pub.ID, api.KeyReplaceInput{Name: "shipped v2", GraceUntil: grace})
	if err != nil || rep.Kind != api.KeyPublishable || rep.Replaced.ExpiresAt == nil || !rep.Replaced.ExpiresAt.Equal(grace) {
		t.Fatalf("ReplaceAPIKey = %+v, %v", rep, err)
	}
	if _, err := p.RegisterDevice(ctx, api.DeviceInput{PublicKey: randomKey(t)}); err != nil {
		t.Fatalf("the old key in its grace period: %v", err)
	}
	keys, err := o.APIKeys(ctx, app.ID)
	if err != nil || len(keys) != 2 {
		t.Fatalf("APIKeys = %+v, %v", keys, err)
	}
}
