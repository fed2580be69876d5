package store

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// OwnerBilling is what the control plane keeps of an owner's paid
// subscription: the payment provider's references and the state the plan
// logic needs, nothing more. Card data, invoices, addresses and payment
// history stay with the provider (Stripe), which keeps them for tax law.
// One row per owner that ever started a checkout or was comped a plan; it
// goes with the account.
type OwnerBilling struct {
	OwnerID string `gorm:"primaryKey;size:36" purpose:"the owner"`
	// CustomerID and SubscriptionID are the provider's references, needed
	// to open checkout and the customer portal, to match its webhooks to
	// the owner, and to cancel and delete at the provider when the account
	// is deleted.
	CustomerID     *string `gorm:"size:255;uniqueIndex" purpose:"the payment provider's customer ID (Stripe cus_…): matches its webhooks to the owner, opens checkout and the customer portal, and is deleted at the provider with the account; null until the first checkout"`
	SubscriptionID *string `gorm:"size:255" purpose:"the payment provider's subscription ID (Stripe sub_…), cancelled at the provider when the account is deleted; null without a subscription"`
	// SubscriptionStatus is the provider's word for the subscription
	// (active, past_due, canceled, …).
	SubscriptionStatus string `gorm:"size:32;not null;default:''" purpose:"the subscription's status as the provider reports it (active, past_due, canceled, …): decides the owner's plan and grace period"`
	// CurrentPeriodEnd is when the subscription renews or, cancelled, ends:
	// an owner-level billing fact shown on the owner's plan page.
	CurrentPeriodEnd  *time.Time `purpose:"when the paid period ends: the next renewal, or the return to the free plan when cancelled; shown to the owner"`
	CancelAtPeriodEnd bool       `gorm:"not null;default:false" purpose:"whether the owner cancelled, so the plan returns to the free plan at the period's end instead of renewing"`
	// GraceUntil is set when a payment fails: until then the owner keeps
	// the paid plan's limits.
	GraceUntil *time.Time `purpose:"end of the grace period a failed payment opened (the operator's billing_grace after the failure); null when payments are in order"`
	// LimitPlanID is set once the grace period ended unpaid: new apps,
	// devices and own nodes are held to that (the free) plan's limits and
	// refused with 402 payment_required.
	LimitPlanID *string `gorm:"size:36" purpose:"the plan (the free one) whose limits hold once a grace period ended unpaid; null otherwise"`
	// CompReason is set while an operator gives the owner a plan without
	// charge; the subscription's state then never changes the plan.
	CompReason *string `gorm:"size:500" purpose:"why an operator gives this owner their plan without charge; null when not comped"`
	// CancelledSubscriptionID is a second live subscription the owner had
	// (two checkouts paid at once), cancelled at the provider: the owner
	// and the operator see it, so that its payment can be refunded.
	CancelledSubscriptionID *string `gorm:"size:255" purpose:"the payment provider's ID of a second subscription the owner paid for at the same time, cancelled at the provider: shown to the owner and the operator so that its payment can be refunded; null otherwise, and cleared when the owner's subscription ends"`
}

// TableName keeps the table name readable.
func (OwnerBilling) TableName() string { return "owner_billing" }

func (OwnerBilling) privacyDoc() tableDoc {
	return tableDoc{
		Purpose: "an app owner's paid subscription: the payment provider's references and the state the plan follows; " +
			"no card data, invoices, addresses or payment history (those stay with the provider)",
		Retention: "until the account is deleted (hard delete); deletion also cancels the subscription and deletes the customer at the provider",
		Subject:   SubjectOwner,
	}
}

// Validate reports whether b can be stored.
func (b *OwnerBilling) Validate() error {
	switch {
	case b.CustomerID != nil && !validText(*b.CustomerID, 255):
		return invalid("customer_id", "must be 1-255 printable characters")
	case b.SubscriptionID != nil && !validText(*b.SubscriptionID, 255):
		return invalid("subscription_id", "must be 1-255 printable characters")
	case len(b.SubscriptionStatus) > 32:
		return invalid("subscription_status", "must be at most 32 characters")
	case b.CancelledSubscriptionID != nil && !validText(*b.CancelledSubscriptionID, 255):
		return invalid("cancelled_subscription_id", "must be 1-255 printable characters")
	case b.CompReason != nil && !validText(*b.CompReason, 500):
		return invalid("comp_reason", "must be 1-500 printable characters")
	}
	return nil
}

// GetBilling returns the owner's billing row, or an empty one (with
// OwnerID set) when the owner has none. ErrNotFound for an unknown owner.
func (s *Store) GetBilling(ctx context.Context, ownerID string) (OwnerBilling, error) {
	var b OwnerBilling
	err := s.read(ctx).Transaction(func(tx *gorm.DB) error {
		var err error
		b, err = getBilling(tx, ownerID)
		return err
	})
	return b, translate(err)
}

func getBilling(tx *gorm.DB, ownerID string) (OwnerBilling, error) {
	var n int64
	if err := tx.Model(&Owner{}).Where("id = ?", ownerID).Count(&n).Error; err != nil {
		return OwnerBilling{}, err
	}
	if n == 0 {
		return OwnerBilling{}, ErrNotFound
	}
	var b OwnerBilling
	err := tx.Where("owner_id = ?", ownerID).Take(&b).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return OwnerBilling{OwnerID: ownerID}, nil
	}
	return b, err
}

