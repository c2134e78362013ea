package jsonfields_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/noderuntime/noderuntime/internal/jsonfields"
)

func TestOfNamesFieldsAsTheirTagsWriteThem(t *testing.T) {
	type s struct {
		ID      string `json:"conversationId,omitempty"`
		Plain   int
		Skipped int  `json:"-"`
		Flag    bool `json:",omitempty"`
		hidden  int
	}
	got := jsonfields.Of(reflect.TypeFor[s]())
	want := map[string]reflect.Type{"conversationId": reflect.TypeFor[string](), "Plain": reflect.TypeFor[int](), "Flag": reflect.TypeFor[bool]()}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	_ = s{}.hidden
}

// A tag of "-" alone skips its field; "-" with options names it "-", as encoding/json
// reads both. The type is built at run time: staticcheck refuses such a tag in source.
func TestOfSkipsOnlyAFieldTaggedDashAlone(t *testing.T) {
	for _, tag := range []string{`json:"-,"`, `json:"-,omitempty"`} {
		typ := reflect.StructOf([]reflect.StructField{
			{Name: "Dash", Type: reflect.TypeFor[int](), Tag: reflect.StructTag(tag)},
			{Name: "Skipped", Type: reflect.TypeFor[int](), Tag: `json:"-"`},
		})
		got := jsonfields.Of(typ)
		want := map[string]reflect.Type{"-": reflect.TypeFor[int]()}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %v, want %v", tag, got, want)
		}
		v := reflect.New(typ)
		if err := json.Unmarshal([]byte(`{"-":1,"Skipped":2}`), v.Interface()); err != nil || v.Elem().Field(0).Int() != 1 || v.Elem().Field(1).Int() != 0 {
			t.Errorf("%s: encoding/json reads %+v, %v: the test's premise no longer holds", tag, v.Elem(), err)
		}
	}
}

// The map of a type is built once and shared: request bodies look it up for every key.
func TestOfBuildsATypesMapOnce(t *testing.T) {
	type s struct{ A, B int }
	first, again := jsonfields.Of(reflect.TypeFor[s]()), jsonfields.Of(reflect.TypeFor[s]())
	if reflect.ValueOf(first).UnsafePointer() != reflect.ValueOf(again).UnsafePointer() {
		t.Fatal("a second call built the map again")
	}
}
