package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Alerts tell an owner when a node or pool carrying the owner's devices
// changes health. They carry facts about nodes and pools only; nothing in
// these types can describe an end user.

// Alert kinds.
const (
	AlertNodeOffline      = "node_offline"       // a node stopped reporting
	AlertNodeOnline       = "node_online"        // it reports again
	AlertPostureRegressed = "posture_regressed"  // a privacy posture check went from passing to failing
	AlertPostureRecovered = "posture_recovered"  // a failing check passes again
	AlertSyncLag          = "sync_lag"           // a node trails the current revision for longer than the threshold
	AlertSyncRecovered    = "sync_recovered"     // it caught up
	AlertPoolDown         = "pool_down"          // no node of a pool is online
	AlertPoolUp           = "pool_up"            // a node of a down pool is online again
	AlertNodeOverCapacity = "node_over_capacity" // a node's pool has more devices than its WireGuard backend holds
	AlertNodeCapacityOK   = "node_capacity_ok"   // every device of the pool fits on the node again
	AlertTest             = "test"               // sent on request by POST /api/v1/alerts/test
)

// AlertKinds are the kinds an owner may subscribe to, in a stable order.
var AlertKinds = []string{AlertNodeOffline, AlertNodeOnline, AlertPostureRegressed, AlertPostureRecovered,
	AlertSyncLag, AlertSyncRecovered, AlertPoolDown, AlertPoolUp, AlertNodeOverCapacity, AlertNodeCapacityOK}

// Webhook request headers.
const (
	// AlertSignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256>"
	// of "<unix seconds>.<body>", keyed with the owner's webhook secret.
	AlertSignatureHeader = "X-Traceless-Signature"
	// AlertEventHeader carries the event's kind.
	AlertEventHeader = "X-Traceless-Event"
	// AlertIdempotencyHeader carries the event's ID (the body's "id"): a
	// delivery may be repeated (a retry whose answer was lost, a replica
	// that died before recording it), and a receiver skips a repeat by it.
	AlertIdempotencyHeader = "Idempotency-Key"
)

// AlertEvent is the JSON body of a webhook delivery (and the data of an
// alert email).
type AlertEvent struct {
	// ID identifies the event; a receiver may see it more than once (a
	// retried delivery whose answer was lost) and can skip repeats by it.
	ID         string     `json:"id"`
	Kind       string     `json:"kind"`
	OccurredAt time.Time  `json:"occurred_at"`
	Pool       AlertPool  `json:"pool"`
	Node       *AlertNode `json:"node"`
	Detail     string     `json:"detail"`
}

// AlertPool is the pool an event is about, or the pool of its node.
type AlertPool struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Region    string `json:"region"`
	Dedicated bool   `json:"dedicated"`
	// Nodes counts the pool's enabled nodes, NodesOnline those reporting.
	Nodes       int `json:"nodes"`
	NodesOnline int `json:"nodes_online"`
}

// AlertNode is the node an event is about, with its last aggregate status.
type AlertNode struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Online      bool   `json:"online"`
	InterfaceUp bool   `json:"interface_up"`
	Version     string `json:"version"`
	// Posture is null until the node reported.
	Posture *Posture `json:"posture"`
	// The aggregate numbers are given for the owner's own (dedicated)
	// nodes only: on a shared node they would count other owners' devices
	// and changes. Null otherwise.
	PeerCount       *int   `json:"peer_count"`
	AppliedRevision *int64 `json:"applied_revision"`
	CurrentRevision *int64 `json:"current_revision"`
}

// AlertSettings is an owner's alert configuration.
type AlertSettings struct {
	// WebhookURL receives each event as a signed POST; empty for none.
	WebhookURL string `json:"webhook_url"`
	// WebhookSecret keys the signature. It is shown only in the response
	// that created it (setting a webhook, or rotate_secret).
	WebhookSecret string `json:"webhook_secret,omitempty"`
	// Email receives each event as a plain-text message; empty for none.
	Email string `json:"email"`
	// EmailAvailable reports whether this server sends email at all.
	EmailAvailable bool `json:"email_available"`
	// Events are the kinds the owner receives.
	Events []string `json:"events"`
	// History reports whether the owner opted in to a stored monitoring
	// history (off by default).
	History bool `json:"history"`
	// RetentionDays is how long history entries are kept (1-365).
	RetentionDays int `json:"retention_days"`
	// Delivery is how alerts fare on each configured channel, as this
	// server has seen since it started (held in memory only).
	Delivery []AlertDelivery `json:"delivery"`
}

