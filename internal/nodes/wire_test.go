package nodes_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
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

// These tests look at what reaches Engage's wire (ENGAGE.md §3, §4): the JSON bodies the
// simulator received, decoded and compared value by value, and how many calls and token
// refreshes an execution made (§2's retry rules).

const wireTimestamp = "2026-03-01T12:00:00Z"

// countingCredentials hands out one token of the simulator and counts refreshes. Its
// token may start revoked (so the first call that reaches the token check gets a real
// 401), and onRefresh may choose the next token and change the simulator (inject a
// fault) at the moment of the refresh.
type countingCredentials struct {
	sim       *engagesim.Sim
	mu        sync.Mutex
	token     string
	refreshes int
	rejected  []string
	onRefresh func() string
}

func (c *countingCredentials) credential() nodes.Credential {
	return nodes.Credential{AuthorizationID: "a1", BaseURL: "http://engage.test/api/v1", Domain: fuzzDomain,
		AccessToken: secrets.New(c.token), ExpiresAt: time.Now().Add(time.Hour)}
}

func (c *countingCredentials) Token(context.Context, tenant.ID, string) (nodes.Credential, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.credential(), nil
}

func (c *countingCredentials) Refresh(_ context.Context, _ tenant.ID, _ string, rejected secrets.Value) (nodes.Credential, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refreshes++
	c.rejected = append(c.rejected, rejected.Reveal())
	if c.onRefresh != nil {
		c.token = c.onRefresh()
	} else {
		c.token = c.sim.AccessToken(fuzzDomain)
	}
	return c.credential(), nil
}

func (c *countingCredentials) counts() (int, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refreshes, c.rejected
}

// bearerRecorder notes the bearer token of every call before engageInMemory serves it.
type bearerRecorder struct {
	next   http.RoundTripper
	mu     sync.Mutex
	tokens []string
}

func (b *bearerRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	b.mu.Lock()
	b.tokens = append(b.tokens, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
	b.mu.Unlock()
	return b.next.RoundTrip(r)
}

// wireHarness is one simulator, served in memory, and an executor calling it.
type wireHarness struct {
	sim     *engagesim.Sim
	engage  *engageInMemory
	bearers *bearerRecorder
	creds   *countingCredentials
	exec    *nodes.Executor
}

func newWireHarness(t *testing.T) *wireHarness {
	t.Helper()
	sim := engagesim.New(engagesim.Config{})
	t.Cleanup(sim.Close)
	mem := &engageInMemory{sim: sim}
	bearers := &bearerRecorder{next: mem}
	creds := &countingCredentials{sim: sim, token: sim.AccessToken(fuzzDomain)}
	return &wireHarness{sim: sim, engage: mem, bearers: bearers, creds: creds, exec: nodes.NewExecutor(nodes.ExecutorOptions{
		Engage:      engage.New(engage.Options{Transport: bearers}),
		Credentials: creds,
	})}
}

// run executes one node version and returns its result and the Engage calls it made.
func (h *wireHarness) run(t *testing.T, node, version, input string) (outcomes.Result, []engageCall) {
	t.Helper()
	v, err := nodes.NewRegistry().Lookup(node, version)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	res := h.exec.Execute(ctx, v, nodes.Request{Tenant: "acme", AuthorizationID: "a1", Input: json.RawMessage(input)})
	return res, h.engage.take()
}

func (h *wireHarness) seed(channel, customer, biz, status string) string {
	return h.sim.SeedConversation(fuzzDomain, engagesim.Conversation{Channel: channel, CustomerAddress: customer, BizAddress: biz, Status: status})
}

// decodeJSON decodes a JSON object; comparing two decoded values compares values, not
// spellings (key order, spacing, escapes).
func decodeJSON(t *testing.T, what string, raw []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s is not a JSON object: %v\n%s", what, err, raw)
	}
	return m
}

// sameBody fails unless the body Engage received holds exactly the keys and values of
// want, a JSON object.
func sameBody(t *testing.T, body []byte, want string) {
	t.Helper()
	got, w := decodeJSON(t, "the body Engage received", body), decodeJSON(t, "want", []byte(want))
	if reflect.DeepEqual(got, w) {
		return
	}
	for k, wv := range w {
		if gv, ok := got[k]; !ok {
			t.Errorf("key %q missing; want %v", k, wv)
		} else if !reflect.DeepEqual(gv, wv) {
			t.Errorf("key %q: %#v, want %#v", k, gv, wv)
		}
	}
	for k, gv := range got {
		if _, ok := w[k]; !ok {
			t.Errorf("unexpected key %q: %#v", k, gv)
		}
	}
	t.Errorf("body %s", body)
}

// oneCall fails unless exactly one call was made, to method and path.
func oneCall(t *testing.T, calls []engageCall, method, path string) engageCall {
	t.Helper()
	if len(calls) != 1 {
		t.Fatalf("%d Engage calls, want 1", len(calls))
	}
	c := calls[0]
	if c.method != method || c.path != path {
		t.Fatalf("called %s %s, want %s %s", c.method, c.path, method, path)
	}
	return c
}

const (
	searchPath = "/api/v1/" + fuzzDomain + "/conversations/search"
	createPath = "/api/v1/" + fuzzDomain + "/conversations"
)

func appendPath(id string) string {
	return "/api/v1/" + fuzzDomain + "/conversations/" + id + "/messages"
}

func closePath(id string) string { return "/api/v1/" + fuzzDomain + "/conversations/" + id + "/close" }

