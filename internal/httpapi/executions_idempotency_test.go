package httpapi_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/noderuntime/noderuntime/internal/database"
	"github.com/noderuntime/noderuntime/internal/database/dbtest"
	"github.com/noderuntime/noderuntime/internal/engage"
	"github.com/noderuntime/noderuntime/internal/engagesim"
)

type idempotencyFixture struct {
	h       *harness
	pool    *pgxpool.Pool
	queries *database.QueryCounter
	conv    string
}

func newIdempotencyFixture(t *testing.T, o harnessOptions) *idempotencyFixture {
	t.Helper()
	queries := &database.QueryCounter{}
	pool, err := database.Open(t.Context(), dbtest.NewURL(t), queries)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	o.pool = pool
	h := newHarness(t, o)
	conv := h.sim.SeedConversation(simDomain, engagesim.Conversation{Channel: "sms", CustomerAddress: "+15550001", BizAddress: "+15559999", Status: "active"})
	return &idempotencyFixture{h: h, pool: pool, queries: queries, conv: conv}
}

func (f *idempotencyFixture) appendBody(text string) []byte {
	b, _ := json.Marshal(map[string]any{
		"node": "append-message", "version": "1.4", "authorizationId": authOK,
		"input": map[string]any{"conversationId": f.conv, "channel": "sms", "direction": "outbound",
			"messageType": "text", "timestamp": "2026-03-01T12:00:00Z", "text": text},
	})
	return b
}

func (f *idempotencyFixture) post(t *testing.T, key string, body []byte, apiKey string) (*http.Response, []byte) {
	t.Helper()
	return f.h.post(t, "/v1/executions", apiKey, body, http.Header{"Idempotency-Key": {key}})
}

func (f *idempotencyFixture) messages(t *testing.T) int {
	t.Helper()
	c, _ := f.h.sim.Conversation(simDomain, f.conv)
	return len(c.Messages)
}

func TestTheSameKeyAndBodyAnswerTheFirstAnswerWithoutCallingEngageAgain(t *testing.T) {
	t.Parallel()
	f := newIdempotencyFixture(t, harnessOptions{})
	body := f.appendBody("once only")
	r1, first := f.post(t, "key-1", body, execKey)
	r2, second := f.post(t, "key-1", body, execKey)
	if r1.StatusCode != 200 || r2.StatusCode != 200 || !bytes.Equal(first, second) {
		t.Fatalf("answers differ: %d %s / %d %s", r1.StatusCode, first, r2.StatusCode, second)
	}
	if !strings.Contains(string(first), `"outcome":"onAppendMessageSuccess"`) || r1.Header.Get("Idempotent-Replayed") != "" || r2.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("first %s (replayed %q), second replayed %q", first, r1.Header.Get("Idempotent-Replayed"), r2.Header.Get("Idempotent-Replayed"))
	}
	if n := f.h.sim.Calls(engagesim.OpAppend); n != 1 || f.messages(t) != 1 {
		t.Fatalf("%d append calls, %d messages; want 1 and 1", n, f.messages(t))
	}

	// Another body with the key is refused, and changes nothing.
	resp, raw := f.post(t, "key-1", f.appendBody("something else"), execKey)
	if resp.StatusCode != http.StatusUnprocessableEntity || problemOf(t, raw)["code"] != "unprocessable" {
		t.Fatalf("another body: %d %s", resp.StatusCode, raw)
	}
	// The key is the tenant's: another tenant's key of the same name is its own (and its
	// authorization ID is a missing one there).
	resp, raw = f.post(t, "key-1", body, globexKey)
	if resp.StatusCode != 200 || !strings.Contains(string(raw), `"outcome":"onAuthorizationFailure"`) {
		t.Fatalf("another tenant: %d %s", resp.StatusCode, raw)
	}
	// A new key runs again.
	if _, raw := f.post(t, "key-2", body, execKey); !strings.Contains(string(raw), `"outcome":"onAppendMessageSuccess"`) || f.messages(t) != 2 {
		t.Fatalf("a new key: %s, %d messages", raw, f.messages(t))
	}
	if n := f.h.sim.Calls(engagesim.OpAppend); n != 2 {
		t.Fatalf("%d append calls, want 2", n)
	}
}

