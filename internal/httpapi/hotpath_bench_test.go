package httpapi

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/noderuntime/noderuntime/internal/outcomes"
)

// Benchmarks of the edge's own share of an execution: the envelope in, the answer out.

const benchEnvelope = `{"node":"search-conversation","version":"1.3","authorizationId":"7d0c1a2b-0000-4000-8000-000000000001",` +
	`"input":{"channel":"sms","bizAddress":"+15559999","customerAddress":"+15550001"},` +
	`"timeoutMs":5000,"context":{"flowId":"f1","nodeId":"n6","transactionId":"t9"}}`

// BenchmarkDecodeEnvelope decodes and checks the envelope as serve does (decodeFast,
// else decodeBytes), and with decodeBytes alone (every body that is not the usual one).
func BenchmarkDecodeEnvelope(b *testing.B) {
	body := []byte(benchEnvelope)
	r := httptest.NewRequest(http.MethodPost, "/v1/executions", nil)
	w := httptest.NewRecorder()
	b.Run("serve", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var req executionRequest
			if !req.decodeFast(body) {
				req = executionRequest{}
				if !decodeBytes(w, r, body, &req) {
					b.Fatal(w.Body.String())
				}
			}
			if req.validate() != "" {
				b.Fatal(req.validate())
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var req executionRequest
			if !decodeBytes(w, r, body, &req) || req.validate() != "" {
				b.Fatal(w.Body.String())
			}
		}
	})
}

func BenchmarkEncodeAnswer(b *testing.B) {
	for _, c := range []struct {
		name string
		resp executionResponse
	}{
		{"search-1.3-active", executionResponse{
			Outcome: outcomes.ConversationActive,
			Output: map[string]any{
				"conversationId": "c0ffee-1234", "conversationExistsBool": true, "status": "active",
				"description": "conversation found", "aliasId": "", "teamId": "team-1", "userId": "agent-7",
				"apiStatus": 200, "code": 1000,
				"responsePayload": `{"status":200,"code":1000,"description":"conversation found","value":{"conversationId":"c0ffee-1234","chatExist":true,"status":"active"}}`,
			},
			ExecutionID: "66f7c982-2201-4407-a81f-4112791c2806", DurationMs: 3,
		}},
		{"append-1.4-success", executionResponse{
			Outcome:     outcomes.OnAppendMessageSuccess,
			Output:      map[string]any{"TransId": "tid-3fcb5f72cb833738e836b8e472300d62"},
			ExecutionID: "66f7c982-2201-4407-a81f-4112791c2806", DurationMs: 3,
		}},
		{"append-1.4-rejected", executionResponse{
			Outcome: outcomes.OnAppendMessageFailure,
			Output:  map[string]any{"TransId": ""},
			Error: &outcomes.Error{Code: outcomes.CodeEngageRejected, Message: "Engage refused the request: HTTP 400, code 4001: conversation is closed",
				EngageStatus: 400, EngageCode: 4001, EngageDescription: "conversation is closed"},
			ExecutionID: "66f7c982-2201-4407-a81f-4112791c2806", DurationMs: 3,
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if out := encodeAnswer(&c.resp); len(out) == 0 {
					b.Fatal("empty")
				}
			}
		})
	}
}
