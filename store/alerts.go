package store

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Alerts: an owner may be told when a node or pool that carries the
// owner's devices changes health (offline, posture regression, sync lag).
// The watching happens in memory in the control plane; what is stored is
// only where to tell the owner and, if the owner opted in, a history of
// status changes of those nodes and pools, deleted after the owner's
// retention period. Nothing here is about end users.

// Bounds of the alert settings.
const (
	MaxWebhookURL        = 2048 // bytes
	MinRetentionDays     = 1
	MaxRetentionDays     = 365
	DefaultRetentionDays = 30
)

// AlertSettings is where an owner wants to hear about node and pool
// health, and whether the owner keeps a monitoring history.
type AlertSettings struct {
	OwnerID       string `gorm:"primaryKey;size:36" purpose:"the owner"`
	WebhookURL    string `gorm:"size:2048;not null" purpose:"the owner's own endpoint that receives alert events, empty for none (a receiver the owner runs, not an address anyone visited)"`
	WebhookSecret string `gorm:"size:64;not null" purpose:"random key that signs every webhook delivery (HMAC-SHA256) so the owner's receiver can tell it came from Traceless; kept because each delivery is signed with it, shown to the owner once, never exported; empty without a webhook"`
	Email         string `gorm:"size:254;not null" purpose:"address that receives alert emails when the server sends email; empty for none"`
	Events        string `gorm:"size:300;not null" purpose:"comma-separated kinds of alert the owner wants"`
	KeepHistory   bool   `gorm:"not null" purpose:"whether the owner opted in to a stored monitoring history (off unless the owner turns it on)"`
	RetentionDays int    `gorm:"not null" purpose:"how many days monitoring history entries are kept (1-365)"`
}

// TableName keeps the table name readable.
func (AlertSettings) TableName() string { return "alert_settings" }

func (AlertSettings) privacyDoc() tableDoc {
	return tableDoc{Purpose: "where an owner is told about the health of the nodes carrying the owner's devices",
		Retention: "until the owner clears the settings or the account is deleted (hard delete)", Subject: SubjectOwner}
}

// AlertHistory is one status change of a node or pool, stored only for an
// owner who opted in, and only for the pools that carry the owner's
// devices.
type AlertHistory struct {
	ID         string    `gorm:"primaryKey;size:36" purpose:"random identifier"`
	OwnerID    string    `gorm:"size:36;not null" purpose:"the owner who opted in to the history"`
	Kind       string    `gorm:"size:32;not null" purpose:"what changed: node offline or online, posture regressed or recovered, sync lag or recovered, pool down or up"`
	PoolID     string    `gorm:"size:36;not null" purpose:"the pool"`
	PoolName   string    `gorm:"size:100;not null" purpose:"the pool's name when it happened"`
	NodeID     string    `gorm:"size:36;not null" purpose:"the node (a server); empty for pool events"`
	NodeName   string    `gorm:"size:100;not null" purpose:"the node's name when it happened; empty for pool events"`
	Detail     string    `gorm:"size:300;not null" purpose:"which posture checks failed or recovered, or how the pool's nodes stand"`
	OccurredAt time.Time `gorm:"not null" purpose:"when the control plane saw the node or pool change (a server's status, not an end user's activity)"`
	ExpiresAt  time.Time `gorm:"not null" purpose:"when the retention job deletes the entry: occurred_at plus the owner's retention period"`
}

// TableName keeps the table name readable.
func (AlertHistory) TableName() string { return "alert_history" }

func (AlertHistory) privacyDoc() tableDoc {
	return tableDoc{Purpose: "opt-in monitoring history of the nodes and pools carrying an owner's devices",
		Retention: "the owner's retention period (1-365 days), then deleted by a job; all of it at once when the owner opts out or deletes the account",
		Subject:   SubjectInfrastructure}
}

func init() {
	// The owner's export holds the alert settings and history too; the
	// signing key is a credential and is withheld like the hashes.
	exportScopes = append(exportScopes,
		struct{ table, where string }{"alert_settings", "owner_id = ?"},
		struct{ table, where string }{"alert_history", "owner_id = ?"})
	withheld["alert_settings.webhook_secret"] = true
}

var alertKindsRE = regexp.MustCompile(`^([a-z_]{1,32}(,[a-z_]{1,32})*)?$`)

// Validate reports whether a can be stored. The webhook URL's scheme and
// host, the email's syntax and the event kinds are the caller's policy;
// here only the stored invariants.
func (a *AlertSettings) Validate() error {
	switch {
	case len(a.WebhookURL) > MaxWebhookURL || !printableASCII(a.WebhookURL):
		return invalid("webhook_url", "must be at most %d printable ASCII characters", MaxWebhookURL)
	case (a.WebhookURL == "") != (a.WebhookSecret == ""):
		return invalid("webhook_secret", "is required with a webhook and only with one")
	case len(a.WebhookSecret) > 64 || !printableASCII(a.WebhookSecret):
		return invalid("webhook_secret", "must be at most 64 printable ASCII characters")
	case len(a.Email) > 254 || !printableASCII(a.Email):
		return invalid("email", "must be at most 254 printable ASCII characters")
	case len(a.Events) > 300 || !alertKindsRE.MatchString(a.Events):
		return invalid("events", "must be a comma-separated list of event kinds")
	case a.RetentionDays < MinRetentionDays || a.RetentionDays > MaxRetentionDays:
		return invalid("retention_days", "must be %d-%d", MinRetentionDays, MaxRetentionDays)
	}
	return nil
}

