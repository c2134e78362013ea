package redact

import (
	"encoding/json"
	"testing"
)

// The lenient decoding reads every valid literal as encoding/json does (every escape,
// surrogate pairs, a lone surrogate as U+FFFD), and keeps what is not an escape as written.
func TestUnescapeLenientlyReadsValidLiteralsAsEncodingJSONDoes(t *testing.T) {
	t.Parallel()
	for _, lit := range []string{
		`plain`, `a\/b/c`, `\"\\\/\b\f\n\r\t`, `\u0074ok\u002Bx\u002f`, `\ud83d\ude00 smile`,
		`lone \ud800 high`, `lone \udc00 low`, `\ud800\u0041`, `caf\u00e9`, `é and 😀 as written`,
	} {
		var want string
		if err := json.Unmarshal([]byte(`"`+lit+`"`), &want); err != nil {
			t.Fatalf("%s: %v", lit, err)
		}
		if got := unescapeLeniently([]byte(lit)); got != want {
			t.Errorf("%s: got %q, want %q", lit, got, want)
		}
	}
	for lit, want := range map[string]string{
		"tab\there":   "tab\there",
		`bad \x esc`:  `bad \x esc`,
		`short \u12`:  `short \u12`,
		`bad \uzzzz`:  `bad \uzzzz`,
		`ends with \`: `ends with \`,
	} {
		if got := unescapeLeniently([]byte(lit)); got != want {
			t.Errorf("%q: got %q, want %q", lit, got, want)
		}
	}
}
