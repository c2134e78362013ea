package engagesim_test

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/noderuntime/noderuntime/internal/engagesim"
)

// These tests hold the simulator to the parts of ENGAGE.md §4 that the client's tests
// never reach: a simulator that accepted what Engage refuses would let a client's
// mistake pass every other test.

// ENGAGE.md §4's wire key of each rich message type's object, restated by hand.
var richKeys = map[string]string{
	"wab-buttons":                "wabButtons",
	"wab-list":                   "wabList",
	"wab-interactive-response":   "wabInteractiveResponse",
	"lc-form-response":           "livechatformresponse",
	"lc-carousel-response":       "lcCarouselResponse",
	"lc-quick-replies-response":  "lcQuickRepliesResponse",
	"text-with-lc-carousel":      "lcCarousel",
	"text-with-lc-quick-replies": "lcQuickReplies",
	"amb-list-picker-response":   "ambListPickerResponse",
	"amb-time-picker-response":   "ambTimePickerResponse",
	"amb-quick-replies-response": "ambQuickRepliesResponse",
	"amb-form-response":          "ambFormResponse",
}

// ENGAGE.md §3's table of the message types each channel allows, restated by hand: every
// version's column together, since Engage knows no node versions. "" is inbound and
// outbound; announcement is live chat's, text only.
var allowedTypes = []struct {
	channel, direction string
	types              []string
}{
	{"sms", "", []string{"text"}},
	{"facebook", "", []string{"text", "text-with-attachments"}},
	{"email", "", []string{"email"}},
	{"whatsapp", "", []string{"text", "text-with-attachments"}},
	{"whatsapp", "outbound", []string{"wab-buttons", "wab-list"}},
	{"whatsapp", "inbound", []string{"wab-interactive-response"}},
	{"livechat", "inbound", []string{"text", "text-with-attachments", "lc-form-response", "lc-carousel-response", "lc-quick-replies-response"}},
	{"livechat", "outbound", []string{"text-with-attachments", "text-with-lc-carousel", "text-with-lc-quick-replies"}},
	{"livechat", "announcement", []string{"text"}},
	{"amb", "", []string{"text-with-attachments", "amb-list-picker-response", "amb-time-picker-response", "amb-quick-replies-response", "amb-form-response"}},
	{"api", "", []string{"text", "text-with-attachments"}},
}

func typeAllowed(channel, direction, typ string) bool {
	for _, r := range allowedTypes {
		if r.channel == channel && (r.direction == direction || (r.direction == "" && direction != "announcement")) && slices.Contains(r.types, typ) {
			return true
		}
	}
	return false
}

// whereAllowed is the first channel and direction that allow typ.
func whereAllowed(typ string) (channel, direction string) {
	for _, r := range allowedTypes {
		if slices.Contains(r.types, typ) {
			if r.direction == "" {
				return r.channel, "inbound"
			}
			return r.channel, r.direction
		}
	}
	panic("no channel allows " + typ)
}

func TestEveryRichMessageTypeNeedsItsObjectUnderItsDocumentedKey(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	convs := map[string]string{}
	for typ, key := range richKeys {
		channel, direction := whereAllowed(typ)
		if convs[channel] == "" {
			convs[channel] = sim.SeedConversation(domain, engagesim.Conversation{Channel: channel, CustomerAddress: "c", BizAddress: "b", ThreadID: "t"})
		}
		url := sim.BaseURL() + "/" + domain + "/conversations/" + convs[channel] + "/messages"
		msg := map[string]any{"channel": channel, "direction": direction, "messagetype": typ, "timestamp": "2026-03-01T12:00:00Z"}
		if st, env := call(t, "POST", url, tok, msg); st != http.StatusBadRequest || !strings.Contains(env.Description, key) {
			t.Errorf("%s without %s: %d %+v, want 400 naming %s", typ, key, st, env, key)
		}
		msg[key] = map[string]any{"id": "x"}
		if st, env := call(t, "POST", url, tok, msg); st != http.StatusOK {
			t.Errorf("%s with %s: %d %+v, want 200", typ, key, st, env)
		}
	}
	stored := 0
	for _, id := range convs {
		c, _ := sim.Conversation(domain, id)
		stored += len(c.Messages)
	}
	if stored != len(richKeys) {
		t.Fatalf("%d messages stored, want %d", stored, len(richKeys))
	}
}

