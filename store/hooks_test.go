package store

import (
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"gorm.io/gorm"
)

// methodKind classifies an exported method of Store for
// TestCommitHooksSeeEveryWrite.
type methodKind int

const (
	// read must leave the database as it was and call no commit hook.
	read methodKind = iota
	// write must change the database and, once committed, hand the commit
	// hooks a Change carrying every revision it committed.
	write
	// notData manages connections or announcements and is not called.
	notData
)

// methodCall says how to call one method: args prepares what the call
// needs in f's store and returns the arguments after the context.
type methodCall struct {
	kind methodKind
	args func(f *hookFixture) []any
}

func none(*hookFixture) []any { return nil }

// storeMethods lists every exported method of *Store. A method missing
// here fails TestCommitHooksSeeEveryWrite: classify it, and give a write
// arguments under which it changes something.
var storeMethods = map[string]methodCall{
	// Connections, announcements, hooks.
	"Checkpoint": {kind: notData},
	"Close":      {kind: notData},
	"Lead":       {kind: notData},
	"Listen":     {kind: notData},
	"Notify":     {kind: notData},
	"OnCommit":   {kind: notData},

	// Reads.
	"AlertSubscribers": {read, func(f *hookFixture) []any { return []any{[]string{f.shared.ID}} }},
	"AuthenticateAPIKey": {read, func(f *hookFixture) []any {
		o := f.owner()
		return []any{f.apiKey(o, f.app(o)).Hash}
	}},
	"AuthenticateTicket": {read, func(f *hookFixture) []any { return []any{f.ticket(f.app(f.owner()), time.Now().Add(time.Minute))} }},
	"AuthenticateDeviceToken": {read, func(f *hookFixture) []any {
		a := f.app(f.owner())
		d := f.device(a)
		h := randomHex(f.t, 32)
		if err := f.s.ResetDeviceToken(f.ctx, a.ID, d.ID, h); err != nil {
			f.t.Fatal(err)
		}
		return []any{h}
	}},
	"GetAPIKey": {read, func(f *hookFixture) []any {
		o := f.owner()
		a := f.app(o)
		return []any{o.ID, a.ID, f.apiKey(o, a).ID}
	}},
	"AlertQueues": {read, func(f *hookFixture) []any {
		o := f.owner()
		f.outbox(o)
		return []any{o.ID}
	}},
	"CheckSchema":    {read, none},
	"CountAdmins":    {read, none},
	"CountPoolPeers": {read, func(f *hookFixture) []any { return []any{f.shared.ID} }},
	"Driver":         {read, none},
	"ExportOwner":    {read, func(f *hookFixture) []any { return []any{f.owner().ID} }},
	"GetAlertSettings": {read, func(f *hookFixture) []any {
		o := f.owner()
		f.keepHistory(o)
		return []any{o.ID}
	}},
	"GetApp": {read, func(f *hookFixture) []any { o := f.owner(); return []any{o.ID, f.app(o).ID} }},
	"GetDevice": {read, func(f *hookFixture) []any {
		a := f.app(f.owner())
		return []any{a.ID, f.device(a).ID}
	}},
	"GetNode":         {read, func(f *hookFixture) []any { return []any{f.node(f.shared).ID} }},
	"GetOwner":        {read, func(f *hookFixture) []any { return []any{f.owner().ID} }},
	"GetOwnerByEmail": {read, func(f *hookFixture) []any { return []any{f.owner().Email} }},
	"GetOwnerByIdentity": {read, func(f *hookFixture) []any {
		sub := fmt.Sprintf("sub-%d", f.next())
		if _, err := f.s.LinkIdentity(f.ctx, f.owner().ID, "https://id.example.com/", sub); err != nil {
			f.t.Fatal(err)
		}
		return []any{"https://id.example.com/", sub}
	}},
	"ListIdentities": {read, func(f *hookFixture) []any { return []any{f.owner().ID} }},
	"GetOwnerPool": {read, func(f *hookFixture) []any {
		o := f.owner()
		return []any{o.ID, f.ownerPool(o).ID}
	}},
	"GetPlan":        {read, func(f *hookFixture) []any { return []any{f.plan.ID} }},
	"GetPlanBySlug":  {read, func(f *hookFixture) []any { return []any{f.plan.Slug} }},
	"GetPool":        {read, func(f *hookFixture) []any { return []any{f.shared.ID} }},
	"GetServerGrant": {read, func(f *hookFixture) []any { return []any{f.owner().ID} }},
	"GetServer": {read, func(f *hookFixture) []any {
		return []any{f.owner().ID, f.node(f.shared).ID}
	}},
	"ListAPIKeys": {read, func(f *hookFixture) []any {
		o := f.owner()
		a := f.app(o)
		f.apiKey(o, a)
		return []any{o.ID, a.ID}
	}},
	"ListAlertHistory": {read, func(f *hookFixture) []any {
		o := f.owner()
		f.history(o, time.Now())
		return []any{o.ID, HistoryCursor{}, 10}
	}},
	"ListApps": {read, func(f *hookFixture) []any { o := f.owner(); f.app(o); return []any{o.ID} }},
	"ListDevices": {read, func(f *hookFixture) []any {
		a := f.app(f.owner())
		f.device(a)
		return []any{a.ID, "", 10}
	}},
	"ListNodes":  {read, func(f *hookFixture) []any { f.node(f.shared); return []any{""} }},
	"ListOwners": {read, func(f *hookFixture) []any { f.owner(); return []any{"", 10} }},
	"ListPlans":  {read, func(*hookFixture) []any { return []any{true} }},
	"ListPools":  {read, func(*hookFixture) []any { return []any{""} }},
	"ListServers": {read, func(f *hookFixture) []any {
		f.node(f.shared)
		return []any{f.owner().ID}
	}},
	"Manifest":         {read, none},
	"NodeByCredential": {read, func(f *hookFixture) []any { return []any{f.node(f.shared).CredentialHash} }},
	"OwnerPoolIDs":     {read, func(f *hookFixture) []any { return []any{f.owner().ID} }},
	"Path":             {read, none},
	"Ping":             {read, none},
	"PoolPeers": {read, func(f *hookFixture) []any {
		f.device(f.app(f.owner()))
		return []any{f.shared.ID, 0, 1 << 62, func(PeerRow) error { return nil }}
	}},
	"PoolSnapshot": {read, func(f *hookFixture) []any {
		f.device(f.app(f.owner()))
		return []any{f.shared.ID, 1 << 62, func(int64) error { return nil }, func(PeerRow) error { return nil }}
	}},
	"PoolPlans":      {read, none},
	"Ready":          {read, none}, // writes the revision row with itself: nothing changes
	"Revision":       {read, none},
	"Shared":         {read, none},
	"Stats":          {read, none},
	"TunnelNetworks": {read, none},

	// Writes.
	"AddAlertHistory": {write, func(f *hookFixture) []any {
		o := f.owner()
		f.keepHistory(o)
		return []any{o.ID, []AlertHistory{{Kind: "node_offline", PoolID: f.shared.ID, OccurredAt: time.Now()}}}
	}},
	"BumpTokenEpoch": {write, func(f *hookFixture) []any { return []any{f.owner().ID} }},
	"CreateAPIKey": {write, func(f *hookFixture) []any {
		o := f.owner()
		return []any{o.ID, f.app(o).ID, APIKey{Name: "k", Prefix: "tl_x", Hash: randomHex(f.t, 32), Scopes: "devices"}}
	}},
	"CreateApp": {write, func(f *hookFixture) []any { return []any{f.owner().ID, "app"} }},
	"CreateEnrollmentToken": {write, func(f *hookFixture) []any {
		return []any{f.shared.ID, randomHex(f.t, 32), time.Now().Add(time.Hour), time.Now()}
	}},
	"CreateOwnerWithIdentity": {write, func(f *hookFixture) []any {
		return []any{Owner{Email: fmt.Sprintf("sso%d@example.com", f.next()), PasswordHash: "$argon2id$x", Role: RoleOwner}, "",
			"https://id.example.com/", fmt.Sprintf("sub-%d", f.next())}
	}},
	"LinkIdentity": {write, func(f *hookFixture) []any {
		return []any{f.owner().ID, "https://id.example.com/", fmt.Sprintf("sub-%d", f.next())}
	}},
	"UnlinkIdentity": {write, func(f *hookFixture) []any {
		o := f.owner()
		id, err := f.s.LinkIdentity(f.ctx, o.ID, "https://id.example.com/", fmt.Sprintf("sub-%d", f.next()))
		if err != nil {
			f.t.Fatal(err)
		}
		return []any{o.ID, id.ID, false}
	}},
	"CreateOwner": {write, func(f *hookFixture) []any {
		return []any{Owner{Email: "new@example.com", PasswordHash: "$argon2id$test", Role: RoleOwner}, f.plan.Slug}
	}},
	"QueueAlerts": {write, func(f *hookFixture) []any {
		o := f.owner()
		return []any{[]AlertDelivery{{OwnerID: o.ID, Channel: "webhook", EventID: "e1", Kind: "test", Body: "{}"}}, 10}
	}},
	"ClaimAlertDelivery": {write, func(f *hookFixture) []any {
		o := f.owner()
		f.outbox(o)
		return []any{o.ID, "webhook", "replica-a"}
	}},
	"FinishAlertDelivery": {write, func(f *hookFixture) []any {
		o := f.owner()
		d := f.claimed(o, "replica-a")
		return []any{d.ID, "replica-a"}
	}},
	"DeferAlertDelivery": {write, func(f *hookFixture) []any {
		o := f.owner()
		d := f.claimed(o, "replica-a")
		return []any{d.ID, "replica-a", 1, time.Now().Add(time.Minute)}
	}},
	"CreateOperator": {write, func(f *hookFixture) []any {
		return []any{Owner{Email: "operator@example.com", PasswordHash: "$argon2id$test"}}
	}},
	"CreateSharedPool": {write, func(f *hookFixture) []any {
		return []any{Pool{Name: "Paris", Region: "eu", Country: "FR", City: "Paris"}, []string{f.plan.Slug}}
	}},
	"CreateOwnerPool": {write, func(f *hookFixture) []any {
		return []any{f.owner().ID, Pool{Name: "home", Region: "home", Country: "NL", City: "Delft"}}
	}},
	"CreatePlan": {write, func(*hookFixture) []any {
		return []any{PlanWithPools{Plan: Plan{Slug: "new", Name: "New", MaxApps: 1, MaxDevices: 1, Currency: "EUR"}}}
	}},
	"CreatePool": {write, func(*hookFixture) []any {
		return []any{Pool{Name: "Paris", Region: "eu", Country: "FR", City: "Paris"}}
	}},
	"DeleteAPIKey": {write, func(f *hookFixture) []any {
		o := f.owner()
		a := f.app(o)
		return []any{o.ID, a.ID, f.apiKey(o, a).ID}
	}},
	"DeleteAlertHistory": {write, func(f *hookFixture) []any {
		o := f.owner()
		f.history(o, time.Now())
		return []any{o.ID}
	}},
	"DeleteApp": {write, func(f *hookFixture) []any {
		o := f.owner()
		a := f.app(o)
		f.device(a)
		return []any{o.ID, a.ID}
	}},
	"DeleteDevice": {write, func(f *hookFixture) []any {
		a := f.app(f.owner())
		return []any{a.ID, f.device(a).ID}
	}},
	"DeleteNode": {write, func(f *hookFixture) []any { return []any{f.node(f.shared).ID} }},
	"DeleteOwner": {write, func(f *hookFixture) []any {
		o := f.owner()
		f.device(f.app(o))
		return []any{o.ID}
	}},
	"DeleteOwnerNode": {write, func(f *hookFixture) []any {
		o := f.owner()
		return []any{o.ID, f.node(f.ownerPool(o)).ID}
	}},
	"DeletePlan": {write, func(f *hookFixture) []any {
		p, err := f.s.CreatePlan(f.ctx, PlanWithPools{Plan: Plan{Slug: "doomed", Name: "Doomed", MaxApps: 1, MaxDevices: 1, Currency: "EUR"}})
		if err != nil {
			f.t.Fatal(err)
		}
		return []any{p.ID}
	}},
	"DeletePool": {write, func(f *hookFixture) []any { o := f.owner(); return []any{o.ID, f.ownerPool(o).ID} }},
	"EnrollNode": {write, func(f *hookFixture) []any {
		token := f.token(f.shared)
		return []any{token, Node{Name: "n", Endpoint: "vpn.example.com:51820", PublicKey: randomKey(f.t), CredentialHash: randomHex(f.t, 32)}, time.Now()}
	}},
	"PurgeAlertHistory": {write, func(f *hookFixture) []any {
		f.history(f.owner(), time.Now().AddDate(-2, 0, 0))
		return []any{time.Now()}
	}},
	"PutAlertSettings": {write, func(f *hookFixture) []any { return []any{webhookSettings(f.owner().ID)} }},
	"RegisterDevice": {write, func(f *hookFixture) []any {
		return []any{f.app(f.owner()).ID, NewDevice{PublicKey: randomKey(f.t)}}
	}},
	"RenameApp": {write, func(f *hookFixture) []any { o := f.owner(); return []any{o.ID, f.app(o).ID, "renamed"} }},
	"RotateDevice": {write, func(f *hookFixture) []any {
		a := f.app(f.owner())
		return []any{a.ID, f.device(a).ID, randomKey(f.t), randomHex(f.t, 32)}
	}},
	"ReplaceAPIKey": {write, func(f *hookFixture) []any {
		o := f.owner()
		a := f.app(o)
		return []any{o.ID, a.ID, f.apiKey(o, a).ID, APIKey{Name: "k2", Prefix: "tl_x", Hash: randomHex(f.t, 32), Scopes: "devices"}, time.Now().Add(time.Hour)}
	}},
	"CreateTicket": {write, func(f *hookFixture) []any {
		return []any{RegistrationTicket{Hash: randomHex(f.t, 32), AppID: f.app(f.owner()).ID, ExpiresAt: time.Now().Add(time.Minute)}}
	}},
	"DeleteTicket": {write, func(f *hookFixture) []any { return []any{f.ticket(f.app(f.owner()), time.Now().Add(time.Minute))} }},
	"PurgeExpiredTickets": {write, func(f *hookFixture) []any {
		f.ticket(f.app(f.owner()), time.Now().Add(-time.Minute))
		return []any{time.Now()}
	}},
	"ResetDeviceToken": {write, func(f *hookFixture) []any {
		a := f.app(f.owner())
		return []any{a.ID, f.device(a).ID, randomHex(f.t, 32)}
	}},
	"AddRegistrationCapHits": {write, func(f *hookFixture) []any {
		return []any{map[string]int64{f.app(f.owner()).ID: 3}}
	}},
	"SeedPlans": {write, func(f *hookFixture) []any {
		// SeedPlans writes only to an empty catalogue.
		if err := f.s.DeletePlan(f.ctx, f.plan.ID); err != nil {
			f.t.Fatal(err)
		}
		return []any{DefaultPlans()}
	}},
	"SetAcceptedPolicy": {write, func(f *hookFixture) []any { return []any{f.owner().ID, "2024-01"} }},
	"SetNodeEnabled":    {write, func(f *hookFixture) []any { return []any{f.node(f.shared).ID, false} }},
	"SetOwnerPlan": {write, func(f *hookFixture) []any {
		o := f.owner()
		f.device(f.app(o))
		p, err := f.s.CreatePlan(f.ctx, PlanWithPools{Plan: Plan{Slug: "other", Name: "Other", MaxApps: 5, MaxDevices: 5, Currency: "EUR"}})
		if err != nil {
			f.t.Fatal(err)
		}
		return []any{o.ID, p.Slug, false}
	}},
	"UpdateApp": {write, func(f *hookFixture) []any {
		o := f.owner()
		days := 30
		return []any{o.ID, f.app(o).ID, AppUpdate{RotationDays: &days}}
	}},
	"UpdateOwner": {write, func(f *hookFixture) []any {
		o := f.owner()
		f.device(f.app(o))
		return []any{o.ID, OwnerUpdate{Status: ptr(StatusSuspended)}}
	}},
	// Billing (billing.go).
	"GetBilling":  {read, func(f *hookFixture) []any { return []any{f.owner().ID} }},
	"ListBilling": {read, func(f *hookFixture) []any { return []any{[]string{f.owner().ID}} }},
	"OwnerIDByCustomer": {read, func(f *hookFixture) []any {
		o, id := f.owner(), fmt.Sprintf("cus_%d", f.next())
		f.billing(o, func(b *OwnerBilling) { b.CustomerID = &id })
		return []any{id}
	}},
	"UpdateBilling": {write, func(f *hookFixture) []any {
		o := f.owner()
		f.device(f.app(o))
		p, err := f.s.CreatePlan(f.ctx, PlanWithPools{Plan: Plan{Slug: fmt.Sprintf("paid-%d", f.next()), Name: "Paid", MaxApps: 5, MaxDevices: 5, Currency: "EUR"}})
		if err != nil {
			f.t.Fatal(err)
		}
		return []any{o.ID, func(b *OwnerBilling, _ Owner) (*PlanMove, error) {
			b.SubscriptionStatus = "active"
			return &PlanMove{Slug: p.Slug}, nil
		}}
	}},
	"CountUnbilled": {read, func(f *hookFixture) []any {
		return []any{[]string{"active"}}
	}},
	"EndGracePeriods": {write, func(f *hookFixture) []any {
		past := time.Now().Add(-time.Hour)
		f.billing(f.owner(), func(b *OwnerBilling) { b.GraceUntil = &past })
		return []any{time.Now(), f.plan.Slug}
	}},
	// Sign-in credentials (signin.go).
	"GetTOTP":     {read, func(f *hookFixture) []any { return []any{f.totp(f.owner(), true).ID} }},
	"TOTPEnabled": {read, func(f *hookFixture) []any { return []any{f.totp(f.owner(), true).ID} }},
	"OwnerByToken": {read, func(f *hookFixture) []any {
		return []any{TokenResetPassword, f.ownerToken(f.owner(), TokenResetPassword), time.Now()}
	}},
	"CountRecoveryCodes": {read, func(f *hookFixture) []any { return []any{f.totp(f.owner(), true).ID} }},
	"CreateOwnerToken": {write, func(f *hookFixture) []any {
		return []any{f.owner().ID, TokenVerifyEmail, randomHex(f.t, 32), time.Now().Add(time.Hour), time.Now()}
	}},
	"VerifyEmail": {write, func(f *hookFixture) []any {
		return []any{f.ownerToken(f.owner(), TokenVerifyEmail), time.Now()}
	}},
	"ResetPassword": {write, func(f *hookFixture) []any {
		return []any{f.ownerToken(f.owner(), TokenResetPassword), "$argon2id$new", time.Now()}
	}},
	"SetPassword": {write, func(f *hookFixture) []any { return []any{f.owner().ID, "$argon2id$new"} }},
	"PurgeExpiredOwnerTokens": {write, func(f *hookFixture) []any {
		f.ownerToken(f.owner(), TokenVerifyEmail)
		return []any{time.Now().Add(2 * time.Hour)}
	}},
	"StartTOTP": {write, func(f *hookFixture) []any { return []any{f.owner().ID, "v1.sealed"} }},
	"EnableTOTP": {write, func(f *hookFixture) []any {
		return []any{f.totp(f.owner(), false).ID, int64(100), []string{randomHex(f.t, 32)}}
	}},
	"AcceptTOTPStep": {write, func(f *hookFixture) []any { return []any{f.totp(f.owner(), true).ID, int64(200)} }},
	"UseRecoveryCode": {write, func(f *hookFixture) []any {
		o := f.owner()
		h := randomHex(f.t, 32)
		f.totpWith(o, h)
		return []any{o.ID, h}
	}},
	"DisableTOTP": {write, func(f *hookFixture) []any { return []any{f.totp(f.owner(), true).ID} }},
	"RewrapTOTPSecrets": {write, func(f *hookFixture) []any {
		f.totp(f.owner(), true)
		return []any{func(_, s string) (string, bool, error) { return s + ".new", true, nil }}
	}},
	"UpdatePlan": {write, func(f *hookFixture) []any {
		f.device(f.app(f.owner()))
		p := f.plan
		p.PoolIDs = nil // the plan's devices leave the shared pool
		return []any{p}
	}},
}

