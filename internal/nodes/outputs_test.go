package nodes_test

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/noderuntime/noderuntime/internal/engagesim"
	"github.com/noderuntime/noderuntime/internal/outcomes"
)

// These tests look at what a flow gets back (ENGAGE.md §3's outputs) and at the bodies
// of the calls that change a conversation (§4), node by node.

// answerTID is the transaction ID in the envelope Engage answered a call with.
func answerTID(t *testing.T, c engageCall) string {
	t.Helper()
	var env struct {
		TID string `json:"tid"`
	}
	if err := json.Unmarshal(c.answer, &env); err != nil || env.TID == "" {
		t.Fatalf("Engage's answer has no tid (%v): %s", err, c.answer)
	}
	return env.TID
}

func TestEveryChangingNodeOutputsEngagesTransactionIDUnderItsDocumentedName(t *testing.T) {
	t.Parallel()
	const agent = "agent-7"
	for _, tc := range []struct {
		node, version string
		status        string // the seeded conversation's status
		participants  []string
		input         func(id string) string
		outcome       outcomes.Outcome
		tidOutput     string // the output variable that holds Engage's tid
	}{
		{"append-message", "1.4", "active", nil, func(id string) string {
			return `{"conversationId":"` + id + `","channel":"sms","direction":"outbound","messageType":"text","text":"hi","timestamp":"` + wireTimestamp + `"}`
		}, outcomes.OnAppendMessageSuccess, "TransId"},
		{"update-conversation", "1.0", "active", nil, func(id string) string {
			return `{"conversationId":"` + id + `","taskId":"task-9"}`
		}, outcomes.OnConversationUpdatedSuccess, "transID"},
		{"add-participant", "1.0", "active", nil, func(id string) string {
			return `{"conversationId":"` + id + `","participant":"` + agent + `"}`
		}, outcomes.OnAddParticipantSuccess, "TransId"},
		{"remove-participant", "1.0", "active", []string{agent}, func(id string) string {
			return `{"conversationId":"` + id + `","participant":"` + agent + `"}`
		}, outcomes.OnParticipantRemoved, "TransId"},
		{"close-conversation", "1.0", "active", nil, func(id string) string {
			return `{"conversationId":"` + id + `"}`
		}, outcomes.OnConversationClosed, "TransId"},
		{"reopen-conversation", "1.0", "closed", nil, func(id string) string {
			return `{"conversationId":"` + id + `"}`
		}, outcomes.ConversationReopened, "TransId"},
	} {
		t.Run(tc.node, func(t *testing.T) {
			t.Parallel()
			h := newWireHarness(t)
			id := h.sim.SeedConversation(fuzzDomain, engagesim.Conversation{Channel: "sms", CustomerAddress: "+15550001",
				BizAddress: "+15559999", Status: tc.status, Participants: tc.participants})
			res, calls := h.run(t, tc.node, tc.version, tc.input(id))
			if res.Outcome != tc.outcome {
				t.Fatalf("outcome %s %+v, want %s", res.Outcome, res.Error, tc.outcome)
			}
			if len(calls) != 1 {
				t.Fatalf("%d Engage calls, want 1", len(calls))
			}
			if got, want := res.Output[tc.tidOutput], answerTID(t, calls[0]); got != want {
				t.Fatalf("output %s = %#v, want Engage's tid %q (output %v)", tc.tidOutput, got, want, res.Output)
			}
		})
	}
}

func TestCreateOutputsTheNewConversationsIDAndTransactionID(t *testing.T) {
	t.Parallel()
	for _, version := range []string{"1.0", "1.2", "1.3"} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			h := newWireHarness(t)
			res, calls := h.run(t, "create-conversation", version, `{"channel":"sms","bizAddress":"+15559999","customerAddress":"+15550001",
				"direction":"inbound","messageType":"text","text":"hello","timestamp":"`+wireTimestamp+`"}`)
			if res.Outcome != outcomes.OnConversationCreated {
				t.Fatalf("outcome %s %+v", res.Outcome, res.Error)
			}
			c := oneCall(t, calls, http.MethodPost, createPath)
			var env struct {
				TID   string `json:"tid"`
				Value struct {
					ConversationID string `json:"conversationId"`
				} `json:"value"`
			}
			if err := json.Unmarshal(c.answer, &env); err != nil || env.Value.ConversationID == "" {
				t.Fatalf("Engage's answer (%v): %s", err, c.answer)
			}
			if res.Output["conversationId"] != env.Value.ConversationID || res.Output["TransId"] != env.TID {
				t.Fatalf("output %v, want conversationId %q and TransId %q", res.Output, env.Value.ConversationID, env.TID)
			}
			// The ID is the conversation's: a search finds it under that ID.
			found, _ := h.run(t, "search-conversation", "1.3", `{"channel":"sms","bizAddress":"+15559999","customerAddress":"+15550001"}`)
			if found.Output["conversationId"] != env.Value.ConversationID {
				t.Fatalf("search found %v, want the created conversation %q", found.Output["conversationId"], env.Value.ConversationID)
			}
		})
	}
}

