package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxBodyBytes bounds every /v1 request body.
const MaxBodyBytes = 1 << 20

// DecodeJSON reads one JSON value from the request body into v, rejecting unknown
// fields, trailing data, invalid UTF-8 and a key given twice in one object. On failure
// it has already answered with a problem (400 or 413) and returns false.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	body, ok := readBody(w, r)
	return ok && decodeBytes(w, r, body, v)
}

// decodeBytes decodes a body already read, as DecodeJSON does.
func decodeBytes(w http.ResponseWriter, r *http.Request, body []byte, v any) bool {
	if !utf8.Valid(body) {
		// encoding/json would replace the bad bytes, changing what Engage receives.
		WriteProblem(w, r, NewProblem(http.StatusBadRequest, CodeBadRequest, "the body is not valid UTF-8"))
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			err = errors.New("trailing data after the JSON value")
		}
	}
	if err != nil {
		WriteProblem(w, r, NewProblem(http.StatusBadRequest, CodeBadRequest, describeJSONError(err)))
		return false
	}
	if key, dup := duplicateKey(body); dup {
		WriteProblem(w, r, NewProblem(http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("the key %q is given twice in one object", clipValue(key))))
		return false
	}
	if key, bad := inexactKey(body, reflect.TypeOf(v)); bad {
		WriteProblem(w, r, NewProblem(http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("unknown field %q (field names are case-sensitive)", clipValue(key))))
		return false
	}
	return true
}

// describeJSONError turns a decoding error into a message that names the problem but
// never echoes the body.
func describeJSONError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return "the body is empty; want a JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the body ends in the middle of a JSON value"
	case errors.As(err, &syn):
		return fmt.Sprintf("malformed JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		// Value may hold the literal ("number 99999999999999999999"): keep its kind.
		kind, _, _ := strings.Cut(typ.Value, " ")
		if typ.Field != "" {
			return fmt.Sprintf("field %q: want %s, got JSON %s", clipValue(typ.Field), typ.Type, kind)
		}
		return fmt.Sprintf("want a JSON object, got JSON %s", kind)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name, uerr := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		if uerr != nil {
			return "unknown field"
		}
		return fmt.Sprintf("unknown field %q", clipValue(name))
	}
	return "malformed JSON: " + err.Error()
}
