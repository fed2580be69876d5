package store

import (
	"time"
)

// The models below are the complete inventory of what Traceless persists.
// Each field carries a `purpose` tag and each model a privacyDoc method; the
// privacy manifest served at GET /api/v1/privacy is generated from them, and
// TestManifestCoversSchema fails when a column is not explained.

// Subjects of the data in a table, as shown in the privacy manifest.
const (
	SubjectOperator       = "operator"
	SubjectOwner          = "app owner"
	SubjectEndUserDevice  = "end-user device"
	SubjectInfrastructure = "infrastructure"
)

// tableDoc describes one table in the privacy manifest.
type tableDoc struct {
	Purpose   string
	Retention string
	Subject   string
}

// Role of an owner account.
const (
	RoleOwner = "owner"
	RoleAdmin = "admin"
)

// Status of an owner account.
const (
	StatusActive    = "active"
	StatusSuspended = "suspended"
)

// Plan is an entry of the plan catalogue.
type Plan struct {
	ID          string `gorm:"primaryKey;size:36" purpose:"random identifier"`
	Slug        string `gorm:"size:32;not null;uniqueIndex" purpose:"stable short name owners choose a plan by"`
	Name        string `gorm:"size:64;not null" purpose:"display name"`
	MaxApps     int    `gorm:"not null" purpose:"limit on apps per owner"`
	MaxDevices  int    `gorm:"not null" purpose:"limit on registered devices per owner"`
	MaxOwnNodes int    `gorm:"not null" purpose:"limit on owner-dedicated nodes"`
	PriceCents  int    `gorm:"not null" purpose:"monthly price in the smallest currency unit"`
	Currency    string `gorm:"size:3;not null" purpose:"ISO 4217 currency of the price"`
	Retired     bool   `gorm:"not null" purpose:"hidden from the catalogue; existing owners keep it"`
}

func (Plan) privacyDoc() tableDoc {
	return tableDoc{Purpose: "plan catalogue", Retention: "until the operator deletes the plan", Subject: SubjectOperator}
}

// PlanPool grants a plan access to a pool of nodes.
type PlanPool struct {
	PlanID string `gorm:"primaryKey;size:36" purpose:"the plan"`
	PoolID string `gorm:"primaryKey;size:36;index" purpose:"a pool the plan grants"`
}

func (PlanPool) privacyDoc() tableDoc {
	return tableDoc{Purpose: "which pools a plan grants", Retention: "until the plan or pool is deleted", Subject: SubjectOperator}
}

// Owner is an app owner's (or an operator's) account.
type Owner struct {
	ID                    string  `gorm:"primaryKey;size:36" purpose:"random identifier"`
	Email                 string  `gorm:"size:254;not null;uniqueIndex" purpose:"login name and contact address"`
	PasswordHash          string  `gorm:"size:255;not null" purpose:"argon2id hash of the password; the password itself is never stored"`
	Role                  string  `gorm:"size:16;not null" purpose:"owner or admin (operator)"`
	PlanID                string  `gorm:"size:36;not null;index" purpose:"the plan the owner is on"`
	Status                string  `gorm:"size:16;not null" purpose:"active or suspended"`
	LegalHold             *string `gorm:"size:500" purpose:"reason deletion is held (dispute, credit, legal obligation); null when not held"`
	AcceptedPolicyVersion string  `gorm:"size:32;not null;default:''" purpose:"version of the privacy policy the owner accepted"`
	TokenEpoch            int64   `gorm:"not null;default:0" purpose:"incremented at logout, password change and reset so that issued sign-in tokens stop working"`
	// EmailVerified is false only for an account that signed up while
	// email verification was required and has not used its link yet.
	EmailVerified bool      `gorm:"not null" purpose:"whether the owner proved the email address is theirs (by the mailed link)"`
	CreatedAt     time.Time `gorm:"not null" purpose:"when the account was registered (account-level, not end-user)"`
}

func (Owner) privacyDoc() tableDoc {
	return tableDoc{Purpose: "registration details of app owners and operators", Retention: "until the account is deleted (hard delete)", Subject: SubjectOwner}
}

