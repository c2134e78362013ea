package engagesim

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// strictUnmarshal decodes a JSON object into the struct v points to, refusing keys its
// tags do not name exactly. encoding/json matches keys case-insensitively and
// DisallowUnknownFields inherits that, so "customerAddress" would pass for
// "customeraddress"; a wire-key mistake in a client must fail here instead.
func strictUnmarshal(raw []byte, v any) error {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		return err
	}
	if keys == nil {
		return fmt.Errorf("body is not a JSON object")
	}
	allowed := jsonKeys(reflect.TypeOf(v).Elem())
	for k := range keys {
		if !allowed[k] {
			return fmt.Errorf("json: unknown field %q", k)
		}
	}
	return json.Unmarshal(raw, v)
}

// jsonKeys lists the JSON keys of a struct type's exported fields.
func jsonKeys(t reflect.Type) map[string]bool {
	keys := make(map[string]bool, t.NumField())
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
		keys[name] = true
	}
	return keys
}
