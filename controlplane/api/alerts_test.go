package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"testing"
	"time"
)

func TestSignAlert(t *testing.T) {
	at := time.Unix(1709294400, 0)
	body := []byte(`{"id":"e1","kind":"test"}`)
	got := SignAlert("tlw_secret", at, body)

	// The documented construction, spelled out.
	m := hmac.New(sha256.New, []byte("tlw_secret"))
	m.Write([]byte(strconv.FormatInt(at.Unix(), 10) + "." + string(body)))
	want := "t=1709294400,v1=" + hex.EncodeToString(m.Sum(nil))
	if got != want {
		t.Fatalf("SignAlert = %q, want %q", got, want)
	}
	if err := VerifyAlert("tlw_secret", got, body, at.Add(time.Minute), 5*time.Minute); err != nil {
		t.Errorf("VerifyAlert of a fresh signature: %v", err)
	}
	for name, tc := range map[string]struct {
		secret, header string
		body           []byte
		now            time.Time
		want           error
	}{
		"wrong secret":    {"tlw_other", got, body, at, ErrAlertSignature},
		"changed body":    {"tlw_secret", got, []byte(`{"id":"e1","kind":"tesT"}`), at, ErrAlertSignature},
		"changed time":    {"tlw_secret", "t=1709294401," + got[len("t=1709294400,"):], body, at, ErrAlertSignature},
		"no signature":    {"tlw_secret", "t=1709294400", body, at, ErrAlertSignature},
		"empty header":    {"tlw_secret", "", body, at, ErrAlertSignature},
		"replayed later":  {"tlw_secret", got, body, at.Add(time.Hour), ErrAlertStale},
		"from the future": {"tlw_secret", got, body, at.Add(-time.Hour), ErrAlertStale},
	} {
		if err := VerifyAlert(tc.secret, tc.header, tc.body, tc.now, 5*time.Minute); !errors.Is(err, tc.want) {
			t.Errorf("%s: VerifyAlert = %v, want %v", name, err, tc.want)
		}
	}
	// Extra v1 values are tolerated when one of them matches.
	if err := VerifyAlert("tlw_secret", got+",v1=00", body, at, 0); err != nil {
		t.Errorf("with an extra v1: %v", err)
	}
}
