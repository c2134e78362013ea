package httpapi_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/noderuntime/noderuntime/internal/engagesim"
	"github.com/noderuntime/noderuntime/internal/outcomes"
)

// nodeSpec restates ENGAGE.md §2 for one node, independently of the code under test:
// the outcome of each column, the simulator operation it calls, how to prepare Engage
// for a success, what a success must have done, and the ways Engage says no.
type nodeSpec struct {
	op                        string
	success, rejected, failed string
	seed                      func(h *harness, c combo) string
	check                     func(t *testing.T, h *harness, c combo, in map[string]any, a answer)
	rejections                []rejection
	readOnly                  bool
}

type rejection struct {
	name   string
	status int // Engage's HTTP status
	// prepare sets Engage up to say no, on a seeded conversation, and may change the input.
	prepare func(h *harness, id string, in map[string]any)
}

func seedConversation(status string, participants ...string) func(*harness, combo) string {
	return func(h *harness, c combo) string {
		return h.sim.SeedConversation(simDomain, engagesim.Conversation{
			Channel: cmpOr(c.channel, "sms"), CustomerAddress: "+15550001", BizAddress: "+15559999",
			Status: status, Participants: participants,
		})
	}
}

func (h *harness) conversation(t *testing.T, id string) engagesim.Conversation {
	t.Helper()
	c, ok := h.sim.Conversation(simDomain, id)
	if !ok {
		t.Fatalf("no conversation %q at Engage", id)
	}
	return c
}

func wantTransID(t *testing.T, a answer, name string) {
	t.Helper()
	if tid, _ := a.Output[name].(string); !strings.HasPrefix(tid, "tid-") {
		t.Fatalf("output %s = %v, want Engage's transaction ID", name, a.Output[name])
	}
}

// richWireKey is the key Engage gets a rich input object under (ENGAGE.md §4).
func richWireKey(field string) string {
	if field == "lcFormResponse" {
		return "livechatformresponse"
	}
	return field
}