func TestSearchSendsItsOptionalEmailAndLiveChatInputsUnderTheDocumentedKeys(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, input, want string
	}{
		{"email with every optional input",
			`{"channel":"email","bizAddress":"support@acme.test","customerAddress":"jo@example.test","subject":"Re: \"Order\" 42",
			  "toRecipients":["support@acme.test","sales@acme.test"],"ccRecipients":["boss@example.test"],"inReplyTo":"<m-1@example.test>"}`,
			`{"channel":"email","bizaddress":"support@acme.test","customeraddress":"jo@example.test","subject":"Re: \"Order\" 42",
			  "toRecipients":["support@acme.test","sales@acme.test"],"ccRecipients":["boss@example.test"],"inReplyTo":"<m-1@example.test>"}`},
		{"email recipients as comma-separated strings",
			`{"channel":"email","bizAddress":"support@acme.test","customerAddress":"jo@example.test","subject":"Order 42",
			  "toRecipients":"support@acme.test, sales@acme.test","ccRecipients":"boss@example.test,,","inReplyTo":"<m-1@example.test>"}`,
			`{"channel":"email","bizaddress":"support@acme.test","customeraddress":"jo@example.test","subject":"Order 42",
			  "toRecipients":["support@acme.test","sales@acme.test"],"ccRecipients":["boss@example.test"],"inReplyTo":"<m-1@example.test>"}`},
		{"email without the optional inputs",
			`{"channel":"email","bizAddress":"support@acme.test","customerAddress":"jo@example.test","subject":"Order 42"}`,
			`{"channel":"email","bizaddress":"support@acme.test","customeraddress":"jo@example.test","subject":"Order 42"}`},
		{"livechat with the browser fingerprint",
			`{"channel":"livechat","bizAddress":"app-1","customerAddress":"user-1","threadId":"th-9","browserFingerprint":"fp-abc"}`,
			`{"channel":"livechat","bizaddress":"app-1","customeraddress":"user-1","threadid":"th-9","browserfingerprint":"fp-abc"}`},
		{"livechat without the browser fingerprint",
			`{"channel":"livechat","bizAddress":"app-1","customerAddress":"user-1","threadId":"th-9"}`,
			`{"channel":"livechat","bizaddress":"app-1","customeraddress":"user-1","threadid":"th-9"}`},
	}
	for _, version := range []string{"1.0", "1.1", "1.3"} {
		for _, tc := range cases {
			t.Run(version+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				h := newWireHarness(t)
				res, calls := h.run(t, "search-conversation", version, tc.input)
				if res.Outcome != outcomes.NoConversationFound {
					t.Fatalf("outcome %s %+v, want %s", res.Outcome, res.Error, outcomes.NoConversationFound)
				}
				c := oneCall(t, calls, http.MethodPost, searchPath)
				sameBody(t, c.body, tc.want)
			})
		}
	}
}

// emailInput and emailWire are one email message with every field, as input and as
// Engage's message object.
const (
	emailInput = `"direction":"inbound","messageType":"email","timestamp":"` + wireTimestamp + `",
		"fromAddress":"jo@example.test","toRecipients":["support@acme.test","sales@acme.test"],"ccRecipients":"boss@example.test",
		"subject":"Re: \"Order\" 42","emailHeaders":{"Message-ID":"<m-2@example.test>","X-Priority":"1"},
		"plainBody":"Hello,\n\"where\" is it?\\","htmlBody":"<p>Hello, <b>where</b> is it?</p>","strippedHtml":"<p>Hello</p>",
		"messageAliasId":"my-msg-7"`
	emailWire = `"direction":"inbound","messagetype":"email","timestamp":"` + wireTimestamp + `",
		"frmAddress":"jo@example.test","toRecipients":["support@acme.test","sales@acme.test"],"ccRecipients":["boss@example.test"],
		"subject":"Re: \"Order\" 42","emailHeaders":{"Message-ID":"<m-2@example.test>","X-Priority":"1"},
		"plainBody":"Hello,\n\"where\" is it?\\","htmlBody":"<p>Hello, <b>where</b> is it?</p>","strippedHtml":"<p>Hello</p>",
		"aliasId":"my-msg-7"`
)

