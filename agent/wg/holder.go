package wg

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl"
)

// HolderCommand is the hidden first argument with which a program that
// sets Config.Holder runs the userspace device holder (see RunHolder).
const HolderCommand = "__userspace-device"

// The userspace device holder. wireguard-go's device lives in the process
// that made it; if that were the agent, restarting the agent would drop
// every session and clients would wait up to 15 s for their next
// handshake. With Config.Holder set, the agent instead starts a small
// detached process (its own binary, run as HolderCommand) that holds the
// TUN device, the WireGuard device and its UAPI socket, and does nothing
// else. The agent configures it through the UAPI socket, as it does the
// kernel module, and a restarted agent takes the running device over — so
// a userspace node keeps its tunnels across agent restarts like a kernel
// node does. The holder ends when its device goes away (ip link del).
//
// The holder collects garbage by heap growth only (collect.go), so an
// idle device costs no CPU for collections. The holder never logs (wireguard-go's logger is discarded: it would
// print peers' keys and endpoints), is not dumpable and has no core size.

// RunHolder runs the device holder until the device is closed. A program
// calls it when its arguments are HolderCommand, name, mtu.
func RunHolder(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: " + HolderCommand + " NAME MTU")
	}
	mtu, err := strconv.Atoi(args[1])
	if err != nil {
		return fmt.Errorf("mtu: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("set non-dumpable: %w", err)
	}
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{}); err != nil {
		return fmt.Errorf("set core size 0: %w", err)
	}
	defer startCollector()()
	u, err := startUserspace(args[0], mtu)
	if err != nil {
		return err
	}
	<-u.dev.Wait()
	return u.Close()
}

// startHolder starts the holder process for cfg and waits until its UAPI
// socket answers.
func startHolder(cfg Config) error {
	exe, err := os.Executable()
	if err != nil {
		return wrapErr("find own executable", err)
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return wrapErr("open "+os.DevNull, err)
	}
	defer devnull.Close()
	cmd := exec.Command(exe, HolderCommand, cfg.Name, strconv.Itoa(cfg.MTU))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlives the agent's session
	cmd.Env = []string{}                                 // nothing of the agent's environment, credentials included
	if err := cmd.Start(); err != nil {
		return wrapErr("start the userspace device holder", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(10 * time.Second)
	for {
		if holderAnswers(cfg.Name) {
			return nil
		}
		select {
		case err := <-exited:
			return wrapErr("userspace device holder exited", fmt.Errorf("%v", err))
		case <-deadline:
			cmd.Process.Kill()
			return wrapErr("userspace device holder", errors.New("its UAPI socket did not answer within 10 s"))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// socketDir holds the UAPI sockets of userspace devices, as wireguard-go
// and wgctrl know them. It is a path in the file system, shared by every
// network namespace of a mount namespace.
const socketDir = "/var/run/wireguard"

// tunKind is the link kind of a userspace device's TUN link.
const tunKind = "tuntap"

// socketPath is the UAPI socket of the userspace device name.
func socketPath(name string) string { return socketDir + "/" + name + ".sock" }

// foreignDevice is the error for a userspace device that answers on the
// UAPI socket of name but has no link in this network namespace: it
// lives in another one. Taking it over would configure a device whose
// link cannot be set up here; replacing its socket would cut the other
// namespace off its device.
func foreignDevice(name string) error {
	who := "its process"
	if pid := socketPeer(socketPath(name)); pid > 0 {
		who = "process " + strconv.Itoa(pid)
	}
	return &Error{Op: "open " + name, Err: fmt.Errorf("a userspace WireGuard device of that name answers on %s (%s) but has no "+
		"link in this network namespace: it lives in another network namespace, which shares %s with this one; "+
		"choose another interface name or stop %s: %w", socketPath(name), who, socketDir, who, os.ErrExist)}
}

// SocketHolder returns the process that serves the UAPI socket of the
// userspace device name, or 0 when none answers.
func SocketHolder(name string) int { return socketPeer(socketPath(name)) }

// socketPeer returns the process serving a unix socket, or 0.
func socketPeer(path string) int {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return 0
	}
	defer c.Close()
	raw, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		return 0
	}
	var cred *unix.Ucred
	raw.Control(func(fd uintptr) { cred, _ = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	if cred == nil {
		return 0
	}
	return int(cred.Pid)
}

// holderAnswers reports whether a userspace device of that name answers
// on its UAPI socket.
func holderAnswers(name string) bool {
	c, err := wgctrl.New()
	if err != nil {
		return false
	}
	defer c.Close()
	d, err := c.Device(name)
	return err == nil && d != nil
}
