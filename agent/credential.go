package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// credentialPrefix starts every node credential, so a leaked one is
// recognisable.
const credentialPrefix = "tln_"

// credential is the agent's only state on disk: one JSON file, mode 0600,
// at the path the operator chose (--credential-file; it may be a tmpfs,
// but the WireGuard key must survive restarts or clients' configs break).
// It holds the node's identity and nothing about any client.
type credential struct {
	NodeID string `json:"node_id"`
	// Credential is the long-lived node credential ("tln_…") that buys
	// short-lived node tokens.
	Credential string `json:"credential"`
	// PrivateKey is the node's WireGuard private key, base64. Clients'
	// configs name its public key.
	PrivateKey string `json:"private_key"`
	// Tunnel is the interface configuration last received, so a restart
	// can set the interface up before the control plane answers.
	Tunnel *api.Tunnel `json:"tunnel,omitempty"`
}

// key returns the parsed private key.
func (c *credential) key() (wgtypes.Key, error) {
	k, err := wgtypes.ParseKey(c.PrivateKey)
	if err != nil {
		return wgtypes.Key{}, errors.New("private_key is not a base64 WireGuard key")
	}
	return k, nil
}

// loadCredential reads the credential file. A missing file is returned as
// an error satisfying errors.Is(err, os.ErrNotExist). A file readable by
// others is tightened to 0600 first.
func loadCredential(path string) (*credential, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("credential file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("credential file %s: not a regular file", path)
	}
	if fi.Mode().Perm() != 0o600 {
		if err := os.Chmod(path, 0o600); err != nil {
			return nil, fmt.Errorf("credential file: %w", err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("credential file: %w", err)
	}
	var c credential
	if err := json.Unmarshal(b, &c); err != nil {
		// The JSON error could quote the file; say only where.
		return nil, fmt.Errorf("credential file %s: not valid JSON", path)
	}
	if !strings.HasPrefix(c.Credential, credentialPrefix) {
		return nil, fmt.Errorf("credential file %s: credential must start with %q", path, credentialPrefix)
	}
	if _, err := c.key(); err != nil {
		return nil, fmt.Errorf("credential file %s: %w", path, err)
	}
	return &c, nil
}

// saveCredential writes the file atomically (a temporary file in the same
// directory, renamed over it), mode 0600, creating the directory (0700)
// if needed.
func saveCredential(path string, c *credential) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("credential file: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("credential file: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("credential file: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("credential file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("credential file: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
