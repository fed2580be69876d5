package config

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type conf struct {
	Port string   `yaml:"port" toml:"port"`
	Wait Duration `yaml:"wait" toml:"wait"`
}

func (c *conf) settings() []Setting {
	return []Setting{
		{Name: "port", Env: "T_PORT", Set: func(v string) error { c.Port = v; return nil }},
		{Name: "wait", Env: "T_WAIT", Set: func(v string) error { return c.Wait.UnmarshalText([]byte(v)) }},
	}
}

// TestLoadOrder: flags win over the environment, which wins over the file.
func TestLoadOrder(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.toml")
	os.WriteFile(file, []byte("port = \"file\"\nwait = \"3s\"\n"), 0o600)
	for _, tc := range []struct {
		args     []string
		env      map[string]string
		wantPort string
	}{
		{[]string{"--config", file}, nil, "file"},
		{[]string{"--config", file}, map[string]string{"T_PORT": "env"}, "env"},
		{[]string{"--config", file, "--port", "flag"}, map[string]string{"T_PORT": "env"}, "flag"},
		{[]string{"--port", "flag"}, map[string]string{"CFG": file}, "flag"},
	} {
		var c, scratch conf
		err := Load("t", tc.args, func(k string) string { return tc.env[k] }, io.Discard, "CFG", c.settings(), scratch.settings(),
			func(r io.Reader, format string) error { return Parse(r, format, &c) })
		if err != nil || c.Port != tc.wantPort {
			t.Errorf("Load(%v, %v): port %q, err %v; want %q", tc.args, tc.env, c.Port, err, tc.wantPort)
		}
	}
}

func TestParseRejectsUnknownKeys(t *testing.T) {
	for format, doc := range map[string]string{"yaml": "prot: 1\n", "toml": "prot = 1\n"} {
		var c conf
		if err := Parse(strings.NewReader(doc), format, &c); err == nil || !strings.Contains(err.Error(), "prot") {
			t.Errorf("%s: Parse(%q) = %v; want an error naming the key", format, doc, err)
		}
	}
	if Format("a.TOML") != "toml" || Format("a.yml") != "yaml" {
		t.Error("Format by extension")
	}
}
