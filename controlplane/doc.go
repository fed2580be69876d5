// Package controlplane is the Traceless HTTP API: owner accounts and plans,
// apps and API keys, device provisioning, node enrollment and sync, served
// with echo behind a Server type so that cmd/ never imports echo.
//
// Privacy rules kept here: the request logger records method, route
// pattern, status and duration only; rate limits are keyed by a salted hash
// of the client address whose salt lives in memory and rotates; errors never
// echo secrets; metrics carry aggregates only.
//
// controlplane imports store, api and its libraries; it is imported only by
// cmd/ and tests.
package controlplane
