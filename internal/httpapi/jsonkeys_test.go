package httpapi

import (
	"fmt"
	"strings"
	"testing"
)

func TestDuplicateKeyFindsAKeyGivenTwiceInOneObjectOnly(t *testing.T) {
	t.Parallel()
	many := func(dup bool) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range 100 {
			fmt.Fprintf(&b, `"k%d":%d,`, i, i)
		}
		if dup {
			b.WriteString(`"k7":0,`)
		}
		b.WriteString(`"last":[{"k1":1}]}`)
		return b.String()
	}
	for _, c := range []struct {
		json string
		dup  string
	}{
		{`{"a":1,"b":2}`, ""},
		{`{"a":1,"a":2}`, "a"},
		{`{"a":{"b":1},"b":{"a":1}}`, ""},
		{`{"a":{"b":1,"b":2}}`, "b"},
		{`[{"a":1},{"a":2}]`, ""},
		{`[{"a":1,"b":[{"c":1}],"a":2}]`, "a"},
		{`{"a":"a","b":"a"}`, ""},
		{`{"c":1,"\u0063":2}`, "c"},
		{`{"q\"}{":1,"x":"\\\"{","q\"}{":2}`, `q"}{`},
		{`{"a":{"x":1},"z":{"x":1},"a":3}`, "a"},
		{`"a"`, ""},
		{`{}`, ""},
		{many(false), ""},
		{many(true), "k7"},
	} {
		got, dup := duplicateKey([]byte(c.json))
		if dup != (c.dup != "") || got != c.dup {
			t.Errorf("%.60s: %q %v, want %q", c.json, got, dup, c.dup)
		}
	}
}

func BenchmarkDuplicateKeyEnvelope(b *testing.B) {
	body := []byte(`{"node":"search-conversation","version":"1.3","authorizationId":"7d0c1a2b-0000-4000-8000-000000000001",` +
		`"input":{"channel":"sms","bizAddress":"+15559999","customerAddress":"+15550001"},` +
		`"timeoutMs":5000,"context":{"flowId":"f1","nodeId":"n6","transactionId":"t9"}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, dup := duplicateKey(body); dup {
			b.Fatal("duplicate")
		}
	}
}

// The key that makes an object's list of keys overflow into a map is in the map too:
// given again later, it is found.
func TestDuplicateKeyFindsTheKeyThatOverflowedTheList(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("{")
	for i := range keyFrameLinear + 1 {
		fmt.Fprintf(&b, `"k%d":%d,`, i, i)
	}
	fmt.Fprintf(&b, `"k%d":0}`, keyFrameLinear)
	if got, dup := duplicateKey([]byte(b.String())); !dup || got != fmt.Sprintf("k%d", keyFrameLinear) {
		t.Fatalf("%s: %q %v", b.String(), got, dup)
	}
}

// The strings of an array are values, not keys, however often one repeats.
func TestDuplicateKeyTakesNoArrayStringForAKey(t *testing.T) {
	t.Parallel()
	for _, body := range []string{`{"a":["x","y","y"]}`, `{"a":["x",{"b":1},"x"]}`, `["x","x"]`} {
		if got, dup := duplicateKey([]byte(body)); dup {
			t.Errorf("%s: %q given twice", body, got)
		}
	}
}
