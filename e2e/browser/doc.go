// Package browser holds the dashboard's end-to-end tests in a real headless
// Chromium, driven with chromedp: a control plane on a temporary SQLite
// store behind httptest on 127.0.0.1, a node agent on the fake WireGuard
// backend, and the browser clicking through the owners' and operators'
// flows while every console error and CSP violation fails the test.
//
// The tests need /usr/bin/chromium (Debian's chromium package). Without it
// they skip, except under CI=true, where they fail. Screenshots of the main
// pages at laptop (1280 px) and phone (390 px) width are written to the
// directory named by TRACELESS_ARTIFACTS (a temporary directory when unset).
//
// The package has no non-test code; nothing imports it.
package browser