// hookFixture is a fresh SQLite store, a shared pool and a plan granting
// it, with helpers that make the rows a call needs.
type hookFixture struct {
	t      *testing.T
	ctx    context.Context
	s      *Store
	plan   PlanWithPools
	shared Pool
	seq    int
	// version reads PRAGMA data_version on a connection of its own, which
	// changes whenever another connection commits a change.
	version func() int64
	changes *changeLog
}

func newHookFixture(t *testing.T) *hookFixture {
	t.Helper()
	f := &hookFixture{t: t, ctx: context.Background(), s: MustOpen(t, sqliteConfig(t))}
	// Stop the background checkpointer, so that only the calls touch
	// the database while it is watched.
	f.s.ckptStop()
	<-f.s.ckptDone
	db, err := sql.Open("sqlite3", "file:"+f.s.path+"?_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	conn, err := db.Conn(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	f.version = func() int64 {
		var v int64
		if err := conn.QueryRowContext(f.ctx, "PRAGMA data_version").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if f.shared, err = f.s.CreatePool(f.ctx, Pool{Name: "Frankfurt", Region: "eu", Country: "DE", City: "Frankfurt"}); err != nil {
		t.Fatal(err)
	}
	f.plan, err = f.s.CreatePlan(f.ctx, PlanWithPools{Plan: Plan{Slug: "hooks", Name: "Hooks", MaxApps: 10, MaxDevices: 100, MaxOwnNodes: 5, Currency: "EUR"},
		PoolIDs: []string{f.shared.ID}})
	if err != nil {
		t.Fatal(err)
	}
	f.changes = MustRecordChanges(t, f.s)
	return f
}

func (f *hookFixture) next() int { f.seq++; return f.seq }

// billing edits the owner's billing row.
func (f *hookFixture) billing(o Owner, edit func(*OwnerBilling)) {
	f.t.Helper()
	if _, err := f.s.UpdateBilling(f.ctx, o.ID, func(b *OwnerBilling, _ Owner) (*PlanMove, error) { edit(b); return nil, nil }); err != nil {
		f.t.Fatal(err)
	}
}

func (f *hookFixture) owner() Owner {
	return MustCreateOwner(f.t, f.s, fmt.Sprintf("o%d@example.com", f.next()), f.plan.Slug)
}

func (f *hookFixture) app(o Owner) App {
	return MustCreateApp(f.t, f.s, o.ID, fmt.Sprintf("app %d", f.next()))
}

func (f *hookFixture) device(a App) Device { return MustRegister(f.t, f.s, a.ID) }

// ticket returns the hash of a fresh registration ticket of a.
func (f *hookFixture) ticket(a App, expires time.Time) string {
	h := randomHex(f.t, 32)
	if _, err := f.s.CreateTicket(f.ctx, RegistrationTicket{Hash: h, AppID: a.ID, ExpiresAt: expires}); err != nil {
		f.t.Fatal(err)
	}
	return h
}

func (f *hookFixture) apiKey(o Owner, a App) APIKey {
	k, err := f.s.CreateAPIKey(f.ctx, o.ID, a.ID, APIKey{Name: fmt.Sprintf("k%d", f.next()), Prefix: "tl_x", Hash: randomHex(f.t, 32), Scopes: "devices"})
	if err != nil {
		f.t.Fatal(err)
	}
	return k
}

func (f *hookFixture) ownerPool(o Owner) Pool {
	p, err := f.s.CreateOwnerPool(f.ctx, o.ID, Pool{Name: fmt.Sprintf("home %d", f.next()), Region: "home", Country: "NL", City: "Delft"})
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

// token returns the hash of a fresh enrollment token for pool.
func (f *hookFixture) token(p Pool) string {
	hash := randomHex(f.t, 32)
	if err := f.s.CreateEnrollmentToken(f.ctx, p.ID, hash, time.Now().Add(time.Hour), time.Now()); err != nil {
		f.t.Fatal(err)
	}
	return hash
}

func (f *hookFixture) node(p Pool) Node {
	n, err := f.s.EnrollNode(f.ctx, f.token(p), Node{Name: "n", Endpoint: "vpn.example.com:51820",
		PublicKey: randomKey(f.t), CredentialHash: randomHex(f.t, 32)}, time.Now())
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

func (f *hookFixture) keepHistory(o Owner) {
	a := webhookSettings(o.ID)
	a.KeepHistory = true
	mustPutAlertSettings(f.t, f.s, a)
}

// outbox queues one alert delivery for the owner's webhook.
func (f *hookFixture) outbox(o Owner) {
	if _, err := f.s.QueueAlerts(f.ctx, []AlertDelivery{{OwnerID: o.ID, Channel: "webhook", EventID: fmt.Sprintf("e%d", f.next()), Kind: "test", Body: "{}"}}, 10); err != nil {
		f.t.Fatal(err)
	}
}

// claimed queues one alert delivery for the owner's webhook and claims it
// for claimer.
func (f *hookFixture) claimed(o Owner, claimer string) AlertDelivery {
	f.outbox(o)
	d, err := f.s.ClaimAlertDelivery(f.ctx, o.ID, "webhook", claimer)
	if err != nil {
		f.t.Fatal(err)
	}
	return d
}

// history stores one history entry of the owner that occurred at at.
func (f *hookFixture) history(o Owner, at time.Time) {
	f.keepHistory(o)
	n, err := f.s.AddAlertHistory(f.ctx, o.ID, []AlertHistory{{Kind: "node_offline", PoolID: f.shared.ID, OccurredAt: at}})
	if err != nil || n != 1 {
		f.t.Fatalf("AddAlertHistory = %d, %v; want 1 stored", n, err)
	}
}

// ownerToken stores a fresh single-use token of kind for o and returns
// its hash.
func (f *hookFixture) ownerToken(o Owner, kind string) string {
	hash := randomHex(f.t, 32)
	if err := f.s.CreateOwnerToken(f.ctx, o.ID, kind, hash, time.Now().Add(time.Hour), time.Now()); err != nil {
		f.t.Fatal(err)
	}
	return hash
}

// totp gives o a TOTP credential, enabled (with one recovery code) or
// awaiting confirmation, and returns o.
func (f *hookFixture) totp(o Owner, enabled bool) Owner {
	if err := f.s.StartTOTP(f.ctx, o.ID, "v1.sealed"); err != nil {
		f.t.Fatal(err)
	}
	if enabled {
		if err := f.s.EnableTOTP(f.ctx, o.ID, 1, []string{randomHex(f.t, 32)}); err != nil {
			f.t.Fatal(err)
		}
	}
	return o
}

// totpWith enables a TOTP credential for o with one recovery code whose
// hash is hash.
func (f *hookFixture) totpWith(o Owner, hash string) {
	if err := f.s.StartTOTP(f.ctx, o.ID, "v1.sealed"); err != nil {
		f.t.Fatal(err)
	}
	if err := f.s.EnableTOTP(f.ctx, o.ID, 1, []string{hash}); err != nil {
		f.t.Fatal(err)
	}
}

var (
	contextType = reflect.TypeFor[context.Context]()
	errorType   = reflect.TypeFor[error]()
)

// checkCommitHooks calls each exported method of the type of target(s)
// (a *Store, or a type with methods of its own that the test plants) on a
// fresh store, with the arguments calls gives it, and reports a method
// that calls does not classify, a read that changes the database or calls
// a hook, a write that changes nothing (so its arguments prove nothing),
// and a write that commits without the hooks seeing it: no hook call, or
// a revision committed that no Change the hooks saw carries.
func checkCommitHooks(t *testing.T, target func(*Store) any, calls map[string]methodCall, report func(format string, args ...any)) {
	t.Helper()
	typ := reflect.TypeOf(target(nil))
	var names []string
	for i := 0; i < typ.NumMethod(); i++ {
		names = append(names, typ.Method(i).Name)
	}
	sort.Strings(names)
	for _, name := range names {
		c, ok := calls[name]
		if !ok {
			report("%s is not classified: add it to storeMethods as a read or a write", name)
			continue
		}
		if c.kind == notData {
			continue
		}
		f := newHookFixture(t)
		var args []any
		if c.args != nil {
			args = c.args(f)
		}
		m := reflect.ValueOf(target(f.s)).MethodByName(name)
		in := []reflect.Value{}
		if m.Type().NumIn() > 0 && m.Type().In(0) == contextType {
			in = append(in, reflect.ValueOf(f.ctx))
		}
		for _, a := range args {
			want := m.Type().In(len(in))
			in = append(in, reflect.ValueOf(a).Convert(want))
		}
		if len(in) != m.Type().NumIn() {
			t.Errorf("%s: storeMethods gives %d arguments; the method takes %d", name, len(in), m.Type().NumIn())
			continue
		}
		f.changes.Take()
		rev, version := MustRevision(t, f.s), f.version()
		out := m.Call(in)
		if last := out[len(out)-1:]; len(last) == 1 && last[0].Type() == errorType && !last[0].IsNil() {
			t.Errorf("%s: %v (storeMethods must give arguments that succeed)", name, last[0].Interface())
			continue
		}
		changed := f.version() != version
		seen := f.changes.Take()
		revAfter := MustRevision(t, f.s)
		switch c.kind {
		case read:
			if changed || len(seen) > 0 || revAfter != rev {
				report("%s is listed as a read but changed the database (hooks saw %+v)", name, seen)
			}
		case write:
			if !changed {
				report("%s is listed as a write but changed nothing with the arguments storeMethods gives", name)
				continue
			}
			if len(seen) == 0 {
				report("%s committed a change without calling the commit hooks", name)
				continue
			}
			for r := rev + 1; r <= revAfter; r++ {
				found := false
				for _, ch := range seen {
					found = found || ch.Revision == r
				}
				if !found {
					report("%s committed revision %d, but no Change the hooks saw carries it (saw %+v)", name, r, seen)
				}
			}
		}
	}
}

// TestCommitHooksSeeEveryWrite calls every exported method of Store: each
// write must reach the commit hooks with the revisions it committed, each
// read must change nothing. With the hooks called from writeChange alone,
// this shows that node sync cannot miss a write whatever calls it.
func TestCommitHooksSeeEveryWrite(t *testing.T) {
	var failures []string
	checkCommitHooks(t, func(s *Store) any { return s }, storeMethods, func(format string, args ...any) {
		failures = append(failures, fmt.Sprintf(format, args...))
	})
	for _, f := range failures {
		t.Error(f)
	}
	// Names in storeMethods that Store no longer has are stale rows.
	typ := reflect.TypeFor[*Store]()
	for name := range storeMethods {
		if _, ok := typ.MethodByName(name); !ok {
			t.Errorf("storeMethods lists %s, which Store does not have", name)
		}
	}
}

// leakyStore plants what TestCommitHooksSeeEveryWrite must catch.
type leakyStore struct{ s *Store }

// BypassHooks writes past writeChange.
func (l leakyStore) BypassHooks(ctx context.Context) error {
	return l.s.w.WithContext(ctx).Exec(`UPDATE pools SET city = 'Berlin'`).Error
}

// HideRevision bumps the revision in a write whose Change is empty.
func (l leakyStore) HideRevision(ctx context.Context) error {
	return l.s.write(ctx, func(tx *gorm.DB) error {
		_, err := bumpRevision(tx)
		return err
	})
}

// WritesAsRead is a write listed as a read.
func (l leakyStore) WritesAsRead(ctx context.Context) error {
	_, err := l.s.CreatePool(ctx, Pool{Name: "Paris", Region: "eu", Country: "FR", City: "Paris"})
	return err
}

// Unlisted is missing from the classification.
func (l leakyStore) Unlisted() {}

// Fine follows the rule, so nothing is reported for it.
func (l leakyStore) Fine(ctx context.Context) error {
	_, err := l.s.writeChange(ctx, func(tx *gorm.DB, ch *Change) error {
		var err error
		ch.Revision, err = bumpRevision(tx)
		return err
	})
	return err
}

func TestCommitHooksCheckCatchesPlantedWrites(t *testing.T) {
	var failures []string
	calls := map[string]methodCall{
		"BypassHooks":  {kind: write},
		"HideRevision": {kind: write},
		"Fine":         {kind: write},
		"WritesAsRead": {kind: read},
	}
	checkCommitHooks(t, func(s *Store) any { return leakyStore{s} }, calls, func(format string, args ...any) {
		failures = append(failures, fmt.Sprintf(format, args...))
	})
	want := []string{"BypassHooks committed a change without calling the commit hooks",
		"HideRevision committed revision", "Unlisted is not classified", "WritesAsRead is listed as a read"}
	if len(failures) != len(want) {
		t.Errorf("the check reported %d problems; want %d:\n%s", len(failures), len(want), strings.Join(failures, "\n"))
	}
	for _, w := range want {
		found := false
		for _, f := range failures {
			found = found || strings.HasPrefix(f, w)
		}
		if !found {
			t.Errorf("the check did not report %q; it reported:\n%s", w, strings.Join(failures, "\n"))
		}
	}
}

// TestOnCommit covers the hook given in Config, a hook added later, and
// removing one: each sees the commits made while it is installed, by the
// time the write returns.
func TestOnCommit(t *testing.T) {
	ctx := context.Background()
	var fromConfig, added []Change
	cfg := sqliteConfig(t)
	cfg.OnCommit = func(ch Change) { fromConfig = append(fromConfig, ch) }
	s := MustOpen(t, cfg)
	MustSeedPlans(t, s)
	o := MustCreateOwner(t, s, "a@example.com", "pro")
	app := MustCreateApp(t, s, o.ID, "app")
	remove := s.OnCommit(func(ch Change) { added = append(added, ch) })
	d := MustRegister(t, s, app.ID)
	remove()
	if err := s.DeleteDevice(ctx, app.ID, d.ID); err != nil {
		t.Fatal(err)
	}
	// SeedPlans, CreateOwner and CreateApp change nothing nodes carry.
	want := []Change{{}, {}, {}, {Revision: d.Revision, Upserted: []Device{d}},
		{Revision: d.Revision + 1, Removed: []string{d.PublicKey}, OwnerID: o.ID}}
	if diff := cmp.Diff(want, fromConfig, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Config.OnCommit saw (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want[3:4], added, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("the hook added and then removed saw (-want +got):\n%s", diff)
	}
}
