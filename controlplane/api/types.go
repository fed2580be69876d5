package api

import "time"

// Credentials is the body of signup and login.
type Credentials struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// AuthResponse answers signup, login and setup.
type AuthResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	Owner     Owner     `json:"owner"`
}

// Owner is an account as its holder (or an operator) sees it.
type Owner struct {
	ID                    string    `json:"id"`
	Email                 string    `json:"email"`
	Role                  string    `json:"role"`
	Plan                  string    `json:"plan"`
	Status                string    `json:"status"`
	LegalHold             *string   `json:"legal_hold"`
	AcceptedPolicyVersion string    `json:"accepted_policy_version"`
	CreatedAt             time.Time `json:"created_at"`
	// EmailVerified is false while the owner has not used the mailed
	// verification link; EmailVerificationRequired says whether that holds
	// anything back (creating keys answers 403 email_unverified).
	EmailVerified             bool `json:"email_verified"`
	EmailVerificationRequired bool `json:"email_verification_required"`
	// TwoFactor is true when a TOTP second factor is enabled.
	TwoFactor bool `json:"two_factor"`
}

// OwnerList is a page of owners.
type OwnerList struct {
	Owners     []Owner `json:"owners"`
	NextCursor string  `json:"next_cursor"`
}

// OwnerUpdate is an operator's change to an owner; absent fields are left
// alone. LegalHold is a JSON string to set a hold and JSON null to release
// it, so it is decoded as raw JSON.
type OwnerUpdate struct {
	Status    *string        `json:"status,omitempty"`
	Plan      *string        `json:"plan,omitempty"`
	LegalHold NullableString `json:"legal_hold,omitzero"`
}

// NullableString distinguishes absent, null and a value in JSON input.
type NullableString struct {
	Set   bool
	Value *string
}

// PlanChange is the body of PUT /api/v1/me/plan.
type PlanChange struct {
	Plan string `json:"plan"`
}

// Plan is an entry of the catalogue.
type Plan struct {
	ID          string   `json:"id"`
	Slug        string   `json:"slug"`
	Name        string   `json:"name"`
	MaxApps     int      `json:"max_apps"`
	MaxDevices  int      `json:"max_devices"`
	MaxOwnNodes int      `json:"max_own_nodes"`
	PriceCents  int      `json:"price_cents"`
	Currency    string   `json:"currency"`
	Retired     bool     `json:"retired"`
	Pools       []string `json:"pools"`
}

// PlanInput creates or replaces a plan.
type PlanInput struct {
	Slug        string   `json:"slug"`
	Name        string   `json:"name"`
	MaxApps     int      `json:"max_apps"`
	MaxDevices  int      `json:"max_devices"`
	MaxOwnNodes int      `json:"max_own_nodes"`
	PriceCents  int      `json:"price_cents"`
	Currency    string   `json:"currency"`
	Retired     bool     `json:"retired"`
	Pools       []string `json:"pools"`
}

// PlanList is the catalogue.
type PlanList struct {
	Plans []Plan `json:"plans"`
}

// PrivacyManifest lists every table and column the control plane stores.
type PrivacyManifest struct {
	Tables      []PrivacyTable `json:"tables"`
	NeverStored []string       `json:"never_stored"`
	// ThirdParties are the outside services this installation is
	// configured to use that see something of its users (the single
	// sign-on providers), and what they see.
	ThirdParties []PrivacyThirdParty `json:"third_parties"`
}

// PrivacyThirdParty is an outside service that sees something of the
// users, and what.
type PrivacyThirdParty struct {
	Name     string `json:"name"`
	Purpose  string `json:"purpose"`
	Receives string `json:"receives"`
}

// PrivacyTable is one table of the manifest.
type PrivacyTable struct {
	Name      string          `json:"name"`
	Subject   string          `json:"subject"`
	Purpose   string          `json:"purpose"`
	Retention string          `json:"retention"`
	Columns   []PrivacyColumn `json:"columns"`
}

// PrivacyColumn is one column of the manifest.
type PrivacyColumn struct {
	Name    string `json:"name"`
	Purpose string `json:"purpose"`
}

// Health answers GET /healthz.
type Health struct {
	Status string `json:"status"`
}

// Setup is the body of POST /api/v1/setup, which creates the first
// operator account with the one-time token printed at first start.
type Setup struct {
	Token    string `json:"token"`
	Email    string `json:"email"`
	Password string `json:"password"`
}

// Export is everything stored about an owner: for each table that holds
// the owner's rows, those rows with exactly the columns the privacy
// manifest lists. Credential hashes are named but withheld.
type Export struct {
	GeneratedAt time.Time                   `json:"generated_at"`
	Tables      map[string][]map[string]any `json:"tables"`
}

// Policy is one version of the privacy policy.
type Policy struct {
	Version     string    `json:"version"`
	EffectiveAt time.Time `json:"effective_at"`
	// AnnouncedAt is when owners are first told of the version: the notice
	// period before it takes effect.
	AnnouncedAt time.Time `json:"announced_at"`
	Text        string    `json:"text"`
}

// PolicyStatus answers GET /api/v1/policy: the version in effect and, once
// announced, the next one.
type PolicyStatus struct {
	Current  Policy  `json:"current"`
	Upcoming *Policy `json:"upcoming"`
}

// PolicyAccept is the body of PUT /api/v1/me/policy.
type PolicyAccept struct {
	Version string `json:"version"`
}
