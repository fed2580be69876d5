package api

import "time"

// App is one of an owner's apps.
type App struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	DeviceCount int64  `json:"device_count"`
	// RotationDays asks the app's devices to rotate their key (and with it
	// their tunnel addresses) every N days; 0 means no policy.
	RotationDays int `json:"rotation_days"`
	// RegistrationCap bounds registrations per hour made with the app's
	// publishable keys (0: no cap); RegistrationCapHits counts the
	// registrations it refused (a count: not who, not when).
	RegistrationCap     int   `json:"registration_cap"`
	RegistrationCapHits int64 `json:"registration_cap_hits"`
}

// AppUpdate renames an app or sets its rotation policy or registration
// cap; absent fields are left as they are.
type AppUpdate struct {
	Name            *string `json:"name,omitempty"`
	RotationDays    *int    `json:"rotation_days,omitempty"`
	RegistrationCap *int    `json:"registration_cap,omitempty"`
}

// AppPolicy is what a device's API key may read about its app: the key
// rotation policy to follow. The device remembers when it last rotated;
// the server keeps no device-level time.
type AppPolicy struct {
	RotationDays int `json:"rotation_days"`
}

// AppInput creates or renames an app.
type AppInput struct {
	Name string `json:"name"`
}

// AppList is an owner's apps.
type AppList struct {
	Apps []App `json:"apps"`
}

// Kinds of app API key.
const (
	// KeySecret ("tlk_…") is for the owner's backend: the whole
	// provisioning API of its app, and minting registration tickets.
	KeySecret = "secret"
	// KeyPublishable ("tlp_…") is safe to ship inside an app: it registers
	// devices and reads the app's policy and servers, nothing else.
	KeyPublishable = "publishable"
)

// APIKey is a key as listed: never the secret.
type APIKey struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Prefix string `json:"prefix"`
	Kind   string `json:"kind"`
	// ExpiresAt is when the key stops working, or null for never.
	ExpiresAt *time.Time `json:"expires_at"`
	// Expired reports whether the key no longer works.
	Expired bool `json:"expired"`
	// ReplacedBy names the key that replaced this one while it runs out
	// its grace period (until ExpiresAt), or null.
	ReplacedBy *string `json:"replaced_by"`
}

// APIKeyInput creates a key: its name (unique among the app's keys), its
// kind (secret when absent) and an optional expiry.
type APIKeyInput struct {
	Name      string     `json:"name"`
	Kind      string     `json:"kind,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// APIKeyCreated answers key creation; Key is shown only this once.
type APIKeyCreated struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Prefix    string     `json:"prefix"`
	Kind      string     `json:"kind"`
	ExpiresAt *time.Time `json:"expires_at"`
	Key       string     `json:"key"`
}

// KeyReplaceInput replaces a key with a new one of the same kind. The old
// key keeps working until GraceUntil (at most 366 days ahead; now ends it
// at once), so app versions shipped with it keep working while users
// update.
type KeyReplaceInput struct {
	Name       string     `json:"name"`
	GraceUntil time.Time  `json:"grace_until"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
}

// KeyReplaced answers a replacement: the new key (shown only here) and the
// old one with its new expiry.
type KeyReplaced struct {
	APIKeyCreated
	Replaced APIKey `json:"replaced"`
}

// TicketInput mints a registration ticket. ExternalRef binds it: the
// device registered with it gets that reference, and a registration
// naming another is refused. TTLSeconds is how long the unused ticket
// works (10 to 600; 600 when absent).
type TicketInput struct {
	ExternalRef *string `json:"external_ref,omitempty"`
	TTLSeconds  int     `json:"ttl_seconds,omitempty"`
}

// RegistrationTicket answers minting: the ticket ("tlt_…", shown only
// here), for one registration before ExpiresAt.
type RegistrationTicket struct {
	Ticket      string    `json:"ticket"`
	ExpiresAt   time.Time `json:"expires_at"`
	ExternalRef *string   `json:"external_ref"`
}

// DeviceToken answers a token reset: the device's new token ("tld_…"),
// shown only here; the old one stops working.
type DeviceToken struct {
	DeviceToken string `json:"device_token"`
}

// APIKeyList is an app's keys.
type APIKeyList struct {
	Keys []APIKey `json:"keys"`
}

// Device is an end-user device as the provisioning API shows it: its
// WireGuard public key, its tunnel addresses and the owner's optional
// reference. Nothing else about a device exists.
type Device struct {
	ID          string  `json:"id"`
	PublicKey   string  `json:"public_key"`
	IPv4        string  `json:"ipv4"`
	IPv6        string  `json:"ipv6"`
	ExternalRef *string `json:"external_ref"`
	// RotationDays is the app's rotation policy (as AppPolicy), given with
	// one device's record, registration and rotation, so that a device
	// holding only its own token can follow it. Absent in lists.
	RotationDays *int `json:"rotation_days,omitempty"`
}

// DeviceInput registers a device.
type DeviceInput struct {
	PublicKey   string  `json:"public_key"`
	ExternalRef *string `json:"external_ref,omitempty"`
}

// DeviceCreated answers registration and rotation: the device, the
// servers it may connect to and the device's own token ("tld_…"), shown
// only here. With the token the device reads, configures, rotates and
// deletes itself and lists its servers, nothing else; a rotation replaces
// it.
type DeviceCreated struct {
	Device
	Servers     []Server `json:"servers"`
	DeviceToken string   `json:"device_token"`
}

// DeviceList is a page of devices.
type DeviceList struct {
	Devices    []Device `json:"devices"`
	NextCursor string   `json:"next_cursor"`
}

// RotateInput is the body of a key rotation.
type RotateInput struct {
	PublicKey string `json:"public_key"`
}

// Server is a node a device may connect to.
type Server struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Pool      string `json:"pool"`
	Region    string `json:"region"`
	Country   string `json:"country"`
	City      string `json:"city"`
	Endpoint  string `json:"endpoint"`
	PublicKey string `json:"public_key"`
	Online    bool   `json:"online"`
}

// ServerList is the servers an app's plan grants.
type ServerList struct {
	Servers []Server `json:"servers"`
	// Explanation says why Servers is empty; it is absent otherwise.
	Explanation *Explanation `json:"explanation,omitempty"`
}

// Explanation says why an answer is empty, with a stable code that clients
// may switch on and a message for people that may change.
type Explanation struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Why a servers list is empty.
const (
	// NoServersPlanIncludesNoPool: the owner's plan includes no server pool
	// and the owner has no dedicated pool; the operator must include a
	// pool in the plan (or the owner changes plan).
	NoServersPlanIncludesNoPool = "plan_includes_no_pool"
	// NoServersNoEnabledNode: the pools the owner may use have no enabled
	// node yet.
	NoServersNoEnabledNode = "no_enabled_node"
)
