package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// hotStmts are the statements of device admission — registration, the
// busiest write path, and key rotation — prepared once on the writer pool
// with database/sql. (gorm's
// statement cache re-prepares statements first used inside a transaction
// in every later transaction, which cost a fifth of the CPU.) Tx.StmtContext
// reuses a statement prepared on the transaction's connection, and SQLite
// has exactly one writer connection.
type hotStmts struct {
	once  sync.Once
	err   error
	db    *sql.DB
	pg    bool
	stmts [hotCount]*sql.Stmt
}

const (
	hotBump = iota
	hotAdmit
	hotIPv4Taken
	hotIPv6Taken
	hotInsert
	hotCountUp
	hotDevice
	hotRekey
	hotConsumeTicket
	hotCount
)

var hotSQL = [hotCount]string{
	hotBump: `UPDATE sync_state SET revision = revision + 1 WHERE id = 1 RETURNING revision`,
	hotAdmit: `SELECT
		(SELECT plans.max_devices FROM apps JOIN owners ON owners.id = apps.owner_id ` + limitsPlanJoin + ` WHERE apps.id = ?),
		EXISTS (SELECT 1 FROM apps JOIN owner_billing ON owner_billing.owner_id = apps.owner_id WHERE apps.id = ? AND owner_billing.limit_plan_id IS NOT NULL),
		(SELECT COALESCE(SUM(a2.device_count), 0) FROM apps a2 WHERE a2.owner_id = (SELECT owner_id FROM apps WHERE id = ?)),
		EXISTS (SELECT 1 FROM devices WHERE public_key = ?),
		EXISTS (SELECT 1 FROM devices WHERE ipv4 = ?),
		EXISTS (SELECT 1 FROM devices WHERE ipv6 = ?)`,
	hotIPv4Taken: `SELECT EXISTS (SELECT 1 FROM devices WHERE ipv4 = ?)`,
	hotIPv6Taken: `SELECT EXISTS (SELECT 1 FROM devices WHERE ipv6 = ?)`,
	hotInsert:    `INSERT INTO devices (id, app_id, public_key, ipv4, ipv6, external_ref, revision, token_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
	hotCountUp:   `UPDATE apps SET device_count = device_count + 1 WHERE id = ?`,
	hotDevice: `SELECT devices.public_key, devices.ipv4, devices.ipv6, devices.external_ref, apps.owner_id
		FROM devices JOIN apps ON apps.id = devices.app_id WHERE devices.id = ? AND devices.app_id = ?`,
	hotRekey: `UPDATE devices SET public_key = ?, ipv4 = ?, ipv6 = ?, revision = ?, token_hash = ? WHERE id = ?`,
	// A ticket is consumed in the transaction that admits its device, so
	// on any replica it admits one device at most.
	hotConsumeTicket: `DELETE FROM registration_tickets WHERE hash = ? AND app_id = ? AND expires_at > ?`,
}

// rebind turns ? placeholders into PostgreSQL's $1, $2, ….
func rebind(q string) string {
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (h *hotStmts) prepare(ctx context.Context) error {
	h.once.Do(func() {
		for i, q := range hotSQL {
			if h.pg {
				q = rebind(q)
			}
			if h.stmts[i], h.err = h.db.PrepareContext(ctx, q); h.err != nil {
				h.err = fmt.Errorf("prepare %q: %w", firstLine(q), h.err)
				return
			}
		}
	})
	return h.err
}

func (h *hotStmts) close() {
	for _, st := range h.stmts {
		if st != nil {
			st.Close()
		}
	}
}

// hotTx is a write transaction using the prepared statements.
type hotTx struct {
	ctx context.Context
	tx  *sql.Tx
	h   *hotStmts
}

// hotWrite is writeChange on the prepared statements: fn records in ch
// what nodes must learn, and once the transaction commits ch goes to the
// commit hooks.
func (s *Store) hotWrite(ctx context.Context, fn func(h *hotTx, ch *Change) error) error {
	var ch Change
	err := s.hot.inTx(ctx, func(h *hotTx) error {
		ch = Change{}
		return fn(h, &ch)
	})
	if err != nil {
		return err
	}
	s.walCommitted()
	s.committed(ch)
	return nil
}

func (h *hotStmts) inTx(ctx context.Context, fn func(*hotTx) error) error {
	if err := h.prepare(ctx); err != nil {
		return err
	}
	tx, err := h.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(&hotTx{ctx: ctx, tx: tx, h: h}); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (t *hotTx) stmt(i int) *sql.Stmt { return t.tx.StmtContext(t.ctx, t.h.stmts[i]) }

func (t *hotTx) bumpRevision() (int64, error) {
	var rev int64
	err := t.stmt(hotBump).QueryRowContext(t.ctx).Scan(&rev)
	return rev, err
}

type admission struct {
	maxDevices sql.NullInt64
	// held: the limit is the free plan's, the owner's payment overdue.
	held                       bool
	used                       int64
	keyTaken, v4Taken, v6Taken bool
}

func (t *hotTx) admit(appID, pub, v4, v6 string) (admission, error) {
	var a admission
	err := t.stmt(hotAdmit).QueryRowContext(t.ctx, appID, appID, appID, pub, v4, v6).
		Scan(&a.maxDevices, &a.held, &a.used, &a.keyTaken, &a.v4Taken, &a.v6Taken)
	return a, err
}

func (t *hotTx) taken(which int, addr string) (bool, error) {
	var taken bool
	err := t.stmt(which).QueryRowContext(t.ctx, addr).Scan(&taken)
	return taken, err
}

// device reads the app's device for rotation, with the app's owner.
func (t *hotTx) device(appID, deviceID string) (d Device, owner string, err error) {
	var ref sql.NullString
	err = t.stmt(hotDevice).QueryRowContext(t.ctx, deviceID, appID).Scan(&d.PublicKey, &d.IPv4, &d.IPv6, &ref, &owner)
	if errors.Is(err, sql.ErrNoRows) {
		return Device{}, "", ErrNotFound
	}
	d.ID, d.AppID = deviceID, appID
	if ref.Valid {
		d.ExternalRef = &ref.String
	}
	return d, owner, err
}

// rekey stores a rotated device's key, addresses, revision and token.
func (t *hotTx) rekey(d Device) error {
	_, err := t.stmt(hotRekey).ExecContext(t.ctx, d.PublicKey, d.IPv4, d.IPv6, d.Revision, nullable(d.TokenHash), d.ID)
	return err
}

// consumeTicket deletes an unexpired ticket of the app; ErrTicketInvalid
// when there is none (unknown, used, expired or another app's).
func (t *hotTx) consumeTicket(appID string, u *TicketUse) error {
	res, err := t.stmt(hotConsumeTicket).ExecContext(t.ctx, u.Hash, appID, u.Now.UTC())
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrTicketInvalid
	}
	return nil
}

// nullable turns an optional string into a statement argument.
func nullable(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}

func (t *hotTx) insertDevice(d Device) error {
	if _, err := t.stmt(hotInsert).ExecContext(t.ctx, d.ID, d.AppID, d.PublicKey, d.IPv4, d.IPv6, nullable(d.ExternalRef), d.Revision, nullable(d.TokenHash)); err != nil {
		return err
	}
	_, err := t.stmt(hotCountUp).ExecContext(t.ctx, d.AppID)
	return err
}
