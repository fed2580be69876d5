package controlplane

import (
	"html/template"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/store"
)

// The API reference at /api/docs is rendered here, on the server, from the
// same OpenAPI document that GET /api/v1/openapi.json serves: no viewer
// script, nothing fetched from elsewhere, and the pages' strict
// Content-Security-Policy (scripts and styles from 'self' only, no inline
// ones) holds as it is.

// apiDocsBody is the reference page's data.
type apiDocsBody struct {
	Title, Version string
	Intro          template.HTML
	Tags           []apiDocsTag
	Schemas        []apiDocsSchema
}

type apiDocsTag struct {
	Name, Description string
	Ops               []apiDocsOp
}

type apiDocsOp struct {
	ID, Method, Path, Summary string
	Description               template.HTML
	Security                  []string
	Params                    []apiDocsField
	Body                      []apiDocsType // request body media types
	Responses                 []apiDocsResponse
}

type apiDocsResponse struct {
	Status, Description string
	Body                []apiDocsType
}

// apiDocsType is a schema named by a media type (a body) or a field.
type apiDocsType struct {
	Media string
	Type  template.HTML // "string", a link to a component schema, "array of …"
}

type apiDocsField struct {
	Name, In    string
	Type        template.HTML
	Required    bool
	Description template.HTML
}

type apiDocsSchema struct {
	Name        string
	Description template.HTML
	Type        template.HTML // for schemas that are not objects
	Fields      []apiDocsField
}

// handleAPIDocs renders the API reference.
func (d *dashboard) handleAPIDocs(c echo.Context) error {
	doc, err := buildOpenAPI()
	if err != nil {
		return err
	}
	p := d.newPage(c, "API reference", "api-docs")
	if o, _, ok := d.session(c); ok {
		p.Me = &pageUser{ID: o.ID, Email: o.Email, Admin: o.Role == store.RoleAdmin}
	}
	p.Body = apiDocs(doc)
	return d.render(c, http.StatusOK, "api_docs.html", p)
}

// apiDocs turns the OpenAPI document into the page's data: operations by
// tag in the document's tag order, then every component schema.
func apiDocs(doc *openapi3.T) apiDocsBody {
	b := apiDocsBody{Title: doc.Info.Title, Version: doc.Info.Version, Intro: markdown(doc.Info.Description)}
	tags := map[string]int{}
	for _, t := range doc.Tags {
		tags[t.Name] = len(b.Tags)
		b.Tags = append(b.Tags, apiDocsTag{Name: t.Name, Description: t.Description})
	}
	paths := doc.Paths.InMatchingOrder()
	sort.Strings(paths)
	for _, path := range paths {
		item := doc.Paths.Value(path)
		for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions} {
			op := item.GetOperation(method)
			if op == nil {
				continue
			}
			tag := "other"
			if len(op.Tags) > 0 {
				tag = op.Tags[0]
			}
			i, ok := tags[tag]
			if !ok {
				i = len(b.Tags)
				tags[tag] = i
				b.Tags = append(b.Tags, apiDocsTag{Name: tag})
			}
			b.Tags[i].Ops = append(b.Tags[i].Ops, apiDocsOperation(doc, method, path, item, op))
		}
	}
	names := make([]string, 0, len(doc.Components.Schemas))
	for name := range doc.Components.Schemas {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		s := doc.Components.Schemas[name].Value
		ds := apiDocsSchema{Name: name, Description: markdown(s.Description)}
		if len(s.Properties) == 0 {
			ds.Type = schemaType(doc.Components.Schemas[name])
		}
		ds.Fields = properties(s)
		b.Schemas = append(b.Schemas, ds)
	}
	return b
}

func apiDocsOperation(doc *openapi3.T, method, path string, item *openapi3.PathItem, op *openapi3.Operation) apiDocsOp {
	o := apiDocsOp{ID: op.OperationID, Method: method, Path: path, Summary: op.Summary, Description: markdown(op.Description)}
	security := doc.Security
	if op.Security != nil {
		security = *op.Security
	}
	for _, req := range security {
		var names []string
		for name := range req {
			names = append(names, name)
		}
		sort.Strings(names)
		if len(names) == 0 {
			o.Security = append(o.Security, "none")
		} else {
			o.Security = append(o.Security, strings.Join(names, " + "))
		}
	}
	for _, params := range []openapi3.Parameters{item.Parameters, op.Parameters} {
		for _, p := range params {
			if p.Value == nil {
				continue
			}
			o.Params = append(o.Params, apiDocsField{Name: p.Value.Name, In: p.Value.In, Type: schemaType(p.Value.Schema),
				Required: p.Value.Required, Description: markdown(p.Value.Description)})
		}
	}
	if op.RequestBody != nil && op.RequestBody.Value != nil {
		o.Body = mediaTypes(op.RequestBody.Value.Content)
	}
	statuses := make([]string, 0, op.Responses.Len())
	for status := range op.Responses.Map() {
		statuses = append(statuses, status)
	}
	sort.Strings(statuses)
	for _, status := range statuses {
		r := op.Responses.Value(status)
		if r == nil || r.Value == nil {
			continue
		}
		desc := ""
		if r.Value.Description != nil {
			desc = *r.Value.Description
		}
		o.Responses = append(o.Responses, apiDocsResponse{Status: status, Description: desc, Body: mediaTypes(r.Value.Content)})
	}
	return o
}

