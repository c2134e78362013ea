package httpapi

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
)

var envelopeSeeds = []string{
	benchEnvelope,
	`{"node":"append-message","version":"1.4","authorizationId":"a","input":{"text":"caf\u00e9 été"}}`,
	`{"node":"x","version":"1","authorizationId":"a","input":{},"timeoutMs":-5,"context":{}}`,
	`{"node":"x","node":"y","version":"1","authorizationId":"a","input":{}}`,
	`{"node":"x","version":"1","authorizationId":"a","input":{"a":1,"a":2}}`,
	`{"Node":"x","version":"1","authorizationId":"a","input":{}}`,
	`{"node":"x","version":"1","authorizationId":"a","input":{},"extra":1}`,
	`{"node":"x","version":"1","authorizationId":"a","input":{},"timeoutMs":1.5}`,
	`{"node":"x","version":"1","authorizationId":"a","input":{},"timeoutMs":1e3}`,
	`{"node":"x","version":"1","authorizationId":"a","input":{},"timeoutMs":99999999999999999999}`,
	`{"node":"x","version":"1","authorizationId":"a","input":{},"context":{"flowId":"f","other":"o"}}`,
	`{"node":"x","version":"1","authorizationId":"a","input":null,"context":null}`,
	`{"node":"x\u0041","version":"1","authorizationId":"a","input":{}}`,
	`{"node":"x","version":"1","authorizationId":"a","input":{"text":"\ud800"}}`,
	"{\"node\":\"x\",\"version\":\"1\",\"authorizationId\":\"\xff\",\"input\":{}}",
	`{"node":"x","version":"1","authorizationId":"a","input":{}} `, `{"node":"x"} {}`, `[]`, ``,
}

// FuzzEnvelopeDecodeFast: whatever decodeFast accepts, decodeBytes (the encoding/json
// path with every check) accepts too, with the same request.
func FuzzEnvelopeDecodeFast(f *testing.F) {
	for _, s := range envelopeSeeds {
		f.Add([]byte(s))
	}
	r := httptest.NewRequest(http.MethodPost, "/v1/executions", nil)
	f.Fuzz(func(t *testing.T, body []byte) {
		var fast executionRequest
		if !fast.decodeFast(body) {
			return
		}
		var slow executionRequest
		w := httptest.NewRecorder()
		if !decodeBytes(w, r, body, &slow) {
			t.Fatalf("decodeFast accepted %q, decodeBytes refused it: %s", body, w.Body.Bytes())
		}
		if !bytes.Equal(fast.Input, slow.Input) {
			t.Fatalf("%q: input %q, decodeBytes %q", body, fast.Input, slow.Input)
		}
		fast.Input, slow.Input = nil, nil
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%q: %+v, decodeBytes %+v", body, fast, slow)
		}
	})
}

func TestDecodeFastTakesTheUsualEnvelope(t *testing.T) {
	t.Parallel()
	var req executionRequest
	if !req.decodeFast([]byte(benchEnvelope)) || req.Node != "search-conversation" || req.TimeoutMs == nil || *req.TimeoutMs != 5000 ||
		req.Context == nil || req.Context.TransactionID != "t9" || string(req.Input) != `{"channel":"sms","bizAddress":"+15559999","customerAddress":"+15550001"}` {
		t.Fatalf("%+v", req)
	}
}
