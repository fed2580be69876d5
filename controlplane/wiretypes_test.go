package controlplane

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/traceless-vpn/traceless/store"
)

// wireAllowed are the api fields whose wire names match one of the schema
// guard's forbidden patterns but are not end-user activity, each with the
// reason. Keys are "Type.wire_name".
var wireAllowed = map[string]string{
	"AlertSettings.webhook_url":      "the owner's own alert receiver, not an address anyone visited",
	"AlertSettingsInput.webhook_url": "the owner's own alert receiver, not an address anyone visited",
	"Device.ipv4":                    "tunnel address Traceless assigns, not the user's address",
	"Device.ipv6":                    "tunnel address Traceless assigns, not the user's address",
	"Peer.allowed_ips":               "the device's tunnel addresses, as WireGuard's AllowedIPs",
	"Tunnel.ipv4":                    "the tunnel network a node serves, not anyone's address",
	"Tunnel.ipv6":                    "the tunnel network a node serves, not anyone's address",
	"EnrollRequest.endpoint":         "the node's own public address, which clients dial",
	"Node.endpoint":                  "the node's own public address, which clients dial",
	"Server.endpoint":                "the node's own public address, which clients dial",
	"BillingRedirect.url":            "a Stripe page (Checkout or the customer portal) the owner is sent to; nobody's visit is recorded",
	"TOTPEnrolment.otpauth_url":      "the otpauth:// URL of the owner's own new TOTP secret, for an authenticator app; nobody visited it",
}

// wireField is one field of a struct type in package api, by its name on
// the wire.
type wireField struct {
	Type, Wire, GoType string
	Pos                string
}

// wireFields parses the non-test source of package api in dir and returns
// every field of every struct type (nested anonymous structs included),
// named as encoding/json would name it. Parsing the source, rather than
// listing types by hand, means a new wire type is checked without anyone
// remembering to register it.
func wireFields(t testing.TB, dir string) []wireField {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var out []wireField
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, structFields(fset, f)...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Type+out[i].Wire < out[j].Type+out[j].Wire })
	return out
}

func structFields(fset *token.FileSet, f *ast.File) []wireField {
	var out []wireField
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok {
			return true
		}
		var walk func(owner string, st *ast.StructType)
		walk = func(owner string, st *ast.StructType) {
			for _, fld := range st.Fields.List {
				goType := types(fld.Type)
				names := fld.Names
				if len(names) == 0 { // embedded: its own type is checked where it is declared
					continue
				}
				for _, nm := range names {
					if !nm.IsExported() {
						continue
					}
					wire := nm.Name
					if fld.Tag != nil {
						tag, _ := strconv.Unquote(fld.Tag.Value)
						if j := reflect.StructTag(tag).Get("json"); j != "" {
							if j == "-" {
								continue
							}
							if name, _, _ := strings.Cut(j, ","); name != "" {
								wire = name
							}
						}
					}
					out = append(out, wireField{owner, wire, goType, fset.Position(nm.Pos()).String()})
				}
				if inner, ok := deref(fld.Type).(*ast.StructType); ok {
					walk(owner+"."+names[0].Name, inner)
				}
			}
		}
		if st, ok := ts.Type.(*ast.StructType); ok {
			walk(ts.Name.Name, st)
		}
		return false
	})
	return out
}

// deref strips pointers, slices and arrays from a field's type expression.
func deref(e ast.Expr) ast.Expr {
	for {
		switch x := e.(type) {
		case *ast.StarExpr:
			e = x.X
		case *ast.ArrayType:
			e = x.Elt
		default:
			return e
		}
	}
}

// types renders the element type of a field for the time check.
func types(e ast.Expr) string {
	if sel, ok := deref(e).(*ast.SelectorExpr); ok {
		if id, ok := sel.X.(*ast.Ident); ok {
			return id.Name + "." + sel.Sel.Name
		}
	}
	if id, ok := deref(e).(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

// deviceLevel reports whether a wire type describes an end user's device or
// a peer, where no time of any kind may appear.
func deviceLevel(typ string) bool {
	top, _, _ := strings.Cut(typ, ".")
	return strings.Contains(top, "Device") || strings.Contains(top, "Peer") || top == "RotateInput"
}

// wireViolations applies the schema guard's name patterns to the fields.
func wireViolations(fields []wireField, allowed map[string]string) []string {
	var vs []string
	for _, f := range fields {
		key := f.Type + "." + f.Wire
		if what := store.ForbiddenName(f.Wire); what != "" {
			if _, ok := allowed[key]; !ok {
				vs = append(vs, f.Pos+": "+key+" looks like "+what)
			}
		}
		if deviceLevel(f.Type) && (f.GoType == "time.Time" || f.GoType == "time.Duration" || store.TimeName(f.Wire)) {
			vs = append(vs, f.Pos+": "+key+" is a time on a device-level type")
		}
	}
	return vs
}

// TestWireTypesPrivacy checks every field of the API's wire types against
// the patterns the schema guard applies to the database: what may not be
// stored may not be sent either.
func TestWireTypesPrivacy(t *testing.T) {
	fields := wireFields(t, "api")
	if len(fields) < 100 {
		t.Fatalf("found only %d wire fields in ./api; is the check still reading the right package?", len(fields))
	}
	for _, v := range wireViolations(fields, wireAllowed) {
		t.Error(v)
	}
	seen := map[string]bool{}
	for _, f := range fields {
		seen[f.Type+"."+f.Wire] = true
	}
	for key := range wireAllowed {
		if !seen[key] {
			t.Errorf("wireAllowed has %s, which no wire type has any more; remove it", key)
		}
	}
}

// TestWireTypesPrivacyCatches checks the checker on types that break it.
func TestWireTypesPrivacyCatches(t *testing.T) {
	src := `package api
import "time"
type Leak struct {
	ClientIP   string    ` + "`json:\"client_ip\"`" + `
	Endpoint   string
	Handshake  time.Time ` + "`json:\"last_handshake\"`" + `
	RxBytes    int64     ` + "`json:\"rx_bytes\"`" + `
	UA         string    ` + "`json:\"user_agent\"`" + `
	Nested     struct {
		SessionID string ` + "`json:\"session_id\"`" + `
	}
	Fine string ` + "`json:\"name\"`" + `
}
type Device struct {
	Seen time.Time ` + "`json:\"registered\"`" + `
}`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "leak.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	vs := wireViolations(structFields(fset, f), nil)
	if len(vs) != 7 {
		t.Errorf("found %d violations, want 7:\n%s", len(vs), strings.Join(vs, "\n"))
	}
}
