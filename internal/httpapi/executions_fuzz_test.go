package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/noderuntime/noderuntime/internal/outcomes"
)

// FuzzExecutionEnvelope sends any body to the real POST /v1/executions (router,
// middleware, executor, Engage client, the simulator over HTTP) and checks what every
// answer must be: 200 with an outcome the named version declares and never an internal
// error, or a 400, 404 or 413 problem document; never a 5xx, always valid UTF-8 JSON
// and a request ID. Seeds: testdata/fuzz/FuzzExecutionEnvelope.
func FuzzExecutionEnvelope(f *testing.F) {
	f.Add([]byte(`{"node":"search-conversation","version":"1.3","authorizationId":"` + authOK + `",` +
		`"input":{"channel":"sms","bizAddress":"+15559999","customerAddress":"+15550001"},"timeoutMs":5000}`))
	h := newHarness(f, harnessOptions{})
	handler := h.srv.Config.Handler
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/v1/executions", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+execKey)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		raw := rec.Body.Bytes()
		if rec.Header().Get("X-Request-Id") == "" {
			t.Fatal("no X-Request-Id")
		}
		if !utf8.Valid(raw) || !json.Valid(raw) {
			t.Fatalf("%d: the answer is not valid UTF-8 JSON: %q", rec.Code, raw)
		}
		switch rec.Code {
		case http.StatusBadRequest, http.StatusNotFound, http.StatusRequestEntityTooLarge:
			var p struct{ Code string }
			if !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/problem+json") || json.Unmarshal(raw, &p) != nil || p.Code == "" {
				t.Fatalf("%d without a problem document: %s", rec.Code, raw)
			}
		case http.StatusOK:
			var sent struct{ Node, Version, AuthorizationID string }
			_ = json.Unmarshal(body, &sent)
			v, err := registry.Lookup(sent.Node, sent.Version)
			if err != nil {
				t.Fatalf("200 for a version that does not exist (%q %q): %s", sent.Node, sent.Version, raw)
			}
			var a answer
			if err := json.Unmarshal(raw, &a); err != nil || !v.Declares(outcomes.Outcome(a.Outcome)) {
				t.Fatalf("%s: outcome %q it does not declare (%v): %s", v, a.Outcome, err, raw)
			}
			if a.Error != nil && a.Error.Code == outcomes.CodeInternal && sent.AuthorizationID != authBroken {
				t.Fatalf("%s: internal error: %s", v, raw)
			}
		default:
			t.Fatalf("status %d: %s", rec.Code, raw)
		}
	})
}
