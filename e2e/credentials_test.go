//go:build linux

package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/traceless-vpn/traceless/controlplane/api"
	sdk "github.com/traceless-vpn/traceless/controlplane/client"
)

// mustAPIError fails unless err is an error response with status and code.
func mustAPIError(t *testing.T, what string, err error, status int, code string) {
	t.Helper()
	var ce *sdk.Error
	if !errors.As(err, &ce) || ce.Status != status || ce.Code != code {
		t.Fatalf("%s: %v, want %d %s", what, err, status, code)
	}
}

// TestEndToEndAppCredentials runs the credentials that ship inside apps
// against a real node and a real WireGuard client, through the Go SDK: the
// owner's backend mints a registration ticket with the secret key; the
// app registers with it, configures its tunnel with its device token,
// rotates itself when the policy says so and deletes itself, with that
// token alone. The app's publishable key, and the device token, may not
// list the app's devices (403 forbidden). No credential appears in the
// database or the control plane's log; only their hashes are stored.
func TestEndToEndAppCredentials(t *testing.T) {
	requireRoot(t)
	w := newWorld(t)
	w.setup()
	w.startAgent(3 * time.Minute)
	w.waitNode()
	ctx := context.Background()
	newClient := func(opts ...sdk.Option) *sdk.Client {
		t.Helper()
		c, err := sdk.New(w.api, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	// The owner: a publishable key for the app binary, and a rotation
	// policy of one day.
	owner := newClient(sdk.WithToken(w.ownerTok))
	pub, err := owner.CreateKey(ctx, w.appID, api.APIKeyInput{Name: "shipped", Kind: api.KeyPublishable})
	if err != nil {
		t.Fatal(err)
	}
	days := 1
	if _, err := owner.UpdateApp(ctx, w.appID, api.AppUpdate{RotationDays: &days}); err != nil {
		t.Fatal(err)
	}

	// The owner's backend mints a ticket for one install.
	backend := newClient(sdk.WithAPIKey(w.key))
	ref := "user-e2e"
	ticket, err := backend.CreateTicket(ctx, api.TicketInput{ExternalRef: &ref})
	if err != nil {
		t.Fatal(err)
	}

	// The app registers with it, and uses its device token from then on.
	c := w.newClient()
	app := newClient()
	dev, err := app.RegisterWithTicket(ctx, ticket.Ticket, api.DeviceInput{PublicKey: c.priv.PublicKey().String()})
	if err != nil {
		t.Fatalf("register with the ticket: %v", err)
	}
	if dev.ExternalRef == nil || *dev.ExternalRef != ref || len(dev.DeviceToken) != 47 {
		t.Fatalf("registered: ref %v, token of %d characters", dev.ExternalRef, len(dev.DeviceToken))
	}
	c.dc = dev
	_, err = app.RegisterWithTicket(ctx, ticket.Ticket, api.DeviceInput{PublicKey: mustKey(t).PublicKey().String()})
	mustAPIError(t, "a used ticket", err, 401, api.CodeUnauthorized)

	device := newClient(sdk.WithDeviceToken(dev.DeviceToken))
	conf, err := device.DeviceConfig(ctx, dev.ID, w.nodeID)
	if err != nil {
		t.Fatalf("config with the device token: %v", err)
	}
	c.configure(conf)
	if took, ok := w.eventually(true, 15*time.Second); !ok {
		log, _ := os.ReadFile(w.agentLog)
		t.Fatalf("no traffic through the tunnel after %v; agent log:\n%s", took, log)
	} else {
		t.Logf("tunnel up %v after the registration with a ticket", took.Round(time.Millisecond))
	}

	// Neither the publishable key nor the device token lists devices.
	_, err = newClient(sdk.WithAPIKey(pub.Key)).Devices(ctx, sdk.ListOptions{})
	mustAPIError(t, "devices with the publishable key", err, 403, api.CodeForbidden)
	_, err = device.Devices(ctx, sdk.ListOptions{})
	mustAPIError(t, "devices with the device token", err, 403, api.CodeForbidden)

	// The device last rotated 25 hours ago: under the one-day policy it is
	// due, and rotates itself with its token.
	oldToken, oldPub := dev.DeviceToken, c.priv.PublicKey()
	next := mustKey(t)
	rot, rotated, err := device.RotateIfDue(ctx, dev.ID, time.Now().Add(-25*time.Hour), func() (string, error) {
		return next.PublicKey().String(), nil
	})
	if err != nil || !rotated {
		t.Fatalf("RotateIfDue with the device token: rotated %v, %v", rotated, err)
	}
	if rot.DeviceToken == "" || rot.DeviceToken == oldToken || rot.IPv4 == dev.IPv4 {
		t.Fatalf("rotation answered token changed %v, address %s (was %s)", rot.DeviceToken != oldToken, rot.IPv4, dev.IPv4)
	}
	_, err = newClient(sdk.WithDeviceToken(oldToken)).Device(ctx, dev.ID)
	mustAPIError(t, "the token from before the rotation", err, 401, api.CodeUnauthorized)
	if took, ok := w.eventually(false, 3*time.Second); !ok {
		t.Errorf("the old WireGuard key still works %v after the rotation", took)
	}
	// The client followed the new token by itself.
	conf, err = device.DeviceConfig(ctx, dev.ID, w.nodeID)
	if err != nil {
		t.Fatalf("config after the rotation: %v", err)
	}
	c.priv, c.dc = next, rot
	c.configure(conf)
	if took, ok := w.eventually(true, 15*time.Second); !ok {
		t.Fatalf("the rotated key does not work after %v", took)
	}
	if _, ok := w.nodePeer(oldPub); ok {
		t.Error("the key from before the rotation is still on the node")
	}
	if _, rotated, err := device.RotateIfDue(ctx, dev.ID, time.Now(), func() (string, error) {
		t.Fatal("a device that just rotated was asked for a new key")
		return "", nil
	}); err != nil || rotated {
		t.Fatalf("RotateIfDue right after a rotation: rotated %v, %v", rotated, err)
	}

	// The device deletes itself; the node drops it at once.
	if err := device.DeleteDevice(ctx, dev.ID); err != nil {
		t.Fatalf("delete with the device token: %v", err)
	}
	start := time.Now()
	took, ok := w.eventually(false, 5*time.Second)
	if !ok {
		t.Fatalf("traffic still flows %v after the deletion", took)
	}
	t.Logf("traffic stopped %v after the deletion answered", time.Since(start).Round(time.Millisecond))
	if took > time.Second+600*time.Millisecond { // one 500 ms probe of slack
		t.Errorf("traffic stopped only %v after the deletion; want within a second", took)
	}
	_, err = device.Device(ctx, dev.ID)
	mustAPIError(t, "the token of the deleted device", err, 401, api.CodeUnauthorized)

	// What is stored and logged: never a credential (only its hash), never
	// the client's address.
	w.stopAgent()
	if err := w.st.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	db, _ := os.ReadFile(w.dbPath)
	wal, _ := os.ReadFile(w.dbPath + "-wal")
	agentLog, _ := os.ReadFile(w.agentLog)
	cred, _ := os.ReadFile(filepath.Join(w.dir, "credential"))
	sources := map[string][]byte{"database": db, "database WAL": wal, "control-plane log": w.cpLog.Bytes(), "agent log": agentLog, "agent credential file": cred}
	canaries := map[string]string{"client address": clientAddr, "secret key": w.key, "publishable key": pub.Key,
		"ticket": ticket.Ticket, "device token": oldToken, "rotated device token": rot.DeviceToken}
	for what, canary := range canaries {
		for where, b := range sources {
			if bytes.Contains(b, []byte(canary)) {
				t.Errorf("the %s appears in the %s", what, where)
			}
		}
	}
	if len(db) == 0 || len(w.cpLog.Bytes()) == 0 {
		t.Error("the database or the log is empty; the scan proved nothing")
	}
}

func mustKey(t *testing.T) wgtypes.Key {
	t.Helper()
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}