// checkMessage checks the message Engage stored against the input that sent it.
func checkMessage(t *testing.T, m engagesim.Message, c combo, in map[string]any) {
	t.Helper()
	if m.Channel != c.channel || m.Direction != c.direction || m.MessageType != c.messageType || m.Timestamp != "2026-03-01T12:00:00Z" {
		t.Fatalf("Engage got message %s/%s/%s at %s, want %v", m.Channel, m.Direction, m.MessageType, m.Timestamp, c)
	}
	if _, ok := in["text"]; ok && m.Text != fixtureValues["text"] {
		t.Fatalf("Engage got text %q, want it exactly as sent", m.Text)
	}
	if _, ok := in["fromAddress"]; ok && m.FromAddress != "ada@example.com" {
		t.Fatalf("Engage got frmAddress %q", m.FromAddress)
	}
	if _, ok := in["attachments"]; ok && (len(m.Attachments) != 1 || m.Attachments[0].FileURL != "https://files.example.com/a.png") {
		t.Fatalf("Engage got attachments %+v", m.Attachments)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(m.Raw, &raw); err != nil {
		t.Fatal(err)
	}
	for name, v := range in {
		if _, isMap := v.(map[string]any); !isMap || name == "emailHeaders" {
			continue
		}
		var got any
		if err := json.Unmarshal(raw[richWireKey(name)], &got); err != nil {
			t.Fatalf("Engage's message has no %s: %s", richWireKey(name), m.Raw)
		}
		want, _ := json.Marshal(v)
		gotJSON, _ := json.Marshal(got)
		if string(want) != string(gotJSON) {
			t.Fatalf("Engage got %s = %s, want %s", richWireKey(name), gotJSON, want)
		}
	}
}

var specs = map[string]*nodeSpec{
	"search-conversation": {
		op: engagesim.OpSearch, success: "conversationActive", rejected: "onError", failed: "onError", readOnly: true,
		seed: func(h *harness, c combo) string {
			return h.sim.SeedConversation(simDomain, searchable(c.channel, "active"))
		},
		check: func(t *testing.T, h *harness, c combo, in map[string]any, a answer) {},
	},
	"append-message": {
		op: engagesim.OpAppend, success: "onAppendMessageSuccess", rejected: "onAppendMessageFailure", failed: "Failure",
		seed: seedConversation("active"),
		check: func(t *testing.T, h *harness, c combo, in map[string]any, a answer) {
			wantTransID(t, a, "TransId")
			conv := h.conversation(t, in["conversationId"].(string))
			if len(conv.Messages) != 1 {
				t.Fatalf("Engage has %d messages, want the one appended", len(conv.Messages))
			}
			checkMessage(t, conv.Messages[0], c, in)
		},
		rejections: []rejection{
			{"unknown conversation", 404, func(_ *harness, _ string, in map[string]any) { in["conversationId"] = "no-such-conversation" }},
			{"closed conversation", 409, func(h *harness, id string, _ map[string]any) { _ = h.sim.SetStatus(simDomain, id, "closed") }},
		},
	},
	"create-conversation": {
		op: engagesim.OpCreate, success: "onConversationCreated", rejected: "onConversationFailed", failed: "Failure",
		seed: func(*harness, combo) string { return "" },
		check: func(t *testing.T, h *harness, c combo, in map[string]any, a answer) {
			wantTransID(t, a, "TransId")
			id, _ := a.Output["conversationId"].(string)
			conv := h.conversation(t, id)
			wantCustomer := "+15550001"
			if c.channel == "livechat" {
				wantCustomer = "lc-user-1"
			}
			if conv.Channel != c.channel || conv.CustomerAddress != wantCustomer || conv.CustomerName != wantCustomer {
				t.Fatalf("Engage created %s conversation of %q named %q", conv.Channel, conv.CustomerAddress, conv.CustomerName)
			}
			if len(conv.Messages) != 1 {
				t.Fatalf("Engage has %d messages, want the first one", len(conv.Messages))
			}
			checkMessage(t, conv.Messages[0], c, in)
		},
		rejections: []rejection{
			{"Engage refuses", 409, func(h *harness, _ string, _ map[string]any) {
				h.sim.InjectFault(engagesim.Fault{Op: engagesim.OpCreate, Status: 409})
			}},
		},
	},
	"update-conversation": {
		op: engagesim.OpUpdate, success: "onConversationUpdatedSuccess", rejected: "onConversationUpdatedFailure", failed: "Failure",
		seed: seedConversation("active"),
		check: func(t *testing.T, h *harness, _ combo, in map[string]any, a answer) {
			wantTransID(t, a, "transID")
			if conv := h.conversation(t, in["conversationId"].(string)); conv.AliasID != "task-9" {
				t.Fatalf("Engage's alias ID %q, want the task ID", conv.AliasID)
			}
		},
		rejections: []rejection{
			{"unknown conversation", 404, func(_ *harness, _ string, in map[string]any) { in["conversationId"] = "no-such-conversation" }},
		},
	},
	"add-participant": {
		op: engagesim.OpAddParticipant, success: "OnAddParticipantSuccess", rejected: "OnAddParticipantFailure", failed: "Failure",
		seed: seedConversation("queued"),
		check: func(t *testing.T, h *harness, _ combo, in map[string]any, a answer) {
			wantTransID(t, a, "TransId")
			if conv := h.conversation(t, in["conversationId"].(string)); !slices.Contains(conv.Participants, "agent-7") {
				t.Fatalf("Engage's participants %v lack agent-7", conv.Participants)
			}
		},
		rejections: []rejection{
			{"unknown conversation", 404, func(_ *harness, _ string, in map[string]any) { in["conversationId"] = "no-such-conversation" }},
			{"participant already there", 409, func(h *harness, _ string, in map[string]any) {
				in["conversationId"] = seedConversation("active", "agent-7")(h, combo{})
			}},
		},
	},
	"remove-participant": {
		op: engagesim.OpRemoveParticipant, success: "onParticipantRemoved", rejected: "onRemoveParticipantFailure", failed: "onFailure",
		seed: seedConversation("active", "agent-7"),
		check: func(t *testing.T, h *harness, _ combo, in map[string]any, a answer) {
			wantTransID(t, a, "TransId")
			if conv := h.conversation(t, in["conversationId"].(string)); slices.Contains(conv.Participants, "agent-7") {
				t.Fatalf("Engage still has agent-7: %v", conv.Participants)
			}
		},
		rejections: []rejection{
			{"participant not there", 404, func(_ *harness, _ string, in map[string]any) { in["participant"] = "agent-404" }},
			{"unknown conversation", 404, func(_ *harness, _ string, in map[string]any) { in["conversationId"] = "no-such-conversation" }},
		},
	},
	"close-conversation": {
		op: engagesim.OpClose, success: "onConversationClosed", rejected: "onCloseConversationFailure", failed: "onFailure",
		seed: seedConversation("active"),
		check: func(t *testing.T, h *harness, _ combo, in map[string]any, a answer) {
			wantTransID(t, a, "TransId")
			if conv := h.conversation(t, in["conversationId"].(string)); conv.Status != "closed" {
				t.Fatalf("status %q, want closed", conv.Status)
			}
		},
		rejections: []rejection{
			{"already closed", 409, func(h *harness, id string, _ map[string]any) { _ = h.sim.SetStatus(simDomain, id, "closed") }},
			{"unknown conversation", 404, func(_ *harness, _ string, in map[string]any) { in["conversationId"] = "no-such-conversation" }},
		},
	},
	"reopen-conversation": {
		op: engagesim.OpUpdate, success: "ConversationReopened", rejected: "ConversationReopenFailed", failed: "onFailure",
		seed: seedConversation("closed"),
		check: func(t *testing.T, h *harness, _ combo, in map[string]any, a answer) {
			wantTransID(t, a, "TransId")
			if conv := h.conversation(t, in["conversationId"].(string)); conv.Status != "queued" {
				t.Fatalf("status %q, want queued", conv.Status)
			}
		},
		rejections: []rejection{
			{"conversation not closed", 409, func(h *harness, id string, _ map[string]any) { _ = h.sim.SetStatus(simDomain, id, "active") }},
			{"unknown conversation", 404, func(_ *harness, _ string, in map[string]any) { in["conversationId"] = "no-such-conversation" }},
		},
	},
}

// searchable is a conversation a search with the fixture values finds on channel.
func searchable(channel, status string) engagesim.Conversation {
	c := engagesim.Conversation{
		Channel: channel, CustomerAddress: "+15550001", BizAddress: "+15559999", Status: status,
		AliasID: "alias-1", TeamID: "team-1", UserID: "agent-1",
	}
	switch channel {
	case "livechat":
		c.ThreadID = "thread-1"
	case "email":
		c.Subject = "Order 42"
	}
	return c
}

// TestEveryNodeVersionThroughTheHTTPAPI runs, for each of the 14 node versions the
// catalog serves: a success of every channel, direction and message type with every
// output checked; the node's own outcomes; onInvalidData for each required field and for
// every input a later (or other) version has; every onAuthorizationFailure;
// onTimeout; the failure edge for 5xx, 429 and malformed answers; the 401
// refresh-and-repeat; the retry rules. At the end each version must have answered
// every outcome it declares, and nothing else.
func TestEveryNodeVersionThroughTheHTTPAPI(t *testing.T) {
	_, raw := newHarness(t, harnessOptions{}).get(t, "/v1/nodes")
	all := readCatalog(t, raw)
	if len(all) != 14 {
		t.Fatalf("the catalog has %d node versions, want the 14 of ENGAGE.md §1", len(all))
	}
	// Executions that must never reach Engage share this harness; it checks at the end
	// that neither a token nor Engage was asked for.
	noEngage := newHarness(t, harnessOptions{})

	t.Run("versions", func(t *testing.T) {
		for _, vi := range all {
			spec := specs[vi.node]
			if spec == nil {
				t.Fatalf("no test spec for node %s", vi.node)
			}
			var siblings []*versionInfo
			for _, o := range all {
				if o.node == vi.node && o != vi {
					siblings = append(siblings, o)
				}
			}
			t.Run(vi.node+"@"+vi.version, func(t *testing.T) {
				t.Parallel()
				t.Run("success", func(t *testing.T) { testSuccesses(t, vi, spec) })
				t.Run("invalid data", func(t *testing.T) { testInvalidData(t, vi, noEngage) })
				t.Run("version gates", func(t *testing.T) { testVersionGates(t, vi, siblings, noEngage) })
				t.Run("authorization", func(t *testing.T) { testAuthorizationFailures(t, vi, noEngage) })
				t.Run("engage failures", func(t *testing.T) { testEngageFailures(t, vi, spec) })
				t.Run("rejections", func(t *testing.T) { testRejections(t, vi, spec) })
				if vi.node == "search-conversation" {
					t.Run("search outcomes", func(t *testing.T) { testSearchOutcomes(t, vi) })
				}
			})
		}
	})
	if t.Failed() {
		return
	}

	// Unusable authorizations were refused before any token was fetched.
	for op, n := range noEngage.sim.Counts().Calls {
		if n != 0 {
			t.Errorf("invalid inputs or unusable authorizations reached Engage (%d %s calls)", n, op)
		}
	}
	for _, vi := range all {
		seen := coverage.of(vi)
		for o := range vi.outcomes {
			// Only Search reads a value from Engage that no outcome might cover.
			if !seen[o] && !(o == string(outcomes.OnInvalidChoice) && vi.node != "search-conversation") {
				t.Errorf("%s: no test saw outcome %s", vi, o)
			}
		}
	}
}

func testSuccesses(t *testing.T, vi *versionInfo, spec *nodeSpec) {
	for _, c := range vi.combos() {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOptions{})
			in := vi.input(c, spec.seed(h, c))
			a := h.run(t, execution{vi: vi, input: in})
			if a.Outcome != spec.success {
				t.Fatalf("outcome %s (%+v), want %s", a.Outcome, a.Error, spec.success)
			}
			spec.check(t, h, c, in, a)
			if n := h.sim.Calls(spec.op); n != 1 {
				t.Fatalf("%d %s calls, want 1", n, spec.op)
			}
		})
	}
}

