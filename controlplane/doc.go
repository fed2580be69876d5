// Package controlplane is the Traceless HTTP API: owner accounts and plans,
// apps and their credentials, device provisioning, node enrollment and sync,
// and the dashboard, served with echo behind a Server type so that cmd/
// never imports echo.
//
// # Words
//
// A node is a VPN machine running the agent, as operators see it (nodes.go,
// /api/v1/admin/nodes). A server is the same machine as apps see it: the
// entry a client may dial, from the pools its plan grants (servers.go,
// api.Server, GET /api/v1/servers, `traceless servers`, the dashboard's
// Servers page). The Server type is this package's HTTP service, and
// traceless-server the process that runs it.
//
// # Where a request goes
//
//	server.go        New wires the store, the hub and the middleware; routes
//	                 lists every route with the credential it admits
//	logging.go       the request log: method, route pattern, status, duration
//	errors.go        one error table: {"error":{code,message,field}}
//	decode.go        strict JSON bodies (unknown fields, size, encoding)
//	clientip.go      the one reader of client addresses, for rate-limit keys
//	ratelimit.go     in-memory buckets keyed by a salted hash
//	resources.go     caps on connections and long polls per node
//
//	owners, operators (session token or dashboard cookie)
//	  auth.go, sessions.go, passwords.go   sign-up, sign-in, sign-out
//	  email.go, totp.go, secretbox.go      verification and reset mail,
//	                                       second factor, secrets at rest
//	  oidc.go                              single sign-on
//	  account.go, owners.go, plans.go, policy.go, privacy.go, setup.go
//	  apps.go, ownerpools.go, alerts.go    (alerts/: the watcher and delivery)
//	apps (credentials.go resolves tlk_, tlp_, tlt_ and tld_ by prefix)
//	  devices.go, tickets.go, regcap.go, servers.go
//	node agents (agentapi.go: enrollment, node tokens, peers, status)
//	  hub.go          which revision every node may read up to; removals
//	  changes.go      the store's commit hook feeds the hub; LISTEN feeds it
//	                  from other replicas
//	  nodestatus.go   status reports, in memory only
//	dashboard*.go     server-rendered pages over the same functions as the
//	                  API (dashboard_session.go: cookie and CSRF)
//	openapi*.go       the served contract, built from the api wire types
//
// # Who owns what
//
// The store (package store) owns every row and every transaction; handlers
// never hold a transaction and never publish a change themselves: a commit
// reaches the hub through the store's commit hook. Wire types live in
// controlplane/api (standard library only), shared with agents and the Go
// client. This package imports store, api and its libraries; it is imported
// only by cmd/ and tests.
//
// # Privacy rules kept here
//
// The request logger records method, route pattern, status and duration
// only, and every logger is wrapped by internal/logpolicy so that an
// undeclared attribute key is dropped (and fails the tests). Only
// clientip.go reads client addresses (TestClientAddressSource). Wire types
// are checked against the schema guard's patterns (TestWireTypesPrivacy).
// Errors never echo secrets; metrics carry aggregates only.
package controlplane
