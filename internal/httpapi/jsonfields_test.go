package httpapi

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestInexactKeyChecksOnlyTheKeysOfStructs(t *testing.T) {
	type inner struct {
		FlowID string `json:"flowId"`
	}
	type outer struct {
		Node    string            `json:"node"`
		Input   json.RawMessage   `json:"input"`
		Context *inner            `json:"context"`
		Labels  map[string]string `json:"labels"`
		Steps   []inner           `json:"steps"`
		Free    any               `json:"free"`
		Plain   int
		Skipped int `json:"-"`
	}
	typ := reflect.TypeFor[outer]()
	for body, want := range map[string]inexact{
		`{"node":"a","input":{"NODE":1,"node":{"Node":2}},"labels":{"Node":"x"},"free":{"NODE":1},"Plain":1}`: {},
		`{"context":{"flowId":"f"},"steps":[{"flowId":"a"},{"flowId":"b"}],"context":null}`:                   {},
		`{"Node":"a"}`:                              {"Node", true},
		`{"context":{"flowid":"f"}}`:                {"context.flowid", true},
		`{"context":{"stepId":"f"}}`:                {"context.stepId", false},
		`{"steps":[{"flowId":"a"},{"FLOWID":"b"}]}`: {"steps.FLOWID", true},
		`{"plain":1}`:                               {"plain", true},
		`{"Skipped":1}`:                             {"Skipped", false},
	} {
		got, bad := inexactKey([]byte(body), typ)
		if bad != (want != inexact{}) || got != want {
			t.Errorf("%s: %+v %v, want %+v", body, got, bad, want)
		}
	}
}

// A map's values are checked as their type says: a struct under a map key has its keys
// read exactly.
func TestInexactKeyChecksTheStructsUnderAMap(t *testing.T) {
	type inner struct {
		FlowID string `json:"flowId"`
	}
	type outer struct {
		ByName map[string]inner `json:"byName"`
	}
	if got, bad := inexactKey([]byte(`{"byName":{"x":{"flowId":"a"},"y":{"FLOWID":"b"}}}`), reflect.TypeFor[outer]()); !bad || got.path != "byName.y.FLOWID" {
		t.Fatalf("%+v %v, want byName.y.FLOWID", got, bad)
	}
}
