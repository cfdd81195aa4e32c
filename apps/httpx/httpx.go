// Package httpx holds the apps' HTTP conventions: strict JSON decoding with a size limit, errors
// that carry a status and a reason, and JSON responses. Every service uses it so that a bad
// request gets the same kind of answer everywhere: a 4xx with a machine-readable code and a reason
// a person can act on.
package httpx

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/scalestack/scalestack/pkg/shard"
)

// DefaultMaxBody bounds a request body unless a handler says otherwise.
const DefaultMaxBody = 64 << 10

// Error is an error with an HTTP status and a reason for the client.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"error"`
	Message string `json:"message"`
	// RetryAfter, when set, is sent as the Retry-After header (whole seconds, at least one).
	RetryAfter time.Duration `json:"-"`
	// Partial marks a failure of part of what the service serves (one shard's users), not of the
	// service: it is answered with the HeaderPartial header, and callers' circuit breakers do not
	// count it against the service.
	Partial bool `json:"-"`
}

// HeaderPartial is set on an error answer that concerns part of a service's data only.
const HeaderPartial = "Scalestack-Partial-Outage"

// AsPartial marks the error as a failure of part of the service's data (Partial).
func (e *Error) AsPartial() *Error { e.Partial = true; return e }

// WithRetryAfter sets the Retry-After the error is answered with.
func (e *Error) WithRetryAfter(d time.Duration) *Error { e.RetryAfter = d; return e }

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// Errorf returns an *Error.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Common errors.
func BadRequest(format string, args ...any) *Error {
	return Errorf(http.StatusBadRequest, "bad_request", format, args...)
}

// NotFound says what was not found.
func NotFound(format string, args ...any) *Error {
	return Errorf(http.StatusNotFound, "not_found", format, args...)
}

// Conflict says what already exists.
func Conflict(format string, args ...any) *Error {
	return Errorf(http.StatusConflict, "conflict", format, args...)
}

// Unauthorized asks for credentials.
func Unauthorized(format string, args ...any) *Error {
	return Errorf(http.StatusUnauthorized, "unauthorized", format, args...)
}

// Forbidden refuses an authenticated caller.
func Forbidden(format string, args ...any) *Error {
	return Errorf(http.StatusForbidden, "forbidden", format, args...)
}

// Unavailable is a dependency failure the client may retry.
func Unavailable(format string, args ...any) *Error {
	return Errorf(http.StatusServiceUnavailable, "unavailable", format, args...)
}

// DecodeJSON decodes exactly one JSON object from r's body into dst: the body must be
// application/json, at most maxBytes long (0: DefaultMaxBody), with no unknown fields and nothing
// after the object.
func DecodeJSON(w http.ResponseWriter, r *http.Request, maxBytes int64, dst any) error {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBody
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return Errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "the body must be application/json, not %q", ct)
		}
	} else {
		return Errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "the body must be application/json (Content-Type is missing)")
	}
	body := http.MaxBytesReader(w, r.Body, maxBytes)
	return Decode(body, maxBytes, dst)
}

// Decode is DecodeJSON's decoding step on a reader (also used for event payloads).
func Decode(body io.Reader, maxBytes int64, dst any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err, maxBytes)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		if err != nil {
			var he *Error
			if de := decodeError(err, maxBytes); errors.As(de, &he) && he.Status == http.StatusRequestEntityTooLarge {
				return de
			}
		}
		return BadRequest("the body must hold a single JSON object")
	}
	return nil
}

func decodeError(err error, maxBytes int64) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return Errorf(http.StatusRequestEntityTooLarge, "too_large", "the body is larger than %d bytes", maxBytes)
	case errors.As(err, &syn):
		return BadRequest("malformed JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return BadRequest("field %q must be a %s", typ.Field, typ.Type)
	case errors.Is(err, io.EOF):
		return BadRequest("the body is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return BadRequest("malformed JSON: the body ends early")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return BadRequest("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	default:
		return BadRequest("malformed JSON: %v", err)
	}
}

// WriteJSON writes v with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteRaw writes an already-encoded JSON body.
func WriteRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// WriteError writes err: an *Error as itself, anything else as a 500 whose cause is logged, not
// shown.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	var he *Error
	if errors.As(err, &he) {
		if he.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(max(1, int(he.RetryAfter.Round(time.Second).Seconds()))))
		}
		if he.Partial {
			w.Header().Set(HeaderPartial, "true")
		}
		WriteJSON(w, he.Status, he)
		return
	}
	slog.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	WriteJSON(w, http.StatusInternalServerError, Errorf(http.StatusInternalServerError, "internal", "internal error"))
}

// HandlerFunc is a handler that returns its error.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Handle adapts h to http.Handler, writing its error.
func Handle(h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			WriteError(w, r, err)
		}
	})
}

// PathID parses the path value name as an ID.
func PathID(r *http.Request, name string) (shard.ID, error) {
	id, err := shard.ParseID(r.PathValue(name))
	if err != nil {
		return 0, BadRequest("%s: %v", name, err)
	}
	return id, nil
}

// QueryInt parses query parameter name as an int in [lo, hi], def when absent.
func QueryInt(r *http.Request, name string, def, lo, hi int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, BadRequest("query parameter %s must be an integer in [%d, %d]", name, lo, hi)
	}
	return n, nil
}

// QueryIDs parses query parameter name as a comma-separated list of at most max IDs.
func QueryIDs(r *http.Request, name string, max int) ([]shard.ID, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	if len(parts) > max {
		return nil, BadRequest("query parameter %s holds %d IDs; at most %d are allowed", name, len(parts), max)
	}
	ids := make([]shard.ID, 0, len(parts))
	for _, p := range parts {
		id, err := shard.ParseID(p)
		if err != nil {
			return nil, BadRequest("query parameter %s: %v", name, err)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// QueryID parses an optional ID query parameter (a pagination cursor): 0 when absent.
func QueryID(r *http.Request, name string) (shard.ID, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return 0, nil
	}
	id, err := shard.ParseID(s)
	if err != nil {
		return 0, BadRequest("query parameter %s: %v", name, err)
	}
	return id, nil
}

// Page is a paged list request: the path's "id", a cursor (the ID to list after or before; 0
// when absent) and how many to list.
type Page struct {
	ID, Cursor shard.ID
	Limit      int
}

// ParsePage reads a paged list request: the path value "id", the query parameter cursor (none
// when "") and "limit" within 1..max, def when absent. Every error is a 400 naming the parameter.
func ParsePage(r *http.Request, cursor string, def, max int) (Page, error) {
	var p Page
	var err error
	if p.ID, err = PathID(r, "id"); err != nil {
		return p, err
	}
	if p.Limit, err = QueryInt(r, "limit", def, 1, max); err != nil {
		return p, err
	}
	if cursor != "" {
		p.Cursor, err = QueryID(r, cursor)
	}
	return p, err
}
