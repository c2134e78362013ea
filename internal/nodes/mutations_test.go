package nodes_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/noderuntime/noderuntime/internal/engage"
	"github.com/noderuntime/noderuntime/internal/engagesim"
	"github.com/noderuntime/noderuntime/internal/nodes"
	"github.com/noderuntime/noderuntime/internal/outcomes"
	"github.com/noderuntime/noderuntime/internal/secrets"
	"github.com/noderuntime/noderuntime/internal/tenant"
)

// These tests run the nodes that change Engage (ENGAGE.md §3: Append Message, Create
// Conversation, Update Conversation, Add/Remove Participant, Close, Re-open), every
// version, against the simulator served on loopback, end to end: which edge each kind of
// Engage answer leads to (§2's table), and how many calls it took (§2: never repeated,
// but for one refresh and one repeat after a 401).

// changingNode is one version of one of those nodes, with a conversation it succeeds on
// (none for Create: it makes its own).
type changingNode struct {
	node, version, op string
	creates           bool                   // Create: no conversation is seeded, and none is named
	seed              engagesim.Conversation // Status and Participants it needs
	input             func(id string) string
	success           outcomes.Outcome
	rejected          outcomes.Outcome // Engage said no
	failed            outcomes.Outcome // Engage failed otherwise
	outputs           []string         // its output variables; the first is Engage's tid
	// changes counts how many times the change was made: the messages appended, the
	// conversations created, or 1 when the conversation shows the change.
	changes func(sim *engagesim.Sim, id string) int
}

func (n changingNode) String() string { return n.node + " " + n.version }

// shows counts 1 when the conversation id shows the change.
func shows(is func(c engagesim.Conversation) bool) func(sim *engagesim.Sim, id string) int {
	return func(sim *engagesim.Sim, id string) int {
		if c, ok := sim.Conversation(fuzzDomain, id); ok && is(c) {
			return 1
		}
		return 0
	}
}

// appended counts the messages of the conversation id.
func appended(sim *engagesim.Sim, id string) int {
	c, _ := sim.Conversation(fuzzDomain, id)
	return len(c.Messages)
}

// created counts the conversations of the domain.
func created(sim *engagesim.Sim, _ string) int { return len(sim.Conversations(fuzzDomain)) }

var changingNodes = func() []changingNode {
	var out []changingNode
	for _, version := range []string{"1.0", "1.3", "1.4"} {
		out = append(out, changingNode{node: "append-message", version: version, op: engagesim.OpAppend, seed: engagesim.Conversation{Status: "active"},
			input: func(id string) string {
				return `{"conversationId":"` + id + `","channel":"sms","direction":"outbound","messageType":"text","text":"hello","timestamp":"` + wireTimestamp + `"}`
			},
			success: outcomes.OnAppendMessageSuccess, rejected: outcomes.OnAppendMessageFailure, failed: outcomes.Failure,
			outputs: []string{"TransId"}, changes: appended})
	}
	for _, version := range []string{"1.0", "1.2", "1.3"} {
		out = append(out, changingNode{node: "create-conversation", version: version, op: engagesim.OpCreate, creates: true,
			input: func(string) string {
				return `{"channel":"sms","bizAddress":"+15559999","customerAddress":"+15550001","direction":"inbound","messageType":"text","text":"hello","timestamp":"` + wireTimestamp + `"}`
			},
			success: outcomes.OnConversationCreated, rejected: outcomes.OnConversationFailed, failed: outcomes.Failure,
			outputs: []string{"TransId", "conversationId"}, changes: created})
	}
	return append(out,
		changingNode{node: "update-conversation", version: "1.0", op: engagesim.OpUpdate, seed: engagesim.Conversation{Status: "active"},
			input:   func(id string) string { return `{"conversationId":"` + id + `","taskId":"task-1"}` },
			success: outcomes.OnConversationUpdatedSuccess, rejected: outcomes.OnConversationUpdatedFailure, failed: outcomes.Failure,
			outputs: []string{"transID"}, changes: shows(func(c engagesim.Conversation) bool { return c.AliasID == "task-1" })},
		changingNode{node: "add-participant", version: "1.0", op: engagesim.OpAddParticipant, seed: engagesim.Conversation{Status: "active"},
			input:   func(id string) string { return `{"conversationId":"` + id + `","participant":"agent-2"}` },
			success: outcomes.OnAddParticipantSuccess, rejected: outcomes.OnAddParticipantFailure, failed: outcomes.Failure,
			outputs: []string{"TransId"}, changes: shows(func(c engagesim.Conversation) bool { return slices.Contains(c.Participants, "agent-2") })},
		changingNode{node: "remove-participant", version: "1.0", op: engagesim.OpRemoveParticipant, seed: engagesim.Conversation{Status: "active", Participants: []string{"agent-1"}},
			input:   func(id string) string { return `{"conversationId":"` + id + `","participant":"agent-1"}` },
			success: outcomes.OnParticipantRemoved, rejected: outcomes.OnRemoveParticipantFailure, failed: outcomes.OnFailure,
			outputs: []string{"TransId"}, changes: shows(func(c engagesim.Conversation) bool { return len(c.Participants) == 0 })},
		changingNode{node: "close-conversation", version: "1.0", op: engagesim.OpClose, seed: engagesim.Conversation{Status: "active"},
			input:   func(id string) string { return `{"conversationId":"` + id + `"}` },
			success: outcomes.OnConversationClosed, rejected: outcomes.OnCloseConversationFailure, failed: outcomes.OnFailure,
			outputs: []string{"TransId"}, changes: shows(func(c engagesim.Conversation) bool { return c.Status == "closed" })},
		changingNode{node: "reopen-conversation", version: "1.0", op: engagesim.OpUpdate, seed: engagesim.Conversation{Status: "closed"},
			input:   func(id string) string { return `{"conversationId":"` + id + `"}` },
			success: outcomes.ConversationReopened, rejected: outcomes.ConversationReopenFailed, failed: outcomes.OnFailure,
			outputs: []string{"TransId"}, changes: shows(func(c engagesim.Conversation) bool { return c.Status == "queued" })},
	)
}()

