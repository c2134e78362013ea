package nodes

import (
	"encoding/json"
	"testing"
)

// FuzzSplitObject: whenever the splitter reads an input object, json.Unmarshal into a
// map of raw values reads the same fields with the same bytes.
func FuzzSplitObject(f *testing.F) {
	for _, s := range []string{
		`{}`, ` { } `, `{"channel":"sms","bizAddress":"+15559999","customerAddress":"+15550001"}`,
		`{"a":1,"a":2}`, `{"a":[1,{"b":null}],"c":true,"d":-1.5e3}`, `{"a":"x\u00e9\n"}`, `{"a\u0062":1}`,
		`{"a":1,}`, `{"a":01}`, `{"a":1} x`, `{"a":"\x"}`, `[1]`, `{"é":1}`, `{"a":tru}`, `{"a":"` + "\xff" + `"}`,
		`{"a":{"b":{"c":[[[]]]}}}`, `{"a" : 1 , "b" :"2"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := splitObject(b)
		var want map[string]json.RawMessage
		err := json.Unmarshal(b, &want)
		if !ok {
			return
		}
		if err != nil {
			t.Fatalf("splitObject read %q, which json.Unmarshal refuses: %v", b, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%q: %d fields, json.Unmarshal %d", b, len(got), len(want))
		}
		for k, v := range want {
			if string(got[k]) != string(v) {
				t.Fatalf("%q: field %q = %q, json.Unmarshal %q", b, k, got[k], v)
			}
		}
	})
}
