package controlplane

import (
	"net/http"
	"reflect"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/traceless-vpn/traceless/controlplane/alerts"
	"github.com/traceless-vpn/traceless/controlplane/api"
)

// alertWebhookDoc describes the deliveries, which are not routes of this
// API but requests it makes.
const alertWebhookDoc = "Each event is POSTed to `webhook_url` as an `AlertEvent` JSON body with the headers " +
	"`X-Traceless-Event: <kind>`, `Idempotency-Key: <event id>` and `X-Traceless-Signature: t=<unix seconds>,v1=<hex>`, where the hex is " +
	"HMAC-SHA256, keyed with the webhook secret, of `<unix seconds>.<body>`. Check it in constant time, reject " +
	"old timestamps (replays) and skip event IDs already seen. Answer 2xx; network errors, 5xx, 408 and 429 are " +
	"retried with exponential backoff for up to a day, in order, holding back later events, so nothing is lost " +
	"while the receiver is down for a while. Events wait in the database until delivered, so a control-plane replica that " +
	"dies loses none; delivery is at least once: an event whose delivery was not recorded (the replica died after the " +
	"receiver answered, the answer was lost) is sent again. The event's `id`, repeated in `Idempotency-Key`, is its " +
	"idempotency key: a receiver that skips IDs it has seen gets each event once, and an owner's events in the order they " +
	"were queued. Events carry node and pool facts only; aggregate numbers " +
	"(peer count, revisions) only for the owner's own nodes."

// alertDeliveryDoc describes the delivery outcome in the settings.
const alertDeliveryDoc = "`delivery` gives, for each configured channel, how alerts fare as this server has seen since it " +
	"started (held in memory only, never stored): `idle`, `delivered`, `retrying` (an event failed and is retried; later " +
	"events wait) or `gave_up` (refused, or still failing at the end of the retry period), with the last failure described " +
	"without the URL or address. Changing a channel starts it afresh. `pending` is read from the alert outbox in the database: " +
	"the events waiting for the channel, whichever replica answers."

func init() {
	fieldRules[reflect.TypeFor[api.AlertDelivery]()] = map[string][]fieldRule{
		"channel": {enum(alerts.ChannelWebhook, alerts.ChannelEmail)},
		"state":   {enum(api.AlertDeliveryStates...)},
		"error":   {describe("The last failure, without the URL or address; empty after a delivery.")},
	}
	fieldRules[reflect.TypeFor[api.AlertSettings]()] = map[string][]fieldRule{
		"delivery": {describe("The delivery outcome of each configured channel, from this server's memory.")},
	}
}

func alertOperations() []operation {
	historyLimit := openapi3.NewQueryParameter("limit").
		WithDescription("Page size (default 50).").
		WithSchema(openapi3.NewIntegerSchema().WithMin(1).WithMax(500).WithDefault(50))
	historyCursor := openapi3.NewQueryParameter("cursor").
		WithDescription("The next_cursor of the previous page.").
		WithSchema(openapi3.NewStringSchema().WithMaxLength(64))
	return []operation{
		{method: http.MethodGet, path: "/api/v1/alerts/settings", id: "getAlertSettings", tag: "alerts", sec: secOwner,
			summary: "Alert settings",
			desc: "Where the owner is told about the health of the nodes and pools carrying the owner's devices (the shared pools " +
				"of the plan and the owner's own pools), which kinds, and whether a monitoring history is kept (opt-in, off by default). " +
				"Without stored settings: no channel, every kind, no history.\n\n" + alertDeliveryDoc,
			replies: []reply{{status: 200, body: api.AlertSettings{}}}},
		{method: http.MethodPut, path: "/api/v1/alerts/settings", id: "putAlertSettings", tag: "alerts", sec: secOwner,
			summary: "Change the alert settings", body: api.AlertSettingsInput{},
			desc: "Absent fields are left as they are. `webhook_url` must be https:// with a public host, at most 2 KiB; setting the first " +
				"webhook (or `rotate_secret`) creates the signing secret, returned in this response only. `email` needs a server that sends " +
				"email (`email_available`). Turning `history` off deletes the history at once; `retention_days` is 1-365.\n\n" + alertWebhookDoc,
			replies: []reply{{status: 200, body: api.AlertSettings{}}}},
		{method: http.MethodPost, path: "/api/v1/alerts/test", id: "testAlert", tag: "alerts", sec: secOwner,
			summary: "Send a test event",
			desc:    "Queues an event of kind `test` for each configured channel and lists them; delivery follows as for any event.",
			replies: []reply{{status: 202, body: api.AlertTestResult{}}}, errs: []int{429}},
		{method: http.MethodGet, path: "/api/v1/alerts/history", id: "listAlertHistory", tag: "alerts", sec: secOwner,
			summary: "Monitoring history", query: []*openapi3.Parameter{historyLimit, historyCursor},
			desc: "Node and pool status changes, newest first, kept only while the owner opts in and for the retention period. " +
				"Without the opt-in: `history` false and no entries.",
			replies: []reply{{status: 200, body: api.AlertHistory{}}}},
		{method: http.MethodDelete, path: "/api/v1/alerts/history", id: "deleteAlertHistory", tag: "alerts", sec: secOwner,
			summary: "Delete the monitoring history", desc: "Deletes every entry; the opt-in stays as it is.",
			replies: []reply{{status: 204}}},
	}
}
