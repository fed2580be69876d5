package wg

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"

	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Client is the subset of wgctrl the agent needs (wgctrl's own
// internal/wginternal.Client, less device listing). *wgctrl.Client
// satisfies it, and so does *Fake.
type Client interface {
	// Device returns the named device with its peers. It returns an error
	// satisfying errors.Is(err, os.ErrNotExist) when no such device exists.
	Device(name string) (*wgtypes.Device, error)
	// ConfigureDevice applies cfg to the named device with wgtypes.Config
	// semantics: nil fields stay unchanged, ReplacePeers drops every peer
	// first, and peers are applied in order. It returns an error
	// satisfying errors.Is(err, os.ErrNotExist) when no such device
	// exists. On any other error a prefix of cfg may have been applied.
	ConfigureDevice(name string, cfg wgtypes.Config) error
	// Close releases the client's sockets; the devices stay.
	Close() error
}

var _ Client = (*wgctrl.Client)(nil)

// Error is a failed backend operation. It says whether repeating the same
// operation later may succeed (a busy socket, a transient netlink
// failure) or whether something must change first (the device is gone,
// permission is missing, the input is invalid).
type Error struct {
	// Op names the operation: "device", "configure", "link", ….
	Op  string
	Err error

	retryable bool
}

func (e *Error) Error() string { return "wg " + e.Op + ": " + e.Err.Error() }

// Unwrap returns the cause, so errors.Is(err, os.ErrNotExist) works.
func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether the same operation may succeed later without
// any change.
func (e *Error) Retryable() bool { return e.retryable }

// IsRetryable reports whether err, or an error it wraps, says it is
// retryable. Errors that do not say are not.
func IsRetryable(err error) bool {
	var r interface{ Retryable() bool }
	return errors.As(err, &r) && r.Retryable()
}

// wrapErr classifies err from operation op; nil stays nil.
func wrapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &Error{Op: op, Err: err, retryable: retryable(err)}
}

// retryable decides for errors that do not say themselves.
func retryable(err error) bool {
	switch {
	case errors.Is(err, os.ErrNotExist), errors.Is(err, os.ErrPermission):
		return false
	case errors.Is(err, syscall.EINVAL), errors.Is(err, syscall.EOPNOTSUPP),
		errors.Is(err, syscall.EAFNOSUPPORT), errors.Is(err, syscall.EPROTONOSUPPORT),
		errors.Is(err, syscall.EADDRINUSE), errors.Is(err, syscall.ENODEV),
		errors.Is(err, syscall.EEXIST), errors.Is(err, errInvalid):
		return false
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EINTR),
		errors.Is(err, syscall.ENOBUFS), errors.Is(err, syscall.ENOMEM),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.EBUSY):
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	// Unknown failures of a local socket are most often transient; the
	// agent retries them with backoff and never wipes the device.
	return true
}

// errInvalid marks input a device refuses.
var errInvalid = errors.New("invalid configuration")

// classified wraps a Client so its errors say whether they are retryable.
type classified struct{ c Client }

// Classified returns c with every error wrapped in an *Error. Open and
// NewFakeInterface return classified clients already.
func Classified(c Client) Client {
	if _, ok := c.(classified); ok {
		return c
	}
	return classified{c}
}

func (c classified) Device(name string) (*wgtypes.Device, error) {
	d, err := c.c.Device(name)
	return d, wrapErr("device", err)
}

func (c classified) ConfigureDevice(name string, cfg wgtypes.Config) error {
	return wrapErr("configure", c.c.ConfigureDevice(name, cfg))
}

func (c classified) Close() error { return wrapErr("close", c.c.Close()) }