// simCredentials hands out tokens of a simulator served on loopback; the first one may be
// revoked, so that Engage answers the first call a real 401. It counts refreshes.
type simCredentials struct {
	sim       *engagesim.Sim
	mu        sync.Mutex
	token     string
	refreshes int
}

func (c *simCredentials) Token(context.Context, tenant.ID, string) (nodes.Credential, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return nodes.Credential{AuthorizationID: "a1", BaseURL: c.sim.BaseURL(), Domain: fuzzDomain,
		AccessToken: secrets.New(c.token), ExpiresAt: time.Now().Add(time.Hour)}, nil
}

func (c *simCredentials) Refresh(ctx context.Context, t tenant.ID, id string, _ secrets.Value) (nodes.Credential, error) {
	c.mu.Lock()
	c.refreshes++
	c.token = c.sim.AccessToken(fuzzDomain)
	c.mu.Unlock()
	return c.Token(ctx, t, id)
}

// changingRun is what one execution of a changing node did.
type changingRun struct {
	res       outcomes.Result
	id        string // the conversation it ran on; for Create, the one it made, if any
	changes   int    // n.changes afterwards
	calls     int    // the calls of n's operation the simulator counted
	refreshes int
}

// runChanging seeds n's conversation in a new simulator on loopback, lets prepare change
// the simulator, the credentials and the conversation ID to run on, runs n under a
// deadline of 10 s and tells what it did.
func runChanging(t *testing.T, n changingNode, prepare func(sim *engagesim.Sim, creds *simCredentials, id *string)) changingRun {
	t.Helper()
	return runChangingWithin(t, n, 10*time.Second, prepare)
}

func runChangingWithin(t *testing.T, n changingNode, deadline time.Duration, prepare func(sim *engagesim.Sim, creds *simCredentials, id *string)) changingRun {
	t.Helper()
	sim := engagesim.Start(t, engagesim.Config{})
	var id string
	if !n.creates {
		seed := n.seed
		seed.Channel, seed.CustomerAddress, seed.BizAddress = "sms", "+15550001", "+15559999"
		id = sim.SeedConversation(fuzzDomain, seed)
	}
	creds := &simCredentials{sim: sim, token: sim.AccessToken(fuzzDomain)}
	if prepare != nil {
		prepare(sim, creds, &id)
	}
	client := engage.New(engage.Options{})
	t.Cleanup(client.CloseIdleConnections)
	exec := nodes.NewExecutor(nodes.ExecutorOptions{Engage: client, Credentials: creds})
	v, err := nodes.NewRegistry().Lookup(n.node, n.version)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), deadline)
	defer cancel()
	res := exec.Execute(ctx, v, nodes.Request{Tenant: "acme", AuthorizationID: "a1", Input: json.RawMessage(n.input(id))})
	if n.creates {
		if convs := sim.Conversations(fuzzDomain); len(convs) > 0 {
			id = convs[0].ID
		}
	}
	creds.mu.Lock()
	defer creds.mu.Unlock()
	return changingRun{res: res, id: id, changes: n.changes(sim, id), calls: sim.Calls(n.op), refreshes: creds.refreshes}
}

