package controlplane_test

import (
	"net/http"
	"testing"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// TestOpenAPIAlertsConform validates the alert routes' requests and
// responses, errors included, against the served document. No webhook is
// set when events are sent, so nothing leaves the machine.
func TestOpenAPIAlertsConform(t *testing.T) {
	s := newOAServer(t)
	c := newOAClient(t, s)
	owner, _ := oaOwnerAccount(t, c)

	c.do(oaCall{method: "GET", path: "/api/v1/alerts/settings", token: owner, want: 200})
	c.do(oaCall{method: "GET", path: "/api/v1/alerts/settings", want: 401, nonConforming: true, wantCode: api.CodeUnauthorized})
	var set api.AlertSettings
	c.do(oaCall{method: "PUT", path: "/api/v1/alerts/settings", token: owner, want: 200,
		body: api.AlertSettingsInput{WebhookURL: new("https://hooks.example.com/traceless"), Events: &[]string{api.AlertNodeOffline}}}).decode(t, &set)
	if set.WebhookSecret == "" {
		t.Error("no secret in the response that created the webhook")
	}
	c.do(oaCall{method: "PUT", path: "/api/v1/alerts/settings", token: owner, want: 200,
		body: api.AlertSettingsInput{RotateSecret: true, History: new(true), RetentionDays: new(14)}})
	c.do(oaCall{method: "PUT", path: "/api/v1/alerts/settings", token: owner, want: 400, wantCode: api.CodeInvalidRequest,
		body: api.AlertSettingsInput{WebhookURL: new("http://hooks.example.com/")}})
	c.do(oaCall{method: "PUT", path: "/api/v1/alerts/settings", token: owner, want: 400, wantCode: api.CodeInvalidRequest,
		body: api.AlertSettingsInput{Email: new("ops@example.com")}})
	c.do(oaCall{method: "PUT", path: "/api/v1/alerts/settings", token: owner, want: 400, wantCode: api.CodeInvalidRequest,
		nonConforming: true, body: map[string]any{"retention": 3}})
	c.do(oaCall{method: "PUT", path: "/api/v1/alerts/settings", token: owner, want: 200,
		body: api.AlertSettingsInput{WebhookURL: new("")}})

	c.do(oaCall{method: "GET", path: "/api/v1/alerts/history", token: owner, want: 200})
	c.do(oaCall{method: "GET", path: "/api/v1/alerts/history?limit=1", token: owner, want: 200})
	c.do(oaCall{method: "GET", path: "/api/v1/alerts/history?cursor=zz", token: owner, want: 400, wantCode: api.CodeInvalidRequest})
	c.do(oaCall{method: "DELETE", path: "/api/v1/alerts/history", token: owner, want: 204})

	// The test event: no channel is left, so nothing is queued; the
	// sixth call in a row is rate limited.
	for i := range 6 {
		want := http.StatusAccepted
		if i == 5 {
			want = http.StatusTooManyRequests
		}
		c.do(oaCall{method: "POST", path: "/api/v1/alerts/test", token: owner, want: want})
	}
}
