package controlplane

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// The app page's credentials: keys of both kinds with their expiry and
// state, replacement with a grace period, a test registration ticket and
// the cap on registrations with publishable keys. Each form calls the
// method its API route calls (createKey, replaceKey, mintTicket,
// UpdateApp), so the checks and messages are the API's.

// keyRow is a key as the app page lists it.
type keyRow struct {
	api.APIKey
	// ReplacedByName is the name of the key that replaced this one.
	ReplacedByName string
}

// keyRows lists keys at now, each with the name of its replacement.
func keyRows(keys []store.APIKey, now time.Time) []keyRow {
	names := map[string]string{}
	for _, k := range keys {
		names[k.ID] = k.Name
	}
	out := make([]keyRow, len(keys))
	for i, k := range keys {
		out[i] = keyRow{APIKey: keyView(k, now)}
		if k.ReplacedBy != nil {
			out[i].ReplacedByName = names[*k.ReplacedBy]
		}
	}
	return out
}

// keyForm is the key creation form as typed.
type keyForm struct {
	Name, Kind, ExpiresAt string
}

// formTimeLayouts are what a date-and-time field accepts, in UTC: what a
// datetime-local input sends, the same with a space, and a bare date
// (its midnight).
var formTimeLayouts = []string{"2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02 15:04", "2006-01-02"}

// formTimeValue is how a time is written into such a field.
const formTimeValue = "2006-01-02T15:04"

// parseFormTime reads an optional date and time in UTC; "" is nil.
func parseFormTime(field, typed string) (*time.Time, error) {
	if typed == "" {
		return nil, nil
	}
	for _, layout := range formTimeLayouts {
		if t, err := time.ParseInLocation(layout, typed, time.UTC); err == nil {
			return &t, nil
		}
	}
	return nil, badRequest(field, "must be a date and time in UTC, such as 2030-06-30T12:00")
}

// handleCreateKey creates an API key of the kind chosen, with an optional
// expiry, and shows it once, as the answer to the POST: only its hash is
// stored, so no later page can show it.
func (d *dashboard) handleCreateKey(c echo.Context) error {
	if d.s.unverified(currentOwner(c)) {
		return errEmailUnverified
	}
	f := keyForm{Name: formValue(c, "name"), Kind: formValue(c, "kind"), ExpiresAt: formValue(c, "expires_at")}
	a, err := d.ownApp(c)
	if err != nil {
		return err
	}
	var k api.APIKeyCreated
	exp, err := parseFormTime("expires_at", f.ExpiresAt)
	if err == nil {
		k, err = d.s.createKey(c.Request().Context(), currentOwner(c).ID, a.ID, api.APIKeyInput{Name: f.Name, Kind: f.Kind, ExpiresAt: exp})
	}
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return err
		}
		p := d.newPage(c, "App", "apps")
		status, err := p.setError("key", err, "name", "kind", "expires_at")
		if err != nil {
			return err
		}
		return d.appPage(c, status, p, appBody{Key: f})
	}
	p := d.newPage(c, "New API key", "apps")
	p.Body = appBody{App: a, NewKey: &k, BaseURL: publicURL(c)}
	return d.render(c, http.StatusCreated, "key_created.html", p)
}

// ownKey loads one key of one of the owner's apps.
func (d *dashboard) ownKey(c echo.Context) (store.App, store.APIKey, error) {
	a, err := d.ownApp(c)
	if err != nil {
		return store.App{}, store.APIKey{}, err
	}
	k, err := d.s.store.GetAPIKey(c.Request().Context(), currentOwner(c).ID, a.ID, c.Param("key_id"))
	if err != nil {
		return store.App{}, store.APIKey{}, err
	}
	return a, k, nil
}

// replaceBody is the replacement form of one key.
type replaceBody struct {
	App store.App
	Key keyRow
	// Name, GraceUntil and ExpiresAt are the form's values, as typed.
	Name, GraceUntil, ExpiresAt string
	// MaxGraceDays bounds the grace period.
	MaxGraceDays int
}

// nextKeyName suggests the name of a key's replacement: "shipped" becomes
// "shipped v2", "shipped v2" becomes "shipped v3".
func nextKeyName(name string) string {
	base, n := name, 1
	if i := strings.LastIndex(name, " v"); i > 0 {
		if v, err := strconv.Atoi(name[i+2:]); err == nil && v > 0 && !strings.HasPrefix(name[i+2:], "0") {
			base, n = name[:i], v
		}
	}
	next := base + " v" + strconv.Itoa(n+1)
	if len(next) > 100 {
		return ""
	}
	return next
}

func (d *dashboard) replacePage(c echo.Context, status int, p *page, body replaceBody) error {
	a, k, err := d.ownKey(c)
	if err != nil {
		return err
	}
	keys, err := d.s.store.ListAPIKeys(c.Request().Context(), currentOwner(c).ID, a.ID)
	if err != nil {
		return err
	}
	body.App, body.MaxGraceDays = a, int(store.MaxKeyGrace/(24*time.Hour))
	for _, r := range keyRows(keys, d.s.now()) {
		if r.ID == k.ID {
			body.Key = r
		}
	}
	p.Title = "Replace " + k.Name
	p.Body = body
	return d.render(c, status, "key_replace.html", p)
}

