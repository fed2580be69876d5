package store

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Sign-in credentials beyond the password: single-use mailed tokens
// (email verification, password reset), a TOTP second factor and its
// recovery codes. Each holds only what its check needs — a hash, an
// encrypted secret, an expiry or a counter — and goes with the account
// (ON DELETE CASCADE). Nothing here records when or from where anyone
// signed in.

// Kinds of owner tokens.
const (
	TokenVerifyEmail   = "verify_email"
	TokenResetPassword = "reset_password"
)

// OwnerToken is a single-use link mailed to an owner. Only its hash is
// kept, and it is deleted when used, replaced or expired.
type OwnerToken struct {
	Hash      string    `gorm:"primaryKey;size:64" purpose:"SHA-256 of the 256-bit token in the mailed link; the token itself is never stored"`
	OwnerID   string    `gorm:"size:36;not null;index" purpose:"the account the link is for"`
	Kind      string    `gorm:"size:16;not null" purpose:"verify_email or reset_password"`
	ExpiresAt time.Time `gorm:"not null;index" purpose:"when the unused link stops working (a credential's expiry, not an activity time)"`
}

func (OwnerToken) privacyDoc() tableDoc {
	return tableDoc{Purpose: "single-use links mailed for email verification and password reset",
		Retention: "until used, replaced by a newer link of the same kind, or expired (then purged); with the account", Subject: SubjectOwner}
}

// TOTPCredential is an account's RFC 6238 second factor. The secret is
// encrypted by the control plane before it reaches the store.
type TOTPCredential struct {
	OwnerID string `gorm:"primaryKey;size:36" purpose:"the account"`
	Secret  string `gorm:"size:255;not null" purpose:"the TOTP secret, encrypted at rest with AES-256-GCM under the server's secret key"`
	Enabled bool   `gorm:"not null" purpose:"false while enrolment awaits its confirmation code"`
	// LastStep is what RFC 6238 §5.2 asks for: a code, once accepted, must
	// not be accepted again. It is the credential's counter, overwritten at
	// each use, never a list.
	LastStep int64 `gorm:"not null" purpose:"RFC 6238 time step (Unix time / 30 s) of the last accepted code, so a code cannot be replayed within its validity window; overwritten at each use, not a history"`
}

// TableName keeps the table name readable.
func (TOTPCredential) TableName() string { return "totp_credentials" }

func (TOTPCredential) privacyDoc() tableDoc {
	return tableDoc{Purpose: "the TOTP second factor of owners and operators who enable it",
		Retention: "until the second factor is disabled or the account is deleted", Subject: SubjectOwner}
}

// RecoveryCode is one single-use code that stands in for a TOTP code.
type RecoveryCode struct {
	Hash    string `gorm:"primaryKey;size:64" purpose:"SHA-256 of an 80-bit recovery code; the code is shown once and never stored"`
	OwnerID string `gorm:"size:36;not null;index" purpose:"the account"`
}

func (RecoveryCode) privacyDoc() tableDoc {
	return tableDoc{Purpose: "single-use recovery codes for the TOTP second factor",
		Retention: "until used, replaced, the second factor disabled or the account deleted", Subject: SubjectOwner}
}

// CreateOwnerToken stores the hash of a new single-use token of kind for
// the owner. It replaces the owner's earlier tokens of that kind, so only
// the newest link works, and purges expired tokens of every owner.
func (s *Store) CreateOwnerToken(ctx context.Context, ownerID, kind, hash string, expires, now time.Time) error {
	if !hexHashRE.MatchString(hash) {
		return invalid("hash", "must be a hex SHA-256")
	}
	if kind != TokenVerifyEmail && kind != TokenResetPassword {
		return invalid("kind", "must be verify_email or reset_password")
	}
	return s.write(ctx, func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&Owner{}).Where("id = ?", ownerID).Count(&n).Error; err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		if err := tx.Where("expires_at <= ? OR (owner_id = ? AND kind = ?)", now.UTC(), ownerID, kind).Delete(&OwnerToken{}).Error; err != nil {
			return err
		}
		return tx.Create(&OwnerToken{Hash: hash, OwnerID: ownerID, Kind: kind, ExpiresAt: expires.UTC()}).Error
	})
}