func TestAppendAndCreateSendTheAliasIDAndEveryEmailFieldInEngagesMessageObject(t *testing.T) {
	t.Parallel()
	messages := []struct {
		name, channel, input, wire string
	}{
		{"email with every field", "email", emailInput, emailWire},
		{"email headers given as a string holding JSON", "email",
			strings.Replace(emailInput, `"emailHeaders":{"Message-ID":"<m-2@example.test>","X-Priority":"1"}`,
				`"emailHeaders":"{\"Message-ID\":\"<m-2@example.test>\",\"X-Priority\":\"1\"}"`, 1),
			emailWire},
		{"sms text with a message alias ID", "sms",
			`"direction":"outbound","messageType":"text","text":"On its way","timestamp":"` + wireTimestamp + `","messageAliasId":"my-msg-8"`,
			`"direction":"outbound","messagetype":"text","text":"On its way","timestamp":"` + wireTimestamp + `","aliasId":"my-msg-8"`},
		{"sms text without a message alias ID", "sms",
			`"direction":"outbound","messageType":"text","text":"On its way","timestamp":"` + wireTimestamp + `"`,
			`"direction":"outbound","messagetype":"text","text":"On its way","timestamp":"` + wireTimestamp + `"`},
	}
	customer := map[string]string{"email": "jo@example.test", "sms": "+15550001"}
	biz := map[string]string{"email": "support@acme.test", "sms": "+15559999"}
	for _, m := range messages {
		for _, version := range []string{"1.0", "1.3", "1.4"} {
			t.Run("append "+version+"/"+m.name, func(t *testing.T) {
				t.Parallel()
				h := newWireHarness(t)
				id := h.seed(m.channel, customer[m.channel], biz[m.channel], "active")
				res, calls := h.run(t, "append-message", version,
					`{"conversationId":"`+id+`","channel":"`+m.channel+`",`+m.input+`}`)
				if res.Outcome != outcomes.OnAppendMessageSuccess {
					t.Fatalf("outcome %s %+v, want %s", res.Outcome, res.Error, outcomes.OnAppendMessageSuccess)
				}
				c := oneCall(t, calls, http.MethodPost, appendPath(id))
				sameBody(t, c.body, `{"channel":"`+m.channel+`",`+m.wire+`}`)
			})
		}
		for _, version := range []string{"1.0", "1.2", "1.3"} {
			t.Run("create "+version+"/"+m.name, func(t *testing.T) {
				t.Parallel()
				h := newWireHarness(t)
				res, calls := h.run(t, "create-conversation", version,
					`{"channel":"`+m.channel+`","bizAddress":"`+biz[m.channel]+`","customerAddress":"`+customer[m.channel]+`",`+m.input+`}`)
				if res.Outcome != outcomes.OnConversationCreated {
					t.Fatalf("outcome %s %+v, want %s", res.Outcome, res.Error, outcomes.OnConversationCreated)
				}
				c := oneCall(t, calls, http.MethodPost, createPath)
				// Without a customerName the customer address is sent as the name.
				sameBody(t, c.body, `{"channel":"`+m.channel+`","bizaddress":"`+biz[m.channel]+`","customeraddress":"`+customer[m.channel]+`",
					"customername":"`+customer[m.channel]+`","messages":[{"channel":"`+m.channel+`",`+m.wire+`}]}`)
			})
		}
	}
}

