// Package jsonfields names the JSON fields of a struct type exactly as its tags write
// them, for the strict readings encoding/json does not do (it matches keys ignoring
// case): the service's request bodies and the Engage simulator's.
package jsonfields

import (
	"reflect"
	"strings"
	"sync"
)

var cache sync.Map // reflect.Type -> map[string]reflect.Type

// Of maps each JSON name of struct type t's exported fields, as written in its tags
// (the Go name when a tag gives none; a tag of "-" alone skips the field, while "-,"
// names it "-", as for encoding/json), to the field's type.
// Embedded structs are not flattened: the types read strictly have none. The map is
// shared; callers must not change it.
func Of(t reflect.Type) map[string]reflect.Type {
	if m, ok := cache.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m := make(map[string]reflect.Type, t.NumField())
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		m[name] = f.Type
	}
	cache.Store(t, m)
	return m
}
