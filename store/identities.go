package store

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"gorm.io/gorm"
)

// OwnerIdentity links an account to a person at an OpenID provider, for
// single sign-on. Only the provider's issuer and the subject it names the
// person by are kept: nothing else of the ID token (no name, no email, no
// time of sign-in).
type OwnerIdentity struct {
	ID      string `gorm:"primaryKey;size:36" purpose:"random identifier"`
	OwnerID string `gorm:"size:36;not null;index" purpose:"the account this identity signs in to"`
	Issuer  string `gorm:"size:512;not null;uniqueIndex:idx_owner_identities_issuer_subject" purpose:"the OpenID provider (its issuer identifier, as configured by the operator)"`
	Subject string `gorm:"size:255;not null;uniqueIndex:idx_owner_identities_issuer_subject" purpose:"the provider's stable identifier of the person (the ID token's sub claim)"`
}

func (OwnerIdentity) privacyDoc() tableDoc {
	return tableDoc{Purpose: "single sign-on identities linked to an account: the provider and the subject it names the person by, nothing else from the provider",
		Retention: "until the owner unlinks it or the account is deleted (hard delete)", Subject: SubjectOwner}
}

// Validate checks the stored invariants of an identity.
func (i *OwnerIdentity) Validate() error {
	switch {
	case i.Issuer == "" || len(i.Issuer) > 512 || !validText(i.Issuer, 512):
		return invalid("issuer", "must be 1-512 printable characters")
	case i.Subject == "" || len(i.Subject) > 255 || !validText(i.Subject, 255):
		return invalid("subject", "must be 1-255 printable characters")
	}
	return nil
}

// LinkIdentity links (issuer, subject) to the owner. ErrConflict when the
// identity is linked already, to this account or another.
func (s *Store) LinkIdentity(ctx context.Context, ownerID, issuer, subject string) (OwnerIdentity, error) {
	id := OwnerIdentity{ID: uuid.NewString(), OwnerID: ownerID, Issuer: issuer, Subject: subject}
	if err := id.Validate(); err != nil {
		return OwnerIdentity{}, err
	}
	err := s.write(ctx, func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&Owner{}).Where("id = ?", ownerID).Count(&n).Error; err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		return tx.Create(&id).Error
	})
	if err != nil {
		return OwnerIdentity{}, err
	}
	return id, nil
}

// CreateOwnerWithIdentity stores a new account and links (issuer, subject)
// to it in one transaction: either both exist afterwards or neither.
// ErrConflict when the email is taken or the identity is linked already.
func (s *Store) CreateOwnerWithIdentity(ctx context.Context, o Owner, planSlug, issuer, subject string) (Owner, error) {
	id := OwnerIdentity{ID: uuid.NewString(), Issuer: issuer, Subject: subject}
	if err := id.Validate(); err != nil {
		return Owner{}, err
	}
	prepareOwner(&o)
	err := s.write(ctx, func(tx *gorm.DB) error {
		if err := createOwner(tx, &o, planSlug); err != nil {
			return err
		}
		id.OwnerID = o.ID
		return tx.Create(&id).Error
	})
	if err != nil {
		return Owner{}, err
	}
	return o, nil
}

// GetOwnerByIdentity returns the account (issuer, subject) is linked to;
// ErrNotFound when it is linked to none.
func (s *Store) GetOwnerByIdentity(ctx context.Context, issuer, subject string) (Owner, error) {
	var id OwnerIdentity
	if err := s.read(ctx).Where("issuer = ? AND subject = ?", issuer, subject).Take(&id).Error; err != nil {
		return Owner{}, translate(err)
	}
	return s.GetOwner(ctx, id.OwnerID)
}

// ListIdentities returns the owner's linked identities ordered by issuer
// and subject.
func (s *Store) ListIdentities(ctx context.Context, ownerID string) ([]OwnerIdentity, error) {
	out := []OwnerIdentity{}
	err := s.read(ctx).Where("owner_id = ?", ownerID).Order("issuer, subject").Find(&out).Error
	return out, translate(err)
}

// ErrLastIdentity refuses to unlink an account's last identity when keep
// says the account needs one.
var ErrLastIdentity = errors.New("last identity")

// UnlinkIdentity removes one of the owner's identities. When keepOne is
// set it refuses, with ErrLastIdentity, to remove the account's last one;
// the check and the delete are one transaction, so two unlinks at once
// cannot both pass it. ErrNotFound when the owner has no such identity.
func (s *Store) UnlinkIdentity(ctx context.Context, ownerID, identityID string, keepOne bool) error {
	return s.write(ctx, func(tx *gorm.DB) error {
		var ids []OwnerIdentity
		if err := lockOwnerRow(tx, ownerID); err != nil {
			return err
		}
		if err := tx.Where("owner_id = ?", ownerID).Find(&ids).Error; err != nil {
			return err
		}
		found := false
		for _, i := range ids {
			found = found || i.ID == identityID
		}
		if !found {
			return ErrNotFound
		}
		if keepOne && len(ids) == 1 {
			return ErrLastIdentity
		}
		return tx.Where("id = ? AND owner_id = ?", identityID, ownerID).Delete(&OwnerIdentity{}).Error
	})
}

// lockOwnerRow takes the owner's row lock on PostgreSQL, so that writers
// about one account take turns (SQLite's writer is serial already).
func lockOwnerRow(tx *gorm.DB, ownerID string) error {
	if tx.Dialector.Name() != DriverPostgres {
		return nil
	}
	var id string
	return tx.Raw(`SELECT id FROM owners WHERE id = ? FOR NO KEY UPDATE`, ownerID).Scan(&id).Error
}
