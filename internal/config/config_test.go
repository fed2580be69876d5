package config

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type conf struct {
	Port  string
	Wait  Duration
	Quiet bool
	Peers []string
	N     int
}

func (c *conf) table() *Table {
	return &Table{Program: "t", EnvPrefix: "T_", Settings: []Setting{
		{Key: "port", Value: String(&c.Port), Default: "80", Arg: "PORT", Usage: "the port"},
		{Key: "wait", Value: Dur(&c.Wait), Default: "1s", Arg: "DURATION", Usage: "how long"},
		{Key: "quiet", Value: Bool(&c.Quiet), Default: "false", Usage: "say less"},
		{Key: "peers", Value: List(&c.Peers), Unset: "none", Arg: "A,…", Usage: "peers"},
		{Key: "n", Value: Int(&c.N), Usage: "a number"},
	}}
}

// TestLoadOrder: flags win over the environment, which wins over the file,
// which wins over the defaults.
func TestLoadOrder(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.toml")
	os.WriteFile(file, []byte("port = \"file\"\nwait = \"3s\"\n"), 0o600)
	for _, tc := range []struct {
		args     []string
		env      map[string]string
		wantPort string
		wantWait time.Duration
	}{
		{nil, nil, "80", time.Second},
		{[]string{"--config", file}, nil, "file", 3 * time.Second},
		{[]string{"--config", file}, map[string]string{"T_PORT": "env"}, "env", 3 * time.Second},
		{[]string{"--config", file, "--port", "flag"}, map[string]string{"T_PORT": "env"}, "flag", 3 * time.Second},
		{[]string{"--port", "flag"}, map[string]string{"T_CONFIG": file}, "flag", 3 * time.Second},
		{[]string{"--port", "flag", "--config", file}, nil, "flag", 3 * time.Second},
		{[]string{"--quiet", "--config", file}, nil, "file", 3 * time.Second},
	} {
		var c conf
		err := c.table().Load(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
		if err != nil || c.Port != tc.wantPort || time.Duration(c.Wait) != tc.wantWait {
			t.Errorf("Load(%v, %v): port %q, wait %v, err %v; want %q, %v", tc.args, tc.env, c.Port, time.Duration(c.Wait), err, tc.wantPort, tc.wantWait)
		}
	}
}

func TestParseRejectsUnknownKeys(t *testing.T) {
	for format, doc := range map[string]string{"yaml": "prot: 1\n", "toml": "prot = 1\n"} {
		var c conf
		if err := c.table().ParseFile(strings.NewReader(doc), format); err == nil || !strings.Contains(err.Error(), "prot") {
			t.Errorf("%s: Parse(%q) = %v; want an error naming the key", format, doc, err)
		}
	}
	if Format("a.TOML") != "toml" || Format("a.yml") != "yaml" {
		t.Error("Format by extension")
	}
}

// TestParseFileValues: scalars and lists in both formats reach the fields,
// and a value of the wrong shape names its key.
func TestParseFileValues(t *testing.T) {
	for format, doc := range map[string]string{
		"yaml": "port: 8080\nwait: 2m\nquiet: true\npeers: [a, b]\nn: 7\n",
		"toml": "port = 8080\nwait = \"2m\"\nquiet = true\npeers = [\"a\", \"b\"]\nn = 7\n",
	} {
		var c conf
		if err := c.table().ParseFile(strings.NewReader(doc), format); err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if c.Port != "8080" || time.Duration(c.Wait) != 2*time.Minute || !c.Quiet || strings.Join(c.Peers, "|") != "a|b" || c.N != 7 {
			t.Errorf("%s: %+v", format, c)
		}
	}
	for format, doc := range map[string]string{
		"yaml": "port: [1, 2]\n",
		"toml": "port = [1, 2]\n",
	} {
		var c conf
		if err := c.table().ParseFile(strings.NewReader(doc), format); err == nil || !strings.Contains(err.Error(), "port") {
			t.Errorf("%s: a list for a single value: %v", format, err)
		}
	}
	var c conf
	if err := c.table().ParseFile(strings.NewReader("n: 1\nn2: x\nquiet: maybe\n"), "yaml"); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("yaml error without its line: %v", err)
	}
}

// TestHelpAndVersion: -h prints every setting with its default and
// environment variable; --version is reported before anything is read.
func TestHelpAndVersion(t *testing.T) {
	var c conf
	var out bytes.Buffer
	tab := c.table()
	if err := tab.Load([]string{"-h"}, func(string) string { return "" }, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	for _, want := range []string{"--port PORT", "default: 80; env T_PORT; file key port", "default: none; env T_PEERS", "env T_N; file key n", "--quiet\n", "env T_CONFIG"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, out.String())
		}
	}
	if err := tab.Load([]string{"--config", "/nonexistent", "--version"}, func(string) string { return "" }, &out); !errors.Is(err, ErrVersion) {
		t.Errorf("--version: %v", err)
	}
}
