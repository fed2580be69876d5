package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// runInteractive runs the CLI with stdin and stderr as pipes: answer reads
// stderr line by line and may write to stdin.
func runInteractive(t *testing.T, answer func(line string, stdin io.Writer) bool, args ...string) result {
	t.Helper()
	inR, inW := io.Pipe()
	errR, errW := io.Pipe()
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		code := run(context.Background(), args, inR, &out, errW)
		errW.Close()
		done <- code
	}()
	sc := bufio.NewScanner(errR)
	for sc.Scan() {
		errb.WriteString(sc.Text() + "\n")
		if answer(sc.Text(), inW) {
			inW.Close()
		}
	}
	inW.Close()
	return result{<-done, out.String(), errb.String()}
}

// TestSecurityCommands: password change, two-factor on, a login that
// needs the code (and refuses a replay), two-factor off.
func TestSecurityCommands(t *testing.T) {
	url, _ := newServer(t)
	s := "--server=" + url
	ok(t, password, s, "signup", "--email", "sec@example.com", "--password-stdin")

	const newPassword = "another long passphrase"
	ok(t, password+"\n"+newPassword+"\n", s, "account", "password", "--password-stdin")
	if r := cliRun(t, newPassword, s, "login", "--email", "sec@example.com", "--password-stdin"); r.code != 0 {
		t.Fatalf("login with the new password: %+v", r)
	}
	if r := cliRun(t, "wrong\n"+password+"\n", s, "account", "password", "--password-stdin"); r.code != 1 || !strings.Contains(r.stderr, "forbidden") {
		t.Fatalf("a wrong current password: %+v", r)
	}

	// Two-factor with another account: each sign-in attempt of an email
	// counts against its login limit (five at once).
	ok(t, password, s, "signup", "--email", "tfa@example.com", "--password-stdin")
	var secret string
	keyRE := regexp.MustCompile(`^    ([A-Z2-7]{32})$`)
	r := runInteractive(t, func(line string, stdin io.Writer) bool {
		if m := keyRE.FindStringSubmatch(line); m != nil {
			secret = m[1]
			code, err := totp.GenerateCode(secret, time.Now())
			if err != nil {
				t.Error(err)
			}
			io.WriteString(stdin, code+"\n")
			return true
		}
		return false
	}, s, "account", "2fa", "enable", "-o", "json")
	if r.code != 0 {
		t.Fatalf("2fa enable: %+v", r)
	}
	res := decode[twoFactorResult](t, r)
	if res.Secret != secret || len(res.RecoveryCodes) != 10 {
		t.Fatalf("2fa enable: %+v", res)
	}

	// A login without a code and without a terminal says to pass --code.
	if r := cliRun(t, password, s, "login", "--email", "tfa@example.com", "--password-stdin"); r.code != 2 || !strings.Contains(r.stderr, "--code") {
		t.Fatalf("login without a code: %+v", r)
	}
	// Piped: the email, the password and the code, a line each.
	ok(t, "tfa@example.com\n"+password+"\n"+res.RecoveryCodes[0]+"\n", s, "login")
	if r := cliRun(t, password, s, "login", "--email", "tfa@example.com", "--password-stdin", "--code", res.RecoveryCodes[0]); r.code != 1 ||
		!strings.Contains(r.stderr, api.CodeSecondFactorInvalid) {
		t.Fatalf("a spent recovery code: %+v", r)
	}
	ok(t, password+"\n", s, "account", "2fa", "disable", "--password-stdin", "--code", res.RecoveryCodes[2])
	o := decode[meResult](t, ok(t, "", s, "me", "-o", "json"))
	if o.TwoFactor {
		t.Error("two_factor still on after 2fa disable")
	}
}
