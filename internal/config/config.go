// Package config is the configuration machinery the Traceless daemons
// share. Each program describes its settings once, in a Table: the
// config-file key, the flag and the environment variable of every setting
// are derived from its row, its default is applied from the row, and the
// help text is printed from the row. Settings are applied in order: the
// defaults, a YAML or TOML file that may not name unknown keys, the
// environment, the flags (flags win).
//
// Only cmd/ packages import it.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"go.yaml.in/yaml/v3"
)

// ErrVersion is returned by Load when --version was given: the caller
// prints the version and exits 0, as it does for flag.ErrHelp.
var ErrVersion = errors.New("version requested")

// Value is one setting's value, bound to a field of the program's config.
// Set parses the text form: a flag, an environment variable, or a scalar
// in a config file. String is the text form of the current value.
type Value interface {
	Set(string) error
	String() string
}

// structuredValue is a Value that only a config file can give: a
// structure (a list of mappings, say) rather than a scalar. It has no flag
// and no environment variable.
type structuredValue interface {
	Value
	SetStructured(any) error
}

// FileOnly reports whether the setting can be given in a config file only.
func (s Setting) FileOnly() bool {
	_, ok := s.Value.(structuredValue)
	return ok
}

// listValue is a Value that a config file may also give as a list.
type listValue interface {
	Value
	SetList([]string) error
}

// Setting is one row of a program's settings table.
type Setting struct {
	// Key is the config-file key ("session_ttl"). The flag is the key with
	// dashes (--session-ttl) unless Flag names another; the environment
	// variable is the table's prefix and the flag's name in upper case
	// with underscores (TRACELESS_SESSION_TTL).
	Key  string
	Flag string
	// Value is the field the setting fills.
	Value Value
	// Default is applied by Table.SetDefaults, in the form a flag takes.
	// Empty means the field's zero value.
	Default string
	// Unset says what an empty default means ("from listen"); help and
	// README show it in place of the default.
	Unset string
	// Arg names the flag's argument in the help ("ADDR"); a boolean
	// setting has none.
	Arg   string
	Usage string
}

// Table is a program's settings.
type Table struct {
	// Program is the command's name, for the help.
	Program string
	// EnvPrefix starts every environment variable ("TRACELESS_").
	EnvPrefix string
	Settings  []Setting
}

// FlagName is the setting's flag, without dashes.
func (s Setting) FlagName() string {
	if s.Flag != "" {
		return s.Flag
	}
	return strings.ReplaceAll(s.Key, "_", "-")
}

// Env is the setting's environment variable.
func (t *Table) Env(s Setting) string {
	return t.EnvPrefix + strings.ToUpper(strings.ReplaceAll(s.FlagName(), "-", "_"))
}

// ConfigEnv is the environment variable naming the config file.
func (t *Table) ConfigEnv() string { return t.EnvPrefix + "CONFIG" }

// DefaultText is the default as help and README show it: the default
// value, or what its absence means.
func (s Setting) DefaultText() string {
	if s.Default != "" {
		return s.Default
	}
	return s.Unset
}

// SetDefaults applies every setting's default.
func (t *Table) SetDefaults() error {
	for _, s := range t.Settings {
		if s.Default == "" {
			continue
		}
		if err := s.Value.Set(s.Default); err != nil {
			return fmt.Errorf("default of %s: %w", s.Key, err)
		}
	}
	return nil
}

// setting finds a row by file key.
func (t *Table) setting(key string) (Setting, bool) {
	for _, s := range t.Settings {
		if s.Key == key {
			return s, true
		}
	}
	return Setting{}, false
}

// ParseFile reads a YAML or TOML document (format "toml"; anything else is
// YAML) into the table's values. Unknown keys are errors, so a typo does
// not silently fall back to a default.
func (t *Table) ParseFile(r io.Reader, format string) error {
	b, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return err
	}
	if format == "toml" {
		return t.parseTOML(b)
	}
	return t.parseYAML(b)
}

