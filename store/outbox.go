package store

import (
	"context"
	"errors"
	"sort"
	"time"

	"gorm.io/gorm"
)

// The alert outbox. An alert event for an owner's channel (webhook or
// email) is written here before anything tries to deliver it, so that a
// replica that dies — or the whole control plane restarting — loses no
// event: the replica that leads alerts delivers each owner's and
// channel's rows one at a time, by ascending ID, and deletes each row
// once it is delivered or given up. A row holds what the event says (node
// and pool facts: names, aggregate status) and its delivery state, nothing
// about end users.
//
// The delivering replica claims the row it works on (ClaimedBy, a random
// identifier of the process). A replica that takes over the lead claims
// the head row afresh, so the one it replaced, if still alive, finds its
// claim gone when it wants to record the outcome, and stops.

// AlertDelivery is one event waiting for one of an owner's channels.
type AlertDelivery struct {
	ID        int64     `gorm:"primaryKey;autoIncrement" purpose:"queue order: an owner's deliveries on a channel go out by ascending ID"`
	OwnerID   string    `gorm:"size:36;not null" purpose:"the owner to tell"`
	Channel   string    `gorm:"size:16;not null" purpose:"webhook or email"`
	EventID   string    `gorm:"size:36;not null" purpose:"the event's random identifier, sent with it as its idempotency key so that a receiver can skip a repeat"`
	Kind      string    `gorm:"size:32;not null" purpose:"the kind of event (node offline, pool down, ...)"`
	Body      string    `gorm:"size:4000;not null" purpose:"the event as delivered (JSON): the node's and pool's names and aggregate status, nothing about end users"`
	Attempts  int       `gorm:"not null" purpose:"delivery attempts made so far, for the backoff"`
	QueuedAt  time.Time `gorm:"not null" purpose:"when the event was queued: delivery is given up after the retry period"`
	RetryAt   time.Time `gorm:"not null" purpose:"when the next delivery attempt is due"`
	ClaimedBy string    `gorm:"size:36;not null" purpose:"random identifier of the control-plane process delivering it (empty until one does), so that a replica that lost the lead stops"`
}

// TableName keeps the table name readable.
func (AlertDelivery) TableName() string { return "alert_outbox" }

func (AlertDelivery) privacyDoc() tableDoc {
	return tableDoc{Purpose: "alert events waiting to be delivered to an owner's webhook or email, so that no event is lost when a replica dies",
		Retention: "deleted when delivered, when delivery is given up (after the retry period, 24 hours by default), when the owner removes the channel, or with the account",
		Subject:   SubjectInfrastructure}
}

func init() {
	exportScopes = append(exportScopes, struct{ table, where string }{"alert_outbox", "owner_id = ?"})
}

// AlertQueue is how many deliveries wait for one owner's channel.
type AlertQueue struct {
	OwnerID, Channel string
	Pending          int
}

// QueueAlerts adds deliveries (ID, Attempts and ClaimedBy are set here;
// QueuedAt and RetryAt default to now) and keeps at most keep of each
// owner's channel's, dropping the oldest; it reports how many it dropped.
func (s *Store) QueueAlerts(ctx context.Context, ds []AlertDelivery, keep int) (int, error) {
	if len(ds) == 0 {
		return 0, nil
	}
	now := time.Now().UTC()
	var owners []string
	seen := map[string]bool{}
	rows := make([]AlertDelivery, len(ds))
	for i, d := range ds {
		d.ID, d.Attempts, d.ClaimedBy = 0, 0, ""
		if d.QueuedAt.IsZero() {
			d.QueuedAt = now
		}
		if d.RetryAt.IsZero() {
			d.RetryAt = d.QueuedAt
		}
		d.QueuedAt, d.RetryAt = d.QueuedAt.UTC(), d.RetryAt.UTC()
		if d.OwnerID == "" || d.Channel == "" || d.EventID == "" || len(d.EventID) > 36 || d.Kind == "" || len(d.Kind) > 32 {
			return 0, invalid("alert", "a delivery needs an owner, a channel, an event ID and a kind")
		}
		if len(d.Body) > 4000 {
			return 0, invalid("body", "must be at most 4000 bytes")
		}
		rows[i] = d
		if !seen[d.OwnerID] {
			seen[d.OwnerID] = true
			owners = append(owners, d.OwnerID)
		}
	}
	sort.Strings(owners)
	dropped := 0
	err := s.write(ctx, func(tx *gorm.DB) (err error) {
		dropped, err = queueAlerts(tx, rows, owners, keep)
		return err
	})
	return dropped, err
}

