package controlplane

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// maxBodyBytes bounds every JSON request body.
const maxBodyBytes = 64 << 10

// decodeJSON reads the request body strictly into dst: JSON content type,
// at most maxBodyBytes, valid UTF-8, one object, no unknown fields and no
// trailing data. Every failure is a 4xx *api.Error that names the problem.
func decodeJSON(c echo.Context, dst any) error {
	req := c.Request()
	ct := req.Header.Get(echo.HeaderContentType)
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != echo.MIMEApplicationJSON {
		return apiError(http.StatusUnsupportedMediaType, api.CodeInvalidRequest, "Content-Type must be application/json")
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return apiError(http.StatusUnsupportedMediaType, api.CodeInvalidRequest, "charset must be utf-8")
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), req.Body, maxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return apiError(http.StatusRequestEntityTooLarge, api.CodeInvalidRequest, "body larger than %d bytes", maxBodyBytes)
		}
		return badRequest("", "could not read body")
	}
	return decodeBody(body, dst)
}

// decodeBody is the pure part of decodeJSON (fuzzed by FuzzDecodeBody).
func decodeBody(body []byte, dst any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("", "body is empty; expected a JSON object")
	}
	if !utf8.Valid(body) {
		return badRequest("", "body is not valid UTF-8")
	}
	if b := bytes.TrimSpace(body); b[0] != '{' {
		return badRequest("", "body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("", "unexpected data after the JSON object")
	}
	return nil
}

// jsonError explains a decoding error without echoing the input.
func jsonError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return badRequest("", "malformed JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		return badRequest(te.Field, "wrong type for field %q: expected %s", te.Field, te.Type)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("", "truncated JSON")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return badRequest(truncateUTF8(f, 64), "unknown field")
	default:
		return badRequest("", "invalid JSON")
	}
}

// truncateUTF8 cuts s to at most n bytes without splitting a character
// and replaces invalid bytes, so an echoed field name is always valid text.
func truncateUTF8(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