// spendOwnerToken runs use with the owner of the token of kind with hash,
// in one transaction that deletes the token. ErrNotFound when the token is
// unknown, of another kind or expired; an expired one is deleted all the
// same.
func (s *Store) spendOwnerToken(ctx context.Context, kind, hash string, now time.Time, use func(tx *gorm.DB, ownerID string) error) error {
	expired := false
	err := s.write(ctx, func(tx *gorm.DB) error {
		var t OwnerToken
		if err := tx.Where("hash = ?", hash).Take(&t).Error; err != nil {
			return err
		}
		if t.Kind != kind {
			return ErrNotFound
		}
		if err := tx.Where("hash = ?", hash).Delete(&OwnerToken{}).Error; err != nil {
			return err
		}
		if !now.Before(t.ExpiresAt) {
			expired = true // commit the deletion, then refuse
			return nil
		}
		return use(tx, t.OwnerID)
	})
	if err == nil && expired {
		return ErrNotFound
	}
	return err
}

// OwnerByToken returns the owner of the unexpired token of kind with hash,
// without spending it. ErrNotFound when there is none.
func (s *Store) OwnerByToken(ctx context.Context, kind, hash string, now time.Time) (Owner, error) {
	var o Owner
	err := s.read(ctx).Joins("JOIN owner_tokens ON owner_tokens.owner_id = owners.id").
		Where("owner_tokens.hash = ? AND owner_tokens.kind = ? AND owner_tokens.expires_at > ?", hash, kind, now.UTC()).
		Take(&o).Error
	if err != nil {
		return Owner{}, translate(err)
	}
	return o, nil
}

// VerifyEmail spends an email verification token (given as its hash) and
// marks its owner's address verified. ErrNotFound when the token is
// unknown, used or expired.
func (s *Store) VerifyEmail(ctx context.Context, hash string, now time.Time) (Owner, error) {
	var o Owner
	err := s.spendOwnerToken(ctx, TokenVerifyEmail, hash, now, func(tx *gorm.DB, id string) error {
		if err := tx.Model(&Owner{}).Where("id = ?", id).Update("email_verified", true).Error; err != nil {
			return err
		}
		if err := tx.Where("owner_id = ? AND kind = ?", id, TokenVerifyEmail).Delete(&OwnerToken{}).Error; err != nil {
			return err
		}
		return tx.Where("id = ?", id).Take(&o).Error
	})
	if err != nil {
		return Owner{}, err
	}
	return o, nil
}

// ResetPassword spends a password reset token (given as its hash), sets
// the new password hash and increments the owner's token epoch, so every
// sign-in token issued so far stops working. The link reached the owner's
// mailbox, so the address counts as verified too; every other link of the
// owner is deleted. ErrNotFound when the token is unknown, used or
// expired.
func (s *Store) ResetPassword(ctx context.Context, hash, passwordHash string, now time.Time) (Owner, error) {
	if passwordHash == "" {
		return Owner{}, invalid("password", "is required")
	}
	var o Owner
	err := s.spendOwnerToken(ctx, TokenResetPassword, hash, now, func(tx *gorm.DB, id string) error {
		if err := tx.Model(&Owner{}).Where("id = ?", id).Updates(map[string]any{
			"password_hash": passwordHash, "email_verified": true, "token_epoch": gorm.Expr("token_epoch + 1"),
		}).Error; err != nil {
			return err
		}
		// The address is verified now, so no link of the owner is needed.
		if err := tx.Where("owner_id = ?", id).Delete(&OwnerToken{}).Error; err != nil {
			return err
		}
		return tx.Where("id = ?", id).Take(&o).Error
	})
	if err != nil {
		return Owner{}, err
	}
	return o, nil
}