// queueAlerts is QueueAlerts in tx. On PostgreSQL it first takes the
// owners' row locks (in ID order, so that two writers cannot deadlock):
// writers for one owner take turns from before their rows get IDs until
// they commit, so the IDs of an owner's rows become visible in ascending
// order. Without that, a transaction that took ID 10 could commit after
// one that took ID 11, and a worker that delivered 11 meanwhile would
// then find 10 at the head: out of order.
func queueAlerts(tx *gorm.DB, rows []AlertDelivery, owners []string, keep int) (int, error) {
	for _, o := range owners {
		if err := lockOwnerRow(tx, o); err != nil {
			return 0, err
		}
	}
	if err := tx.Create(&rows).Error; err != nil {
		return 0, err
	}
	if keep <= 0 {
		return 0, nil
	}
	type key struct{ owner, channel string }
	seen := map[key]bool{}
	dropped := 0
	for _, d := range rows {
		k := key{d.OwnerID, d.Channel}
		if seen[k] {
			continue
		}
		seen[k] = true
		res := tx.Exec(`DELETE FROM alert_outbox WHERE owner_id = ? AND channel = ? AND id NOT IN
			(SELECT id FROM alert_outbox WHERE owner_id = ? AND channel = ? ORDER BY id DESC LIMIT ?)`,
			k.owner, k.channel, k.owner, k.channel, keep)
		if res.Error != nil {
			return 0, res.Error
		}
		dropped += int(res.RowsAffected)
	}
	return dropped, nil
}

// AlertQueues lists the owner's channels that have deliveries waiting
// (every owner's when ownerID is ""), ordered by owner and channel.
func (s *Store) AlertQueues(ctx context.Context, ownerID string) ([]AlertQueue, error) {
	q := s.read(ctx).Model(&AlertDelivery{}).Select("owner_id, channel, count(*) AS pending")
	if ownerID != "" {
		q = q.Where("owner_id = ?", ownerID)
	}
	out := []AlertQueue{}
	err := q.Group("owner_id, channel").Order("owner_id, channel").Scan(&out).Error
	return out, translate(err)
}

// ClaimAlertDelivery returns the oldest delivery waiting for the owner's
// channel, claimed for claimer; ErrNotFound when none waits.
func (s *Store) ClaimAlertDelivery(ctx context.Context, ownerID, channel, claimer string) (AlertDelivery, error) {
	var d AlertDelivery
	err := s.write(ctx, func(tx *gorm.DB) error {
		if err := tx.Where("owner_id = ? AND channel = ?", ownerID, channel).Order("id").Take(&d).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return ErrNotFound
			}
			return err
		}
		if d.ClaimedBy == claimer {
			return nil
		}
		d.ClaimedBy = claimer
		return tx.Model(&AlertDelivery{}).Where("id = ?", d.ID).Update("claimed_by", claimer).Error
	})
	if err != nil {
		return AlertDelivery{}, err
	}
	return d, nil
}

// FinishAlertDelivery deletes a delivered or given-up delivery, if
// claimer still holds it, and reports whether it did.
func (s *Store) FinishAlertDelivery(ctx context.Context, id int64, claimer string) (bool, error) {
	done := false
	err := s.write(ctx, func(tx *gorm.DB) error {
		res := tx.Where("id = ? AND claimed_by = ?", id, claimer).Delete(&AlertDelivery{})
		done = res.RowsAffected == 1
		return res.Error
	})
	return done, err
}

// DeferAlertDelivery records a failed attempt: attempts made so far and
// when to try again, if claimer still holds the delivery; it reports
// whether it did.
func (s *Store) DeferAlertDelivery(ctx context.Context, id int64, claimer string, attempts int, retryAt time.Time) (bool, error) {
	done := false
	err := s.write(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&AlertDelivery{}).Where("id = ? AND claimed_by = ?", id, claimer).
			Updates(map[string]any{"attempts": attempts, "retry_at": retryAt.UTC()})
		done = res.RowsAffected == 1
		return res.Error
	})
	return done, err
}
