package registry

import (
	"errors"
	"fmt"
	"strings"
)

// ErrorKind classifies an error so that every layer can react to it without
// parsing messages. The REST layer maps kinds to HTTP status codes in one place
// (node/api); the CLI maps them to exit codes. Never renumber or rename a kind:
// the string form is part of the REST contract ("error.code").
type ErrorKind string

// Error kinds. The string value is the stable code clients see.
const (
	EINTERNAL     ErrorKind = "internal"      // a bug or an I/O failure on this node
	EINVALID      ErrorKind = "invalid"       // malformed input: bad bytes, bad field, bad parameter
	ENOTFOUND     ErrorKind = "not_found"     // the thing asked for does not exist here
	ECONFLICT     ErrorKind = "conflict"      // the input contradicts what is already stored
	EUNAUTHORIZED ErrorKind = "unauthorized"  // no or wrong credentials
	EFORBIDDEN    ErrorKind = "forbidden"     // credentials are fine but the action is not allowed
	ETOOLARGE     ErrorKind = "too_large"     // input exceeds a configured size limit
	EUNAVAILABLE  ErrorKind = "not_available" // the capability is not available on this node (yet)
	EUNSUPPORTED  ErrorKind = "unsupported"   // a well-formed request for something this node never does
	ETIMEOUT      ErrorKind = "timeout"       // a deadline passed
	EBUSY         ErrorKind = "busy"          // too many requests or jobs; try again later
	ECANCELED     ErrorKind = "canceled"      // the operation was cancelled by its caller
)

// ETEMPORARY is a passing condition, such as no peer reachable right now:
// the same request may succeed later (HTTP 503 with Retry-After). EUNAVAILABLE,
// by contrast, is a capability this node lacks until it is reconfigured.
const ETEMPORARY ErrorKind = "temporarily_unavailable"

// Error is the one error type of the project. Op names the operation that
// failed ("store.PutRecords", "api.submit"); Kind classifies it; Msg is a
// sentence for users that says what was wrong and, where it helps, what to do;
// Err is the underlying cause, if any.
type Error struct {
	Op   string
	Kind ErrorKind
	Msg  string
	Err  error
}

func (e *Error) Error() string {
	var s string
	if e.Op != "" {
		s = e.Op + ": "
	}
	switch {
	case e.Msg != "" && e.Err != nil:
		s += e.Msg + ": " + e.Err.Error()
	case e.Msg != "":
		s += e.Msg
	case e.Err != nil:
		s += e.Err.Error()
	default:
		s += string(e.Kind)
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// E builds an *Error from its parts; msg and err may be empty.
func E(op string, kind ErrorKind, msg string, err error) *Error {
	return &Error{Op: op, Kind: kind, Msg: msg, Err: err}
}

// Errorf returns an *Error with a formatted user-facing message and no cause.
func Errorf(op string, kind ErrorKind, format string, args ...any) *Error {
	return &Error{Op: op, Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// KindOf returns the kind of the outermost *Error in err's chain that has a
// kind, or EINTERNAL when there is none. A nil error has no kind ("").
func KindOf(err error) ErrorKind {
	if err == nil {
		return ""
	}
	for err != nil {
		var e *Error
		if !errors.As(err, &e) {
			break
		}
		if e.Kind != "" {
			return e.Kind
		}
		err = e.Err
	}
	return EINTERNAL
}

// MessageOf returns the user-facing message of err: the messages of its
// chain of *Error values joined by ": ", followed by the text of a cause
// that is not an *Error. An error with no message at all gives err.Error().
func MessageOf(err error) string {
	if err == nil {
		return ""
	}
	var parts []string
	cur := err
	for cur != nil {
		var e *Error
		if !errors.As(cur, &e) {
			break
		}
		if e.Msg != "" {
			parts = append(parts, e.Msg)
		}
		cur = e.Err
	}
	if cur != nil && len(parts) > 0 {
		parts = append(parts, cur.Error())
	}
	if len(parts) == 0 {
		return err.Error()
	}
	return strings.Join(parts, ": ")
}
