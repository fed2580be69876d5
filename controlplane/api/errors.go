package api

import "fmt"

// Stable error codes. Clients switch on these; messages may change.
const (
	CodeInvalidRequest = "invalid_request"
	CodeUnauthorized   = "unauthorized"
	CodeForbidden      = "forbidden"
	CodeNotFound       = "not_found"
	CodeConflict       = "conflict"
	CodePlanLimit      = "plan_limit"
	CodeRateLimited    = "rate_limited"
	CodeLegalHold      = "legal_hold"
	CodeInternal       = "internal"
	// CodeStorageUnavailable (503) means the database cannot take writes
	// now (disk full, read-only, gone); the same request may work later.
	CodeStorageUnavailable = "storage_unavailable"
)

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	Error Error `json:"error"`
}

// Error is an API error: a stable code, a human message and, for bad input,
// the offending field.
type Error struct {
	// Status is the HTTP status; it is not part of the JSON body.
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s (%s)", e.Code, e.Message, e.Field)
	}
	return e.Code + ": " + e.Message
}
