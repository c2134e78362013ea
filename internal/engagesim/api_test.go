package engagesim_test

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/noderuntime/noderuntime/internal/engagesim"
)

func TestConversationAPIRefusesInvalidRequestsWith400Envelopes(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	id := sim.SeedConversation(domain, engagesim.Conversation{Channel: "sms", CustomerAddress: "c", BizAddress: "b"})
	wa := sim.SeedConversation(domain, engagesim.Conversation{Channel: "whatsapp", CustomerAddress: "c", BizAddress: "b"})
	base := sim.BaseURL() + "/" + domain + "/conversations"
	msg := func(edit func(m map[string]any)) map[string]any {
		m := map[string]any{"channel": "sms", "direction": "inbound", "messagetype": "text", "text": "hi", "timestamp": "2026-03-01T12:00:00Z"}
		edit(m)
		return m
	}
	create := func(edit func(b map[string]any)) map[string]any {
		b := map[string]any{"channel": "sms", "bizaddress": "b", "customeraddress": "c", "messages": []any{msg(func(map[string]any) {})}}
		edit(b)
		return b
	}
	for name, tc := range map[string]struct {
		method, path string
		body         any
		want         string
	}{
		"search not JSON":                {"POST", "/search", `{"channel":`, "invalid JSON"},
		"search with an unknown key":     {"POST", "/search", `{"channel":"sms","customerAddress":"c","bizaddress":"b"}`, "unknown field"},
		"search without channel":         {"POST", "/search", map[string]string{"customeraddress": "c", "bizaddress": "b"}, "channel is required"},
		"search with unknown channel":    {"POST", "/search", map[string]string{"channel": "pigeon", "customeraddress": "c", "bizaddress": "b"}, "unknown channel"},
		"search without customer":        {"POST", "/search", map[string]string{"channel": "sms", "bizaddress": "b"}, "customeraddress"},
		"search without business":        {"POST", "/search", map[string]string{"channel": "sms", "customeraddress": "c"}, "bizaddress"},
		"livechat search without thread": {"POST", "/search", map[string]string{"channel": "livechat", "customeraddress": "c", "bizaddress": "b"}, "threadid"},
		"email search without subject":   {"POST", "/search", map[string]string{"channel": "email", "customeraddress": "c", "bizaddress": "b"}, "subject"},
		"create without messages":        {"POST", "", create(func(b map[string]any) { delete(b, "messages") }), "first message"},
		"create without bizaddress":      {"POST", "", create(func(b map[string]any) { delete(b, "bizaddress") }), "bizaddress"},
		"create without customeraddress": {"POST", "", create(func(b map[string]any) { delete(b, "customeraddress") }), "customeraddress"},
		"create with unknown channel":    {"POST", "", create(func(b map[string]any) { b["channel"] = "pigeon" }), "unknown channel"},
		"livechat create without thread": {"POST", "", map[string]any{"channel": "livechat", "livechatuserid": "u", "livechatappid": "a", "livechatwebsitedomain": "w",
			"messages": []any{msg(func(m map[string]any) { m["channel"] = "livechat" })}}, "threadid"},
		"message without messagetype":    {"POST", "/" + id + "/messages", msg(func(m map[string]any) { delete(m, "messagetype") }), "messagetype is required"},
		"message with unknown type":      {"POST", "/" + id + "/messages", msg(func(m map[string]any) { m["messagetype"] = "fax" }), "unknown messagetype"},
		"message with a bad timestamp":   {"POST", "/" + id + "/messages", msg(func(m map[string]any) { m["timestamp"] = "01/03/2026" }), "RFC 3339"},
		"message without timestamp":      {"POST", "/" + id + "/messages", msg(func(m map[string]any) { delete(m, "timestamp") }), "timestamp is required"},
		"message without direction":      {"POST", "/" + id + "/messages", msg(func(m map[string]any) { delete(m, "direction") }), "direction is required"},
		"message with unknown direction": {"POST", "/" + id + "/messages", msg(func(m map[string]any) { m["direction"] = "sideways" }), "unknown direction"},
		"message without channel":        {"POST", "/" + id + "/messages", msg(func(m map[string]any) { delete(m, "channel") }), "message channel is required"},
		"message on another channel":     {"POST", "/" + id + "/messages", msg(func(m map[string]any) { m["channel"] = "email" }), "differs"},
		"text without text":              {"POST", "/" + id + "/messages", msg(func(m map[string]any) { delete(m, "text") }), "text is required"},
		"attachments missing": {"POST", "/" + wa + "/messages", msg(func(m map[string]any) {
			m["channel"], m["messagetype"] = "whatsapp", "text-with-attachments"
		}), "attachments are required"},
		"rich type without its object": {"POST", "/" + wa + "/messages", msg(func(m map[string]any) {
			m["channel"], m["direction"], m["messagetype"] = "whatsapp", "outbound", "wab-buttons"
		}), "wabButtons is required"},
		"type the channel does not take": {"POST", "/" + id + "/messages", msg(func(m map[string]any) { m["messagetype"] = "email" }), "not allowed"},
		"message with an unknown key":    {"POST", "/" + id + "/messages", msg(func(m map[string]any) { m["fromAddress"] = "x" }), "unknown field"},
		"attachment keys in another case": {"POST", "/" + id + "/messages", msg(func(m map[string]any) {
			m["messagetype"] = "text-with-attachments"
			m["attachments"] = []map[string]any{{"MIMETYPE": "image/png", "FileURL": "http://x.example/y.png"}}
		}), "unknown field"},
		"close with a body":          {"POST", "/" + id + "/close", map[string]any{"reason": "done"}, "unknown field"},
		"close with a non-JSON body": {"POST", "/" + id + "/close", "x", "invalid JSON"},
		"close with a null body":     {"POST", "/" + id + "/close", "null", "not a JSON object"},
		"close with a chunked body":  {"POST", "/" + id + "/close", io.MultiReader(strings.NewReader(`{"reason":"done"}`)), "unknown field"},
		"update with nothing":        {"PATCH", "/" + id, map[string]any{}, "nothing to update"},
		"update to active":           {"PATCH", "/" + id, map[string]any{"status": "active"}, "re-open"},
		"participant missing":        {"POST", "/" + id + "/participants", map[string]any{}, "participant is required"},
	} {
		st, env := call(t, tc.method, base+tc.path, tok, tc.body)
		if st != http.StatusBadRequest || env.Code != engagesim.CodeInvalid || !strings.Contains(env.Description, tc.want) {
			t.Errorf("%s: %d %+v", name, st, env)
		}
	}
	if c, _ := sim.Conversation(domain, id); len(c.Messages) != 0 {
		t.Fatalf("invalid messages were stored: %+v", c.Messages)
	}
}

