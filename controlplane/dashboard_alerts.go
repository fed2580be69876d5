package controlplane

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// The owner's alert pages: settings (webhook, email, kinds, opt-in history
// and its retention), each channel's delivery outcome, a test event, the
// history. They take the same path as /api/v1/alerts (alerts.go).

// alertKindLabels names the alert kinds for people.
var alertKindLabels = map[string]string{
	api.AlertNodeOffline:      "A node goes offline",
	api.AlertNodeOnline:       "A node is back online",
	api.AlertPostureRegressed: "A privacy posture check starts failing",
	api.AlertPostureRecovered: "A failing posture check passes again",
	api.AlertSyncLag:          "A node lags behind changes",
	api.AlertSyncRecovered:    "A lagging node caught up",
	api.AlertPoolDown:         "No node of a pool is online",
	api.AlertPoolUp:           "A pool is back up",
}

// alertKindChoice is one event kind checkbox.
type alertKindChoice struct {
	Kind, Label string
	Checked     bool
}

// alertForm is the settings form as typed.
type alertForm struct {
	WebhookURL, Email, RetentionDays string
	Events                           map[string]bool
	History                          bool
}

// alertsBody is the alert settings page.
type alertsBody struct {
	Settings api.AlertSettings
	Form     alertForm
	Kinds    []alertKindChoice
	// NewSecret is the webhook secret made by this request, shown once.
	NewSecret string
}

func alertFormOf(s api.AlertSettings) alertForm {
	f := alertForm{WebhookURL: s.WebhookURL, Email: s.Email, RetentionDays: strconv.Itoa(s.RetentionDays),
		History: s.History, Events: map[string]bool{}}
	for _, k := range s.Events {
		f.Events[k] = true
	}
	return f
}

func (d *dashboard) alertsPage(c echo.Context, status int, p *page, f *alertForm, newSecret string) error {
	a, _, err := d.s.alertSettings(c.Request().Context(), currentOwner(c).ID)
	if err != nil {
		return err
	}
	view := d.s.alertSettingsView(c.Request().Context(), a, newSecret)
	if f == nil {
		ff := alertFormOf(view)
		f = &ff
	}
	body := alertsBody{Settings: view, Form: *f, NewSecret: newSecret}
	for _, k := range api.AlertKinds {
		body.Kinds = append(body.Kinds, alertKindChoice{Kind: k, Label: alertKindLabels[k], Checked: f.Events[k]})
	}
	p.Body = body
	return d.render(c, status, "alerts.html", p)
}

func (d *dashboard) handleAlerts(c echo.Context) error {
	return d.alertsPage(c, http.StatusOK, d.newPage(c, "Alerts", "alerts"), nil, "")
}

// handleSaveAlerts stores the settings form, like PUT
// /api/v1/alerts/settings with every field. A first webhook gets its
// signing secret, shown once on the page that answers the POST.
func (d *dashboard) handleSaveAlerts(c echo.Context) error {
	limitForm(c)
	f := alertForm{WebhookURL: formValue(c, "webhook_url"), Email: formValue(c, "email"),
		RetentionDays: formValue(c, "retention_days"), History: c.FormValue("history") == "on", Events: map[string]bool{}}
	events := []string{}
	if form, err := c.FormParams(); err == nil {
		for _, k := range form["events"] {
			if !f.Events[k] {
				f.Events[k] = true
				events = append(events, k)
			}
		}
	}
	in := api.AlertSettingsInput{WebhookURL: &f.WebhookURL, Events: &events, History: &f.History}
	if d.s.alerts.EmailEnabled() {
		in.Email = &f.Email
	}
	var err error
	days, convErr := strconv.Atoi(strings.ReplaceAll(f.RetentionDays, ",", ""))
	if convErr != nil {
		err = badRequest("retention_days", "must be a whole number of days")
	} else {
		in.RetentionDays = &days
		var secret string
		if _, secret, err = d.s.updateAlertSettings(c.Request().Context(), currentOwner(c).ID, in); err == nil {
			if secret != "" {
				p := d.newPage(c, "Alerts", "alerts")
				p.Flash = flashes["alerts-saved"]
				return d.alertsPage(c, http.StatusOK, p, nil, secret)
			}
			return redirect(c, pathWithDone("/alerts", "alerts-saved"))
		}
	}
	p := d.newPage(c, "Alerts", "alerts")
	status, err := p.setError("alerts", err, "webhook_url", "email", "events", "retention_days")
	if err != nil {
		return err
	}
	return d.alertsPage(c, status, p, &f, "")
}

// handleRotateAlertSecret replaces the webhook secret and shows the new
// one once.
func (d *dashboard) handleRotateAlertSecret(c echo.Context) error {
	_, secret, err := d.s.updateAlertSettings(c.Request().Context(), currentOwner(c).ID, api.AlertSettingsInput{RotateSecret: true})
	if err != nil {
		return err
	}
	p := d.newPage(c, "Alerts", "alerts")
	p.Flash = flashes["secret-rotated"]
	return d.alertsPage(c, http.StatusOK, p, nil, secret)
}

// handleAlertTestForm queues a test event for each channel, like POST
// /api/v1/alerts/test; the page then follows its delivery.
func (d *dashboard) handleAlertTestForm(c echo.Context) error {
	queued, err := d.s.sendAlertTest(c)
	if err != nil {
		return err
	}
	if len(queued) == 0 {
		return redirect(c, pathWithDone("/alerts", "alert-test-none"))
	}
	return redirect(c, pathWithDone("/alerts", "alert-test-queued"))
}

// alertHistoryBody is a page of the monitoring history.
type alertHistoryBody struct {
	History api.AlertHistory
	Paged   bool
	Limit   int
}

func (d *dashboard) handleAlertHistory(c echo.Context) error {
	h, err := d.s.alertHistoryPage(c)
	if err != nil {
		return err
	}
	limit, _ := pageLimit(c)
	p := d.newPage(c, "Monitoring history", "alerts")
	p.Body = alertHistoryBody{History: h, Paged: c.QueryParam("cursor") != "", Limit: limit}
	return d.render(c, http.StatusOK, "alert_history.html", p)
}

func (d *dashboard) handleDeleteAlertHistoryPage(c echo.Context) error {
	p := d.newPage(c, "Delete the monitoring history", "alerts")
	p.Body = confirmBody{
		Heading: "Delete your whole monitoring history?",
		Message: "This cannot be undone.",
		Details: []string{"Every stored status change goes at once.",
			"The history stays on: new changes are stored again. Turn it off in the alert settings to stop that."},
		Action: "/alerts/history/delete",
		Button: "Delete history",
		Cancel: "/alerts/history",
	}
	return d.render(c, http.StatusOK, "confirm.html", p)
}

// handleDeleteAlertHistoryForm deletes the history, like DELETE
// /api/v1/alerts/history.
func (d *dashboard) handleDeleteAlertHistoryForm(c echo.Context) error {
	if _, err := d.s.store.DeleteAlertHistory(c.Request().Context(), currentOwner(c).ID); err != nil {
		return err
	}
	return redirect(c, pathWithDone("/alerts/history", "history-deleted"))
}
