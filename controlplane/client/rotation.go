package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// Key rotation. An owner may ask an app's devices to rotate their
// WireGuard key, and with it their tunnel addresses, every N days
// (api.App.RotationDays). The server keeps no device-level time, so it
// cannot tell when a device is due: each device remembers when it last
// rotated, on the device, and checks the policy itself, for example at
// start-up:
//
//	d, rotated, err := c.RotateIfDue(ctx, deviceID, state.LastRotated, newKey)
//	if err == nil && rotated {
//		// Switch to the new private key and d's addresses, then:
//		state.LastRotated = time.Now() // kept on the device
//	}

// AppPolicy returns the rotation policy of the API key's app.
func (c *Client) AppPolicy(ctx context.Context) (api.AppPolicy, error) {
	var out api.AppPolicy
	err := c.doJSON(ctx, &request{method: http.MethodGet, path: "/api/v1/app", auth: authKey}, &out)
	return out, err
}

// RotationDue reports whether a device that last rotated its key at
// lastRotated is due to rotate at now under a policy of policyDays days
// (a day being 24 hours): when policyDays have passed, to the instant. It
// is false for policyDays 0 or less (no policy) and when lastRotated lies
// after now, so a clock set back never causes a rotation. A zero
// lastRotated means "never rotated" and is due under any policy.
func RotationDue(policyDays int, lastRotated, now time.Time) bool {
	if policyDays <= 0 || lastRotated.After(now) {
		return false
	}
	return !now.Before(lastRotated.Add(time.Duration(policyDays) * 24 * time.Hour))
}

// RotateIfDue reads the app's rotation policy with the device's own record
// (Device; from servers that do not give it there, AppPolicy) and, when
// RotationDue says the device is due at the current time, rotates its key
// to the one newPublicKey returns (which is called only then) with
// RotateDevice. It reports whether it rotated; when it did not, the
// returned device is empty. It works with the device's own token (which
// may not read AppPolicy) as with the app's secret key; after a rotation
// the returned device holds the new device token, which a client using
// the device's token has switched to, and which the device must store.
//
// The caller keeps lastRotated itself, on the device: after a rotation it
// switches the device to the new private key and stores the time of the
// rotation (time.Now()) as the next lastRotated. The server keeps no
// device-level time and cannot do it.
//
// Like RotateDevice it is never retried. When the rotation fails without
// an answer (Status 0), the server may still have made it: compare
// Device(ctx, deviceID).PublicKey with the new key before trying again.
func (c *Client) RotateIfDue(ctx context.Context, deviceID string, lastRotated time.Time,
	newPublicKey func() (string, error)) (api.DeviceCreated, bool, error) {
	if newPublicKey == nil {
		return api.DeviceCreated{}, false, errors.New("client: RotateIfDue needs a newPublicKey function")
	}
	d, err := c.Device(ctx, deviceID)
	if err != nil {
		return api.DeviceCreated{}, false, err
	}
	days := 0
	if d.RotationDays != nil {
		days = *d.RotationDays
	} else {
		p, policyErr := c.AppPolicy(ctx)
		if policyErr != nil {
			return api.DeviceCreated{}, false, policyErr
		}
		days = p.RotationDays
	}
	if !RotationDue(days, lastRotated, time.Now()) {
		return api.DeviceCreated{}, false, nil
	}
	pub, err := newPublicKey()
	if err != nil {
		return api.DeviceCreated{}, false, fmt.Errorf("new public key: %w", err)
	}
	rot, err := c.RotateDevice(ctx, deviceID, pub)
	if err != nil {
		return api.DeviceCreated{}, false, err
	}
	return rot, true, nil
}