func TestConversationLifecycleAnswersEnvelopesWithTransactionIDs(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	base := sim.BaseURL() + "/" + domain + "/conversations"
	st, env := call(t, "POST", base, tok, map[string]any{"channel": "whatsapp", "bizaddress": "b", "customeraddress": "c",
		"messages": []any{map[string]any{"channel": "whatsapp", "direction": "outbound", "messagetype": "wab-list",
			"timestamp": "2026-03-01T12:00:00+02:00", "wabList": map[string]any{"sections": []any{}}}}})
	var created struct{ ConversationID string }
	if err := json.Unmarshal(env.Value, &created); err != nil || st != http.StatusCreated || env.TID == "" || created.ConversationID == "" {
		t.Fatalf("create: %d %+v", st, env)
	}
	id := created.ConversationID
	tids := map[string]bool{env.TID: true}
	for _, step := range []struct {
		method, path string
		body         any
		status       int
	}{
		{"POST", "/" + id + "/participants", map[string]string{"participant": "agent-1"}, 200},
		{"POST", "/" + id + "/participants", map[string]string{"participant": "agent-1"}, 409},
		{"PATCH", "/" + id, map[string]string{"aliasId": "task-1"}, 200},
		{"PATCH", "/" + id, map[string]string{"status": "queued"}, 409},
		{"POST", "/" + id + "/close", nil, 200},
		{"POST", "/" + id + "/close", nil, 409},
		{"POST", "/" + id + "/messages", map[string]any{"channel": "whatsapp", "direction": "inbound", "messagetype": "text", "text": "x", "timestamp": "2026-03-01T12:00:00Z"}, 409},
		{"POST", "/" + id + "/participants", map[string]string{"participant": "agent-2"}, 409},
		{"PATCH", "/" + id, map[string]string{"status": "queued"}, 200},
		{"DELETE", "/" + id + "/participants/agent-1", nil, 200},
		{"DELETE", "/" + id + "/participants/agent-1", nil, 404},
		{"POST", "/nope/close", nil, 404},
	} {
		st, env := call(t, step.method, base+step.path, tok, step.body)
		if st != step.status {
			t.Fatalf("%s %s: %d %+v, want %d", step.method, step.path, st, env, step.status)
		}
		if st == 200 {
			if env.TID == "" || tids[env.TID] {
				t.Fatalf("%s %s: tid %q not fresh", step.method, step.path, env.TID)
			}
			tids[env.TID] = true
		} else if env.TID != "" || env.Description == "" || env.Code != map[int]int{404: engagesim.CodeNotFound, 409: engagesim.CodeConflict}[st] {
			t.Fatalf("%s %s: error envelope %+v", step.method, step.path, env)
		}
	}
	c, _ := sim.Conversation(domain, id)
	if c.Status != "queued" || c.AliasID != "task-1" || len(c.Participants) != 0 || len(c.Messages) != 1 {
		t.Fatalf("final %+v", c)
	}
	st, env = call(t, "POST", base+"/search", tok, map[string]string{"channel": "whatsapp", "customeraddress": "c", "bizaddress": "b"})
	if st != 200 || !strings.Contains(string(env.Value), `"aliasId":"task-1"`) || !strings.Contains(string(env.Value), `"chatExist":true`) {
		t.Fatalf("search %s", env.Value)
	}
}

