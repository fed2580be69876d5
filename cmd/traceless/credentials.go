package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/term"
)

// session is what 'traceless login' saves: the token and the server that
// issued it. The token is only ever sent to that server.
type session struct {
	Server    string    `json:"server"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// sessionPath is <user config dir>/traceless/token.
func sessionPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find config directory: %w", err)
	}
	return filepath.Join(dir, "traceless", "token"), nil
}

// settings is what the CLI remembers between runs besides the session, in
// <user config dir>/traceless/config.json.
type settings struct {
	// Server is the server of the last login or signup: the default of
	// --server when neither the flag nor TRACELESS_SERVER is given.
	Server string `json:"server"`
}

// settingsPath is <user config dir>/traceless/config.json.
func settingsPath() (string, error) {
	p, err := sessionPath()
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(p), "config.json"), nil
}

// loadServer returns the remembered server, or "" when there is none.
func loadServer() (string, error) {
	p, err := settingsPath()
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read settings: %w", err)
	}
	var st settings
	if err := json.Unmarshal(b, &st); err != nil {
		return "", fmt.Errorf("settings file %s is damaged: remove it, or pass --server", p)
	}
	return strings.TrimSpace(st.Server), nil
}

// saveServer remembers server as the default for later commands.
func saveServer(server string) error {
	p, err := settingsPath()
	if err != nil {
		return err
	}
	if err = configDir(filepath.Dir(p)); err != nil {
		return err
	}
	b, err := json.Marshal(settings{Server: server})
	if err != nil {
		return err
	}
	if err := writeFileAtomic(p, append(b, '\n')); err != nil {
		return fmt.Errorf("save settings: %w", err)
	}
	return nil
}

// sameServer reports whether two server URLs name the same API.
func sameServer(a, b string) bool {
	return strings.TrimRight(strings.TrimSpace(a), "/") == strings.TrimRight(strings.TrimSpace(b), "/")
}

// loadSession reads the saved session; ok is false when there is none.
func loadSession() (s session, ok bool, err error) {
	p, err := sessionPath()
	if err != nil {
		return session{}, false, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return session{}, false, nil
	}
	if err != nil {
		return session{}, false, fmt.Errorf("read session: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil || s.Token == "" {
		return session{}, false, fmt.Errorf("session file %s is damaged; run 'traceless login' again", p)
	}
	return s, true, nil
}

// saveSession writes the session with mode 0600 in a 0700 directory,
// replacing any earlier one atomically.
func saveSession(s session) (string, error) {
	p, err := sessionPath()
	if err != nil {
		return "", err
	}
	if err = configDir(filepath.Dir(p)); err != nil {
		return "", err
	}
	b, err := json.Marshal(s)
	if err != nil {
		return "", err
	}
	if err := writeFileAtomic(p, append(b, '\n')); err != nil {
		return "", fmt.Errorf("save session: %w", err)
	}
	return p, nil
}

// configDir creates dir with mode 0700, or restricts it to 0700.
func configDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create config directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("restrict config directory: %w", err)
	}
	return nil
}

// writeFileAtomic writes b to a new 0600 file beside p and renames it over p.
func writeFileAtomic(p string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// removeSession deletes the saved session, if any.
func removeSession() error {
	p, err := sessionPath()
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove session: %w", err)
	}
	return nil
}

// sessionToken returns TRACELESS_TOKEN, or the saved token when it was
// issued by the --server in use, or "".
func (a *cli) sessionToken() (string, error) {
	if tok := strings.TrimSpace(os.Getenv(envToken)); tok != "" {
		return tok, nil
	}
	s, ok, err := loadSession()
	if err != nil || !ok || !sameServer(s.Server, a.server) {
		return "", err
	}
	if !s.ExpiresAt.IsZero() && time.Now().After(s.ExpiresAt) {
		return "", errSessionExpired
	}
	return s.Token, nil
}

var errSessionExpired = errors.New("the saved session has expired: run 'traceless login'")

// writeSecretFile creates p with mode 0600; it refuses to overwrite.
func writeSecretFile(p string, b []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeOutputFile creates or truncates p with mode 0600.
func writeOutputFile(p string, b []byte) error {
	return os.WriteFile(p, b, 0o600)
}

// terminal returns stdin's file descriptor when it is a terminal.
func (a *cli) terminal() (int, bool) {
	f, ok := a.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return 0, false
	}
	return int(f.Fd()), true
}

// errEndOfInput is stdin ending before a line that was asked for.
var errEndOfInput = errors.New("unexpected end of input")

// readLine reads one line of stdin without its line ending.
func (a *cli) readLine() (string, error) {
	if a.lines == nil {
		a.lines = bufio.NewReader(a.stdin)
	}
	s, err := a.lines.ReadString('\n')
	if err == io.EOF && s != "" {
		err = nil
	}
	if err != nil {
		if err == io.EOF {
			return "", errEndOfInput
		}
		return "", err
	}
	return strings.TrimRight(s, "\r\n"), nil
}

// prompt asks for a line on stderr and reads it from stdin.
func (a *cli) prompt(label string) (string, error) {
	if _, ok := a.terminal(); ok {
		fmt.Fprint(a.stderr, label)
	}
	s, err := a.readLine()
	return strings.TrimSpace(s), err
}

// promptPassword reads a password: without echo from a terminal, or as
// the next line of stdin from a script.
func (a *cli) promptPassword(label string) (string, error) {
	fd, ok := a.terminal()
	if !ok {
		return a.readLine()
	}
	fmt.Fprint(a.stderr, label)
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(a.stderr)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	return string(b), nil
}

// confirm asks question on the terminal and fails unless the answer is one
// of answers (ignoring case). Without a terminal it is a usage error: what
// needs --yes there.
func (a *cli) confirm(what, question string, answers ...string) error {
	if _, tty := a.terminal(); !tty {
		return usagef("%s needs --yes when stdin is not a terminal", what)
	}
	ans, err := a.prompt(question)
	if err != nil {
		return err
	}
	for _, want := range answers {
		if strings.EqualFold(ans, want) {
			return nil
		}
	}
	return errors.New("not deleted")
}
