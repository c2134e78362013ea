package engage_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/noderuntime/noderuntime/internal/engage"
	"github.com/noderuntime/noderuntime/internal/engagesim"
)

const domain = "acme"

type fixture struct {
	sim    *engagesim.Sim
	client *engage.Client
	target engage.Target
	token  string
	obs    *recorder
}

func setup(t testing.TB) *fixture {
	t.Helper()
	sim := engagesim.Start(t, engagesim.Config{})
	obs := &recorder{}
	c := engage.New(engage.Options{Observer: obs})
	t.Cleanup(c.CloseIdleConnections)
	return &fixture{
		sim:    sim,
		client: c,
		target: engage.Target{BaseURL: sim.BaseURL(), Domain: domain},
		token:  sim.AccessToken(domain),
		obs:    obs,
	}
}

// recorder is an Observer that remembers every call.
type recorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *recorder) ObserveEngageCall(op, status string, d time.Duration) {
	if d < 0 {
		panic("negative duration")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, op+" "+status)
}

func (r *recorder) last() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.calls) == 0 {
		return ""
	}
	return r.calls[len(r.calls)-1]
}

func textMessage(text string) engage.Message {
	return engage.Message{Channel: "sms", Direction: "inbound", MessageType: "text", Text: text, Timestamp: "2026-03-01T12:00:00Z"}
}

func (f *fixture) create(t *testing.T) string {
	t.Helper()
	resp, err := f.client.Create(t.Context(), f.target, f.token, engage.CreateRequest{
		Channel: "sms", BizAddress: "12345", CustomerAddress: "+15550001", CustomerName: "Ada",
		Messages: []engage.Message{textMessage("hello")},
	})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return resp.ConversationID
}

// wantKind fails unless err is an *engage.Error of kind k.
func wantKind(t *testing.T, err error, k engage.Kind) *engage.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want kind %s", k)
	}
	e, ok := errors.AsType[*engage.Error](err)
	if !ok {
		t.Fatalf("got %T %v, want *engage.Error", err, err)
	}
	if e.Kind != k || engage.KindOf(err) != k {
		t.Fatalf("got kind %s (%v), want %s", e.Kind, err, k)
	}
	return e
}

func TestSearchAnswersTheStatusOfTheConversationFound(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, status := range []string{"queued", "active", "onhold", "closed"} {
		id := f.sim.SeedConversation(domain, engagesim.Conversation{
			Channel: "whatsapp", CustomerAddress: "cust-" + status, BizAddress: "biz", Status: status,
			AliasID: "alias-" + status, TeamID: "team1", UserID: "agent1",
		})
		resp, err := f.client.Search(t.Context(), f.target, f.token, engage.SearchRequest{
			Channel: "whatsapp", CustomerAddress: "cust-" + status, BizAddress: "biz",
		})
		if err != nil {
			t.Fatalf("%s: %v", status, err)
		}
		want := engage.SearchValue{ConversationID: id, AliasID: "alias-" + status, ChatExist: true, Status: status, TeamID: "team1", UserID: "agent1"}
		if resp.Value != want {
			t.Errorf("%s: value %+v, want %+v", status, resp.Value, want)
		}
		if resp.HTTPStatus != 200 || resp.Status != 200 || resp.Code == 0 || !json.Valid(resp.Raw) ||
			!strings.Contains(string(resp.Raw), id) {
			t.Errorf("%s: envelope %+v raw %s", status, resp.Envelope, resp.Raw)
		}
	}
	if got := f.obs.last(); got != "search 200" {
		t.Errorf("observer saw %q", got)
	}
}