// App is an owner's application: the unit API keys and devices belong to.
type App struct {
	ID      string `gorm:"primaryKey;size:36" purpose:"random identifier"`
	OwnerID string `gorm:"size:36;not null;index" purpose:"the owner"`
	Name    string `gorm:"size:100;not null" purpose:"display name chosen by the owner"`
	// DeviceCount is kept in the same transaction as every device insert and
	// delete, so plan limits are checked in constant time.
	DeviceCount int64 `gorm:"not null;default:0" purpose:"number of registered devices, for plan limits and the dashboard"`
	// RotationDays asks the app's devices to rotate their key (and so their
	// addresses) every N days; 0 sets no policy. Devices keep the time of
	// their last rotation themselves: the server has no device timestamps.
	RotationDays int `gorm:"not null;default:0" purpose:"the owner's key rotation policy for the app's devices, in days (0: none)"`
	// RegistrationCap bounds registrations per hour made with the app's
	// publishable keys (0: no cap); RegistrationCapHits counts the
	// registrations it refused. A count: nothing says who was refused or
	// when.
	RegistrationCap     int   `gorm:"not null;default:0" purpose:"the owner's cap on registrations per hour with the app's publishable keys (0: none)"`
	RegistrationCapHits int64 `gorm:"not null;default:0" purpose:"how many registrations the cap refused, a count shown to the owner (not who, not when)"`
}

func (App) privacyDoc() tableDoc {
	return tableDoc{Purpose: "registration of an owner's apps", Retention: "until the app or its owner is deleted (hard delete)", Subject: SubjectOwner}
}

// Kinds of app API key.
const (
	// KeySecret is for the owner's backend: the whole provisioning API of
	// its app, and minting registration tickets.
	KeySecret = "secret"
	// KeyPublishable is safe to ship inside an app: it registers devices
	// and reads the app's policy and servers, nothing else.
	KeyPublishable = "publishable"
)

// APIKey authenticates an app against the provisioning API. Only a hash of
// the secret is kept; there is no usage log and no last-used time.
type APIKey struct {
	ID     string `gorm:"primaryKey;size:36" purpose:"random identifier"`
	AppID  string `gorm:"size:36;not null;index" purpose:"the app"`
	Name   string `gorm:"size:100;not null" purpose:"label chosen by the owner, unique among the app's keys"`
	Prefix string `gorm:"size:16;not null" purpose:"first characters of the key, to recognise it in lists"`
	Hash   string `gorm:"size:64;not null;uniqueIndex" purpose:"SHA-256 of the 256-bit secret; the secret is shown once and never stored"`
	Scopes string `gorm:"size:200;not null" purpose:"what the key may do"`
	Kind   string `gorm:"size:16;not null;default:secret" purpose:"secret (the owner's backend: everything) or publishable (ships inside an app: registration, policy and servers only)"`
	// ExpiresAt is when the key stops working: chosen by the owner, or the
	// end of the grace period of a key that was replaced. It is the
	// credential's expiry, set in advance; nothing records a key's use.
	ExpiresAt *time.Time `purpose:"when the key stops working, chosen by the owner or the end of a replaced key's grace period; null: never"`
	// ReplacedBy names the key that replaced this one while it runs out its
	// grace period.
	ReplacedBy *string `gorm:"size:36" purpose:"the key that replaced this one during its grace period; null otherwise"`
}

// TableName keeps the table name readable.
func (APIKey) TableName() string { return "api_keys" }

func (APIKey) privacyDoc() tableDoc {
	return tableDoc{Purpose: "authentication of apps", Retention: "until revoked or the app is deleted (hard delete)", Subject: SubjectOwner}
}

// Pool is a group of nodes, usually a region. OwnerID is empty for shared
// pools and set for an owner's dedicated pool.
type Pool struct {
	ID      string  `gorm:"primaryKey;size:36" purpose:"random identifier"`
	Name    string  `gorm:"size:100;not null" purpose:"display name, unique among shared pools or among one owner's pools"`
	Region  string  `gorm:"size:64;not null" purpose:"region shown to clients choosing a server"`
	Country string  `gorm:"size:2;not null" purpose:"ISO 3166 country code of the servers"`
	City    string  `gorm:"size:100;not null" purpose:"city of the servers"`
	OwnerID *string `gorm:"size:36;index" purpose:"owner of a dedicated pool; null for shared pools"`
}

func (Pool) privacyDoc() tableDoc {
	return tableDoc{Purpose: "where nodes live", Retention: "until the operator or owning owner deletes the pool", Subject: SubjectInfrastructure}
}

// Node is a VPN server running the Traceless agent.
type Node struct {
	ID             string `gorm:"primaryKey;size:36" purpose:"random identifier"`
	PoolID         string `gorm:"size:36;not null;index" purpose:"the pool"`
	Name           string `gorm:"size:100;not null" purpose:"display name"`
	Endpoint       string `gorm:"size:300;not null" purpose:"the server's own public host:port that clients dial (infrastructure, not a client address)"`
	PublicKey      string `gorm:"size:44;not null;uniqueIndex" purpose:"the server's WireGuard public key"`
	CredentialHash string `gorm:"size:64;not null;uniqueIndex" purpose:"SHA-256 of the node credential; the credential is shown once"`
	Enabled        bool   `gorm:"not null" purpose:"whether the node is offered to clients and served peers"`
}

