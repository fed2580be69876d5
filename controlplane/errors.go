package controlplane

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// apiError builds an *api.Error.
func apiError(status int, code, format string, args ...any) *api.Error {
	return &api.Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func badRequest(field, format string, args ...any) *api.Error {
	e := apiError(http.StatusBadRequest, api.CodeInvalidRequest, format, args...)
	e.Field = field
	return e
}

var (
	errUnauthorized = apiError(http.StatusUnauthorized, api.CodeUnauthorized, "missing, invalid or expired credentials")
	errForbidden    = apiError(http.StatusForbidden, api.CodeForbidden, "not allowed")
	errNotFound     = apiError(http.StatusNotFound, api.CodeNotFound, "not found")
	errRateLimited  = apiError(http.StatusTooManyRequests, api.CodeRateLimited, "too many requests; slow down")
)

// paymentRequiredMessage is the message of store.ErrPaymentRequired.
const paymentRequiredMessage = "payment is overdue: the account is held to the free plan's limits until it is paid"

// sentinels is the one table mapping store errors to API errors.
var sentinels = []struct {
	err    error
	status int
	code   string
	msg    string
}{
	{store.ErrNotFound, http.StatusNotFound, api.CodeNotFound, "not found"},
	{store.ErrConflict, http.StatusConflict, api.CodeConflict, "conflicts with an existing resource"},
	{store.ErrPaymentRequired, http.StatusPaymentRequired, api.CodePaymentRequired, paymentRequiredMessage},
	{store.ErrPlanLimit, http.StatusForbidden, api.CodePlanLimit, "the plan's limit is reached"},
	{store.ErrLegalHold, http.StatusConflict, api.CodeLegalHold, "the account is under legal hold"},
}

// echoCodes maps echo's own errors (routing, body limit) by status.
var echoCodes = map[int]string{
	http.StatusBadRequest:            api.CodeInvalidRequest,
	http.StatusUnauthorized:          api.CodeUnauthorized,
	http.StatusForbidden:             api.CodeForbidden,
	http.StatusNotFound:              api.CodeNotFound,
	http.StatusMethodNotAllowed:      api.CodeNotFound,
	http.StatusRequestEntityTooLarge: api.CodeInvalidRequest,
	http.StatusUnsupportedMediaType:  api.CodeInvalidRequest,
	http.StatusTooManyRequests:       api.CodeRateLimited,
}

// errStorageUnavailable is what a client sees when the store cannot write.
var errStorageUnavailable = apiError(http.StatusServiceUnavailable, api.CodeStorageUnavailable, "storage is unavailable; try again later")

// toAPIError maps any handler error to the error the client sees. The
// second result reports whether the error is the server's own (and must be
// logged): internal, or the store unavailable.
func toAPIError(err error) (*api.Error, bool) {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae, false
	}
	var ve *store.ValidationError
	if errors.As(err, &ve) {
		return badRequest(ve.Field, "%s", ve.Message), false
	}
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			return &api.Error{Status: s.status, Code: s.code, Message: s.msg}, false
		}
	}
	if store.IsUnavailable(err) {
		return errStorageUnavailable, true
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		if code, ok := echoCodes[he.Code]; ok {
			return &api.Error{Status: he.Code, Code: code, Message: http.StatusText(he.Code)}, false
		}
	}
	return &api.Error{Status: http.StatusInternalServerError, Code: api.CodeInternal, Message: "internal error"}, true
}

// errorHandler writes every error as {"error": {...}}.
func (s *Server) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	ae, internal := toAPIError(err)
	if internal {
		// The route pattern, never the path: paths carry IDs and keys.
		msg := "internal error"
		if ae.Code == api.CodeStorageUnavailable {
			msg = "storage unavailable"
		}
		s.log.LogAttrs(c.Request().Context(), slog.LevelError, msg,
			slog.String(logRoute, routeOf(c)), slog.String(logError, err.Error()))
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(ae.Status)
		return
	}
	_ = c.JSON(ae.Status, api.ErrorBody{Error: *ae})
}