// handleReplaceKeyPage offers the replacement of a key. A publishable key
// is in shipped apps, so its form suggests a grace period of 30 days; a
// secret key's suggests none (the old key stops at once).
func (d *dashboard) handleReplaceKeyPage(c echo.Context) error {
	_, k, err := d.ownKey(c)
	if err != nil {
		return err
	}
	body := replaceBody{Name: nextKeyName(k.Name)}
	if k.Kind == store.KeyPublishable {
		body.GraceUntil = d.s.now().Add(30 * 24 * time.Hour).UTC().Format(formTimeValue)
	}
	return d.replacePage(c, http.StatusOK, d.newPage(c, "Replace key", "apps"), body)
}

// handleReplaceKey creates the key that replaces key_id and shows it once;
// the old key keeps working until the grace period chosen ends (empty:
// it stops at once).
func (d *dashboard) handleReplaceKey(c echo.Context) error {
	if d.s.unverified(currentOwner(c)) {
		return errEmailUnverified
	}
	body := replaceBody{Name: formValue(c, "name"), GraceUntil: formValue(c, "grace_until"), ExpiresAt: formValue(c, "expires_at")}
	a, k, err := d.ownKey(c)
	if err != nil {
		return err
	}
	var r api.KeyReplaced
	grace, err := parseFormTime("grace_until", body.GraceUntil)
	var exp *time.Time
	if err == nil {
		exp, err = parseFormTime("expires_at", body.ExpiresAt)
	}
	if err == nil {
		in := api.KeyReplaceInput{Name: body.Name, GraceUntil: d.s.now(), ExpiresAt: exp}
		if grace != nil {
			in.GraceUntil = *grace
		}
		r, err = d.s.replaceKey(c.Request().Context(), currentOwner(c).ID, a.ID, k.ID, in)
	}
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return err
		}
		p := d.newPage(c, "Replace key", "apps")
		status, err := p.setError("replace", err, "name", "grace_until", "expires_at")
		if err != nil {
			return err
		}
		return d.replacePage(c, status, p, body)
	}
	p := d.newPage(c, "New API key", "apps")
	p.Body = appBody{App: a, NewKey: &r.APIKeyCreated, Replaced: &r.Replaced, BaseURL: publicURL(c)}
	return d.render(c, http.StatusCreated, "key_created.html", p)
}

// ticketForm is the test ticket form as typed.
type ticketForm struct {
	ExternalRef, Lifetime string
}

// ticketBody is a minted ticket, shown once.
type ticketBody struct {
	App     store.App
	Ticket  api.RegistrationTicket
	BaseURL string
}

// handleCreateTicket mints a registration ticket for the app, as the
// owner's backend does with a secret key, and shows it once: the owner
// can try the registration an app makes with a ticket.
func (d *dashboard) handleCreateTicket(c echo.Context) error {
	if d.s.unverified(currentOwner(c)) {
		return errEmailUnverified
	}
	f := ticketForm{ExternalRef: formValue(c, "reference"), Lifetime: formValue(c, "lifetime")}
	a, err := d.ownApp(c)
	if err != nil {
		return err
	}
	in := api.TicketInput{}
	if f.ExternalRef != "" {
		in.ExternalRef = &f.ExternalRef
	}
	if f.Lifetime != "" {
		in.TTLSeconds, err = strconv.Atoi(f.Lifetime)
		if err != nil || in.TTLSeconds == 0 {
			err = badRequest("ttl_seconds", "must be a whole number of seconds, %d to %d", minTicketTTL, maxTicketTTL)
		}
	}
	var t api.RegistrationTicket
	if err == nil {
		t, err = d.s.mintTicket(c.Request().Context(), a.ID, in)
	}
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return err
		}
		p := d.newPage(c, "App", "apps")
		status, err := p.setError("ticket", err, "external_ref=reference", "ttl_seconds=lifetime")
		if err != nil {
			return err
		}
		return d.appPage(c, status, p, appBody{Ticket: f})
	}
	p := d.newPage(c, "Test registration ticket", "apps")
	p.Body = ticketBody{App: a, Ticket: t, BaseURL: publicURL(c)}
	return d.render(c, http.StatusCreated, "ticket_created.html", p)
}

// handleSetRegistrationCap sets the app's cap on registrations per hour
// with publishable keys, like PUT /api/v1/apps/{app_id} with
// registration_cap; 0 removes the cap.
func (d *dashboard) handleSetRegistrationCap(c echo.Context) error {
	typed := formValue(c, "registration_cap")
	n, err := strconv.Atoi(typed)
	if typed == "" {
		n, err = 0, nil
	}
	if err != nil {
		err = badRequest("registration_cap", "must be a whole number of registrations per hour (0 for no cap)")
	} else {
		_, err = d.s.store.UpdateApp(c.Request().Context(), currentOwner(c).ID, c.Param("app_id"), store.AppUpdate{RegistrationCap: &n})
	}
	if errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err != nil {
		p := d.newPage(c, "App", "apps")
		status, err := p.setError("cap", err, "registration_cap")
		if err != nil {
			return err
		}
		return d.appPage(c, status, p, appBody{Cap: typed})
	}
	return redirect(c, pathWithDone("/apps/"+c.Param("app_id"), "cap-saved"))
}
