package alerts

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// The owner's webhook URL is checked when it is set (CheckWebhookURL), and
// the addresses it resolves to at every delivery (webhookDialControl).

// CheckWebhookURL validates a webhook URL: https:// with a host that is
// not a private, loopback or link-local address (loopback and private
// addresses, over http:// too, only with AllowPrivateTargets), no
// credentials, at most 2 KiB. The dialer checks the resolved addresses
// again at every delivery.
func (a *Alerter) CheckWebhookURL(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	bad := func(format string, args ...any) error {
		return &api.Error{Status: http.StatusBadRequest, Code: api.CodeInvalidRequest, Field: "webhook_url", Message: fmt.Sprintf(format, args...)}
	}
	if len(raw) > store.MaxWebhookURL {
		return "", bad("must be at most %d bytes", store.MaxWebhookURL)
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] <= 0x20 || raw[i] >= 0x7f {
			return "", bad("must be printable ASCII (percent-encode anything else)")
		}
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return "", bad("must be an absolute https:// URL")
	}
	if u.User != nil {
		return "", bad("must not contain credentials; deliveries are signed with the webhook secret")
	}
	if u.Fragment != "" {
		return "", bad("must not have a fragment")
	}
	host := strings.ToLower(u.Hostname())
	// private: the host is this machine or a private network, which
	// only AllowPrivateTargets admits (and then over http:// too).
	private := host == "localhost" || strings.HasSuffix(host, ".localhost")
	if ip, err := netip.ParseAddr(host); err == nil {
		private = blockedAddr(ip)
		if private && !webhookTargetAllowed(ip, a.opts.AllowPrivateTargets) {
			return "", bad("must not point at a private, loopback or link-local address")
		}
	}
	switch {
	case private && !a.opts.AllowPrivateTargets:
		return "", bad("must not point at a private, loopback or link-local address")
	case u.Scheme == "https":
	case u.Scheme == "http" && private:
	default:
		return "", bad("must use https://")
	}
	return raw, nil
}