func (t *Table) parseTOML(b []byte) error {
	m := map[string]any{}
	if _, err := toml.Decode(string(b), &m); err != nil {
		return err // "toml: line …"
	}
	// The file's order is lost in the map; apply in the table's order so
	// that errors are deterministic.
	for key := range m {
		if _, ok := t.setting(key); !ok {
			return fmt.Errorf("unknown setting %q", key)
		}
	}
	for _, s := range t.Settings {
		v, ok := m[s.Key]
		if !ok {
			continue
		}
		if err := setFromFile(s, v); err != nil {
			return fmt.Errorf("%s: %w", s.Key, err)
		}
	}
	return nil
}

// setFromFile sets s from a decoded TOML value.
func setFromFile(s Setting, v any) error {
	if sv, ok := s.Value.(structuredValue); ok {
		return sv.SetStructured(v)
	}
	if list, ok := v.([]any); ok {
		lv, ok := s.Value.(listValue)
		if !ok {
			return errors.New("takes one value, not a list")
		}
		items := make([]string, len(list))
		for i, e := range list {
			str, err := scalarText(e)
			if err != nil {
				return err
			}
			items[i] = str
		}
		return lv.SetList(items)
	}
	str, err := scalarText(v)
	if err != nil {
		return err
	}
	return s.Value.Set(str)
}

func scalarText(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case bool:
		return strconv.FormatBool(v), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), nil
	}
	return "", fmt.Errorf("%v is not a string, number or boolean", v)
}

func (t *Table) parseYAML(b []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return err // "yaml: line …"
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil // empty, or only comments
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("yaml: line %d: the file must be a mapping of settings", root.Line)
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		s, ok := t.setting(k.Value)
		if !ok {
			return fmt.Errorf("yaml: line %d: unknown setting %q", k.Line, k.Value)
		}
		if err := setFromYAML(s, v); err != nil {
			return fmt.Errorf("yaml: line %d: %s: %w", v.Line, s.Key, err)
		}
	}
	return nil
}

// setFromYAML sets s from a YAML value node.
func setFromYAML(s Setting, v *yaml.Node) error {
	if sv, ok := s.Value.(structuredValue); ok {
		var x any
		if err := v.Decode(&x); err != nil {
			return err
		}
		return sv.SetStructured(x)
	}
	switch v.Kind {
	case yaml.ScalarNode:
		if v.Tag == "!!null" {
			return s.Value.Set("")
		}
		return s.Value.Set(v.Value)
	case yaml.SequenceNode:
		lv, ok := s.Value.(listValue)
		if !ok {
			return errors.New("takes one value, not a list")
		}
		items := make([]string, len(v.Content))
		for i, e := range v.Content {
			if e.Kind != yaml.ScalarNode {
				return errors.New("a list of plain values is expected")
			}
			items[i] = e.Value
		}
		return lv.SetList(items)
	}
	return errors.New("takes a value or a list, not a mapping")
}

// Format is the format of a config file by its name: "toml" for .toml,
// else "yaml".
func Format(path string) string {
	if strings.EqualFold(filepath.Ext(path), ".toml") {
		return "toml"
	}
	return "yaml"
}

// ApplyEnv sets every setting whose environment variable is set.
func (t *Table) ApplyEnv(getenv func(string) string) error {
	for _, s := range t.Settings {
		if s.FileOnly() {
			continue
		}
		if v := getenv(t.Env(s)); v != "" {
			if err := s.Value.Set(v); err != nil {
				return fmt.Errorf("%s: %w", t.Env(s), err)
			}
		}
	}
	return nil
}