// wantNoOutput fails unless the result holds exactly n's output variables, each empty.
func wantNoOutput(t *testing.T, n changingNode, res outcomes.Result) {
	t.Helper()
	if len(res.Output) != len(n.outputs) {
		t.Errorf("output %v, want exactly %v", res.Output, n.outputs)
	}
	for _, name := range n.outputs {
		if v, ok := res.Output[name]; !ok || v != "" {
			t.Errorf("output %v, want %s present and empty", res.Output, name)
		}
	}
}

// A call that may have changed something is never repeated (ENGAGE.md §2): a 502, a 503
// (whole or cut short), a 504 or a reset connection, each only once, ends in the node's failure edge after
// that one call, though a repeat would have succeeded, and nothing was changed.
func TestAChangingNodeIsNeverRepeatedAfterA502A503OrAConnectionFailure(t *testing.T) {
	t.Parallel()
	for _, n := range changingNodes {
		for name, fault := range map[string]engagesim.Fault{
			"502":                {Status: 502, Times: 1},
			"503":                {Status: 503, Times: 1},
			"504":                {Status: 504, Times: 1},
			"503 cut short":      {Status: 503, Malformed: true, Times: 1},
			"connection reset":   {Reset: true, Times: 1},
			"connection reset 2": {Reset: true, Times: 2},
		} {
			t.Run(n.String()+" "+name, func(t *testing.T) {
				t.Parallel()
				r := runChanging(t, n, func(sim *engagesim.Sim, _ *simCredentials, _ *string) {
					fault.Op = n.op
					sim.InjectFault(fault)
				})
				if r.res.Outcome != n.failed || r.res.Error == nil || r.res.Error.Code != outcomes.CodeEngageUnavailable {
					t.Errorf("outcome %s %+v, want %s with %s", r.res.Outcome, r.res.Error, n.failed, outcomes.CodeEngageUnavailable)
				}
				if r.calls != 1 || r.refreshes != 0 {
					t.Errorf("%d calls and %d refreshes, want one call and no refresh", r.calls, r.refreshes)
				}
				if r.changes != 0 {
					t.Errorf("the change was made %d times, want none", r.changes)
				}
				wantNoOutput(t, n, r.res)
			})
		}
	}
}

// A 401 is never a change: the token is refreshed once and the call repeated once, with
// the new token, for every node (ENGAGE.md §2); the change is made once, and the output
// is Engage's answer to the repeat.
func TestAChangingNodeRefreshesOnceAndRepeatsOnceAfterA401(t *testing.T) {
	t.Parallel()
	for _, n := range changingNodes {
		t.Run(n.String(), func(t *testing.T) {
			t.Parallel()
			r := runChanging(t, n, func(sim *engagesim.Sim, creds *simCredentials, _ *string) {
				sim.RevokeAccessToken(creds.token)
			})
			if r.res.Outcome != n.success || r.res.Error != nil || r.res.Output[n.outputs[0]] == "" {
				t.Errorf("outcome %s %+v output %v, want %s with %s", r.res.Outcome, r.res.Error, r.res.Output, n.success, n.outputs[0])
			}
			if n.creates && r.res.Output["conversationId"] != r.id {
				t.Errorf("output %v, want conversationId %q, the conversation made", r.res.Output, r.id)
			}
			if r.calls != 2 || r.refreshes != 1 {
				t.Errorf("%d calls and %d refreshes, want 2 calls and 1 refresh", r.calls, r.refreshes)
			}
			if r.changes != 1 {
				t.Errorf("the change was made %d times, want once", r.changes)
			}
		})
	}
}

