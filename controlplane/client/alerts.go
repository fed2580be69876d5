package client

import (
	"context"
	"iter"
	"net/http"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// Health alerts tell the signed-in owner when a node or pool carrying the
// owner's devices changes health, through a signed webhook (see
// api.VerifyAlert) or email. These methods need the owner's session.

// AlertSettings returns the owner's alert settings. WebhookSecret is never
// set here: it is shown only by the UpdateAlertSettings call that created
// it.
func (c *Client) AlertSettings(ctx context.Context) (api.AlertSettings, error) {
	var out api.AlertSettings
	err := c.doJSON(ctx, &request{method: http.MethodGet, path: "/api/v1/alerts/settings", auth: authOwner}, &out)
	return out, err
}

// UpdateAlertSettings changes the fields of in that are set. Setting a
// webhook for the first time, or RotateSecret, creates a signing secret
// that only this answer carries (WebhookSecret): keep it to verify
// deliveries. Turning History off deletes the history at once. It fails
// with api.CodeInvalidRequest for a webhook URL that is not https:// or
// points at a private address, an unknown event kind, or an email when the
// server sends none.
//
// A call that may create a secret is not retried: after a lost answer the
// secret would exist but never be shown. Set RotateSecret to get a new one.
func (c *Client) UpdateAlertSettings(ctx context.Context, in api.AlertSettingsInput) (api.AlertSettings, error) {
	var out api.AlertSettings
	mayCreateSecret := in.RotateSecret || (in.WebhookURL != nil && *in.WebhookURL != "")
	err := c.doJSON(ctx, &request{method: http.MethodPut, path: "/api/v1/alerts/settings", auth: authOwner,
		body: in, noRetry: mayCreateSecret}, &out)
	return out, err
}

// TestAlert sends a test event to the owner's webhook and email and
// returns the channels it was queued for ("webhook", "email"); none when
// no alert settings are stored. It is rate limited (api.CodeRateLimited).
func (c *Client) TestAlert(ctx context.Context) (api.AlertTestResult, error) {
	var out api.AlertTestResult
	err := c.doJSON(ctx, &request{method: http.MethodPost, path: "/api/v1/alerts/test", auth: authOwner}, &out)
	return out, err
}

// AlertHistory returns one page of the owner's monitoring history, newest
// first. History is false, with no entries, unless the owner opted in.
func (c *Client) AlertHistory(ctx context.Context, opts ListOptions) (api.AlertHistory, error) {
	var out api.AlertHistory
	err := c.doJSON(ctx, &request{method: http.MethodGet, path: "/api/v1/alerts/history", auth: authOwner,
		query: opts.values()}, &out)
	return out, err
}

// AllAlertHistory iterates over the whole monitoring history, newest first,
// fetching pages of pageSize (0: the server's default) as it goes. An
// error ends the sequence.
func (c *Client) AllAlertHistory(ctx context.Context, pageSize int) iter.Seq2[api.AlertHistoryEntry, error] {
	return pages(ctx, pageSize, func(ctx context.Context, o ListOptions) ([]api.AlertHistoryEntry, string, error) {
		h, err := c.AlertHistory(ctx, o)
		return h.Entries, h.NextCursor, err
	})
}

// DeleteAlertHistory deletes the owner's whole monitoring history; the
// history setting stays as it is.
func (c *Client) DeleteAlertHistory(ctx context.Context) error {
	return c.doJSON(ctx, &request{method: http.MethodDelete, path: "/api/v1/alerts/history", auth: authOwner}, nil)
}