// printableASCII reports whether s holds only ASCII 0x21-0x7e.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// Wants reports whether the owner subscribed to events of kind: the
// filter that decides both what is delivered and what goes into the
// opt-in history.
func (a *AlertSettings) Wants(kind string) bool {
	for k := range strings.SplitSeq(a.Events, ",") {
		if k == kind {
			return true
		}
	}
	return false
}

// empty reports whether the settings ask for nothing, so that no row
// needs to be kept.
func (a *AlertSettings) empty() bool {
	return a.WebhookURL == "" && a.Email == "" && !a.KeepHistory
}

// GetAlertSettings returns the owner's alert settings; ErrNotFound when
// the owner has none.
func (s *Store) GetAlertSettings(ctx context.Context, ownerID string) (AlertSettings, error) {
	var a AlertSettings
	err := s.read(ctx).Where("owner_id = ?", ownerID).Take(&a).Error
	return a, translate(err)
}

// PutAlertSettings stores the owner's alert settings. Turning the history
// off deletes it in the same transaction; changing the retention period
// moves the expiry of the kept entries. Settings that ask for nothing are
// not kept at all. ErrNotFound when the owner does not exist.
func (s *Store) PutAlertSettings(ctx context.Context, a AlertSettings) error {
	if err := a.Validate(); err != nil {
		return err
	}
	return s.write(ctx, func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&Owner{}).Where("id = ?", a.OwnerID).Count(&n).Error; err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		var old AlertSettings
		err := tx.Where("owner_id = ?", a.OwnerID).Take(&old).Error
		switch {
		case errors.Is(err, gorm.ErrRecordNotFound):
			old = AlertSettings{}
		case err != nil:
			return err
		}
		if !a.KeepHistory {
			if err := tx.Where("owner_id = ?", a.OwnerID).Delete(&AlertHistory{}).Error; err != nil {
				return err
			}
		} else if old.KeepHistory && old.RetentionDays != a.RetentionDays {
			if err := reexpireHistory(tx, a.OwnerID, a.RetentionDays); err != nil {
				return err
			}
		}
		// Events waiting for a channel that is removed or pointed
		// elsewhere go with it: they were for the old receiver, and one
		// added later starts with what happens from then on.
		for channel, changed := range map[string]bool{"webhook": old.WebhookURL != a.WebhookURL, "email": old.Email != a.Email} {
			if !changed {
				continue
			}
			if err := tx.Where("owner_id = ? AND channel = ?", a.OwnerID, channel).Delete(&AlertDelivery{}).Error; err != nil {
				return err
			}
		}
		if a.empty() {
			return tx.Where("owner_id = ?", a.OwnerID).Delete(&AlertSettings{}).Error
		}
		return tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "owner_id"}}, UpdateAll: true}).Create(&a).Error
	})
}

// reexpireHistory recomputes expires_at of an owner's history entries for
// a new retention period. It is done here rather than in SQL because the
// dialects' date arithmetic differs; the history of one owner is small.
func reexpireHistory(tx *gorm.DB, ownerID string, days int) error {
	var rows []struct {
		ID         string
		OccurredAt time.Time
	}
	if err := tx.Model(&AlertHistory{}).Where("owner_id = ?", ownerID).Select("id, occurred_at").Scan(&rows).Error; err != nil {
		return err
	}
	for _, r := range rows {
		exp := r.OccurredAt.UTC().Add(retention(days))
		if err := tx.Model(&AlertHistory{}).Where("id = ?", r.ID).Update("expires_at", exp).Error; err != nil {
			return err
		}
	}
	return nil
}

func retention(days int) time.Duration { return time.Duration(days) * 24 * time.Hour }

// AlertSubscriber is an active owner with alert settings, and which of the
// asked-about pools carry the owner's devices.
type AlertSubscriber struct {
	Settings AlertSettings
	Pools    map[string]bool
}

// alertSubscribersQuery pairs each active owner's settings with the pools
// that carry the owner's devices: the shared pools the owner's plan grants
// and the owner's own dedicated pools (never another owner's, even if a
// plan names it). An operator, who runs every node, is paired with every
// pool.
const alertSubscribersQuery = `SELECT s.owner_id, s.webhook_url, s.webhook_secret, s.email, s.events, s.keep_history, s.retention_days, p.id
	FROM alert_settings s
	JOIN owners o ON o.id = s.owner_id
	JOIN pools p ON p.owner_id = o.id
		OR (p.owner_id IS NULL AND p.id IN (SELECT pp.pool_id FROM plan_pools pp WHERE pp.plan_id = o.plan_id))
		OR o.role = ?
	WHERE o.status = ? AND p.id IN ?
	ORDER BY s.owner_id, p.id`

