package mail

import (
	"strings"
	"testing"
	"time"
)

func TestFormatHeaders(t *testing.T) {
	date := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	plain := string(Format("noreply@example.org", Message{To: "o@example.org", Subject: "Verify", Text: "hi\n", Date: date}))
	if !strings.Contains(plain, "@example.org>\r\n") || strings.Contains(plain, "Auto-Submitted") {
		t.Errorf("sign-in mail: want a random Message-ID in the sender's domain and no Auto-Submitted:\n%s", plain)
	}
	again := string(Format("noreply@example.org", Message{To: "o@example.org", Subject: "Verify", Text: "hi\n", Date: date}))
	if plain == again {
		t.Error("two messages got the same random Message-ID")
	}
	alert := string(Format("a@example.org", Message{To: "o@example.org", Subject: "x", Text: "y", Date: date,
		MessageID: "ev1@traceless.alerts\r\nBcc: x@evil.example", AutoSubmitted: true}))
	for _, want := range []string{"Message-ID: <ev1@traceless.alerts  Bcc: x@evil.example>\r\n", "Auto-Submitted: auto-generated\r\n\r\n"} {
		if !strings.Contains(alert, want) {
			t.Errorf("alert mail lacks %q:\n%s", want, alert)
		}
	}
}
