// Package billing connects the control plane to Stripe for paid plans:
// customers, Checkout and customer-portal sessions, webhook events
// (signature verified), subscriptions, and the facts that hold an account's
// deletion (an outstanding balance, an open dispute). Next decides, from a
// subscription as Stripe reports it, what the control plane keeps of it
// (store.OwnerBilling) and which plan the owner is on.
//
// What Stripe receives from the control plane is listed in Receives, and
// served with the privacy manifest's third parties. Card data, invoices and
// addresses go from the owner to Stripe's own pages and never pass through
// here.
//
// The control plane (package controlplane) imports it; nothing else does.
package billing