func TestSearchPrefersTheNewestOpenConversation(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	seed := func(status string) string {
		return sim.SeedConversation(domain, engagesim.Conversation{Channel: "sms", CustomerAddress: "c", BizAddress: "b", Status: status})
	}
	found := func() string {
		_, env := call(t, "POST", sim.BaseURL()+"/"+domain+"/conversations/search", tok, map[string]string{"channel": "sms", "customeraddress": "c", "bizaddress": "b"})
		var v struct{ ConversationID string }
		_ = json.Unmarshal(env.Value, &v)
		return v.ConversationID
	}
	if got := found(); got != "" {
		t.Fatalf("empty store found %q", got)
	}
	closed1 := seed("closed")
	closed2 := seed("closed")
	if got := found(); got != closed2 {
		t.Fatalf("got %q, want the newest closed %q (not %q)", got, closed2, closed1)
	}
	open := seed("onhold")
	seed("closed")
	if got := found(); got != open {
		t.Fatalf("got %q, want the open one %q", got, open)
	}
	// Another domain sees none of it.
	other := sim.AccessToken("globex")
	_, env := call(t, "POST", sim.BaseURL()+"/globex/conversations/search", other, map[string]string{"channel": "sms", "customeraddress": "c", "bizaddress": "b"})
	if string(env.Value) != `{"chatExist":false}` || env.TID != "" {
		t.Fatalf("other domain: %s", env.Value)
	}
}

func TestConversationAPIRefusesBadTokensWithEnvelopes(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	if st := searchStatus(t, sim, domain, ""); st != http.StatusUnauthorized {
		t.Errorf("missing: %d", st)
	}
	if st := searchStatus(t, sim, domain, "forged"); st != http.StatusUnauthorized {
		t.Errorf("forged: %d", st)
	}
	if st := searchStatus(t, sim, "globex", sim.AccessToken(domain)); st != http.StatusForbidden {
		t.Errorf("foreign domain: %d", st)
	}
	st, env := call(t, "GET", sim.BaseURL()+"/"+domain+"/nothing", "", nil)
	if st != http.StatusNotFound || env.Code != engagesim.CodeNotFound {
		t.Errorf("unknown endpoint: %d %+v", st, env)
	}
}

func TestSeedSetStatusAndReadBack(t *testing.T) {
	t.Parallel()
	sim := engagesim.New(engagesim.Config{})
	defer sim.Close()
	id := sim.SeedConversation(domain, engagesim.Conversation{Channel: "sms", CustomerAddress: "c", BizAddress: "b",
		Participants: []string{"a1"}, Messages: []engagesim.Message{{Text: "old"}}})
	c, ok := sim.Conversation(domain, id)
	if !ok || c.Status != "queued" || c.CreatedAt.IsZero() {
		t.Fatalf("%+v", c)
	}
	// Copies: changing one does not change the store.
	c.Participants[0] = "changed"
	c.Messages[0].Text = "changed"
	if again, _ := sim.Conversation(domain, id); again.Participants[0] != "a1" || again.Messages[0].Text != "old" {
		t.Fatal("Conversation returned shared memory")
	}
	if err := sim.SetStatus(domain, id, "wrapup"); err != nil {
		t.Fatal(err)
	}
	if c, _ := sim.Conversation(domain, id); c.Status != "wrapup" {
		t.Fatalf("status %q", c.Status)
	}
	if err := sim.SetStatus(domain, "nope", "closed"); err == nil {
		t.Fatal("SetStatus of an unknown conversation succeeded")
	}
	if _, ok := sim.Conversation("globex", id); ok {
		t.Fatal("another domain sees the conversation")
	}
	if n := len(sim.Conversations(domain)); n != 1 {
		t.Fatalf("%d conversations", n)
	}
}

