package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// Host is the machine around the agent: files under /proc and /sys, a few
// commands, netfilter and the agent's own process. Posture checks and
// interface setup go through it, so tests replace each part. Zero fields
// take the real machine.
type Host struct {
	// FS is the root file system, read with paths relative to "/"
	// (os.DirFS("/") by default).
	FS fs.FS
	// WriteFile writes a file by absolute path (sysctls under /proc/sys).
	WriteFile func(name string, data []byte) error
	// LookPath finds a command (exec.LookPath by default).
	LookPath func(file string) (string, error)
	// Run runs a command and returns its standard output.
	Run func(ctx context.Context, name string, args ...string) ([]byte, error)
	// Firewall is nftables by default.
	Firewall Firewall
	// Process is this process by default.
	Process Process
}

// Process is what the agent hardens and checks in its own process.
type Process interface {
	// SetNotDumpable makes the process non-dumpable: no core dump, no
	// ptrace attach by unprivileged users, /proc/self owned by root.
	SetNotDumpable() error
	// Dumpable reports whether the process is dumpable.
	Dumpable() (bool, error)
	// SetNoCore sets RLIMIT_CORE to 0, soft and hard.
	SetNoCore() error
	// CoreLimit returns RLIMIT_CORE's soft and hard limits.
	CoreLimit() (soft, hard uint64, err error)
}

func (h Host) withDefaults() Host {
	if h.FS == nil {
		h.FS = os.DirFS("/")
	}
	if h.WriteFile == nil {
		h.WriteFile = func(name string, data []byte) error { return os.WriteFile(name, data, 0o644) }
	}
	if h.LookPath == nil {
		h.LookPath = exec.LookPath
	}
	if h.Run == nil {
		h.Run = func(ctx context.Context, name string, args ...string) ([]byte, error) {
			return exec.CommandContext(ctx, name, args...).Output()
		}
	}
	if h.Firewall == nil {
		h.Firewall = NewNFTables()
	}
	if h.Process == nil {
		h.Process = selfProcess{}
	}
	return h
}

// readFile reads an absolute path from FS.
func (h Host) readFile(name string) ([]byte, error) {
	return fs.ReadFile(h.FS, strings.TrimPrefix(path.Clean(name), "/"))
}

// selfProcess is this process, through prctl and setrlimit.
type selfProcess struct{}

func (selfProcess) SetNotDumpable() error { return unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0) }

func (selfProcess) Dumpable() (bool, error) {
	v, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	return v != 0, err
}

func (selfProcess) SetNoCore() error {
	return unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0})
}

func (selfProcess) CoreLimit() (uint64, uint64, error) {
	var r unix.Rlimit
	err := unix.Getrlimit(unix.RLIMIT_CORE, &r)
	return r.Cur, r.Max, err
}

// Sysctls the posture checks and the hardening set.
const (
	sysctlConntrackAcct      = "/proc/sys/net/netfilter/nf_conntrack_acct"
	sysctlConntrackTimestamp = "/proc/sys/net/netfilter/nf_conntrack_timestamp"
)

// hardenProcess makes the process non-dumpable with no core size; the
// posture check verifies both.
func (a *Agent) hardenProcess() {
	if err := a.host.Process.SetNotDumpable(); err != nil {
		a.log.Warn("cannot make the process non-dumpable", slog.Any(keyErr, err))
	}
	if err := a.host.Process.SetNoCore(); err != nil {
		a.log.Warn("cannot set the core size limit to 0", slog.Any(keyErr, err))
	}
}

// hardenSysctls turns conntrack accounting and timestamps off where
// conntrack is loaded.
func (a *Agent) hardenSysctls() {
	for _, name := range []string{sysctlConntrackAcct, sysctlConntrackTimestamp} {
		b, err := a.host.readFile(name)
		if err != nil || strings.TrimSpace(string(b)) == "0" {
			continue
		}
		if err := a.host.WriteFile(name, []byte("0\n")); err != nil {
			a.log.Warn("cannot turn a conntrack sysctl off", slog.String(keySysctl, name), slog.Any(keyErr, err))
		}
	}
}

// checkPosture runs every check and returns the posture with the names of
// the checks that failed. What each check looks at:
//
//   - ConntrackAccountingOff, ConntrackTimestampsOff: the sysctls
//     net.netfilter.nf_conntrack_acct and nf_conntrack_timestamp read 0,
//     or are absent because conntrack is not loaded.
//   - NoLogRules: no nftables rule in any table has a log expression or an
//     xtables LOG/NFLOG/ULOG target; and when iptables-save (or
//     ip6tables-save) exists, its output has no "-j LOG", "-j NFLOG" or
//     "-j ULOG". A scan that cannot run fails the check.
//   - SwapOff: /proc/swaps lists no swap area, or only zram devices (RAM)
//     and dm-crypt devices (a /dev/dm-N or /dev/mapper/NAME whose
//     /sys/block/dm-N/dm/uuid starts with "CRYPT-").
//   - NotDumpable: prctl(PR_GET_DUMPABLE) is 0.
//   - CoreSizeZero: RLIMIT_CORE is 0, soft and hard.
//   - NoStateOnDisk: the credential file's directory holds nothing but
//     the credential file, and that is a regular file of mode exactly
//     0600 (a missing directory or file passes: nothing is on disk). The
//     agent writes nothing else; keep the file in a directory of its own.
func (a *Agent) checkPosture(ctx context.Context) (api.Posture, []string) {
	h := a.host
	p := api.Posture{
		ConntrackAccountingOff: sysctlOff(h, sysctlConntrackAcct),
		ConntrackTimestampsOff: sysctlOff(h, sysctlConntrackTimestamp),
		NoLogRules:             a.noLogRules(ctx),
		SwapOff:                swapOff(h),
		NoStateOnDisk:          noStateOnDisk(h, a.opts.CredentialFile),
	}
	if d, err := h.Process.Dumpable(); err == nil {
		p.NotDumpable = !d
	}
	if soft, hard, err := h.Process.CoreLimit(); err == nil {
		p.CoreSizeZero = soft == 0 && hard == 0
	}
	var failed []string
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{"conntrack_accounting_off", p.ConntrackAccountingOff},
		{"conntrack_timestamps_off", p.ConntrackTimestampsOff},
		{"no_log_rules", p.NoLogRules},
		{"swap_off", p.SwapOff},
		{"not_dumpable", p.NotDumpable},
		{"core_size_zero", p.CoreSizeZero},
		{"no_state_on_disk", p.NoStateOnDisk},
	} {
		if !c.ok {
			failed = append(failed, c.name)
		}
	}
	return p, failed
}

