package httpapi

import (
	"bytes"
	"encoding"
	"encoding/json"
	"reflect"
	"strings"

	"github.com/noderuntime/noderuntime/internal/jsonfields"
)

// inexactKey returns a key of data, a JSON text that encoding/json has already decoded
// into a value of type t (or refused for an unknown field), that names no field of its
// struct exactly, and whether there is one. encoding/json matches a key to a field
// ignoring case ("NODE", "verſion" with a long s), so {"node":"a","Node":"b"} decodes
// without error to whichever comes last, while a validator in front of the service,
// reading the schema as written, sees two different fields. The service reads keys
// exactly, as the OpenAPI description does.
//
// The key comes with its path, dotted as encoding/json names a field in its errors
// ("context.stepId"): a key named alone would send the caller looking for it at the
// top of the body. Only structs' keys are checked: a map's keys and a
// json.RawMessage's content (the node's input) are the caller's.
func inexactKey(data []byte, t reflect.Type) (inexact, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	return walkKeys(dec, t, "")
}

// inexact is a key that names no field exactly.
type inexact struct {
	// path is the key with the keys of the objects it is in ("context.stepId").
	path string
	// caseOnly: the key names a field but for the case of its letters ("NODE").
	caseOnly bool
}

// walkKeys reads one value of type t (at: its path).
func walkKeys(dec *json.Decoder, t reflect.Type, at string) (inexact, bool) {
	tok, err := dec.Token()
	if err != nil {
		return inexact{}, false // the text decoded already; nothing is left to read
	}
	t = checkedType(t)
	switch tok {
	case json.Delim('{'):
		for dec.More() {
			keyTok, err := dec.Token()
			if err != nil {
				return inexact{}, false
			}
			key, _ := keyTok.(string)
			path := key
			if at != "" {
				path = at + "." + key
			}
			var valueType reflect.Type
			switch {
			case t != nil && t.Kind() == reflect.Struct:
				fields := jsonfields.Of(t)
				ft, ok := fields[key]
				if !ok {
					return inexact{path: path, caseOnly: foldsToField(fields, key)}, true
				}
				valueType = ft
			case t != nil && t.Kind() == reflect.Map:
				valueType = t.Elem()
			}
			if k, bad := walkKeys(dec, valueType, path); bad {
				return k, true
			}
		}
		_, _ = dec.Token()
	case json.Delim('['):
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for dec.More() {
			if k, bad := walkKeys(dec, elem, at); bad {
				return k, true
			}
		}
		_, _ = dec.Token()
	}
	return inexact{}, false
}

// foldsToField reports whether key names one of fields but for case, as encoding/json
// would match it (Unicode simple folding: "verſion" is "version").
func foldsToField(fields map[string]reflect.Type, key string) bool {
	for name := range fields {
		if strings.EqualFold(name, key) {
			return true
		}
	}
	return false
}

var (
	jsonUnmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// checkedType is t without pointers, or nil when its content is not a struct's fields
// to check: an interface, or a type that decodes itself (json.RawMessage).
func checkedType(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() == reflect.Interface {
		return nil
	}
	if p := reflect.PointerTo(t); p.Implements(jsonUnmarshalerType) || p.Implements(textUnmarshalerType) {
		return nil
	}
	return t
}

// nullField returns the first field of a struct in data, a JSON text that encoding/json
// has already decoded into a value of type t, whose value is null (its path, dotted as
// encoding/json names a field in its errors, and its type), and whether there is one.
// encoding/json decodes null into a field as nothing, the same as leaving the field
// out, while the OpenAPI description gives each field a type that null is not: a
// validator in front of the service would refuse what the service ran. A
// json.RawMessage's content (the node's input, whose nulls the node reads as not
// given) is the caller's.
func nullField(data []byte, t reflect.Type) (string, reflect.Type, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	return walkNulls(dec, t, "")
}

// walkNulls reads one value of type t (field: its path when it is a struct's field).
func walkNulls(dec *json.Decoder, t reflect.Type, field string) (string, reflect.Type, bool) {
	tok, err := dec.Token()
	if err != nil {
		return "", nil, false
	}
	checked := checkedType(t)
	switch tok {
	case nil:
		if field != "" && checked != nil {
			return field, t, true
		}
	case json.Delim('{'):
		for dec.More() {
			keyTok, err := dec.Token()
			if err != nil {
				return "", nil, false
			}
			key, _ := keyTok.(string)
			var valueType reflect.Type
			path := ""
			switch {
			case checked != nil && checked.Kind() == reflect.Struct:
				valueType = jsonfields.Of(checked)[key]
				path = key
				if field != "" {
					path = field + "." + key
				}
			case checked != nil && checked.Kind() == reflect.Map:
				valueType = checked.Elem()
			}
			if f, ft, null := walkNulls(dec, valueType, path); null {
				return f, ft, true
			}
		}
		_, _ = dec.Token()
	case json.Delim('['):
		var elem reflect.Type
		if checked != nil && (checked.Kind() == reflect.Slice || checked.Kind() == reflect.Array) {
			elem = checked.Elem()
		}
		for dec.More() {
			if f, ft, null := walkNulls(dec, elem, ""); null {
				return f, ft, true
			}
		}
		_, _ = dec.Token()
	}
	return "", nil, false
}