func TestSearchWithoutAConversationAnswersChatExistFalse(t *testing.T) {
	t.Parallel()
	f := setup(t)
	resp, err := f.client.Search(t.Context(), f.target, f.token, engage.SearchRequest{Channel: "sms", CustomerAddress: "nobody", BizAddress: "biz"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Value != (engage.SearchValue{}) || resp.HTTPStatus != 200 {
		t.Fatalf("got %+v", resp)
	}
}

func TestSearchMatchesThreadForLiveChatAndSubjectForEmail(t *testing.T) {
	t.Parallel()
	f := setup(t)
	lc := f.sim.SeedConversation(domain, engagesim.Conversation{Channel: "livechat", CustomerAddress: "u1", BizAddress: "app1", ThreadID: "t1"})
	f.sim.SeedConversation(domain, engagesim.Conversation{Channel: "livechat", CustomerAddress: "u1", BizAddress: "app1", ThreadID: "t2"})
	em := f.sim.SeedConversation(domain, engagesim.Conversation{Channel: "email", CustomerAddress: "a@x", BizAddress: "s@y", Subject: "Invoice"})
	for _, tc := range []struct {
		req  engage.SearchRequest
		want string
	}{
		{engage.SearchRequest{Channel: "livechat", CustomerAddress: "u1", BizAddress: "app1", ThreadID: "t1", BrowserFingerprint: "fp"}, lc},
		{engage.SearchRequest{Channel: "livechat", CustomerAddress: "u1", BizAddress: "app1", ThreadID: "t3"}, ""},
		{engage.SearchRequest{Channel: "email", CustomerAddress: "a@x", BizAddress: "s@y", Subject: "Invoice", ToRecipients: []string{"s@y"}, InReplyTo: "<m1@x>"}, em},
		{engage.SearchRequest{Channel: "email", CustomerAddress: "a@x", BizAddress: "s@y", Subject: "Other"}, ""},
	} {
		resp, err := f.client.Search(t.Context(), f.target, f.token, tc.req)
		if err != nil {
			t.Fatalf("%+v: %v", tc.req, err)
		}
		if resp.Value.ConversationID != tc.want || resp.Value.ChatExist != (tc.want != "") {
			t.Errorf("%+v: got %+v, want %q", tc.req, resp.Value, tc.want)
		}
	}
}

func TestCreateStartsAQueuedConversationThatSearchFinds(t *testing.T) {
	t.Parallel()
	f := setup(t)
	resp, err := f.client.Create(t.Context(), f.target, f.token, engage.CreateRequest{
		Channel: "sms", BizAddress: "12345", CustomerAddress: "+15550001", CustomerName: "Ada",
		Messages: []engage.Message{textMessage("hello")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.ConversationID == "" || resp.TID == "" || resp.HTTPStatus != http.StatusCreated {
		t.Fatalf("got %+v", resp)
	}
	c, ok := f.sim.Conversation(domain, resp.ConversationID)
	if !ok || c.Status != "queued" || c.CustomerName != "Ada" || len(c.Messages) != 1 || c.Messages[0].Text != "hello" {
		t.Fatalf("stored %+v", c)
	}
	found, err := f.client.Search(t.Context(), f.target, f.token, engage.SearchRequest{Channel: "sms", CustomerAddress: "+15550001", BizAddress: "12345"})
	if err != nil || found.Value.ConversationID != resp.ConversationID || found.Value.Status != "queued" {
		t.Fatalf("search after create: %+v, %v", found, err)
	}
}

func TestCreateLiveChatSendsTheLiveChatKeys(t *testing.T) {
	t.Parallel()
	f := setup(t)
	resp, err := f.client.Create(t.Context(), f.target, f.token, engage.CreateRequest{
		Channel: "livechat", ThreadID: "th1", LivechatUserID: "user9", LivechatAppID: "app9",
		LivechatWebsiteDomain: "shop.example", LivechatProactiveID: "pro1",
		Messages: []engage.Message{{Channel: "livechat", Direction: "outbound", MessageType: "text-with-lc-quick-replies",
			Text: "Pick one", Timestamp: "2026-03-01T12:00:00.250Z", LcQuickReplies: json.RawMessage(`{"options":["a","b"]}`)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := f.sim.Conversation(domain, resp.ConversationID)
	if c.CustomerAddress != "user9" || c.BizAddress != "app9" || c.ThreadID != "th1" ||
		c.LivechatWebsiteDomain != "shop.example" || c.LivechatProactiveID != "pro1" ||
		string(c.Messages[0].LcQuickReplies) != `{"options":["a","b"]}` {
		t.Fatalf("stored %+v", c)
	}
	found, err := f.client.Search(t.Context(), f.target, f.token, engage.SearchRequest{Channel: "livechat", CustomerAddress: "user9", BizAddress: "app9", ThreadID: "th1"})
	if err != nil || found.Value.ConversationID != resp.ConversationID {
		t.Fatalf("search: %+v %v", found, err)
	}
}

func TestAppendStoresEveryMessageKind(t *testing.T) {
	t.Parallel()
	f := setup(t)
	id := f.create(t)
	email := f.sim.SeedConversation(domain, engagesim.Conversation{Channel: "email", CustomerAddress: "a@x", BizAddress: "s@y", Subject: "Hi"})
	whatsapp := f.sim.SeedConversation(domain, engagesim.Conversation{Channel: "whatsapp", CustomerAddress: "+1555", BizAddress: "+1666"})
	ts := "2026-03-01T12:00:00Z"
	for name, tc := range map[string]struct {
		conv string
		msg  engage.Message
		want func(m engagesim.Message) bool
	}{
		"text": {id, textMessage("more"), func(m engagesim.Message) bool { return m.Text == "more" }},
		"attachments": {whatsapp, engage.Message{Channel: "whatsapp", Direction: "outbound", MessageType: "text-with-attachments", Timestamp: ts, AliasID: "m-1",
			Attachments: []engage.Attachment{{MimeType: "image/png", FileName: "a.png", FileURL: "https://files.example/a.png"}}},
			func(m engagesim.Message) bool {
				return len(m.Attachments) == 1 && m.Attachments[0].FileURL == "https://files.example/a.png" && m.AliasID == "m-1"
			}},
		"email": {email, engage.Message{Channel: "email", Direction: "inbound", MessageType: "email", Timestamp: ts, Subject: "Hi",
			FromAddress: "a@x", ToRecipients: []string{"s@y"}, CcRecipients: []string{"c@z"}, PlainBody: "body", HTMLBody: "<p>body</p>",
			StrippedHTML: "body", EmailHeaders: json.RawMessage(`{"Message-Id":"<1@x>"}`)},
			func(m engagesim.Message) bool {
				return m.FromAddress == "a@x" && m.HTMLBody == "<p>body</p>" && m.CcRecipients[0] == "c@z" && string(m.EmailHeaders) == `{"Message-Id":"<1@x>"}`
			}},
		"whatsapp interactive response": {whatsapp, engage.Message{Channel: "whatsapp", Direction: "inbound", MessageType: "wab-interactive-response", Timestamp: ts,
			WabInteractiveResponse: json.RawMessage(`{"id":"yes"}`)},
			func(m engagesim.Message) bool { return string(m.WabInteractiveResponse) == `{"id":"yes"}` }},
	} {
		resp, err := f.client.Append(t.Context(), f.target, f.token, tc.conv, tc.msg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if resp.TID == "" {
			t.Errorf("%s: no tid", name)
		}
		c, _ := f.sim.Conversation(domain, tc.conv)
		if last := c.Messages[len(c.Messages)-1]; !tc.want(last) {
			t.Errorf("%s: stored %+v", name, last)
		}
	}
}

func TestTextRoundTripsByteExact(t *testing.T) {
	t.Parallel()
	f := setup(t)
	id := f.create(t)
	text := "She said \"hi\" \\o/ \n\tline two\r\n<b>bold</b> & 'single' \u2028 🎉👩‍💻 ünïcödé \x00 end"
	if _, err := f.client.Append(t.Context(), f.target, f.token, id, textMessage(text)); err != nil {
		t.Fatal(err)
	}
	c, _ := f.sim.Conversation(domain, id)
	got := c.Messages[len(c.Messages)-1]
	if got.Text != text {
		t.Fatalf("text changed on the way:\n got %q\nwant %q", got.Text, text)
	}
	// HTML characters travel as themselves, not as \u003c escapes.
	if !strings.Contains(string(got.Raw), "<b>bold</b> & ") {
		t.Errorf("raw message escaped HTML: %s", got.Raw)
	}
}

func TestUpdateWritesTheAliasAndReopensOnlyClosedConversations(t *testing.T) {
	t.Parallel()
	f := setup(t)
	id := f.create(t)
	if _, err := f.client.Update(t.Context(), f.target, f.token, id, engage.UpdateRequest{AliasID: "task-7"}); err != nil {
		t.Fatal(err)
	}
	if c, _ := f.sim.Conversation(domain, id); c.AliasID != "task-7" {
		t.Fatalf("alias %q", c.AliasID)
	}
	_, err := f.client.Update(t.Context(), f.target, f.token, id, engage.UpdateRequest{Status: engage.StatusQueued})
	e := wantKind(t, err, engage.KindBusiness)
	if e.HTTPStatus != http.StatusConflict || e.Code == 0 || e.Description == "" || e.Op != engage.OpUpdate {
		t.Fatalf("re-open of an open conversation: %+v", e)
	}
	if err := f.sim.SetStatus(domain, id, "closed"); err != nil {
		t.Fatal(err)
	}
	resp, err := f.client.Update(t.Context(), f.target, f.token, id, engage.UpdateRequest{Status: engage.StatusQueued})
	if err != nil || resp.TID == "" {
		t.Fatalf("re-open: %+v %v", resp, err)
	}
	if c, _ := f.sim.Conversation(domain, id); c.Status != "queued" {
		t.Fatalf("status after re-open %q", c.Status)
	}
}

func TestCloseClosesOnceThenConflicts(t *testing.T) {
	t.Parallel()
	f := setup(t)
	id := f.create(t)
	resp, err := f.client.Close(t.Context(), f.target, f.token, id)
	if err != nil || resp.TID == "" {
		t.Fatalf("close: %+v %v", resp, err)
	}
	if c, _ := f.sim.Conversation(domain, id); c.Status != "closed" {
		t.Fatalf("status %q", c.Status)
	}
	_, err = f.client.Close(t.Context(), f.target, f.token, id)
	if e := wantKind(t, err, engage.KindBusiness); e.HTTPStatus != http.StatusConflict {
		t.Fatalf("second close: %+v", e)
	}
}

func TestParticipantsAreAddedAndRemovedByEscapedID(t *testing.T) {
	t.Parallel()
	f := setup(t)
	// IDs with "/" and spaces must stay one path segment.
	id := f.sim.SeedConversation(domain, engagesim.Conversation{ID: "conv/1 x", Channel: "sms", CustomerAddress: "c", BizAddress: "b"})
	const agent = "agent/7 ?#"
	if _, err := f.client.AddParticipant(t.Context(), f.target, f.token, id, agent); err != nil {
		t.Fatal(err)
	}
	c, _ := f.sim.Conversation(domain, id)
	if len(c.Participants) != 1 || c.Participants[0] != agent || c.Status != "active" {
		t.Fatalf("after add: %+v", c)
	}
	if _, err := f.client.RemoveParticipant(t.Context(), f.target, f.token, id, agent); err != nil {
		t.Fatal(err)
	}
	if c, _ := f.sim.Conversation(domain, id); len(c.Participants) != 0 {
		t.Fatalf("after remove: %+v", c.Participants)
	}
	_, err := f.client.RemoveParticipant(t.Context(), f.target, f.token, id, agent)
	if e := wantKind(t, err, engage.KindBusiness); e.HTTPStatus != http.StatusNotFound {
		t.Fatalf("removing an absent participant: %+v", e)
	}
}

func TestUnknownConversationIsA404BusinessErrorForEveryOperation(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx, tg, tok := t.Context(), f.target, f.token
	for op, call := range map[string]func() error{
		engage.OpAppend: func() error { _, err := f.client.Append(ctx, tg, tok, "nope", textMessage("x")); return err },
		engage.OpUpdate: func() error {
			_, err := f.client.Update(ctx, tg, tok, "nope", engage.UpdateRequest{AliasID: "a"})
			return err
		},
		engage.OpClose:             func() error { _, err := f.client.Close(ctx, tg, tok, "nope"); return err },
		engage.OpAddParticipant:    func() error { _, err := f.client.AddParticipant(ctx, tg, tok, "nope", "a1"); return err },
		engage.OpRemoveParticipant: func() error { _, err := f.client.RemoveParticipant(ctx, tg, tok, "nope", "a1"); return err },
	} {
		e := wantKind(t, call(), engage.KindBusiness)
		if e.Op != op || e.HTTPStatus != http.StatusNotFound || e.Code == 0 || !strings.Contains(e.Description, "nope") || len(e.Raw) == 0 {
			t.Errorf("%s: %+v", op, e)
		}
	}
}

func TestValidationFailuresAre400BusinessErrors(t *testing.T) {
	t.Parallel()
	f := setup(t)
	id := f.create(t)
	ctx := t.Context()
	for name, call := range map[string]func() error{
		"search without channel": func() error {
			_, err := f.client.Search(ctx, f.target, f.token, engage.SearchRequest{CustomerAddress: "c", BizAddress: "b"})
			return err
		},
		"search without bizaddress": func() error {
			_, err := f.client.Search(ctx, f.target, f.token, engage.SearchRequest{Channel: "sms", CustomerAddress: "c"})
			return err
		},
		"create without customeraddress": func() error {
			_, err := f.client.Create(ctx, f.target, f.token, engage.CreateRequest{Channel: "sms", BizAddress: "b", Messages: []engage.Message{textMessage("x")}})
			return err
		},
		"append without messagetype": func() error {
			m := textMessage("x")
			m.MessageType = ""
			_, err := f.client.Append(ctx, f.target, f.token, id, m)
			return err
		},
		"append with a bad timestamp": func() error {
			m := textMessage("x")
			m.Timestamp = "yesterday"
			_, err := f.client.Append(ctx, f.target, f.token, id, m)
			return err
		},
	} {
		e := wantKind(t, call(), engage.KindBusiness)
		if e.HTTPStatus != http.StatusBadRequest || e.Description == "" {
			t.Errorf("%s: %+v", name, e)
		}
	}
}

func TestRefusedTokensAreUnauthorized(t *testing.T) {
	t.Parallel()
	f := setup(t)
	revoked := f.sim.AccessToken(domain)
	f.sim.RevokeAccessToken(revoked)
	for name, tc := range map[string]struct {
		token  string
		target engage.Target
		status int
	}{
		"missing":      {"", f.target, http.StatusUnauthorized},
		"unknown":      {"not-a-token", f.target, http.StatusUnauthorized},
		"revoked":      {revoked, f.target, http.StatusUnauthorized},
		"other domain": {f.token, engage.Target{BaseURL: f.target.BaseURL, Domain: "globex"}, http.StatusForbidden},
	} {
		_, err := f.client.Search(t.Context(), tc.target, tc.token, engage.SearchRequest{Channel: "sms", CustomerAddress: "c", BizAddress: "b"})
		if e := wantKind(t, err, engage.KindUnauthorized); e.HTTPStatus != tc.status || e.Description == "" {
			t.Errorf("%s: %+v", name, e)
		}
	}
}

func TestExpiredTokenIsUnauthorized(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	sim := engagesim.Start(t, engagesim.Config{AccessTokenTTL: time.Second, Now: func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}})
	c := engage.New(engage.Options{})
	tg := engage.Target{BaseURL: sim.BaseURL(), Domain: domain}
	tok := sim.AccessToken(domain)
	req := engage.SearchRequest{Channel: "sms", CustomerAddress: "c", BizAddress: "b"}
	if _, err := c.Search(t.Context(), tg, tok, req); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(time.Second)
	mu.Unlock()
	_, err := c.Search(t.Context(), tg, tok, req)
	wantKind(t, err, engage.KindUnauthorized)
}

func TestInjectedFaultsYieldTheirKind(t *testing.T) {
	t.Parallel()
	search := engage.SearchRequest{Channel: "sms", CustomerAddress: "c", BizAddress: "b"}
	for _, tc := range []struct {
		name       string
		fault      engagesim.Fault
		timeout    time.Duration
		kind       engage.Kind
		httpStatus int
		retryAfter time.Duration
		label      string
	}{
		{name: "500 is upstream", fault: engagesim.Fault{Status: 500}, kind: engage.KindUpstream, httpStatus: 500, label: "500"},
		{name: "502 is upstream", fault: engagesim.Fault{Status: 502}, kind: engage.KindUpstream, httpStatus: 502, label: "502"},
		{name: "503 is upstream", fault: engagesim.Fault{Status: 503}, kind: engage.KindUpstream, httpStatus: 503, label: "503"},
		{name: "429 is rate limited with its Retry-After", fault: engagesim.Fault{Status: 429, RetryAfter: 7 * time.Second},
			kind: engage.KindRateLimited, httpStatus: 429, retryAfter: 7 * time.Second, label: "429"},
		{name: "401 is unauthorized", fault: engagesim.Fault{Status: 401}, kind: engage.KindUnauthorized, httpStatus: 401, label: "401"},
		{name: "403 is unauthorized", fault: engagesim.Fault{Status: 403}, kind: engage.KindUnauthorized, httpStatus: 403, label: "403"},
		{name: "404 is business", fault: engagesim.Fault{Status: 404}, kind: engage.KindBusiness, httpStatus: 404, label: "404"},
		{name: "connection reset is upstream", fault: engagesim.Fault{Reset: true}, kind: engage.KindUpstream, label: "transport_error"},
		{name: "malformed JSON is upstream", fault: engagesim.Fault{Malformed: true}, kind: engage.KindUpstream, httpStatus: 200, label: "200"},
		{name: "latency past the deadline is a timeout", fault: engagesim.Fault{Latency: time.Minute}, timeout: 50 * time.Millisecond,
			kind: engage.KindTimeout, label: "timeout"},
		{name: "latency within the deadline succeeds", fault: engagesim.Fault{Latency: 20 * time.Millisecond}, timeout: 10 * time.Second, label: "200"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			tc.fault.Op, tc.fault.Times = engage.OpSearch, 1
			f.sim.InjectFault(tc.fault)
			ctx := t.Context()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			start := time.Now()
			_, err := f.client.Search(ctx, f.target, f.token, search)
			if tc.kind == "" {
				if err != nil {
					t.Fatalf("got %v", err)
				}
			} else {
				e := wantKind(t, err, tc.kind)
				if e.HTTPStatus != tc.httpStatus || e.RetryAfter != tc.retryAfter || e.Op != engage.OpSearch {
					t.Fatalf("got %+v", e)
				}
			}
			if elapsed := time.Since(start); elapsed > 5*time.Second {
				t.Errorf("took %v", elapsed)
			}
			if got := f.obs.last(); got != "search "+tc.label {
				t.Errorf("observer saw %q, want %q", got, "search "+tc.label)
			}
			// The fault was for one call: the next one goes through.
			if _, err := f.client.Search(t.Context(), f.target, f.token, search); err != nil {
				t.Fatalf("call after the fault: %v", err)
			}
		})
	}
}

func TestUnknownStatusFaultReachesTheCallerAsData(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.sim.InjectFault(engagesim.Fault{Op: engage.OpSearch, UnknownStatus: "archived", Times: 1})
	resp, err := f.client.Search(t.Context(), f.target, f.token, engage.SearchRequest{Channel: "sms", CustomerAddress: "c", BizAddress: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Value.Status != "archived" || resp.Value.ConversationID == "" {
		t.Fatalf("got %+v", resp.Value)
	}
}

func TestFaultsOnEveryOperationAreClassified(t *testing.T) {
	t.Parallel()
	f := setup(t)
	id := f.create(t)
	ctx := t.Context()
	calls := map[string]func() error{
		engage.OpSearch: func() error {
			_, err := f.client.Search(ctx, f.target, f.token, engage.SearchRequest{Channel: "sms", CustomerAddress: "c", BizAddress: "b"})
			return err
		},
		engage.OpCreate: func() error {
			_, err := f.client.Create(ctx, f.target, f.token, engage.CreateRequest{Channel: "sms", BizAddress: "b", CustomerAddress: "c", Messages: []engage.Message{textMessage("x")}})
			return err
		},
		engage.OpAppend: func() error { _, err := f.client.Append(ctx, f.target, f.token, id, textMessage("x")); return err },
		engage.OpUpdate: func() error {
			_, err := f.client.Update(ctx, f.target, f.token, id, engage.UpdateRequest{AliasID: "a"})
			return err
		},
		engage.OpAddParticipant:    func() error { _, err := f.client.AddParticipant(ctx, f.target, f.token, id, "p"); return err },
		engage.OpRemoveParticipant: func() error { _, err := f.client.RemoveParticipant(ctx, f.target, f.token, id, "p"); return err },
		engage.OpClose:             func() error { _, err := f.client.Close(ctx, f.target, f.token, id); return err },
	}
	for _, op := range []string{engage.OpSearch, engage.OpCreate, engage.OpAppend, engage.OpUpdate, engage.OpAddParticipant, engage.OpRemoveParticipant, engage.OpClose} {
		for _, fault := range []engagesim.Fault{{Status: 503}, {Reset: true}, {Malformed: true}, {Status: 429}} {
			fault.Op, fault.Times = op, 1
			f.sim.InjectFault(fault)
			want := engage.KindUpstream
			if fault.Status == 429 {
				want = engage.KindRateLimited
			}
			if e := wantKind(t, calls[op](), want); e.Op != op {
				t.Errorf("%s: op %q", op, e.Op)
			}
		}
		// And without a fault it works (the sequence leaves the conversation closed).
		if err := calls[op](); err != nil {
			t.Fatalf("%s without fault: %v", op, err)
		}
	}
	if n := f.sim.Calls(engage.OpAppend); n != 5 {
		t.Errorf("append calls %d, want 5: the client must never retry", n)
	}
}

func TestCallerCancellationIsCanceledNotTimeout(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.sim.InjectFault(engagesim.Fault{Op: engage.OpSearch, Latency: time.Minute})
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := f.client.Search(ctx, f.target, f.token, engage.SearchRequest{Channel: "sms", CustomerAddress: "c", BizAddress: "b"})
		errc <- err
	}()
	// Cancel once the simulator holds the request, not after a guessed sleep.
	waitFor(t, func() bool { return f.sim.Calls(engage.OpSearch) == 1 })
	cancel()
	err := <-errc
	wantKind(t, err, engage.KindCanceled)
	if engage.KindOf(err) == engage.KindTimeout {
		t.Fatal("KindTimeout on a cancellation")
	}
	// The simulator's handler returns when the caller leaves.
	waitFor(t, func() bool { return f.sim.InFlight() == 0 })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestTimeoutIsReportedAsKindTimeout(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.sim.InjectFault(engagesim.Fault{Op: engage.OpClose, Latency: time.Minute})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
	defer cancel()
	_, err := f.client.Close(ctx, f.target, f.token, "any")
	if engage.KindOf(err) != engage.KindTimeout || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	waitFor(t, func() bool { return f.sim.InFlight() == 0 })
}

// "." and ".." survive path escaping: as a conversation or participant ID they would
// send the call to another of Engage's endpoints. Such a call never leaves, and does not
// count against the base URL's breaker, which every tenant on it shares.
func TestDotSegmentsAreNotIDs(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	tg := fake(t, func(w http.ResponseWriter, r *http.Request) { calls.Add(1) })
	c := engage.New(engage.Options{})
	for range 10 {
		for _, id := range []string{".", ".."} {
			_, err := c.Close(t.Context(), tg, "tok", id)
			wantKind(t, err, engage.KindInvalidRequest)
			if want := "engage close: invalid_request: " + strconv.Quote(id) + " is not an ID"; err.Error() != want {
				t.Fatalf("%q: %q, want %q", id, err, want)
			}
			_, err = c.RemoveParticipant(t.Context(), tg, "tok", "conv-1", id)
			wantKind(t, err, engage.KindInvalidRequest)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("%d calls reached Engage", n)
	}
	if _, err := c.Close(t.Context(), tg, "tok", "..."); engage.KindOf(err) == engage.KindInvalidRequest || engage.KindOf(err) == engage.KindCircuitOpen {
		t.Fatalf("an ID of three dots is an ID: %v", err)
	}
}

func TestConnectionRefusedIsUpstream(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	rec := &recorder{}
	c := engage.New(engage.Options{Observer: rec})
	_, err = c.Search(t.Context(), engage.Target{BaseURL: "http://" + addr + "/api/v1", Domain: domain}, "tok", engage.SearchRequest{Channel: "sms"})
	if e := wantKind(t, err, engage.KindUpstream); e.HTTPStatus != 0 || e.Err == nil {
		t.Fatalf("got %+v", e)
	}
	if got := rec.last(); got != "search transport_error" {
		t.Errorf("observer saw %q", got)
	}
}

func TestBodyOverTheLimitIsUpstream(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	c := engage.New(engage.Options{MaxResponseBytes: 200})
	tg := engage.Target{BaseURL: sim.BaseURL(), Domain: domain}
	tok := sim.AccessToken(domain)
	sim.SeedConversation(domain, engagesim.Conversation{Channel: "sms", CustomerAddress: "small", BizAddress: "b"})
	sim.SeedConversation(domain, engagesim.Conversation{Channel: "sms", CustomerAddress: "big", BizAddress: "b", AliasID: strings.Repeat("x", 300)})
	if _, err := c.Search(t.Context(), tg, tok, engage.SearchRequest{Channel: "sms", CustomerAddress: "small", BizAddress: "b"}); err != nil {
		t.Fatalf("small answer: %v", err)
	}
	_, err := c.Search(t.Context(), tg, tok, engage.SearchRequest{Channel: "sms", CustomerAddress: "big", BizAddress: "b"})
	if e := wantKind(t, err, engage.KindUpstream); e.HTTPStatus != 200 || !strings.Contains(err.Error(), "over 200 bytes") {
		t.Fatalf("got %v", err)
	}
}

// fake serves one canned answer, for what the simulator does not do on purpose.
func fake(t *testing.T, h http.HandlerFunc) engage.Target {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return engage.Target{BaseURL: srv.URL + "/api/v1", Domain: domain}
}

// A proxy or a misbehaving Engage that echoes the request's Authorization header in a
// successful answer must not put our bearer token into what the client returns: Search's
// raw body and description become flow variables (responsePayload), and Create's error
// texts go to flows and logs.
func TestATokenEchoedInASuccessfulAnswerIsRedacted(t *testing.T) {
	t.Parallel()
	echo := func(w http.ResponseWriter, r *http.Request, value string) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		quoted, _ := json.Marshal(tok)
		escaped := strings.ReplaceAll(string(quoted), "/", `\/`) // as PHP's json_encode writes it
		// As .NET's encoder writes "+", and any character may be written.
		uescaped := fmt.Sprintf(`\u%04x`, tok[0]) + strings.ReplaceAll(tok[1:], "+", `\u002B`)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"status":200,"code":1000,"description":"echo %s %s %s","tid":"%s","value":%s}`,
			strings.Trim(string(quoted), `"`), strings.Trim(escaped, `"`), uescaped, uescaped, strings.ReplaceAll(value, "TOKEN", uescaped))
	}
	tg := fake(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/search") {
			echo(w, r, `{"conversationId":"c1","aliasId":"TOKEN","chatExist":true,"status":"active"}`)
			return
		}
		echo(w, r, `{}`) // create without a conversationId: an error built from a 200
	})
	c := engage.New(engage.Options{})
	for _, token := range []string{"tok_plain-0123456789", "tok/with/slashes+and=="} {
		resp, err := c.Search(t.Context(), tg, token, engage.SearchRequest{Channel: "sms"})
		if err != nil {
			t.Fatal(err)
		}
		texts := []string{string(resp.Raw), resp.Description, resp.Value.AliasID}
		appended, err := c.Append(t.Context(), tg, token, "c1", textMessage("x"))
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, appended.TID, appended.Description)
		_, err = c.Create(t.Context(), tg, token, engage.CreateRequest{Channel: "sms"})
		e := wantKind(t, err, engage.KindUpstream)
		texts = append(texts, err.Error(), e.Description, string(e.Raw))
		escaped := strings.ReplaceAll(token, "/", `\/`)
		for _, s := range texts {
			if strings.Contains(s, token) || strings.Contains(s, escaped) || !strings.Contains(s, "[redacted]") {
				t.Errorf("token %q: %q holds it, or no redaction", token, s)
			}
		}
	}
}

// JSON may escape any "/" of a string as "\/" and leave the next one as it is (an
// encoder that escapes only "</", say). A token with two slashes echoed so is neither
// the token as written nor the token with every slash escaped, and the answer may have
// no \u escape at all: the decoded description and alias ID, and the raw body as a
// flow decodes it, must still not hold it, in a success and in a refusal alike.
func TestATokenEchoedWithOnlySomeOfItsSlashesEscapedIsRedacted(t *testing.T) {
	t.Parallel()
	const token = "tok/half/escaped+0123456789=="
	partly := strings.Replace(token, "/", `\/`, 1) // tok\/half/escaped...
	tg := fake(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ") != token {
			t.Errorf("Authorization %q", r.Header.Get("Authorization"))
		}
		w.Header().Set("Content-Type", "application/json")
		if strings.HasSuffix(r.URL.Path, "/close") {
			w.WriteHeader(http.StatusBadRequest)
		}
		fmt.Fprintf(w, `{"status":200,"code":1000,"description":"echo %s","tid":"%s","value":{"conversationId":"c1","aliasId":"%s","chatExist":true,"status":"active"}}`,
			partly, partly, partly)
	})
	c := engage.New(engage.Options{})
	resp, err := c.Search(t.Context(), tg, token, engage.SearchRequest{Channel: "sms"})
	if err != nil {
		t.Fatal(err)
	}
	texts := map[string]string{"search description": resp.Description, "search aliasId": resp.Value.AliasID, "search raw": string(resp.Raw)}
	_, err = c.Close(t.Context(), tg, token, "c1")
	e := wantKind(t, err, engage.KindBusiness)
	texts["close error"], texts["close description"], texts["close raw"] = err.Error(), e.Description, string(e.Raw)
	for what, s := range texts {
		var decoded string
		if raw := strings.TrimSpace(s); strings.HasPrefix(raw, "{") {
			// What a flow reading responsePayload as JSON sees.
			var v struct {
				Description string `json:"description"`
			}
			if err := json.Unmarshal([]byte(raw), &v); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			decoded = v.Description
		}
		if strings.Contains(s, token) || strings.Contains(s, partly) || strings.Contains(decoded, token) || !strings.Contains(s, "[redacted]") {
			t.Errorf("%s: %q holds the token, or no redaction", what, s)
		}
	}
}

// An answer that is not valid JSON (a control character inside a string, a body cut
// off inside one) still goes out whole: as an error's Raw, which Search's
// responsePayload carries to the flow. A token echoed there with escapes must be
// redacted all the same, not only when its literal decodes.
func TestATokenEchoedWithEscapesInAnAnswerThatIsNotJSONIsRedacted(t *testing.T) {
	t.Parallel()
	const token = "tok/half/escaped+0123456789=="
	forms := map[string]string{
		"slash":   strings.Replace(token, "/", `\/`, 1),
		"unicode": `\u0074` + token[1:],
	}
	c := engage.New(engage.Options{})
	for name, form := range forms {
		for shape, body := range map[string]string{
			"a tab inside the literal": "{\"status\":400,\"code\":1,\"description\":\"bad\t" + form + "\"}",
			"a body cut off inside it": `{"status":200,"code":1000,"description":"echo ` + form,
		} {
			tg := fake(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				if strings.HasPrefix(body, `{"status":400`) {
					w.WriteHeader(http.StatusBadRequest)
				}
				_, _ = w.Write([]byte(body))
			})
			_, err := c.Search(t.Context(), tg, token, engage.SearchRequest{Channel: "sms"})
			e := wantKind(t, err, engage.KindUpstream)
			if s := err.Error(); strings.Contains(s, token) || strings.Contains(s, form) {
				t.Errorf("%s, %s: error %q holds the token", name, shape, s)
			}
			if s := string(e.Raw); strings.Contains(s, token) || strings.Contains(s, form) || !strings.Contains(s, "[redacted]") {
				t.Errorf("%s, %s: raw %q holds the token, or no redaction", name, shape, s)
			}
		}
	}
}

func TestAnswersThatAreNotEngageEnvelopesAreUpstream(t *testing.T) {
	t.Parallel()
	c := engage.New(engage.Options{})
	for name, h := range map[string]http.HandlerFunc{
		"HTML 404 from a proxy": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(404)
			_, _ = w.Write([]byte("<html>not found</html>"))
		},
		"redirect": func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://127.0.0.1:1/elsewhere", http.StatusTemporaryRedirect)
		},
		"200 with an array": func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`[1,2]`)) },
		"200 with null":     func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`null`)) },
		"200 empty":         func(w http.ResponseWriter, r *http.Request) {},
		// JSON, but a gateway's, not Engage's envelope (no status, no code).
		"JSON 404 from a gateway": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(404)
			_, _ = w.Write([]byte(`{"message":"no Route matched with those values"}`))
		},
		"HTML 403 from a WAF": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(403)
			_, _ = w.Write([]byte("<html>Request blocked</html>"))
		},
		"empty object 400": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(400)
			_, _ = w.Write([]byte(`{}`))
		},
		// A 200 is no more Engage's verdict than a 404 is without the envelope: read as
		// one, it would be "no conversation" to a search and "done" to a mutation.
		"JSON 200 from a gateway": func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(`{"message":"ok"}`))
		},
		"empty object 200": func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`{}`)) },
		// Engage's envelope repeats the HTTP status: a refusal inside a 200 is no success.
		"200 whose envelope says 409": func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(`{"status":409,"code":1409,"description":"conversation not closed"}`))
		},
		"200 whose envelope says \"500\"": func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(`{"status":"500","code":1500,"description":"internal error"}`))
		},
		"200 whose envelope says 302": func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(`{"status":302,"code":1000}`))
		},
		"create without conversationId": func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/conversations") {
				_, _ = w.Write([]byte(`{"status":201,"code":1000,"value":{}}`))
				return
			}
			_, _ = w.Write([]byte(`[]`))
		},
	} {
		tg := fake(t, h)
		_, err := c.Search(t.Context(), tg, "tok", engage.SearchRequest{Channel: "sms"})
		wantKind(t, err, engage.KindUpstream)
		_, err = c.Create(t.Context(), tg, "tok", engage.CreateRequest{Channel: "sms"})
		if engage.KindOf(err) != engage.KindUpstream {
			t.Errorf("%s: create got %v", name, err)
		}
		if _, err = c.Close(t.Context(), tg, "tok", "c1"); engage.KindOf(err) != engage.KindUpstream {
			t.Errorf("%s: close got %v", name, err)
		}
	}
}

