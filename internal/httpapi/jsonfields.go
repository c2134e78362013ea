package httpapi

import (
	"bytes"
	"encoding"
	"encoding/json"
	"reflect"
	"strings"
	"sync"
)

// inexactKey returns a key of data, a JSON text that encoding/json has already decoded
// into a value of type t, that names no field of its struct exactly, and whether there
// is one. encoding/json matches a key to a field ignoring case ("NODE", "verſion" with a
// long s), so {"node":"a","Node":"b"} decodes without error to whichever comes last,
// while a validator in front of the service, reading the schema as written, sees two
// different fields. The service reads keys exactly, as the OpenAPI description does.
//
// Only structs' keys are checked: a map's keys and a json.RawMessage's content (the
// node's input) are the caller's.
func inexactKey(data []byte, t reflect.Type) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	return walkKeys(dec, t)
}

func walkKeys(dec *json.Decoder, t reflect.Type) (string, bool) {
	tok, err := dec.Token()
	if err != nil {
		return "", false // the text decoded already; nothing is left to read
	}
	t = checkedType(t)
	switch tok {
	case json.Delim('{'):
		for dec.More() {
			keyTok, err := dec.Token()
			if err != nil {
				return "", false
			}
			key, _ := keyTok.(string)
			var valueType reflect.Type
			switch {
			case t != nil && t.Kind() == reflect.Struct:
				ft, ok := structFields(t)[key]
				if !ok {
					return key, true
				}
				valueType = ft
			case t != nil && t.Kind() == reflect.Map:
				valueType = t.Elem()
			}
			if k, bad := walkKeys(dec, valueType); bad {
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
			if k, bad := walkKeys(dec, elem); bad {
				return k, true
			}
		}
		_, _ = dec.Token()
	}
	return "", false
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

var structFieldCache sync.Map // reflect.Type -> map[string]reflect.Type

// structFields maps each JSON name of t's fields, as written in its tags, to the field's
// type. The request types have no embedded structs, so none are flattened.
func structFields(t reflect.Type) map[string]reflect.Type {
	if m, ok := structFieldCache.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m := make(map[string]reflect.Type, t.NumField())
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		m[name] = f.Type
	}
	structFieldCache.Store(t, m)
	return m
}