// The table decides, not the type alone: a client that sends a type on a channel or in
// a direction that does not take it (a WhatsApp list from the customer, an outbound live
// chat form response, an SMS attachment) must fail as Engage would refuse it.
func TestEachChannelTakesOnlyTheMessageTypesOfItsDirection(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	for _, channel := range []string{"sms", "facebook", "email", "livechat", "whatsapp", "amb", "api"} {
		id := sim.SeedConversation(domain, engagesim.Conversation{Channel: channel, CustomerAddress: "c", BizAddress: "b", ThreadID: "t"})
		url := sim.BaseURL() + "/" + domain + "/conversations/" + id + "/messages"
		for _, direction := range []string{"inbound", "outbound", "announcement"} {
			for _, typ := range append([]string{"text", "text-with-attachments", "email"}, slices.Sorted(maps.Keys(richKeys))...) {
				// Everything any type needs, so that only the table can refuse it.
				msg := map[string]any{"channel": channel, "direction": direction, "messagetype": typ, "timestamp": "2026-03-01T12:00:00Z",
					"text": "hi", "attachments": []any{map[string]any{"mimeType": "image/png", "fileUrl": "https://x.example/a.png"}},
					"frmAddress": "c@x.example", "plainBody": "hello"}
				if key, ok := richKeys[typ]; ok {
					msg[key] = map[string]any{"id": "x"}
				}
				st, env := call(t, "POST", url, tok, msg)
				if want := typeAllowed(channel, direction, typ); want != (st == http.StatusOK) {
					t.Errorf("%s %s %s: %d %+v, allowed %v", channel, direction, typ, st, env, want)
				} else if !want && (env.Code != engagesim.CodeInvalid || !strings.Contains(env.Description, typ)) {
					t.Errorf("%s %s %s: refused with %+v, want 400 naming the type", channel, direction, typ, env)
				}
			}
		}
	}
}

// "Each rich type carries its JSON object" (ENGAGE.md §3): an object encoded a second
// time as a string, the classic mistake, is not one; nor is a number or a boolean.
// (An array is let through: see api.go.)
func TestARichMessageObjectMustBeAJSONObject(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	for typ, key := range richKeys {
		channel, direction := whereAllowed(typ)
		id := sim.SeedConversation(domain, engagesim.Conversation{Channel: channel, CustomerAddress: "c", BizAddress: "b", ThreadID: "t"})
		url := sim.BaseURL() + "/" + domain + "/conversations/" + id + "/messages"
		for _, bad := range []any{`{"id":"x"}`, "", 42, true} {
			msg := map[string]any{"channel": channel, "direction": direction, "messagetype": typ, "timestamp": "2026-03-01T12:00:00Z", key: bad}
			if st, env := call(t, "POST", url, tok, msg); st != http.StatusBadRequest || !strings.Contains(env.Description, key) {
				t.Errorf("%s with %s = %#v: %d %+v, want 400 naming %s", typ, key, bad, st, env, key)
			}
		}
		msg := map[string]any{"channel": channel, "direction": direction, "messagetype": typ, "timestamp": "2026-03-01T12:00:00Z", key: []any{map[string]any{"id": "x"}}}
		if st, env := call(t, "POST", url, tok, msg); st != http.StatusOK {
			t.Errorf("%s with %s as an array: %d %+v, want 200", typ, key, st, env)
		}
	}
}

