package nodes_test

import (
	"context"
	"encoding/json"
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

// These tests run the five nodes that change a conversation after its creation (ENGAGE.md
// §3 "Update Conversation, Add/Remove Participant, Close, Re-open") against the
// simulator served on loopback, end to end: which edge each kind of Engage answer leads
// to (§2's table), and how many calls it took (§2: never repeated, but for one refresh
// and one repeat after a 401).

// changingNode is one of those nodes, with a conversation it succeeds on.
type changingNode struct {
	node, op string
	seed     engagesim.Conversation // Status and Participants it needs
	input    func(id string) string
	success  outcomes.Outcome
	rejected outcomes.Outcome // Engage said no
	failed   outcomes.Outcome // Engage failed otherwise
	tidName  string
	changed  func(c engagesim.Conversation) bool // the change was made
}

var changingNodes = []changingNode{
	{node: "update-conversation", op: engagesim.OpUpdate, seed: engagesim.Conversation{Status: "active"},
		input:   func(id string) string { return `{"conversationId":"` + id + `","taskId":"task-1"}` },
		success: outcomes.OnConversationUpdatedSuccess, rejected: outcomes.OnConversationUpdatedFailure, failed: outcomes.Failure,
		tidName: "transID", changed: func(c engagesim.Conversation) bool { return c.AliasID == "task-1" }},
	{node: "add-participant", op: engagesim.OpAddParticipant, seed: engagesim.Conversation{Status: "active"},
		input:   func(id string) string { return `{"conversationId":"` + id + `","participant":"agent-2"}` },
		success: outcomes.OnAddParticipantSuccess, rejected: outcomes.OnAddParticipantFailure, failed: outcomes.Failure,
		tidName: "TransId", changed: func(c engagesim.Conversation) bool { return slices.Contains(c.Participants, "agent-2") }},
	{node: "remove-participant", op: engagesim.OpRemoveParticipant, seed: engagesim.Conversation{Status: "active", Participants: []string{"agent-1"}},
		input:   func(id string) string { return `{"conversationId":"` + id + `","participant":"agent-1"}` },
		success: outcomes.OnParticipantRemoved, rejected: outcomes.OnRemoveParticipantFailure, failed: outcomes.OnFailure,
		tidName: "TransId", changed: func(c engagesim.Conversation) bool { return len(c.Participants) == 0 }},
	{node: "close-conversation", op: engagesim.OpClose, seed: engagesim.Conversation{Status: "active"},
		input:   func(id string) string { return `{"conversationId":"` + id + `"}` },
		success: outcomes.OnConversationClosed, rejected: outcomes.OnCloseConversationFailure, failed: outcomes.OnFailure,
		tidName: "TransId", changed: func(c engagesim.Conversation) bool { return c.Status == "closed" }},
	{node: "reopen-conversation", op: engagesim.OpUpdate, seed: engagesim.Conversation{Status: "closed"},
		input:   func(id string) string { return `{"conversationId":"` + id + `"}` },
		success: outcomes.ConversationReopened, rejected: outcomes.ConversationReopenFailed, failed: outcomes.OnFailure,
		tidName: "TransId", changed: func(c engagesim.Conversation) bool { return c.Status == "queued" }},
}

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

// runChanging seeds n's conversation in a new simulator on loopback, lets prepare change
// the simulator, the credentials and the conversation ID to run on, runs n and returns its result, the conversation
// afterwards, the calls of n's operation the simulator counted, and the refreshes.
func runChanging(t *testing.T, n changingNode, prepare func(sim *engagesim.Sim, creds *simCredentials, id *string)) (outcomes.Result, engagesim.Conversation, int, int) {
	t.Helper()
	sim := engagesim.Start(t, engagesim.Config{})
	seed := n.seed
	seed.Channel, seed.CustomerAddress, seed.BizAddress = "sms", "+15550001", "+15559999"
	id := sim.SeedConversation(fuzzDomain, seed)
	creds := &simCredentials{sim: sim, token: sim.AccessToken(fuzzDomain)}
	if prepare != nil {
		prepare(sim, creds, &id)
	}
	client := engage.New(engage.Options{})
	t.Cleanup(client.CloseIdleConnections)
	exec := nodes.NewExecutor(nodes.ExecutorOptions{Engage: client, Credentials: creds})
	v, err := nodes.NewRegistry().Lookup(n.node, "1.0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	res := exec.Execute(ctx, v, nodes.Request{Tenant: "acme", AuthorizationID: "a1", Input: json.RawMessage(n.input(id))})
	conv, _ := sim.Conversation(fuzzDomain, id)
	creds.mu.Lock()
	defer creds.mu.Unlock()
	return res, conv, sim.Calls(n.op), creds.refreshes
}

// A call that may have changed something is never repeated (ENGAGE.md §2): a 502, a 503
// or a reset connection, each only once, ends in the node's failure edge after that one
// call, though a repeat would have succeeded, and the conversation is as it was.
func TestAChangingNodeIsNeverRepeatedAfterA502A503OrAConnectionFailure(t *testing.T) {
	t.Parallel()
	for _, n := range changingNodes {
		for name, fault := range map[string]engagesim.Fault{
			"502":                {Status: 502, Times: 1},
			"503":                {Status: 503, Times: 1},
			"connection reset":   {Reset: true, Times: 1},
			"connection reset 2": {Reset: true, Times: 2},
		} {
			t.Run(n.node+" "+name, func(t *testing.T) {
				t.Parallel()
				res, conv, calls, refreshes := runChanging(t, n, func(sim *engagesim.Sim, _ *simCredentials, _ *string) {
					fault.Op = n.op
					sim.InjectFault(fault)
				})
				if res.Outcome != n.failed || res.Error == nil || res.Error.Code != outcomes.CodeEngageUnavailable {
					t.Errorf("outcome %s %+v, want %s with %s", res.Outcome, res.Error, n.failed, outcomes.CodeEngageUnavailable)
				}
				if calls != 1 || refreshes != 0 {
					t.Errorf("%d calls and %d refreshes, want one call and no refresh", calls, refreshes)
				}
				if n.changed(conv) {
					t.Errorf("the conversation changed: %+v", conv)
				}
			})
		}
	}
}

// A 401 is never a change: the token is refreshed once and the call repeated once, with
// the new token, for every node (ENGAGE.md §2); the change is made once.
func TestAChangingNodeRefreshesOnceAndRepeatsOnceAfterA401(t *testing.T) {
	t.Parallel()
	for _, n := range changingNodes {
		t.Run(n.node, func(t *testing.T) {
			t.Parallel()
			res, conv, calls, refreshes := runChanging(t, n, func(sim *engagesim.Sim, creds *simCredentials, _ *string) {
				sim.RevokeAccessToken(creds.token)
			})
			if res.Outcome != n.success || res.Output[n.tidName] == "" {
				t.Errorf("outcome %s %+v output %v, want %s with %s", res.Outcome, res.Error, res.Output, n.success, n.tidName)
			}
			if calls != 2 || refreshes != 1 {
				t.Errorf("%d calls and %d refreshes, want 2 calls and 1 refresh", calls, refreshes)
			}
			if !n.changed(conv) {
				t.Errorf("the conversation did not change: %+v", conv)
			}
		})
	}
}

// Each kind of Engage answer leads each node to its edge of ENGAGE.md §2's table, with
// the error's stable code, and Engage's status, code and description when Engage
// answered; the output is the node's one transaction ID variable, empty on a failure.
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
	for name, tc := range map[string]struct {
		fault *engagesim.Fault
		gone  bool // the conversation is not Engage's
		want  want
	}{
		"unknown conversation, 404": {gone: true, want: want{rejected, outcomes.CodeEngageRejected, 404, engagesim.CodeNotFound, true}},
		"400":                       {fault: &engagesim.Fault{Status: 400}, want: want{rejected, outcomes.CodeEngageRejected, 400, engagesim.CodeInvalid, true}},
		"409":                       {fault: &engagesim.Fault{Status: 409}, want: want{rejected, outcomes.CodeEngageRejected, 409, engagesim.CodeConflict, true}},
		"429":                       {fault: &engagesim.Fault{Status: 429}, want: want{failed, outcomes.CodeEngageRateLimited, 429, engagesim.CodeRateLimited, true}},
		"500":                       {fault: &engagesim.Fault{Status: 500}, want: want{failed, outcomes.CodeEngageUnavailable, 500, engagesim.CodeServerError, true}},
		"a truncated 200":           {fault: &engagesim.Fault{Malformed: true}, want: want{failed, outcomes.CodeEngageBadResponse, 200, 0, false}},
		"a truncated 404":           {fault: &engagesim.Fault{Status: 404, Malformed: true}, want: want{failed, outcomes.CodeEngageBadResponse, 404, 0, false}},
		"a 403":                     {fault: &engagesim.Fault{Status: 403}, want: want{func(changingNode) outcomes.Outcome { return outcomes.OnAuthorizationFailure }, outcomes.CodeEngageUnauthorized, 403, engagesim.CodeForbidden, true}},
	} {
		for _, n := range changingNodes {
			t.Run(n.node+" "+name, func(t *testing.T) {
				t.Parallel()
				res, _, calls, _ := runChanging(t, n, func(sim *engagesim.Sim, _ *simCredentials, id *string) {
					if tc.fault != nil {
						f := *tc.fault
						f.Op = n.op
						sim.InjectFault(f)
					}
					if tc.gone {
						*id = "no-such-conversation"
					}
				})
				w := tc.want
				if res.Outcome != w.outcome(n) {
					t.Fatalf("outcome %s %+v, want %s", res.Outcome, res.Error, w.outcome(n))
				}
				e := res.Error
				if e == nil || e.Code != w.code || e.Message == "" || e.EngageStatus != w.status || e.EngageCode != w.engageCode ||
					(e.EngageDescription != "") != w.description {
					t.Errorf("error %+v, want code %s, a message, Engage's status %d, code %d, a description: %v", e, w.code, w.status, w.engageCode, w.description)
				}
				if len(res.Output) != 1 || res.Output[n.tidName] != "" {
					t.Errorf("output %v, want only %s, empty", res.Output, n.tidName)
				}
				if calls != 1 {
					t.Errorf("%d calls, want 1", calls)
				}
			})
		}
	}
}
