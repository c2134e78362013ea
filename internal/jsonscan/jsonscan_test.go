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
	f.Fuzz(func(t *testing.T, b []byte) { readsAsEncodingJSON(t, b) })
}

// readsAsEncodingJSON reports whether Object accepts b and, when it does, checks that
// json.Unmarshal into a map of raw values reads the same fields.
func readsAsEncodingJSON(t *testing.T, b []byte) bool {
	t.Helper()
	got := map[string]string{}
	ok := jsonscan.Object(b, func(k, v []byte) bool { got[string(k)] = string(v); return true })
	if !ok {
		return false
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
	return true
}

// The plain kind is read here, however it is spaced, rather than left to encoding/json:
// every JSON white space, empty and nested objects and arrays, every literal, a space
// in a string, hex escapes in either case, every form of number.
func TestObjectReadsThePlainKind(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		" \t\r\n{ \t\r\n\"a\" \t\r\n: \t\r\n1 \t\r\n, \t\r\n\"b\":2 \t\r\n} \t\r\n",
		"{ \t\r\n}", `{"a":{ },"b":{},"c":[ ],"d":[]}`,
		`{"a":{ "b" : { "c" : [ 1 , [ true , false , null ] ] } , "d" : "e" }}`,
		`{"t":true,"f":false,"n":null}`,
		`{"a":" spaced ","b":"\u00e9\u00E9\u00fF"}`,
		`{"a":{"b\u0062":1}}`,
		`{"a":0,"b":-0.5,"c":1e5,"d":1E-5,"e":12.5e+3}`,
	} {
		b := []byte(s)
		if !readsAsEncodingJSON(t, b) {
			t.Errorf("Object refused %q", s)
		}
		// Keys and values end where their text does: a caller appending to one cannot
		// write over the text after it.
		jsonscan.Object(b, func(k, v []byte) bool {
			if cap(k) != len(k) || cap(v) != len(v) {
				t.Errorf("%q: key %q or value %q has room past its end", s, k, v)
			}
			return true
		})
	}
}

func TestObjectRefusesWhatItDoesNotHandle(t *testing.T) {
	t.Parallel()
	for _, s := range []string{`{"a":1,}`, `{"a":01}`, `{"a":1} x`, `{"a":"\x"}`, `[1]`, `{"é":1}`, `{"a\u0062":1}`, `{"a":1e}`, `{"a":[1,]}`, `null`, ``, `{} x`, `{}}`, "{\"a\":\"\x1f\"}", `{"a":"\u12}`, `{"a":{"b":1}`, `{"a":[1}`,
		// Text cut short inside a value, a nested key or an escape; a key or colon missing.
		`{"a":`, `{"a":[`, `{"a":{`, `{"a":"\`, `"a":1}`, `{"a" 1}`, `{"a":{b":1}}`, `{"a":{"b" 1}}`,
		// A control or non-ASCII byte in a key; white space JSON does not have.
		"{\"\x1f\":1}", "{\"\x80\":1}", "{\f}",
		// Escapes and literals that are not JSON's.
		`{"a":"\a"}`, `{"a":"\u00g0"}`, `{"a":"\u00G0"}`, `{"a":"\u00:0"}`, `{"a":"\u00eg"}`, `{"a":fals}`, `{"a":nul}`} {
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
	for _, s := range []string{`""`, `"sms"`, `"été"`, `"a\"b"`, `"\u0041"`, "\"\xff\"", "\"a\tb\"", "\"a\x1fb\"", `"+15550001"`, `"`, `"a"b"`, `x`,
		// A quote missing at either end; the first byte past ASCII, alone.
		`x"`, `"ab`, "\"\x80\""} {
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
	for _, deep := range []string{
		`{"a":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}`,
		`{"a":` + strings.Repeat(`{"a":`, depth) + `1` + strings.Repeat("}", depth) + `}`,
	} {
		if jsonscan.Object([]byte(deep), func(_, _ []byte) bool { return true }) {
			t.Fatalf("Object accepted a value nested %d deep: %.20s...", depth, deep)
		}
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

// PlainString reads every printable ASCII byte and valid UTF-8 as it is: a space, a
// tilde, DEL, a letter past ASCII.
func TestPlainStringReadsPrintableTextAsItIs(t *testing.T) {
	t.Parallel()
	for _, want := range []string{" ", "a b~\x7f", "été"} {
		if got, ok := jsonscan.PlainString([]byte(`"` + want + `"`)); !ok || got != want {
			t.Errorf("PlainString(%q) = %q, %v", `"`+want+`"`, got, ok)
		}
	}
}
