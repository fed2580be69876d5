package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/traceless-vpn/traceless/controlplane"
)

// TestOIDCProvidersConfig: oidc_providers is a list in the config file
// (YAML or TOML), client secrets come inline or from a file, and the
// setting is checked with public_url and operator_sso_only.
func TestOIDCProvidersConfig(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "corp.secret")
	if err := os.WriteFile(secretFile, []byte("file secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yamlDoc := `public_url: https://vpn.example.com
operator_sso_only: true
oidc_providers:
  - name: corp
    label: Corp ID
    issuer: https://id.example.com/
    client_id: traceless
    client_secret_file: ` + secretFile + `
  - name: other
    label: Other
    issuer: https://other.example.com
    client_id: c2
    client_secret: inline secret
    scopes: [email, profile]
`
	tomlDoc := `public_url = "https://vpn.example.com"
operator_sso_only = true
[[oidc_providers]]
name = "corp"
label = "Corp ID"
issuer = "https://id.example.com/"
client_id = "traceless"
client_secret_file = "` + secretFile + `"
[[oidc_providers]]
name = "other"
label = "Other"
issuer = "https://other.example.com"
client_id = "c2"
client_secret = "inline secret"
scopes = ["email", "profile"]
`
	want := []controlplane.OIDCProvider{
		{Name: "corp", Label: "Corp ID", Issuer: "https://id.example.com/", ClientID: "traceless", ClientSecret: "file secret"},
		{Name: "other", Label: "Other", Issuer: "https://other.example.com", ClientID: "c2", ClientSecret: "inline secret", Scopes: []string{"email", "profile"}},
	}
	for format, doc := range map[string]string{"yaml": yamlDoc, "toml": tomlDoc} {
		c := DefaultConfig()
		if err := ParseConfig(strings.NewReader(doc), format, &c); err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		o, err := c.Options()
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if diff := cmp.Diff(want, o.OIDCProviders); diff != "" {
			t.Errorf("%s providers (-want +got):\n%s", format, diff)
		}
		if !o.OperatorSSOOnly {
			t.Errorf("%s: operator_sso_only lost", format)
		}
	}

	for _, tc := range []struct{ name, doc, wantErr string }{
		{"no public_url", "oidc_providers:\n  - {name: a, label: A, issuer: https://id.example.com, client_id: c, client_secret: s}\n", "public_url is required"},
		{"both secrets", "public_url: https://x.example.com\noidc_providers:\n  - {name: a, label: A, issuer: https://id.example.com, client_id: c, client_secret: s, client_secret_file: " + secretFile + "}\n", "not both"},
		{"no secret", "public_url: https://x.example.com\noidc_providers:\n  - {name: a, label: A, issuer: https://id.example.com, client_id: c}\n", "client secret is required"},
		{"missing secret file", "public_url: https://x.example.com\noidc_providers:\n  - {name: a, label: A, issuer: https://id.example.com, client_id: c, client_secret_file: /nonexistent/secret}\n", "client_secret_file"},
		{"bad name", "public_url: https://x.example.com\noidc_providers:\n  - {name: Corp ID, label: A, issuer: https://id.example.com, client_id: c, client_secret: s}\n", "lower-case"},
		{"twice", "public_url: https://x.example.com\noidc_providers:\n  - {name: a, label: A, issuer: https://id.example.com, client_id: c, client_secret: s}\n  - {name: a, label: B, issuer: https://id2.example.com, client_id: c, client_secret: s}\n", "named twice"},
		{"not a URL", "public_url: https://x.example.com\noidc_providers:\n  - {name: a, label: A, issuer: id.example.com, client_id: c, client_secret: s}\n", "not an http(s) URL"},
		{"no client id", "public_url: https://x.example.com\noidc_providers:\n  - {name: a, label: A, issuer: https://id.example.com, client_secret: s}\n", "client_id is required"},
		{"sso only without providers", "operator_sso_only: true\n", "operator_sso_only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			if err := ParseConfig(strings.NewReader(tc.doc), "yaml", &c); err != nil {
				t.Fatal(err)
			}
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate = %v, want an error with %q", err, tc.wantErr)
			}
		})
	}
	// Unknown keys and the wrong shape are refused when the file is read.
	for _, doc := range []string{"oidc_providers:\n  - {name: a, secret: s}\n", "oidc_providers: corp\n"} {
		c := DefaultConfig()
		if err := ParseConfig(strings.NewReader(doc), "yaml", &c); err == nil {
			t.Errorf("ParseConfig(%q) accepted it", doc)
		}
	}
	// Not a flag.
	m := NewMain(&syncBuffer{}, &syncBuffer{})
	if err := m.ParseFlags([]string{"--oidc-providers", "x"}, envMap(nil)); err == nil {
		t.Error("--oidc-providers was accepted")
	}
}
