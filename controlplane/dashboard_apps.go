package controlplane

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// appsBody is the app list: the apps with their device counts and the
// usage against the plan's limits.
type appsBody struct {
	Apps    []store.App
	Plan    store.PlanWithPools
	Devices int64
	AtLimit bool
	Name    string
}

func (d *dashboard) appsPage(c echo.Context, status int, p *page, name string) error {
	o := currentOwner(c)
	ctx := c.Request().Context()
	apps, devices, err := d.ownerUsage(ctx, o.ID)
	if err != nil {
		return err
	}
	plan, err := d.s.store.GetPlan(ctx, o.PlanID)
	if err != nil {
		return err
	}
	p.Body = appsBody{Apps: apps, Plan: plan, Devices: devices, AtLimit: len(apps) >= plan.MaxApps, Name: name}
	return d.render(c, status, "apps.html", p)
}

func (d *dashboard) handleApps(c echo.Context) error {
	return d.appsPage(c, http.StatusOK, d.newPage(c, "Apps", "apps"), "")
}

func (d *dashboard) handleCreateApp(c echo.Context) error {
	name := formValue(c, "name")
	a, err := d.s.store.CreateApp(c.Request().Context(), currentOwner(c).ID, name)
	if err != nil {
		p := d.newPage(c, "Apps", "apps")
		status, err := p.setError("app", err, "name")
		if err != nil {
			return err
		}
		return d.appsPage(c, status, p, name)
	}
	return redirect(c, pathWithDone("/apps/"+a.ID, "app-created"))
}

// appBody is one app: its name, keys and device count, and the forms'
// values as typed. NewKey (with Replaced, after a replacement) is set on
// the page that shows a new key once.
type appBody struct {
	App      store.App
	Keys     []keyRow
	Rename   string
	Key      keyForm
	Ticket   ticketForm
	NewKey   *api.APIKeyCreated
	Replaced *api.APIKey
	BaseURL  string
	// Rotation and Cap are the rotation policy's and the registration
	// cap's values, as typed.
	Rotation string
	Cap      string
	// MaxTicketTTL is the longest a ticket works, in seconds.
	MaxTicketTTL int
}

// ownApp loads one of the signed-in owner's apps (404 for anyone else's).
func (d *dashboard) ownApp(c echo.Context) (store.App, error) {
	return d.s.store.GetApp(c.Request().Context(), currentOwner(c).ID, c.Param("app_id"))
}

func (d *dashboard) appPage(c echo.Context, status int, p *page, body appBody) error {
	a, err := d.ownApp(c)
	if err != nil {
		return err
	}
	keys, err := d.s.store.ListAPIKeys(c.Request().Context(), currentOwner(c).ID, a.ID)
	if err != nil {
		return err
	}
	body.App, body.Keys, body.MaxTicketTTL = a, keyRows(keys, d.s.now()), maxTicketTTL
	if body.Key.Kind == "" {
		body.Key.Kind = store.KeySecret
	}
	if body.Cap == "" {
		body.Cap = strconv.Itoa(a.RegistrationCap)
	}
	if body.Rename == "" {
		body.Rename = a.Name
	}
	if body.Rotation == "" {
		body.Rotation = strconv.Itoa(a.RotationDays)
	}
	p.Title = a.Name
	p.Body = body
	return d.render(c, status, "app.html", p)
}

func (d *dashboard) handleApp(c echo.Context) error {
	return d.appPage(c, http.StatusOK, d.newPage(c, "App", "apps"), appBody{})
}

func (d *dashboard) handleRenameApp(c echo.Context) error {
	name := formValue(c, "name")
	a, err := d.s.store.RenameApp(c.Request().Context(), currentOwner(c).ID, c.Param("app_id"), name)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return err
		}
		p := d.newPage(c, "App", "apps")
		status, err := p.setError("rename", err, "name")
		if err != nil {
			return err
		}
		return d.appPage(c, status, p, appBody{Rename: name})
	}
	return redirect(c, pathWithDone("/apps/"+a.ID, "app-renamed"))
}

