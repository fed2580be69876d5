package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDefaultConfig(t *testing.T) {
	c := DefaultConfig()
	c.Servers = []string{"https://cp.example.com"}
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults plus a server do not validate: %v", err)
	}
	if c.Interface != "tl0" || c.ListenPort != 51820 || c.Backend != "auto" || time.Duration(c.ScrubAfter) != 180*time.Second ||
		c.MetricsListen != "127.0.0.1:9586" || c.MTU != 1420 || !c.Harden || c.RequirePosture {
		t.Errorf("defaults differ from the documented ones: %+v", c)
	}
	d := DefaultConfig()
	if err := d.Validate(); err == nil || !strings.HasPrefix(err.Error(), "servers:") {
		t.Errorf("no server: %v, want a servers error", err)
	}
}

// exampleConfig is what testdata/agent.{yaml,toml} describe.
func exampleConfig() Config {
	return Config{
		Servers:         []string{"https://cp1.vpn.example.com", "https://cp2.vpn.example.com"},
		CredentialFile:  "/var/lib/traceless-agent/credential.json",
		Name:            "vpn-fra-1",
		Interface:       "tl0",
		ListenPort:      51820,
		Endpoint:        "vpn-fra-1.example.com:51820",
		Backend:         "auto",
		MTU:             1420,
		ScrubAfter:      Duration(3 * time.Minute),
		ScrubInterval:   Duration(5 * time.Second),
		NATEgress:       "eth0",
		MetricsListen:   "127.0.0.1:9586",
		Harden:          true,
		UserspaceHolder: true,
		LogLevel:        "info",
	}
}

// TestExampleConfigs parses the example files, which list every setting.
func TestExampleConfigs(t *testing.T) {
	for _, tc := range []struct{ file, format string }{{"agent.yaml", "yaml"}, {"agent.toml", "toml"}} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var got Config
			if err := ParseConfig(strings.NewReader(string(b)), tc.format, &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(exampleConfig(), got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
			var c Config
			for _, s := range c.table().Settings {
				key := s.Key
				if !strings.Contains(string(b), "\n"+key+":") && !strings.Contains(string(b), "\n"+key+" =") {
					t.Errorf("example lacks %q", key)
				}
			}
		})
	}
}

func TestParseConfigUnknownKey(t *testing.T) {
	var c Config
	if err := ParseConfig(strings.NewReader("servers: [https://x]\nscrub_afer: 3m\n"), "yaml", &c); err == nil {
		t.Error("yaml typo accepted")
	}
	if err := ParseConfig(strings.NewReader("scrub_afer = \"3m\"\n"), "toml", &c); err == nil || !strings.Contains(err.Error(), "scrub_afer") {
		t.Errorf("toml typo: %v", err)
	}
}

func TestParseFlagsPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "agent.yaml")
	os.WriteFile(file, []byte("servers: [https://file.example.com]\ninterface: wgfile\nlisten_port: 1111\nscrub_after: 200s\n"), 0o600)
	env := map[string]string{
		"TRACELESS_AGENT_CONFIG":       file,
		"TRACELESS_AGENT_LISTEN_PORT":  "2222",
		"TRACELESS_AGENT_SERVER":       "https://env1.example.com, https://env2.example.com",
		"TRACELESS_AGENT_ENROLL_TOKEN": "tle_fromenv",
		"TRACELESS_AGENT_HARDEN":       "false",
		"TRACELESS_AGENT_ENDPOINT":     "vpn.example.com:51820",
	}
	m := NewMain(&strings.Builder{}, &strings.Builder{})
	err := m.ParseFlags([]string{"--listen-port", "3333", "--nat-egress", "eth1", "--require-posture", "--scrub-after", "4m"},
		func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.Servers = []string{"https://env1.example.com", "https://env2.example.com"}
	want.Interface = "wgfile"
	want.ListenPort = 3333
	want.EnrollToken = "tle_fromenv"
	want.Endpoint = "vpn.example.com:51820"
	want.Harden = false
	want.NATEgress = "eth1"
	want.RequirePosture = true
	want.ScrubAfter = Duration(4 * time.Minute)
	if diff := cmp.Diff(want, m.Config); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		field  string
		mutate func(c *Config)
	}{
		{"servers", func(c *Config) { c.Servers = []string{"ftp://x"} }},
		{"servers", func(c *Config) { c.Servers = []string{"https://user:pw@x"} }},
		{"credential_file", func(c *Config) { c.CredentialFile = "" }},
		{"interface", func(c *Config) { c.Interface = "a-very-long-interface-name" }},
		{"interface", func(c *Config) { c.Interface = "" }},
		{"listen_port", func(c *Config) { c.ListenPort = 0 }},
		{"listen_port", func(c *Config) { c.ListenPort = 70000 }},
		{"endpoint", func(c *Config) { c.Endpoint = "vpn.example.com" }},
		{"endpoint", func(c *Config) { c.Endpoint = ":51820" }},
		{"backend", func(c *Config) { c.Backend = "bsd" }},
		{"mtu", func(c *Config) { c.MTU = 576 }},
		{"scrub_after", func(c *Config) { c.ScrubAfter = Duration(30 * time.Second) }},
		{"scrub_interval", func(c *Config) { c.ScrubInterval = 0 }},
		{"nat_egress", func(c *Config) { c.NATEgress = "eth 0" }},
		{"metrics_listen", func(c *Config) { c.MetricsListen = "9586" }},
		{"log_level", func(c *Config) { c.LogLevel = "verbose" }},
	} {
		t.Run(tc.field, func(t *testing.T) {
			c := exampleConfig()
			tc.mutate(&c)
			err := c.Validate()
			if err == nil || !strings.HasPrefix(err.Error(), tc.field+":") {
				t.Errorf("Validate = %v, want an error naming %s", err, tc.field)
			}
		})
	}
	c := exampleConfig()
	c.MetricsListen, c.NATEgress, c.Endpoint = "", "", ""
	if err := c.Validate(); err != nil {
		t.Errorf("optional settings left empty: %v", err)
	}
}

func TestParseFlagsErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--server", "https://x", "extra"}, nil, `unexpected argument "extra"`},
		{[]string{"--server", "https://x", "--listen-port", "x"}, nil, "not a number"},
		{[]string{"--server", "https://x"}, map[string]string{"TRACELESS_AGENT_SCRUB_AFTER": "soon"}, "TRACELESS_AGENT_SCRUB_AFTER"},
		{[]string{"--config", "/nonexistent/agent.yaml"}, nil, "config:"},
	} {
		m := NewMain(&strings.Builder{}, &strings.Builder{})
		err := m.ParseFlags(tc.args, func(k string) string { return tc.env[k] })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseFlags(%v) = %v, want %q", tc.args, err, tc.want)
		}
	}
}
