package logpolicy

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func newLogger(strict bool, keys ...string) (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	h := slog.NewTextHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})
	return slog.New(New(h, strict, keys...)), &buf
}

func TestDropsUnknownKeys(t *testing.T) {
	l, buf := newLogger(false, "route", "status", "g")
	l.Info("request", slog.String("route", "/x"), slog.String("client_ip", "192.0.2.7"),
		slog.Group("g", slog.Int("status", 200), slog.String("user_agent", "canary/1")))
	l.With(slog.String("endpoint", "198.51.100.1:51820")).Info("with", slog.Int("status", 1))
	got := buf.String()
	for _, leak := range []string{"192.0.2.7", "client_ip", "canary/1", "user_agent", "198.51.100.1", "endpoint"} {
		if strings.Contains(got, leak) {
			t.Errorf("log holds %q:\n%s", leak, got)
		}
	}
	for _, want := range []string{"route=/x", "g.status=200", "dropped_attrs=2", "dropped_attrs=1 status=1"} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q:\n%s", want, got)
		}
	}
}

func TestStrictPanics(t *testing.T) {
	for name, log := range map[string]func(*slog.Logger){
		"attr":  func(l *slog.Logger) { l.Info("x", slog.String("remote_addr", "192.0.2.1")) },
		"with":  func(l *slog.Logger) { l.With("peer", "k").Info("x") },
		"group": func(l *slog.Logger) { l.WithGroup("device").Info("x") },
		"inner": func(l *slog.Logger) { l.Info("x", slog.Group("route", slog.String("ip", "1"))) },
	} {
		t.Run(name, func(t *testing.T) {
			l, _ := newLogger(true, "route")
			defer func() {
				if r := recover(); r == nil {
					t.Error("an undeclared key did not panic in strict mode")
				}
			}()
			log(l)
		})
	}
}

func TestWrapIsStrictInTests(t *testing.T) {
	var buf bytes.Buffer
	l := Wrap(slog.New(slog.NewTextHandler(&buf, nil)), "ok")
	l.Info("fine", slog.Int("ok", 1))
	defer func() {
		if recover() == nil {
			t.Error("Wrap is not strict in a test binary")
		}
	}()
	l.Info("leak", slog.String("src_ip", "192.0.2.9"))
}

func TestNilLogger(t *testing.T) {
	if Wrap(nil, "x") != nil {
		t.Error("Wrap(nil) is not nil")
	}
}