func TestKeepMessagesBoundsAConversationToItsNewestMessages(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{KeepMessages: 3})
	tok := sim.AccessToken(domain)
	id := sim.SeedConversation(domain, engagesim.Conversation{Channel: "sms", CustomerAddress: "c", BizAddress: "b", Status: "active"})
	for i := range 20 {
		m := map[string]any{"channel": "sms", "direction": "inbound", "messagetype": "text", "text": strconv.Itoa(i), "timestamp": "2026-03-01T12:00:00Z"}
		if status, env := call(t, "POST", sim.BaseURL()+"/"+domain+"/conversations/"+id+"/messages", tok, m); status != http.StatusOK {
			t.Fatalf("append %d: %d %+v", i, status, env)
		}
		c, _ := sim.Conversation(domain, id)
		if n := len(c.Messages); n < min(i+1, 3) || n >= 6 || c.Messages[n-1].Text != strconv.Itoa(i) {
			t.Fatalf("after append %d: %d messages, the last %q", i, n, c.Messages[n-1].Text)
		}
	}
}

// The authorization scheme is case-insensitive (RFC 9110 §11.1): "bearer" is Bearer.
func TestTheBearerSchemeIsCaseInsensitive(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	for _, header := range []string{"Bearer " + tok, "bearer " + tok, "BEARER " + tok} {
		req, _ := http.NewRequestWithContext(t.Context(), "POST", sim.BaseURL()+"/"+domain+"/conversations/search",
			strings.NewReader(`{"channel":"sms","customeraddress":"c","bizaddress":"b"}`))
		req.Header.Set("Authorization", header)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%q: %d", strings.Fields(header)[0], resp.StatusCode)
		}
	}
	if st := searchStatus(t, sim, domain, ""); st != http.StatusUnauthorized {
		t.Errorf("no token: %d", st)
	}
}

// A token that is not valid (revoked, expired, unknown) is 401 whatever domain it is
// used on: the runtime refreshes after a 401 and gives up at once after a 403, so a dead
// token must never read as "valid for another domain".
func TestADeadTokenIs401OnEveryDomain(t *testing.T) {
	t.Parallel()
	clk := newClock()
	sim := engagesim.Start(t, engagesim.Config{Now: clk.Now, AccessTokenTTL: time.Minute})
	revoked := sim.AccessToken(domain)
	sim.RevokeAccessToken(revoked)
	expired := sim.AccessToken(domain)
	clk.Advance(time.Minute)
	for name, tok := range map[string]string{"revoked": revoked, "expired": expired} {
		for _, dom := range []string{domain, "globex"} {
			if st := searchStatus(t, sim, dom, tok); st != http.StatusUnauthorized {
				t.Errorf("%s token on %s: %d, want 401", name, dom, st)
			}
		}
	}
}

// A message is stored with the object exactly as it came on the wire (Raw), which tests
// of the client compare byte for byte.
func TestAStoredMessageKeepsItsWireObject(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	id := sim.SeedConversation(domain, engagesim.Conversation{Channel: "sms", CustomerAddress: "c", BizAddress: "b"})
	const raw = `{"channel":"sms","direction":"inbound","messagetype":"text","text":"a \"quote\" <b>","timestamp":"2026-03-01T12:00:00Z"}`
	if st, env := call(t, "POST", sim.BaseURL()+"/"+domain+"/conversations/"+id+"/messages", tok, raw); st != http.StatusOK {
		t.Fatalf("append: %d %+v", st, env)
	}
	c, _ := sim.Conversation(domain, id)
	if len(c.Messages) != 1 || string(c.Messages[0].Raw) != raw {
		t.Fatalf("stored %+v", c.Messages)
	}
}