func (Node) privacyDoc() tableDoc {
	return tableDoc{Purpose: "operator and owner-dedicated infrastructure", Retention: "until the node is removed", Subject: SubjectInfrastructure}
}

// EnrollmentToken lets one node join a pool, once, before it expires. Only
// the token's hash is stored; it is deleted when used.
type EnrollmentToken struct {
	Hash      string    `gorm:"primaryKey;size:64" purpose:"SHA-256 of the one-use token; the token is shown once"`
	PoolID    string    `gorm:"size:36;not null;index" purpose:"the pool the node will join"`
	ExpiresAt time.Time `gorm:"not null" purpose:"when the unused token stops working"`
}

func (EnrollmentToken) privacyDoc() tableDoc {
	return tableDoc{Purpose: "one-use tokens for enrolling nodes", Retention: "until used or expired (expired tokens are purged)", Subject: SubjectInfrastructure}
}

// RegistrationTicket lets one app install register one device, once,
// within minutes. The owner's backend mints it with a secret key, so no
// long-lived credential ships in the app. Only its hash is stored; it is
// deleted when used or expired.
type RegistrationTicket struct {
	Hash        string    `gorm:"primaryKey;size:64" purpose:"SHA-256 of the one-use ticket; the ticket is shown once"`
	AppID       string    `gorm:"size:36;not null;index" purpose:"the app the device will join"`
	ExternalRef *string   `gorm:"size:128" purpose:"optional opaque reference the owner binds the ticket to; the device registered with it gets this reference"`
	ExpiresAt   time.Time `gorm:"not null;index" purpose:"when the unused ticket stops working (at most 10 minutes after it was minted)"`
}

func (RegistrationTicket) privacyDoc() tableDoc {
	return tableDoc{Purpose: "one-use tickets for registering one device of an app", Retention: "until used or expired (expired tickets are purged within a minute)", Subject: SubjectOwner}
}

// Device is an end-user device: exactly the WireGuard peer configuration and
// nothing else. It deliberately has no timestamps of any kind, and deletion
// is a hard delete.
type Device struct {
	ID          string  `gorm:"primaryKey;size:36" purpose:"random identifier"`
	AppID       string  `gorm:"size:36;not null;index" purpose:"the app that registered the device"`
	PublicKey   string  `gorm:"size:44;not null;uniqueIndex" purpose:"the device's WireGuard public key (the private key never leaves the device)"`
	IPv4        string  `gorm:"column:ipv4;size:15;not null;uniqueIndex" purpose:"tunnel address assigned by Traceless inside {tunnel_ipv4} (not the user's real address)"`
	IPv6        string  `gorm:"column:ipv6;size:39;not null;uniqueIndex" purpose:"tunnel address assigned by Traceless inside {tunnel_ipv6} (not the user's real address)"`
	ExternalRef *string `gorm:"size:128" purpose:"optional opaque reference chosen by the app owner"`
	Revision    int64   `gorm:"not null;index" purpose:"sync revision of the last change, so nodes can fetch deltas"`
	// TokenHash authenticates the device itself for its own record, config,
	// rotation and deletion. Rotation replaces it; the owner's secret key
	// can reset it. Null for a device registered before device tokens.
	TokenHash *string `gorm:"size:64;uniqueIndex" purpose:"SHA-256 of the device's own token, answered once at registration, rotation or reset; null when none was issued"`
}

func (Device) privacyDoc() tableDoc {
	return tableDoc{Purpose: "the WireGuard peer configuration installed on nodes", Retention: "until the device, its app or its owner is deleted (hard delete, overwritten on disk)", Subject: SubjectEndUserDevice}
}

// SyncState is the single-row counter that orders all device changes.
type SyncState struct {
	ID       int   `gorm:"primaryKey" purpose:"always 1"`
	Revision int64 `gorm:"not null" purpose:"global sync revision, bumped in the same transaction as every device change"`
}

// TableName keeps the table name readable.
func (SyncState) TableName() string { return "sync_state" }

func (SyncState) privacyDoc() tableDoc {
	return tableDoc{Purpose: "orders device changes for node sync", Retention: "for the life of the installation", Subject: SubjectInfrastructure}
}

// documented is implemented by every persisted model.
type documented interface{ privacyDoc() tableDoc }

// Models lists every persisted model, in manifest order.
func Models() []any {
	return []any{&Plan{}, &PlanPool{}, &Owner{}, &App{}, &APIKey{}, &Pool{}, &EnrollmentToken{}, &Node{}, &RegistrationTicket{}, &Device{}, &SyncState{},
		&AlertSettings{}, &AlertHistory{}, &OwnerToken{}, &TOTPCredential{}, &RecoveryCode{}, &OwnerIdentity{}, &AlertDelivery{}, &OwnerBilling{}}
}
