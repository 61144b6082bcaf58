package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
)

// MaxBodyBytes bounds every request body: a 64 KiB secret, JSON-escaped, fits with room to spare.
const MaxBodyBytes = 256 << 10

// limitBody caps the request body before any handler reads it.
func limitBody(c *gin.Context) {
	if c.Request.Body != nil {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, MaxBodyBytes)
	}
	c.Next()
}

// decode reads exactly one JSON object into dst, refusing unknown fields, wrong types and
// trailing data with messages that name the field.
func decode(c *gin.Context, dst any) error {
	dec := json.NewDecoder(c.Request.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return decodeError(err)
		}
		return invalid("the request body holds more than one JSON value: send a single object")
	}
	return nil
}

func decodeError(err error) error {
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
		mbe    *http.MaxBytesError
	)
	switch {
	case errors.Is(err, io.EOF):
		return invalid("the request body is empty: send a JSON object")
	case errors.As(err, &mbe):
		return &Error{code: codeTooLarge, Message: fmt.Sprintf("the request body is larger than %d KiB", MaxBodyBytes>>10)}
	case errors.As(err, &syntax):
		// Only the offset: the text around it may be part of a secret value.
		return &Error{code: codeInvalid, Message: "the request body is not valid JSON", Detail: fmt.Sprintf("at byte %d", syntax.Offset)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &Error{code: codeInvalid, Message: "the request body is not valid JSON", Detail: "it ends in the middle of a value"}
	case errors.As(err, &typ):
		if typ.Field == "" {
			return invalid("the request body must be a JSON object")
		}
		return invalid("a field has the wrong type", Validation{Field: typ.Field, Message: "must be " + kind(typ.Type)})
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		field, uerr := strconv.Unquote(name)
		if uerr != nil {
			field = name
		}
		return invalid("the request body has a field this endpoint does not take", Validation{Field: field, Message: "unknown field: remove it"})
	}
	return &Error{code: codeInvalid, Message: "the request body could not be read as JSON", cause: err}
}

func kind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	}
	return "a " + t.Kind().String()
}

// pathID reads a positive numeric id from the path; anything else names no row, so it is a 404.
func pathID(c *gin.Context, param, what string) (int64, error) {
	raw := c.Param(param)
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		return 0, notFound("%s %s not found", what, raw)
	}
	return id, nil
}
