package nodes_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/noderuntime/noderuntime/internal/engagesim"
	"github.com/noderuntime/noderuntime/internal/outcomes"
)

// pathIDNodes are the nodes whose conversation ID or participant Engage's URL path
// carries, with an input that puts id where the field goes.
var pathIDNodes = []struct {
	node, field string
	input       func(id string) string
}{
	{"update-conversation", "conversationId", func(id string) string { return `{"conversationId":` + id + `,"taskId":"t1"}` }},
	{"add-participant", "conversationId", func(id string) string { return `{"conversationId":` + id + `,"participant":"agent-1"}` }},
	{"add-participant", "participant", func(id string) string { return `{"conversationId":"c1","participant":` + id + `}` }},
	{"remove-participant", "conversationId", func(id string) string { return `{"conversationId":` + id + `,"participant":"agent-1"}` }},
	{"remove-participant", "participant", func(id string) string { return `{"conversationId":"c1","participant":` + id + `}` }},
	{"close-conversation", "conversationId", func(id string) string { return `{"conversationId":` + id + `}` }},
	{"reopen-conversation", "conversationId", func(id string) string { return `{"conversationId":` + id + `}` }},
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// An ID that Engage's URL path carries is escaped, but a proxy in front of Engage that
// decodes the path once would turn %3F back into a query, %23 into a fragment, %3B into a
// path parameter, and a "%2e%2e" or "%2F" given as such into a dot segment or a slash
// for the server behind it: any of them could send the call to another endpoint or
// another resource (DELETE .../participants/agent-1?x removes agent-1). A control
// character is no part of an ID, and an ID of thousands of characters is a flow's
// mistake that Engage would only answer with a proxy's 414. All of them are
// onInvalidData, naming the field, and Engage is not called.
func TestAPathIDAProxyCouldReadAsAnotherPathIsInvalidDataAndNeverSent(t *testing.T) {
	t.Parallel()
	h := newWireHarness(t)
	for _, bad := range []string{
		"c1?x", "?", "c1#x", "#", "c1;x", "%2e%2e", "c1%2Fclose", "100%", "c1\nx", "c1\r\nHost: x", "c1\x00x", "c1\x7f", "c1\u0085x", "c1\u009bx",
		"\tc1\u0000", strings.Repeat("c", 257), strings.Repeat("é", 257),
	} {
		for _, n := range pathIDNodes {
			res, calls := h.run(t, n.node, "1.0", n.input(jsonString(bad)))
			if res.Outcome != outcomes.OnInvalidData || res.Error == nil || !strings.Contains(res.Error.Message, "input."+n.field+": ") ||
				!strings.Contains(res.Error.Message, "is not an ID") {
				t.Errorf("%s %s = %.40q: %s %+v, want onInvalidData naming %s as not an ID", n.node, n.field, bad, res.Outcome, res.Error, n.field)
			}
			if len(calls) != 0 {
				t.Errorf("%s %s = %.40q: Engage was called: %s %.80s", n.node, n.field, bad, calls[0].method, calls[0].path)
			}
		}
	}
}

// What an ID may hold reaches Engage escaped as one path segment, and names the
// participant as given: spaces, @, +, =, &, a colon, non-ASCII letters, and the longest
// ID allowed.
func TestAnIDWithOtherCharactersIsSentAsOnePathSegment(t *testing.T) {
	t.Parallel()
	h := newWireHarness(t)
	for _, id := range []string{"agent 7@team+a=b&c:d", "ağent-ü", strings.Repeat("c", 256), strings.Repeat("é", 256)} {
		conv := h.sim.SeedConversation(fuzzDomain, engagesim.Conversation{Channel: "sms", CustomerAddress: "+15550001",
			BizAddress: "+15559999", Status: "active", Participants: []string{id, "agent-1"}})
		res, calls := h.run(t, "remove-participant", "1.0", `{"conversationId":"`+conv+`","participant":`+jsonString(id)+`}`)
		if res.Outcome != outcomes.OnParticipantRemoved {
			t.Errorf("%q: %s %+v, want it removed", id, res.Outcome, res.Error)
			continue
		}
		oneCall(t, calls, http.MethodDelete, "/api/v1/"+fuzzDomain+"/conversations/"+conv+"/participants/"+id)
		if c, _ := h.sim.Conversation(fuzzDomain, conv); !slices.Equal(c.Participants, []string{"agent-1"}) {
			t.Errorf("%q: participants after the call %q", id, c.Participants)
		}
	}
}
