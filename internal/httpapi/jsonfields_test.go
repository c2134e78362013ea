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
	for body, want := range map[string]string{
		`{"node":"a","input":{"NODE":1,"node":{"Node":2}},"labels":{"Node":"x"},"free":{"NODE":1},"Plain":1}`: "",
		`{"context":{"flowId":"f"},"steps":[{"flowId":"a"},{"flowId":"b"}],"context":null}`:                   "",
		`{"Node":"a"}`:                              "Node",
		`{"context":{"flowid":"f"}}`:                "flowid",
		`{"steps":[{"flowId":"a"},{"FLOWID":"b"}]}`: "FLOWID",
		`{"plain":1}`:                               "plain",
		`{"Skipped":1}`:                             "Skipped",
	} {
		got, bad := inexactKey([]byte(body), typ)
		if bad != (want != "") || got != want {
			t.Errorf("%s: %q %v, want %q", body, got, bad, want)
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
	if got, bad := inexactKey([]byte(`{"byName":{"x":{"flowId":"a"},"y":{"FLOWID":"b"}}}`), reflect.TypeFor[outer]()); !bad || got != "FLOWID" {
		t.Fatalf("%q %v, want FLOWID", got, bad)
	}
}