// Each kind of Engage answer leads each node to its edge of ENGAGE.md §2's table, with
// the error's stable code, and Engage's status, code and description when Engage
// answered; the output holds the node's output variables, empty on a failure, and
// nothing was changed.
func TestEveryKindOfEngageAnswerLeadsAChangingNodeToItsEdge(t *testing.T) {
	t.Parallel()
	type want struct {
		outcome     func(n changingNode) outcomes.Outcome
		code        string
		status      int
		engageCode  int
		description bool // Engage's description is carried
	}
	rejected := func(n changingNode) outcomes.Outcome { return n.rejected }
	failed := func(n changingNode) outcomes.Outcome { return n.failed }
	authorization := func(changingNode) outcomes.Outcome { return outcomes.OnAuthorizationFailure }
	for name, tc := range map[string]struct {
		fault    *engagesim.Fault
		gone     bool          // the conversation is not Engage's (not for Create, which names none)
		deadline time.Duration // 0: 10 s
		calls    int           // 0: 1
		want     want
	}{
		"unknown conversation, 404": {gone: true, want: want{rejected, outcomes.CodeEngageRejected, 404, engagesim.CodeNotFound, true}},
		"404":                       {fault: &engagesim.Fault{Status: 404}, want: want{rejected, outcomes.CodeEngageRejected, 404, engagesim.CodeNotFound, true}},
		"400":                       {fault: &engagesim.Fault{Status: 400}, want: want{rejected, outcomes.CodeEngageRejected, 400, engagesim.CodeInvalid, true}},
		"409":                       {fault: &engagesim.Fault{Status: 409}, want: want{rejected, outcomes.CodeEngageRejected, 409, engagesim.CodeConflict, true}},
		"429":                       {fault: &engagesim.Fault{Status: 429}, want: want{failed, outcomes.CodeEngageRateLimited, 429, engagesim.CodeRateLimited, true}},
		"500":                       {fault: &engagesim.Fault{Status: 500}, want: want{failed, outcomes.CodeEngageUnavailable, 500, engagesim.CodeServerError, true}},
		"a truncated 200":           {fault: &engagesim.Fault{Malformed: true}, want: want{failed, outcomes.CodeEngageBadResponse, 200, 0, false}},
		"a truncated 404":           {fault: &engagesim.Fault{Status: 404, Malformed: true}, want: want{failed, outcomes.CodeEngageBadResponse, 404, 0, false}},
		"a 403":                     {fault: &engagesim.Fault{Status: 403}, want: want{authorization, outcomes.CodeEngageUnauthorized, 403, engagesim.CodeForbidden, true}},
		"a 401 again after the refresh": {fault: &engagesim.Fault{Status: 401, Times: 2}, calls: 2,
			want: want{authorization, outcomes.CodeEngageUnauthorized, 401, engagesim.CodeUnauthorized, true}},
		"no answer before the deadline": {fault: &engagesim.Fault{Latency: time.Minute}, deadline: 300 * time.Millisecond,
			want: want{func(changingNode) outcomes.Outcome { return outcomes.OnTimeout }, outcomes.CodeTimeout, 0, 0, false}},
	} {
		for _, n := range changingNodes {
			if tc.gone && n.creates {
				continue
			}
			t.Run(n.String()+" "+name, func(t *testing.T) {
				t.Parallel()
				r := runChangingWithin(t, n, cmp.Or(tc.deadline, 10*time.Second), func(sim *engagesim.Sim, _ *simCredentials, id *string) {
					if tc.fault != nil {
						f := *tc.fault
						f.Op = n.op
						sim.InjectFault(f)
					}
					if tc.gone {
						*id = "no-such-conversation"
					}
				})
				w, res := tc.want, r.res
				if res.Outcome != w.outcome(n) {
					t.Fatalf("outcome %s %+v, want %s", res.Outcome, res.Error, w.outcome(n))
				}
				e := res.Error
				if e == nil || e.Code != w.code || e.Message == "" || e.EngageStatus != w.status || e.EngageCode != w.engageCode ||
					(e.EngageDescription != "") != w.description {
					t.Errorf("error %+v, want code %s, a message, Engage's status %d, code %d, a description: %v", e, w.code, w.status, w.engageCode, w.description)
				}
				wantNoOutput(t, n, res)
				if want := cmp.Or(tc.calls, 1); r.calls != want {
					t.Errorf("%d calls, want %d", r.calls, want)
				}
				if r.changes != 0 {
					t.Errorf("the change was made %d times, want none", r.changes)
				}
			})
		}
	}
}