func TestRetryAfterAsHTTPDate(t *testing.T) {
	t.Parallel()
	tg := fake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", time.Now().Add(90*time.Second).UTC().Format(http.TimeFormat))
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"status":429,"code":1029,"description":"slow down"}`))
	})
	_, err := engage.New(engage.Options{}).Close(t.Context(), tg, "tok", "c1")
	e := wantKind(t, err, engage.KindRateLimited)
	if e.RetryAfter < 80*time.Second || e.RetryAfter > 91*time.Second || e.Code != 1029 || e.Description != "slow down" {
		t.Fatalf("got %+v", e)
	}
}

func TestInvalidTargetOrRequestNeverLeaves(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	c := engage.New(engage.Options{Observer: rec})
	_, err := c.Search(t.Context(), engage.Target{BaseURL: "https://x/api/v1"}, "tok", engage.SearchRequest{})
	wantKind(t, err, engage.KindInvalidRequest)
	_, err = c.Append(t.Context(), engage.Target{BaseURL: "https://x/api/v1", Domain: "d"}, "tok", "c1",
		engage.Message{LcCarousel: json.RawMessage(`{not json`)})
	wantKind(t, err, engage.KindInvalidRequest)
	_, err = c.AddParticipant(t.Context(), engage.Target{BaseURL: "https://x/api/v1", Domain: "d"}, "tok", "c1", "")
	wantKind(t, err, engage.KindInvalidRequest)
	if rec.last() != "" {
		t.Fatalf("observer saw %q", rec.last())
	}
}

func TestErrorsNeverContainTheToken(t *testing.T) {
	t.Parallel()
	const canary = "CANARY-7f3a9c-token-do-not-leak"
	f := setup(t)
	id := f.create(t)
	tok := f.sim.AccessToken(domain)
	search := engage.SearchRequest{Channel: "sms", CustomerAddress: "c", BizAddress: "b"}
	var errs []error
	collect := func(_ any, err error) { errs = append(errs, err) }

	// Unauthorized with the canary as the token.
	collect(f.client.Search(t.Context(), f.target, canary, search))
	// Business, rate limited, upstream (status, reset, malformed), timeout, canceled.
	collect(f.client.Close(t.Context(), f.target, tok, "nope"))
	for _, fault := range []engagesim.Fault{{Status: 429}, {Status: 503}, {Reset: true}, {Malformed: true}} {
		fault.Op, fault.Times = engage.OpAppend, 1
		f.sim.InjectFault(fault)
		collect(f.client.Append(t.Context(), f.target, canary, id, textMessage("x")))
	}
	f.sim.InjectFault(engagesim.Fault{Op: engage.OpSearch, Latency: time.Minute, Times: 2})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	collect(f.client.Search(ctx, f.target, canary, search))
	cctx, ccancel := context.WithCancel(t.Context())
	ccancel()
	collect(f.client.Search(cctx, f.target, canary, search))
	// A server that echoes the token back in every place it can.
	echo := fake(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"status":400,"code":1,"description":"bad header ` + r.Header.Get("Authorization") + `"}`))
	})
	collect(f.client.Search(t.Context(), echo, canary, search))
	echoRedirect := fake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "/x?"+r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusFound)
		_, _ = w.Write([]byte(r.Header.Get("Authorization")))
	})
	collect(f.client.Search(t.Context(), echoRedirect, canary, search))
	// A Location net/http cannot parse: its own error quotes it, token and all.
	badLocation := fake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "%zz"+r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusFound)
	})
	collect(f.client.Search(t.Context(), badLocation, canary, search))
	collect(f.client.Search(t.Context(), engage.Target{BaseURL: "http://127.0.0.1:1/api/v1", Domain: domain}, canary, search))

	kinds := map[engage.Kind]bool{}
	for i, err := range errs {
		if err == nil {
			t.Fatalf("call %d did not fail", i)
		}
		e, _ := errors.AsType[*engage.Error](err)
		kinds[e.Kind] = true
		for _, s := range []string{err.Error(), e.Description, string(e.Raw)} {
			if strings.Contains(s, canary) {
				t.Errorf("call %d (%s) leaks the token: %s", i, e.Kind, s)
			}
		}
		for u := errors.Unwrap(err); u != nil; u = errors.Unwrap(u) {
			if strings.Contains(u.Error(), canary) {
				t.Errorf("call %d (%s) leaks the token in its chain: %s", i, e.Kind, u)
			}
		}
	}
	for _, k := range []engage.Kind{engage.KindUnauthorized, engage.KindBusiness, engage.KindRateLimited, engage.KindUpstream, engage.KindTimeout, engage.KindCanceled} {
		if !kinds[k] {
			t.Errorf("no error of kind %s was checked", k)
		}
	}
}