// Delivery states of an alert channel.
const (
	DeliveryIdle      = "idle"      // nothing sent since the server started
	DeliveryDelivered = "delivered" // the last event reached the channel
	DeliveryRetrying  = "retrying"  // an event failed and is retried; later events wait behind it
	DeliveryGaveUp    = "gave_up"   // the last event was refused, or kept failing until the retry period ended
)

// AlertDeliveryStates are the delivery states, in a stable order.
var AlertDeliveryStates = []string{DeliveryIdle, DeliveryDelivered, DeliveryRetrying, DeliveryGaveUp}

// AlertDelivery is the delivery outcome of one of the owner's channels:
// the owner's own receiver or mailbox, never anything about end users.
// It names neither the URL nor the address.
type AlertDelivery struct {
	// Channel is "webhook" or "email".
	Channel string `json:"channel"`
	// State is one of AlertDeliveryStates.
	State string `json:"state"`
	// Kind is the kind of the last event tried; empty while idle.
	Kind string `json:"kind"`
	// Error describes the last failure ("webhook answered 503", "SMTP
	// RCPT answered 550"); empty once an event is delivered.
	Error string `json:"error"`
	// Attempts counts the tries of the event being retried or given up.
	Attempts int `json:"attempts"`
	// Pending counts the events waiting in the outbox for the channel
	// (read from the database, so every replica agrees).
	Pending int `json:"pending"`
	// Delivered and GaveUp count events since the server started.
	Delivered int `json:"delivered"`
	GaveUp    int `json:"gave_up"`
}

// AlertSettingsInput changes the alert settings; absent fields are left
// as they are.
type AlertSettingsInput struct {
	WebhookURL *string `json:"webhook_url,omitempty"`
	Email      *string `json:"email,omitempty"`
	// Events replaces the subscribed kinds; an empty list subscribes none.
	Events *[]string `json:"events,omitempty"`
	// History turns the monitoring history on or off; off deletes it.
	History       *bool `json:"history,omitempty"`
	RetentionDays *int  `json:"retention_days,omitempty"`
	// RotateSecret replaces the webhook secret; the new one is returned.
	RotateSecret bool `json:"rotate_secret,omitempty"`
}

// AlertTestResult answers POST /api/v1/alerts/test: the channels a test
// event was queued for ("webhook", "email").
type AlertTestResult struct {
	Queued []string `json:"queued"`
}

// AlertHistoryEntry is one stored status change.
type AlertHistoryEntry struct {
	ID         string    `json:"id"`
	Kind       string    `json:"kind"`
	PoolID     string    `json:"pool_id"`
	PoolName   string    `json:"pool_name"`
	NodeID     string    `json:"node_id"`
	NodeName   string    `json:"node_name"`
	Detail     string    `json:"detail"`
	OccurredAt time.Time `json:"occurred_at"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// AlertHistory is a page of the monitoring history, newest first.
type AlertHistory struct {
	// History reports whether the history is kept; when it is not, there
	// are no entries.
	History    bool                `json:"history"`
	Entries    []AlertHistoryEntry `json:"entries"`
	NextCursor string              `json:"next_cursor"`
}

// SignAlert returns the AlertSignatureHeader value for body sent at t:
// "t=<unix>,v1=<hex of HMAC-SHA256(secret, "<unix>.<body>")>".
func SignAlert(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(alertMAC(secret, ts, body))
}

func alertMAC(secret, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Errors of VerifyAlert.
var (
	ErrAlertSignature = errors.New("alert signature does not match")
	ErrAlertStale     = errors.New("alert signature timestamp outside the tolerance")
)

// VerifyAlert checks an AlertSignatureHeader value against body and the
// secret, in constant time. When tolerance is positive, the signed time
// must lie within tolerance of now, which stops replays of old deliveries.
// Receivers should also skip event IDs they have seen.
func VerifyAlert(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrAlertSignature
	}
	want := alertMAC(secret, ts, body)
	ok := false
	for _, s := range sigs {
		ok = hmac.Equal(s, want) || ok
	}
	if !ok {
		return ErrAlertSignature
	}
	if tolerance > 0 {
		if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
			return ErrAlertStale
		}
	}
	return nil
}