func TestChannelAliasesAndDisplayNamesAreAcceptedInAnyCaseAndSentAsTheWireValue(t *testing.T) {
	t.Parallel()
	// The message of each wire channel, as input and as Engage gets it (besides channel).
	msgIn := map[string]string{
		"sms":      `"direction":"inbound","messageType":"text","text":"hi","timestamp":"` + wireTimestamp + `"`,
		"facebook": `"direction":"inbound","messageType":"text","text":"hi","timestamp":"` + wireTimestamp + `"`,
		"whatsapp": `"direction":"inbound","messageType":"text","text":"hi","timestamp":"` + wireTimestamp + `"`,
		"livechat": `"direction":"inbound","messageType":"text","text":"hi","timestamp":"` + wireTimestamp + `"`,
		"api":      `"direction":"inbound","messageType":"text","text":"hi","timestamp":"` + wireTimestamp + `"`,
		"amb": `"direction":"inbound","messageType":"text-with-attachments","text":"see","timestamp":"` + wireTimestamp + `",
			"attachments":[{"mimeType":"image/png","fileName":"a.png","fileUrl":"https://files.example.test/a.png"}]`,
	}
	// Engage's message object spells it messagetype; the rest is as given.
	msgWire := map[string]string{}
	for ch, in := range msgIn {
		msgWire[ch] = strings.Replace(in, `"messageType"`, `"messagetype"`, 1)
	}
	cases := []struct {
		node     string
		versions []string
		spelling string // the channel as the input gives it
		wire     string
	}{
		{"search-conversation", []string{"1.3"}, "abc", "amb"},
		{"search-conversation", []string{"1.3"}, "ABC", "amb"},
		{"search-conversation", []string{"1.3"}, "Apple Messages for Business", "amb"},
		{"search-conversation", []string{"1.0", "1.1", "1.3"}, "Live Chat", "livechat"},
		{"search-conversation", []string{"1.0", "1.1", "1.3"}, "sms", "sms"},
		{"search-conversation", []string{"1.0", "1.1", "1.3"}, "WhatsApp", "whatsapp"},
		{"append-message", []string{"1.4"}, "abc", "amb"},
		{"append-message", []string{"1.4"}, "Abc", "amb"},
		{"append-message", []string{"1.4"}, "Apple Messages for Business", "amb"},
		{"append-message", []string{"1.4"}, "apple messages FOR business", "amb"},
		{"append-message", []string{"1.0", "1.3", "1.4"}, "Live Chat", "livechat"},
		{"append-message", []string{"1.0", "1.3", "1.4"}, "live chat", "livechat"},
		{"append-message", []string{"1.0", "1.3", "1.4"}, "SMS", "sms"},
		{"append-message", []string{"1.0", "1.3", "1.4"}, "Sms", "sms"},
		{"append-message", []string{"1.0", "1.3", "1.4"}, "WhatsApp", "whatsapp"},
		{"append-message", []string{"1.0", "1.3", "1.4"}, "WHATSAPP", "whatsapp"},
		{"append-message", []string{"1.0", "1.3", "1.4"}, "Facebook Messenger", "facebook"},
		{"append-message", []string{"1.0", "1.3", "1.4"}, "API", "api"},
		// Create has no amb channel in any version: it follows Append 1.3 at most
		// (ENGAGE.md §3), so the Apple Messages spellings are Append's and Search's only.
		{"create-conversation", []string{"1.0", "1.2", "1.3"}, "Live Chat", "livechat"},
		{"create-conversation", []string{"1.0", "1.2", "1.3"}, "LIVE CHAT", "livechat"},
		{"create-conversation", []string{"1.0", "1.2", "1.3"}, "SMS", "sms"},
		{"create-conversation", []string{"1.0", "1.2", "1.3"}, "sMs", "sms"},
		{"create-conversation", []string{"1.0", "1.2", "1.3"}, "WhatsApp", "whatsapp"},
		{"create-conversation", []string{"1.0", "1.2", "1.3"}, "whatsApp", "whatsapp"},
		{"create-conversation", []string{"1.0", "1.2", "1.3"}, "facebook messenger", "facebook"},
		{"create-conversation", []string{"1.0", "1.2", "1.3"}, "Api", "api"},
	}
	// amb exists on Search from 1.3 and on Append from 1.4 only, and on Create not at all
	// (its message types follow Append 1.3 at most): there every spelling of it is
	// onInvalidData, and Engage is not called.
	refused := []struct {
		node, version, input string
	}{
		{"search-conversation", "1.0", `{"channel":"abc","bizAddress":"b","customerAddress":"c"}`},
		{"search-conversation", "1.1", `{"channel":"Apple Messages for Business","bizAddress":"b","customerAddress":"c"}`},
		{"append-message", "1.3", `{"conversationId":"c1","channel":"abc",` + msgIn["amb"] + `}`},
		{"create-conversation", "1.3", `{"channel":"abc","bizAddress":"b","customerAddress":"c",` + msgIn["amb"] + `}`},
		{"create-conversation", "1.2", `{"channel":"Apple Messages for Business","bizAddress":"b","customerAddress":"c",` + msgIn["amb"] + `}`},
	}
	for _, tc := range refused {
		t.Run(tc.node+" "+tc.version+"/refuses amb", func(t *testing.T) {
			t.Parallel()
			h := newWireHarness(t)
			res, calls := h.run(t, tc.node, tc.version, tc.input)
			if res.Outcome != outcomes.OnInvalidData || len(calls) != 0 {
				t.Fatalf("outcome %s %+v after %d Engage calls, want %s without a call", res.Outcome, res.Error, len(calls), outcomes.OnInvalidData)
			}
		})
	}
	for _, tc := range cases {
		for _, version := range tc.versions {
			t.Run(tc.node+" "+version+"/"+tc.spelling, func(t *testing.T) {
				t.Parallel()
				h := newWireHarness(t)
				customer, biz := "cust-"+tc.wire, "biz-"+tc.wire
				ch := `"channel":"` + tc.spelling + `"`
				switch tc.node {
				case "search-conversation":
					h.seed(tc.wire, customer, biz, "active")
					in, want := `{`+ch+`,"bizAddress":"`+biz+`","customerAddress":"`+customer+`"`, `{"channel":"`+tc.wire+`","bizaddress":"`+biz+`","customeraddress":"`+customer+`"`
					if tc.wire == "livechat" {
						h.sim.SeedConversation(fuzzDomain, engagesim.Conversation{Channel: tc.wire, CustomerAddress: customer, BizAddress: biz, ThreadID: "th-1", Status: "active"})
						in, want = in+`,"threadId":"th-1"`, want+`,"threadid":"th-1"`
					}
					res, calls := h.run(t, tc.node, version, in+`}`)
					if res.Outcome != outcomes.ConversationActive {
						t.Fatalf("outcome %s %+v, want %s", res.Outcome, res.Error, outcomes.ConversationActive)
					}
					sameBody(t, oneCall(t, calls, http.MethodPost, searchPath).body, want+`}`)
				case "append-message":
					id := h.seed(tc.wire, customer, biz, "active")
					res, calls := h.run(t, tc.node, version, `{"conversationId":"`+id+`",`+ch+`,`+msgIn[tc.wire]+`}`)
					if res.Outcome != outcomes.OnAppendMessageSuccess {
						t.Fatalf("outcome %s %+v, want %s", res.Outcome, res.Error, outcomes.OnAppendMessageSuccess)
					}
					sameBody(t, oneCall(t, calls, http.MethodPost, appendPath(id)).body, `{"channel":"`+tc.wire+`",`+msgWire[tc.wire]+`}`)
				case "create-conversation":
					in := `{` + ch + `,"bizAddress":"` + biz + `","customerAddress":"` + customer + `","customerName":"Jo",` + msgIn[tc.wire] + `}`
					want := `{"channel":"` + tc.wire + `","bizaddress":"` + biz + `","customeraddress":"` + customer + `","customername":"Jo",
						"messages":[{"channel":"` + tc.wire + `",` + msgWire[tc.wire] + `}]}`
					if tc.wire == "livechat" {
						in = `{` + ch + `,"threadId":"th-1","livechatUserId":"` + customer + `","livechatAppId":"` + biz + `",
							"livechatWebsiteDomain":"shop.example.test","customerName":"Jo",` + msgIn[tc.wire] + `}`
						want = `{"channel":"livechat","threadid":"th-1","livechatuserid":"` + customer + `","livechatappid":"` + biz + `",
							"livechatwebsitedomain":"shop.example.test","customername":"Jo","messages":[{"channel":"livechat",` + msgWire[tc.wire] + `}]}`
					}
					res, calls := h.run(t, tc.node, version, in)
					if res.Outcome != outcomes.OnConversationCreated {
						t.Fatalf("outcome %s %+v, want %s", res.Outcome, res.Error, outcomes.OnConversationCreated)
					}
					sameBody(t, oneCall(t, calls, http.MethodPost, createPath).body, want)
				}
			})
		}
	}
}

// statuses lists the HTTP status of each call.
func statuses(calls []engageCall) []int {
	out := make([]int, len(calls))
	for i, c := range calls {
		out[i] = c.status
	}
	return out
}

// brief shows a list in a failure message, its start only when a runaway loop made it long.
func brief[T any](list []T) string {
	if len(list) <= 8 {
		return fmt.Sprint(list)
	}
	return fmt.Sprintf("%v... (%d in all)", list[:8], len(list))
}

const smsSearch = `{"channel":"sms","bizAddress":"+15559999","customerAddress":"+15550001"}`

