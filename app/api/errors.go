package api

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/stagely/stagely/app/github"
	"github.com/stagely/stagely/store"
)

// code classifies an API error; status maps each to exactly one HTTP status.
type code int

const (
	codeInvalid code = iota + 1
	codeUnauthenticated
	codeForbidden
	codeNotFound
	codeConflict
	codeTooLarge
	codeGitHub
	codeInternal
)

// status is the one table from error codes to HTTP statuses.
func (c code) status() int {
	switch c {
	case codeInvalid:
		return http.StatusBadRequest
	case codeUnauthenticated:
		return http.StatusUnauthorized
	case codeForbidden:
		return http.StatusForbidden
	case codeNotFound:
		return http.StatusNotFound
	case codeConflict:
		return http.StatusConflict
	case codeTooLarge:
		return http.StatusRequestEntityTooLarge
	case codeGitHub:
		return http.StatusBadGateway
	default:
		return http.StatusInternalServerError
	}
}

// Validation names one field of a request and what is wrong with it.
type Validation struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is an answer other than success: Message, Detail and Validations are shown to the
// user, cause only to the log.
type Error struct {
	code        code
	Message     string
	Detail      string
	Validations []Validation
	cause       error
}

func (e *Error) Error() string {
	if e.cause != nil {
		return e.Message + ": " + e.cause.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.cause }

// errorBody is the one error shape of docs/api.md.
type errorBody struct {
	Message     string       `json:"message"`
	Detail      string       `json:"detail,omitempty"`
	Validations []Validation `json:"validations"`
}

func invalid(message string, vs ...Validation) *Error {
	return &Error{code: codeInvalid, Message: message, Validations: vs}
}

func notFound(format string, args ...any) *Error {
	return &Error{code: codeNotFound, Message: fmt.Sprintf(format, args...)}
}

func forbidden(format string, args ...any) *Error {
	return &Error{code: codeForbidden, Message: fmt.Sprintf(format, args...)}
}

func conflict(message string, vs ...Validation) *Error {
	return &Error{code: codeConflict, Message: message, Validations: vs}
}

// classify turns any error a handler returns into an *Error. Store "not found" errors name
// only what the caller asked for, so a 404 for someone else's row reads exactly like a 404
// for a row that never existed.
func classify(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var nf *store.NotFoundError
	if errors.As(err, &nf) {
		return &Error{code: codeNotFound, Message: nf.Error(), cause: err}
	}
	var ge *github.APIError
	if errors.As(err, &ge) {
		return fromGitHub(ge, err)
	}
	return &Error{code: codeInternal, Message: "internal error: try again, and tell the operator if it keeps happening", cause: err}
}

// fromGitHub maps GitHub's refusal of a call made with the user's token to our answer: a
// refused token means signing in again, a hidden or missing thing is our 404 (GitHub answers
// 403 or 404 for what the user may not see), anything else is GitHub's fault (502, logged).
func fromGitHub(ge *github.APIError, err error) *Error {
	switch {
	case errors.Is(ge, github.ErrRateLimited):
		return &Error{code: codeGitHub, Message: "GitHub is limiting requests right now: try again in a minute", cause: err}
	case ge.StatusCode == http.StatusUnauthorized:
		return &Error{code: codeUnauthenticated, Message: "GitHub no longer accepts your sign-in: sign in again", cause: err}
	case ge.StatusCode == http.StatusForbidden, ge.StatusCode == http.StatusNotFound:
		return &Error{code: codeNotFound, Message: "the installation or repository was not found on GitHub, or you cannot see it", cause: err}
	}
	return &Error{code: codeGitHub, Message: "GitHub did not answer as expected: try again", cause: err}
}

// fail writes err in the one error shape. Internal errors are logged with a reference the
// user can quote; their text never reaches the response.
func (a *API) fail(c *gin.Context, err error) {
	e := classify(err)
	body := errorBody{Message: e.Message, Detail: e.Detail, Validations: e.Validations}
	if body.Validations == nil {
		body.Validations = []Validation{}
	}
	if e.code == codeInternal || e.code == codeGitHub {
		ref := reference()
		body.Detail = "reference " + ref
		a.log.Error("api request failed", "method", c.Request.Method, "route", c.FullPath(),
			"status", e.code.status(), "reference", ref, "err", err)
	}
	c.AbortWithStatusJSON(e.code.status(), body)
}

// reference is a short random id tying a 500 answer to its log line.
func reference() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}