// Seeding a conversation with the ID of another replaces it everywhere: a search by the
// replaced one's addresses no longer finds it.
func TestASeedThatReplacesAConversationMovesItsSearchKey(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	sim.SeedConversation(domain, engagesim.Conversation{ID: "x1", Channel: "sms", CustomerAddress: "c", BizAddress: "b"})
	sim.SeedConversation(domain, engagesim.Conversation{ID: "x1", Channel: "sms", CustomerAddress: "c2", BizAddress: "b"})
	for customer, want := range map[string]string{"c": `{"chatExist":false}`, "c2": `"conversationId":"x1"`} {
		_, env := call(t, "POST", sim.BaseURL()+"/"+domain+"/conversations/search", tok, map[string]string{"channel": "sms", "customeraddress": customer, "bizaddress": "b"})
		if !strings.Contains(string(env.Value), want) {
			t.Errorf("search for %s: %s, want %s", customer, env.Value, want)
		}
	}
}

// The envelope codes are our decision (docs/engage.md) and the runtime reports them as
// Engage's code, so they are held to their numbers here, not only to the constants.
func TestEnvelopeCodesAreTheDocumentedNumbers(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	id := sim.SeedConversation(domain, engagesim.Conversation{Channel: "sms", CustomerAddress: "c", BizAddress: "b", Status: "active"})
	base := sim.BaseURL() + "/" + domain + "/conversations"
	search := map[string]string{"channel": "sms", "customeraddress": "c", "bizaddress": "b"}
	for _, tc := range []struct {
		name, method, url, token string
		body                     any
		fault                    int
		status, code             int
	}{
		{"ok", "POST", base + "/search", tok, search, 0, 200, 1000},
		{"invalid", "POST", base + "/search", tok, map[string]string{"channel": "sms"}, 0, 400, 1001},
		{"no token", "POST", base + "/search", "", search, 0, 401, 1002},
		{"unknown token", "POST", base + "/search", "forged", search, 0, 401, 1002},
		{"another domain", "POST", sim.BaseURL() + "/globex/conversations/search", tok, search, 0, 403, 1003},
		{"not found", "POST", base + "/nope/close", tok, nil, 0, 404, 1004},
		{"conflict", "PATCH", base + "/" + id, tok, map[string]string{"status": "queued"}, 0, 409, 1009},
		{"rate limited", "POST", base + "/search", tok, search, 429, 429, 1029},
		{"server error", "POST", base + "/search", tok, search, 500, 500, 1500},
	} {
		if tc.fault != 0 {
			sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Status: tc.fault, Times: 1})
		}
		if st, env := call(t, tc.method, tc.url, tc.token, tc.body); st != tc.status || env.Code != tc.code {
			t.Errorf("%s: %d %+v, want %d with code %d", tc.name, st, env, tc.status, tc.code)
		}
	}
}

// A request without a token is challenged (RFC 6750 §3) without an error code; a dead
// token is challenged with invalid_token.
func TestA401ChallengesForABearerToken(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	for token, want := range map[string]string{"": `Bearer realm="engage"`, "forged": `Bearer realm="engage", error="invalid_token"`} {
		resp, _ := callForAnswer(t, "POST", sim.BaseURL()+"/"+domain+"/conversations/search", token,
			map[string]string{"channel": "sms", "customeraddress": "c", "bizaddress": "b"})
		if got := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized || got != want {
			t.Errorf("token %q: %d WWW-Authenticate %q, want 401 %q", token, resp.StatusCode, got, want)
		}
	}
}

// Engage takes the wire value of every channel of ENGAGE.md §3 and nothing else: a
// display name ("SMS", "Live Chat") is the runtime's to translate before it calls.
func TestSearchTakesEveryDocumentedChannelByItsWireValue(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	for _, channel := range []string{"sms", "facebook", "email", "livechat", "whatsapp", "amb", "api", "SMS", "Live Chat", "abc"} {
		body := map[string]string{"channel": channel, "customeraddress": "c", "bizaddress": "b"}
		switch channel {
		case "livechat":
			body["threadid"] = "t"
		case "email":
			body["subject"] = "s"
		}
		st, env := call(t, "POST", sim.BaseURL()+"/"+domain+"/conversations/search", tok, body)
		if wire := channel == strings.ToLower(channel) && channel != "abc"; wire != (st == http.StatusOK) {
			t.Errorf("channel %q: %d %+v", channel, st, env)
		} else if !wire && !strings.Contains(env.Description, "unknown channel") {
			t.Errorf("channel %q refused with %+v, want unknown channel", channel, env)
		}
	}
}

