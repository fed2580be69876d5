package store

import "strings"

// ForbiddenName reports what a field or column called name would look like
// (an IP address, an endpoint, a handshake time, …) by the same patterns the
// schema guard applies to columns, or "" when it matches none. It knows no
// table, so the guard's per-column allow list does not apply: callers that
// check something other than the schema (the API's wire types) keep an
// allow list of their own, each entry with its reason.
func ForbiddenName(name string) string {
	name = strings.ToLower(name)
	var what []string
	for _, f := range forbidden {
		if f.re.MatchString(name) && (f.except == nil || !f.except.MatchString(name)) {
			what = append(what, f.what)
		}
	}
	return strings.Join(what, ", ")
}

// TimeName reports whether name looks like it holds a time, by the rule the
// guard uses for columns that store a time in a non-time type.
func TimeName(name string) bool { return timeName.MatchString(strings.ToLower(name)) }