// Update writes the task ID as the conversation's alias ID; Re-open moves a closed
// conversation back to the queue (ENGAGE.md §3, §4), and fails on one that is not closed.
func TestUpdateAndReopenSendTheirDocumentedPatchBodies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, node, status, input string
		body                      string // "" : what was sent is not checked
		outcome                   outcomes.Outcome
		convAfter                 func(c engagesim.Conversation) bool
	}{
		{"update writes the task ID as the alias ID", "update-conversation", "active", `,"taskId":"task-9"`,
			`{"aliasId":"task-9"}`, outcomes.OnConversationUpdatedSuccess,
			func(c engagesim.Conversation) bool { return c.AliasID == "task-9" && c.Status == "active" }},
		{"re-open queues a closed conversation", "reopen-conversation", "closed", ``,
			`{"status":"queued"}`, outcomes.ConversationReopened,
			func(c engagesim.Conversation) bool { return c.Status == "queued" }},
		{"re-open of an active conversation fails", "reopen-conversation", "active", ``,
			`{"status":"queued"}`, outcomes.ConversationReopenFailed,
			func(c engagesim.Conversation) bool { return c.Status == "active" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newWireHarness(t)
			id := h.seed("sms", "+15550001", "+15559999", tc.status)
			res, calls := h.run(t, tc.node, "1.0", `{"conversationId":"`+id+`"`+tc.input+`}`)
			if res.Outcome != tc.outcome {
				t.Fatalf("outcome %s %+v, want %s", res.Outcome, res.Error, tc.outcome)
			}
			c := oneCall(t, calls, http.MethodPatch, "/api/v1/"+fuzzDomain+"/conversations/"+id)
			sameBody(t, c.body, tc.body)
			conv, ok := h.sim.Conversation(fuzzDomain, id)
			if !ok || !tc.convAfter(conv) {
				t.Fatalf("conversation after the call: %+v", conv)
			}
		})
	}
}

// Search 1.3 reports Engage's answer as such: the conversation's alias, team and agent,
// Engage's HTTP status, code, description and raw body, on success and on failure alike.
func TestSearch13OutputsEveryPartOfEngagesAnswer(t *testing.T) {
	t.Parallel()
	const input = `{"channel":"sms","bizAddress":"+15559999","customerAddress":"+15550001"}`
	for _, tc := range []struct {
		name    string
		setup   func(h *wireHarness) string // returns the conversation ID expected, or ""
		outcome outcomes.Outcome
		status  int
	}{
		{"a conversation found", func(h *wireHarness) string {
			return h.sim.SeedConversation(fuzzDomain, engagesim.Conversation{Channel: "sms", CustomerAddress: "+15550001",
				BizAddress: "+15559999", Status: "active", AliasID: "alias-1", TeamID: "team-2", UserID: "agent-3"})
		}, outcomes.ConversationActive, 200},
		{"no conversation", func(*wireHarness) string { return "" }, outcomes.NoConversationFound, 0},
		{"Engage's 404", func(h *wireHarness) string {
			h.sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Status: http.StatusNotFound, Times: 1})
			return ""
		}, outcomes.NoConversationFound, 404},
		{"Engage's 400", func(h *wireHarness) string {
			h.sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Status: http.StatusBadRequest, Times: 1})
			return ""
		}, outcomes.OnError, 400},
		{"Engage's 500", func(h *wireHarness) string {
			h.sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Status: http.StatusInternalServerError, Times: 1})
			return ""
		}, outcomes.OnError, 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newWireHarness(t)
			id := tc.setup(h)
			res, calls := h.run(t, "search-conversation", "1.3", input)
			if res.Outcome != tc.outcome {
				t.Fatalf("outcome %s %+v, want %s", res.Outcome, res.Error, tc.outcome)
			}
			last := calls[len(calls)-1]
			var env struct {
				Code        int    `json:"code"`
				Description string `json:"description"`
				Value       struct {
					AliasID, TeamID, UserID string
				} `json:"value"`
			}
			if err := json.Unmarshal(last.answer, &env); err != nil {
				t.Fatalf("Engage's answer: %v: %s", err, last.answer)
			}
			want := map[string]any{
				"conversationId": id, "conversationExistsBool": id != "",
				"aliasId": env.Value.AliasID, "teamId": env.Value.TeamID, "userId": env.Value.UserID,
				"apiStatus": last.status, "code": env.Code, "description": env.Description,
				"responsePayload": string(last.answer),
			}
			if id != "" && (env.Value.AliasID != "alias-1" || env.Value.TeamID != "team-2" || env.Value.UserID != "agent-3") {
				t.Fatalf("the simulator did not answer the seeded conversation: %s", last.answer)
			}
			if tc.status != 0 && last.status != tc.status {
				t.Fatalf("Engage answered %d, want %d", last.status, tc.status)
			}
			for k, w := range want {
				if got := res.Output[k]; got != w {
					t.Errorf("output %s = %#v, want %#v", k, got, w)
				}
			}
		})
	}
}

