package main

import (
	"bufio"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"gopkg.in/yaml.v3"

	"github.com/traceless-vpn/traceless/controlplane"
)

// configsDir holds the example configs, the systemd unit and the compose file.
const configsDir = "../../configs"

// TestExampleConfigs checks that configs/traceless-server.example.{yaml,toml}
// parse, validate, list every setting, and show the defaults they claim to.
func TestExampleConfigs(t *testing.T) {
	var want []string
	rt := reflect.TypeOf(Config{})
	for i := 0; i < rt.NumField(); i++ {
		want = append(want, rt.Field(i).Tag.Get("yaml"))
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
	known := map[string]bool{"TRACELESS_CONFIG": true}
	for _, s := range c.settings() {
		known[s.Env] = true
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

// TestREADMEListsSettings checks that README.md's configuration table
// names every setting's file key, flag and environment variable.
func TestREADMEListsSettings(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	c := DefaultConfig()
	for _, st := range c.settings() {
		key := strings.ReplaceAll(st.Name, "-", "_")
		for _, want := range []string{"`" + key + "`", "`--" + st.Name + "`", "`" + st.Env + "`"} {
			if !strings.Contains(readme, want) {
				t.Errorf("README.md does not mention %s (setting %s)", want, st.Name)
			}
		}
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