// Create outputs the new conversation's ID (ENGAGE.md §3), so a success without one is
// not one: a 2xx whose value lacks conversationId is a bad answer, the Failure edge with
// engage_bad_response, carrying Engage's status, code and description; the outputs are
// empty, a tid in that answer included, and the call is not repeated.
func TestACreatesSuccessWithoutAConversationIDIsAFailureWithEngagesAnswer(t *testing.T) {
	t.Parallel()
	for _, n := range changingNodes {
		if !n.creates {
			continue
		}
		for _, status := range []int{200, 201} {
			t.Run(fmt.Sprint(n, " ", status), func(t *testing.T) {
				t.Parallel()
				r := runChanging(t, n, func(sim *engagesim.Sim, _ *simCredentials, _ *string) {
					// Engage's success envelope with a tid, and no value: nothing is created.
					sim.InjectFault(engagesim.Fault{Op: n.op, Status: status, Times: 1})
				})
				res := r.res
				want := outcomes.Error{Code: outcomes.CodeEngageBadResponse, EngageStatus: status, EngageCode: engagesim.CodeOK,
					EngageDescription: http.StatusText(status) + " (injected)"}
				if res.Outcome != outcomes.Failure || res.Error == nil || res.Error.Message == "" {
					t.Fatalf("outcome %s %+v, want Failure", res.Outcome, res.Error)
				}
				got := *res.Error
				got.Message = ""
				if got != want {
					t.Errorf("error %+v, want %+v with a message", *res.Error, want)
				}
				wantNoOutput(t, n, res)
				if r.calls != 1 || r.refreshes != 0 {
					t.Errorf("%d calls and %d refreshes, want one call", r.calls, r.refreshes)
				}
			})
		}
	}
}

// Engage's answer to a change carries its tid (ENGAGE.md §4). One that does not is a
// success all the same, for every changing node alike (our decision): the change was
// made, and taking the failure edge would invite a flow to make it again. The
// transaction ID output is empty; Create still outputs the conversation it made.
func TestAChangingNodesSuccessWithoutATidIsASuccessWithAnEmptyTransactionID(t *testing.T) {
	t.Parallel()
	for _, n := range changingNodes {
		t.Run(n.String(), func(t *testing.T) {
			t.Parallel()
			r := runChanging(t, n, func(sim *engagesim.Sim, _ *simCredentials, _ *string) {
				sim.InjectFault(engagesim.Fault{Op: n.op, NoTID: true, Times: 1})
			})
			res := r.res
			if res.Outcome != n.success || res.Error != nil {
				t.Fatalf("outcome %s %+v, want %s", res.Outcome, res.Error, n.success)
			}
			if v, ok := res.Output[n.outputs[0]]; !ok || v != "" || len(res.Output) != len(n.outputs) {
				t.Errorf("output %v, want exactly %v, %s empty", res.Output, n.outputs, n.outputs[0])
			}
			if n.creates && (r.id == "" || res.Output["conversationId"] != r.id) {
				t.Errorf("output %v, want conversationId %q, the conversation made", res.Output, r.id)
			}
			if r.calls != 1 || r.changes != 1 {
				t.Errorf("%d calls, the change made %d times; want one of each", r.calls, r.changes)
			}
		})
	}
}

// Engage's model refuses an append to a closed conversation with a 409 (docs/engage.md):
// Append takes onAppendMessageFailure with Engage's answer, in every version, and the
// conversation keeps its messages as they were.
func TestAnAppendToAClosedConversationIsRefused(t *testing.T) {
	t.Parallel()
	for _, n := range changingNodes {
		if n.node != "append-message" {
			continue
		}
		t.Run(n.String(), func(t *testing.T) {
			t.Parallel()
			r := runChanging(t, n, func(sim *engagesim.Sim, _ *simCredentials, id *string) {
				if err := sim.SetStatus(fuzzDomain, *id, "closed"); err != nil {
					t.Fatal(err)
				}
			})
			e := r.res.Error
			if r.res.Outcome != outcomes.OnAppendMessageFailure || e == nil || e.Code != outcomes.CodeEngageRejected ||
				e.EngageStatus != http.StatusConflict || e.EngageCode != engagesim.CodeConflict || e.EngageDescription != "conversation is closed" {
				t.Fatalf("outcome %s %+v, want onAppendMessageFailure with Engage's 409, code %d and its description", r.res.Outcome, e, engagesim.CodeConflict)
			}
			wantNoOutput(t, n, r.res)
			if r.calls != 1 || r.changes != 0 {
				t.Errorf("%d calls, %d messages appended; want one call and none", r.calls, r.changes)
			}
		})
	}
}