// A status no outcome covers is onInvalidChoice with the stable code unknown_status and
// Engage's answer in the error (ENGAGE.md §2), and the status as Engage gave it.
func TestAConversationStatusNoOutcomeCoversIsInvalidChoiceWithEngagesAnswer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ version, status string }{
		{"1.0", "transferred"},
		{"1.1", "Escalated"},
		{"1.3", "wrapup"},
	} {
		t.Run(tc.version+" "+tc.status, func(t *testing.T) {
			t.Parallel()
			h := newWireHarness(t)
			h.sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, UnknownStatus: tc.status, Times: 1})
			res, calls := h.run(t, "search-conversation", tc.version, `{"channel":"sms","bizAddress":"+15559999","customerAddress":"+15550001"}`)
			c := oneCall(t, calls, http.MethodPost, searchPath)
			var env struct {
				Code        int    `json:"code"`
				Description string `json:"description"`
			}
			if err := json.Unmarshal(c.answer, &env); err != nil {
				t.Fatal(err)
			}
			if res.Outcome != outcomes.OnInvalidChoice || res.Error == nil {
				t.Fatalf("outcome %s %+v, want onInvalidChoice", res.Outcome, res.Error)
			}
			want := outcomes.Error{Code: outcomes.CodeUnknownStatus, Message: res.Error.Message,
				EngageStatus: c.status, EngageCode: env.Code, EngageDescription: env.Description}
			if *res.Error != want || !strings.Contains(res.Error.Message, tc.status) {
				t.Fatalf("error %+v, want %+v naming the status", *res.Error, want)
			}
			if res.Output["status"] != tc.status || res.Output["conversationExistsBool"] != true {
				t.Fatalf("output %v, want status %q of a conversation that exists", res.Output, tc.status)
			}
		})
	}
}

// Search follows the found conversation's status, in every version (ENGAGE.md §2):
// queued is conversationInQueue, active and picked conversationActive, onhold
// conversationOnHold, closed conversationClosed, whatever their case; the status and
// the ID are output as Engage gave them.
func TestEveryDocumentedStatusLeadsSearchToItsOutcomeInEveryVersion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status  string
		outcome outcomes.Outcome
	}{
		{"queued", outcomes.ConversationInQueue},
		{"QUEUED", outcomes.ConversationInQueue},
		{"active", outcomes.ConversationActive},
		{"picked", outcomes.ConversationActive},
		{"onhold", outcomes.ConversationOnHold},
		{"closed", outcomes.ConversationClosed},
	} {
		for _, version := range []string{"1.0", "1.1", "1.3"} {
			t.Run(version+" "+tc.status, func(t *testing.T) {
				t.Parallel()
				h := newWireHarness(t)
				id := h.seed("sms", "+15550001", "+15559999", tc.status)
				res, calls := h.run(t, "search-conversation", version, smsSearch)
				oneCall(t, calls, http.MethodPost, searchPath)
				if res.Outcome != tc.outcome || res.Error != nil {
					t.Fatalf("outcome %s %+v, want %s", res.Outcome, res.Error, tc.outcome)
				}
				if res.Output["conversationId"] != id || res.Output["status"] != tc.status || res.Output["conversationExistsBool"] != true {
					t.Fatalf("output %v, want conversation %q with status %q", res.Output, id, tc.status)
				}
			})
		}
	}
}

