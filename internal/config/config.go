// Package config is the configuration machinery the Traceless commands
// share: a YAML or TOML file that may not name unknown keys, environment
// variables and flags for every setting, applied in that order (flags win
// over the environment, which wins over the file, which wins over the
// defaults), and a Duration that reads "90s" in files.
//
// Only cmd/ packages import it.
package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written as "12h" in config files.
type Duration time.Duration

// UnmarshalText parses a Go duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes a Go duration.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Parse reads a YAML or TOML document (format "toml"; anything else is
// YAML) into dst. Unknown keys are errors, so a typo does not silently
// fall back to a default.
func Parse(r io.Reader, format string, dst any) error {
	b, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return err
	}
	if format == "toml" {
		md, err := toml.Decode(string(b), dst)
		if err != nil {
			return err // "toml: line …"
		}
		if und := md.Undecoded(); len(und) > 0 {
			return fmt.Errorf("unknown setting %q", und[0].String())
		}
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(dst); err != nil && !errors.Is(err, io.EOF) {
		return err // "yaml: line …"
	}
	return nil
}

// Format is the format of a config file by its name: "toml" for .toml,
// else "yaml".
func Format(path string) string {
	if strings.EqualFold(filepath.Ext(path), ".toml") {
		return "toml"
	}
	return "yaml"
}

// Setting ties one config field to its flag and environment variable.
type Setting struct {
	Name, Env, Usage string
	Set              func(string) error
	Get              func() string
	IsBool           bool // a flag that may be given without a value
}

// ApplyEnv sets every setting whose environment variable is set.
func ApplyEnv(ss []Setting, getenv func(string) string) error {
	for _, st := range ss {
		if v := getenv(st.Env); v != "" {
			if err := st.Set(v); err != nil {
				return fmt.Errorf("%s: %w", st.Env, err)
			}
		}
	}
	return nil
}

// RegisterFlags adds a flag per setting.
func RegisterFlags(fs *flag.FlagSet, ss []Setting) {
	for _, st := range ss {
		if st.IsBool {
			fs.BoolFunc(st.Name, st.Usage+" (env "+st.Env+")", st.Set)
			continue
		}
		fs.Func(st.Name, st.Usage+" (env "+st.Env+")", st.Set)
	}
}

// Load applies the config file named by --config (or the configEnv
// variable), then the environment, then the flags in args. settings are
// the real config's; scratch are a throwaway config's, used by a first pass
// over args that finds --config before the file is read. parse reads the
// file into the real config.
func Load(prog string, args []string, getenv func(string) string, stderr io.Writer, configEnv string,
	settings, scratch []Setting, parse func(r io.Reader, format string) error) error {
	fs := flag.NewFlagSet(prog, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", getenv(configEnv), "config file, YAML (.yaml/.yml) or TOML (.toml) (env "+configEnv+")")
	pre := flag.NewFlagSet("", flag.ContinueOnError)
	pre.SetOutput(io.Discard)
	prePath := pre.String("config", *configPath, "")
	RegisterFlags(pre, scratch)
	_ = pre.Parse(args)
	if *prePath != "" {
		f, err := os.Open(*prePath)
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		err = parse(f, Format(*prePath))
		f.Close()
		if err != nil {
			return fmt.Errorf("config %s: %w", *prePath, err)
		}
	}
	if err := ApplyEnv(settings, getenv); err != nil {
		return err
	}
	RegisterFlags(fs, settings)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return nil
}
