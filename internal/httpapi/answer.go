package httpapi

import (
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/noderuntime/noderuntime/internal/outcomes"
)

// appendAnswer appends the JSON of an execution's answer to dst: byte for byte what
// encoding/json's Encoder gives with SetEscapeHTML(false) (fields in struct order, output
// keys sorted, a final newline), without reflection or a map sort through interfaces.
// ok is false when an output value is of a type it does not write (outputs hold strings,
// booleans and integers); the caller then encodes with encoding/json.
// TestAppendAnswerEqualsEncodingJSON and FuzzAppendAnswer hold it to that.
func appendAnswer(dst []byte, resp *executionResponse) ([]byte, bool) {
	dst = append(dst, `{"outcome":`...)
	dst = appendJSONString(dst, string(resp.Outcome))
	dst = append(dst, `,"output":`...)
	var ok bool
	if dst, ok = appendOutput(dst, resp.Output, resp.outputOrder); !ok {
		return dst, false
	}
	if e := resp.Error; e != nil {
		dst = appendError(dst, e)
	}
	dst = append(dst, `,"executionId":`...)
	dst = appendJSONString(dst, resp.ExecutionID)
	dst = append(dst, `,"durationMs":`...)
	dst = strconv.AppendInt(dst, resp.DurationMs, 10)
	return append(dst, "}\n"...), true
}

func appendOutput(dst []byte, out map[string]any, order []string) ([]byte, bool) {
	if out == nil {
		return append(dst, "null"...), true
	}
	// order, when it holds exactly the output's keys (the version's outputs, sorted once
	// in the registry), saves collecting and sorting them on every answer.
	keys := order
	if !hasExactly(out, order) {
		var inline [16]string
		keys = inline[:0]
		for k := range out {
			keys = append(keys, k)
		}
		slices.Sort(keys)
	}
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, k)
		dst = append(dst, ':')
		switch v := out[k].(type) {
		case string:
			dst = appendJSONString(dst, v)
		case bool:
			dst = strconv.AppendBool(dst, v)
		case int:
			dst = strconv.AppendInt(dst, int64(v), 10)
		case int64:
			dst = strconv.AppendInt(dst, v, 10)
		case nil:
			dst = append(dst, "null"...)
		default:
			return dst, false
		}
	}
	return append(dst, '}'), true
}

// hasExactly reports whether keys are exactly out's keys (keys has no duplicates).
func hasExactly(out map[string]any, keys []string) bool {
	if len(keys) != len(out) {
		return false
	}
	for _, k := range keys {
		if _, ok := out[k]; !ok {
			return false
		}
	}
	return true
}

// appendError writes outcomes.Error as its json tags say (the Engage fields omitempty).
func appendError(dst []byte, e *outcomes.Error) []byte {
	dst = append(dst, `,"error":{"code":`...)
	dst = appendJSONString(dst, e.Code)
	dst = append(dst, `,"message":`...)
	dst = appendJSONString(dst, e.Message)
	if e.EngageStatus != 0 {
		dst = append(dst, `,"engageStatus":`...)
		dst = strconv.AppendInt(dst, int64(e.EngageStatus), 10)
	}
	if e.EngageCode != 0 {
		dst = append(dst, `,"engageCode":`...)
		dst = strconv.AppendInt(dst, int64(e.EngageCode), 10)
	}
	if e.EngageDescription != "" {
		dst = append(dst, `,"engageDescription":`...)
		dst = appendJSONString(dst, e.EngageDescription)
	}
	return append(dst, '}')
}

// appendJSONString is encoding/json's string encoding without HTML escaping: quotes,
// backslashes and control characters escaped, invalid UTF-8 as \ufffd, U+2028 and
// U+2029 escaped.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
