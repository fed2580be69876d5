package api

// App is one of an owner's apps.
type App struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	DeviceCount int64  `json:"device_count"`
	// RotationDays asks the app's devices to rotate their key (and with it
	// their tunnel addresses) every N days; 0 means no policy.
	RotationDays int `json:"rotation_days"`
}

// AppUpdate renames an app or sets its rotation policy; absent fields are
// left as they are.
type AppUpdate struct {
	Name         *string `json:"name,omitempty"`
	RotationDays *int    `json:"rotation_days,omitempty"`
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

// APIKey is a key as listed: never the secret.
type APIKey struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Prefix string `json:"prefix"`
}

// APIKeyInput names a new key.
type APIKeyInput struct {
	Name string `json:"name"`
}

// APIKeyCreated answers key creation; Key is shown only this once.
type APIKeyCreated struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Prefix string `json:"prefix"`
	Key    string `json:"key"`
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
}

// DeviceInput registers a device.
type DeviceInput struct {
	PublicKey   string  `json:"public_key"`
	ExternalRef *string `json:"external_ref,omitempty"`
}

// DeviceCreated answers registration and rotation: the device and the
// servers it may connect to.
type DeviceCreated struct {
	Device
	Servers []Server `json:"servers"`
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