func TestClientIsSafeUnderConcurrency(t *testing.T) {
	t.Parallel()
	f := setup(t)
	const workers = 200
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for i := range workers {
		wg.Go(func() {
			cust := "cust-" + string(rune('A'+i%26)) + "-" + time.Duration(i).String()
			resp, err := f.client.Create(t.Context(), f.target, f.token, engage.CreateRequest{Channel: "sms", BizAddress: "b", CustomerAddress: cust, Messages: []engage.Message{textMessage("hi")}})
			if err != nil {
				errc <- err
				return
			}
			if _, err := f.client.Append(t.Context(), f.target, f.token, resp.ConversationID, textMessage("again")); err != nil {
				errc <- err
				return
			}
			s, err := f.client.Search(t.Context(), f.target, f.token, engage.SearchRequest{Channel: "sms", CustomerAddress: cust, BizAddress: "b"})
			if err != nil {
				errc <- err
				return
			}
			if s.Value.ConversationID != resp.ConversationID {
				errc <- errors.New("search found another conversation")
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	for _, op := range []string{engage.OpCreate, engage.OpAppend, engage.OpSearch} {
		if n := f.sim.Calls(op); n != workers {
			t.Errorf("%s calls %d, want %d", op, n, workers)
		}
	}
}

func BenchmarkClientSearch(b *testing.B) {
	f := setup(b)
	f.sim.SeedConversation(domain, engagesim.Conversation{Channel: "sms", CustomerAddress: "c", BizAddress: "b", Status: "active", AliasID: "a1"})
	req := engage.SearchRequest{Channel: "sms", CustomerAddress: "c", BizAddress: "b"}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, err := f.client.Search(ctx, f.target, f.token, req)
		if err != nil || !resp.Value.ChatExist {
			b.Fatalf("%+v %v", resp, err)
		}
	}
}

func TestRedirectsAreNeverFollowedAndAreUpstream(t *testing.T) {
	t.Parallel()
	var followed atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { followed.Add(1) }))
	t.Cleanup(elsewhere.Close)
	for _, status := range []int{http.StatusMultipleChoices, http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		tg := fake(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", elsewhere.URL+r.URL.Path)
			w.WriteHeader(status)
			_, _ = w.Write([]byte(`{"status":200,"code":1000,"value":{"conversationId":"c1"}}`))
		})
		rec := &recorder{}
		c := engage.New(engage.Options{Observer: rec})
		_, err := c.Search(t.Context(), tg, "tok", engage.SearchRequest{Channel: "sms"})
		if e := wantKind(t, err, engage.KindUpstream); e.HTTPStatus != status || !strings.Contains(err.Error(), "unexpected HTTP status") {
			t.Errorf("%d: search got %+v", status, e)
		}
		_, err = c.Append(t.Context(), tg, "tok", "c1", textMessage("x"))
		if e := wantKind(t, err, engage.KindUpstream); e.HTTPStatus != status {
			t.Errorf("%d: append got %+v", status, e)
		}
		if got, want := rec.last(), "append "+strconv.Itoa(status); got != want {
			t.Errorf("observer saw %q, want %q", got, want)
		}
	}
	if n := followed.Load(); n != 0 {
		t.Fatalf("%d redirects were followed", n)
	}
}

