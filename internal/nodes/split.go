package nodes

import (
	"encoding/json"

	"github.com/noderuntime/noderuntime/internal/jsonscan"
)

// splitObject reads a JSON object into its fields without encoding/json: each value is
// a sub-slice of data, not a copy, and a repeated key keeps its last value, as
// json.Unmarshal into a map does. ok is false for anything jsonscan does not handle;
// the caller then decodes with encoding/json.
func splitObject(data []byte) (map[string]json.RawMessage, bool) {
	m := make(map[string]json.RawMessage, 8)
	ok := jsonscan.Object(data, func(key, value []byte) bool {
		// A known field's name is the vocabulary's own string: no copy of the key.
		if f, known := fieldByName[string(key)]; known {
			m[f.name] = value
		} else {
			m[string(key)] = value
		}
		return true
	})
	return m, ok
}
