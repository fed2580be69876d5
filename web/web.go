// Package web holds the dashboard's server-rendered templates and static
// assets, embedded in the binary so that running the control plane needs
// no JavaScript build step and no third-party network calls.
//
// It imports only the standard library and is imported by controlplane.
package web

import (
	"embed"
	"io/fs"
)

//go:embed templates static
var files embed.FS

// FS returns the embedded templates/ and static/ trees.
func FS() fs.FS { return files }