// AlertSubscribers returns the owners who have alert settings and whose
// devices are carried by any of pools, each with those of pools that
// carry them, and the operators with alert settings, each with all of
// pools.
func (s *Store) AlertSubscribers(ctx context.Context, pools []string) ([]AlertSubscriber, error) {
	if len(pools) == 0 {
		return nil, nil
	}
	rows, err := s.read(ctx).Raw(alertSubscribersQuery, RoleAdmin, StatusActive, pools).Rows()
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	var out []AlertSubscriber
	for rows.Next() {
		var a AlertSettings
		var pool string
		if err := rows.Scan(&a.OwnerID, &a.WebhookURL, &a.WebhookSecret, &a.Email, &a.Events, &a.KeepHistory, &a.RetentionDays, &pool); err != nil {
			return nil, err
		}
		if len(out) == 0 || out[len(out)-1].Settings.OwnerID != a.OwnerID {
			out = append(out, AlertSubscriber{Settings: a, Pools: map[string]bool{}})
		}
		out[len(out)-1].Pools[pool] = true
	}
	return out, translate(rows.Err())
}

// OwnerPoolIDs returns the pools that carry the owner's devices: the
// shared pools the owner's plan grants and the owner's dedicated pools.
func (s *Store) OwnerPoolIDs(ctx context.Context, ownerID string) ([]string, error) {
	o, err := s.GetOwner(ctx, ownerID)
	if err != nil {
		return nil, err
	}
	pools, err := ownerPools(s.read(ctx), o.ID, o.PlanID)
	if err != nil {
		return nil, translate(err)
	}
	out := make([]string, 0, len(pools))
	for id := range pools {
		out = append(out, id)
	}
	return out, nil
}

// AddAlertHistory stores status changes in the owner's monitoring history
// if, and only if, the owner opted in, and only those of the kinds the
// owner subscribed to (Events, as for deliveries); it reports how many it
// stored. The settings are read in the same transaction, so a change of
// either applies at once. Each entry gets an ID and expires after the
// owner's retention period.
func (s *Store) AddAlertHistory(ctx context.Context, ownerID string, entries []AlertHistory) (int, error) {
	stored := 0
	err := s.write(ctx, func(tx *gorm.DB) error {
		var a AlertSettings
		err := tx.Where("owner_id = ?", ownerID).Take(&a).Error
		if errors.Is(err, gorm.ErrRecordNotFound) || (err == nil && !a.KeepHistory) {
			return nil
		}
		if err != nil {
			return err
		}
		rows := make([]AlertHistory, 0, len(entries))
		for _, e := range entries {
			if !a.Wants(e.Kind) {
				continue
			}
			e.ID = uuid.NewString()
			e.OwnerID = ownerID
			e.OccurredAt = e.OccurredAt.UTC().Truncate(time.Microsecond)
			e.ExpiresAt = e.OccurredAt.Add(retention(a.RetentionDays))
			e.PoolName = truncateRunes(e.PoolName, 100)
			e.NodeName = truncateRunes(e.NodeName, 100)
			e.Detail = truncateRunes(e.Detail, 300)
			if e.Kind == "" || len(e.Kind) > 32 || e.PoolID == "" {
				return invalid("kind", "history entries need a kind and a pool")
			}
			rows = append(rows, e)
		}
		if len(rows) == 0 {
			return nil
		}
		if err := tx.Create(&rows).Error; err != nil {
			return err
		}
		stored = len(rows)
		return nil
	})
	return stored, err
}

func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return strings.TrimSpace(string(r[:n]))
}

// HistoryCursor is where a page of history continues: after the entry
// with this time and ID, newest first. The zero cursor starts at the top.
type HistoryCursor struct {
	At time.Time
	ID string
}

// ListAlertHistory returns up to limit of the owner's history entries
// after cursor, newest first.
func (s *Store) ListAlertHistory(ctx context.Context, ownerID string, after HistoryCursor, limit int) ([]AlertHistory, error) {
	q := s.read(ctx).Where("owner_id = ?", ownerID)
	if after.ID != "" {
		at := after.At.UTC()
		q = q.Where("occurred_at < ? OR (occurred_at = ? AND id < ?)", at, at, after.ID)
	}
	var out []AlertHistory
	err := q.Order("occurred_at DESC, id DESC").Limit(limit).Find(&out).Error
	return out, translate(err)
}

// DeleteAlertHistory deletes the owner's whole monitoring history and
// reports how many entries went.
func (s *Store) DeleteAlertHistory(ctx context.Context, ownerID string) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *gorm.DB) error {
		res := tx.Where("owner_id = ?", ownerID).Delete(&AlertHistory{})
		n = res.RowsAffected
		return res.Error
	})
	return n, err
}

// PurgeAlertHistory deletes every history entry that expired at now and
// reports how many went.
func (s *Store) PurgeAlertHistory(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *gorm.DB) error {
		res := tx.Where("expires_at <= ?", now.UTC()).Delete(&AlertHistory{})
		n = res.RowsAffected
		return res.Error
	})
	return n, err
}
