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

func BenchmarkPrepareAppend14(b *testing.B) {
	benchmarkPrepare(b, "append-message", "1.4", `{"conversationId":"c0ffee","channel":"whatsapp","direction":"outbound","messageType":"text","timestamp":"2026-03-01T12:00:00Z","text":"Your order has shipped."}`)
}

// BenchmarkPrepare decodes and validates a typical input of every node's recommended
// version.
func BenchmarkPrepare(b *testing.B) {
	const msg = `"direction":"inbound","messageType":"text","timestamp":"2026-03-01T12:00:00Z","text":"Where is my order?"`
	for _, c := range []struct{ node, version, input string }{
		{"search-conversation", "1.3", `{"channel":"sms","bizAddress":"+15559999","customerAddress":"+15550001"}`},
		{"search-conversation", "1.3", `{"channel":"email","bizAddress":"help@acme.test","customerAddress":"ada@example.test","subject":"Order 1234","toRecipients":["help@acme.test"],"ccRecipients":"a@x.test, b@x.test"}`},
		{"append-message", "1.4", `{"conversationId":"c0ffee","channel":"sms",` + msg + `}`},
		{"create-conversation", "1.3", `{"channel":"sms","bizAddress":"+15559999","customerAddress":"+15550001","customerName":"Ada",` + msg + `}`},
		{"update-conversation", "1.0", `{"conversationId":"c0ffee","taskId":"task-42"}`},
		{"add-participant", "1.0", `{"conversationId":"c0ffee","participant":"agent-7"}`},
		{"remove-participant", "1.0", `{"conversationId":"c0ffee","participant":"agent-7"}`},
		{"close-conversation", "1.0", `{"conversationId":"c0ffee"}`},
		{"reopen-conversation", "1.0", `{"conversationId":"c0ffee"}`},
	} {
		name := c.node + "-" + c.version
		if c.node == "search-conversation" {
			var ch struct{ Channel string }
			_ = json.Unmarshal([]byte(c.input), &ch)
			name += "-" + ch.Channel
		}
		b.Run(name, func(b *testing.B) { benchmarkPrepare(b, c.node, c.version, c.input) })
	}
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

// BenchmarkMapOutcome maps Engage's answers to outcomes and shapes the output: a
// mutation's success and the failure columns.
func BenchmarkMapOutcome(b *testing.B) {
	reg := NewRegistry()
	appendV, _ := reg.Lookup("append-message", "1.4")
	searchV, _ := reg.Lookup("search-conversation", "1.3")
	success := &reply{env: engage.Envelope{HTTPStatus: 200, Status: 200, Code: 1000}, tid: "tid-1"}
	rejected := &engage.Error{Op: engage.OpAppend, Kind: engage.KindBusiness, HTTPStatus: 400, Code: 4001, Description: "conversation is closed", Raw: []byte(`{"status":400,"code":4001,"description":"conversation is closed"}`)}
	notFound := &engage.Error{Op: engage.OpSearch, Kind: engage.KindBusiness, HTTPStatus: 404, Code: 4004, Description: "no conversation", Raw: []byte(`{"status":404,"code":4004}`)}
	timeout := &engage.Error{Op: engage.OpAppend, Kind: engage.KindTimeout}
	for _, c := range []struct {
		name string
		want outcomes.Outcome
		run  func() outcomes.Result
	}{
		{"append-success", outcomes.OnAppendMessageSuccess, func() outcomes.Result {
			return appendV.shape(outcomes.Success(appendV.node.def.success[0], map[string]any{"TransId": success.tid, "transID": success.tid}))
		}},
		{"append-rejected", outcomes.OnAppendMessageFailure, func() outcomes.Result { return appendV.shape(engageFailure(appendV, rejected, false)) }},
		{"append-timeout", outcomes.OnTimeout, func() outcomes.Result { return appendV.shape(engageFailure(appendV, timeout, false)) }},
		{"search-404", outcomes.NoConversationFound, func() outcomes.Result { return searchV.shape(engageFailure(searchV, notFound, false)) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if res := c.run(); res.Outcome != c.want {
					b.Fatal(res.Outcome)
				}
			}
		})
	}
}