// SetPassword replaces the owner's password hash and increments the token
// epoch (revoking every sign-in token); it returns the updated owner, so
// the caller can sign the current session in again. Pending reset links
// are deleted: the password they would replace is gone.
func (s *Store) SetPassword(ctx context.Context, ownerID, passwordHash string) (Owner, error) {
	if passwordHash == "" {
		return Owner{}, invalid("password", "is required")
	}
	var o Owner
	err := s.write(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&Owner{}).Where("id = ?", ownerID).Updates(map[string]any{
			"password_hash": passwordHash, "token_epoch": gorm.Expr("token_epoch + 1"),
		})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		if err := tx.Where("owner_id = ? AND kind = ?", ownerID, TokenResetPassword).Delete(&OwnerToken{}).Error; err != nil {
			return err
		}
		return tx.Where("id = ?", ownerID).Take(&o).Error
	})
	if err != nil {
		return Owner{}, err
	}
	return o, nil
}

// PurgeExpiredOwnerTokens deletes every token whose link has expired and
// returns how many went.
func (s *Store) PurgeExpiredOwnerTokens(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *gorm.DB) error {
		res := tx.Where("expires_at <= ?", now.UTC()).Delete(&OwnerToken{})
		n = res.RowsAffected
		return res.Error
	})
	return n, err
}

// GetTOTP returns the owner's TOTP credential (enabled or awaiting
// confirmation); ErrNotFound when there is none.
func (s *Store) GetTOTP(ctx context.Context, ownerID string) (TOTPCredential, error) {
	var t TOTPCredential
	if err := s.read(ctx).Where("owner_id = ?", ownerID).Take(&t).Error; err != nil {
		return TOTPCredential{}, translate(err)
	}
	return t, nil
}

// TOTPEnabled reports whether the owner has a confirmed second factor.
func (s *Store) TOTPEnabled(ctx context.Context, ownerID string) (bool, error) {
	var n int64
	err := s.read(ctx).Model(&TOTPCredential{}).Where("owner_id = ? AND enabled = ?", ownerID, true).Count(&n).Error
	return n > 0, translate(err)
}

// StartTOTP stores a new, not yet enabled secret (already encrypted) for
// the owner, replacing an unconfirmed one. ErrConflict when a second
// factor is enabled: it must be disabled first.
func (s *Store) StartTOTP(ctx context.Context, ownerID, secret string) error {
	if secret == "" || len(secret) > 255 {
		return invalid("secret", "must be 1-255 bytes")
	}
	return s.write(ctx, func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&Owner{}).Where("id = ?", ownerID).Count(&n).Error; err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		var t TOTPCredential
		err := tx.Where("owner_id = ?", ownerID).Take(&t).Error
		switch {
		case err == nil && t.Enabled:
			return ErrConflict
		case err == nil:
			return tx.Model(&TOTPCredential{}).Where("owner_id = ?", ownerID).Updates(map[string]any{"secret": secret, "last_step": 0}).Error
		case errors.Is(err, gorm.ErrRecordNotFound):
			return tx.Create(&TOTPCredential{OwnerID: ownerID, Secret: secret}).Error
		default:
			return err
		}
	})
}

// EnableTOTP confirms the owner's pending second factor with the time step
// of the code that confirmed it and stores the recovery codes' hashes
// (replacing any). ErrNotFound when no enrolment is pending; ErrConflict
// when the factor is already enabled.
func (s *Store) EnableTOTP(ctx context.Context, ownerID string, step int64, recoveryHashes []string) error {
	for _, h := range recoveryHashes {
		if !hexHashRE.MatchString(h) {
			return invalid("recovery_codes", "must be hex SHA-256 hashes")
		}
	}
	return s.write(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&TOTPCredential{}).Where("owner_id = ? AND enabled = ?", ownerID, false).
			Updates(map[string]any{"enabled": true, "last_step": step})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			var n int64
			if err := tx.Model(&TOTPCredential{}).Where("owner_id = ?", ownerID).Count(&n).Error; err != nil {
				return err
			}
			if n > 0 {
				return ErrConflict
			}
			return ErrNotFound
		}
		return replaceRecoveryCodes(tx, ownerID, recoveryHashes)
	})
}