// Search may be repeated once after a 502, 503 or 504 and never more; a node that may
// have changed something in Engage is never repeated (ENGAGE.md §2). The 502 and 503
// cases mirror internal/httpapi's testEngageFailures; the 504 ones are this file's.
func TestSearchRetriesOnceAfterA5xxGatewayErrorAndAMutatingNodeNever(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name          string
		node, version string
		input         func(id string) string
		op            string
		fault         engagesim.Fault
		want          outcomes.Outcome
		wantCode      string
		wantStatuses  []int
		wantPath      func(id string) string
	}{
		{name: "search: 502 once is retried", node: "search-conversation", version: "1.3", op: engagesim.OpSearch,
			fault: engagesim.Fault{Status: 502, Times: 1}, want: outcomes.ConversationActive, wantStatuses: []int{502, 200}},
		{name: "search: 503 once is retried", node: "search-conversation", version: "1.3", op: engagesim.OpSearch,
			fault: engagesim.Fault{Status: 503, Times: 1}, want: outcomes.ConversationActive, wantStatuses: []int{503, 200}},
		{name: "search: 504 once is retried", node: "search-conversation", version: "1.3", op: engagesim.OpSearch,
			fault: engagesim.Fault{Status: 504, Times: 1}, want: outcomes.ConversationActive, wantStatuses: []int{504, 200}},
		{name: "search 1.0: 504 once is retried", node: "search-conversation", version: "1.0", op: engagesim.OpSearch,
			fault: engagesim.Fault{Status: 504, Times: 1}, want: outcomes.ConversationActive, wantStatuses: []int{504, 200}},
		{name: "search: 502 twice is retried once", node: "search-conversation", version: "1.3", op: engagesim.OpSearch,
			fault: engagesim.Fault{Status: 502, Times: 2}, want: outcomes.OnError, wantCode: outcomes.CodeEngageUnavailable, wantStatuses: []int{502, 502}},
		{name: "search: 504 always is retried once", node: "search-conversation", version: "1.3", op: engagesim.OpSearch,
			fault: engagesim.Fault{Status: 504}, want: outcomes.OnError, wantCode: outcomes.CodeEngageUnavailable, wantStatuses: []int{504, 504}},
		{name: "search: 500 is not retried", node: "search-conversation", version: "1.3", op: engagesim.OpSearch,
			fault: engagesim.Fault{Status: 500, Times: 1}, want: outcomes.OnError, wantCode: outcomes.CodeEngageUnavailable, wantStatuses: []int{500}},
		{name: "close: 504 is not retried", node: "close-conversation", version: "1.0", op: engagesim.OpClose,
			input: func(id string) string { return `{"conversationId":"` + id + `"}` }, wantPath: closePath,
			fault: engagesim.Fault{Status: 504, Times: 1}, want: outcomes.OnFailure, wantCode: outcomes.CodeEngageUnavailable, wantStatuses: []int{504}},
		{name: "append: 504 is not retried", node: "append-message", version: "1.4", op: engagesim.OpAppend,
			input: func(id string) string {
				return `{"conversationId":"` + id + `","channel":"sms","direction":"outbound","messageType":"text","text":"hi","timestamp":"` + wireTimestamp + `"}`
			}, wantPath: appendPath,
			fault: engagesim.Fault{Status: 504, Times: 1}, want: outcomes.Failure, wantCode: outcomes.CodeEngageUnavailable, wantStatuses: []int{504}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newWireHarness(t)
			id := h.seed("sms", "+15550001", "+15559999", "active")
			input, path := smsSearch, searchPath
			if tc.input != nil {
				input, path = tc.input(id), tc.wantPath(id)
			}
			tc.fault.Op = tc.op
			h.sim.InjectFault(tc.fault)
			res, calls := h.run(t, tc.node, tc.version, input)
			if res.Outcome != tc.want {
				t.Fatalf("outcome %s %+v, want %s", res.Outcome, res.Error, tc.want)
			}
			checkCalls(t, h, res, calls, tc.op, path, tc.wantCode, tc.wantStatuses)
			if n, _ := h.creds.counts(); n != 0 {
				t.Fatalf("%d refreshes, want none", n)
			}
		})
	}
}

