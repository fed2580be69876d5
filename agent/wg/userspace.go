package wg

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"
	"golang.zx2c4.com/wireguard/tun"
)

// userspaceDevice is wireguard-go running in this process: a TUN device,
// the WireGuard device on it, and the UAPI socket
// /var/run/wireguard/<name>.sock through which wgctrl and wg(8) configure
// it.
type userspaceDevice struct {
	dev  *device.Device
	uapi net.Listener
	done chan struct{}
}

// discard is wireguard-go's logger: it would otherwise print peers' keys
// and endpoints.
var discard = &device.Logger{Verbosef: device.DiscardLogf, Errorf: device.DiscardLogf}

// startUserspace creates the TUN device and starts serving UAPI. The
// device goes up (and binds its UDP port) when its link is set up, as
// with wireguard-go's own command.
func startUserspace(name string, mtu int) (*userspaceDevice, error) {
	t, err := tun.CreateTUN(name, mtu)
	if err != nil {
		return nil, wrapErr("create tun "+name, err)
	}
	dev := device.NewDevice(t, conn.NewDefaultBind(), discard)
	f, err := ipc.UAPIOpen(name)
	if err != nil {
		dev.Close()
		return nil, wrapErr("open uapi socket", err)
	}
	l, err := ipc.UAPIListen(name, f)
	// The listener holds its own copy of the descriptor.
	f.Close()
	if err != nil {
		dev.Close()
		return nil, wrapErr("listen on uapi socket", err)
	}
	u := &userspaceDevice{dev: dev, uapi: l, done: make(chan struct{})}
	go u.serve()
	return u, nil
}

func (u *userspaceDevice) serve() {
	defer close(u.done)
	for {
		c, err := u.uapi.Accept()
		if err != nil {
			return
		}
		go u.handle(c)
	}
}

// handle serves one UAPI connection: the in-process read (inproc.go) when
// it asks for it, wireguard-go's own UAPI otherwise.
func (u *userspaceDevice) handle(c net.Conn) {
	r := bufio.NewReader(c)
	op, err := r.ReadString('\n')
	if err != nil {
		c.Close()
		return
	}
	if op == readOp {
		serveInproc(u.dev, c, r)
		c.Close()
		return
	}
	u.dev.IpcHandle(&prefixedConn{Conn: c, r: io.MultiReader(strings.NewReader(op), r)})
}

// Close removes the UAPI socket and the device, which deletes the TUN
// link with its addresses.
func (u *userspaceDevice) Close() error {
	err := u.uapi.Close()
	u.dev.Close()
	<-u.done
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return wrapErr("close userspace device", err)
}
