package controlplane

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

// Dashboard parity: whatever the API lets an owner, an operator or an
// owner's app do, the dashboard offers too. TestDashboardParity reads the
// served OpenAPI document and fails for an operation with neither a
// dashboard route here nor an exclusion with its reason.

// dashboardParity maps each operationId to the dashboard routes ("METHOD
// path", as registered) that offer it.
var dashboardParity = map[string][]string{
	// The account.
	"logout":       {"POST /logout"},
	"getMe":        {"GET /account"},
	"deleteMe":     {"GET /account/delete", "POST /account/delete"},
	"exportMe":     {"GET /account/export"},
	"acceptPolicy": {"GET /policy", "POST /policy"},
	"changePlan":   {"GET /plan", "POST /plan"},
	// Billing.
	"getBilling":        {"GET /plan"},
	"startCheckout":     {"POST /plan/checkout"},
	"openBillingPortal": {"POST /plan/portal"},
	// Sign-in security.
	"changePassword":     {"GET /account/security", "POST /account/password"},
	"resendVerification": {"POST /account/verify-email"},
	"startTwoFactor":     {"GET /account/security", "POST /account/2fa", "GET /account/2fa/qr"},
	"confirmTwoFactor":   {"POST /account/2fa/confirm"},
	"disableTwoFactor":   {"POST /account/2fa/disable"},
	// Apps and keys.
	"createApp":  {"POST /apps"},
	"listApps":   {"GET /apps"},
	"getApp":     {"GET /apps/:app_id"},
	"updateApp":  {"POST /apps/:app_id/rename", "POST /apps/:app_id/rotation", "POST /apps/:app_id/registration-cap"},
	"deleteApp":  {"GET /apps/:app_id/delete", "POST /apps/:app_id/delete"},
	"createKey":  {"POST /apps/:app_id/keys"},
	"listKeys":   {"GET /apps/:app_id"},
	"deleteKey":  {"GET /apps/:app_id/keys/:key_id/revoke", "POST /apps/:app_id/keys/:key_id/revoke"},
	"replaceKey": {"GET /apps/:app_id/keys/:key_id/replace", "POST /apps/:app_id/keys/:key_id/replace"},
	// A test ticket: what the owner's backend mints with a secret key.
	"createRegistrationTicket": {"POST /apps/:app_id/tickets"},
	// An owner's own servers.
	"listOwnPools":             {"GET /pools"},
	"createOwnPool":            {"POST /pools"},
	"deleteOwnPool":            {"GET /pools/:pool_id/delete", "POST /pools/:pool_id/delete"},
	"createOwnEnrollmentToken": {"POST /pools/:pool_id/enrollment-tokens"},
	"listOwnNodes":             {"GET /pools"},
	"deleteOwnNode":            {"GET /nodes/:node_id/delete", "POST /nodes/:node_id/delete"},
	// What an app's key reads and does, seen by its owner.
	"getAppPolicy":    {"GET /apps/:app_id"},
	"listServers":     {"GET /servers"},
	"listDevices":     {"GET /apps/:app_id/devices"},
	"getDevice":       {"GET /apps/:app_id/devices/:device_id"},
	"deleteDevice":    {"GET /apps/:app_id/devices/:device_id/delete", "POST /apps/:app_id/devices/:device_id/delete"},
	"getDeviceConfig": {"GET /apps/:app_id/devices/:device_id/config"},
	// Alerts.
	"getAlertSettings":   {"GET /alerts"},
	"putAlertSettings":   {"POST /alerts", "POST /alerts/secret"},
	"testAlert":          {"POST /alerts/test"},
	"listAlertHistory":   {"GET /alerts/history"},
	"deleteAlertHistory": {"GET /alerts/history/delete", "POST /alerts/history/delete"},
	// Operators.
	"adminListPlans":             {"GET /admin/plans"},
	"adminCreatePlan":            {"POST /admin/plans"},
	"adminUpdatePlan":            {"GET /admin/plans/:plan_id", "POST /admin/plans/:plan_id", "POST /admin/plans/:plan_id/retire"},
	"adminDeletePlan":            {"GET /admin/plans/:plan_id/delete", "POST /admin/plans/:plan_id/delete"},
	"adminListOwners":            {"GET /admin/owners", "GET /admin/owners/:owner_id"},
	"adminUpdateOwner":           {"POST /admin/owners/:owner_id", "POST /admin/owners/:owner_id/legal-hold"},
	"adminDeleteOwner":           {"GET /admin/owners/:owner_id/delete", "POST /admin/owners/:owner_id/delete"},
	"adminGetBilling":            {"GET /admin/owners/:owner_id"},
	"adminCompPlan":              {"POST /admin/owners/:owner_id/comp"},
	"adminEndComp":               {"POST /admin/owners/:owner_id/comp/end"},
	"adminListPools":             {"GET /admin/pools"},
	"adminCreatePool":            {"POST /admin/pools"},
	"adminDeletePool":            {"GET /admin/pools/:pool_id/delete", "POST /admin/pools/:pool_id/delete"},
	"adminCreateEnrollmentToken": {"POST /admin/pools/:pool_id/enrollment-tokens"},
	"adminListNodes":             {"GET /admin/nodes"},
	"adminUpdateNode":            {"POST /admin/nodes/:node_id/enabled"},
	"adminDeleteNode":            {"GET /admin/nodes/:node_id/delete", "POST /admin/nodes/:node_id/delete"},
}