// A search's one retry and a 401's one refresh-and-repeat are separate allowances
// (execute.go keeps a flag for each; ENGAGE.md §2 grants both): together they allow at
// most three calls and one refresh, in either order, and never a second retry or a
// second refresh. The repeat after a refresh carries the new token. A node that may
// change something gets its refresh-and-repeat but still no retry.
func TestARetryAndARefreshTogetherMakeAtMostThreeCallsAndOneRefresh(t *testing.T) {
	t.Parallel()
	type refresh int
	const (
		validToken   refresh = iota // the refresh hands out a valid token
		revokedToken                // the refresh hands out a token Engage rejects too
	)
	cases := []struct {
		name         string
		node, op     string
		before       *engagesim.Fault // injected before the execution
		atRefresh    *engagesim.Fault // injected when the token is refreshed
		next         refresh
		want         outcomes.Outcome
		wantCode     string
		wantStatuses []int
	}{
		{name: "502, retry gets 401, refresh, repeat succeeds", node: "search-conversation", op: engagesim.OpSearch,
			before: &engagesim.Fault{Status: 502, Times: 1},
			want:   outcomes.ConversationActive, wantStatuses: []int{502, 401, 200}},
		{name: "401, refresh, repeat gets 502, retry succeeds", node: "search-conversation", op: engagesim.OpSearch,
			atRefresh: &engagesim.Fault{Status: 502, Times: 1},
			want:      outcomes.ConversationActive, wantStatuses: []int{401, 502, 200}},
		{name: "502, retry gets 401, refresh, repeat gets 502: no second retry", node: "search-conversation", op: engagesim.OpSearch,
			before: &engagesim.Fault{Status: 502, Times: 1}, atRefresh: &engagesim.Fault{Status: 502},
			want: outcomes.OnError, wantCode: outcomes.CodeEngageUnavailable, wantStatuses: []int{502, 401, 502}},
		{name: "401, refresh, repeat gets 504, retry gets 504: no more", node: "search-conversation", op: engagesim.OpSearch,
			atRefresh: &engagesim.Fault{Status: 504},
			want:      outcomes.OnError, wantCode: outcomes.CodeEngageUnavailable, wantStatuses: []int{401, 504, 504}},
		{name: "502, retry gets 401, refresh, repeat gets 401: no second refresh", node: "search-conversation", op: engagesim.OpSearch,
			before: &engagesim.Fault{Status: 502, Times: 1}, next: revokedToken,
			want: outcomes.OnAuthorizationFailure, wantCode: outcomes.CodeEngageUnauthorized, wantStatuses: []int{502, 401, 401}},
		{name: "401, refresh, repeat gets 503, retry gets 401: no second refresh", node: "search-conversation", op: engagesim.OpSearch,
			atRefresh: &engagesim.Fault{Status: 503, Times: 1}, next: revokedToken,
			want: outcomes.OnAuthorizationFailure, wantCode: outcomes.CodeEngageUnauthorized, wantStatuses: []int{401, 503, 401}},
		{name: "close: 401, refresh, repeat gets 504: no retry", node: "close-conversation", op: engagesim.OpClose,
			atRefresh: &engagesim.Fault{Status: 504},
			want:      outcomes.OnFailure, wantCode: outcomes.CodeEngageUnavailable, wantStatuses: []int{401, 504}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newWireHarness(t)
			id := h.seed("sms", "+15550001", "+15559999", "active")
			// The first token is revoked: the first call that reaches Engage's token check
			// is a real 401. Faults answer before that check.
			first := h.creds.token
			h.sim.RevokeAccessToken(first)
			var handedOut []string
			h.creds.onRefresh = func() string {
				if tc.atRefresh != nil {
					f := *tc.atRefresh
					f.Op = tc.op
					h.sim.InjectFault(f)
				}
				tok := h.sim.AccessToken(fuzzDomain)
				if tc.next == revokedToken {
					h.sim.RevokeAccessToken(tok)
				}
				handedOut = append(handedOut, tok)
				return tok
			}
			if tc.before != nil {
				f := *tc.before
				f.Op = tc.op
				h.sim.InjectFault(f)
			}
			input, path := smsSearch, searchPath
			if tc.node == "close-conversation" {
				input, path = `{"conversationId":"`+id+`"}`, closePath(id)
			}
			res, calls := h.run(t, tc.node, "1.0", input)

			if res.Outcome != tc.want {
				t.Errorf("outcome %s %+v, want %s", res.Outcome, res.Error, tc.want)
			}
			checkCalls(t, h, res, calls, tc.op, path, tc.wantCode, tc.wantStatuses)
			n, rejected := h.creds.counts()
			if n != 1 || !reflect.DeepEqual(rejected, []string{first}) {
				t.Fatalf("%d refreshes of rejected tokens %s, want one, of the first token", n, brief(rejected))
			}
			// Every call up to the 401 carries the first token, every later one the
			// refreshed token.
			h.bearers.mu.Lock()
			tokens := append([]string(nil), h.bearers.tokens...)
			h.bearers.mu.Unlock()
			var want []string
			seen401 := false
			for _, s := range tc.wantStatuses {
				if seen401 {
					want = append(want, handedOut[0])
				} else {
					want = append(want, first)
				}
				seen401 = seen401 || s == http.StatusUnauthorized
			}
			if !reflect.DeepEqual(tokens, want) {
				t.Errorf("bearer tokens %s, want %v", brief(tokens), want)
			}
		})
	}
}

// "." and ".." as a conversation or participant ID would climb out of the conversation's
// path in Engage's URL, and so would a slash where a proxy decodes %2F: they are
// onInvalidData, and Engage is not called.
func TestDotSegmentsAreInvalidIDs(t *testing.T) {
	t.Parallel()
	h := newWireHarness(t)
	for _, c := range []struct{ node, input string }{
		{"close-conversation", `{"conversationId":".."}`},
		{"reopen-conversation", `{"conversationId":" . "}`},
		{"update-conversation", `{"conversationId":"..","taskId":"t1"}`},
		{"append-message", `{"conversationId":"..","channel":"sms","direction":"inbound","messageType":"text","text":"hi","timestamp":"` + wireTimestamp + `"}`},
		{"add-participant", `{"conversationId":"c1","participant":".."}`},
		{"remove-participant", `{"conversationId":"c1","participant":"."}`},
		{"close-conversation", `{"conversationId":"../../other/conversations/c2"}`},
		{"reopen-conversation", `{"conversationId":"c1\\..\\c2"}`},
		{"remove-participant", `{"conversationId":"c1","participant":"agent/7"}`},
	} {
		res, calls := h.run(t, c.node, "1.0", c.input)
		if res.Outcome != outcomes.OnInvalidData || res.Error == nil || !strings.Contains(res.Error.Message, "is not an ID") {
			t.Errorf("%s %s: %s %+v, want onInvalidData naming the ID", c.node, c.input, res.Outcome, res.Error)
		}
		if len(calls) != 0 {
			t.Errorf("%s: %d Engage calls, want none", c.node, len(calls))
		}
	}
}

