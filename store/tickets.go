package store

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"
)

// Registration tickets and device tokens: the credentials an app may carry.
//
// A ticket is minted by the owner's backend with a secret key and handed
// to one app install, which registers one device with it, once, within
// minutes; registration deletes it in the same transaction that admits
// the device, so two replicas cannot both accept it. A device token is
// answered once at registration (and at rotation, and by a reset) and lets
// the device manage itself only. Both are stored as SHA-256 hashes, and
// neither carries any device-level time: a ticket's expiry is the
// credential's, and it is deleted with the ticket.

// MaxTicketTTL bounds how long an unused registration ticket works.
const MaxTicketTTL = 10 * time.Minute

// ErrTicketInvalid is returned when a registration's ticket is unknown,
// already used or expired.
var ErrTicketInvalid = errors.New("registration ticket unknown, used or expired")

// TicketAuth is what a registration ticket authenticates.
type TicketAuth struct {
	AppID, OwnerID, OwnerStatus string
	ExternalRef                 *string
	ExpiresAt                   time.Time
}

// Expired reports whether the ticket no longer works at now.
func (t TicketAuth) Expired(now time.Time) bool { return !now.Before(t.ExpiresAt) }

// CreateTicket stores a new ticket's hash for appID. The caller, which has
// the clock, sets ExpiresAt (at most MaxTicketTTL ahead).
func (s *Store) CreateTicket(ctx context.Context, t RegistrationTicket) (RegistrationTicket, error) {
	switch {
	case !hexHashRE.MatchString(t.Hash):
		return RegistrationTicket{}, invalid("hash", "must be a hex SHA-256")
	case t.ExpiresAt.IsZero():
		return RegistrationTicket{}, invalid("expires_at", "is required")
	}
	if err := validExternalRef(t.ExternalRef); err != nil {
		return RegistrationTicket{}, err
	}
	t.ExpiresAt = t.ExpiresAt.UTC()
	err := s.write(ctx, func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&App{}).Where("id = ?", t.AppID).Count(&n).Error; err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		return tx.Create(&t).Error
	})
	if err != nil {
		return RegistrationTicket{}, err
	}
	return t, nil
}

// AuthenticateTicket looks a ticket up by its hash. An expired ticket is
// still returned; the caller refuses it (TicketAuth.Expired) and may
// DeleteTicket it.
func (s *Store) AuthenticateTicket(ctx context.Context, hash string) (TicketAuth, error) {
	var out []TicketAuth
	err := s.read(ctx).Raw(`SELECT registration_tickets.app_id, apps.owner_id, owners.status AS owner_status,
		registration_tickets.external_ref, registration_tickets.expires_at
		FROM registration_tickets JOIN apps ON apps.id = registration_tickets.app_id JOIN owners ON owners.id = apps.owner_id
		WHERE registration_tickets.hash = ?`, hash).Scan(&out).Error
	if err != nil {
		return TicketAuth{}, translate(err)
	}
	if len(out) == 0 {
		return TicketAuth{}, ErrNotFound
	}
	return out[0], nil
}

// DeleteTicket deletes a ticket (an expired one that was presented).
func (s *Store) DeleteTicket(ctx context.Context, hash string) error {
	return s.write(ctx, func(tx *gorm.DB) error {
		return tx.Where("hash = ?", hash).Delete(&RegistrationTicket{}).Error
	})
}

// PurgeExpiredTickets deletes every ticket expired at now.
func (s *Store) PurgeExpiredTickets(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *gorm.DB) error {
		res := tx.Where("expires_at <= ?", now.UTC()).Delete(&RegistrationTicket{})
		n = res.RowsAffected
		return res.Error
	})
	return n, err
}

// DeviceAuth is what a device token authenticates: one device of one app.
type DeviceAuth struct {
	DeviceID, AppID, OwnerID, OwnerStatus string
}

// AuthenticateDeviceToken looks a device up by the hash of its token.
func (s *Store) AuthenticateDeviceToken(ctx context.Context, hash string) (DeviceAuth, error) {
	var out []DeviceAuth
	err := s.read(ctx).Raw(`SELECT devices.id AS device_id, devices.app_id, apps.owner_id, owners.status AS owner_status
		FROM devices JOIN apps ON apps.id = devices.app_id JOIN owners ON owners.id = apps.owner_id
		WHERE devices.token_hash = ?`, hash).Scan(&out).Error
	if err != nil {
		return DeviceAuth{}, translate(err)
	}
	if len(out) == 0 {
		return DeviceAuth{}, ErrNotFound
	}
	return out[0], nil
}

// ResetDeviceToken replaces the token of one of the app's devices, for a
// device that lost its own; the old token stops working at once. Nodes
// are not concerned: the WireGuard key stays.
func (s *Store) ResetDeviceToken(ctx context.Context, appID, deviceID, tokenHash string) error {
	if !hexHashRE.MatchString(tokenHash) {
		return invalid("token_hash", "must be a hex SHA-256")
	}
	return s.write(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&Device{}).Where("id = ? AND app_id = ?", deviceID, appID).Update("token_hash", tokenHash)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// AddRegistrationCapHits adds to each app's count of registrations its
// cap refused. Apps deleted meanwhile are skipped.
func (s *Store) AddRegistrationCapHits(ctx context.Context, hits map[string]int64) error {
	if len(hits) == 0 {
		return nil
	}
	return s.write(ctx, func(tx *gorm.DB) error {
		for appID, n := range hits {
			if err := tx.Model(&App{}).Where("id = ?", appID).
				Update("registration_cap_hits", gorm.Expr("registration_cap_hits + ?", n)).Error; err != nil {
				return err
			}
		}
		return nil
	})
}