func testInvalidData(t *testing.T, vi *versionInfo, h *harness) {
	wantInvalid := func(t *testing.T, in map[string]any, field, fragment string) {
		t.Helper()
		a := h.run(t, execution{vi: vi, input: in})
		if a.Outcome != string(outcomes.OnInvalidData) || a.Error.Code != outcomes.CodeInvalidInput {
			t.Fatalf("outcome %s %+v, want onInvalidData", a.Outcome, a.Error)
		}
		if !strings.Contains(a.Error.Message, "input."+field) || !strings.Contains(a.Error.Message, fragment) {
			t.Fatalf("message %q does not name input.%s (%q)", a.Error.Message, field, fragment)
		}
	}
	for _, c := range vi.combos() {
		for _, field := range vi.requiredFor(c) {
			t.Run(c.String()+" without "+field, func(t *testing.T) {
				t.Parallel()
				in := vi.input(c, "conv-1")
				delete(in, field)
				for _, alt := range vi.typeAnyOf[c.messageType] {
					if alt == field {
						// A group of alternatives is missing only when all of them are.
						for _, a := range vi.typeAnyOf[c.messageType] {
							delete(in, a)
						}
					}
				}
				wantInvalid(t, in, field, "required")
			})
		}
	}
	first := vi.combos()[0]
	bad := map[string]struct {
		field, value any
		wantField    string
		fragment     string
		applies      bool
	}{
		"unknown channel":         {"channel", "telegram", "channel", `unknown channel "telegram"`, vi.properties["channel"]},
		"timestamp not RFC 3339":  {"timestamp", "2026-03-01 12:00", "timestamp", "RFC 3339", vi.properties["timestamp"]},
		"timestamp not in UTC":    {"timestamp", "2026-03-01T12:00:00+02:00", "timestamp", "UTC", vi.properties["timestamp"]},
		"a field of no version":   {"colour", "red", "colour", "not an input", true},
		"a field in another case": {"ConversationID", "c1", "ConversationID", "did you mean conversationId", vi.properties["conversationId"]},
		"a number for a string":   {"participant", map[string]any{"id": 1}, "participant", "want a string", vi.properties["participant"]},
	}
	for name, b := range bad {
		if !b.applies {
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			in := vi.input(first, "conv-1")
			in[b.field.(string)] = b.value
			wantInvalid(t, in, b.wantField, b.fragment)
		})
	}
	for _, c := range vi.combos() {
		switch {
		case slices.Contains(vi.requiredFor(c), "text") && c.messageType == "text":
			t.Run("text over 4096 characters on "+c.String(), func(t *testing.T) {
				t.Parallel()
				in := vi.input(c, "conv-1")
				in["text"] = strings.Repeat("é", 4097)
				wantInvalid(t, in, "text", "4097 characters")
			})

		case slices.Contains(vi.requiredFor(c), "attachments"):
			t.Run("attachment without an absolute URL on "+c.String(), func(t *testing.T) {
				t.Parallel()
				in := vi.input(c, "conv-1")
				for _, u := range []string{"/relative.png", "https:///x.png", "http:x.png", "ftp://example.com/x.png"} {
					in["attachments"] = []map[string]string{{"mimeType": "image/png", "fileUrl": u}}
					wantInvalid(t, in, "attachments[0].fileUrl", "not an absolute http(s) URL")
				}
			})
		}
	}
}

