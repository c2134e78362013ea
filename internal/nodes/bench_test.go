package nodes

import (
	"encoding/json"
	"testing"

	"github.com/noderuntime/noderuntime/internal/engage"
	"github.com/noderuntime/noderuntime/internal/outcomes"
)

// The per-execution work of the runtime besides the token and the Engage call: decode
// and validate the input, build the request, map the answer, shape the output.

func benchmarkPrepare(b *testing.B, node, version, input string) {
	v, err := NewRegistry().Lookup(node, version)
	if err != nil {
		b.Fatal(err)
	}
	raw := json.RawMessage(input)
	b.ReportAllocs()
	for b.Loop() {
		in, err := parseInput(v, raw)
		if err != nil {
			b.Fatal(err)
		}
		if err := in.require(v.node.def.required, ""); err != nil {
			b.Fatal(err)
		}
		if _, err := v.node.def.prepare(v, in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPrepareSearch13(b *testing.B) {
	benchmarkPrepare(b, "search-conversation", "1.3", `{"channel":"sms","bizAddress":"+15559999","customerAddress":"+15550001"}`)
}

func BenchmarkPrepareAppend14(b *testing.B) {
	benchmarkPrepare(b, "append-message", "1.4", `{"conversationId":"c0ffee","channel":"whatsapp","direction":"outbound","messageType":"text","timestamp":"2026-03-01T12:00:00Z","text":"Your order has shipped."}`)
}

func BenchmarkMapSearchAnswer(b *testing.B) {
	v, _ := NewRegistry().Lookup("search-conversation", "1.3")
	r := &reply{
		env:    engage.Envelope{HTTPStatus: 200, Status: 200, Code: 1000, Description: "conversation found", Raw: []byte(`{"status":200}`)},
		search: engage.SearchValue{ConversationID: "c1", ChatExist: true, Status: "active", AliasID: "a", TeamID: "t", UserID: "u"},
	}
	b.ReportAllocs()
	for b.Loop() {
		res := v.shape(searchAnswer(v, r))
		if res.Outcome != outcomes.ConversationActive {
			b.Fatal(res.Outcome)
		}
	}
}
