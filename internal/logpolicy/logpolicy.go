// Package logpolicy keeps log lines to the attributes a program declared.
//
// The no-logs promise depends on what reaches a log, and a rule such as
// "never log a client address" kept by hand in every call is one forgotten
// call from broken. Both binaries therefore wrap their slog handler with
// Wrap: an attribute whose key is not on the program's allowlist is
// dropped, so a new `slog.String("client_ip", …)` writes nothing. In a test
// binary the same call panics, so the test that reaches it fails and the
// key is either declared, with a review of what it carries, or removed.
//
// It imports only the standard library; any package may use it.
package logpolicy

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
)

// DroppedKey is the attribute that counts, on a line, the attributes that
// were dropped. It names no dropped key: the key itself may be the leak.
const DroppedKey = "dropped_attrs"

// Handler passes records to the next handler with only allowed attributes.
type Handler struct {
	next    slog.Handler
	allowed map[string]bool
	strict  bool
}

// New returns a Handler that lets through attributes whose keys are in
// allowed (group names included). Unknown keys are dropped; when strict,
// they panic instead.
func New(next slog.Handler, strict bool, allowed ...string) *Handler {
	m := make(map[string]bool, len(allowed)+1)
	for _, k := range allowed {
		m[k] = true
	}
	m[DroppedKey] = true
	return &Handler{next: next, allowed: m, strict: strict}
}

// Wrap returns a logger over l's handler that keeps only allowed keys,
// strict in test binaries (testing.Testing) and lenient otherwise. A nil l
// stays nil. Wrapping a logger that Wrap already wrapped narrows it to the
// keys both lists allow.
func Wrap(l *slog.Logger, allowed ...string) *slog.Logger {
	if l == nil {
		return nil
	}
	return slog.New(New(l.Handler(), testing.Testing(), allowed...))
}

// Enabled reports whether the next handler handles level.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle filters r's attributes and passes it on.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	dropped := 0
	r.Attrs(func(a slog.Attr) bool {
		if fa, ok := h.filter(a, &dropped); ok {
			out.AddAttrs(fa)
		}
		return true
	})
	if dropped > 0 {
		out.AddAttrs(slog.Int(DroppedKey, dropped))
	}
	return h.next.Handle(ctx, out)
}

// filter reports whether a may be logged, with unknown keys removed from
// any group it holds; it adds the number of removed attributes to dropped.
func (h *Handler) filter(a slog.Attr, dropped *int) (slog.Attr, bool) {
	if a.Equal(slog.Attr{}) {
		return a, true // slog ignores empty attributes itself
	}
	if !h.allowed[a.Key] && a.Key != "" { // an inline group has an empty key
		h.unknown(a.Key)
		*dropped++
		return slog.Attr{}, false
	}
	if a.Value.Kind() != slog.KindGroup {
		return a, true
	}
	var kept []any
	for _, ga := range a.Value.Group() {
		if fa, ok := h.filter(ga, dropped); ok {
			kept = append(kept, fa)
		}
	}
	return slog.Group(a.Key, kept...), true
}

func (h *Handler) unknown(key string) {
	if h.strict {
		panic(fmt.Sprintf("logpolicy: log attribute %q is not declared; add it to the program's log keys after checking it carries nothing about end users", key))
	}
}

// WithAttrs filters attrs once, here, and returns a handler that carries
// them (and, when it dropped some, says how many on every line).
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	var kept []slog.Attr
	dropped := 0
	for _, a := range attrs {
		if fa, ok := h.filter(a, &dropped); ok {
			kept = append(kept, fa)
		}
	}
	if dropped > 0 {
		kept = append(kept, slog.Int(DroppedKey, dropped))
	}
	return &Handler{next: h.next.WithAttrs(kept), allowed: h.allowed, strict: h.strict}
}

// WithGroup opens a group, whose name must itself be allowed.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name != "" && !h.allowed[name] {
		h.unknown(name)
		return h // attributes land ungrouped, still filtered
	}
	return &Handler{next: h.next.WithGroup(name), allowed: h.allowed, strict: h.strict}
}
