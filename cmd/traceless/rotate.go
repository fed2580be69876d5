package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/traceless-vpn/traceless/controlplane/client"
)

// rotationState is the local state file of 'devices rotate-if-due': when
// the device last rotated its key. The server keeps no device-level time,
// so this file is the only record of it.
type rotationState struct {
	DeviceID    string    `json:"device_id"`
	LastRotated time.Time `json:"last_rotated"`
}

// maxStateFile bounds the state file read.
const maxStateFile = 64 << 10

// loadRotationState reads the state file; ok is false when there is none.
func loadRotationState(p, deviceID string) (st rotationState, ok bool, err error) {
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return rotationState{}, false, nil
	}
	if err != nil {
		return rotationState{}, false, fmt.Errorf("read state file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStateFile))
	if err != nil {
		return rotationState{}, false, fmt.Errorf("read state file: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil || st.DeviceID == "" || st.LastRotated.IsZero() {
		return rotationState{}, false, fmt.Errorf("state file %s is damaged: want {\"device_id\": …, \"last_rotated\": RFC 3339 time}", p)
	}
	if st.DeviceID != deviceID {
		return rotationState{}, false, fmt.Errorf("state file %s belongs to device %s, not %s", p, cell(st.DeviceID), deviceID)
	}
	return st, true, nil
}

// saveRotationState replaces the state file atomically with mode 0600.
func saveRotationState(p string, st rotationState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(p, append(b, '\n')); err != nil {
		return fmt.Errorf("write state file: %w", err)
	}
	return nil
}

// rotateResult is the output of 'devices rotate-if-due'.
type rotateResult struct {
	DeviceID string `json:"device_id"`
	// Rotated reports whether the key was rotated this time.
	Rotated bool `json:"rotated"`
	// Started reports that the state file was created this time.
	Started      bool       `json:"started"`
	LastRotated  time.Time  `json:"last_rotated"`
	RotationDays int        `json:"rotation_days"`
	NextDue      *time.Time `json:"next_due"`
	// Device is the rotated device, with a private key generated here.
	Device *generatedDevice `json:"device,omitempty"`
}

func (a *cli) devicesRotateIfDueCommand() *cobra.Command {
	kf := keyFlags{replace: true}
	var stateFile string
	cmd := &cobra.Command{
		Use:   "rotate-if-due DEVICE_ID",
		Short: "Rotate a device's key when the app's rotation policy says so",
		Long: `Rotate a device's key (and with it its tunnel addresses) when the app's
rotation policy ('traceless apps update --rotation-days') says it is due.

The server keeps no device-level time, so the time of the last rotation
is kept here, in --state-file (mode 0600). The first run creates the file
with the current time and does not rotate. Run it from a timer on the
device, or wherever its key is kept.

With --generate, a key pair is made here only when a rotation is due, and
only the public key is sent; --private-key-file is then replaced with the
new private key.`,
		Args: args("DEVICE_ID"),
		RunE: a.keyAction(func(ctx context.Context, c *client.Client, argv []string) error {
			if stateFile == "" {
				return usagef("--state-file is required")
			}
			if err := kf.check(); err != nil {
				return err
			}
			if kf.privateKeyFile != "" {
				// Fail now rather than after a rotation whose key cannot be kept.
				if fi, err := os.Stat(filepath.Dir(kf.privateKeyFile)); err != nil || !fi.IsDir() {
					return fmt.Errorf("--private-key-file: no directory %s", filepath.Dir(kf.privateKeyFile))
				}
			}
			return a.rotateIfDue(ctx, c, argv[0], stateFile, kf)
		}),
	}
	kf.add(cmd)
	cmd.Flags().StringVar(&stateFile, "state-file", "", "file that keeps the device's last rotation time (created on first use)")
	return cmd
}

func (a *cli) rotateIfDue(ctx context.Context, c *client.Client, deviceID, stateFile string, kf keyFlags) error {
	st, found, err := loadRotationState(stateFile, deviceID)
	if err != nil {
		return err
	}
	days, err := rotationPolicy(ctx, c, deviceID)
	if err != nil {
		return err
	}
	res := rotateResult{DeviceID: deviceID, RotationDays: days}
	if !found {
		if st, err = startRotationState(ctx, c, deviceID, stateFile); err != nil {
			return err
		}
		res.Started = true
		return a.emitRotation(res.with(st), stateFile)
	}

	var kp *keyPair
	d, rotated, err := c.RotateIfDue(ctx, deviceID, st.LastRotated, func() (string, error) {
		pub, pair, resolveErr := kf.resolve()
		kp = pair
		return pub, resolveErr
	})
	if err != nil {
		return err
	}
	if !rotated {
		return a.emitRotation(res.with(st), stateFile)
	}
	res.Rotated = true
	out, keyErr := a.generated(d, kp, kf)
	res.Device = &out
	st.LastRotated = time.Now().UTC().Truncate(time.Second)
	if err := saveRotationState(stateFile, st); err != nil {
		err = fmt.Errorf("device %s was rotated, but %w: set its last_rotated to %s by hand", deviceID, err,
			st.LastRotated.Format(time.RFC3339))
		return errors.Join(a.emitRotation(res.with(st), stateFile), keyErr, err)
	}
	if keyErr != nil {
		return keyErr
	}
	return a.emitRotation(res.with(st), stateFile)
}

// rotationPolicy reads the app's rotation policy with the device's own
// record, which a device token may read (it may not read the app's
// policy), or from the app's policy on servers that do not give it there.
func rotationPolicy(ctx context.Context, c *client.Client, deviceID string) (int, error) {
	d, err := c.Device(ctx, deviceID)
	if err != nil {
		return 0, err
	}
	if d.RotationDays != nil {
		return *d.RotationDays, nil
	}
	p, err := c.AppPolicy(ctx)
	return p.RotationDays, err
}

// startRotationState checks that the device exists, then creates
// stateFile with the current time as its last rotation.
func startRotationState(ctx context.Context, c *client.Client, deviceID, stateFile string) (rotationState, error) {
	// Check the device before remembering anything about it.
	if _, err := c.Device(ctx, deviceID); err != nil {
		return rotationState{}, err
	}
	if err := os.MkdirAll(filepath.Dir(stateFile), 0o700); err != nil {
		return rotationState{}, fmt.Errorf("create state directory: %w", err)
	}
	st := rotationState{DeviceID: deviceID, LastRotated: time.Now().UTC().Truncate(time.Second)}
	if err := saveRotationState(stateFile, st); err != nil {
		return rotationState{}, err
	}
	return st, nil
}

// with fills in the times of st.
func (r rotateResult) with(st rotationState) rotateResult {
	r.LastRotated = st.LastRotated
	if r.RotationDays > 0 {
		next := st.LastRotated.Add(time.Duration(r.RotationDays) * 24 * time.Hour)
		r.NextDue = &next
	}
	return r
}

func (a *cli) emitRotation(res rotateResult, stateFile string) error {
	return a.emit(res, func(t *table) {
		switch {
		case res.Started:
			t.row(fmt.Sprintf("Keeping the rotation time of device %s in %s from now on; no rotation this time.", res.DeviceID, stateFile))
		case res.Rotated:
			generatedDetail(t, *res.Device)
		case res.RotationDays == 0:
			t.row("Not rotated: the app has no rotation policy.")
		default:
			t.row(fmt.Sprintf("Not rotated: device %s is not due yet.", res.DeviceID))
		}
		t.row("LAST ROTATED", res.LastRotated)
		t.row("POLICY", rotationText(res.RotationDays))
		if res.NextDue != nil {
			t.row("NEXT DUE", *res.NextDue)
		}
	})
}
