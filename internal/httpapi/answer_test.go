package httpapi

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"testing"

	"github.com/noderuntime/noderuntime/internal/outcomes"
)

// encodeAnswerJSON is the answer as encoding/json writes it: the reference.
func encodeAnswerJSON(t testing.TB, resp *executionResponse) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(resp); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestAppendAnswerEqualsEncodingJSON(t *testing.T) {
	t.Parallel()
	weird := "<a href=\"x\">&amp;</a>\\ \x00\x01\x1f\t\n\r\b\f \u2028\u2029 \xff\xfe é 😀 \x7f"
	for _, resp := range []executionResponse{
		{Outcome: outcomes.ConversationActive, ExecutionID: "66f7c982-2201-4407-a81f-4112791c2806", DurationMs: 12,
			Output: map[string]any{"conversationId": "c1", "conversationExistsBool": true, "status": "active", "description": "",
				"aliasId": "", "teamId": "t", "userId": "u", "apiStatus": 200, "code": 1000, "responsePayload": `{"status":200,"value":{"a":"<b>"}}`}},
		{Outcome: outcomes.OnAppendMessageFailure, Output: map[string]any{"TransId": ""}, DurationMs: 0,
			Error: &outcomes.Error{Code: outcomes.CodeEngageRejected, Message: weird, EngageStatus: 400, EngageCode: -4001, EngageDescription: weird}},
		{Outcome: outcomes.OnInvalidData, Output: map[string]any{}, Error: &outcomes.Error{Code: "invalid_input", Message: "input.channel: required"}},
		{Outcome: outcomes.Outcome(weird), Output: map[string]any{weird: weird, "Z": false, "a": int64(-9), "b": nil, "": "empty key"}, ExecutionID: weird, DurationMs: -1},
		{Outcome: "x", Output: nil},
	} {
		want := encodeAnswerJSON(t, &resp)
		keys := slices.Sorted(maps.Keys(resp.Output))
		// The order given (a version's sorted outputs) is used only when it names
		// exactly the output's keys; otherwise they are collected and sorted.
		for _, order := range [][]string{nil, keys, append(slices.Clone(keys), "extra"), {"other"}, keys[:len(keys)/2]} {
			resp.outputOrder = order
			got, ok := appendAnswer(nil, &resp)
			if !ok || !bytes.Equal(got, want) {
				t.Errorf("appendAnswer (order %q, ok %v):\n%s\nencoding/json:\n%s", order, ok, got, want)
			}
		}
	}
	// A type it does not write falls back.
	if _, ok := appendAnswer(nil, &executionResponse{Output: map[string]any{"f": 1.5}}); ok {
		t.Error("a float output was written instead of left to encoding/json")
	}
	if got, want := encodeAnswer(&executionResponse{Output: map[string]any{"f": 1.5, "l": []string{"a"}}}), encodeAnswerJSON(t, &executionResponse{Output: map[string]any{"f": 1.5, "l": []string{"a"}}}); !bytes.Equal(got, want) {
		t.Errorf("the fallback wrote %s, want %s", got, want)
	}
}

func FuzzAppendAnswer(f *testing.F) {
	f.Add("conversationActive", "conversationId", "c1", "engage_rejected", "Engage refused: <x> & \"y\"", 400, true, int64(3))
	f.Add("\u2028", "\xff", "\x00\\", "", "", 0, false, int64(-1))
	f.Fuzz(func(t *testing.T, outcome, key, value, code, message string, status int, flag bool, ms int64) {
		resp := executionResponse{
			Outcome: outcomes.Outcome(outcome), ExecutionID: value, DurationMs: ms,
			Output: map[string]any{key: value, key + "2": flag, "n": status},
		}
		if code != "" {
			resp.Error = &outcomes.Error{Code: code, Message: message, EngageStatus: status, EngageDescription: message}
		}
		got, ok := appendAnswer(nil, &resp)
		if want := encodeAnswerJSON(t, &resp); !ok || !bytes.Equal(got, want) {
			t.Fatalf("appendAnswer (ok %v):\n%q\nencoding/json:\n%q", ok, got, want)
		}
	})
}