// A key's bodies are compared byte for byte (OpenAPI, docs/nodes.md): the same JSON
// object with its keys in another order, or other whitespace, is another body. The
// 422 says so, or a caller that re-encodes its retry would read "another body" as the
// service's mistake.
func TestTheSameJSONInOtherBytesIsAnotherBodyForAKeyAndThe422SaysSo(t *testing.T) {
	t.Parallel()
	f := newIdempotencyFixture(t, harnessOptions{})
	body := f.appendBody("once only")
	if resp, raw := f.post(t, "key-bytes", body, execKey); resp.StatusCode != 200 {
		t.Fatalf("first: %d %s", resp.StatusCode, raw)
	}
	var obj map[string]any
	if err := json.Unmarshal(body, &obj); err != nil {
		t.Fatal(err)
	}
	indented, _ := json.MarshalIndent(obj, "", "  ")
	reordered, _ := json.Marshal(struct {
		Version         any `json:"version"`
		Node            any `json:"node"`
		Input           any `json:"input"`
		AuthorizationID any `json:"authorizationId"`
	}{obj["version"], obj["node"], obj["input"], obj["authorizationId"]})
	for name, other := range map[string][]byte{"indented": indented, "trailing newline": append(bytes.Clone(body), '\n'), "keys reordered": reordered} {
		if bytes.Equal(other, body) {
			t.Fatalf("%s: the same bytes", name)
		}
		resp, raw := f.post(t, "key-bytes", other, execKey)
		if p := problemOf(t, raw); resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(p["detail"].(string), "compared byte for byte") {
			t.Fatalf("%s: %d %s", name, resp.StatusCode, raw)
		}
	}
	if n := f.h.sim.Calls(engagesim.OpAppend); n != 1 {
		t.Fatalf("%d append calls, want 1", n)
	}
}

func TestTwentyConcurrentRequestsWithOneKeyAppendOneMessage(t *testing.T) {
	t.Parallel()
	f := newIdempotencyFixture(t, harnessOptions{})
	// Engage is slow, so the other 19 arrive while the first runs.
	f.h.sim.InjectFault(engagesim.Fault{Op: engagesim.OpAppend, Latency: 200 * time.Millisecond})
	body := f.appendBody("exactly once")
	const n = 20
	answers := make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, raw := f.post(t, "burst", body, execKey)
			if resp.StatusCode != 200 {
				t.Errorf("request %d: %d %s", i, resp.StatusCode, raw)
			}
			answers[i] = raw
		})
	}
	wg.Wait()
	if f.messages(t) != 1 || f.h.sim.Calls(engagesim.OpAppend) != 1 {
		t.Fatalf("%d messages, %d append calls; want exactly 1", f.messages(t), f.h.sim.Calls(engagesim.OpAppend))
	}
	for i, a := range answers {
		if !bytes.Equal(a, answers[0]) {
			t.Fatalf("answer %d differs: %s vs %s", i, a, answers[0])
		}
	}
	if !strings.Contains(string(answers[0]), `"outcome":"onAppendMessageSuccess"`) {
		t.Fatalf("answer %s", answers[0])
	}
}

func TestAKeyWhoseFirstRequestNeverFinishedIsNotRunAgain(t *testing.T) {
	t.Parallel()
	f := newIdempotencyFixture(t, harnessOptions{})
	body := f.appendBody("lost")
	// The first request took the key and died before storing an answer: its lease is
	// over and it has no response.
	if _, raw := f.post(t, "crashed", body, execKey); !strings.Contains(string(raw), "onAppendMessageSuccess") {
		t.Fatal(string(raw))
	}
	if _, err := f.pool.Exec(t.Context(), `update idempotency_keys set response = null, locked_until = now() - interval '1 second' where key = 'crashed'`); err != nil {
		t.Fatal(err)
	}
	resp, raw := f.post(t, "crashed", body, execKey)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(problemOf(t, raw)["detail"].(string), "did not finish") {
		t.Fatalf("%d %s, want 409", resp.StatusCode, raw)
	}
	if f.messages(t) != 1 {
		t.Fatalf("%d messages: the append was repeated", f.messages(t))
	}
}

