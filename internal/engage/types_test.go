package engage

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"testing"
)

// The flex types decode plain strings and numbers without a nested json.Unmarshal. These
// are the decoders as they were before that shortcut: the reference the fast paths must
// equal, value and error alike.

func refFlexString(b []byte) (string, bool) {
	switch {
	case string(b) == "null":
		return "", true
	case len(b) > 0 && b[0] == '"':
		var s string
		if json.Unmarshal(b, &s) != nil {
			return "", false
		}
		return s, true
	default:
		var n json.Number
		if json.Unmarshal(b, &n) != nil {
			return "", false
		}
		return string(n), true
	}
}

func refFlexInt(b []byte) (int, bool) {
	if string(b) == "null" {
		return 0, true
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if json.Unmarshal(b, &s) != nil {
			return 0, false
		}
		if s == "" {
			return 0, true
		}
		b = []byte(s)
	}
	if n, err := strconv.Atoi(string(b)); err == nil {
		return n, true
	}
	// A whole number written as a float: 200.0, 2e2.
	x, err := strconv.ParseFloat(string(b), 64)
	if err != nil || x != math.Trunc(x) || math.Abs(x) > 1<<53 {
		return 0, false
	}
	return int(x), true
}

var flexSeeds = []string{
	`null`, `""`, `"abc"`, `"a\"b"`, `"\u00e9t\u00e9"`, `"été"`, "\"\xff\"", `"12"`, `" 12"`, `"-7"`,
	`0`, `-0`, `12`, `-12.5e+3`, `1E9`, `01`, `1.`, `-`, `true`, `false`, `{}`, `[1]`, `"\/"`,
	`"tid-3fcb5f72cb833738e836b8e472300d62"`, `12345678901234567890`, `200.0`, `"1000.0"`, `2e2`, `1.5`, `1e300`, `"NaN"`, `"inf"`,
}

func FuzzFlexDecodingEqualsEncodingJSON(f *testing.F) {
	for _, s := range flexSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			return // json.Unmarshal never hands an Unmarshaler an invalid value
		}
		var fs flexString
		errS := fs.UnmarshalJSON(b)
		if want, ok := refFlexString(b); ok != (errS == nil) || (ok && string(fs) != want) {
			t.Fatalf("flexString(%q) = %q, %v; want %q, ok %v", b, fs, errS, want, ok)
		}
		var fi flexInt
		errI := fi.UnmarshalJSON(b)
		if want, ok := refFlexInt(b); ok != (errI == nil) || (ok && int(fi) != want) {
			t.Fatalf("flexInt(%q) = %d, %v; want %d, ok %v", b, fi, errI, want, ok)
		}
	})
}

// FuzzWireDecodingEqualsEncodingJSON: decodeObject's own reading of an answer gives what
// json.Unmarshal gives, for every wire type, error or not.
func FuzzWireDecodingEqualsEncodingJSON(f *testing.F) {
	for _, s := range []string{
		`{"status":200,"code":1000,"description":"conversation found","value":{"conversationId":"c0ffee","aliasId":"","chatExist":true,"status":"active","teamId":"t1","userId":"u1"}}`,
		`{"status":"200","code":"","description":null,"tid":123,"value":null}`,
		`{"Status":201,"CODE":1,"value":{"ConversationID":"c","chatexist":"1"},"extra":[1,{"x":2}]}`,
		`{"status":200,"status":null,"description":"a","description":"b"}`,
		`{"value":"not an object"}`, `{"value":[1]}`, `{"status":true}`, `{"code":"12x"}`, `{"value":{"chatExist":2}}`,
		`{"description":"caf\u00e9","tid":"tid-\"q\""}`, ` {"status":200} `, `{"status":200}x`, `{"ſtatus":200}`, `{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		check := func(name string, fast, slow any) {
			errFast := decodeObject(b, fast)
			errSlow := json.Unmarshal(b, slow)
			if (errFast == nil) != (errSlow == nil) {
				t.Fatalf("%s %q: decodeObject error %v, json.Unmarshal error %v", name, b, errFast, errSlow)
			}
			if errFast == nil && !reflect.DeepEqual(fast, slow) {
				t.Fatalf("%s %q: decodeObject %+v, json.Unmarshal %+v", name, b, fast, slow)
			}
		}
		if len(bytes.TrimLeft(b, " \t\r\n")) == 0 || bytes.TrimLeft(b, " \t\r\n")[0] != '{' {
			return // not an object: decodeObject refuses it before decoding
		}
		check("search", new(wire[searchWire]), new(wire[searchWire]))
		check("create", new(wire[createWire]), new(wire[createWire]))
		check("mutation", new(wire[noValue]), new(wire[noValue]))
	})
}

// What other serializers write for the same values must not fail an answer that
// succeeded: a mutation reported as failed invites the flow to repeat it.
func TestAnswersSpelledByOtherSerializersDecode(t *testing.T) {
	var w wire[searchWire]
	if err := decodeObject([]byte(`{"status":200.0,"code":"1000.0","description":"found","value":{"conversationId":"c1","chatExist":"True","status":"active"}}`), &w); err != nil {
		t.Fatal(err)
	}
	if w.Status != 200 || w.Code != 1000 || !bool(w.Value.ChatExist) {
		t.Fatalf("decoded %+v", w)
	}
	for _, bad := range []string{`{"status":200.5}`, `{"code":1e300}`, `{"value":{"chatExist":"yes"}}`} {
		var w wire[searchWire]
		if err := decodeObject([]byte(bad), &w); err == nil {
			t.Errorf("%s decoded: %+v", bad, w)
		}
	}
}