func TestEmailAndAttachmentMessagesNeedWhatTheyCarry(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	email := sim.SeedConversation(domain, engagesim.Conversation{Channel: "email", CustomerAddress: "c@x.example", BizAddress: "b@x.example", Subject: "s"})
	chat := sim.SeedConversation(domain, engagesim.Conversation{Channel: "livechat", CustomerAddress: "u", BizAddress: "app", ThreadID: "t"})
	base := sim.BaseURL() + "/" + domain + "/conversations/"
	mail := func(edit func(m map[string]any)) map[string]any {
		m := map[string]any{"channel": "email", "direction": "inbound", "messagetype": "email", "timestamp": "2026-03-01T12:00:00Z",
			"frmAddress": "c@x.example", "plainBody": "hello"}
		edit(m)
		return m
	}
	attach := func(a map[string]any) map[string]any {
		return map[string]any{"channel": "livechat", "direction": "inbound", "messagetype": "text-with-attachments",
			"timestamp": "2026-03-01T12:00:00Z", "attachments": []any{a}}
	}
	for name, tc := range map[string]struct {
		id   string
		body map[string]any
		want string
	}{
		"email without a sender":       {email, mail(func(m map[string]any) { delete(m, "frmAddress") }), "frmAddress"},
		"email without a body":         {email, mail(func(m map[string]any) { delete(m, "plainBody") }), "plainBody or htmlBody"},
		"email with a text only":       {email, mail(func(m map[string]any) { delete(m, "plainBody"); m["text"] = "hello" }), "plainBody or htmlBody"},
		"attachment without a URL":     {chat, attach(map[string]any{"mimeType": "image/png"}), "attachment 0"},
		"attachment without MIME type": {chat, attach(map[string]any{"fileUrl": "https://x.example/a.png"}), "attachment 0"},
	} {
		if st, env := call(t, "POST", base+tc.id+"/messages", tok, tc.body); st != http.StatusBadRequest || !strings.Contains(env.Description, tc.want) {
			t.Errorf("%s: %d %+v, want 400 naming %q", name, st, env, tc.want)
		}
	}
	for name, tc := range map[string]struct {
		id   string
		body map[string]any
	}{
		"email with an HTML body only": {email, mail(func(m map[string]any) { delete(m, "plainBody"); m["htmlBody"] = "<p>hello</p>" })},
		"a full attachment":            {chat, attach(map[string]any{"mimeType": "image/png", "fileName": "a.png", "fileUrl": "https://x.example/a.png"})},
		"a live chat announcement": {chat, map[string]any{"channel": "livechat", "direction": "announcement", "messagetype": "text",
			"text": "agent joined", "timestamp": "2026-03-01T12:00:00Z"}},
	} {
		if st, env := call(t, "POST", base+tc.id+"/messages", tok, tc.body); st != http.StatusOK {
			t.Errorf("%s: %d %+v, want 200", name, st, env)
		}
	}
}

func TestACreatedEmailConversationIsFoundByTheSubjectOfItsFirstMessage(t *testing.T) {
	// Search needs the subject for email (ENGAGE.md §3): the conversation a node creates
	// must be findable by it, not only a seeded one.
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	base := sim.BaseURL() + "/" + domain + "/conversations"
	st, env := call(t, "POST", base, tok, map[string]any{"channel": "email", "bizaddress": "b@x.example", "customeraddress": "c@x.example",
		"customername": "c@x.example", "messages": []any{map[string]any{"channel": "email", "direction": "inbound", "messagetype": "email",
			"timestamp": "2026-03-01T12:00:00Z", "frmAddress": "c@x.example", "subject": "Order 42", "plainBody": "where is it?"}}})
	var created struct{ ConversationID string }
	if err := json.Unmarshal(env.Value, &created); err != nil || st != http.StatusCreated {
		t.Fatalf("create: %d %+v", st, env)
	}
	search := func(subject string) string {
		_, env := call(t, "POST", base+"/search", tok, map[string]string{"channel": "email", "customeraddress": "c@x.example",
			"bizaddress": "b@x.example", "subject": subject})
		var v struct{ ConversationID string }
		_ = json.Unmarshal(env.Value, &v)
		return v.ConversationID
	}
	if got := search("Order 42"); got != created.ConversationID {
		t.Errorf("search by the subject found %q, want %q", got, created.ConversationID)
	}
	if got := search("Order 43"); got != "" {
		t.Errorf("search by another subject found %q, want none", got)
	}
}

func TestTheFirstAgentToJoinIsTheConversationsUserInSearch(t *testing.T) {
	// Search's value carries userId (ENGAGE.md §4), output by Search 1.3: it must follow
	// the participants, not stay empty.
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	id := sim.SeedConversation(domain, engagesim.Conversation{Channel: "sms", CustomerAddress: "c", BizAddress: "b"})
	base := sim.BaseURL() + "/" + domain + "/conversations"
	user := func() (string, string) {
		_, env := call(t, "POST", base+"/search", tok, map[string]string{"channel": "sms", "customeraddress": "c", "bizaddress": "b"})
		var v struct{ UserID, Status string }
		_ = json.Unmarshal(env.Value, &v)
		return v.UserID, v.Status
	}
	for _, step := range []struct {
		method, path, participant string
		wantUser, wantStatus      string
	}{
		{"POST", "/participants", "agent-1", "agent-1", "active"},
		{"POST", "/participants", "agent-2", "agent-1", ""},
		{"DELETE", "/participants/agent-1", "", "agent-2", ""},
		{"DELETE", "/participants/agent-2", "", "", ""},
	} {
		var body any
		if step.participant != "" {
			body = map[string]string{"participant": step.participant}
		}
		if st, env := call(t, step.method, base+"/"+id+step.path, tok, body); st != http.StatusOK {
			t.Fatalf("%s %s: %d %+v", step.method, step.path, st, env)
		}
		// Only the first join's status is documented (queued becomes active); what a
		// departure does to the status is not, so it is not held here.
		if u, s := user(); u != step.wantUser || (step.wantStatus != "" && s != step.wantStatus) {
			t.Fatalf("after %s %s: userId %q status %q, want %q %q", step.method, step.path, u, s, step.wantUser, step.wantStatus)
		}
	}
}

