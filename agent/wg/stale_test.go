package wg_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/traceless-vpn/traceless/agent/wg"
)

// TestMain lets this test binary serve as the userspace device holder,
// as cmd/traceless-agent does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == wg.HolderCommand {
		if err := wg.RunHolder(os.Args[2:]); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const socketDir = "/var/run/wireguard"

// staleSocket leaves a UAPI socket of name that nobody listens on, as a
// holder killed with SIGKILL does.
func staleSocket(t *testing.T, name string) string {
	t.Helper()
	if err := os.MkdirAll(socketDir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(socketDir, name+".sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	if _, err := net.Dial("unix", path); err == nil {
		t.Fatal("the stale socket answers")
	}
	t.Cleanup(func() { os.Remove(path) })
	return path
}

// TestStaleSocketReplaced: a UAPI socket left by a holder that is gone is
// replaced, with and without the holder, and the device works.
func TestStaleSocketReplaced(t *testing.T) {
	needRoot(t)
	for _, holder := range []bool{false, true} {
		t.Run(fmt.Sprintf("holder=%v", holder), func(t *testing.T) {
			name := devName(map[bool]string{false: "x", true: "y"}[holder])
			inNetns(t, func() error {
				staleSocket(t, name)
				i, err := wg.Open(wg.Config{Name: name, Backend: wg.BackendUserspace, Holder: holder})
				if err != nil {
					return fmt.Errorf("Open over a stale socket: %w", err)
				}
				defer i.Close()
				if holder {
					defer i.Links.Delete(name) // ends the holder
				}
				if i.Existed {
					return errors.New("Open over a stale socket says the device existed")
				}
				if err := i.Links.Up(name); err != nil {
					return fmt.Errorf("link up: %w", err)
				}
				if _, err := i.Client.Device(name); err != nil {
					return fmt.Errorf("device: %w", err)
				}
				return nil
			})
		})
	}
}

// TestSocketOfAnotherNamespace: /var/run/wireguard is shared by every
// network namespace of a mount namespace. A device of the same name
// living in another network namespace answers on the socket, but is not
// this namespace's interface: Open says so instead of taking it over and
// failing later on a link that does not exist.
func TestSocketOfAnotherNamespace(t *testing.T) {
	needRoot(t)
	name := devName("n")
	// The other namespace's device, held by a holder started from a
	// thread in a namespace of its own: the holder lives there.
	other := make(chan error, 1)
	release, released := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(released)
		runtime.LockOSThread() // the thread dies with the namespace
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			other <- err
			return
		}
		i, err := wg.Open(wg.Config{Name: name, Backend: wg.BackendUserspace, Holder: true})
		if err != nil {
			other <- err
			return
		}
		other <- nil
		<-release
		i.Links.Delete(name) // ends the holder
		i.Close()
	}()
	if err := <-other; err != nil {
		t.Fatalf("open the other namespace's device: %v", err)
	}
	sock := filepath.Join(socketDir, name+".sock")
	t.Cleanup(func() {
		close(release)
		<-released
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if _, err := os.Stat(sock); errors.Is(err, os.ErrNotExist) {
				return
			}
		}
		t.Errorf("the other namespace's holder left %s", sock)
	})

	for _, holder := range []bool{true, false} {
		t.Run(fmt.Sprintf("holder=%v", holder), func(t *testing.T) {
			inNetns(t, func() error {
				i, err := wg.Open(wg.Config{Name: name, Backend: wg.BackendUserspace, Holder: holder})
				if err == nil {
					existed := i.Existed
					upErr := i.Links.Up(name)
					i.Close()
					return fmt.Errorf("Open took over another namespace's device (existed %v; link up: %v)", existed, upErr)
				}
				msg := err.Error()
				if !errors.Is(err, os.ErrExist) || !strings.Contains(msg, "another network namespace") ||
					!strings.Contains(msg, sock) {
					return fmt.Errorf("Open = %v; want an error naming the socket and the other namespace", err)
				}
				t.Logf("Open: %v", err)
				return nil
			})
		})
	}
}
