package config

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type item struct {
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
}

type structConf struct {
	Port  string
	Items []item
}

func (c *structConf) table() *Table {
	return &Table{Program: "t", EnvPrefix: "T_", Settings: []Setting{
		{Key: "port", Value: String(&c.Port), Default: "80", Arg: "PORT", Usage: "the port"},
		{Key: "items", Value: Structure(&c.Items), Unset: "none", Usage: "a list of {name, scopes}"},
	}}
}

// TestStructure: a config-file-only setting takes a list of mappings from
// YAML and TOML, refuses unknown keys, and has no flag or variable.
func TestStructure(t *testing.T) {
	want := []item{{Name: "a", Scopes: []string{"email"}}, {Name: "b"}}
	for _, tc := range []struct{ format, doc string }{
		{"yaml", "items:\n  - name: a\n    scopes: [email]\n  - name: b\n"},
		{"toml", "[[items]]\nname = \"a\"\nscopes = [\"email\"]\n\n[[items]]\nname = \"b\"\n"},
	} {
		var c structConf
		if err := c.table().ParseFile(strings.NewReader(tc.doc), tc.format); err != nil {
			t.Fatalf("%s: %v", tc.format, err)
		}
		if diff := cmp.Diff(want, c.Items); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.format, diff)
		}
	}
	for _, tc := range []struct{ format, doc, wantErr string }{
		{"yaml", "items:\n  - name: a\n    colour: red\n", `unknown field "colour"`},
		{"toml", "[[items]]\nnmae = \"a\"\n", `unknown field "nmae"`},
		{"yaml", "items: just a string\n", "cannot unmarshal string"},
	} {
		var c structConf
		err := c.table().ParseFile(strings.NewReader(tc.doc), tc.format)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s %q: error %v, want one with %q", tc.format, tc.doc, err, tc.wantErr)
		}
	}
	// No flag and no environment variable.
	var c structConf
	if err := c.table().Load([]string{"--items", "x"}, func(string) string { return "" }, io.Discard); err == nil {
		t.Error("--items was accepted as a flag")
	}
	if err := c.table().Load(nil, func(k string) string {
		if k == "T_ITEMS" {
			return "x"
		}
		return ""
	}, io.Discard); err != nil || c.Items != nil {
		t.Errorf("T_ITEMS: %v, items %v; want it ignored", err, c.Items)
	}
	var help bytes.Buffer
	c.table().Help(&help)
	if !strings.Contains(help.String(), "file key items (config file only)") || strings.Contains(help.String(), "--items") {
		t.Errorf("help:\n%s", help.String())
	}
	doc := "## S\n\n| file key | flag | environment | default | meaning |\n|---|---|---|---|---|\n" +
		"| `port` | `--port` | `T_PORT` | `80` | p |\n| `items` | — | — | none | i |\n"
	if p := c.table().CheckDocTable(doc, "## S"); len(p) != 0 {
		t.Errorf("CheckDocTable: %v", p)
	}
	bad := strings.Replace(doc, "| `items` | — | — |", "| `items` | `--items` | `T_ITEMS` |", 1)
	if p := c.table().CheckDocTable(bad, "## S"); len(p) != 1 {
		t.Errorf("CheckDocTable with a flag for a file-only setting: %v", p)
	}
}
