package main

import (
	"bufio"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.yaml.in/yaml/v3"

	"github.com/traceless-vpn/traceless/controlplane"
	"github.com/traceless-vpn/traceless/internal/config"
)

// configsDir holds the example configs, the systemd unit and the compose file.
const configsDir = "../../configs"

// TestExampleConfigs checks that configs/traceless-server.example.{yaml,toml}
// parse, validate, list every setting, and show the defaults they claim to.
func TestExampleConfigs(t *testing.T) {
	var want []string
	var c0 Config
	for _, s := range c0.table().Settings {
		want = append(want, s.Key)
	}
	sort.Strings(want)

	for _, tc := range []struct {
		file, format string
		keys         func([]byte) (map[string]any, error)
	}{
		{"traceless-server.example.yaml", "yaml", func(b []byte) (map[string]any, error) {
			m := map[string]any{}
			return m, yaml.Unmarshal(b, &m)
		}},
		{"traceless-server.example.toml", "toml", func(b []byte) (map[string]any, error) {
			m := map[string]any{}
			return m, toml.Unmarshal(b, &m)
		}},
	} {
		t.Run(tc.format, func(t *testing.T) {
			path := filepath.Join(configsDir, tc.file)
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			c := DefaultConfig()
			if err := ParseConfig(f, tc.format, &c); err != nil {
				t.Fatalf("ParseConfig(%s): %v", tc.file, err)
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate(%s): %v", tc.file, err)
			}
			if diff := cmp.Diff(DefaultConfig(), c, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("%s does not show the defaults (-want +got):\n%s", tc.file, diff)
			}

			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			m, err := tc.keys(b)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for k := range m {
				got = append(got, k)
			}
			sort.Strings(got)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s keys differ from Config (-want +got):\n%s", tc.file, diff)
			}
		})
	}
}

// envName matches a TRACELESS_* variable name.
var envName = regexp.MustCompile(`\bTRACELESS_[A-Z0-9_]+\b`)

// TestExampleEnvNames checks that the systemd unit and the compose file only
// set environment variables the server reads.
func TestExampleEnvNames(t *testing.T) {
	c := DefaultConfig()
	tab := c.table()
	known := map[string]bool{tab.ConfigEnv(): true}
	for _, s := range tab.Settings {
		known[tab.Env(s)] = true
	}
	for _, name := range []string{"traceless-server.service", "docker-compose.example.yml"} {
		f, err := os.Open(filepath.Join(configsDir, name))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		seen := 0
		for line := 1; sc.Scan(); line++ {
			for _, v := range envName.FindAllString(sc.Text(), -1) {
				seen++
				if !known[v] {
					t.Errorf("%s:%d: %s is not a traceless-server setting", name, line, v)
				}
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		if seen == 0 {
			t.Errorf("%s sets no TRACELESS_* variable", name)
		}
	}
}

// TestREADMESettingsTable checks README.md's configuration table against
// the settings table: one row per setting, in any order, with its file key,
// flag, environment variable and default (backquotes aside), and no row
// for a setting that does not exist.
func TestREADMESettingsTable(t *testing.T) {
	var c Config
	checkREADMETable(t, "../../README.md", "## Configuration", c.table())
}

// TestHelpShowsSettings checks that --help names every setting's flag,
// default and environment variable.
func TestHelpShowsSettings(t *testing.T) {
	stderr := &syncBuffer{}
	m := NewMain(&syncBuffer{}, stderr)
	if err := m.ParseFlags([]string{"--help"}, envMap(nil)); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	var c Config
	tab := c.table()
	for _, s := range tab.Settings {
		if s.FileOnly() {
			if !strings.Contains(stderr.String(), "file key "+s.Key+" (config file only)") {
				t.Errorf("help lacks the config-file-only %s", s.Key)
			}
			continue
		}
		want := "env " + tab.Env(s) + "; file key " + s.Key
		if d := s.DefaultText(); d != "" {
			want = "default: " + d + "; " + want
		}
		if !strings.Contains(stderr.String(), "--"+s.FlagName()) || !strings.Contains(stderr.String(), want) {
			t.Errorf("help lacks --%s with %q", s.FlagName(), want)
		}
	}
	if !strings.Contains(stderr.String(), "--version") {
		t.Error("help lacks --version")
	}
}

// TestExamplePolicy checks that configs/privacy-policy.example.yaml loads
// as a policy file and passes Validate as policy_file.
func TestExamplePolicy(t *testing.T) {
	path := filepath.Join(configsDir, "privacy-policy.example.yaml")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	vs, err := controlplane.LoadPolicies(f)
	if err != nil {
		t.Fatalf("LoadPolicies(%s): %v", path, err)
	}
	if len(vs) == 0 {
		t.Fatalf("%s has no versions", path)
	}
	c := DefaultConfig()
	c.PolicyFile = path
	if err := c.Validate(); err != nil {
		t.Errorf("Validate with policy_file %s: %v", path, err)
	}
}

// TestExampleComposeParses checks that the compose file is valid YAML with
// a traceless service.
func TestExampleComposeParses(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(configsDir, "docker-compose.example.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]struct {
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("docker-compose.example.yml: %v", err)
	}
	svc, ok := doc.Services["traceless"]
	if !ok {
		t.Fatalf("docker-compose.example.yml has no traceless service")
	}
	if !strings.HasPrefix(svc.Environment["TRACELESS_DB"], "sqlite://") {
		t.Errorf("compose TRACELESS_DB = %q, want the SQLite default", svc.Environment["TRACELESS_DB"])
	}
}

// checkREADMETable fails for every difference between README.md's table
// after heading and tab.
func checkREADMETable(t *testing.T, readme, heading string, tab *config.Table) {
	t.Helper()
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range tab.CheckDocTable(string(b), heading) {
		t.Errorf("README.md: %s", p)
	}
}