// ListBilling returns the billing rows of the given owners that have one.
func (s *Store) ListBilling(ctx context.Context, ownerIDs []string) (map[string]OwnerBilling, error) {
	out := map[string]OwnerBilling{}
	if len(ownerIDs) == 0 {
		return out, nil
	}
	var rows []OwnerBilling
	if err := s.read(ctx).Where("owner_id IN ?", ownerIDs).Find(&rows).Error; err != nil {
		return nil, translate(err)
	}
	for _, b := range rows {
		out[b.OwnerID] = b
	}
	return out, nil
}

// OwnerIDByCustomer returns the owner whose billing row holds the
// provider's customer ID; ErrNotFound when none does.
func (s *Store) OwnerIDByCustomer(ctx context.Context, customerID string) (string, error) {
	var ids []string
	if err := s.read(ctx).Model(&OwnerBilling{}).Where("customer_id = ?", customerID).Pluck("owner_id", &ids).Error; err != nil {
		return "", translate(err)
	}
	if len(ids) == 0 {
		return "", ErrNotFound
	}
	return ids[0], nil
}

// PlanMove asks UpdateBilling to move the owner to another plan.
type PlanMove struct {
	Slug string
	// CheckUsage refuses a plan the owner uses more of than it allows
	// (ErrPlanLimit), as an operator's change is refused. Without it the
	// owner moves anyway and keeps what is registered.
	CheckUsage bool
}

// UpdateBilling changes the owner's billing row in one transaction: fn
// gets the current row (an empty one the first time) and the owner, edits
// the row, and may return a plan to move the owner to. The row and the
// move are written together or not at all. An error from fn is returned
// as it is and nothing is written.
func (s *Store) UpdateBilling(ctx context.Context, ownerID string, fn func(b *OwnerBilling, o Owner) (*PlanMove, error)) (OwnerBilling, error) {
	var out OwnerBilling
	_, err := s.writeChange(ctx, func(tx *gorm.DB, ch *Change) error {
		if err := lockRevision(tx); err != nil {
			return err
		}
		b, err := getBilling(tx, ownerID)
		if err != nil {
			return err
		}
		var o Owner
		if err := tx.Where("id = ?", ownerID).Take(&o).Error; err != nil {
			return err
		}
		move, err := fn(&b, o)
		if err != nil {
			return err
		}
		b.OwnerID = ownerID
		if err := b.Validate(); err != nil {
			return err
		}
		if err := tx.Clauses(clause.OnConflict{UpdateAll: true}).Create(&b).Error; err != nil {
			return err
		}
		if move != nil {
			var err error
			if _, *ch, err = moveOwnerPlan(tx, ownerID, move.Slug, true, move.CheckUsage); err != nil {
				return err
			}
		}
		out = b
		return nil
	})
	if err != nil {
		return OwnerBilling{}, err
	}
	return out, nil
}

// EndGracePeriods holds every owner whose grace period ended by now, and
// who is not comped, to the limits of the plan with limitSlug (the free
// plan). It returns how many owners it held. Running it again changes
// nothing: it is safe on every replica at once.
func (s *Store) EndGracePeriods(ctx context.Context, now time.Time, limitSlug string) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *gorm.DB) error {
		var ids []string
		if err := tx.Model(&Plan{}).Where("slug = ?", limitSlug).Pluck("id", &ids).Error; err != nil {
			return err
		}
		if len(ids) == 0 {
			return invalid("plan", "no plan %q to hold overdue accounts to", limitSlug)
		}
		res := tx.Model(&OwnerBilling{}).
			Where("grace_until IS NOT NULL AND grace_until <= ? AND limit_plan_id IS NULL AND comp_reason IS NULL", now.UTC()).
			Update("limit_plan_id", ids[0])
		n = res.RowsAffected
		return res.Error
	})
	return n, err
}

// CountUnbilled counts the owners on a plan with a price who are neither
// comped nor have a subscription in one of the live statuses: owners who
// were on a paid plan before billing went through the payment provider,
// and pay nothing for it.
func (s *Store) CountUnbilled(ctx context.Context, live []string) (int64, error) {
	var n int64
	err := s.read(ctx).Table("owners").
		Joins("JOIN plans ON plans.id = owners.plan_id").
		Joins("LEFT JOIN owner_billing ON owner_billing.owner_id = owners.id").
		Where("plans.price_cents > 0").
		Where("owner_billing.owner_id IS NULL OR (owner_billing.comp_reason IS NULL AND owner_billing.subscription_status NOT IN ?)", live).
		Count(&n).Error
	return n, translate(err)
}

// limitsPlanJoin joins, after owners, the plan whose limits hold for the
// owner: the plan they are on or, once a grace period ended unpaid, the
// billing row's limit plan.
const limitsPlanJoin = `LEFT JOIN owner_billing ON owner_billing.owner_id = owners.id
	JOIN plans ON plans.id = COALESCE(owner_billing.limit_plan_id, owners.plan_id)`

// planLimit is one limit of the plan that holds for an owner, and whether
// it holds because their payment is overdue.
type planLimit struct {
	Max  int64
	Held bool
}

// err is the refusal for reaching the limit.
func (l planLimit) err() error {
	if l.Held {
		return ErrPaymentRequired
	}
	return ErrPlanLimit
}