// Load applies the defaults, then the config file named by --config (or
// the table's CONFIG variable), then the environment, then the flags in
// args. -h prints the help to stderr and returns flag.ErrHelp; --version
// returns ErrVersion before anything else is read.
func (t *Table) Load(args []string, getenv func(string) string, stderr io.Writer) error {
	if err := t.SetDefaults(); err != nil {
		return err
	}
	// A first pass over args finds --config and --version; the settings'
	// flags are parsed, not applied, so that a flag keeps its place after
	// the file and the environment.
	pre := flag.NewFlagSet(t.Program, flag.ContinueOnError)
	pre.SetOutput(io.Discard)
	configPath := pre.String("config", getenv(t.ConfigEnv()), "")
	showVersion := pre.Bool("version", false, "")
	for _, s := range t.Settings {
		if !s.FileOnly() {
			pre.Var(discard{isBool: isBool(s.Value)}, s.FlagName(), "")
		}
	}
	preErr := pre.Parse(args)
	if *showVersion {
		return ErrVersion
	}
	fs := t.flagSet(stderr)
	if errors.Is(preErr, flag.ErrHelp) {
		fs.Usage()
		return flag.ErrHelp
	}
	if *configPath != "" {
		f, err := os.Open(*configPath)
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		err = t.ParseFile(f, Format(*configPath))
		f.Close()
		if err != nil {
			return fmt.Errorf("config %s: %w", *configPath, err)
		}
	}
	if err := t.ApplyEnv(getenv); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// flagSet has a flag per setting, --config and --version, and prints the
// table as its help.
func (t *Table) flagSet(stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(t.Program, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.String("config", "", "")
	fs.Bool("version", false, "")
	for _, s := range t.Settings {
		if !s.FileOnly() {
			fs.Var(s.Value, s.FlagName(), s.Usage)
		}
	}
	fs.Usage = func() { t.Help(stderr) }
	return fs
}

// Help writes the program's help: every setting with its flag, usage,
// default, environment variable and file key.
func (t *Table) Help(w io.Writer) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "Usage: %s [flags]\n\n", t.Program)
	fmt.Fprintf(&b, "Every setting is a flag, an environment variable and a config-file key.\n")
	fmt.Fprintf(&b, "Flags win over the environment, which wins over the file, which wins over the defaults.\n\n")
	fmt.Fprintf(&b, "  --config FILE\n      config file, YAML (.yaml/.yml) or TOML (.toml)\n      env %s\n", t.ConfigEnv())
	fmt.Fprintf(&b, "  --version\n      print the version and exit\n")
	for _, s := range t.Settings {
		if s.FileOnly() {
			fmt.Fprintf(&b, "  file key %s (config file only)\n      %s\n", s.Key, s.Usage)
			continue
		}
		fmt.Fprintf(&b, "  --%s", s.FlagName())
		if s.Arg != "" {
			fmt.Fprintf(&b, " %s", s.Arg)
		}
		fmt.Fprintf(&b, "\n      %s\n      ", s.Usage)
		if d := s.DefaultText(); d != "" {
			fmt.Fprintf(&b, "default: %s; ", d)
		}
		fmt.Fprintf(&b, "env %s; file key %s\n", t.Env(s), s.Key)
	}
	w.Write(b.Bytes())
}

// discard is a flag that accepts anything, for the first pass of Load.
type discard struct{ isBool bool }

func (discard) Set(string) error   { return nil }
func (discard) String() string     { return "" }
func (d discard) IsBoolFlag() bool { return d.isBool }
func isBool(v Value) bool          { b, ok := v.(interface{ IsBoolFlag() bool }); return ok && b.IsBoolFlag() }
func splitList(v string) (s []string) {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			s = append(s, p)
		}
	}
	return s
}

// String binds a string field.
func String(p *string) Value { return (*stringValue)(p) }

type stringValue string

func (v *stringValue) Set(s string) error { *v = stringValue(s); return nil }
func (v *stringValue) String() string     { return string(*v) }

// Int binds an int field.
func Int(p *int) Value { return (*intValue)(p) }

type intValue int

func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not a number", s)
	}
	*v = intValue(n)
	return nil
}
func (v *intValue) String() string { return strconv.Itoa(int(*v)) }

// Float binds a float64 field.
func Float(p *float64) Value { return (*floatValue)(p) }

type floatValue float64

func (v *floatValue) Set(s string) error {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return fmt.Errorf("%q is not a number", s)
	}
	*v = floatValue(f)
	return nil
}
func (v *floatValue) String() string { return strconv.FormatFloat(float64(*v), 'g', -1, 64) }

// Bool binds a bool field; its flag may be given without a value.
func Bool(p *bool) Value { return (*boolValue)(p) }

type boolValue bool

func (v *boolValue) Set(s string) error {
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not true or false", s)
	}
	*v = boolValue(b)
	return nil
}
func (v *boolValue) String() string   { return strconv.FormatBool(bool(*v)) }
func (v *boolValue) IsBoolFlag() bool { return true }

// Duration is a time.Duration written as "12h" in config files.
type Duration time.Duration

