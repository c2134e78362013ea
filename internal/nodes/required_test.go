package nodes_test

import (
	"encoding/json"
	"maps"
	"strings"
	"testing"

	"github.com/noderuntime/noderuntime/internal/outcomes"
)

// The fields each node and channel needs (ENGAGE.md §3), restated by hand: an input
// without one of them is onInvalidData naming it, and Engage is not called; with all of
// them it is not onInvalidData. The catalog's schema says the same, but the decoder is
// what a flow meets.
func TestAnInputWithoutAFieldItNeedsIsInvalidDataAndNeverReachesEngage(t *testing.T) {
	t.Parallel()
	textMessage := map[string]any{"direction": "inbound", "messageType": "text", "text": "hi", "timestamp": wireTimestamp}
	emailMessage := map[string]any{"direction": "inbound", "messageType": "email", "timestamp": wireTimestamp,
		"fromAddress": "jo@example.test", "plainBody": "hi"}
	addresses := map[string]any{"bizAddress": "biz-1", "customerAddress": "cust-1"}
	with := func(parts ...map[string]any) map[string]any {
		out := map[string]any{}
		for _, p := range parts {
			maps.Copy(out, p)
		}
		return out
	}
	for _, tc := range []struct {
		node     string
		versions []string
		channel  string         // "" : a node without one
		input    map[string]any // everything the node and channel need but the channel
		needs    []string       // the fields the node and channel need
	}{
		{"search-conversation", []string{"1.0", "1.1", "1.3"}, "sms", addresses, []string{"bizAddress", "customerAddress"}},
		{"search-conversation", []string{"1.0", "1.1", "1.3"}, "facebook", addresses, []string{"bizAddress", "customerAddress"}},
		{"search-conversation", []string{"1.0", "1.1", "1.3"}, "whatsapp", addresses, []string{"bizAddress", "customerAddress"}},
		{"search-conversation", []string{"1.0", "1.1", "1.3"}, "email", with(addresses, map[string]any{"subject": "Order 42"}),
			[]string{"bizAddress", "customerAddress", "subject"}},
		{"search-conversation", []string{"1.0", "1.1", "1.3"}, "livechat", with(addresses, map[string]any{"threadId": "th-1"}),
			[]string{"bizAddress", "customerAddress", "threadId"}},
		{"search-conversation", []string{"1.3"}, "amb", addresses, []string{"bizAddress", "customerAddress"}},
		{"search-conversation", []string{"1.3"}, "api", addresses, []string{"bizAddress", "customerAddress"}},
		{"create-conversation", []string{"1.0", "1.2", "1.3"}, "sms", with(addresses, textMessage), []string{"bizAddress", "customerAddress"}},
		{"create-conversation", []string{"1.0", "1.2", "1.3"}, "facebook", with(addresses, textMessage), []string{"bizAddress", "customerAddress"}},
		{"create-conversation", []string{"1.0", "1.2", "1.3"}, "whatsapp", with(addresses, textMessage), []string{"bizAddress", "customerAddress"}},
		{"create-conversation", []string{"1.0", "1.2", "1.3"}, "api", with(addresses, textMessage), []string{"bizAddress", "customerAddress"}},
		{"create-conversation", []string{"1.0", "1.2", "1.3"}, "email", with(addresses, emailMessage), []string{"bizAddress", "customerAddress"}},
		{"create-conversation", []string{"1.0", "1.2", "1.3"}, "livechat", with(textMessage, map[string]any{"threadId": "th-1",
			"livechatUserId": "user-1", "livechatAppId": "app-1", "livechatWebsiteDomain": "shop.example.test"}),
			[]string{"threadId", "livechatUserId", "livechatAppId", "livechatWebsiteDomain"}},
		// The nodes without a per-channel table; Append's channel is among its needs.
		{"append-message", []string{"1.0", "1.3", "1.4"}, "", with(textMessage, map[string]any{"conversationId": "c-1", "channel": "sms"}),
			[]string{"conversationId", "channel", "direction", "messageType", "timestamp", "text"}},
		{"update-conversation", []string{"1.0"}, "", map[string]any{"conversationId": "c-1", "taskId": "task-9"}, []string{"conversationId", "taskId"}},
		{"add-participant", []string{"1.0"}, "", map[string]any{"conversationId": "c-1", "participant": "agent-7"}, []string{"conversationId", "participant"}},
		{"remove-participant", []string{"1.0"}, "", map[string]any{"conversationId": "c-1", "participant": "agent-7"}, []string{"conversationId", "participant"}},
		{"close-conversation", []string{"1.0"}, "", map[string]any{"conversationId": "c-1"}, []string{"conversationId"}},
		{"reopen-conversation", []string{"1.0"}, "", map[string]any{"conversationId": "c-1"}, []string{"conversationId"}},
	} {
		for _, version := range tc.versions {
			run := func(t *testing.T, input map[string]any) (outcomes.Result, []engageCall) {
				t.Helper()
				if tc.channel != "" {
					input = with(map[string]any{"channel": tc.channel}, input)
				}
				raw, err := json.Marshal(input)
				if err != nil {
					t.Fatal(err)
				}
				return newWireHarness(t).run(t, tc.node, version, string(raw))
			}
			name := strings.TrimSuffix(tc.node+" "+version+"/"+tc.channel, "/")
			t.Run(name+"/with every field it needs", func(t *testing.T) {
				t.Parallel()
				if res, _ := run(t, tc.input); res.Outcome == outcomes.OnInvalidData {
					t.Fatalf("onInvalidData %+v, want the input taken", res.Error)
				}
			})
			for _, field := range tc.needs {
				t.Run(name+"/without "+field, func(t *testing.T) {
					t.Parallel()
					input := maps.Clone(tc.input)
					delete(input, field)
					res, calls := run(t, input)
					if res.Outcome != outcomes.OnInvalidData || res.Error == nil || !strings.HasPrefix(res.Error.Message, "input."+field+": required") {
						t.Fatalf("outcome %s %+v, want onInvalidData: input.%s required", res.Outcome, res.Error, field)
					}
					if len(calls) != 0 {
						t.Fatalf("%d Engage calls, want none", len(calls))
					}
				})
			}
		}
	}
}

