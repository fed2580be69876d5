package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/controlplane/client"
)

func TestRotationDue(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	for _, tt := range []struct {
		name        string
		days        int
		lastRotated time.Time
		want        bool
	}{
		{"no policy", 0, now.Add(-1000 * day), false},
		{"negative policy", -1, now.Add(-1000 * day), false},
		{"exactly due", 30, now.Add(-30 * day), true},
		{"overdue", 30, now.Add(-31 * day), true},
		{"one second early", 30, now.Add(-30*day + time.Second), false},
		{"not yet", 30, now.Add(-29 * day), false},
		{"just rotated", 1, now, false},
		{"one day policy", 1, now.Add(-day), true},
		{"last rotated in the future (clock skew)", 30, now.Add(time.Hour), false},
		{"far in the future", 1, now.Add(400 * day), false},
		{"never rotated", 30, time.Time{}, true},
		{"other time zone", 1, now.Add(-day).In(time.FixedZone("X", 5*3600)), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := client.RotationDue(tt.days, tt.lastRotated, now); got != tt.want {
				t.Errorf("RotationDue(%d, %v, %v) = %v, want %v", tt.days, tt.lastRotated, now, got, tt.want)
			}
		})
	}
}

func TestRotateIfDue(t *testing.T) {
	ctx := context.Background()
	url := newServer(t)
	c := owner(t, url, "uma@example.com")
	app, err := c.CreateApp(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	key, err := c.CreateAPIKey(ctx, app.ID, "k")
	if err != nil {
		t.Fatal(err)
	}
	p := mustNew(t, url, client.WithAPIKey(key.Key))
	dev, err := p.RegisterDevice(ctx, api.DeviceInput{PublicKey: randomKey(t)})
	if err != nil {
		t.Fatal(err)
	}

	calls := 0
	newKey := func() (string, error) { calls++; return randomKey(t), nil }
	longAgo := time.Now().Add(-400 * 24 * time.Hour)

	// No policy: never due, however old the key.
	if _, rotated, err := p.RotateIfDue(ctx, dev.ID, longAgo, newKey); err != nil || rotated || calls != 0 {
		t.Fatalf("no policy: rotated %v, %d key calls, %v", rotated, calls, err)
	}

	days := 7
	if _, err := c.UpdateApp(ctx, app.ID, api.AppUpdate{RotationDays: &days}); err != nil {
		t.Fatal(err)
	}
	// Rotated recently, or in the future by the device's clock: not due.
	for _, last := range []time.Time{time.Now().Add(-time.Hour), time.Now().Add(-6 * 24 * time.Hour), time.Now().Add(48 * time.Hour)} {
		if _, rotated, err := p.RotateIfDue(ctx, dev.ID, last, newKey); err != nil || rotated || calls != 0 {
			t.Fatalf("last rotated %v: rotated %v, %d key calls, %v", last, rotated, calls, err)
		}
	}
	got, err := p.Device(ctx, dev.ID)
	if err != nil || got.PublicKey != dev.PublicKey {
		t.Fatalf("the key changed without a rotation: %+v, %v", got, err)
	}

	// Long ago: rotated, with a key made only now.
	d, rotated, err := p.RotateIfDue(ctx, dev.ID, longAgo, newKey)
	if err != nil || !rotated || calls != 1 || d.ID != dev.ID || d.PublicKey == dev.PublicKey || d.IPv4 == dev.IPv4 {
		t.Fatalf("due: %+v rotated %v, %d key calls, %v", d.Device, rotated, calls, err)
	}
	if got, err := p.Device(ctx, dev.ID); err != nil || got.PublicKey != d.PublicKey {
		t.Fatalf("after rotation: %+v, %v", got, err)
	}

	// A failing key source stops before the server is asked.
	boom := errors.New("no entropy")
	_, rotated, err = p.RotateIfDue(ctx, dev.ID, longAgo, func() (string, error) { return "", boom })
	if !errors.Is(err, boom) || rotated {
		t.Fatalf("key error: rotated %v, %v", rotated, err)
	}
	// Server errors come through typed.
	_, _, err = p.RotateIfDue(ctx, "00000000-0000-0000-0000-000000000000", longAgo, newKey)
	if !client.IsNotFound(err) {
		t.Fatalf("unknown device: %v", err)
	}
	_, _, err = mustNew(t, url, client.WithAPIKey("tlk_bogus")).RotateIfDue(ctx, dev.ID, longAgo, newKey)
	if !client.IsCode(err, api.CodeUnauthorized) {
		t.Fatalf("bad key: %v", err)
	}
}