func TestARedirectToAnUnreadableLocationIsABadAnswerNotAConnectionFailure(t *testing.T) {
	t.Parallel()
	tg := fake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "http://[::1/%zz")
		w.WriteHeader(http.StatusFound)
	})
	rec := &recorder{}
	_, err := engage.New(engage.Options{Observer: rec}).Search(t.Context(), tg, "tok", engage.SearchRequest{Channel: "sms"})
	// HTTP status 0 would read as a connection failure, which a search retries.
	if e := wantKind(t, err, engage.KindUpstream); e.HTTPStatus != http.StatusFound {
		t.Fatalf("got %+v", e)
	}
	if got := rec.last(); got != "search 302" {
		t.Errorf("observer saw %q", got)
	}
}

// 101 Switching Protocols hands over the bare connection, which the deadline no longer
// bounds: it is refused at once, never read until the peer closes.
func TestASwitchingProtocolsAnswerIsRefusedWithoutWaiting(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	tg := fake(t, func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		_, _ = buf.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		_ = buf.Flush()
		<-release // and never says more
	})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := engage.New(engage.Options{}).Close(ctx, tg, "tok", "c1")
		done <- err
	}()
	select {
	case err := <-done:
		if e := wantKind(t, err, engage.KindUpstream); e.HTTPStatus != http.StatusSwitchingProtocols || ctx.Err() != nil {
			t.Fatalf("got %+v after the deadline: %v", e, ctx.Err())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call still waits on the switched connection, 8 s past its deadline")
	}
}