// An optional field is optional, not unchecked: a malformed value of one (an object
// where a string is expected, a number where a list is) is onInvalidData naming it
// (ENGAGE.md §2), never silently dropped, and Engage is not called.
func TestAMalformedOptionalFieldIsInvalidDataAndNeverReachesEngage(t *testing.T) {
	t.Parallel()
	const (
		email    = `"channel":"email","bizAddress":"support@acme.test","customerAddress":"jo@example.test","subject":"Order 42"`
		livechat = `"channel":"livechat","bizAddress":"app-1","customerAddress":"user-1","threadId":"th-1"`
		text     = `"direction":"inbound","messageType":"text","text":"hi","timestamp":"` + wireTimestamp + `"`
		sms      = `"channel":"sms","bizAddress":"+15559999","customerAddress":"+15550001"`
		lcCreate = `"channel":"livechat","threadId":"th-1","livechatUserId":"user-1","livechatAppId":"app-1","livechatWebsiteDomain":"shop.example.test"`
	)
	for _, tc := range []struct {
		node, version, input, field string
	}{
		{"search-conversation", "1.3", `{` + email + `,"inReplyTo":{"id":1}}`, "inReplyTo"},
		{"search-conversation", "1.0", `{` + email + `,"toRecipients":7}`, "toRecipients"},
		{"search-conversation", "1.1", `{` + email + `,"ccRecipients":[1,2]}`, "ccRecipients"},
		{"search-conversation", "1.3", `{` + livechat + `,"browserFingerprint":["fp"]}`, "browserFingerprint"},
		{"create-conversation", "1.3", `{` + sms + `,"customerName":{"first":"Jo"},` + text + `}`, "customerName"},
		{"create-conversation", "1.3", `{` + lcCreate + `,"livechatProactiveId":true,` + text + `}`, "livechatProactiveId"},
		{"append-message", "1.4", `{"conversationId":"c-1","channel":"sms","messageAliasId":{"id":"m-1"},` + text + `}`, "messageAliasId"},
		{"create-conversation", "1.0", `{` + sms + `,"messageAliasId":["m-1"],` + text + `}`, "messageAliasId"},
	} {
		t.Run(tc.node+" "+tc.version+"/"+tc.field, func(t *testing.T) {
			t.Parallel()
			h := newWireHarness(t)
			res, calls := h.run(t, tc.node, tc.version, tc.input)
			if res.Outcome != outcomes.OnInvalidData || res.Error == nil || !strings.HasPrefix(res.Error.Message, "input."+tc.field+":") {
				t.Fatalf("outcome %s %+v, want onInvalidData naming input.%s", res.Outcome, res.Error, tc.field)
			}
			if len(calls) != 0 {
				t.Fatalf("%d Engage calls, want none", len(calls))
			}
		})
	}
}