// testVersionGates sends this version what only another version of the node accepts:
// a channel, direction, message type or input field it does not have.
func testVersionGates(t *testing.T, vi *versionInfo, siblings []*versionInfo, h *harness) {
	mine := map[combo]bool{}
	for _, c := range vi.combos() {
		mine[c] = true
	}
	for _, o := range siblings {
		for _, c := range o.combos() {
			if mine[c] {
				continue
			}
			t.Run(c.String()+" of "+o.version, func(t *testing.T) {
				t.Parallel()
				a := h.run(t, execution{vi: vi, input: o.input(c, "conv-1")})
				if a.Outcome != string(outcomes.OnInvalidData) {
					t.Fatalf("outcome %s, want onInvalidData", a.Outcome)
				}
				named := false
				for _, f := range append([]string{"channel", "direction", "messageType"}, o.typeRequired[c.messageType]...) {
					named = named || strings.Contains(a.Error.Message, "input."+f+":")
				}
				if !named {
					t.Fatalf("message %q names neither the channel, direction, type nor its field", a.Error.Message)
				}
			})
		}
		for field := range o.properties {
			if vi.properties[field] || strings.HasPrefix(field, "lc") || strings.HasPrefix(field, "wab") || strings.HasPrefix(field, "amb") {
				continue // the rich objects are gated with their message types, above
			}
			t.Run("input "+field+" of "+o.version, func(t *testing.T) {
				t.Parallel()
				in := vi.input(vi.combos()[0], "conv-1")
				in[field] = fieldValue(field)
				a := h.run(t, execution{vi: vi, input: in})
				if a.Outcome != string(outcomes.OnInvalidData) || !strings.Contains(a.Error.Message, "input."+field+": not an input of") {
					t.Fatalf("outcome %s %+v, want onInvalidData naming input.%s", a.Outcome, a.Error, field)
				}
			})
		}
	}
}

