package controlplane

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/controlplane/billing"
	"github.com/traceless-vpn/traceless/store"
)

// Operators' pages: plans, pools and enrollment tokens, nodes, owners.

// planForm is the plan editor's input, as typed.
type planForm struct {
	Slug, Name, MaxApps, MaxDevices, MaxOwnNodes, Price, Currency string
	Pools                                                         map[string]bool
	Retired                                                       bool
}

func planFormOf(p store.PlanWithPools) planForm {
	f := planForm{Slug: p.Slug, Name: p.Name, MaxApps: strconv.Itoa(p.MaxApps), MaxDevices: strconv.Itoa(p.MaxDevices),
		MaxOwnNodes: strconv.Itoa(p.MaxOwnNodes), Price: formatCents(p.PriceCents), Currency: p.Currency,
		Pools: map[string]bool{}, Retired: p.Retired}
	for _, id := range p.PoolIDs {
		f.Pools[id] = true
	}
	return f
}

func readPlanForm(c echo.Context) planForm {
	limitForm(c)
	f := planForm{Slug: formValue(c, "slug"), Name: formValue(c, "name"), MaxApps: formValue(c, "max_apps"),
		MaxDevices: formValue(c, "max_devices"), MaxOwnNodes: formValue(c, "max_own_nodes"), Price: formValue(c, "price"),
		Currency: strings.ToUpper(formValue(c, "currency")), Pools: map[string]bool{}, Retired: c.FormValue("retired") == "on"}
	if form, err := c.FormParams(); err == nil {
		for _, id := range form["pools"] {
			f.Pools[id] = true
		}
	}
	return f
}

// plan converts the form to a plan, or reports the first bad field.
func (f planForm) plan(id string) (store.PlanWithPools, error) {
	p := store.PlanWithPools{Plan: store.Plan{ID: id, Slug: f.Slug, Name: f.Name, Currency: f.Currency, Retired: f.Retired}}
	for _, n := range []struct {
		field, value string
		dst          *int
	}{{"max_apps", f.MaxApps, &p.MaxApps}, {"max_devices", f.MaxDevices, &p.MaxDevices}, {"max_own_nodes", f.MaxOwnNodes, &p.MaxOwnNodes}} {
		v, err := strconv.Atoi(strings.ReplaceAll(n.value, ",", ""))
		if err != nil {
			return p, badRequest(n.field, "must be a whole number")
		}
		*n.dst = v
	}
	cents, err := parseCents(f.Price)
	if err != nil {
		return p, badRequest("price_cents", "must be an amount such as 49 or 49.90")
	}
	p.PriceCents = cents
	for id := range f.Pools {
		p.PoolIDs = append(p.PoolIDs, id)
	}
	return p, nil
}

// planFields maps the store's plan fields to the form's.
var planFields = []string{"slug", "name", "max_apps", "max_devices", "max_own_nodes", "price_cents=price", "currency", "pools"}

// parseCents reads "49", "49.9" or "49.90" as cents.
func parseCents(s string) (int, error) {
	whole, frac, hasFrac := strings.Cut(strings.TrimSpace(s), ".")
	if whole == "" || len(whole) > 9 || (hasFrac && (frac == "" || len(frac) > 2)) {
		return 0, errors.New("bad amount")
	}
	for _, r := range whole + frac {
		if r < '0' || r > '9' {
			return 0, errors.New("bad amount")
		}
	}
	w, _ := strconv.Atoi(whole)
	f := 0
	if hasFrac {
		f, _ = strconv.Atoi((frac + "0")[:2])
	}
	return w*100 + f, nil
}

// adminPlansBody is the plan catalogue with the editor.
type adminPlansBody struct {
	Plans     []adminPlanRow
	Pools     []store.Pool
	Form      planForm
	PoolNames map[string]string
	// Plan is the plan being edited (edit page only).
	Plan store.PlanWithPools
}

// adminPlanRow is a plan with its pools' names.
type adminPlanRow struct {
	store.PlanWithPools
	PoolNames []string
}