func TestInjectedErrorsAnswerTheEnvelopeCodeOfTheirStatus(t *testing.T) {
	// The codes are our decision (docs/engage.md), and the runtime reports them as
	// Engage's code: an injected fault must speak them as a real refusal does.
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	for status, code := range map[int]int{
		400: engagesim.CodeInvalid, 401: engagesim.CodeUnauthorized, 403: engagesim.CodeForbidden,
		404: engagesim.CodeNotFound, 409: engagesim.CodeConflict, 429: engagesim.CodeRateLimited,
		500: engagesim.CodeServerError, 503: engagesim.CodeServerError,
	} {
		sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Status: status, Times: 1})
		st, env := call(t, "POST", sim.BaseURL()+"/"+domain+"/conversations/search", tok,
			map[string]string{"channel": "sms", "customeraddress": "c", "bizaddress": "b"})
		if st != status || env.Code != code || env.Description == "" {
			t.Errorf("injected %d: %d %+v, want code %d", status, st, env, code)
		}
	}
}

// A live chat conversation is created with its own parties (ENGAGE.md §3: threadId,
// livechatUserId, livechatAppId, livechatWebsiteDomain, each needed) and is found as a
// live chat search names them: customeraddress the user, bizaddress the app. It starts
// queued.
func TestALiveChatConversationIsCreatedWithItsOwnPartiesAndFoundByThem(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	base := sim.BaseURL() + "/" + domain + "/conversations"
	body := func() map[string]any {
		return map[string]any{"channel": "livechat", "threadid": "th-1", "livechatuserid": "user-1", "livechatappid": "app-1",
			"livechatwebsitedomain": "shop.example", "messages": []any{map[string]any{"channel": "livechat", "direction": "inbound",
				"messagetype": "text", "text": "hi", "timestamp": "2026-03-01T12:00:00Z"}}}
	}
	for _, key := range []string{"threadid", "livechatuserid", "livechatappid", "livechatwebsitedomain"} {
		b := body()
		delete(b, key)
		if st, env := call(t, "POST", base, tok, b); st != http.StatusBadRequest || !strings.Contains(env.Description, key) {
			t.Errorf("without %s: %d %+v, want 400 naming it", key, st, env)
		}
	}
	st, env := call(t, "POST", base, tok, body())
	var created struct{ ConversationID string }
	if err := json.Unmarshal(env.Value, &created); err != nil || st != http.StatusCreated {
		t.Fatalf("create: %d %+v", st, env)
	}
	_, env = call(t, "POST", base+"/search", tok, map[string]string{"channel": "livechat", "customeraddress": "user-1", "bizaddress": "app-1", "threadid": "th-1"})
	var v struct{ ConversationID, Status string }
	if err := json.Unmarshal(env.Value, &v); err != nil || v.ConversationID != created.ConversationID || v.Status != "queued" {
		t.Fatalf("search by user and app found %s, want %s queued", env.Value, created.ConversationID)
	}
}

