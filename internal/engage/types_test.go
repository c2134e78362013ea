package engage

import (
	"encoding/json"
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
	n, err := strconv.Atoi(string(b))
	return n, err == nil
}

var flexSeeds = []string{
	`null`, `""`, `"abc"`, `"a\"b"`, `"\u00e9t\u00e9"`, `"été"`, "\"\xff\"", `"12"`, `" 12"`, `"-7"`,
	`0`, `-0`, `12`, `-12.5e+3`, `1E9`, `01`, `1.`, `-`, `true`, `false`, `{}`, `[1]`, `"\/"`,
	`"tid-3fcb5f72cb833738e836b8e472300d62"`, `12345678901234567890`,
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

func TestIsNumberFollowsTheJSONGrammar(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"0", "-0", "1", "-12", "1.5", "1e5", "1E+5", "-1.25e-3", "10", "9007199254740993"} {
		if !isNumber([]byte(s)) {
			t.Errorf("%s is a number", s)
		}
	}
	for _, s := range []string{"", "-", "01", "1.", ".5", "1e", "1e+", "+1", "0x1", "1 ", "NaN", "--1", "1.2.3"} {
		if isNumber([]byte(s)) {
			t.Errorf("%q is not a number", s)
		}
	}
}