// handleSetRotation sets the app's key rotation policy, like PUT
// /api/v1/apps/{app_id} with rotation_days: devices read it with GET
// /api/v1/app and rotate when it says so; 0 removes the policy.
func (d *dashboard) handleSetRotation(c echo.Context) error {
	typed := formValue(c, "rotation_days")
	days, err := strconv.Atoi(typed)
	if typed == "" {
		days, err = 0, nil
	}
	if err != nil {
		err = badRequest("rotation_days", "must be a whole number of days (0 for no policy)")
	} else {
		_, err = d.s.store.UpdateApp(c.Request().Context(), currentOwner(c).ID, c.Param("app_id"), store.AppUpdate{RotationDays: &days})
	}
	if errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err != nil {
		p := d.newPage(c, "App", "apps")
		status, err := p.setError("rotation", err, "rotation_days")
		if err != nil {
			return err
		}
		return d.appPage(c, status, p, appBody{Rotation: typed})
	}
	return redirect(c, pathWithDone("/apps/"+c.Param("app_id"), "rotation-saved"))
}

// confirmBody is a confirmation page for a destructive action.
type confirmBody struct {
	Heading string
	Message string
	Details []string
	Action  string
	Button  string
	Cancel  string
}

func (d *dashboard) handleDeleteAppPage(c echo.Context) error {
	a, err := d.ownApp(c)
	if err != nil {
		return err
	}
	p := d.newPage(c, "Delete "+a.Name, "apps")
	p.Body = confirmBody{
		Heading: "Delete the app “" + a.Name + "”?",
		Message: "This cannot be undone.",
		Details: []string{
			"Its API keys stop working at once.",
			deviceCountText(a.DeviceCount) + " deleted and removed from every server; their users lose their VPN connection.",
		},
		Action: "/apps/" + a.ID + "/delete",
		Button: "Delete app",
		Cancel: "/apps/" + a.ID,
	}
	return d.render(c, http.StatusOK, "confirm.html", p)
}

// deviceCountText says how many devices are affected, as a sentence start.
func deviceCountText(n int64) string {
	switch n {
	case 0:
		return "It has no devices; none are"
	case 1:
		return "Its 1 device is"
	}
	return "Its " + formatInt(n) + " devices are"
}

func (d *dashboard) handleDeleteApp(c echo.Context) error {
	o := currentOwner(c)
	if err := d.s.store.DeleteApp(c.Request().Context(), o.ID, c.Param("app_id")); err != nil {
		return err
	}
	return redirect(c, pathWithDone("/apps", "app-deleted"))
}

func (d *dashboard) handleRevokeKeyPage(c echo.Context) error {
	a, err := d.ownApp(c)
	if err != nil {
		return err
	}
	keys, err := d.s.store.ListAPIKeys(c.Request().Context(), currentOwner(c).ID, a.ID)
	if err != nil {
		return err
	}
	var key *store.APIKey
	for i := range keys {
		if keys[i].ID == c.Param("key_id") {
			key = &keys[i]
		}
	}
	if key == nil {
		return store.ErrNotFound
	}
	details := []string{
		"Requests with this key are refused from the moment you revoke it.",
		"Devices registered with it stay registered and keep working.",
	}
	if key.Kind == store.KeyPublishable {
		details = append(details, "Copies of your app that carry it can no longer register devices; to change a shipped key without that, replace it with a grace period instead.")
	}
	p := d.newPage(c, "Revoke "+key.Name, "apps")
	p.Body = confirmBody{
		Heading: "Revoke the " + key.Kind + " API key “" + key.Name + "” (" + key.Prefix + "…)?",
		Message: "This cannot be undone.",
		Details: details,
		Action:  "/apps/" + a.ID + "/keys/" + key.ID + "/revoke",
		Button:  "Revoke key",
		Cancel:  "/apps/" + a.ID,
	}
	return d.render(c, http.StatusOK, "confirm.html", p)
}

func (d *dashboard) handleRevokeKey(c echo.Context) error {
	appID := c.Param("app_id")
	if err := d.s.store.DeleteAPIKey(c.Request().Context(), currentOwner(c).ID, appID, c.Param("key_id")); err != nil {
		return err
	}
	return redirect(c, pathWithDone("/apps/"+appID, "key-revoked"))
}

// devicesBody is a page of an app's devices.
type devicesBody struct {
	App     store.App
	Devices []store.Device
	// Next is the cursor of the next page, "" on the last; Paged reports
	// whether this is not the first page.
	Next  string
	Paged bool
	Limit int
}

// handleDevices is the device browser: a page of devices in ID order,
// with the cursor of the next page.
func (d *dashboard) handleDevices(c echo.Context) error {
	a, err := d.ownApp(c)
	if err != nil {
		return err
	}
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	after, err := decodeCursor(c.QueryParam("cursor"))
	if err != nil {
		return err
	}
	devs, err := d.s.store.ListDevices(c.Request().Context(), a.ID, after, limit+1)
	if err != nil {
		return err
	}
	body := devicesBody{App: a, Paged: after != "", Limit: limit}
	if len(devs) > limit {
		devs = devs[:limit]
		body.Next = encodeCursor(devs[limit-1].ID)
	}
	body.Devices = devs
	p := d.newPage(c, "Devices of "+a.Name, "apps")
	p.Body = body
	return d.render(c, http.StatusOK, "devices.html", p)
}

