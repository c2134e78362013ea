package jsonfields_test

import (
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