// answered is a transport that reports when an answer's headers have arrived.
type answered struct {
	http.RoundTripper
	headers chan struct{}
}

func (a answered) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := a.RoundTripper.RoundTrip(r)
	if err == nil {
		close(a.headers)
	}
	return resp, err
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// stallingBody answers headers and half a body, then waits for the caller to leave.
func stallingBody(t *testing.T) engage.Target {
	return fake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"status":200,"code":1000,`))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
}

func TestTimeoutWhileReadingTheAnswerIsATimeout(t *testing.T) {
	t.Parallel()
	tg := stallingBody(t)
	// The deadline must pass after the headers, while the body is read. A busy machine
	// (the race detector, other packages' tests) can take longer than a short deadline to
	// deliver the headers, so each try that misses them tries again with a longer one.
	// Each try has its own observer, so what is checked below is the last try's alone.
	var (
		err error
		rec *recorder
	)
	for deadline := 100 * time.Millisecond; ; deadline *= 4 {
		rec = &recorder{}
		tr := answered{engage.NewTransport(), make(chan struct{})}
		c := engage.New(engage.Options{Observer: rec, Transport: tr})
		ctx, cancel := context.WithTimeout(t.Context(), deadline)
		_, err = c.Search(ctx, tg, "tok", engage.SearchRequest{Channel: "sms"})
		cancel()
		if isClosed(tr.headers) {
			break
		}
		if deadline >= 10*time.Second {
			t.Fatalf("the deadline (%v) passed before the answer's headers: %v", deadline, err)
		}
	}
	if e := wantKind(t, err, engage.KindTimeout); e.HTTPStatus != 0 {
		t.Fatalf("got %+v", e)
	}
	if got := rec.calls; len(got) != 1 || got[0] != "search timeout" {
		t.Errorf("observer saw %q, want one search timeout", got)
	}
}

func TestCancellationWhileReadingTheAnswerIsCanceled(t *testing.T) {
	t.Parallel()
	tg := stallingBody(t)
	rec := &recorder{}
	tr := answered{engage.NewTransport(), make(chan struct{})}
	c := engage.New(engage.Options{Observer: rec, Transport: tr})
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-tr.headers
		cancel()
	}()
	_, err := c.Search(ctx, tg, "tok", engage.SearchRequest{Channel: "sms"})
	if e := wantKind(t, err, engage.KindCanceled); e.HTTPStatus != 0 {
		t.Fatalf("got %+v", e)
	}
	if got := rec.last(); got != "search canceled" {
		t.Errorf("observer saw %q", got)
	}
}

func TestHTTPSToAnHTTPServerIsUpstream(t *testing.T) {
	t.Parallel()
	tg := fake(t, func(w http.ResponseWriter, r *http.Request) {})
	tg.BaseURL = "https" + strings.TrimPrefix(tg.BaseURL, "http")
	_, err := engage.New(engage.Options{}).Search(t.Context(), tg, "tok", engage.SearchRequest{Channel: "sms"})
	if e := wantKind(t, err, engage.KindUpstream); e.HTTPStatus != 0 || !errors.Is(err, http.ErrSchemeMismatch) {
		t.Fatalf("got %v", err)
	}
}

// A byte order mark before the JSON (IIS and .NET servers write one) is not a malformed
// answer, on a success or on a refusal.
func TestAnAnswerStartingWithAByteOrderMarkDecodes(t *testing.T) {
	t.Parallel()
	tg := fake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		if strings.HasSuffix(r.URL.Path, "/close") {
			w.WriteHeader(409)
			_, _ = w.Write([]byte("\xef\xbb\xbf" + `{"status":409,"code":1009,"description":"conversation not closed"}`))
			return
		}
		_, _ = w.Write([]byte("\xef\xbb\xbf" + `{"status":200,"code":1000,"description":"found","value":{"conversationId":"c1","status":"active"}}`))
	})
	c := engage.New(engage.Options{})
	resp, err := c.Search(t.Context(), tg, "tok", engage.SearchRequest{Channel: "sms"})
	if err != nil || resp.Value.ConversationID != "c1" {
		t.Fatalf("search: %+v %v", resp, err)
	}
	_, err = c.Close(t.Context(), tg, "tok", "c1")
	if e := wantKind(t, err, engage.KindBusiness); e.Code != 1009 {
		t.Fatalf("close: %+v", e)
	}
}

// MaxResponseBytes is the largest answer read: one of exactly that size decodes, one a
// byte larger is KindUpstream.
func TestAnAnswerOfExactlyTheSizeLimitIsReadAndOneByteMoreIsNot(t *testing.T) {
	t.Parallel()
	const body = `{"status":200,"code":1000,"description":"ok","value":{"conversationId":"c1","status":"active"}}`
	tg := fake(t, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(body)) })
	for _, tc := range []struct {
		name string
		max  int64
		ok   bool
	}{
		{"a limit of the answer's size", int64(len(body)), true},
		{"a limit a byte larger", int64(len(body)) + 1, true},
		{"a limit a byte smaller", int64(len(body)) - 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := engage.New(engage.Options{MaxResponseBytes: tc.max})
			t.Cleanup(c.CloseIdleConnections)
			resp, err := c.Search(t.Context(), tg, "tok", engage.SearchRequest{Channel: "sms"})
			if !tc.ok {
				wantKind(t, err, engage.KindUpstream)
				return
			}
			if err != nil || resp.Value.ConversationID != "c1" || string(resp.Raw) != body {
				t.Fatalf("got %+v, %v", resp, err)
			}
		})
	}
}

// The status ranges at their edges: any 2xx is an answer, any 4xx with Engage's envelope
// is Engage saying no, any 5xx is Engage failing.
func TestEveryStatusOfARangeIsClassifiedAsItsRange(t *testing.T) {
	t.Parallel()
	c := engage.New(engage.Options{})
	for _, tc := range []struct {
		status int
		want   engage.Kind
	}{
		{200, ""}, {299, ""},
		{400, engage.KindBusiness}, {422, engage.KindBusiness}, {499, engage.KindBusiness},
		{500, engage.KindUpstream}, {599, engage.KindUpstream},
	} {
		t.Run(fmt.Sprintf("HTTP %d", tc.status), func(t *testing.T) {
			t.Parallel()
			tg := fake(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				fmt.Fprintf(w, `{"status":%d,"code":1001,"description":"d","value":{}}`, tc.status)
			})
			_, err := c.Search(t.Context(), tg, "tok", engage.SearchRequest{Channel: "sms"})
			if got := engage.KindOf(err); got != tc.want {
				t.Fatalf("kind %q (%v), want %q", got, err, tc.want)
			}
		})
	}
}

// The token is redacted however little of the answer surrounds it: a body that is the
// token alone, and an echo whose only escapes are PHP's "\/".
func TestATokenIsRedactedFromABodyThatIsTheTokenOrWritesItsSlashesEscaped(t *testing.T) {
	t.Parallel()
	const token = "tok/with/slashes"
	escaped := strings.ReplaceAll(token, "/", `\/`)
	c := engage.New(engage.Options{})
	t.Run("a 500 whose body is the token", func(t *testing.T) {
		t.Parallel()
		tg := fake(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(token))
		})
		_, err := c.Search(t.Context(), tg, token, engage.SearchRequest{Channel: "sms"})
		e := wantKind(t, err, engage.KindUpstream)
		for _, s := range []string{err.Error(), string(e.Raw)} {
			if strings.Contains(s, token) {
				t.Errorf("%q holds the token", s)
			}
		}
	})
	t.Run("a 200 that echoes it with escaped slashes", func(t *testing.T) {
		t.Parallel()
		tg := fake(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"status":200,"code":1000,"description":"ok","value":{"conversationId":"c1","aliasId":"%s","chatExist":true,"status":"active"}}`, escaped)
		})
		resp, err := c.Search(t.Context(), tg, token, engage.SearchRequest{Channel: "sms"})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{string(resp.Raw), resp.Value.AliasID} {
			if strings.Contains(s, token) || strings.Contains(s, escaped) || !strings.Contains(s, "[redacted]") {
				t.Errorf("%q holds the token, or no redaction", s)
			}
		}
	})
	// Outside any JSON string (a gateway's text page): no literal to decode, the escaped
	// form itself is what is found and redacted.
	t.Run("a 502 whose text body writes it with escaped slashes outside any string", func(t *testing.T) {
		t.Parallel()
		tg := fake(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprintf(w, "upstream refused Bearer %s at the gateway", escaped)
		})
		_, err := c.Search(t.Context(), tg, token, engage.SearchRequest{Channel: "sms"})
		e := wantKind(t, err, engage.KindUpstream)
		for _, s := range []string{err.Error(), string(e.Raw)} {
			if strings.Contains(s, token) || strings.Contains(s, escaped) {
				t.Errorf("%q holds the token", s)
			}
		}
		if want := "upstream refused Bearer [redacted] at the gateway"; string(e.Raw) != want {
			t.Errorf("raw %q, want %q", e.Raw, want)
		}
	})
}