func (d *dashboard) adminPlansBody(ctx context.Context, f planForm) (adminPlansBody, error) {
	plans, err := d.s.store.ListPlans(ctx, true)
	if err != nil {
		return adminPlansBody{}, err
	}
	pools, err := d.s.store.ListPools(ctx, "")
	if err != nil {
		return adminPlansBody{}, err
	}
	names := map[string]string{}
	for _, p := range pools {
		names[p.ID] = p.Name
	}
	body := adminPlansBody{Pools: pools, Form: f, PoolNames: names}
	for _, p := range plans {
		row := adminPlanRow{PlanWithPools: p}
		for _, id := range p.PoolIDs {
			row.PoolNames = append(row.PoolNames, names[id])
		}
		body.Plans = append(body.Plans, row)
	}
	return body, nil
}

func (d *dashboard) adminPlansPage(c echo.Context, status int, p *page, f planForm) error {
	body, err := d.adminPlansBody(c.Request().Context(), f)
	if err != nil {
		return err
	}
	p.Body = body
	return d.render(c, status, "admin_plans.html", p)
}

func (d *dashboard) handleAdminPlans(c echo.Context) error {
	return d.adminPlansPage(c, http.StatusOK, d.newPage(c, "Plans", "admin-plans"),
		planForm{Currency: "EUR", MaxOwnNodes: "0", Pools: map[string]bool{}})
}

func (d *dashboard) handleAdminCreatePlan(c echo.Context) error {
	f := readPlanForm(c)
	p, err := f.plan("")
	if err == nil {
		_, err = d.s.store.CreatePlan(c.Request().Context(), p)
	}
	if err != nil {
		pg := d.newPage(c, "Plans", "admin-plans")
		status, err := pg.setError("plan", err, planFields...)
		if err != nil {
			return err
		}
		return d.adminPlansPage(c, status, pg, f)
	}
	return redirect(c, pathWithDone("/admin/plans", "plan-created"))
}

func (d *dashboard) adminPlanPage(c echo.Context, status int, p *page, f *planForm) error {
	ctx := c.Request().Context()
	plan, err := d.s.store.GetPlan(ctx, c.Param("plan_id"))
	if err != nil {
		return err
	}
	if f == nil {
		pf := planFormOf(plan)
		f = &pf
	}
	body, err := d.adminPlansBody(ctx, *f)
	if err != nil {
		return err
	}
	body.Plan = plan
	p.Title = "Edit plan " + plan.Name
	p.Body = body
	return d.render(c, status, "admin_plan.html", p)
}

func (d *dashboard) handleAdminPlan(c echo.Context) error {
	return d.adminPlanPage(c, http.StatusOK, d.newPage(c, "Edit plan", "admin-plans"), nil)
}

func (d *dashboard) handleAdminUpdatePlan(c echo.Context) error {
	f := readPlanForm(c)
	ctx := c.Request().Context()
	if _, err := d.s.store.GetPlan(ctx, c.Param("plan_id")); err != nil {
		return err
	}
	p, err := f.plan(c.Param("plan_id"))
	if err == nil {
		if _, err = d.s.store.UpdatePlan(ctx, p); err == nil {
			return redirect(c, pathWithDone("/admin/plans", "plan-saved"))
		}
	}
	pg := d.newPage(c, "Edit plan", "admin-plans")
	status, err := pg.setError("plan", err, planFields...)
	if err != nil {
		return err
	}
	return d.adminPlanPage(c, status, pg, &f)
}

// handleAdminRetirePlan retires a plan (retired=true) or offers it again.
func (d *dashboard) handleAdminRetirePlan(c echo.Context) error {
	ctx := c.Request().Context()
	p, err := d.s.store.GetPlan(ctx, c.Param("plan_id"))
	if err != nil {
		return err
	}
	p.Retired = formValue(c, "retired") == "true"
	if _, err := d.s.store.UpdatePlan(ctx, p); err != nil {
		return err
	}
	if p.Retired {
		return redirect(c, pathWithDone("/admin/plans", "plan-retired"))
	}
	return redirect(c, pathWithDone("/admin/plans", "plan-restored"))
}

// poolForm is the new pool form as typed; Plans holds the IDs of the
// plans ticked to include the pool.
type poolForm struct {
	Name, Region, Country, City string
	Plans                       map[string]bool
}

