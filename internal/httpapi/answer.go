package httpapi

import (
	"slices"
	"strconv"

	"github.com/noderuntime/noderuntime/internal/jsonenc"
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

// appendJSONString is encoding/json's string encoding without HTML escaping.
func appendJSONString(dst []byte, s string) []byte { return jsonenc.AppendString(dst, s) }