// Whatever the outcome, Search answers exactly its version's output variables
// (ENGAGE.md §3; docs/nodes.md): a 1.0 or 1.1 flow never gets 1.3's Engage variables,
// and every variable the execution did not produce has its zero value, so a flow that
// reads apiStatus after onInvalidData reads 0, not a value of its own making.
func TestSearchAnswersExactlyItsVersionsOutputVariablesWhateverTheOutcome(t *testing.T) {
	t.Parallel()
	zero := map[string]any{"conversationId": "", "conversationExistsBool": false, "status": "", "description": "",
		"aliasId": "", "teamId": "", "userId": "", "apiStatus": 0, "code": 0, "responsePayload": ""}
	for _, tc := range []struct {
		name    string
		input   string
		fault   *engagesim.Fault
		outcome outcomes.Outcome
		zeroes  bool // every variable at its zero value
	}{
		{"invalid data", `{"channel":"sms","bizAddress":"+15559999"}`, nil, outcomes.OnInvalidData, true},
		{"Engage failing", smsSearch, &engagesim.Fault{Op: engagesim.OpSearch, Status: http.StatusInternalServerError, Times: 1}, outcomes.OnError, false},
		{"Engage's 404", smsSearch, &engagesim.Fault{Op: engagesim.OpSearch, Status: http.StatusNotFound, Times: 1}, outcomes.NoConversationFound, false},
		{"no conversation", smsSearch, nil, outcomes.NoConversationFound, false},
	} {
		for _, version := range []string{"1.0", "1.1", "1.3"} {
			t.Run(version+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				h := newWireHarness(t)
				if tc.fault != nil {
					h.sim.InjectFault(*tc.fault)
				}
				res, _ := h.run(t, "search-conversation", version, tc.input)
				if res.Outcome != tc.outcome {
					t.Fatalf("outcome %s %+v, want %s", res.Outcome, res.Error, tc.outcome)
				}
				want := engageOutputs["search-conversation "+version]
				if got := slices.Sorted(maps.Keys(res.Output)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
					t.Fatalf("output variables %v, want %v", got, want)
				}
				if res.Output["conversationId"] != "" || res.Output["conversationExistsBool"] != false {
					t.Errorf("output %v, want no conversation", res.Output)
				}
				if !tc.zeroes {
					return
				}
				for _, name := range want {
					if got := res.Output[name]; got != zero[name] {
						t.Errorf("output %s = %#v, want its zero value %#v", name, got, zero[name])
					}
				}
			})
		}
	}
}

// Add and Remove Participant name the agent exactly as given, in the body of the add and
// the path of the remove (ENGAGE.md §4), and the conversation's participants change
// accordingly.
func TestParticipantsAreAddedAndRemovedByTheAgentIDAsGiven(t *testing.T) {
	t.Parallel()
	const agent = "Agent-7@Team"
	for _, tc := range []struct {
		node, method string
		before       []string
		path         func(id string) string
		body         string // "" : no body
		outcome      outcomes.Outcome
		after        []string
	}{
		{"add-participant", http.MethodPost, []string{"agent-1"},
			func(id string) string { return "/api/v1/" + fuzzDomain + "/conversations/" + id + "/participants" },
			`{"participant":"` + agent + `"}`, outcomes.OnAddParticipantSuccess, []string{"agent-1", agent}},
		{"remove-participant", http.MethodDelete, []string{"agent-1", agent},
			func(id string) string {
				return "/api/v1/" + fuzzDomain + "/conversations/" + id + "/participants/" + agent
			},
			"", outcomes.OnParticipantRemoved, []string{"agent-1"}},
	} {
		t.Run(tc.node, func(t *testing.T) {
			t.Parallel()
			h := newWireHarness(t)
			id := h.sim.SeedConversation(fuzzDomain, engagesim.Conversation{Channel: "sms", CustomerAddress: "+15550001",
				BizAddress: "+15559999", Status: "active", Participants: tc.before})
			res, calls := h.run(t, tc.node, "1.0", `{"conversationId":"`+id+`","participant":" `+agent+` "}`)
			if res.Outcome != tc.outcome {
				t.Fatalf("outcome %s %+v, want %s", res.Outcome, res.Error, tc.outcome)
			}
			c := oneCall(t, calls, tc.method, tc.path(id))
			if tc.body != "" {
				sameBody(t, c.body, tc.body)
			}
			conv, ok := h.sim.Conversation(fuzzDomain, id)
			if !ok || !slices.Equal(conv.Participants, tc.after) {
				t.Fatalf("participants after the call %v, want %v", conv.Participants, tc.after)
			}
		})
	}
}