func testAuthorizationFailures(t *testing.T, vi *versionInfo, h *harness) {
	for name, tc := range map[string]struct {
		auth, key, wantOutcome, wantCode string
	}{
		"unknown authorization":   {authUnknown, "", "onAuthorizationFailure", outcomes.CodeAuthorizationNotFound},
		"deleted authorization":   {authDeleted, "", "onAuthorizationFailure", outcomes.CodeAuthorizationNotFound},
		"another tenant's":        {authOK, globexKey, "onAuthorizationFailure", outcomes.CodeAuthorizationNotFound},
		"pending authorization":   {authPending, "", "onAuthorizationFailure", outcomes.CodeAuthorizationPending},
		"needs re-authorization":  {authReauth, "", "onAuthorizationFailure", outcomes.CodeNeedsReauthorization},
		"credential store failed": {authBroken, "", "onError", outcomes.CodeInternal},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a := h.run(t, execution{vi: vi, auth: tc.auth, key: tc.key, input: vi.input(vi.combos()[0], "conv-1")})
			if a.Outcome != tc.wantOutcome || a.Error.Code != tc.wantCode {
				t.Fatalf("got %s %+v, want %s %s", a.Outcome, a.Error, tc.wantOutcome, tc.wantCode)
			}
			if strings.Contains(a.Error.Message, "EOF") {
				t.Fatalf("the store's own error reached the flow: %q", a.Error.Message)
			}
			if tc.auth == authBroken && !slices.ContainsFunc(strings.Split(h.logs.String(), "\n"), func(l string) bool {
				return strings.Contains(l, `"credential store failed"`) && strings.Contains(l, `"authorizationId":"`+authBroken+`"`) && strings.Contains(l, `"tenant":"acme"`)
			}) {
				t.Fatalf("no log line names the authorization whose store failed:\n%s", h.logs.String())
			}
		})
	}
}