func replaceRecoveryCodes(tx *gorm.DB, ownerID string, hashes []string) error {
	if err := tx.Where("owner_id = ?", ownerID).Delete(&RecoveryCode{}).Error; err != nil {
		return err
	}
	if len(hashes) == 0 {
		return nil
	}
	rows := make([]RecoveryCode, len(hashes))
	for i, h := range hashes {
		rows[i] = RecoveryCode{Hash: h, OwnerID: ownerID}
	}
	return tx.Create(&rows).Error
}

// AcceptTOTPStep records that a code of time step step was accepted for
// the owner's enabled second factor. ErrConflict when a code of this step
// or a later one was accepted before: the code is a replay. The check and
// the write are one statement, so two replicas cannot both accept a code.
func (s *Store) AcceptTOTPStep(ctx context.Context, ownerID string, step int64) error {
	return s.write(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&TOTPCredential{}).Where("owner_id = ? AND enabled = ? AND last_step < ?", ownerID, true, step).
			Update("last_step", step)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrConflict
		}
		return nil
	})
}

// UseRecoveryCode spends one of the owner's recovery codes (given as its
// hash). ErrNotFound when the owner has no such unused code.
func (s *Store) UseRecoveryCode(ctx context.Context, ownerID, hash string) error {
	return s.write(ctx, func(tx *gorm.DB) error {
		res := tx.Where("owner_id = ? AND hash = ?", ownerID, hash).Delete(&RecoveryCode{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// CountRecoveryCodes returns how many unused recovery codes the owner has.
func (s *Store) CountRecoveryCodes(ctx context.Context, ownerID string) (int64, error) {
	var n int64
	err := s.read(ctx).Model(&RecoveryCode{}).Where("owner_id = ?", ownerID).Count(&n).Error
	return n, translate(err)
}

// DisableTOTP deletes the owner's second factor and recovery codes.
// ErrNotFound when there is none.
func (s *Store) DisableTOTP(ctx context.Context, ownerID string) error {
	return s.write(ctx, func(tx *gorm.DB) error {
		res := tx.Where("owner_id = ?", ownerID).Delete(&TOTPCredential{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return tx.Where("owner_id = ?", ownerID).Delete(&RecoveryCode{}).Error
	})
}

// RewrapTOTPSecrets passes every stored TOTP secret to rewrap and stores
// what it returns when it reports a change: the server re-encrypts
// secrets under its current key after a key rotation. It returns how many
// changed.
func (s *Store) RewrapTOTPSecrets(ctx context.Context, rewrap func(ownerID, secret string) (string, bool, error)) (int, error) {
	var n int
	err := s.write(ctx, func(tx *gorm.DB) error {
		var all []TOTPCredential
		if err := tx.Clauses(lockingClause(tx)...).Find(&all).Error; err != nil {
			return err
		}
		for _, t := range all {
			secret, changed, err := rewrap(t.OwnerID, t.Secret)
			if err != nil {
				return err
			}
			if !changed {
				continue
			}
			if err := tx.Model(&TOTPCredential{}).Where("owner_id = ?", t.OwnerID).Update("secret", secret).Error; err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// lockingClause locks the selected rows on PostgreSQL (SQLite's single
// writer already serialises).
func lockingClause(tx *gorm.DB) []clause.Expression {
	if tx.Dialector.Name() == DriverPostgres {
		return []clause.Expression{clause.Locking{Strength: "UPDATE"}}
	}
	return nil
}
