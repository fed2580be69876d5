package main

import (
	"net/http"
	"testing"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// TestMainAlertPrivateTargets: by default an owner cannot point alert
// webhooks at loopback or private addresses; with
// --alert-allow-private-targets (or its variable) the owner can, over
// http:// too, while link-local addresses stay refused.
func TestMainAlertPrivateTargets(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		env   map[string]string
		allow bool
	}{
		{"default", nil, nil, false},
		{"flag", []string{"--alert-allow-private-targets"}, nil, true},
		{"environment", nil, map[string]string{"TRACELESS_ALERT_ALLOW_PRIVATE_TARGETS": "true"}, true},
		{"flag off over environment", []string{"--alert-allow-private-targets=false"}, map[string]string{"TRACELESS_ALERT_ALLOW_PRIVATE_TARGETS": "true"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := MustRunMain(t, newInstance(t).args(tc.args...), tc.env)
			if m.Config.AlertAllowPrivateTargets != tc.allow {
				t.Fatalf("AlertAllowPrivateTargets = %v", m.Config.AlertAllowPrivateTargets)
			}
			res, body := m.do(t, http.MethodPost, "/api/v1/auth/signup", "", api.Credentials{Email: "laptop@example.com", Password: operatorPassword})
			mustStatus(t, res, body, http.StatusCreated)
			tok := mustAuth(t, body).Token
			for _, target := range []string{"http://127.0.0.1:9000/hook", "http://192.168.1.20:8080/hook", "https://[fd00::5]/hook"} {
				res, body := m.do(t, http.MethodPut, "/api/v1/alerts/settings", tok, api.AlertSettingsInput{WebhookURL: &target})
				want := http.StatusBadRequest
				if tc.allow {
					want = http.StatusOK
				}
				mustStatus(t, res, body, want)
			}
			meta := "https://169.254.169.254/latest"
			res, body = m.do(t, http.MethodPut, "/api/v1/alerts/settings", tok, api.AlertSettingsInput{WebhookURL: &meta})
			mustStatus(t, res, body, http.StatusBadRequest)
			m.MustClose(t)
		})
	}
}