func mediaTypes(content openapi3.Content) []apiDocsType {
	var out []apiDocsType
	for _, media := range sortedKeys(content) {
		out = append(out, apiDocsType{Media: media, Type: schemaType(content[media].Schema)})
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// properties lists an object schema's fields, required ones first.
func properties(s *openapi3.Schema) []apiDocsField {
	required := map[string]bool{}
	for _, r := range s.Required {
		required[r] = true
	}
	var out []apiDocsField
	for _, name := range sortedKeys(s.Properties) {
		p := s.Properties[name]
		desc := ""
		if p.Value != nil {
			desc = p.Value.Description
		}
		out = append(out, apiDocsField{Name: name, Type: schemaType(p), Required: required[name], Description: markdown(desc)})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Required && !out[j].Required })
	return out
}

// schemaType describes a schema in a few words, linking component schemas.
func schemaType(ref *openapi3.SchemaRef) template.HTML {
	if ref == nil {
		return "any"
	}
	if name, ok := strings.CutPrefix(ref.Ref, "#/components/schemas/"); ok {
		return template.HTML(`<a href="#schema-` + template.HTMLEscapeString(name) + `">` + template.HTMLEscapeString(name) + `</a>`)
	}
	s := ref.Value
	if s == nil {
		return "any"
	}
	var t string
	switch {
	case s.Type.Is(openapi3.TypeArray):
		return template.HTML("array of ") + schemaType(s.Items)
	case s.Type.Is(openapi3.TypeObject) && len(s.Properties) == 0 && s.AdditionalProperties.Schema != nil:
		return template.HTML("map of ") + schemaType(s.AdditionalProperties.Schema)
	case len(s.OneOf) > 0 || len(s.AnyOf) > 0 || len(s.AllOf) > 0:
		var parts []string
		for _, list := range []openapi3.SchemaRefs{s.OneOf, s.AnyOf, s.AllOf} {
			for _, r := range list {
				parts = append(parts, string(schemaType(r)))
			}
		}
		return template.HTML(strings.Join(parts, " or "))
	case s.Type != nil && len(*s.Type) > 0:
		t = strings.Join(*s.Type, " or ")
	default:
		t = "any"
	}
	if s.Format != "" {
		t += " (" + s.Format + ")"
	}
	if len(s.Enum) > 0 {
		var vals []string
		for _, v := range s.Enum {
			switch v := v.(type) {
			case string:
				vals = append(vals, strconv.Quote(v))
			default:
				vals = append(vals, toString(v))
			}
		}
		t += ": one of " + strings.Join(vals, ", ")
	}
	if s.Nullable {
		t += ", or null"
	}
	return template.HTML(template.HTMLEscapeString(t))
}

func toString(v any) string {
	switch v := v.(type) {
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	case nil:
		return "null"
	}
	return "?"
}

var (
	mdCode   = regexp.MustCompile("`([^`]+)`")
	mdStrong = regexp.MustCompile(`\*\*([^*]+)\*\*`)
	mdLink   = regexp.MustCompile(`\[([^\]]+)\]\((https?://[^)\s]+|/[^)\s]*)\)`)
)

// markdown renders the little Markdown the document's descriptions use:
// paragraphs, "## " headings, "- " lists, `code`, **bold** and links. The
// text is escaped first; only those constructs become markup.
func markdown(text string) template.HTML {
	var b strings.Builder
	for _, para := range strings.Split(strings.TrimSpace(text), "\n\n") {
		para = strings.TrimSpace(para)
		if para == "" {
			continue
		}
		lines := strings.Split(para, "\n")
		switch {
		case strings.HasPrefix(para, "## ") || strings.HasPrefix(para, "### "):
			b.WriteString("<h4>" + inline(strings.TrimLeft(lines[0], "# ")) + "</h4>")
			if len(lines) > 1 {
				b.WriteString("<p>" + inline(strings.Join(lines[1:], " ")) + "</p>")
			}
		case strings.HasPrefix(para, "- ") || strings.HasPrefix(para, "* "):
			b.WriteString("<ul>")
			var item []string
			flush := func() {
				if len(item) > 0 {
					b.WriteString("<li>" + inline(strings.Join(item, " ")) + "</li>")
					item = nil
				}
			}
			for _, l := range lines {
				if strings.HasPrefix(l, "- ") || strings.HasPrefix(l, "* ") {
					flush()
					l = l[2:]
				}
				item = append(item, strings.TrimSpace(l))
			}
			flush()
			b.WriteString("</ul>")
		default:
			b.WriteString("<p>" + inline(strings.Join(lines, " ")) + "</p>")
		}
	}
	return template.HTML(b.String())
}

func inline(s string) string {
	s = template.HTMLEscapeString(s)
	s = mdCode.ReplaceAllString(s, "<code>$1</code>")
	s = mdStrong.ReplaceAllString(s, "<strong>$1</strong>")
	s = mdLink.ReplaceAllString(s, `<a href="$2">$1</a>`)
	return s
}