// Only the IDs Engage's URL path carries are refused for dots and slashes: an address or
// a task ID travels in the body, and is sent as given.
func TestSlashesAndDotsOutsideEngagesPathAreSentAsGiven(t *testing.T) {
	t.Parallel()
	h := newWireHarness(t)
	res, calls := h.run(t, "search-conversation", "1.3", `{"channel":"livechat","bizAddress":"..","customerAddress":"user/7","threadId":"t\\1"}`)
	if res.Outcome == outcomes.OnInvalidData {
		t.Fatalf("search: %s %+v, want the addresses sent", res.Outcome, res.Error)
	}
	body := decodeJSON(t, "the search", oneCall(t, calls, http.MethodPost, searchPath).body)
	if body["bizaddress"] != ".." || body["customeraddress"] != "user/7" || body["threadid"] != `t\1` {
		t.Errorf("search sent %v", body)
	}
	id := h.seed("sms", "+15550001", "+15559999", "active")
	res, calls = h.run(t, "update-conversation", "1.0", `{"conversationId":"`+id+`","taskId":"queue/7"}`)
	if res.Outcome != outcomes.OnConversationUpdatedSuccess {
		t.Fatalf("update: %s %+v, want the task ID sent", res.Outcome, res.Error)
	}
	if body := decodeJSON(t, "the update", oneCall(t, calls, http.MethodPatch, "/api/v1/"+fuzzDomain+"/conversations/"+id).body); body["aliasId"] != "queue/7" {
		t.Errorf("update sent %v", body)
	}
}

// checkCalls checks a failed execution's error code and the Engage calls it made: one
// per entry of wantStatuses, answered that status, each to path.
func checkCalls(t *testing.T, h *wireHarness, res outcomes.Result, calls []engageCall, op, path, wantCode string, wantStatuses []int) {
	t.Helper()
	last := wantStatuses[len(wantStatuses)-1]
	if wantCode != "" && (res.Error == nil || res.Error.Code != wantCode || res.Error.EngageStatus != last) {
		t.Errorf("error %+v, want code %s with Engage status %d", res.Error, wantCode, last)
	}
	if got := statuses(calls); !reflect.DeepEqual(got, wantStatuses) {
		t.Errorf("Engage answered %s, want %v (one entry per call)", brief(got), wantStatuses)
	}
	for _, c := range calls {
		if c.path != path {
			t.Errorf("called %s %s, want %s", c.method, c.path, path)
		}
	}
	if n := h.sim.Calls(op); n != len(wantStatuses) {
		t.Errorf("the simulator counted %d %s calls, want %d", n, op, len(wantStatuses))
	}
}

// A 403 (Engage's answer to a token valid for another domain) is not helped by a new
// token: the node ends in onAuthorizationFailure after one call, with no refresh (a
// refresh would spend a rotating refresh token, and repeat a change for nothing).
func TestA403EndsInAuthorizationFailureWithoutARefreshOrARepeat(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		node, version, op string
		input, path       func(id string) string
	}{
		{"search-conversation", "1.3", engagesim.OpSearch, func(string) string { return smsSearch }, func(string) string { return searchPath }},
		{"append-message", "1.4", engagesim.OpAppend, func(id string) string {
			return `{"conversationId":"` + id + `","channel":"sms","direction":"outbound","messageType":"text","text":"hi","timestamp":"` + wireTimestamp + `"}`
		}, appendPath},
	} {
		t.Run(tc.node, func(t *testing.T) {
			t.Parallel()
			h := newWireHarness(t)
			id := h.seed("sms", "+15550001", "+15559999", "active")
			h.creds.token = h.sim.AccessToken("another-domain")
			res, calls := h.run(t, tc.node, tc.version, tc.input(id))
			if res.Outcome != outcomes.OnAuthorizationFailure {
				t.Fatalf("outcome %s %+v, want onAuthorizationFailure", res.Outcome, res.Error)
			}
			checkCalls(t, h, res, calls, tc.op, tc.path(id), outcomes.CodeEngageUnauthorized, []int{http.StatusForbidden})
			if n, _ := h.creds.counts(); n != 0 {
				t.Fatalf("%d refreshes, want none", n)
			}
		})
	}
}

// The message of an authorization failure from Engage says which one it was: a token
// refused again after the one refresh (401), or a token for another domain (403, never
// refreshed). Whoever reads it knows whether re-authorizing or fixing the domain helps.
func TestAnEngageAuthorizationFailureSaysWhetherTheTokenWasRefreshed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		token      func(h *wireHarness) string
		onRefresh  func() string
		want, not  string
		refreshes  int
		wantStatus []int
	}{
		{name: "401 again after the refresh", token: func(*wireHarness) string { return "revoked" },
			onRefresh: func() string { return "revoked again" },
			want:      "Engage refused the access token again after a refresh: HTTP 401", not: "domain",
			refreshes: 1, wantStatus: []int{http.StatusUnauthorized, http.StatusUnauthorized}},
		{name: "403 for another domain", token: func(h *wireHarness) string { return h.sim.AccessToken("another-domain") },
			want: "Engage refused the access token for this domain: HTTP 403", not: "refresh",
			wantStatus: []int{http.StatusForbidden}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newWireHarness(t)
			id := h.seed("sms", "+15550001", "+15559999", "active")
			h.creds.token = tc.token(h)
			h.creds.onRefresh = tc.onRefresh
			res, calls := h.run(t, "close-conversation", "1.0", `{"conversationId":"`+id+`"}`)
			if res.Outcome != outcomes.OnAuthorizationFailure || res.Error == nil {
				t.Fatalf("outcome %s %+v, want onAuthorizationFailure", res.Outcome, res.Error)
			}
			if !strings.HasPrefix(res.Error.Message, tc.want) || strings.Contains(res.Error.Message, tc.not) {
				t.Errorf("message %q, want it to start %q and not mention %q", res.Error.Message, tc.want, tc.not)
			}
			if got := statuses(calls); !reflect.DeepEqual(got, tc.wantStatus) {
				t.Errorf("Engage answered %v, want %v", got, tc.wantStatus)
			}
			if n, _ := h.creds.counts(); n != tc.refreshes {
				t.Errorf("%d refreshes, want %d", n, tc.refreshes)
			}
		})
	}
}