func sysctlOff(h Host, name string) bool {
	b, err := h.readFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	return err == nil && strings.TrimSpace(string(b)) == "0"
}

func (a *Agent) noLogRules(ctx context.Context) bool {
	n, err := a.host.Firewall.LogRules()
	if err != nil {
		a.log.Debug("cannot scan nftables for log rules", slog.Any(keyErr, err))
		return false
	}
	if n > 0 {
		return false
	}
	for _, cmd := range []string{"iptables-save", "ip6tables-save"} {
		bin, err := a.host.LookPath(cmd)
		if err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		out, err := a.host.Run(ctx, bin)
		cancel()
		if err != nil {
			a.log.Debug("cannot scan iptables for log rules", slog.String(keyCommand, cmd), slog.Any(keyErr, err))
			return false
		}
		if iptablesLogs(out) {
			return false
		}
	}
	return true
}

// iptablesLogs reports whether iptables-save output has a logging rule.
func iptablesLogs(out []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		for i := 0; i+1 < len(f); i++ {
			if (f[i] == "-j" || f[i] == "--jump") && (f[i+1] == "LOG" || f[i+1] == "NFLOG" || f[i+1] == "ULOG") {
				return true
			}
		}
	}
	return false
}

func swapOff(h Host) bool {
	b, err := h.readFile("/proc/swaps")
	if errors.Is(err, fs.ErrNotExist) {
		return true // no /proc/swaps: a kernel without swap support
	}
	if err != nil {
		return false
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for _, line := range lines[1:] { // the first line is the header
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if !swapInMemoryOrEncrypted(h, f[0]) {
			return false
		}
	}
	return true
}

// swapInMemoryOrEncrypted reports whether a swap area is zram or dm-crypt.
func swapInMemoryOrEncrypted(h Host, dev string) bool {
	if strings.HasPrefix(dev, "/dev/zram") {
		return true
	}
	var dm string
	switch {
	case strings.HasPrefix(dev, "/dev/dm-"):
		dm = filepath.Base(dev)
	case strings.HasPrefix(dev, "/dev/mapper/"):
		name := filepath.Base(dev)
		entries, _ := fs.ReadDir(h.FS, "sys/block")
		for _, e := range entries {
			if n, err := h.readFile("/sys/block/" + e.Name() + "/dm/name"); err == nil && strings.TrimSpace(string(n)) == name {
				dm = e.Name()
				break
			}
		}
	}
	if dm == "" {
		return false
	}
	uuid, err := h.readFile("/sys/block/" + dm + "/dm/uuid")
	return err == nil && strings.HasPrefix(string(uuid), "CRYPT-")
}

func noStateOnDisk(h Host, credentialFile string) bool {
	if credentialFile == "" {
		return false
	}
	abs, err := filepath.Abs(credentialFile)
	if err != nil {
		return false
	}
	dir := strings.TrimPrefix(filepath.Dir(abs), "/")
	if dir == "" {
		dir = "."
	}
	entries, err := fs.ReadDir(h.FS, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	if err != nil {
		return false
	}
	for _, e := range entries {
		if e.Name() != filepath.Base(abs) {
			return false
		}
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
			return false
		}
	}
	return true
}

// postureLoop re-checks the posture every interval until ctx ends.
func (a *Agent) postureLoop(ctx context.Context) {
	t := time.NewTicker(a.opts.PostureInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if a.opts.Harden {
			a.hardenSysctls()
		}
		a.updatePosture(ctx)
	}
}

// updatePosture runs the checks, records the result and logs a change.
func (a *Agent) updatePosture(ctx context.Context) []string {
	p, failed := a.checkPosture(ctx)
	a.mu.Lock()
	changed := p != a.posture || !a.postureKnown
	a.posture, a.postureKnown = p, true
	a.mu.Unlock()
	ok := 0.0
	if p.OK() {
		ok = 1
	}
	a.metrics.postureOK.Set(ok)
	if changed {
		if len(failed) > 0 {
			a.log.Warn("privacy posture checks failed", slog.Any(keyFailed, failed))
		} else {
			a.log.Info("privacy posture ok")
		}
	}
	return failed
}
