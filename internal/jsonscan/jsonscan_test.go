package jsonscan_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/noderuntime/noderuntime/internal/jsonscan"
)

var objectSeeds = []string{
	`{}`, ` { } `, `{"channel":"sms","bizAddress":"+15559999","customerAddress":"+15550001"}`,
	`{"a":1,"a":2}`, `{"a":[1,{"b":null}],"c":true,"d":-1.5e3}`, `{"a":"x\u00e9\n"}`, `{"a\u0062":1}`,
	`{"a":1,}`, `{"a":01}`, `{"a":1} x`, `{"a":"\x"}`, `[1]`, `{"é":1}`, `{"a":tru}`, `{"a":"` + "\xff" + `"}`,
	`{"a":{"b":{"c":[[[]]]}}}`, `{"a" : 1 , "b" :"2"}`, `{"status":200,"code":1000,"value":{"conversationId":"c1"}}`,
	`{"a":1e}`, `{"a":-}`, `{"a":"\u12"}`, `{"a":[1,]}`, `{"a":{"b"}}`, `{"a":{"b":1,}}`, "{\"a\":\"\t\"}", `{} x`, "{\"a\":\"\x1f\"}",
	// A nested object or array its outer object's brace closes; every escape of the grammar.
	`{"a":{"b":1}`, `{"a":[1}`, `{"a":"\"\\\/\b\f\n\r\t\u00E9"}`,
}

// FuzzObjectReadsWhatEncodingJSONReads: whenever Object accepts a text, json.Unmarshal
// into a map of raw values reads the same fields (the last of a repeated key wins, as
// for a map).
func FuzzObjectReadsWhatEncodingJSONReads(f *testing.F) {
	for _, s := range objectSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := map[string]string{}
		ok := jsonscan.Object(b, func(k, v []byte) bool { got[string(k)] = string(v); return true })
		if !ok {
			return
		}
		var want map[string]json.RawMessage
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("Object accepted %q, which json.Unmarshal refuses: %v", b, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%q: %d fields, json.Unmarshal %d", b, len(got), len(want))
		}
		for k, v := range want {
			if got[k] != string(v) {
				t.Fatalf("%q: field %q = %q, json.Unmarshal %q", b, k, got[k], v)
			}
		}
	})
}

func TestObjectRefusesWhatItDoesNotHandle(t *testing.T) {
	t.Parallel()
	for _, s := range []string{`{"a":1,}`, `{"a":01}`, `{"a":1} x`, `{"a":"\x"}`, `[1]`, `{"é":1}`, `{"a\u0062":1}`, `{"a":1e}`, `{"a":[1,]}`, `null`, ``, `{} x`, `{}}`, "{\"a\":\"\x1f\"}", `{"a":"\u12}`, `{"a":{"b":1}`, `{"a":[1}`} {
		// No capacity past the text: reading beyond its end panics here rather than
		// reading whatever follows it.
		b := []byte(s)
		if jsonscan.Object(b[:len(b):len(b)], func(_, _ []byte) bool { return true }) {
			t.Errorf("Object accepted %q", s)
		}
	}
	calls := 0
	if jsonscan.Object([]byte(`{"a":1,"b":2}`), func(_, _ []byte) bool { calls++; return false }) || calls != 1 {
		t.Errorf("Object went on after field said stop (%d calls)", calls)
	}
}

// FuzzPlainStringEqualsEncodingJSON: whenever PlainString decodes a literal,
// json.Unmarshal decodes it to the same string.
func FuzzPlainStringEqualsEncodingJSON(f *testing.F) {
	for _, s := range []string{`""`, `"sms"`, `"été"`, `"a\"b"`, `"\u0041"`, "\"\xff\"", "\"a\tb\"", "\"a\x1fb\"", `"+15550001"`, `"`, `"a"b"`, `x`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := jsonscan.PlainString(b)
		if !ok {
			return
		}
		var want string
		if err := json.Unmarshal(b, &want); err != nil || got != want {
			t.Fatalf("PlainString(%q) = %q; json.Unmarshal: %q, %v", b, got, want, err)
		}
	})
}

func TestIsNumberFollowsTheJSONGrammar(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"0", "-0", "1", "-12", "1.5", "1e5", "1E+5", "-1.25e-3", "10", "9007199254740993"} {
		if !jsonscan.IsNumber([]byte(s)) {
			t.Errorf("%s is a number", s)
		}
	}
	for _, s := range []string{"", "-", "01", "1.", ".5", "1e", "1e+", "+1", "0x1", "1 ", "NaN", "--1", "1.2.3"} {
		if jsonscan.IsNumber([]byte(s)) {
			t.Errorf("%q is not a number", s)
		}
	}
}

// Nesting deeper than the scanner follows goes to encoding/json, which has its own
// limit (10000): the scanner must not accept what encoding/json refuses.
func TestObjectLeavesDeepNestingToEncodingJSON(t *testing.T) {
	t.Parallel()
	const depth = 10001
	deep := `{"a":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}`
	if jsonscan.Object([]byte(deep), func(_, _ []byte) bool { return true }) {
		t.Fatalf("Object accepted a value nested %d deep", depth)
	}
}

// Every escape of the JSON grammar is read here, not left to encoding/json.
func TestObjectReadsEveryEscapeOfTheGrammar(t *testing.T) {
	t.Parallel()
	const value = `"\"\\\/\b\f\n\r\t\u00E9"`
	var got string
	if !jsonscan.Object([]byte(`{"a":`+value+`}`), func(_, v []byte) bool { got = string(v); return true }) || got != value {
		t.Fatalf("value %q, want %q read", got, value)
	}
}
