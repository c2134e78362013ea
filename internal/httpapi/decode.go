package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
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
		// encoding/json would replace the bad bytes, changing what Engage receives. The
		// byte is counted as a syntax error's is (from 1): in a large body, "not UTF-8"
		// alone leaves the caller searching.
		WriteProblem(w, r, NewProblem(http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("the body is not valid UTF-8 at byte %d", invalidUTF8At(body)+1)))
		return false
	}
	if bytes.HasPrefix(body, []byte("\ufeff")) {
		// Invisible in most editors: "malformed JSON at byte 1" would send the caller
		// looking for a character they cannot see.
		WriteProblem(w, r, NewProblem(http.StatusBadRequest, CodeBadRequest, "the body starts with a byte order mark (U+FEFF), which JSON text must not (RFC 8259 §8.1); send it without one"))
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && bytes.Equal(bytes.TrimSpace(body), []byte("null")) {
		// encoding/json decodes null into anything as nothing: it is not the object
		// every body here is.
		err = &json.UnmarshalTypeError{Value: "null", Type: reflect.TypeOf(v)}
	}
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			err = errors.New("trailing data after the JSON value")
		}
	}
	if err != nil {
		msg := describeJSONError(err)
		if isUnknownField(err) {
			// encoding/json names the key without the object it is in.
			if key, bad := inexactKey(body, reflect.TypeOf(v)); bad {
				msg = key.problem()
			}
		}
		WriteProblem(w, r, NewProblem(http.StatusBadRequest, CodeBadRequest, msg))
		return false
	}
	if esc, lone := loneSurrogate(body); lone {
		// encoding/json would decode it to U+FFFD, changing what Engage receives.
		WriteProblem(w, r, NewProblem(http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("the escape %s is half of a UTF-16 surrogate pair, not a character", esc)))
		return false
	}
	if key, dup := duplicateKey(body); dup {
		WriteProblem(w, r, NewProblem(http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("the key %q is given twice in one object", clipValue(key))))
		return false
	}
	if key, bad := inexactKey(body, reflect.TypeOf(v)); bad {
		WriteProblem(w, r, NewProblem(http.StatusBadRequest, CodeBadRequest, key.problem()))
		return false
	}
	if field, ft, null := nullField(body, reflect.TypeOf(v)); null {
		// Leave a field out rather than send it as null: null is not the field's type.
		WriteProblem(w, r, NewProblem(http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("field %q: want %s, got JSON null; leave the field out instead", clipValue(field), jsonWant(ft))))
		return false
	}
	return true
}

// invalidUTF8At returns the index of the first byte of b that begins no valid UTF-8
// encoding, or -1.
func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return -1
}

// loneSurrogate returns the first \u escape of data, a valid JSON text, that is a UTF-16
// surrogate without its other half (RFC 8259 §8.2 leaves such a string's meaning to the
// parser), and whether there is one.
func loneSurrogate(data []byte) (string, bool) {
	for i := 0; ; {
		j := bytes.IndexByte(data[i:], '\\')
		if j < 0 || i+j+1 >= len(data) {
			return "", false
		}
		i += j
		if data[i+1] != 'u' {
			i += 2 // \\, \" and the other one-character escapes
			continue
		}
		hi, ok := hex4(data, i+2)
		switch {
		case !ok:
			return "", false // not valid JSON: the decoder has said so
		case hi >= 0xdc00 && hi <= 0xdfff:
			return string(data[i : i+6]), true
		case hi >= 0xd800 && hi <= 0xdbff:
			lo, ok := rune(0), i+7 < len(data) && data[i+6] == '\\' && data[i+7] == 'u'
			if ok {
				lo, ok = hex4(data, i+8)
			}
			if !ok || lo < 0xdc00 || lo > 0xdfff {
				return string(data[i : i+6]), true
			}
			i += 12
		default:
			i += 6
		}
	}
}

// hex4 reads the four hex digits of a \u escape at data[at:].
func hex4(data []byte, at int) (rune, bool) {
	if at+4 > len(data) {
		return 0, false
	}
	var r rune
	for _, c := range data[at : at+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// jsonWant names what a field of Go type t takes in the words of JSON, not Go's
// ("httpapi.executionContext", "int64" mean nothing to a caller).
func jsonWant(t reflect.Type) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return "another JSON value"
	}
	switch t.Kind() {
	case reflect.String:
		return "a JSON string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return fmt.Sprintf("an integer (no fraction or exponent) up to %d", int64(math.MaxInt64)>>(64-t.Bits()))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer (no fraction or exponent)"
	case reflect.Float32, reflect.Float64:
		return "a JSON number"
	case reflect.Struct, reflect.Map:
		return "a JSON object"
	case reflect.Slice, reflect.Array:
		return "a JSON array"
	}
	return "another JSON value"
}

// problem is what the problem document says of the key.
func (k inexact) problem() string {
	if k.caseOnly {
		return fmt.Sprintf("unknown field %q (field names are case-sensitive)", clipValue(k.path))
	}
	return fmt.Sprintf("unknown field %q", clipValue(k.path))
}

// isUnknownField reports whether err is encoding/json's refusal of a key that names no
// field (DisallowUnknownFields).
func isUnknownField(err error) bool {
	return strings.HasPrefix(err.Error(), "json: unknown field ")
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
	case errors.As(err, &syn) && strings.Contains(syn.Error(), "exceeded max depth"):
		// Well-formed, perhaps, but past encoding/json's limit: "malformed" would mislead.
		return "the JSON nests arrays and objects more than 10000 levels deep"
	case errors.As(err, &syn):
		return fmt.Sprintf("malformed JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		// Value may hold the literal ("number 99999999999999999999"): keep its kind.
		kind, _, _ := strings.Cut(typ.Value, " ")
		if typ.Field != "" {
			return fmt.Sprintf("field %q: want %s, got JSON %s", clipValue(typ.Field), jsonWant(typ.Type), kind)
		}
		return fmt.Sprintf("want a JSON object, got JSON %s", kind)
	case isUnknownField(err):
		name, uerr := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		if uerr != nil {
			return "unknown field"
		}
		return fmt.Sprintf("unknown field %q", clipValue(name))
	}
	return "malformed JSON: " + err.Error()
}
