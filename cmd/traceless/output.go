package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// table writes aligned columns.
type table struct{ w *tabwriter.Writer }

func newTable(w io.Writer) *table { return &table{tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)} }

// row writes one row; cells are sanitised so server text cannot move the
// cursor or break the columns.
func (t *table) row(cells ...any) {
	s := make([]string, len(cells))
	for i, c := range cells {
		s[i] = cell(c)
	}
	fmt.Fprintln(t.w, strings.Join(s, "\t"))
}

func (t *table) flush() error { return t.w.Flush() }

func cell(v any) string {
	var s string
	switch v := v.(type) {
	case string:
		s = v
	case *string:
		if v != nil {
			s = *v
		}
	case bool:
		s = map[bool]string{true: "yes", false: "no"}[v]
	case time.Time:
		if !v.IsZero() {
			s = v.UTC().Format(time.RFC3339)
		}
	default:
		s = fmt.Sprint(v)
	}
	s = strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		if r < 0x20 || (r >= 0x7f && r < 0xa0) {
			return -1
		}
		return r
	}, s)
	if s == "" {
		return "-"
	}
	return s
}

// emit prints v as indented JSON with --output json, and otherwise calls
// text to print it for people.
func (a *cli) emit(v any, text func(t *table)) error {
	if a.json() {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	t := newTable(a.stdout)
	text(t)
	return t.flush()
}

// done reports a success without a result: msg in text mode, {} in JSON
// mode.
func (a *cli) done(msg string, args ...any) error {
	if a.json() {
		_, err := io.WriteString(a.stdout, "{}\n")
		return err
	}
	_, err := fmt.Fprintf(a.stdout, msg+"\n", args...)
	return err
}

// price formats cents and a currency.
func price(cents int, currency string) string {
	if cents == 0 {
		return "free"
	}
	return fmt.Sprintf("%d.%02d %s", cents/100, cents%100, currency)
}

// nonNil turns a nil slice into an empty one, so JSON shows [] not null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
