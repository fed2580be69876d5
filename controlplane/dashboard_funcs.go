package controlplane

import (
	"html/template"
	"strconv"
	"strings"
	"time"
)

// templateFuncs are the helpers the page templates use.
var templateFuncs = template.FuncMap{
	"field": fieldOf,
	"num":   formatInt,
	"price": formatPrice,
	"cents": formatCents,
	"date":  formatDate,
	"datep": func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return formatDate(*t)
	},
	"plural": plural,
	"deref":  func(s *string) string { return derefString(s) },
}

// fieldView is one labelled input as the "input" partial renders it.
type fieldView struct {
	ID, Name, Label, Type, Value string
	Err, Hint                    string
	Autocomplete, InputMode      string
	MaxLength                    int
	Required, Autofocus          bool
}

// fieldOf builds a fieldView for input name of form on page p. Options:
// "required", "autofocus" (when no field has an error), "hint=…",
// "autocomplete=…", "inputmode=…", "maxlength=N".
func fieldOf(p *page, form, name, label, typ, value string, opts ...string) fieldView {
	f := fieldView{ID: form + "-" + name, Name: name, Label: label, Type: typ, Value: value, Err: p.Errors[form+"."+name]}
	f.Autofocus = p.Focus == f.ID
	for _, o := range opts {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "required":
			f.Required = true
		case "autofocus":
			f.Autofocus = f.Autofocus || p.Focus == ""
		case "hint":
			f.Hint = v
		case "autocomplete":
			f.Autocomplete = v
		case "inputmode":
			f.InputMode = v
		case "maxlength":
			f.MaxLength, _ = strconv.Atoi(v)
		}
	}
	return f
}

// formatInt writes n with thin thousands separators: 10,000.
func formatInt(n any) string {
	var v int64
	switch x := n.(type) {
	case int:
		v = int64(x)
	case int64:
		v = x
	default:
		return ""
	}
	s := strconv.FormatInt(v, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// formatCents writes cents as an amount: 4900 -> "49.00".
func formatCents(cents int) string {
	return strconv.Itoa(cents/100) + "." + strconv.Itoa(cents%100/10) + strconv.Itoa(cents%10)
}

// formatPrice writes a monthly price: "Free" or "49.00 EUR".
func formatPrice(cents int, currency string) string {
	if cents == 0 {
		return "Free"
	}
	return formatCents(cents) + " " + currency
}

// formatDate writes a time as a UTC date and time.
func formatDate(t time.Time) string { return t.UTC().Format("2 Jan 2006, 15:04 UTC") }

// plural writes "1 device" or "3 devices".
func plural(n any, one, many string) string {
	s := formatInt(n)
	if s == "1" {
		return s + " " + one
	}
	return s + " " + many
}

func derefString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