// quotingTransport fails every request with an error that quotes its Authorization
// header, as a proxy or a custom transport may.
type quotingTransport struct{}

func (quotingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return nil, fmt.Errorf("proxy refused the request with %q", r.Header.Get("Authorization"))
}

// A transport's error that quotes the token is redacted too, in the error's text and in
// every error of its chain: errors go to logs and flow outputs.
func TestATransportErrorThatQuotesTheTokenIsRedacted(t *testing.T) {
	t.Parallel()
	const token = "CANARY-transport-token-31c4"
	c := engage.New(engage.Options{Transport: quotingTransport{}})
	_, err := c.Search(t.Context(), engage.Target{BaseURL: "http://engage.invalid/api/v1", Domain: domain}, token, engage.SearchRequest{Channel: "sms"})
	wantKind(t, err, engage.KindUpstream)
	if !strings.Contains(err.Error(), "proxy refused the request") || !strings.Contains(err.Error(), "[redacted]") {
		t.Errorf("%q lost the transport's error, or shows no redaction", err)
	}
	for u := error(err); u != nil; u = errors.Unwrap(u) {
		if strings.Contains(u.Error(), token) {
			t.Errorf("%q holds the token", u)
		}
	}
}

// A token written with \u escapes inside a string literal that also holds escaped quotes
// (an echo that quotes the header) is redacted: the literal ends at its closing quote,
// not at an escaped one.
func TestATokenWithEscapesInALiteralWithEscapedQuotesIsRedacted(t *testing.T) {
	t.Parallel()
	const token = "tok+with+plus"
	uescaped := strings.ReplaceAll(token, "+", `\u002B`)
	tg := fake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"status":200,"code":1000,"description":"header \"Bearer %s\" echoed","value":{"conversationId":"c1","chatExist":true,"status":"active"}}`, uescaped)
	})
	resp, err := engage.New(engage.Options{}).Search(t.Context(), tg, token, engage.SearchRequest{Channel: "sms"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{string(resp.Raw), resp.Description} {
		if strings.Contains(s, token) || strings.Contains(s, uescaped) || !strings.Contains(s, "[redacted]") {
			t.Errorf("%q holds the token, or no redaction", s)
		}
	}
}

// Engage's envelope is a JSON object with "status" or "code" (docs/engage.md): a refusal
// that carries only one of them is still Engage's, a business error or a refused token,
// not a gateway's answer.
func TestARefusalWithEitherEnvelopeKeyIsEngages(t *testing.T) {
	t.Parallel()
	c := engage.New(engage.Options{})
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   engage.Kind
	}{
		{"404 with a code only", 404, `{"code":1004,"description":"no such conversation"}`, engage.KindBusiness},
		{"409 with a status only", 409, `{"status":409,"description":"not closed"}`, engage.KindBusiness},
		{"403 with a code only", 403, `{"code":1003,"description":"not this domain"}`, engage.KindUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tg := fake(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			})
			_, err := c.Close(t.Context(), tg, "tok", "c1")
			e := wantKind(t, err, tc.want)
			if e.HTTPStatus != tc.status || e.Description == "" {
				t.Fatalf("got %+v, want Engage's status and description", e)
			}
		})
	}
}

// A 2xx answer that cannot be taken as done or found may still say, in a readable
// envelope, what Engage meant: the failure carries Engage's code and description, as
// every failure Engage answered does (ENGAGE.md §2), so a flow's onError shows them.
// Without a readable envelope there are none to carry.
func TestABadAnswerWithAReadableEnvelopeCarriesEngagesCodeAndDescription(t *testing.T) {
	t.Parallel()
	c := engage.New(engage.Options{})
	for _, tc := range []struct {
		name, body string
		code       int
		desc       string
	}{
		{"a 200 whose envelope says 409", `{"status":409,"code":1409,"description":"conversation not closed"}`, 1409, "conversation not closed"},
		{"a value that is not an object", `{"status":200,"code":1000,"description":"ok","value":[]}`, 1000, "ok"},
		{"a value field of the wrong type", `{"status":200,"code":"1000","description":"ok","value":{"conversationId":"c1","chatExist":"perhaps"}}`, 1000, "ok"},
		{"a truncated body", `{"status":200,"code":1000,"description":"ok","value":{"conv`, 0, ""},
		{"a gateway's JSON", `{"message":"ok","code":{}}`, 0, ""},
	} {
		tg := fake(t, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(tc.body)) })
		_, err := c.Search(t.Context(), tg, "tok", engage.SearchRequest{Channel: "sms"})
		e := wantKind(t, err, engage.KindUpstream)
		if e.HTTPStatus != http.StatusOK || e.Code != tc.code || e.Description != tc.desc {
			t.Errorf("%s: HTTP %d, code %d, description %q; want 200, %d, %q", tc.name, e.HTTPStatus, e.Code, e.Description, tc.code, tc.desc)
		}
	}
}