// A search may take over a key whose holder died, once the holder's lease lapses. That
// can come late in the waiter's own wait (timeout + 5 s): the take-over still ends by
// then, rather than running a whole timeout more.
func TestATakeOverEndsByTheWaitersOwnDeadline(t *testing.T) {
	t.Parallel()
	f := newIdempotencyFixture(t, harnessOptions{})
	f.h.sim.SeedConversation(simDomain, searchable("sms", "active"))
	body, _ := json.Marshal(map[string]any{
		"node": "search-conversation", "version": "1.3", "authorizationId": authOK, "timeoutMs": 1000,
		"input": map[string]any{"channel": "sms", "customerAddress": "+15550001", "bizAddress": "+15559999"},
	})
	if _, raw := f.post(t, "died", body, execKey); !strings.Contains(string(raw), "conversationActive") {
		t.Fatal(string(raw))
	}
	// The holder died with 5.5 s left on its lease: a waiter with a 1 s timeout waits
	// up to 6 s, so it takes the key over half a second before its deadline.
	if _, err := f.pool.Exec(t.Context(), `update idempotency_keys set response = null, locked_until = now() + interval '5.5 seconds' where key = 'died'`); err != nil {
		t.Fatal(err)
	}
	f.h.sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Latency: 10 * time.Second})
	start := time.Now()
	resp, raw := f.post(t, "died", body, execKey)
	took := time.Since(start)
	var a answer
	if err := json.Unmarshal(raw, &a); resp.StatusCode != http.StatusOK || err != nil || a.Outcome != "onTimeout" || a.DurationMs == nil {
		t.Fatalf("%d %s, want the take-over's onTimeout", resp.StatusCode, raw)
	}
	if *a.DurationMs >= 900 {
		t.Fatalf("the take-over ran %d ms, answering after %s: a whole timeout past the lease instead of ending by the waiter's deadline (6 s)",
			*a.DurationMs, took.Round(time.Millisecond))
	}
}

// A failure that certainly changed nothing in Engage is not kept: a retry with the key,
// once the cause is gone, runs the execution (here, appends the message once). A failure
// after which Engage may have acted is kept and replayed, as any answer is.
func TestAFailureThatChangedNothingInEngageIsNotReplayed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		fault     engagesim.Fault
		outcome   string
		replayed  bool // the retry gets the failure again
		appended  int  // messages after the retry
		sentFirst int  // append calls the first request made
	}{
		{"invalid input", engagesim.Fault{}, "onInvalidData", false, 0, 0},
		{"no token", engagesim.Fault{Op: engagesim.OpToken, Status: http.StatusServiceUnavailable, Times: 1}, "onError", false, 1, 0},
		{"the breaker refused", engagesim.Fault{}, "Failure", false, 1, 0},
		{"token refused twice", engagesim.Fault{Op: engagesim.OpAppend, Status: http.StatusUnauthorized, Times: 2}, "onAuthorizationFailure", false, 1, 2},
		{"rate limited", engagesim.Fault{Op: engagesim.OpAppend, Status: http.StatusTooManyRequests, Times: 1}, "Failure", false, 1, 1},
		{"Engage failed", engagesim.Fault{Op: engagesim.OpAppend, Status: http.StatusServiceUnavailable, Times: 1}, "Failure", true, 0, 1},
		{"no answer", engagesim.Fault{Op: engagesim.OpAppend, Reset: true, Times: 1}, "Failure", true, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newIdempotencyFixture(t, harnessOptions{breaker: &engage.BreakerOptions{OpenFor: 2 * time.Second}})
			if tc.name == "the breaker refused" {
				// Engage's failures trip the breaker of its domain; the next call never leaves
				// (it stays open 2 s: long enough for the claim and the append, under load).
				f.h.sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Status: http.StatusServiceUnavailable})
				search, _ := json.Marshal(map[string]any{"node": "search-conversation", "version": "1.3", "authorizationId": authOK,
					"input": map[string]any{"channel": "sms", "customerAddress": "+15550001", "bizAddress": "+15559999"}})
				for i := 0; i < 20; i++ {
					if _, raw := f.h.post(t, "/v1/executions", execKey, search, nil); strings.Contains(string(raw), "engage_circuit_open") {
						break
					}
				}
				f.h.sim.ClearFaults()
			} else if tc.fault != (engagesim.Fault{}) {
				f.h.sim.InjectFault(tc.fault)
			}
			body := f.appendBody("retried")
			if tc.name == "invalid input" {
				body = f.appendBody(strings.Repeat("x", 4097)) // over the text limit
			}
			calls := f.h.sim.Calls(engagesim.OpAppend)
			_, raw := f.post(t, "retry", body, execKey)
			var a answer
			if err := json.Unmarshal(raw, &a); err != nil || a.Outcome != tc.outcome {
				t.Fatalf("first: %s, want %s", raw, tc.outcome)
			}
			if n := f.h.sim.Calls(engagesim.OpAppend) - calls; n != tc.sentFirst {
				t.Fatalf("the first request made %d append calls, want %d", n, tc.sentFirst)
			}
			if tc.name == "the breaker refused" {
				waitBreakerClosed(t, f)
			}
			resp, raw := f.post(t, "retry", body, execKey)
			if replayed := resp.Header.Get("Idempotent-Replayed") == "true"; replayed != tc.replayed {
				t.Fatalf("retry: replayed %v, want %v: %s", replayed, tc.replayed, raw)
			}
			if f.messages(t) != tc.appended {
				t.Fatalf("%d messages after the retry, want %d: %s", f.messages(t), tc.appended, raw)
			}
		})
	}
}

