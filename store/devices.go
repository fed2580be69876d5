package store

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
)

// Default tunnel networks. Every device gets one address from each, unique
// across the installation and the same on every node.
var (
	DefaultTunnelIPv4 = netip.MustParsePrefix("10.64.0.0/10")
	DefaultTunnelIPv6 = netip.MustParsePrefix("fd74:6c73:7670:1::/64")
)

// maxAllocTries bounds the random probes for a free address. With the IPv4
// network a quarter full a probe fails with probability 1/4, so 64 failures
// in a row (p = 2^-128) mean the network is effectively exhausted.
const maxAllocTries = 64

// ErrAddressesExhausted is returned when no free tunnel address is found.
var ErrAddressesExhausted = errors.New("tunnel address space exhausted")

// Gateway returns the first host address of p, which nodes use as their own
// tunnel address and which is never given to a device.
func Gateway(p netip.Prefix) netip.Addr { return p.Masked().Addr().Next() }

// ValidatePublicKey checks a WireGuard public key: standard base64 of 32
// bytes that are not all zero. It returns the canonical encoding.
func ValidatePublicKey(field, s string) (string, error) {
	if len(s) != 44 {
		return "", invalid(field, "must be a base64 WireGuard public key (44 characters)")
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != 32 {
		return "", invalid(field, "must be a base64 WireGuard public key (32 bytes)")
	}
	var zero [32]byte
	if [32]byte(b) == zero {
		return "", invalid(field, "must not be the all-zero key")
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

func validExternalRef(ref *string) error {
	if ref == nil {
		return nil
	}
	if len(*ref) > 128 || !validText(*ref, 128) {
		return invalid("external_ref", "must be 1-128 printable characters")
	}
	return nil
}

// randomHost picks a uniformly random host address in p other than the
// network address, the gateway and (for IPv4) the broadcast address.
func randomHost(p netip.Prefix) netip.Addr {
	p = p.Masked()
	base := p.Addr().As16()
	hostBits := p.Addr().BitLen() - p.Bits()
	for {
		var r [16]byte
		rand.Read(r[:])
		a := base
		// Copy the random host part into the low hostBits bits.
		for i := 15; i >= 0; i-- {
			bitStart := (15 - i) * 8 // bits below this byte
			if bitStart >= hostBits {
				break
			}
			mask := byte(0xff)
			if rem := hostBits - bitStart; rem < 8 {
				mask = byte(1<<rem - 1)
			}
			a[i] = base[i]&^mask | r[i]&mask
		}
		addr := netip.AddrFrom16(a)
		if p.Addr().Is4() {
			addr = addr.Unmap()
		}
		if addr == p.Addr() || addr == Gateway(p) || (p.Addr().Is4() && isBroadcast(addr, p)) {
			continue
		}
		return addr
	}
}

func isBroadcast(a netip.Addr, p netip.Prefix) bool {
	b := a.As4()
	v := binary.BigEndian.Uint32(b[:])
	hostMask := uint32(1)<<(32-p.Bits()) - 1
	return v&hostMask == hostMask
}

// NewDevice is what an app registers.
type NewDevice struct {
	PublicKey   string
	ExternalRef *string
	// TokenHash is the SHA-256 (hex) of the device token the registration
	// answers; empty issues none.
	TokenHash string
	// Ticket, when set, is the registration ticket the device registers
	// with: the registration deletes it in the transaction that admits the
	// device, and fails with ErrTicketInvalid when it is unknown, used,
	// expired at Ticket.Now or another app's. A refused registration
	// leaves the ticket for another try.
	Ticket *TicketUse
}

// TicketUse is a registration ticket presented at a time.
type TicketUse struct {
	Hash string
	Now  time.Time
}

// validTokenHash checks an optional device token hash.
func validTokenHash(h string) (*string, error) {
	if h == "" {
		return nil, nil
	}
	if !hexHashRE.MatchString(h) {
		return nil, invalid("token_hash", "must be a hex SHA-256")
	}
	return &h, nil
}

// RegisterDevice adds a device to an app: it checks the owner's plan limit,
// rejects a known key with ErrConflict, allocates random tunnel addresses
// and bumps the sync revision, atomically.
//
// Concurrent registrations are group-committed: whatever is queued while a
// transaction runs goes into the next one, so SQLite's single writer pays
// one BEGIN/COMMIT and one revision bump per batch instead of per device.
// Each registration is still checked on its own inside the transaction,
// after the ones before it, so a batch can never over-allocate a plan.
// The commit hooks see one Change per batch, listing its devices.
func (s *Store) RegisterDevice(ctx context.Context, appID string, nd NewDevice) (Device, error) {
	pub, err := ValidatePublicKey("public_key", nd.PublicKey)
	if err != nil {
		return Device{}, err
	}
	if err := validExternalRef(nd.ExternalRef); err != nil {
		return Device{}, err
	}
	tok, err := validTokenHash(nd.TokenHash)
	if err != nil {
		return Device{}, err
	}
	if nd.Ticket != nil && !hexHashRE.MatchString(nd.Ticket.Hash) {
		return Device{}, invalid("ticket", "must be a hex SHA-256")
	}
	req := &regRequest{ctx: ctx, d: Device{ID: uuid.NewString(), AppID: appID, PublicKey: pub, ExternalRef: nd.ExternalRef, TokenHash: tok},
		ticket: nd.Ticket, done: make(chan regResult, 1)}
	s.reg.enqueue(s, req)
	r := <-req.done
	if r.err != nil {
		return Device{}, r.err
	}
	return r.d, nil
}

// regRequest is one queued registration.
type regRequest struct {
	ctx    context.Context
	d      Device
	ticket *TicketUse
	done   chan regResult
}

type regResult struct {
	d   Device
	err error
}

// maxGroup bounds how many registrations share one transaction.
const maxGroup = 256

// registrar batches registrations. While a drain goroutine runs, new
// requests join the queue it takes its next batch from.
type registrar struct {
	mu      sync.Mutex
	pending []*regRequest
	running bool
	wg      sync.WaitGroup
}

func (r *registrar) enqueue(s *Store, req *regRequest) {
	r.mu.Lock()
	r.pending = append(r.pending, req)
	if !r.running {
		r.running = true
		r.wg.Add(1)
		go r.drain(s)
	}
	r.mu.Unlock()
}

func (r *registrar) drain(s *Store) {
	defer r.wg.Done()
	for {
		r.mu.Lock()
		n := min(len(r.pending), maxGroup)
		if n == 0 {
			r.running = false
			r.mu.Unlock()
			return
		}
		batch := r.pending[:n:n]
		r.pending = r.pending[n:]
		r.mu.Unlock()
		s.registerBatch(batch)
	}
}

// registerBatch runs a batch in one transaction. A check that fails
// (plan limit, known key) fails only its own request. An unexpected error
// rolls the batch back and each request is retried alone, so one cannot
// sink the others.
func (s *Store) registerBatch(batch []*regRequest) {
	live := batch[:0:0]
	for _, req := range batch {
		if err := req.ctx.Err(); err != nil {
			req.done <- regResult{err: err}
			continue
		}
		live = append(live, req)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	results := make([]regResult, len(live))
	err := s.hotWrite(ctx, func(h *hotTx, ch *Change) error {
		rev, err := h.bumpRevision()
		if err != nil {
			return err
		}
		ch.Revision = rev
		for i, req := range live {
			d := req.d
			d.Revision = rev
			err := s.admitDevice(h, &d, true)
			if err == nil && req.ticket != nil {
				// After the checks, so a refused registration keeps its ticket.
				err = h.consumeTicket(d.AppID, req.ticket)
			}
			if err != nil {
				if isCheckFailure(err) {
					results[i] = regResult{err: err}
					continue
				}
				return err
			}
			if err := h.insertDevice(d); err != nil {
				return err
			}
			results[i] = regResult{d: d}
			ch.Upserted = append(ch.Upserted, d)
		}
		if len(ch.Upserted) == 0 {
			return errNothingAdmitted // a refusal is no change: keep the revision
		}
		return nil
	})
	if errors.Is(err, errNothingAdmitted) {
		err = nil // rolled back; results hold each refusal
	}
	err = translate(err)
	if err != nil && len(live) > 1 {
		for _, req := range live {
			s.registerBatch([]*regRequest{req})
		}
		return
	}
	for i, req := range live {
		if err != nil {
			results[i] = regResult{err: err}
		}
		req.done <- results[i]
	}
}

// errNothingAdmitted rolls back a batch in which every registration was
// refused.
var errNothingAdmitted = errors.New("no registration admitted")

// isCheckFailure reports whether err is a per-device refusal rather than
// a database failure.
func isCheckFailure(err error) bool {
	var ve *ValidationError
	return errors.Is(err, ErrPlanLimit) || errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound) ||
		errors.Is(err, ErrAddressesExhausted) || errors.Is(err, ErrTicketInvalid) || errors.As(err, &ve)
}

// admitDevice is device admission, for registration and rotation alike:
// in one query it checks that the key is free, that the owner's plan has
// room for a new device (newDevice; a rotation adds none) and that two
// random addresses are free; then it fills in the addresses, drawing
// again in the rare case one is taken. The caller's transaction has bumped
// the revision, which holds the write lock, so the checks and the write
// that follows cannot race.
func (s *Store) admitDevice(h *hotTx, d *Device, newDevice bool) error {
	v4, v6 := randomHost(s.tunnel4).String(), randomHost(s.tunnel6).String()
	a, err := h.admit(d.AppID, d.PublicKey, v4, v6)
	switch {
	case err != nil:
		return err
	case !a.maxDevices.Valid:
		return ErrNotFound
	case newDevice && a.used >= a.maxDevices.Int64:
		return planLimit{Max: a.maxDevices.Int64, Held: a.held}.err()
	case a.keyTaken:
		return fmt.Errorf("%w: public key already registered", ErrConflict)
	}
	for i := 0; a.v4Taken; i++ {
		if i == maxAllocTries {
			return ErrAddressesExhausted
		}
		v4 = randomHost(s.tunnel4).String()
		if a.v4Taken, err = h.taken(hotIPv4Taken, v4); err != nil {
			return err
		}
	}
	for i := 0; a.v6Taken; i++ {
		if i == maxAllocTries {
			return ErrAddressesExhausted
		}
		v6 = randomHost(s.tunnel6).String()
		if a.v6Taken, err = h.taken(hotIPv6Taken, v6); err != nil {
			return err
		}
	}
	d.IPv4, d.IPv6 = v4, v6
	return nil
}

// RotateDevice replaces a device's key and tunnel addresses atomically: the
// old key is removed from nodes and the new one installed in the same
// revision, and the new addresses do not link the old key's sessions to
// the new key's. The device's token is replaced too, by tokenHash (the
// SHA-256 of the token the rotation answers), or by none when it is
// empty: a token never outlives the key it was issued with.
func (s *Store) RotateDevice(ctx context.Context, appID, deviceID, newKey, tokenHash string) (Device, error) {
	pub, err := ValidatePublicKey("public_key", newKey)
	if err != nil {
		return Device{}, err
	}
	tok, err := validTokenHash(tokenHash)
	if err != nil {
		return Device{}, err
	}
	var d Device
	err = s.hotWrite(ctx, func(h *hotTx, ch *Change) error {
		rev, err := h.bumpRevision()
		if err != nil {
			return err
		}
		var owner string
		if d, owner, err = h.device(appID, deviceID); err != nil {
			return err
		}
		old := d.PublicKey
		d.PublicKey, d.Revision, d.TokenHash = pub, rev, tok
		// The old addresses are still taken, so the new ones differ.
		if err := s.admitDevice(h, &d, false); err != nil {
			return err
		}
		if err := h.rekey(d); err != nil {
			return err
		}
		*ch = Change{Revision: rev, Upserted: []Device{d}, Removed: []string{old}, OwnerID: owner}
		return nil
	})
	if err != nil {
		return Device{}, translate(err)
	}
	return d, nil
}

// DeleteDevice hard-deletes one device of the app.
func (s *Store) DeleteDevice(ctx context.Context, appID, deviceID string) error {
	_, err := s.writeChange(ctx, func(tx *gorm.DB, ch *Change) error {
		var owner string
		if err := tx.Model(&App{}).Where("id = ?", appID).Pluck("owner_id", &owner).Error; err != nil {
			return err
		}
		if err := deleteDevicesWhere(tx, ch, owner, "id = ? AND app_id = ?", deviceID, appID); err != nil {
			return err
		}
		if ch.Revision == 0 {
			return ErrNotFound
		}
		return nil
	})
	return err
}

// GetDevice returns one device of the app; ErrNotFound for another app's.
func (s *Store) GetDevice(ctx context.Context, appID, deviceID string) (Device, error) {
	var d Device
	err := s.read(ctx).Where("id = ? AND app_id = ?", deviceID, appID).Take(&d).Error
	return d, translate(err)
}

// ListDevices pages through an app's devices in ID order (IDs are random,
// so the order reveals nothing), starting after the given ID.
func (s *Store) ListDevices(ctx context.Context, appID, afterID string, limit int) ([]Device, error) {
	var out []Device
	err := s.read(ctx).Where("app_id = ? AND id > ?", appID, afterID).Order("id").Limit(limit).Find(&out).Error
	return out, translate(err)
}