// A 2xx answer is done only when its envelope's status, if it gives one, is a 2xx too
// (200 to 299); an envelope whose keys are there with zero values is still Engage's
// envelope (it has "status" or "code"), not a gateway's {}.
func TestA2xxAnswerIsDoneOnlyWhenItsEnvelopesStatusIsA2xx(t *testing.T) {
	t.Parallel()
	c := engage.New(engage.Options{})
	for _, tc := range []struct {
		body string
		done bool
	}{
		{`{"status":199,"code":1000,"description":"ok","tid":"t1"}`, false},
		{`{"status":200,"code":1000,"description":"ok","tid":"t1"}`, true},
		{`{"status":299,"code":1000,"description":"ok","tid":"t1"}`, true},
		{`{"status":300,"code":1000,"description":"ok","tid":"t1"}`, false},
		{`{"status":0,"code":0,"description":"ok","tid":"t1"}`, true},
		{`{"code":0,"description":"ok","tid":"t1"}`, true},
		{`{"description":"ok","tid":"t1"}`, false},
	} {
		tg := fake(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(tc.body))
		})
		_, err := c.Close(t.Context(), tg, "tok", "c1")
		if tc.done {
			if err != nil {
				t.Errorf("%s: %v, want done", tc.body, err)
			}
			continue
		}
		if e, ok := errors.AsType[*engage.Error](err); !ok || e.Kind != engage.KindUpstream || e.HTTPStatus != http.StatusOK {
			t.Errorf("%s: %v, want an upstream failure with HTTP 200", tc.body, err)
		}
	}
}

// An error's text says what Engage answered (status, code, description, Retry-After)
// and nothing it did not: no "retry after 0s" without a Retry-After, no "unexpected
// status" for a 5xx, which is Engage failing as expected.
func TestAnErrorsTextSaysWhatEngageAnsweredAndNothingMore(t *testing.T) {
	t.Parallel()
	c := engage.New(engage.Options{})
	for _, tc := range []struct {
		status     int
		retryAfter string
		body, want string
	}{
		{503, "", `{"status":503,"code":1,"description":"Engage is down"}`, "engage close: upstream: HTTP 503, code 1, Engage is down"},
		{500, "", `{"status":500}`, "engage close: upstream: HTTP 500"},
		{409, "", `{"status":409,"code":1009,"description":"not closed"}`, "engage close: business: HTTP 409, code 1009, not closed"},
		{429, "", `{"status":429,"code":1029}`, "engage close: rate_limited: HTTP 429, code 1029"},
		{429, "30", `{"status":429,"code":1029}`, "engage close: rate_limited: HTTP 429, code 1029, retry after 30s"},
	} {
		tg := fake(t, func(w http.ResponseWriter, r *http.Request) {
			if tc.retryAfter != "" {
				w.Header().Set("Retry-After", tc.retryAfter)
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(tc.status)
			_, _ = w.Write([]byte(tc.body))
		})
		_, err := c.Close(t.Context(), tg, "tok", "c1")
		if err == nil || err.Error() != tc.want {
			t.Errorf("HTTP %d: %v, want %q", tc.status, err, tc.want)
		}
	}
}

// A gateway that quotes the request URL it saw writes the token percent-encoded (all of
// it or only some characters, in either case of hex), and one that dumps the request
// writes it in base64, alone or inside a larger encoded text, at any offset of a 3-byte
// group. Each is the token to whoever reads it: none may reach a description, a raw body
// (a flow's responsePayload) or an error text, in a success or in a refusal.
func TestATokenEchoedPercentEncodedOrInBase64IsRedacted(t *testing.T) {
	t.Parallel()
	const token = "tok/with+slashes=and/0123456789"
	b64 := func(enc *base64.Encoding, s string) string { return enc.EncodeToString([]byte(s)) }
	forms := []string{
		url.QueryEscape(token),
		url.PathEscape(token),
		strings.ReplaceAll(url.QueryEscape(token), "%2F", "%2f"),
		strings.ReplaceAll(token, "/", "%2F"),
		b64(base64.StdEncoding, token),
		b64(base64.StdEncoding, "Bearer "+token),
		b64(base64.StdEncoding, "Bearer: "+token+"\r\nAccept: application/json"),
		b64(base64.RawURLEncoding, "Authorization: Bearer "+token),
	}
	echo := strings.Join(forms, " ")
	resp, e := echoedInASuccessAndARefusal(t, token,
		fmt.Sprintf(`{"status":200,"code":1000,"description":"echo %s","value":{"conversationId":"c1","aliasId":"%s","chatExist":true,"status":"active"}}`, echo, forms[0]),
		fmt.Sprintf(`{"status":400,"code":1001,"description":"bad request GET /x?access_token=%s %s"}`, forms[0], echo))
	texts := map[string]string{
		"search raw": string(resp.Raw), "search description": resp.Description, "alias ID": resp.Value.AliasID,
		"refusal raw": string(e.Raw), "refusal description": e.Description, "error text": e.Error(),
	}
	for where, s := range texts {
		for i, form := range forms {
			if strings.Contains(s, form) {
				t.Errorf("the %s holds encoded form %d of the token: %q", where, i, s)
			}
		}
		if !strings.Contains(s, "[redacted]") {
			t.Errorf("the %s redacts nothing: %q", where, s)
		}
	}
	// What surrounds the token is kept: only the token's own encoding is redacted.
	if !strings.Contains(e.Description, "bad request GET /x?access_token=[redacted]") {
		t.Errorf("refusal description %q", e.Description)
	}
}

// echoedInASuccessAndARefusal runs a search that Engage answers with success (a 200) and
// an append it refuses with refusal (a 400), both with token, and returns what the
// client made of each: the texts a redaction test searches for the token.
func echoedInASuccessAndARefusal(t *testing.T, token, success, refusal string) (*engage.SearchResponse, *engage.Error) {
	t.Helper()
	tg := fake(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/search") {
			fmt.Fprint(w, success)
			return
		}
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, refusal)
	})
	c := engage.New(engage.Options{})
	resp, err := c.Search(t.Context(), tg, token, engage.SearchRequest{Channel: "sms"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Append(t.Context(), tg, token, "c1", textMessage("x"))
	return resp, wantKind(t, err, engage.KindBusiness)
}

// A gateway's error often quotes the upstream's JSON answer as a string, so that answer's
// escapes are escaped again: the token written with "\/" or "\u" escapes inside it reads
// as neither in the body once decoded, only once decoded twice, which is what a flow does
// with a responsePayload whose description is JSON. The raw body, not only the decoded
// description, must not hold it, in a refusal and in a success alike.
func TestATokenInAJSONTextQuotedInsideTheAnswerIsRedacted(t *testing.T) {
	t.Parallel()
	const token = "tok/with/slash+0123456789abcdef"
	innerSlashes := `{"auth":"Bearer ` + strings.ReplaceAll(token, "/", `\/`) + `"}`
	innerU := `{"auth":"Bearer \u0074` + token[1:] + `"}`
	desc := func(inner string) string { q, _ := json.Marshal("upstream said " + inner); return string(q) }
	resp, e := echoedInASuccessAndARefusal(t, token,
		fmt.Sprintf(`{"status":200,"code":1000,"description":%s,"value":{"conversationId":"c1","chatExist":true,"status":"active"}}`, desc(innerU)),
		fmt.Sprintf(`{"status":400,"code":1001,"description":%s,"detail":%s}`, desc(innerSlashes), desc(innerU)))
	for where, raw := range map[string][]byte{"search": resp.Raw, "refusal": e.Raw} {
		// As a flow reads it: the body, then each of its strings as JSON again.
		var body map[string]any
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Fatalf("%s: %s: %v", where, raw, err)
		}
		for k, v := range body {
			s, _ := v.(string)
			var inner map[string]string
			_ = json.Unmarshal([]byte(strings.TrimPrefix(s, "upstream said ")), &inner)
			if strings.Contains(s, token) || strings.Contains(inner["auth"], token) {
				t.Errorf("the %s body's %s holds the token decoded twice: %s", where, k, raw)
			}
			if strings.HasPrefix(s, "upstream said") && inner["auth"] != "Bearer [redacted]" {
				t.Errorf("the %s body's %s: %q", where, k, s)
			}
		}
	}
}