// waitBreakerClosed waits until an append goes through the breaker again (a search, to
// append nothing).
func waitBreakerClosed(t *testing.T, f *idempotencyFixture) {
	t.Helper()
	search, _ := json.Marshal(map[string]any{"node": "search-conversation", "version": "1.3", "authorizationId": authOK,
		"input": map[string]any{"channel": "sms", "customerAddress": "+15550001", "bizAddress": "+15559999"}})
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, raw := f.h.post(t, "/v1/executions", execKey, search, nil)
		if !strings.Contains(string(raw), "engage_circuit_open") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the breaker did not close")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestBadIdempotencyKeysAreRefused(t *testing.T) {
	t.Parallel()
	f := newIdempotencyFixture(t, harnessOptions{})
	for _, key := range []string{"has space", strings.Repeat("k", 256), "naïve", "", "   "} {
		resp, raw := f.post(t, key, f.appendBody("x"), execKey)
		if resp.StatusCode != 400 {
			t.Fatalf("key %q: %d %s", key, resp.StatusCode, raw)
		}
	}
	resp, raw := f.h.post(t, "/v1/executions", execKey, f.appendBody("x"), http.Header{"Idempotency-Key": {"k1", "k2"}})
	if resp.StatusCode != 400 || !strings.Contains(string(raw), "more than once") {
		t.Fatalf("two Idempotency-Key lines: %d %s", resp.StatusCode, raw)
	}
	if f.h.sim.Calls(engagesim.OpAppend) != 0 {
		t.Fatal("a refused request reached Engage")
	}
}

// A key of exactly the limit, 255 characters, runs and replays as any other; one more
// is refused (TestBadIdempotencyKeysAreRefused).
func TestAnIdempotencyKeyOfExactlyTheLimitIsAccepted(t *testing.T) {
	t.Parallel()
	f := newIdempotencyFixture(t, harnessOptions{})
	key := strings.Repeat("k", 255)
	for i := range 2 {
		resp, raw := f.post(t, key, f.appendBody("at the limit"), execKey)
		if resp.StatusCode != 200 || !strings.Contains(string(raw), "onAppendMessageSuccess") {
			t.Fatalf("request %d: %d %s", i+1, resp.StatusCode, raw)
		}
	}
	if n := f.h.sim.Calls(engagesim.OpAppend); n != 1 {
		t.Fatalf("%d appends, want 1: the second request is the first one's replay", n)
	}
}

func TestWithoutTheHeaderAnExecutionNeverTouchesPostgres(t *testing.T) {
	t.Parallel()
	f := newIdempotencyFixture(t, harnessOptions{})
	before := f.queries.Count()
	for i := range 10 {
		resp, raw := f.h.post(t, "/v1/executions", execKey, f.appendBody("no key "+string(rune('a'+i))), nil)
		if resp.StatusCode != 200 || !strings.Contains(string(raw), "onAppendMessageSuccess") {
			t.Fatalf("%d %s", resp.StatusCode, raw)
		}
	}
	if n := f.queries.Count() - before; n != 0 {
		t.Fatalf("10 executions without Idempotency-Key ran %d queries, want 0", n)
	}
}