// UnmarshalText parses a Go duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(strings.TrimSpace(string(b)))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes a Go duration.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Set parses a Go duration.
func (d *Duration) Set(s string) error { return d.UnmarshalText([]byte(s)) }

// String is the Go duration ("12h0m0s").
func (d *Duration) String() string { return time.Duration(*d).String() }

// Dur binds a Duration field.
func Dur(p *Duration) Value { return p }

// Structure binds a setting that only a config file gives, as a
// structure: its YAML or TOML value is decoded into *dst through JSON, so
// dst's json tags name the keys, and unknown keys are errors.
func Structure[T any](dst *T) Value { return &structure[T]{dst: dst} }

type structure[T any] struct{ dst *T }

func (v *structure[T]) Set(string) error { return errors.New("can be set in a config file only") }
func (v *structure[T]) String() string   { return "" }
func (v *structure[T]) SetStructured(x any) error {
	b, err := json.Marshal(x)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var out T
	if err := dec.Decode(&out); err != nil {
		return fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "json: "))
	}
	*v.dst = out
	return nil
}

// List binds a list field: comma-separated in a flag or the environment, a
// list in a file. Setting it replaces the whole list.
func List(p *[]string) Value { return (*listOf)(p) }

type listOf []string

func (v *listOf) Set(s string) error { *v = splitList(s); return nil }
func (v *listOf) SetList(items []string) error {
	*v = nil
	for _, it := range items {
		if it = strings.TrimSpace(it); it != "" {
			*v = append(*v, it)
		}
	}
	return nil
}
func (v *listOf) String() string { return strings.Join(*v, ",") }

// CheckDocTable compares the settings table in a Markdown document (the
// first table after the line heading) with t: one row per setting with
// columns file key, flag, environment, default and meaning, the first four
// as t states them (backquotes aside). It returns every difference.
func (t *Table) CheckDocTable(markdown, heading string) []string {
	lines := strings.Split(markdown, "\n")
	start := -1
	for i, l := range lines {
		if strings.TrimSpace(l) == heading {
			start = i
			break
		}
	}
	if start < 0 {
		return []string{fmt.Sprintf("no heading %q", heading)}
	}
	var rows [][]string
	for _, l := range lines[start+1:] {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, "|") {
			if len(rows) > 0 {
				break
			}
			continue
		}
		var cells []string
		for _, c := range strings.Split(strings.Trim(l, "|"), "|") {
			cells = append(cells, strings.TrimSpace(c))
		}
		rows = append(rows, cells)
	}
	if len(rows) < 2 || strings.Join(rows[0], "|") != "file key|flag|environment|default|meaning" {
		return []string{fmt.Sprintf("no table with columns file key, flag, environment, default, meaning after %q", heading)}
	}
	var problems []string
	unquote := func(s string) string { return strings.ReplaceAll(s, "`", "") }
	seen := map[string]bool{}
	for _, r := range rows[2:] {
		if len(r) != 5 {
			problems = append(problems, fmt.Sprintf("row %q does not have 5 columns", r))
			continue
		}
		key := unquote(r[0])
		s, ok := t.setting(key)
		if !ok {
			problems = append(problems, fmt.Sprintf("row %s: no such setting", key))
			continue
		}
		seen[key] = true
		if s.FileOnly() {
			// No flag, no variable: the row says so with a dash.
			if r[1] != "—" || r[2] != "—" {
				problems = append(problems, fmt.Sprintf("%s: a config-file-only setting has flag and environment —, not %s and %s", key, r[1], r[2]))
			}
		} else if want := "`--" + s.FlagName() + "`"; r[1] != want {
			problems = append(problems, fmt.Sprintf("%s: flag %s, want %s", key, r[1], want))
		}
		if want := "`" + t.Env(s) + "`"; !s.FileOnly() && r[2] != want {
			problems = append(problems, fmt.Sprintf("%s: environment %s, want %s", key, r[2], want))
		}
		if got, want := unquote(r[3]), s.DefaultText(); got != want {
			problems = append(problems, fmt.Sprintf("%s: default %q, want %q", key, got, want))
		}
	}
	for _, s := range t.Settings {
		if !seen[s.Key] {
			problems = append(problems, fmt.Sprintf("setting %s has no row", s.Key))
		}
	}
	return problems
}