// Search matches the thread only for live chat and the subject only for email (docs/engage.md):
// a thread or subject sent on another channel does not hide its conversation, and a live
// chat search for another thread finds none.
func TestSearchMatchesTheThreadOnlyForLiveChatAndTheSubjectOnlyForEmail(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	sms := sim.SeedConversation(domain, engagesim.Conversation{Channel: "sms", CustomerAddress: "c", BizAddress: "b"})
	chat := sim.SeedConversation(domain, engagesim.Conversation{Channel: "livechat", CustomerAddress: "u", BizAddress: "app", ThreadID: "th-1"})
	mail := sim.SeedConversation(domain, engagesim.Conversation{Channel: "email", CustomerAddress: "c@x.example", BizAddress: "b@x.example", Subject: "Order 42"})
	for name, tc := range map[string]struct {
		body map[string]string
		want string
	}{
		"sms with a thread and a subject": {map[string]string{"channel": "sms", "customeraddress": "c", "bizaddress": "b", "threadid": "th-9", "subject": "other"}, sms},
		"live chat, its thread":           {map[string]string{"channel": "livechat", "customeraddress": "u", "bizaddress": "app", "threadid": "th-1", "subject": "other"}, chat},
		"live chat, another thread":       {map[string]string{"channel": "livechat", "customeraddress": "u", "bizaddress": "app", "threadid": "th-2"}, ""},
		"email with a thread":             {map[string]string{"channel": "email", "customeraddress": "c@x.example", "bizaddress": "b@x.example", "subject": "Order 42", "threadid": "th-9"}, mail},
	} {
		_, env := call(t, "POST", sim.BaseURL()+"/"+domain+"/conversations/search", tok, tc.body)
		var v struct{ ConversationID string }
		if err := json.Unmarshal(env.Value, &v); err != nil || v.ConversationID != tc.want {
			t.Errorf("%s: found %s, want %q", name, env.Value, tc.want)
		}
	}
}

// Search 1.1 outputs the description, and the quick start shows it: it says whether a
// conversation was found.
func TestSearchDescribesWhetherItFoundAConversation(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	sim.SeedConversation(domain, engagesim.Conversation{Channel: "sms", CustomerAddress: "c", BizAddress: "b"})
	for customer, want := range map[string]string{"c": "conversation found", "nobody": "no conversation found"} {
		_, env := call(t, "POST", sim.BaseURL()+"/"+domain+"/conversations/search", tok, map[string]string{"channel": "sms", "customeraddress": customer, "bizaddress": "b"})
		if env.Code != engagesim.CodeOK || env.Description != want {
			t.Errorf("search for %s: %+v, want description %q", customer, env, want)
		}
	}
}

// A created conversation keeps what it was created with, as tests of the runtime read it
// back to see what a node sent: the customer's name, the live chat fields, and when.
func TestACreatedConversationKeepsWhatItWasCreatedWith(t *testing.T) {
	t.Parallel()
	clk := newClock()
	sim := engagesim.Start(t, engagesim.Config{Now: clk.Now})
	tok := sim.AccessToken(domain)
	st, env := call(t, "POST", sim.BaseURL()+"/"+domain+"/conversations", tok, map[string]any{"channel": "livechat", "customername": "Ada",
		"threadid": "th-1", "livechatuserid": "user-1", "livechatappid": "app-1", "livechatwebsitedomain": "shop.example", "livechatproactiveid": "pro-1",
		"messages": []any{map[string]any{"channel": "livechat", "direction": "inbound", "messagetype": "text", "text": "hi", "timestamp": "2026-03-01T12:00:00Z"}}})
	var created struct{ ConversationID string }
	if err := json.Unmarshal(env.Value, &created); err != nil || st != http.StatusCreated {
		t.Fatalf("create: %d %+v", st, env)
	}
	c, _ := sim.Conversation(domain, created.ConversationID)
	if c.CustomerName != "Ada" || c.ThreadID != "th-1" || c.LivechatWebsiteDomain != "shop.example" || c.LivechatProactiveID != "pro-1" ||
		!c.CreatedAt.Equal(clk.Now()) || len(c.Messages) != 1 {
		t.Fatalf("stored %+v", c)
	}
}