// ENGAGE.md §3 and §4 for the calls that change a conversation after its creation, and
// docs/engage.md's model of what Engage refuses: re-open moves a closed conversation back
// to queued and refuses one that is not closed (409); close refuses a closed one (409);
// a participant joins an open conversation once (409 for a closed one or a second time)
// and leaves only if present (404); an unknown conversation is 404 for every one of
// them. Every answer is the envelope whose status is the HTTP status, a success carries
// a fresh tid and the conversation's ID, a refusal no tid, and a refusal changes nothing.
func TestEveryChangeOfAConversationAnswersAsEngageDoes(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	base := sim.BaseURL() + "/" + domain + "/conversations/"
	type step struct {
		method, path string // path after the conversation ID
		body         any
	}
	var (
		update   = step{"PATCH", "", map[string]string{"aliasId": "task-1"}}
		reopen   = step{"PATCH", "", map[string]string{"status": "queued"}}
		closeIt  = step{"POST", "/close", nil}
		add      = step{"POST", "/participants", map[string]string{"participant": "agent-2"}}
		remove   = step{"DELETE", "/participants/agent-1", nil}
		removeNo = step{"DELETE", "/participants/agent-9", nil}
	)
	tids := map[string]bool{}
	for _, tc := range []struct {
		name   string
		status string // the seeded conversation's; "" : an unknown conversation
		step   step
		want   int // HTTP status
		after  func(c engagesim.Conversation) bool
	}{
		{"re-open of a closed conversation", "closed", reopen, 200, func(c engagesim.Conversation) bool { return c.Status == "queued" }},
		{"re-open of a queued one", "queued", reopen, 409, nil},
		{"re-open of an active one", "active", reopen, 409, nil},
		{"re-open of one on hold", "onhold", reopen, 409, nil},
		{"close of an active conversation", "active", closeIt, 200, func(c engagesim.Conversation) bool { return c.Status == "closed" }},
		{"close of a queued one", "queued", closeIt, 200, func(c engagesim.Conversation) bool { return c.Status == "closed" }},
		{"close of one on hold", "onhold", closeIt, 200, func(c engagesim.Conversation) bool { return c.Status == "closed" }},
		{"close of a closed one", "closed", closeIt, 409, nil},
		{"update of an active conversation", "active", update, 200, func(c engagesim.Conversation) bool { return c.AliasID == "task-1" && c.Status == "active" }},
		{"update of a closed one", "closed", update, 200, func(c engagesim.Conversation) bool { return c.AliasID == "task-1" && c.Status == "closed" }},
		{"add to an active conversation", "active", add, 200, func(c engagesim.Conversation) bool {
			return slices.Equal(c.Participants, []string{"agent-1", "agent-2"})
		}},
		{"add to a closed one", "closed", add, 409, nil},
		{"add of an agent already in it", "active", step{"POST", "/participants", map[string]string{"participant": "agent-1"}}, 409, nil},
		{"remove from an active conversation", "active", remove, 200, func(c engagesim.Conversation) bool { return len(c.Participants) == 0 }},
		{"remove from a closed one", "closed", remove, 200, func(c engagesim.Conversation) bool { return len(c.Participants) == 0 && c.Status == "closed" }},
		{"remove of an agent not in it", "active", removeNo, 404, nil},
		{"update of an unknown conversation", "", update, 404, nil},
		{"re-open of an unknown conversation", "", reopen, 404, nil},
		{"close of an unknown conversation", "", closeIt, 404, nil},
		{"add to an unknown conversation", "", add, 404, nil},
		{"remove from an unknown conversation", "", remove, 404, nil},
	} {
		id := "no-such-conversation"
		var before engagesim.Conversation
		if tc.status != "" {
			id = sim.SeedConversation(domain, engagesim.Conversation{Channel: "sms", CustomerAddress: "c", BizAddress: "b",
				Status: tc.status, UserID: "agent-1", Participants: []string{"agent-1"}})
			before, _ = sim.Conversation(domain, id)
		}
		st, env := call(t, tc.step.method, base+id+tc.step.path, tok, tc.step.body)
		if st != tc.want || env.Status != st || env.Description == "" {
			t.Errorf("%s: %d %+v, want %d with that status in its envelope and a description", tc.name, st, env, tc.want)
			continue
		}
		after, _ := sim.Conversation(domain, id)
		if st == 200 {
			var v struct{ ConversationID string }
			if env.Code != engagesim.CodeOK || env.TID == "" || tids[env.TID] || json.Unmarshal(env.Value, &v) != nil || v.ConversationID != id {
				t.Errorf("%s: success envelope %+v, want code %d, a fresh tid and the conversation's ID", tc.name, env, engagesim.CodeOK)
			}
			tids[env.TID] = true
			if !tc.after(after) {
				t.Errorf("%s: the conversation afterwards: %+v", tc.name, after)
			}
			continue
		}
		wantCode := map[int]int{404: engagesim.CodeNotFound, 409: engagesim.CodeConflict}[st]
		if env.Code != wantCode || env.TID != "" {
			t.Errorf("%s: refusal envelope %+v, want code %d and no tid", tc.name, env, wantCode)
		}
		if tc.status != "" && mustJSON(t, before) != mustJSON(t, after) {
			t.Errorf("%s: a refusal changed the conversation: %+v, was %+v", tc.name, after, before)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ENGAGE.md §4's search, restated by hand: the keys of its request and of its value.
var (
	searchRequestKeys = []string{"channel", "customeraddress", "bizaddress", "subject", "threadid", "browserfingerprint", "toRecipients", "ccRecipients", "inReplyTo"}
	searchValueKeys   = []string{"conversationId", "aliasId", "chatExist", "status", "teamId", "userId"}
)

// rawSearch sends a search and returns the HTTP status and the JSON object answered,
// key by key, undecoded.
func rawSearch(t *testing.T, url, token string, body any) (int, map[string]json.RawMessage) {
	t.Helper()
	resp, raw := send(t, http.MethodPost, url, token, body)
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		t.Fatalf("the answer is not a JSON object (%v): %s", err, raw)
	}
	return resp.StatusCode, m
}

// Search takes every request key of ENGAGE.md §4, spelled exactly so, and refuses any
// other spelling (the camelCase of Search's inputs, above all): a client that sent
// "customerAddress" or "threadId" would fail against Engage, so it fails here.
func TestSearchTakesExactlyTheRequestKeysOfENGAGEmd(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	url := sim.BaseURL() + "/" + domain + "/conversations/search"
	full := func() map[string]any {
		return map[string]any{"channel": "email", "customeraddress": "c@x.example", "bizaddress": "b@x.example", "subject": "s",
			"threadid": "t", "browserfingerprint": "f", "toRecipients": []string{"b@x.example"}, "ccRecipients": []string{"d@x.example"},
			"inReplyTo": "<m1@x.example>"}
	}
	if got := slices.Sorted(maps.Keys(full())); !slices.Equal(got, slices.Sorted(slices.Values(searchRequestKeys))) {
		t.Fatalf("the test sends %v, not §4's keys", got)
	}
	if st, env := call(t, "POST", url, tok, full()); st != http.StatusOK {
		t.Fatalf("every documented key: %d %+v, want 200", st, env)
	}
	for _, key := range searchRequestKeys {
		for _, other := range []string{strings.ToUpper(key[:1]) + key[1:], strings.ToLower(key), strings.ToUpper(key)} {
			if other == key {
				continue
			}
			b := full()
			b[other] = b[key]
			delete(b, key)
			if st, env := call(t, "POST", url, tok, b); st != http.StatusBadRequest || !strings.Contains(env.Description, other) {
				t.Errorf("%q for %q: %d %+v, want 400 naming it", other, key, st, env)
			}
		}
	}
	for _, camel := range []string{"customerAddress", "bizAddress", "threadId", "browserFingerprint"} {
		b := full()
		b[camel] = "x"
		if st, env := call(t, "POST", url, tok, b); st != http.StatusBadRequest || !strings.Contains(env.Description, camel) {
			t.Errorf("the input's name %q: %d %+v, want 400 naming it", camel, st, env)
		}
	}
}

// A search answers Engage's envelope (ENGAGE.md §4): status (the HTTP status, repeated),
// code, description and, when it went through, a value with §4's keys and no others
// (no tid: a search changes nothing). A refusal, the 404 included, is the same envelope
// without a value.
func TestASearchAnswersTheEnvelopeAndValueOfENGAGEmd(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	url := sim.BaseURL() + "/" + domain + "/conversations/search"
	id := sim.SeedConversation(domain, engagesim.Conversation{Channel: "sms", CustomerAddress: "c", BizAddress: "b", Status: "onhold",
		AliasID: "alias-1", TeamID: "team-1", UserID: "agent-1"})
	search := func(customer string) map[string]string {
		return map[string]string{"channel": "sms", "customeraddress": customer, "bizaddress": "b"}
	}
	envelopeKeys := []string{"code", "description", "status"}
	check := func(name string, st int, m map[string]json.RawMessage, wantStatus int, withValue bool) map[string]json.RawMessage {
		t.Helper()
		want := slices.Clone(envelopeKeys)
		if withValue {
			want = append(want, "value")
		}
		slices.Sort(want)
		if got := slices.Sorted(maps.Keys(m)); st != wantStatus || !slices.Equal(got, want) {
			t.Errorf("%s: HTTP %d with keys %v, want %d with %v", name, st, got, wantStatus, want)
			return nil
		}
		var env struct {
			Status      *int    `json:"status"`
			Code        *int    `json:"code"`
			Description *string `json:"description"`
		}
		raw, _ := json.Marshal(m)
		if err := json.Unmarshal(raw, &env); err != nil || env.Status == nil || *env.Status != st || env.Code == nil || env.Description == nil || *env.Description == "" {
			t.Errorf("%s: envelope %s (%v), want a numeric status %d, a numeric code and a description", name, raw, err, st)
		}
		if !withValue {
			return nil
		}
		var v map[string]json.RawMessage
		if err := json.Unmarshal(m["value"], &v); err != nil || v == nil {
			t.Errorf("%s: value %s is not an object", name, m["value"])
			return nil
		}
		for k := range v {
			if !slices.Contains(searchValueKeys, k) {
				t.Errorf("%s: value key %q is not one of §4's %v", name, k, searchValueKeys)
			}
		}
		return v
	}

	st, m := rawSearch(t, url, tok, search("c"))
	if v := check("a conversation found", st, m, http.StatusOK, true); v != nil {
		want := map[string]string{"conversationId": `"` + id + `"`, "aliasId": `"alias-1"`, "chatExist": "true", "status": `"onhold"`, "teamId": `"team-1"`, "userId": `"agent-1"`}
		for k, w := range want {
			if string(v[k]) != w {
				t.Errorf("a conversation found: value.%s = %s, want %s", k, v[k], w)
			}
		}
	}
	st, m = rawSearch(t, url, tok, search("nobody"))
	if v := check("no conversation", st, m, http.StatusOK, true); v != nil {
		if _, ok := v["conversationId"]; ok || string(v["chatExist"]) != "false" {
			t.Errorf("no conversation: value %s, want chatExist false and no conversationId", m["value"])
		}
	}
	st, m = rawSearch(t, url, tok, map[string]string{"channel": "email", "customeraddress": "c", "bizaddress": "b"})
	check("a refusal (email without a subject)", st, m, http.StatusBadRequest, false)
	sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Status: http.StatusNotFound, Times: 1})
	st, m = rawSearch(t, url, tok, search("c"))
	if check("Engage's 404", st, m, http.StatusNotFound, false); string(m["code"]) != strconv.Itoa(engagesim.CodeNotFound) {
		t.Errorf("Engage's 404: code %s, want %d", m["code"], engagesim.CodeNotFound)
	}
}