// parityExcluded are the operations the dashboard deliberately lacks,
// each with the reason.
var parityExcluded = map[string]string{
	"registerDevice": "a device registers itself with the public key of a key pair it made; its private key never leaves it, so a device registered from a browser would have nobody holding its key",
	"rotateDevice":   "rotation replaces the key a device holds with one it made; only the device has the new private key, so only it can rotate",
	"resetDeviceToken": "a device token belongs on its device: the owner's backend resets it with the secret key and hands it to the device; " +
		"a token shown in a browser would have to be carried to the device by hand",
}

// docOperation is one operation of the served document and who calls it.
type docOperation struct {
	ID, Method, Path string
	// Audience is "owner", "operator" or "app" (an owner's API key); ""
	// for public routes and nodes.
	Audience string
}

// servedOperations reads the operations of GET /api/v1/openapi.json.
func servedOperations(t *testing.T, h *harness) []docOperation {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string                `json:"operationId"`
			Security    []map[string][]string `json:"security"`
			Role        string                `json:"x-traceless-role"`
		} `json:"paths"`
	}
	res := h.Do(request{Method: http.MethodGet, Path: "/api/v1/openapi.json"}).MustStatus(t, http.StatusOK)
	if err := json.Unmarshal(res.Body, &doc); err != nil {
		t.Fatal(err)
	}
	var out []docOperation
	for path, item := range doc.Paths {
		for method, op := range item {
			if op.OperationID == "" {
				continue // a path-level field, not an operation
			}
			o := docOperation{ID: op.OperationID, Method: strings.ToUpper(method), Path: path}
			for _, req := range op.Security {
				for scheme := range req {
					switch {
					case op.Role == "admin":
						o.Audience = "operator"
					case scheme == schemeOwnerBearer || scheme == schemeOwnerCookie:
						o.Audience = "owner"
					case scheme == schemeSecretKey || scheme == schemePublishableKey || scheme == schemeTicket || scheme == schemeDeviceToken:
						o.Audience = "app"
					}
				}
			}
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// parityGaps lists what breaks parity: an operation of an owner, an
// operator or an app with no dashboard route and no exclusion, a mapped
// route that is not registered or not a page, an exclusion without a
// reason, and rows that name no such operation.
func parityGaps(ops []docOperation, routes map[string]bool, table map[string][]string, excluded map[string]string) []string {
	var gaps []string
	covered := map[string]bool{}
	for _, op := range ops {
		if op.Audience == "" {
			continue
		}
		covered[op.ID] = true
		if reason, ok := excluded[op.ID]; ok {
			if strings.TrimSpace(reason) == "" {
				gaps = append(gaps, fmt.Sprintf("%s is excluded without a reason", op.ID))
			}
			if len(table[op.ID]) > 0 {
				gaps = append(gaps, fmt.Sprintf("%s is both excluded and mapped", op.ID))
			}
			continue
		}
		if len(table[op.ID]) == 0 {
			gaps = append(gaps, fmt.Sprintf("%s (%s %s, %s) has no dashboard page or form", op.ID, op.Method, op.Path, op.Audience))
			continue
		}
		for _, r := range table[op.ID] {
			_, path, _ := strings.Cut(r, " ")
			switch {
			case strings.HasPrefix(path, "/api/") || strings.HasPrefix(path, "/agent/"):
				gaps = append(gaps, fmt.Sprintf("%s maps to %s, which is not a dashboard route", op.ID, r))
			case !routes[r]:
				gaps = append(gaps, fmt.Sprintf("%s maps to %s, which is not registered", op.ID, r))
			}
		}
	}
	for _, m := range []map[string][]string{table} {
		for id := range m {
			if !covered[id] {
				gaps = append(gaps, fmt.Sprintf("the parity table names %s, which is no owner, operator or app operation", id))
			}
		}
	}
	for id := range excluded {
		if !covered[id] {
			gaps = append(gaps, fmt.Sprintf("the exclusions name %s, which is no owner, operator or app operation", id))
		}
	}
	sort.Strings(gaps)
	return gaps
}

// dashboardRouteSet is the set of the server's routes as "METHOD path".
func dashboardRouteSet(h *harness) map[string]bool {
	out := map[string]bool{}
	for _, r := range h.srv.echo.Routes() {
		if r.Method != echo.RouteNotFound {
			out[r.Method+" "+r.Path] = true
		}
	}
	return out
}

// TestDashboardParity: every operation of an owner, an operator or an
// owner's app in the served OpenAPI document has a dashboard page or form,
// or is in the short list of exclusions with its reason.
func TestDashboardParity(t *testing.T) {
	h := newHarness(t)
	ops := servedOperations(t, h)
	n := 0
	for _, op := range ops {
		if op.Audience != "" {
			n++
		}
	}
	if n < 40 {
		t.Fatalf("only %d owner, operator and app operations in the served document: is it read right?", n)
	}
	for _, gap := range parityGaps(ops, dashboardRouteSet(h), dashboardParity, parityExcluded) {
		t.Error(gap)
	}
	if len(parityExcluded) > 3 {
		t.Errorf("%d exclusions: the list is meant to stay short", len(parityExcluded))
	}
}

// TestDashboardParityCatches: the check reports an operation whose page is
// gone, an operation nobody mapped, a mapping to an API route, an
// exclusion without a reason and a stale row.
func TestDashboardParityCatches(t *testing.T) {
	h := newHarness(t)
	ops := servedOperations(t, h)
	routes := dashboardRouteSet(h)
	clone := func() map[string][]string {
		out := map[string][]string{}
		for k, v := range dashboardParity {
			out[k] = v
		}
		return out
	}
	if gaps := parityGaps(ops, routes, dashboardParity, parityExcluded); len(gaps) != 0 {
		t.Fatalf("the real table has gaps: %v", gaps)
	}

	// The device deletion page is gone from the dashboard.
	without := map[string]bool{}
	for r := range routes {
		without[r] = r != "POST /apps/:app_id/devices/:device_id/delete"
	}
	want := "deleteDevice maps to POST /apps/:app_id/devices/:device_id/delete, which is not registered"
	if gaps := parityGaps(ops, without, dashboardParity, parityExcluded); len(gaps) != 1 || gaps[0] != want {
		t.Errorf("a missing page: %v, want [%s]", gaps, want)
	}

	// A new operator operation nobody mapped.
	more := append(append([]docOperation(nil), ops...), docOperation{ID: "adminRotateEverything", Method: "POST", Path: "/api/v1/admin/rotate", Audience: "operator"})
	want = "adminRotateEverything (POST /api/v1/admin/rotate, operator) has no dashboard page or form"
	if gaps := parityGaps(more, routes, dashboardParity, parityExcluded); len(gaps) != 1 || gaps[0] != want {
		t.Errorf("an unmapped operation: %v, want [%s]", gaps, want)
	}

	// A mapping to the API itself is no page.
	table := clone()
	table["adminDeletePool"] = []string{"DELETE /api/v1/admin/pools/:pool_id"}
	want = "adminDeletePool maps to DELETE /api/v1/admin/pools/:pool_id, which is not a dashboard route"
	if gaps := parityGaps(ops, routes, table, parityExcluded); len(gaps) != 1 || gaps[0] != want {
		t.Errorf("an API route as page: %v, want [%s]", gaps, want)
	}

	// An exclusion must say why; a row must name a real operation.
	table = clone()
	delete(table, "adminUpdateNode")
	table["adminFrobnicate"] = []string{"GET /admin"}
	excluded := map[string]string{"adminUpdateNode": " "}
	for k, v := range parityExcluded {
		excluded[k] = v
	}
	gaps := parityGaps(ops, routes, table, excluded)
	wantAll := []string{"adminUpdateNode is excluded without a reason",
		"the parity table names adminFrobnicate, which is no owner, operator or app operation"}
	if strings.Join(gaps, "\n") != strings.Join(wantAll, "\n") {
		t.Errorf("bad exclusion and stale row: %v, want %v", gaps, wantAll)
	}
}