// testEngageFailures: what Engage's failures and the token's troubles lead to, with the
// retry rules of ENGAGE.md §2.
func testEngageFailures(t *testing.T, vi *versionInfo, spec *nodeSpec) {
	c := vi.combos()[0]
	type tc struct {
		fault        engagesim.Fault
		timeoutMs    int
		prepare      func(t *testing.T, h *harness)
		wantOutcome  string
		wantCode     string
		wantStatus   int
		wantCalls    int
		wantRefresh  int64
		withinMillis int64
	}
	cases := map[string]tc{
		"5xx":            {fault: engagesim.Fault{Status: 500}, wantOutcome: spec.failed, wantCode: outcomes.CodeEngageUnavailable, wantStatus: 500, wantCalls: 1},
		"429":            {fault: engagesim.Fault{Status: 429}, wantOutcome: spec.failed, wantCode: outcomes.CodeEngageRateLimited, wantStatus: 429, wantCalls: 1},
		"malformed body": {fault: engagesim.Fault{Malformed: true}, wantOutcome: spec.failed, wantCode: outcomes.CodeEngageBadResponse, wantStatus: 200, wantCalls: 1},
		"latency past the deadline": {fault: engagesim.Fault{Latency: time.Minute}, timeoutMs: 150,
			wantOutcome: "onTimeout", wantCode: outcomes.CodeTimeout, wantCalls: 1, withinMillis: 2000},
		"token endpoint past the deadline": {fault: engagesim.Fault{Op: engagesim.OpToken, Latency: time.Minute}, timeoutMs: 150,
			wantOutcome: "onTimeout", wantCode: outcomes.CodeTimeout, wantCalls: 0, withinMillis: 2000},
		"401 again after the refresh": {fault: engagesim.Fault{Status: 401, Times: 2},
			wantOutcome: "onAuthorizationFailure", wantCode: outcomes.CodeEngageUnauthorized, wantStatus: 401, wantCalls: 2, wantRefresh: 1},
		"401 refreshes and repeats once": {
			prepare:     func(t *testing.T, h *harness) { h.sim.RevokeAccessToken(h.creds.token(t)) },
			wantOutcome: spec.success, wantCalls: 2, wantRefresh: 1},
	}
	if spec.readOnly {
		cases["503 once is retried"] = tc{fault: engagesim.Fault{Status: 503, Times: 1}, wantOutcome: spec.success, wantCalls: 2}
		cases["a reset connection is retried"] = tc{fault: engagesim.Fault{Reset: true, Times: 1}, wantOutcome: spec.success, wantCalls: 2}
		cases["502 twice is retried once"] = tc{fault: engagesim.Fault{Status: 502, Times: 2}, wantOutcome: "onError", wantCode: outcomes.CodeEngageUnavailable, wantStatus: 502, wantCalls: 2}
		cases["4xx"] = tc{fault: engagesim.Fault{Status: 400}, wantOutcome: "onError", wantCode: outcomes.CodeEngageRejected, wantStatus: 400, wantCalls: 1}
	} else {
		cases["503 is not retried"] = tc{fault: engagesim.Fault{Status: 503, Times: 1}, wantOutcome: spec.failed, wantCode: outcomes.CodeEngageUnavailable, wantStatus: 503, wantCalls: 1}
		cases["a reset connection is not retried"] = tc{fault: engagesim.Fault{Reset: true, Times: 1}, wantOutcome: spec.failed, wantCode: outcomes.CodeEngageUnavailable, wantCalls: 1}
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOptions{})
			in := vi.input(c, spec.seed(h, c))
			if tc.prepare != nil {
				tc.prepare(t, h)
			}
			if tc.fault != (engagesim.Fault{}) {
				if tc.fault.Op == "" {
					tc.fault.Op = spec.op
				}
				h.sim.InjectFault(tc.fault)
			}
			start := time.Now()
			a := h.run(t, execution{vi: vi, input: in, timeoutMs: tc.timeoutMs})
			took := time.Since(start)
			if a.Outcome != tc.wantOutcome {
				t.Fatalf("outcome %s %+v, want %s", a.Outcome, a.Error, tc.wantOutcome)
			}
			if tc.wantCode != "" && (a.Error == nil || a.Error.Code != tc.wantCode || a.Error.EngageStatus != tc.wantStatus) {
				t.Fatalf("error %+v, want code %s, Engage status %d", a.Error, tc.wantCode, tc.wantStatus)
			}
			if tc.wantStatus >= 400 && a.Error.EngageCode == 0 && tc.wantCode != outcomes.CodeEngageBadResponse {
				t.Fatalf("error %+v lacks Engage's code", a.Error)
			}
			if n := h.sim.Calls(spec.op); n != tc.wantCalls {
				t.Fatalf("%d %s calls, want %d", n, spec.op, tc.wantCalls)
			}
			if n := h.creds.refreshes.Load(); n != tc.wantRefresh {
				t.Fatalf("%d refreshes, want %d", n, tc.wantRefresh)
			}
			if tc.withinMillis > 0 && took > time.Duration(tc.withinMillis)*time.Millisecond {
				t.Fatalf("answered after %s", took)
			}
			if spec.readOnly && vi.properties["channel"] && slices.Contains(vi.outputs, "apiStatus") && tc.wantStatus != 0 {
				if got := a.Output["apiStatus"]; got != float64(tc.wantStatus) {
					t.Fatalf("apiStatus %v, want %d", got, tc.wantStatus)
				}
			}
		})
	}
}