// ENGAGE.md §3 and §4 for create and append, and docs/engage.md's model of what Engage
// refuses them: a create answers 201 with a fresh tid and a value of exactly
// {conversationId}, and the conversation it made is queued with its first message; an
// append to that conversation, or to one active or on hold, answers 200 with a fresh tid
// and the conversation's ID; an append to a closed conversation is 409, to an unknown one
// 404, and a create or append of a message Engage does not take (or a create without
// the parties or the message) 400. Every answer is the envelope whose status is the HTTP
// status; a refusal carries no tid and changes nothing: no conversation made, no
// message appended.
func TestCreateAndAppendAnswerAsEngageDoes(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	base := sim.BaseURL() + "/" + domain + "/conversations"
	text := func(s string) map[string]any {
		return map[string]any{"channel": "sms", "direction": "inbound", "messagetype": "text", "text": s, "timestamp": "2026-03-01T12:00:00Z"}
	}
	createBody := func(messages ...any) map[string]any {
		return map[string]any{"channel": "sms", "bizaddress": "+15559999", "customeraddress": "+15550001", "customername": "Ada", "messages": messages}
	}
	tids := map[string]bool{}
	success := func(name string, st, want int, env envelope) string {
		t.Helper()
		var v map[string]json.RawMessage
		var id string
		if st != want || env.Code != engagesim.CodeOK || env.Description == "" || env.TID == "" || tids[env.TID] ||
			json.Unmarshal(env.Value, &v) != nil || len(v) != 1 || json.Unmarshal(v["conversationId"], &id) != nil || id == "" {
			t.Fatalf("%s: %d %+v (value %s), want %d, code %d, a description, a fresh tid and a value of only conversationId", name, st, env, env.Value, want, engagesim.CodeOK)
		}
		tids[env.TID] = true
		return id
	}
	refusal := func(name string, st, want, wantCode int, env envelope) {
		t.Helper()
		if st != want || env.Code != wantCode || env.Description == "" || env.TID != "" || len(env.Value) != 0 {
			t.Errorf("%s: %d %+v (value %s), want %d with code %d, a description, no tid and no value", name, st, env, env.Value, want, wantCode)
		}
	}

	st, env := call(t, "POST", base, tok, createBody(text("hello")))
	id := success("create", st, http.StatusCreated, env)
	c, ok := sim.Conversation(domain, id)
	if !ok || c.Status != "queued" || len(c.Messages) != 1 || c.Messages[0].Text != "hello" || c.CustomerName != "Ada" {
		t.Fatalf("the created conversation: %+v (found: %v), want it queued with its first message", c, ok)
	}
	st, env = call(t, "POST", base+"/"+id+"/messages", tok, text("again"))
	if got := success("append to the created conversation", st, http.StatusOK, env); got != id {
		t.Errorf("append answered conversationId %q, want %q", got, id)
	}
	if c, _ := sim.Conversation(domain, id); len(c.Messages) != 2 || c.Messages[1].Text != "again" || c.Status != "queued" {
		t.Errorf("after the append: %+v, want two messages, still queued", c)
	}

	for _, status := range []string{"active", "onhold"} {
		id := sim.SeedConversation(domain, engagesim.Conversation{Channel: "sms", CustomerAddress: "c", BizAddress: "b", Status: status})
		st, env := call(t, "POST", base+"/"+id+"/messages", tok, text("hi"))
		success("append to a conversation "+status, st, http.StatusOK, env)
		if c, _ := sim.Conversation(domain, id); len(c.Messages) != 1 || c.Status != status {
			t.Errorf("append to a conversation %s: %+v, want one message, status as it was", status, c)
		}
	}

	for _, tc := range []struct {
		name     string
		status   string // the seeded conversation's; "" : an unknown conversation
		message  any
		want     int
		wantCode int
	}{
		{"append to a closed conversation", "closed", text("hi"), 409, engagesim.CodeConflict},
		{"append to an unknown conversation", "", text("hi"), 404, engagesim.CodeNotFound},
		{"append without text", "active", text(""), 400, engagesim.CodeInvalid},
		{"append of a type the channel does not take", "active", map[string]any{"channel": "sms", "direction": "inbound", "messagetype": "email",
			"frmAddress": "a@x", "plainBody": "b", "timestamp": "2026-03-01T12:00:00Z"}, 400, engagesim.CodeInvalid},
		{"append of another channel's message", "active", map[string]any{"channel": "whatsapp", "direction": "inbound", "messagetype": "text",
			"text": "hi", "timestamp": "2026-03-01T12:00:00Z"}, 400, engagesim.CodeInvalid},
	} {
		id := "no-such-conversation"
		var before engagesim.Conversation
		if tc.status != "" {
			id = sim.SeedConversation(domain, engagesim.Conversation{Channel: "sms", CustomerAddress: "c", BizAddress: "b", Status: tc.status,
				Messages: []engagesim.Message{{Channel: "sms", Direction: "inbound", MessageType: "text", Text: "first", Timestamp: "2026-03-01T11:00:00Z"}}})
			before, _ = sim.Conversation(domain, id)
		}
		st, env := call(t, "POST", base+"/"+id+"/messages", tok, tc.message)
		refusal(tc.name, st, tc.want, tc.wantCode, env)
		if after, _ := sim.Conversation(domain, id); tc.status != "" && mustJSON(t, before) != mustJSON(t, after) {
			t.Errorf("%s: a refusal changed the conversation: %s, was %s", tc.name, mustJSON(t, after), mustJSON(t, before))
		}
	}

	conversations := len(sim.Conversations(domain))
	for _, tc := range []struct {
		name string
		body map[string]any
	}{
		{"create without a message", createBody()},
		{"create of a message Engage does not take", createBody(text(""))},
		{"create without the customer", func() map[string]any { b := createBody(text("hi")); delete(b, "customeraddress"); return b }()},
		{"create on an unknown channel", func() map[string]any { b := createBody(text("hi")); b["channel"] = "fax"; return b }()},
	} {
		st, env := call(t, "POST", base, tok, tc.body)
		refusal(tc.name, st, http.StatusBadRequest, engagesim.CodeInvalid, env)
	}
	if n := len(sim.Conversations(domain)); n != conversations {
		t.Errorf("%d conversations after the refused creates, want %d as before", n, conversations)
	}
}
