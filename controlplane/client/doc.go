// Package client is the Go client for the Traceless HTTP API v1: the owner
// API (accounts and their export and deletion, the privacy policy, apps,
// API keys, dedicated pools and nodes, health alerts), the operator API (plans, owners,
// pools, nodes) and the provisioning API that app backends and devices call
// with an app API key (servers, devices, wg-quick configs, the app's key
// rotation policy, with RotateIfDue). The node agent's API (/agent/v1) is
// not part of it.
//
// It imports only the standard library and controlplane/api, so SDK users,
// the traceless CLI and node agents never pull in the server's dependencies.
// Anyone may import it; it imports nothing of ours but api.
//
// A Client holds at most two credentials: an owner's session token (set with
// WithToken, or stored by Login and Signup) for the owner and operator API,
// and an app API key (WithAPIKey) for the provisioning API. Each method sends
// the one its route needs.
//
// Every method takes a context and returns an *Error for anything that went
// wrong on the way or at the server: errors.As it, or use IsCode, Status and
// IsRetryable. Idempotent requests (GET, PUT, DELETE) are retried with
// exponential backoff and jitter on network errors, 429 (honouring
// Retry-After) and 502/503/504; POST requests are never retried, since
// registering a device or creating a key twice would be wrong.
//
// The client never logs, and no error it returns contains a credential.
package client
