package alerts

import (
	"strings"
	"testing"
	"time"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// An alert mail's Message-ID is its event's, so a retried delivery is the
// same message, and it is marked auto-generated.
func TestAlertMessage(t *testing.T) {
	ev := api.AlertEvent{ID: "evt-1", Kind: "node_offline", Detail: "no report for 90s",
		Pool: api.AlertPool{ID: "p1", Name: "Frankfurt", Region: "eu"}, OccurredAt: time.Unix(0, 0)}
	m := alertMessage("o@example.org", ev, []byte(`{"id":"evt-1"}`), time.Unix(60, 0))
	if m.MessageID != "evt-1@traceless.alerts" || !m.AutoSubmitted {
		t.Errorf("MessageID %q, AutoSubmitted %v; want the event's ID and true", m.MessageID, m.AutoSubmitted)
	}
	if m.Subject != "Traceless alert: node_offline (Frankfurt)" || !strings.Contains(m.Text, "\"id\": \"evt-1\"") {
		t.Errorf("subject %q, text:\n%s", m.Subject, m.Text)
	}
}