// Only a queued conversation becomes active when an agent joins (docs/engage.md); one on
// hold stays on hold.
func TestAnAgentJoiningAConversationOnHoldLeavesItOnHold(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	id := sim.SeedConversation(domain, engagesim.Conversation{Channel: "sms", CustomerAddress: "c", BizAddress: "b", Status: "onhold"})
	if st, env := call(t, "POST", sim.BaseURL()+"/"+domain+"/conversations/"+id+"/participants", tok, map[string]string{"participant": "agent-1"}); st != http.StatusOK {
		t.Fatalf("add participant: %d %+v", st, env)
	}
	if c, _ := sim.Conversation(domain, id); c.Status != "onhold" || c.UserID != "agent-1" {
		t.Fatalf("after the join: status %q user %q, want onhold agent-1", c.Status, c.UserID)
	}
}

// A body that cannot be read (here a broken chunked encoding) is Engage's 400 envelope,
// with or without latency, never an empty 200 that a client would take for an answer.
func TestAnUnreadableBodyIsA400Envelope(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	for _, latency := range []time.Duration{0, time.Millisecond} {
		if latency > 0 {
			sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Latency: latency})
		}
		resp := postBrokenChunkedBody(t, sim, "/api/v1/"+domain+"/conversations/search", "Authorization: Bearer "+tok)
		var env envelope
		err := json.NewDecoder(resp.Body).Decode(&env)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || err != nil || env.Status != 400 || env.Code != engagesim.CodeInvalid {
			t.Errorf("latency %v: %d %+v (%v), want a 400 envelope", latency, resp.StatusCode, env, err)
		}
	}
}

// Conversations lists a domain's conversations oldest first, whatever their IDs.
func TestConversationsAreListedOldestFirst(t *testing.T) {
	t.Parallel()
	clk := newClock()
	sim := engagesim.Start(t, engagesim.Config{Now: clk.Now})
	for _, id := range []string{"c3", "c1", "c2"} {
		sim.SeedConversation(domain, engagesim.Conversation{ID: id, Channel: "sms", CustomerAddress: "c", BizAddress: "b"})
		clk.Advance(time.Minute)
	}
	var got []string
	for _, c := range sim.Conversations(domain) {
		got = append(got, c.ID)
	}
	if strings.Join(got, " ") != "c3 c1 c2" {
		t.Fatalf("listed %v, want c3 c1 c2", got)
	}
}

// Search's value is ENGAGE.md §4's {conversationId, aliasId, chatExist, status, teamId,
// userId}, each from the conversation found (Search 1.3 outputs them all).
func TestSearchAnswersEveryFieldOfTheConversationItFinds(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	sim.SeedConversation(domain, engagesim.Conversation{ID: "conv-1", Channel: "sms", CustomerAddress: "c", BizAddress: "b",
		AliasID: "task-1", Status: "onhold", TeamID: "team-1", UserID: "agent-1"})
	_, env := call(t, "POST", sim.BaseURL()+"/"+domain+"/conversations/search", tok, map[string]string{"channel": "sms", "customeraddress": "c", "bizaddress": "b"})
	var got, want map[string]any
	_ = json.Unmarshal(env.Value, &got)
	_ = json.Unmarshal([]byte(`{"conversationId":"conv-1","aliasId":"task-1","chatExist":true,"status":"onhold","teamId":"team-1","userId":"agent-1"}`), &want)
	if !maps.Equal(got, want) {
		t.Fatalf("value %s, want %v", env.Value, want)
	}
}

// Close takes "{}" or no body at all, whether the client sends it with a length or
// chunked.
func TestCloseTakesAnEmptyObjectOrNothingHoweverItIsSent(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	for name, body := range map[string]any{
		"no body":            nil,
		"{}":                 "{}",
		"{} chunked":         io.MultiReader(strings.NewReader("{}")),
		"empty body chunked": io.MultiReader(strings.NewReader("")),
	} {
		id := sim.SeedConversation(domain, engagesim.Conversation{Channel: "sms", CustomerAddress: "c", BizAddress: "b", Status: "active"})
		if st, env := call(t, "POST", sim.BaseURL()+"/"+domain+"/conversations/"+id+"/close", tok, body); st != http.StatusOK {
			t.Errorf("%s: %d %+v", name, st, env)
		}
	}
}
