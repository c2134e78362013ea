package jsonenc

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
)

// encodingJSON is s as encoding/json writes it with HTML escaping off.
func encodingJSON(t *testing.T, s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// slogJSON is s as slog's JSON handler writes an attribute value.
func slogJSON(s string) []byte {
	var buf bytes.Buffer
	r := slog.Record{}
	r.AddAttrs(slog.String("k", s))
	_ = slog.NewJSONHandler(&buf, nil).Handle(context.Background(), r)
	line := bytes.TrimSuffix(buf.Bytes(), []byte("}\n"))
	return line[bytes.Index(line, []byte(`"k":`))+4:]
}

var seeds = []string{"", "plain", "<a href=\"x\">&amp;</a>\\", "\x00\x01\x07\x08\x0c\x1f\t\n\r\x7f",
	"\u2028\u2029", "\xff\xfe é 😀", "a\xc3(b\xe2\x82",
	// A lone continuation byte, the first byte past ASCII; and U+FFFD itself, written as it is.
	"a\x80b", "\ufffd",
	// Text on both sides of U+2028 and U+2029.
	"a\u2028b\u2029c"}

func FuzzAppendString(f *testing.F) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := AppendString([]byte("x"), s), append([]byte("x"), encodingJSON(t, s)...); !bytes.Equal(got, want) {
			t.Fatalf("AppendString(%q) = %s, encoding/json %s", s, got, want)
		}
		if got, want := AppendSlogString(nil, s), slogJSON(s); !bytes.Equal(got, want) {
			t.Fatalf("AppendSlogString(%q) = %s, slog %s", s, got, want)
		}
	})
}