// The text limit is inclusive: 4096 characters (not bytes) are sent as they are.
func TestATextOfExactlyTheLimitIsSent(t *testing.T) {
	t.Parallel()
	h := newWireHarness(t)
	id := h.seed("sms", "+15550001", "+15559999", "active")
	text := strings.Repeat("é", nodes.MaxTextLength)
	res, calls := h.run(t, "append-message", "1.4",
		`{"conversationId":"`+id+`","channel":"sms","direction":"outbound","messageType":"text","text":"`+text+`","timestamp":"`+wireTimestamp+`"}`)
	if res.Outcome != outcomes.OnAppendMessageSuccess {
		t.Fatalf("outcome %s %+v, want the text sent", res.Outcome, res.Error)
	}
	if len(calls) != 1 || !strings.Contains(string(calls[0].body), `"`+text+`"`) {
		t.Fatalf("%d calls; the text was not sent whole", len(calls))
	}
}

// A flow may fill every field of a node's form whatever the channel; Engage gets only
// those the chosen channel and message type use (ENGAGE.md §3): an SMS search or
// conversation carries no subject or thread, a live chat conversation no addresses (it
// names its parties in its own fields), a text message no email fields.
func TestAFieldOnlyAnotherChannelOrMessageTypeUsesIsNotSent(t *testing.T) {
	t.Parallel()
	const (
		everySearchField = `"bizAddress":"+15559999","customerAddress":"+15550001","subject":"Order 42","toRecipients":["a@x.test"],
			"ccRecipients":["b@x.test"],"inReplyTo":"<m-1@x.test>","threadId":"th-1","browserFingerprint":"fp-1"`
		textWithEmailFields = `"direction":"inbound","messageType":"text","text":"hi","timestamp":"` + wireTimestamp + `",
			"fromAddress":"jo@example.test","subject":"Order 42","toRecipients":["a@x.test"],"plainBody":"body","htmlBody":"<p>body</p>",
			"strippedHtml":"<p>b</p>","emailHeaders":{"X-Id":"1"},"attachments":[{"mimeType":"image/png","fileUrl":"https://files.test/a.png"}]`
		textWire = `"direction":"inbound","messagetype":"text","text":"hi","timestamp":"` + wireTimestamp + `"`
		liveChat = `"livechatUserId":"user-1","livechatAppId":"app-1","livechatWebsiteDomain":"shop.example.test"`
	)
	for _, tc := range []struct {
		name, node, version, input, path, want string
	}{
		{"an sms search", "search-conversation", "1.3", `{"channel":"sms",` + everySearchField + `}`, searchPath,
			`{"channel":"sms","bizaddress":"+15559999","customeraddress":"+15550001"}`},
		{"a whatsapp search of 1.0", "search-conversation", "1.0", `{"channel":"whatsapp",` + everySearchField + `}`, searchPath,
			`{"channel":"whatsapp","bizaddress":"+15559999","customeraddress":"+15550001"}`},
		{"an email search", "search-conversation", "1.3", `{"channel":"email",` + everySearchField + `}`, searchPath,
			`{"channel":"email","bizaddress":"+15559999","customeraddress":"+15550001","subject":"Order 42","toRecipients":["a@x.test"],
			  "ccRecipients":["b@x.test"],"inReplyTo":"<m-1@x.test>"}`},
		{"a live chat search", "search-conversation", "1.3", `{"channel":"livechat",` + everySearchField + `}`, searchPath,
			`{"channel":"livechat","bizaddress":"+15559999","customeraddress":"+15550001","threadid":"th-1","browserfingerprint":"fp-1"}`},
		{"an sms conversation", "create-conversation", "1.3",
			`{"channel":"sms","bizAddress":"+15559999","customerAddress":"+15550001","customerName":"Jo","threadId":"th-1",` + liveChat + `,
			  "livechatProactiveId":"campaign-1",` + textWithEmailFields + `}`,
			createPath, `{"channel":"sms","bizaddress":"+15559999","customeraddress":"+15550001","customername":"Jo",
			  "messages":[{"channel":"sms",` + textWire + `}]}`},
		{"a live chat conversation", "create-conversation", "1.3",
			`{"channel":"livechat","bizAddress":"+15559999","customerAddress":"+15550001","threadId":"th-1",` + liveChat + `,
			  "livechatProactiveId":"campaign-1",` + textWithEmailFields + `}`,
			createPath, `{"channel":"livechat","threadid":"th-1","livechatuserid":"user-1","livechatappid":"app-1",
			  "livechatwebsitedomain":"shop.example.test","livechatproactiveid":"campaign-1","customername":"user-1",
			  "messages":[{"channel":"livechat",` + textWire + `}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newWireHarness(t)
			res, calls := h.run(t, tc.node, tc.version, tc.input)
			if res.Outcome == outcomes.OnInvalidData {
				t.Fatalf("onInvalidData %+v", res.Error)
			}
			sameBody(t, oneCall(t, calls, http.MethodPost, tc.path).body, tc.want)
		})
	}
}