// deviceBody is one device with the servers it may use. QR is the server
// whose configuration is shown as a QR code (?server=), if any.
type deviceBody struct {
	App     store.App
	Device  store.Device
	Servers []api.Server
	QR      *api.Server
}

// ownDevice loads one device of one of the owner's apps.
func (d *dashboard) ownDevice(c echo.Context) (store.App, store.Device, error) {
	a, err := d.ownApp(c)
	if err != nil {
		return store.App{}, store.Device{}, err
	}
	dev, err := d.s.store.GetDevice(c.Request().Context(), a.ID, c.Param("device_id"))
	return a, dev, err
}

func (d *dashboard) handleDevice(c echo.Context) error {
	a, dev, err := d.ownDevice(c)
	if err != nil {
		return err
	}
	servers, err := d.s.serverViews(c, currentOwner(c).ID)
	if err != nil {
		return err
	}
	body := deviceBody{App: a, Device: dev, Servers: servers}
	if id := c.QueryParam("server"); id != "" {
		for i := range servers {
			if servers[i].ID == id {
				body.QR = &servers[i]
			}
		}
		if body.QR == nil {
			return badRequest("server", "This server is not available to your apps.")
		}
	}
	p := d.newPage(c, "Device", "apps")
	p.Body = body
	return d.render(c, http.StatusOK, "device.html", p)
}

func (d *dashboard) handleDeleteDevicePage(c echo.Context) error {
	a, dev, err := d.ownDevice(c)
	if err != nil {
		return err
	}
	p := d.newPage(c, "Delete device", "apps")
	p.Body = confirmBody{
		Heading: "Delete the device " + dev.IPv4 + " of “" + a.Name + "”?",
		Message: "This cannot be undone.",
		Details: []string{
			"It is removed from every server within a second; its user loses the VPN connection.",
			"Its app can register it again, with a new key and new addresses.",
		},
		Action: "/apps/" + a.ID + "/devices/" + dev.ID + "/delete",
		Button: "Delete device",
		Cancel: "/apps/" + a.ID + "/devices/" + dev.ID,
	}
	return d.render(c, http.StatusOK, "confirm.html", p)
}

// handleDeleteDevice deletes a device like DELETE /api/v1/devices/{id}
// with the app's key: it leaves every node with the next sync.
func (d *dashboard) handleDeleteDevice(c echo.Context) error {
	a, err := d.ownApp(c)
	if err != nil {
		return err
	}
	if err := d.s.store.DeleteDevice(c.Request().Context(), a.ID, c.Param("device_id")); err != nil {
		return err
	}
	return redirect(c, pathWithDone("/apps/"+a.ID+"/devices", "device-deleted"))
}

// handleDeviceConfigDownload serves the device's wg-quick file for a server,
// or with format=qr its QR code, like the provisioning API's config route.
func (d *dashboard) handleDeviceConfigDownload(c echo.Context) error {
	_, dev, err := d.ownDevice(c)
	if err != nil {
		return err
	}
	nodeID := c.QueryParam("server")
	if nodeID == "" {
		return badRequest("server", "Choose a server on the device's page to download its configuration.")
	}
	format := c.QueryParam("format")
	if format != "" && format != "conf" && format != "qr" {
		return badRequest("format", "The format must be conf or qr.")
	}
	v, err := d.s.store.GetServer(c.Request().Context(), currentOwner(c).ID, nodeID)
	if errors.Is(err, store.ErrNotFound) {
		return badRequest("server", "This server is not available to your apps.")
	}
	if err != nil {
		return err
	}
	return writeDeviceConfig(c, d.s.wgQuickConfig(dev, v), format)
}

// serversBody is the servers the owner's plan grants.
type serversBody struct {
	Servers []api.Server
	// Explanation says why there is none.
	Explanation *api.Explanation
}

func (d *dashboard) handleServers(c echo.Context) error {
	list, err := d.s.serverList(c, currentOwner(c).ID)
	if err != nil {
		return err
	}
	p := d.newPage(c, "Servers", "servers")
	p.Body = serversBody{Servers: list.Servers, Explanation: list.Explanation}
	return d.render(c, http.StatusOK, "servers.html", p)
}
