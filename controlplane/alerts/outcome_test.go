package alerts

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// slowFinish is the store with a slow FinishAlertDelivery: the window
// between a delivery and the removal of its outbox row, widened.
type slowFinish struct {
	*store.Store
	finishing atomic.Bool
}

func (s *slowFinish) FinishAlertDelivery(ctx context.Context, id int64, claimer string) (bool, error) {
	s.finishing.Store(true)
	time.Sleep(300 * time.Millisecond)
	return s.Store.FinishAlertDelivery(ctx, id, claimer)
}

// TestOutcomeShownAfterOutbox: the owner's view of a channel says
// "delivered" only once the event has left the outbox, so a delivered
// channel never still counts it as pending. Shown first, the outcome and
// the pending count disagreed for as long as the outbox write took.
func TestOutcomeShownAfterOutbox(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := store.Open(ctx, store.Config{Driver: store.DriverSQLite, DSN: filepath.Join(t.TempDir(), "t.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.SeedPlans(ctx, store.DefaultPlans()); err != nil {
		t.Fatal(err)
	}
	o, err := st.CreateOwner(ctx, store.Owner{Email: "o@example.com", PasswordHash: "$argon2id$x", Role: store.RoleOwner}, "free")
	if err != nil {
		t.Fatal(err)
	}
	var got atomic.Int64
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		got.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rcv.Close()
	set := store.AlertSettings{OwnerID: o.ID, WebhookURL: rcv.URL + "/hook", WebhookSecret: "tlw_secret",
		Events: api.AlertTest, RetentionDays: store.DefaultRetentionDays}
	if err := st.PutAlertSettings(ctx, set); err != nil {
		t.Fatal(err)
	}
	slow := &slowFinish{Store: st}
	a := New(ctx, Deps{Store: slow, Revision: func() int64 { return 0 },
		Status: func(string) (Report, bool) { return Report{}, false }, OnlineWindow: time.Minute,
		Now: time.Now, Log: slog.New(slog.DiscardHandler)},
		Options{AllowPrivateTargets: true, Every: 50 * time.Millisecond, PumpEvery: 50 * time.Millisecond})
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	defer func() { cancel(); <-done }()

	for !a.Leading() {
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := a.Enqueue(ctx, set, []api.AlertEvent{{ID: "ev-1", Kind: api.AlertTest, OccurredAt: time.Now(), Detail: "test"}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		d := a.DeliveryView(ctx, set)[0]
		if d.State == api.DeliveryDelivered {
			if d.Pending != 0 {
				t.Fatalf("delivered while the event is still pending: %+v", d)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not delivered: %+v (receiver got %d)", d, got.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !slow.finishing.Load() || got.Load() != 1 {
		t.Fatalf("finishing %v, received %d", slow.finishing.Load(), got.Load())
	}
}