func testRejections(t *testing.T, vi *versionInfo, spec *nodeSpec) {
	c := vi.combos()[0]
	for _, r := range spec.rejections {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOptions{})
			id := spec.seed(h, c)
			in := vi.input(c, id)
			r.prepare(h, id, in)
			a := h.run(t, execution{vi: vi, input: in})
			if a.Outcome != spec.rejected || a.Error.Code != outcomes.CodeEngageRejected || a.Error.EngageStatus != r.status ||
				a.Error.EngageCode == 0 || a.Error.EngageDescription == "" {
				t.Fatalf("got %s %+v, want %s with Engage's %d, code and description", a.Outcome, a.Error, spec.rejected, r.status)
			}
		})
	}
}

func testSearchOutcomes(t *testing.T, vi *versionInfo) {
	statuses := map[string]string{
		"queued": "conversationInQueue", "active": "conversationActive", "picked": "conversationActive",
		"onhold": "conversationOnHold", "closed": "conversationClosed", "Active": "conversationActive",
	}
	for _, c := range vi.combos() {
		for status, want := range statuses {
			t.Run(c.channel+" "+status, func(t *testing.T) {
				t.Parallel()
				h := newHarness(t, harnessOptions{})
				id := h.sim.SeedConversation(simDomain, searchable(c.channel, status))
				a := h.run(t, execution{vi: vi, input: vi.input(c, "")})
				if a.Outcome != want {
					t.Fatalf("status %s: outcome %s, want %s", status, a.Outcome, want)
				}
				wantSearchOutput(t, vi, a, map[string]any{
					"conversationId": id, "conversationExistsBool": true, "status": status,
					"description": "conversation found", "aliasId": "alias-1", "teamId": "team-1", "userId": "agent-1",
					"apiStatus": float64(200), "code": float64(engagesim.CodeOK),
				})
			})
		}
	}
	sms := combo{channel: "sms"}
	t.Run("no conversation", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, harnessOptions{})
		a := h.run(t, execution{vi: vi, input: vi.input(sms, "")})
		if a.Outcome != "noConversationFound" {
			t.Fatalf("outcome %s", a.Outcome)
		}
		wantSearchOutput(t, vi, a, map[string]any{"conversationId": "", "conversationExistsBool": false, "status": "", "apiStatus": float64(200)})
	})
	t.Run("Engage's 404", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, harnessOptions{})
		h.sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Status: 404})
		a := h.run(t, execution{vi: vi, input: vi.input(sms, "")})
		if a.Outcome != "noConversationFound" {
			t.Fatalf("outcome %s %+v", a.Outcome, a.Error)
		}
		wantSearchOutput(t, vi, a, map[string]any{"conversationExistsBool": false, "apiStatus": float64(404), "code": float64(engagesim.CodeNotFound)})
	})
	t.Run("a status no outcome covers", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, harnessOptions{})
		h.sim.SeedConversation(simDomain, searchable("sms", "active"))
		h.sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, UnknownStatus: "archived"})
		a := h.run(t, execution{vi: vi, input: vi.input(sms, "")})
		if a.Outcome != "onInvalidChoice" || a.Error.Code != outcomes.CodeUnknownStatus ||
			!strings.Contains(a.Error.Message, `"archived"`) || a.Error.EngageStatus != 200 {
			t.Fatalf("got %s %+v, want onInvalidChoice naming the status", a.Outcome, a.Error)
		}
		wantSearchOutput(t, vi, a, map[string]any{"status": "archived", "conversationExistsBool": true})
	})
	t.Run("a channel by its display name", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, harnessOptions{})
		h.sim.SeedConversation(simDomain, searchable("facebook", "onhold"))
		in := vi.input(combo{channel: "facebook"}, "")
		in["channel"] = "FACEBOOK messenger"
		if a := h.run(t, execution{vi: vi, input: in}); a.Outcome != "conversationOnHold" {
			t.Fatalf("outcome %s %+v", a.Outcome, a.Error)
		}
	})
}

// wantSearchOutput checks the output variables the version declares among want; 1.3's
// responsePayload must be Engage's body.
func wantSearchOutput(t *testing.T, vi *versionInfo, a answer, want map[string]any) {
	t.Helper()
	for name, w := range want {
		if !slices.Contains(vi.outputs, name) {
			continue
		}
		if got := a.Output[name]; !reflect.DeepEqual(got, w) {
			t.Fatalf("output %s = %#v, want %#v (%v)", name, got, w, a.Output)
		}
	}
	if slices.Contains(vi.outputs, "responsePayload") {
		p, _ := a.Output["responsePayload"].(string)
		var env struct {
			Status int `json:"status"`
		}
		if err := json.Unmarshal([]byte(p), &env); err != nil || float64(env.Status) != a.Output["apiStatus"] {
			t.Fatalf("responsePayload %q is not Engage's answer", p)
		}
	}
}