// waitUntil polls cond until it holds, or fails the test after within.
func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
	}
}

// keyAnswered reports whether the tenant's key has an answer stored.
func (f *idempotencyFixture) keyAnswered(t *testing.T, key string) bool {
	t.Helper()
	var answered bool
	err := f.pool.QueryRow(t.Context(), "select response is not null from idempotency_keys where key = $1", key).Scan(&answered)
	return err == nil && answered
}

// A caller that goes away while its execution runs (its own timeout, a dropped
// connection) is sure to retry with its key: the execution is not cut short, its
// answer is stored, and the retry gets that answer without a second append.
func TestACallerThatLeavesMidExecutionGetsItsAnswerOnTheRetry(t *testing.T) {
	t.Parallel()
	f := newIdempotencyFixture(t, harnessOptions{})
	f.h.sim.InjectFault(engagesim.Fault{Op: engagesim.OpAppend, Latency: 300 * time.Millisecond, Times: 1})
	body := f.appendBody("sent once, answered after the caller left")

	ctx, leave := context.WithCancel(t.Context())
	defer leave()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.h.srv.URL+"/v1/executions", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+execKey)
	req.Header.Set("Idempotency-Key", "left")
	gone := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		gone <- err
	}()
	waitUntil(t, 5*time.Second, "the append reaches Engage", func() bool { return f.h.sim.Calls(engagesim.OpAppend) == 1 })
	leave()
	if err := <-gone; err == nil {
		t.Fatal("the request was answered before its caller left: this proves nothing")
	}
	waitUntil(t, 5*time.Second, "the key gets the answer of the request its caller left", func() bool { return f.keyAnswered(t, "left") })

	resp, raw := f.post(t, "left", body, execKey)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Idempotent-Replayed") != "true" || !strings.Contains(string(raw), `"outcome":"onAppendMessageSuccess"`) {
		t.Fatalf("the retry: %d (replayed %q) %s, want the first request's success replayed", resp.StatusCode, resp.Header.Get("Idempotent-Replayed"), raw)
	}
	if n, calls := f.messages(t), f.h.sim.Calls(engagesim.OpAppend); n != 1 || calls != 1 {
		t.Fatalf("%d messages, %d append calls; want 1 and 1", n, calls)
	}
}

// slowAnswerWrites plays a Postgres slow to store an execution's answer.
type slowAnswerWrites struct{}

func (slowAnswerWrites) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.HasPrefix(strings.TrimSpace(d.SQL), "update idempotency_keys set response") {
		select {
		case <-ctx.Done():
		case <-time.After(300 * time.Millisecond):
		}
	}
	return ctx
}