// adminPoolsBody is the pool list with the new pool form.
type adminPoolsBody struct {
	Pools []adminPoolRow
	Form  poolForm
	// Plans are the plans the form offers to include the new pool in.
	Plans []store.PlanWithPools
	// InNoPlan counts the shared pools that no plan includes.
	InNoPlan int
}

// adminPoolRow is a pool with its node count and the names of the plans
// that include it.
type adminPoolRow struct {
	store.Pool
	Nodes     int
	PlanNames []string
	// InNoPlan flags a shared pool that no plan includes: it serves nobody.
	InNoPlan bool
}

// poolInNoPlanSet returns the IDs of the shared pools no plan includes.
func (d *dashboard) poolInNoPlanSet(ctx context.Context) (map[string]bool, error) {
	pools, err := d.s.store.ListPools(ctx, "")
	if err != nil {
		return nil, err
	}
	plans, err := d.s.store.PoolPlans(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, p := range pools {
		if poolView(p, plans[p.ID]).InNoPlan {
			out[p.ID] = true
		}
	}
	return out, nil
}

func (d *dashboard) adminPoolsPage(c echo.Context, status int, p *page, f poolForm) error {
	ctx := c.Request().Context()
	pools, err := d.s.store.ListPools(ctx, "")
	if err != nil {
		return err
	}
	nodes, err := d.s.store.ListNodes(ctx, "")
	if err != nil {
		return err
	}
	plans, err := d.s.store.ListPlans(ctx, true)
	if err != nil {
		return err
	}
	count := map[string]int{}
	for _, n := range nodes {
		count[n.PoolID]++
	}
	names := map[string][]string{}
	for _, pl := range plans {
		for _, id := range pl.PoolIDs {
			names[id] = append(names[id], pl.Name)
		}
	}
	body := adminPoolsBody{Form: f, Plans: plans}
	for _, pl := range pools {
		row := adminPoolRow{Pool: pl, Nodes: count[pl.ID], InNoPlan: pl.OwnerID == nil && len(names[pl.ID]) == 0}
		if pl.OwnerID == nil {
			row.PlanNames = names[pl.ID]
		}
		if row.InNoPlan {
			body.InNoPlan++
		}
		body.Pools = append(body.Pools, row)
	}
	p.Body = body
	return d.render(c, status, "admin_pools.html", p)
}

func (d *dashboard) handleAdminPools(c echo.Context) error {
	return d.adminPoolsPage(c, http.StatusOK, d.newPage(c, "Pools", "admin-pools"), poolForm{Plans: map[string]bool{}})
}

func (d *dashboard) handleAdminCreatePool(c echo.Context) error {
	f := poolForm{Name: formValue(c, "name"), Region: formValue(c, "region"),
		Country: strings.ToUpper(formValue(c, "country")), City: formValue(c, "city"), Plans: map[string]bool{}}
	var planIDs []string
	if form, err := c.FormParams(); err == nil {
		for _, id := range form["plans"] {
			if !f.Plans[id] {
				f.Plans[id] = true
				planIDs = append(planIDs, id)
			}
		}
	}
	_, err := d.s.store.CreateSharedPool(c.Request().Context(),
		store.Pool{Name: f.Name, Region: f.Region, Country: f.Country, City: f.City}, planIDs)
	if err != nil {
		if errors.Is(err, store.ErrConflict) {
			err = badRequest("name", "is taken by another pool")
		}
		p := d.newPage(c, "Pools", "admin-pools")
		status, err := p.setError("pool", err, "name", "region", "country", "city", "plans")
		if err != nil {
			return err
		}
		return d.adminPoolsPage(c, status, p, f)
	}
	if len(planIDs) == 0 {
		return redirect(c, pathWithDone("/admin/pools", "pool-created-no-plan"))
	}
	return redirect(c, pathWithDone("/admin/pools", "pool-created"))
}

// enrollBody is the page that shows an enrollment token once, with the
// commands that start a node with it (api.EnrollCommand, as the CLI
// prints them): the credential kept on disk, or on a tmpfs.
type enrollBody struct {
	Pool         store.Pool
	Token        string
	ExpiresAt    time.Time
	Command      string
	TmpfsCommand string
	// The values the page explains next to the commands.
	Placeholder, CredentialFile, TmpfsCredentialFile, TmpfsConsequence, TokenEnv string
	// InNoPlan warns that no plan includes the pool: the node would serve
	// nobody.
	InNoPlan bool
	// PoolsPath and NodesPath are where the page leads back to: the
	// operators' pages, or an owner's own servers.
	PoolsPath, NodesPath string
}

func newEnrollBody(c echo.Context, pool store.Pool, tok string, exp time.Time) enrollBody {
	return enrollBody{Pool: pool, Token: tok, ExpiresAt: exp,
		Command:             api.EnrollCommand(publicURL(c), tok, "", api.AgentCredentialFile),
		TmpfsCommand:        api.EnrollCommand(publicURL(c), tok, "", api.AgentTmpfsCredentialFile),
		Placeholder:         api.EndpointPlaceholder,
		CredentialFile:      api.AgentCredentialFile,
		TmpfsCredentialFile: api.AgentTmpfsCredentialFile,
		TmpfsConsequence:    api.AgentTmpfsConsequence,
		TokenEnv:            api.EnrollTokenEnv,
		PoolsPath:           "/admin/pools",
		NodesPath:           "/admin/nodes"}
}

// issueEnrollmentToken creates a one-use token for pool, like the API,
// and returns the page that shows it once.
func (d *dashboard) issueEnrollmentToken(c echo.Context, pool store.Pool) (enrollBody, error) {
	tok, exp, err := d.s.newEnrollmentToken(c.Request().Context(), pool.ID)
	if err != nil {
		return enrollBody{}, err
	}
	return newEnrollBody(c, pool, tok, exp), nil
}

// publicURL is the control plane's address as the browser reached it.
func publicURL(c echo.Context) string {
	return c.Scheme() + "://" + c.Request().Host
}

// handleAdminEnrollmentToken issues a one-use token, like the API, and
// shows it once with the agent's command line.
func (d *dashboard) handleAdminEnrollmentToken(c echo.Context) error {
	ctx := c.Request().Context()
	pool, err := d.s.store.GetPool(ctx, c.Param("pool_id"))
	if err != nil {
		return err
	}
	body, err := d.issueEnrollmentToken(c, pool)
	if err != nil {
		return err
	}
	inNoPlan, err := d.poolInNoPlanSet(ctx)
	if err != nil {
		return err
	}
	p := d.newPage(c, "Enrollment token", "admin-pools")
	body.InNoPlan = inNoPlan[pool.ID]
	p.Body = body
	return d.render(c, http.StatusCreated, "enroll_token.html", p)
}

// postureCheck is one privacy posture check as shown.
type postureCheck struct {
	Label string
	OK    bool
}

// postureLabels names the checks of api.Posture by JSON name; a check
// without a label is shown by its JSON name.
var postureLabels = map[string]string{
	"conntrack_accounting_off": "Conntrack accounting off",
	"conntrack_timestamps_off": "Conntrack timestamps off",
	"no_log_rules":             "No packet-logging rules",
	"swap_off":                 "Swap off or encrypted",
	"not_dumpable":             "Agent not dumpable",
	"core_size_zero":           "Core dumps disabled",
	"no_state_on_disk":         "No state on disk",
}

// postureChecks lists every boolean field of p, in declaration order, so
// a check added to api.Posture shows up without a change here.
func postureChecks(p api.Posture) []postureCheck {
	v := reflect.ValueOf(p)
	var out []postureCheck
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		if f.Type.Kind() != reflect.Bool {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		label := postureLabels[name]
		if label == "" {
			label = strings.ReplaceAll(name, "_", " ")
		}
		out = append(out, postureCheck{Label: label, OK: v.Field(i).Bool()})
	}
	return out
}

// nodeRow is a node as the nodes page shows it.
type nodeRow struct {
	api.Node
	Checks   []postureCheck
	Failed   int
	Reported bool
	// PoolInNoPlan flags a node whose shared pool no plan includes: it
	// serves nobody.
	PoolInNoPlan bool
}

// adminNodesBody is the node list.
type adminNodesBody struct {
	Nodes    []nodeRow
	Online   int
	Revision int64
	// Full are the pools nearing their smallest node's peer limit.
	Full []poolFull
}

// poolFull is a pool whose device count nears its smallest node's limit.
type poolFull struct {
	Pool string
	api.PoolCapacity
}

// nodeRows lists the nodes of ownerID's dedicated pools (every node for
// ""), each with its last report and posture checks, and flags those whose
// shared pool is in no plan.
func (d *dashboard) nodeRows(ctx context.Context, ownerID string) (adminNodesBody, error) {
	nodes, err := d.s.store.ListNodes(ctx, ownerID)
	if err != nil {
		return adminNodesBody{}, err
	}
	inNoPlan, err := d.poolInNoPlanSet(ctx)
	if err != nil {
		return adminNodesBody{}, err
	}
	body := adminNodesBody{Revision: d.s.hub.current()}
	caps := d.s.poolCapacities(nodes)
	warned := map[string]bool{}
	for _, n := range nodes {
		if c := caps[n.PoolID]; c != nil && c.Warning && !warned[n.PoolID] {
			warned[n.PoolID] = true
			body.Full = append(body.Full, poolFull{Pool: n.Pool.Name, PoolCapacity: *c})
		}
	}
	for _, n := range nodes {
		row := nodeRow{Node: d.s.nodeView(n), PoolInNoPlan: inNoPlan[n.PoolID]}
		if row.Status != nil {
			row.Reported = true
			row.Checks = postureChecks(row.Status.Posture)
			for _, ch := range row.Checks {
				if !ch.OK {
					row.Failed++
				}
			}
		}
		if row.Online {
			body.Online++
		}
		body.Nodes = append(body.Nodes, row)
	}
	return body, nil
}

func (d *dashboard) handleAdminNodes(c echo.Context) error {
	body, err := d.nodeRows(c.Request().Context(), "")
	if err != nil {
		return err
	}
	p := d.newPage(c, "Nodes", "admin-nodes")
	p.Body = body
	return d.render(c, http.StatusOK, "admin_nodes.html", p)
}

// ownerRow is an account in the operators' list.
type ownerRow struct {
	store.Owner
	PlanName string
	// Billing is the subscription's status, "comped" or "" (none).
	Billing string
	// PaymentRequired: held to the free plan's limits.
	PaymentRequired bool
	// NoSubscription: with Stripe, on a plan with a price without a live
	// subscription or a comp (there before billing went through Stripe).
	NoSubscription bool
}

// adminOwnersBody is a page of accounts.
type adminOwnersBody struct {
	Owners []ownerRow
	Next   string
	Paged  bool
	Limit  int
}

func (d *dashboard) planNames(ctx context.Context) (map[string]string, []store.PlanWithPools, error) {
	plans, err := d.s.store.ListPlans(ctx, true)
	if err != nil {
		return nil, nil, err
	}
	names := map[string]string{}
	for _, p := range plans {
		names[p.ID] = p.Name
	}
	return names, plans, nil
}

func (d *dashboard) handleAdminOwners(c echo.Context) error {
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	cursor := c.QueryParam("cursor")
	if cursor != "" && !uuidRE.MatchString(cursor) {
		return badRequest("cursor", "is not a cursor this server returned")
	}
	ctx := c.Request().Context()
	owners, err := d.s.store.ListOwners(ctx, cursor, limit+1)
	if err != nil {
		return err
	}
	names, plans, err := d.planNames(ctx)
	if err != nil {
		return err
	}
	priced := map[string]bool{}
	for _, p := range plans {
		priced[p.ID] = p.PriceCents > 0
	}
	body := adminOwnersBody{Paged: cursor != "", Limit: limit}
	if len(owners) > limit {
		owners = owners[:limit]
		body.Next = owners[limit-1].ID
	}
	ids := make([]string, len(owners))
	for i, o := range owners {
		ids[i] = o.ID
	}
	bills, err := d.s.store.ListBilling(ctx, ids)
	if err != nil {
		return err
	}
	for _, o := range owners {
		row := ownerRow{Owner: o, PlanName: names[o.PlanID]}
		b, ok := bills[o.ID]
		if ok {
			row.Billing, row.PaymentRequired = b.SubscriptionStatus, b.LimitPlanID != nil
			if b.CompReason != nil {
				row.Billing = "comped"
			}
		}
		row.NoSubscription = d.s.billing.stripe != nil && priced[o.PlanID] && b.CompReason == nil && !billing.Live(b.SubscriptionStatus)
		body.Owners = append(body.Owners, row)
	}
	p := d.newPage(c, "Owners", "admin-owners")
	p.Body = body
	return d.render(c, http.StatusOK, "admin_owners.html", p)
}

// adminOwnerBody is one account with the operator's forms.
type adminOwnerBody struct {
	Owner   store.Owner
	Plan    string
	Plans   []store.PlanWithPools
	Apps    int
	Devices int64
	Self    bool
	Reason  string
	// Billing is the account's billing state; CompPlan and CompReason
	// refill the comp form after an error.
	Billing              api.Billing
	CompPlan, CompReason string
}

func (d *dashboard) adminOwnerPage(c echo.Context, status int, p *page, reason string) error {
	ctx := c.Request().Context()
	o, err := d.s.store.GetOwner(ctx, c.Param("owner_id"))
	if err != nil {
		return err
	}
	names, plans, err := d.planNames(ctx)
	if err != nil {
		return err
	}
	apps, devices, err := d.ownerUsage(ctx, o.ID)
	if err != nil {
		return err
	}
	bill, err := d.s.billingView(ctx, o)
	if err != nil {
		return err
	}
	p.Title = o.Email
	p.Body = adminOwnerBody{Owner: o, Plan: names[o.PlanID], Plans: plans, Apps: len(apps), Devices: devices,
		Self: o.ID == currentOwner(c).ID, Reason: reason, Billing: bill,
		CompPlan: formValue(c, "comp_plan"), CompReason: formValue(c, "comp_reason")}
	return d.render(c, status, "admin_owner.html", p)
}

func (d *dashboard) handleAdminOwner(c echo.Context) error {
	return d.adminOwnerPage(c, http.StatusOK, d.newPage(c, "Owner", "admin-owners"), "")
}

// handleAdminUpdateOwner changes an account's status and plan.
func (d *dashboard) handleAdminUpdateOwner(c echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("owner_id")
	o, err := d.s.store.GetOwner(ctx, id)
	if err != nil {
		return err
	}
	status, slug := formValue(c, "status"), formValue(c, "plan")
	var u store.OwnerUpdate
	if status != o.Status {
		u.Status = &status
	}
	if cur, err := d.s.store.GetPlan(ctx, o.PlanID); err != nil {
		return err
	} else if slug != cur.Slug {
		u.PlanSlug = &slug
	}
	switch {
	case id == currentOwner(c).ID && u.Status != nil:
		err = badRequest("status", "cannot be changed for your own account")
	case u.Status == nil && u.PlanSlug == nil:
		return redirect(c, pathWithDone("/admin/owners/"+id, "owner-saved"))
	default:
		if o, err = d.s.store.UpdateOwner(ctx, id, u); err == nil {
			return redirect(c, pathWithDone("/admin/owners/"+id, "owner-saved"))
		}
	}
	p := d.newPage(c, "Owner", "admin-owners")
	if errors.Is(err, store.ErrPlanLimit) {
		err = apiError(http.StatusForbidden, api.CodePlanLimit, "This account uses more apps or devices than that plan allows.")
	}
	st, err := p.setError("owner", err, "status", "plan")
	if err != nil {
		return err
	}
	return d.adminOwnerPage(c, st, p, "")
}

// handleAdminLegalHold sets (action=set, with a reason) or releases
// (action=release) an account's legal hold.
func (d *dashboard) handleAdminLegalHold(c echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("owner_id")
	reason := formValue(c, "reason")
	u := store.OwnerUpdate{}
	var flash string
	switch formValue(c, "action") {
	case "set":
		u.LegalHold, flash = &reason, "hold-set"
	case "release":
		u.ClearLegalHold, flash = true, "hold-released"
	default:
		return badRequest("action", "The action must be set or release.")
	}
	_, err := d.s.store.UpdateOwner(ctx, id, u)
	if errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err != nil {
		p := d.newPage(c, "Owner", "admin-owners")
		st, err := p.setError("hold", err, "legal_hold=reason")
		if err != nil {
			return err
		}
		return d.adminOwnerPage(c, st, p, reason)
	}
	return redirect(c, pathWithDone("/admin/owners/"+id, flash))
}
