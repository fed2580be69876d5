package client

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// Error is what every method returns when a call fails: an error response
// from the API (Code is set), or a failure on the way (Err is set, Status
// is 0 when no response arrived). It never contains a credential.
//
// errors.As(err, &apiErr) with an *api.Error target also works for error
// responses.
type Error struct {
	// Method and Path name the request; Path has no query string.
	Method string
	Path   string
	// Status is the HTTP status, or 0 when no response arrived.
	Status int
	// Code is the API's stable error code (api.CodeNotFound, …), or ""
	// when no response arrived.
	Code    string
	Message string
	// Field names the offending input field of an invalid_request.
	Field string
	// RetryAfter is the server's Retry-After, or 0.
	RetryAfter time.Duration
	// Err is the underlying cause: a network error, a context error, a
	// decoding error or ErrResponseTooLarge.
	Err error

	retryable bool
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Method)
	b.WriteByte(' ')
	b.WriteString(e.Path)
	b.WriteString(": ")
	switch {
	case e.Code != "":
		if e.Status != 0 {
			fmt.Fprintf(&b, "%d ", e.Status)
		}
		b.WriteString(e.Code)
		if e.Message != "" {
			b.WriteString(": ")
			b.WriteString(e.Message)
		}
		if e.Field != "" {
			fmt.Fprintf(&b, " (%s)", e.Field)
		}
	case e.Err != nil:
		b.WriteString(e.Err.Error())
	default:
		fmt.Fprintf(&b, "HTTP %d", e.Status)
	}
	return b.String()
}

// Unwrap returns the underlying cause, so errors.Is(err, context.Canceled)
// and the like work.
func (e *Error) Unwrap() error { return e.Err }

// As lets errors.As fill an *api.Error target from an error response.
func (e *Error) As(target any) bool {
	p, ok := target.(**api.Error)
	if !ok || e.Code == "" {
		return false
	}
	*p = e.APIError()
	return true
}

// APIError returns the error response as the API's wire type, or nil when
// no error response arrived.
func (e *Error) APIError() *api.Error {
	if e.Code == "" {
		return nil
	}
	return &api.Error{Status: e.Status, Code: e.Code, Message: e.Message, Field: e.Field}
}

// Retryable reports whether the same call may be made again and may then
// succeed: always after 429 (the server did nothing), and for idempotent
// requests (GET, PUT, DELETE) after a network error or 502, 503 or 504. The
// client retries the idempotent ones itself before returning.
func (e *Error) Retryable() bool { return e.retryable }

// IsCode reports whether err is an API error response with the given code,
// such as api.CodeConflict.
func IsCode(err error, code string) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Code != "" && e.Code == code
	}
	var ae *api.Error
	return errors.As(err, &ae) && ae.Code == code
}

// IsNotFound reports whether err is a not_found error response.
func IsNotFound(err error) bool { return IsCode(err, api.CodeNotFound) }

// IsRetryable reports whether err is an *Error that may be retried (see
// Error.Retryable).
func IsRetryable(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Retryable()
}

// StatusOf returns the HTTP status of an error response, or 0.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// codeForStatus is the code of an error response without an API body,
// such as a proxy's 502 page.
func codeForStatus(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return api.CodeUnauthorized
	case http.StatusForbidden:
		return api.CodeForbidden
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		return api.CodeNotFound
	case http.StatusConflict:
		return api.CodeConflict
	case http.StatusTooManyRequests:
		return api.CodeRateLimited
	}
	if status >= 500 {
		return api.CodeInternal
	}
	return api.CodeInvalidRequest
}