func (slowAnswerWrites) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// A request that runs to its deadline stores its answer just after it: the key stays
// held for that time, so a request waiting on the key gets that answer, not a 409 that
// calls it abandoned (whose caller would check, then send the message again under a
// new key).
func TestAWaiterGetsTheAnswerAHolderStoresJustAfterItsDeadline(t *testing.T) {
	t.Parallel()
	cfg, err := pgxpool.ParseConfig(dbtest.NewURL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.Tracer = slowAnswerWrites{}
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	h := newHarness(t, harnessOptions{pool: pool})
	f := &idempotencyFixture{h: h, pool: pool,
		conv: h.sim.SeedConversation(simDomain, engagesim.Conversation{Channel: "sms", CustomerAddress: "+15550001", BizAddress: "+15559999", Status: "active"})}
	// Engage does not answer within the execution's 500 ms.
	f.h.sim.InjectFault(engagesim.Fault{Op: engagesim.OpAppend, Latency: 10 * time.Second, Times: 1})
	var body map[string]any
	if err := json.Unmarshal(f.appendBody("to its deadline"), &body); err != nil {
		t.Fatal(err)
	}
	body["timeoutMs"] = 500
	raw, _ := json.Marshal(body)

	type result struct {
		resp *http.Response
		raw  []byte
	}
	first := make(chan result, 1)
	go func() {
		resp, raw := f.post(t, "deadline", raw, execKey)
		first <- result{resp, raw}
	}()
	waitUntil(t, 5*time.Second, "the first request holds the key", func() bool {
		var n int
		return pool.QueryRow(t.Context(), "select count(*) from idempotency_keys where key = 'deadline'").Scan(&n) == nil && n == 1
	})
	resp, second := f.post(t, "deadline", raw, execKey)
	r := <-first
	if !strings.Contains(string(r.raw), `"outcome":"onTimeout"`) {
		t.Fatalf("the first request: %d %s, want onTimeout", r.resp.StatusCode, r.raw)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(second, r.raw) {
		t.Fatalf("the waiting request: %d (replayed %q) %s, want the first request's answer", resp.StatusCode, resp.Header.Get("Idempotent-Replayed"), second)
	}
	if n := f.h.sim.Calls(engagesim.OpAppend); n != 1 {
		t.Fatalf("%d append calls, want 1", n)
	}
}

// A request that asks for idempotency is never run unrecorded: without a store for the
// keys, or with Postgres down, it is refused with 503 and Engage is not called (a retry
// with the key could otherwise repeat the append).
func TestAKeyWithoutTheIdempotencyStoreIs503AndRunsNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{}) // no pool: no idempotency store
	conv := h.sim.SeedConversation(simDomain, engagesim.Conversation{Channel: "sms", CustomerAddress: "+15550001", BizAddress: "+15559999", Status: "active"})
	body, _ := json.Marshal(map[string]any{
		"node": "append-message", "version": "1.4", "authorizationId": authOK,
		"input": map[string]any{"conversationId": conv, "channel": "sms", "direction": "outbound",
			"messageType": "text", "timestamp": "2026-03-01T12:00:00Z", "text": "unrecorded"},
	})
	resp, raw := h.post(t, "/v1/executions", execKey, body, http.Header{"Idempotency-Key": {"k1"}})
	if resp.StatusCode != http.StatusServiceUnavailable || problemOf(t, raw)["code"] != "unavailable" {
		t.Fatalf("%d %s, want a 503 unavailable problem", resp.StatusCode, raw)
	}
	if n := h.sim.Calls(engagesim.OpAppend); n != 0 {
		t.Fatalf("%d append calls, want none", n)
	}
}

func TestAKeyWhilePostgresIsDownIs503AndRunsNothing(t *testing.T) {
	t.Parallel()
	f := newIdempotencyFixture(t, harnessOptions{})
	f.pool.Close() // the idempotency store cannot be reached
	resp, raw := f.post(t, "k1", f.appendBody("unrecorded"), execKey)
	if resp.StatusCode != http.StatusServiceUnavailable || problemOf(t, raw)["code"] != "unavailable" {
		t.Fatalf("%d %s, want a 503 unavailable problem", resp.StatusCode, raw)
	}
	if n := f.h.sim.Calls(engagesim.OpAppend); n != 0 || f.messages(t) != 0 {
		t.Fatalf("%d append calls, %d messages; want none", n, f.messages(t))
	}
}

// A request whose key is held by one still running waits for its answer as long as its
// own deadline plus 5 s, then gets a 409 that says to retry later, and runs nothing.
func TestAKeyStillHeldPastTheWaitersDeadlineIs409StillRunning(t *testing.T) {
	t.Parallel()
	f := newIdempotencyFixture(t, harnessOptions{})
	if _, raw := f.post(t, "held", f.appendBody("held"), execKey); !strings.Contains(string(raw), "onAppendMessageSuccess") {
		t.Fatal(string(raw))
	}
	// The key is held, for an hour more, by a request of the body sent below.
	var req map[string]any
	_ = json.Unmarshal(f.appendBody("held"), &req)
	req["timeoutMs"] = 1 // this one waits 1 ms + 5 s
	body, _ := json.Marshal(req)
	sum := sha256.Sum256(body)
	if _, err := f.pool.Exec(t.Context(), `update idempotency_keys set request_hash = $1, response = null, locked_until = now() + interval '1 hour' where key = 'held'`, sum[:]); err != nil {
		t.Fatal(err)
	}
	resp, raw := f.post(t, "held", body, execKey)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(problemOf(t, raw)["detail"].(string), "still running") {
		t.Fatalf("%d %s, want 409 still running", resp.StatusCode, raw)
	}
	if f.messages(t) != 1 {
		t.Fatalf("%d messages: the append was repeated", f.messages(t))
	}
}
