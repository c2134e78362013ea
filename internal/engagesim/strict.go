package engagesim

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/noderuntime/noderuntime/internal/jsonfields"
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
		return errors.New("body is not a JSON object")
	}
	allowed := jsonfields.Of(reflect.TypeOf(v).Elem())
	for k := range keys {
		if _, ok := allowed[k]; !ok {
			return fmt.Errorf("json: unknown field %q", k)
		}
	}
	return json.Unmarshal(raw, v)
}
