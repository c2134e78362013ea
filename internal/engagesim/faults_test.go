package engagesim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/noderuntime/noderuntime/internal/engagesim"
)

func TestFaultForTheNextNCallsThenNormal(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Status: 502, Times: 2})
	var got []int
	for range 3 {
		got = append(got, searchStatus(t, sim, domain, tok))
	}
	if got[0] != 502 || got[1] != 502 || got[2] != 200 {
		t.Fatalf("statuses %v", got)
	}
	if n := len(sim.Faults()); n != 0 {
		t.Fatalf("%d faults left after they were used up", n)
	}
	if n := sim.Calls(engagesim.OpSearch); n != 3 {
		t.Fatalf("calls %d", n)
	}
}

func TestFaultOnOneOperationLeavesTheOthersAlone(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	sim.InjectFault(engagesim.Fault{Op: engagesim.OpClose, Status: 500})
	if st := searchStatus(t, sim, domain, tok); st != 200 {
		t.Fatalf("search: %d", st)
	}
	if st, _ := call(t, "POST", sim.BaseURL()+"/"+domain+"/conversations/x/close", tok, nil); st != 500 {
		t.Fatalf("close: %d", st)
	}
}

func TestGlobalFaultHitsEveryOperationIncludingTokens(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, baseConfig())
	tok := sim.AccessToken(domain)
	sim.InjectFault(engagesim.Fault{Status: 503, RetryAfter: 1500 * time.Millisecond})
	st, env := call(t, "POST", sim.BaseURL()+"/"+domain+"/conversations/search", tok, map[string]string{})
	if st != 503 || env.Code != engagesim.CodeServerError {
		t.Fatalf("search: %d %+v", st, env)
	}
	cc := &clientcredentials.Config{ClientID: "tenant-1", ClientSecret: "tsecret", TokenURL: sim.ClientCredentialsTokenURL()}
	_, err := cc.Token(t.Context())
	wantOAuthError(t, err, "temporarily_unavailable", 503)
	re, _ := errors.AsType[*oauth2.RetrieveError](err)
	if ra := re.Response.Header.Get("Retry-After"); ra != "2" {
		t.Fatalf("Retry-After %q, want whole seconds rounded up", ra)
	}
	sim.ClearFaults()
	if _, err := cc.Token(t.Context()); err != nil {
		t.Fatalf("after ClearFaults: %v", err)
	}
}

func TestRateLimitFaultSendsRetryAfter(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Status: 429})
	req, _ := http.NewRequestWithContext(t.Context(), "POST", sim.BaseURL()+"/"+domain+"/conversations/search", strings.NewReader(`{}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("%d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

func TestResetAndMalformedFaults(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	u := sim.BaseURL() + "/" + domain + "/conversations/search"
	post := func() (*http.Response, error) {
		req, _ := http.NewRequestWithContext(t.Context(), "POST", u, strings.NewReader(`{"channel":"sms","customeraddress":"c","bizaddress":"b"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		return http.DefaultClient.Do(req)
	}
	resetThenMalformed(t, sim, engagesim.OpSearch, post)
	if resp, err := post(); err != nil || resp.StatusCode != 200 {
		t.Fatalf("after the faults: %v", err)
	} else {
		resp.Body.Close()
	}
}

func TestPercentageFaultsAreDeterministicForASeed(t *testing.T) {
	t.Parallel()
	pattern := func(seed uint64) []bool {
		sim := engagesim.Start(t, engagesim.Config{Seed: seed})
		tok := sim.AccessToken(domain)
		sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Status: 500, Percent: 30})
		out := make([]bool, 200)
		for i := range out {
			out[i] = searchStatus(t, sim, domain, tok) == 500
		}
		return out
	}
	a, b := pattern(7), pattern(7)
	fired := 0
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("call %d differs between runs with the same seed", i)
		}
		if a[i] {
			fired++
		}
	}
	if fired < 30 || fired > 90 {
		t.Fatalf("30%% fault fired %d times in 200", fired)
	}
}

func TestLatencyEndsWhenTheCallerLeavesOrTheSimulatorCloses(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Latency: time.Hour})

	// The caller leaves once its request is waiting in the handler: the handler ends.
	// (Leaving on a short deadline instead could leave before a busy machine delivers
	// the request, and then nothing would be tested.)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", sim.BaseURL()+"/"+domain+"/conversations/search",
		strings.NewReader(`{"channel":"sms","customeraddress":"c","bizaddress":"b"}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	left := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		left <- err
	}()
	waitFor(t, func() bool { return sim.Calls(engagesim.OpSearch) == 1 })
	cancel()
	if err := <-left; err == nil {
		t.Fatal("an hour of latency answered")
	}
	waitFor(t, func() bool { return sim.InFlight() == 0 })

	// The simulator closes: waiting handlers end at once.
	done := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("POST", sim.BaseURL()+"/"+domain+"/conversations/search", strings.NewReader(`{}`))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	waitFor(t, func() bool { return sim.Calls(engagesim.OpSearch) == 2 })
	start := time.Now()
	sim.Close()
	if st := <-done; st != 0 && st != http.StatusServiceUnavailable {
		t.Fatalf("closing answered %d", st)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close took %v", d)
	}
}

func TestUnknownStatusFaultOnlyChangesSearches(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	id := sim.SeedConversation(domain, engagesim.Conversation{Channel: "sms", CustomerAddress: "c", BizAddress: "b", Status: "active"})
	sim.InjectFault(engagesim.Fault{UnknownStatus: "escalated", Times: 1})
	if st, _ := call(t, "POST", sim.BaseURL()+"/"+domain+"/conversations/"+id+"/participants", tok, map[string]string{"participant": "a"}); st != 200 {
		t.Fatalf("add participant: %d", st)
	}
	_, env := call(t, "POST", sim.BaseURL()+"/"+domain+"/conversations/search", tok, map[string]string{"channel": "sms", "customeraddress": "c", "bizaddress": "b"})
	if !strings.Contains(string(env.Value), `"status":"escalated"`) || !strings.Contains(string(env.Value), id) {
		t.Fatalf("search %s", env.Value)
	}
	_, env = call(t, "POST", sim.BaseURL()+"/"+domain+"/conversations/search", tok, map[string]string{"channel": "sms", "customeraddress": "c", "bizaddress": "b"})
	if !strings.Contains(string(env.Value), `"status":"active"`) {
		t.Fatalf("second search %s", env.Value)
	}
}

func TestInjectFaultPanicsOnNonsense(t *testing.T) {
	t.Parallel()
	sim := engagesim.New(engagesim.Config{})
	for name, f := range map[string]engagesim.Fault{
		"unknown op":      {Op: "teleport", Status: 500},
		"does nothing":    {Op: engagesim.OpSearch},
		"bad status":      {Status: 42},
		"status over 599": {Status: 600},
		"informational":   {Status: 100},
		"switching":       {Status: 101},
		"early hints":     {Status: 199},
		"bad percent":     {Status: 500, Percent: 120},
		"negative time":   {Latency: -time.Second},
		"negative times":  {Status: 500, Times: -1},
		"negative retry":  {Status: 429, RetryAfter: -time.Second},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			sim.InjectFault(f)
		}()
	}
}

func TestCountersHoldUnderConcurrentLoad(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, baseConfig())
	tok := sim.AccessToken(domain)
	sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Status: 503, Percent: 20})
	const workers, each = 200, 5
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	defer client.CloseIdleConnections()
	for range workers {
		wg.Go(func() {
			for range each {
				req, _ := http.NewRequest("POST", sim.BaseURL()+"/"+domain+"/conversations/search",
					bytes.NewReader([]byte(`{"channel":"sms","customeraddress":"c","bizaddress":"b"}`)))
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				statuses[resp.StatusCode]++
				mu.Unlock()
				_ = sim.Calls(engagesim.OpSearch) // readers race with writers
				_ = sim.Counts()
			}
		})
	}
	wg.Wait()
	if n := sim.Calls(engagesim.OpSearch); n != workers*each {
		t.Fatalf("calls %d, want %d", n, workers*each)
	}
	if statuses[200]+statuses[503] != workers*each || statuses[503] == 0 {
		t.Fatalf("statuses %v", statuses)
	}
	sim.ResetCounters()
	if n := sim.Calls(engagesim.OpSearch); n != 0 {
		t.Fatalf("after reset %d", n)
	}
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

// A 401 that a fault injects must read as Engage's own 401 does (ENGAGE.md §2: the
// runtime refreshes once on it), header included.
func TestAnInjected401IsAnsweredAsARealOne(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	search := func(token string) (*http.Response, envelope) {
		return callForAnswer(t, http.MethodPost, sim.BaseURL()+"/"+domain+"/conversations/search", token,
			map[string]string{"channel": "sms", "customeraddress": "c", "bizaddress": "b"})
	}
	real, realEnv := search("forged")
	sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Status: http.StatusUnauthorized, Times: 1})
	injected, injectedEnv := search(tok)
	if real.StatusCode != 401 || injected.StatusCode != 401 || injectedEnv.Code != realEnv.Code {
		t.Fatalf("real %d %+v, injected %d %+v", real.StatusCode, realEnv, injected.StatusCode, injectedEnv)
	}
	if got, want := injected.Header.Get("WWW-Authenticate"), real.Header.Get("WWW-Authenticate"); got != want || want == "" {
		t.Fatalf("injected WWW-Authenticate %q, a real 401's %q", got, want)
	}
}

// Status with Malformed is an error status whose body is not Engage's envelope, as a
// gateway or proxy in front of Engage answers: the "bad response" of ENGAGE.md §2 on a
// 4xx or 5xx, which must not read as Engage saying no (a 404 is not "no conversation").
func TestStatusWithMalformedAnswersThatStatusWithABrokenBody(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, baseConfig())
	tok := sim.AccessToken(domain)
	for _, status := range []int{404, 409, 502} {
		sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Status: status, Malformed: true, Times: 1})
		req, _ := http.NewRequestWithContext(t.Context(), "POST", sim.BaseURL()+"/"+domain+"/conversations/search",
			strings.NewReader(`{"channel":"sms","customeraddress":"c","bizaddress":"b"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != status || json.Valid(body) {
			t.Errorf("search with %d malformed: %d %s", status, resp.StatusCode, body)
		}
	}
	sim.InjectFault(engagesim.Fault{Op: engagesim.OpToken, Status: 400, Malformed: true, Times: 1})
	cc := &clientcredentials.Config{ClientID: "tenant-1", ClientSecret: "tsecret", TokenURL: sim.ClientCredentialsTokenURL(), AuthStyle: oauth2.AuthStyleInHeader}
	_, err := cc.Token(t.Context())
	re, ok := errors.AsType[*oauth2.RetrieveError](err)
	if !ok || re.Response.StatusCode != 400 || json.Valid(re.Body) {
		t.Fatalf("token with 400 malformed: %v", err)
	}
}

// Latency only delays: the answer after it is the one the call would have had without
// it, an oversized body's 413 included.
func TestLatencyLeavesTheAnswerToAnOversizedBodyAlone(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	big := `{"channel":"sms","customeraddress":"` + strings.Repeat("c", 1<<20) + `","bizaddress":"b"}`
	var got []int
	for _, latency := range []time.Duration{0, time.Millisecond} {
		if latency > 0 {
			sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Latency: latency})
		}
		st, env := call(t, "POST", sim.BaseURL()+"/"+domain+"/conversations/search", tok, big)
		if env.Code != engagesim.CodeInvalid {
			t.Errorf("latency %v: %d %+v", latency, st, env)
		}
		got = append(got, st)
	}
	if got[0] != http.StatusRequestEntityTooLarge || got[1] != got[0] {
		t.Fatalf("oversized body without latency %d, with latency %d; want 413 both", got[0], got[1])
	}
}

// Reset is a connection reset (ECONNRESET), not an orderly close: the "connection
// failure" after which the runtime may retry a search (ENGAGE.md §2).
func TestResetFaultResetsTheConnection(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Reset: true})
	req, _ := http.NewRequestWithContext(t.Context(), "POST", sim.BaseURL()+"/"+domain+"/conversations/search", strings.NewReader(`{}`))
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("answered %d", resp.StatusCode)
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("got %v, want a connection reset", err)
	}
}

// A 429 from the token endpoint is temporarily_unavailable with Retry-After, as a 503
// is: the runtime backs off on it, it does not give the authorization up (DESIGN.md).
func TestAnInjected429OnTheTokenEndpointIsTemporarilyUnavailable(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, baseConfig())
	sim.InjectFault(engagesim.Fault{Op: engagesim.OpToken, Status: http.StatusTooManyRequests})
	cc := &clientcredentials.Config{ClientID: "tenant-1", ClientSecret: "tsecret", TokenURL: sim.ClientCredentialsTokenURL(), AuthStyle: oauth2.AuthStyleInHeader}
	_, err := cc.Token(t.Context())
	wantOAuthError(t, err, "temporarily_unavailable", http.StatusTooManyRequests)
	if re, _ := errors.AsType[*oauth2.RetrieveError](err); re.Response.Header.Get("Retry-After") != "1" {
		t.Fatalf("Retry-After %q", re.Response.Header.Get("Retry-After"))
	}
}

// With no conversation to find, UnknownStatus invents one in that status, so that a
// test of onInvalidChoice needs no seeding.
func TestUnknownStatusInventsAConversationWhenNoneMatches(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	sim.InjectFault(engagesim.Fault{UnknownStatus: "escalated", Times: 1})
	_, env := call(t, "POST", sim.BaseURL()+"/"+domain+"/conversations/search", tok, map[string]string{"channel": "sms", "customeraddress": "c", "bizaddress": "b"})
	var v struct {
		ConversationID, Status string
		ChatExist              bool
	}
	if err := json.Unmarshal(env.Value, &v); err != nil || v.ConversationID == "" || !v.ChatExist || v.Status != "escalated" {
		t.Fatalf("search %s", env.Value)
	}
}

// An injected 400 or 401 on a token endpoint speaks RFC 6749 §5.2 as a real refusal
// does: a 401 is invalid_client, which the runtime takes as final for client
// credentials, not a server_error that it would back off from and try again.
func TestInjectedTokenRefusalsSpeakRFC6749(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, baseConfig())
	cc := &clientcredentials.Config{ClientID: "tenant-1", ClientSecret: "tsecret", TokenURL: sim.ClientCredentialsTokenURL(), AuthStyle: oauth2.AuthStyleInHeader}
	sim.InjectFault(engagesim.Fault{Op: engagesim.OpToken, Status: http.StatusBadRequest, Times: 1})
	_, err := cc.Token(t.Context())
	wantOAuthError(t, err, "invalid_request", http.StatusBadRequest)

	cc.ClientSecret = "wrong"
	_, real := cc.Token(t.Context())
	wantOAuthError(t, real, "invalid_client", http.StatusUnauthorized)
	cc.ClientSecret = "tsecret"
	sim.InjectFault(engagesim.Fault{Op: engagesim.OpToken, Status: http.StatusUnauthorized, Times: 1})
	_, err = cc.Token(t.Context())
	wantOAuthError(t, err, "invalid_client", http.StatusUnauthorized)
	injected, _ := errors.AsType[*oauth2.RetrieveError](err)
	refused, _ := errors.AsType[*oauth2.RetrieveError](real)
	if got, want := injected.Response.Header.Get("WWW-Authenticate"), refused.Response.Header.Get("WWW-Authenticate"); got != want {
		t.Fatalf("injected WWW-Authenticate %q, a real refusal's %q", got, want)
	}
}

// Op "*" is every operation, as "" is (Fault.Op), the token endpoints included.
func TestAFaultForOpStarHitsEveryOperation(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, baseConfig())
	tok := sim.AccessToken(domain)
	sim.InjectFault(engagesim.Fault{Op: "*", Status: 503})
	if st := searchStatus(t, sim, domain, tok); st != 503 {
		t.Fatalf("search: %d", st)
	}
	cc := &clientcredentials.Config{ClientID: "tenant-1", ClientSecret: "tsecret", TokenURL: sim.ClientCredentialsTokenURL()}
	_, err := cc.Token(t.Context())
	wantOAuthError(t, err, "temporarily_unavailable", 503)
}

// One call meets one answering fault, the first injected; the next one waits its turn
// and keeps its count for the calls after.
func TestOnlyTheFirstAnsweringFaultFiresAndSpendsItsCount(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Status: 503, Times: 1})
	sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Status: 500, Times: 1})
	var got []int
	for range 3 {
		got = append(got, searchStatus(t, sim, domain, tok))
	}
	if got[0] != 503 || got[1] != 500 || got[2] != 200 {
		t.Fatalf("statuses %v, want [503 500 200]", got)
	}
}

// Reset and Malformed act on the token endpoints as on the conversation API: a reset
// connection, and a 200 whose body is cut short.
func TestResetAndMalformedFaultsOnTheTokenEndpoint(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, baseConfig())
	post := func() (*http.Response, error) {
		req, _ := http.NewRequestWithContext(t.Context(), "POST", sim.ClientCredentialsTokenURL(), strings.NewReader("grant_type=client_credentials"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("tenant-1", "tsecret")
		return http.DefaultClient.Do(req)
	}
	resetThenMalformed(t, sim, engagesim.OpToken, post)
}

// The latencies of every fault that fires on a call add up: the first one does not hide
// the others.
func TestTheLatenciesOfFaultsThatFireTogetherAddUp(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Latency: 300 * time.Millisecond, Times: 1})
	sim.InjectFault(engagesim.Fault{Latency: time.Millisecond, Times: 1})
	start := time.Now()
	if st := searchStatus(t, sim, domain, tok); st != http.StatusOK {
		t.Fatalf("search: %d", st)
	}
	if d := time.Since(start); d < 301*time.Millisecond {
		t.Fatalf("answered after %v, want at least the 301 ms of both faults", d)
	}
	if n := len(sim.Faults()); n != 0 {
		t.Fatalf("%d faults left: both fired", n)
	}
}

// Latency only delays a token call too: a body that cannot be read is then answered as
// the token endpoint answers it without latency, with RFC 6749's invalid_request.
func TestLatencyLeavesATokenEndpointsAnswerToAnUnreadableBodyAlone(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, baseConfig())
	for _, latency := range []time.Duration{0, time.Millisecond} {
		if latency > 0 {
			sim.InjectFault(engagesim.Fault{Op: engagesim.OpToken, Latency: latency})
		}
		resp := postBrokenChunkedBody(t, sim, "/api/v1/oauth/token", "Content-Type: application/x-www-form-urlencoded")
		var oe struct {
			Error string `json:"error"`
		}
		err := json.NewDecoder(resp.Body).Decode(&oe)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || err != nil || oe.Error != "invalid_request" {
			t.Errorf("latency %v: %d %+v (%v), want 400 invalid_request", latency, resp.StatusCode, oe, err)
		}
	}
}

// resetThenMalformed injects a Reset fault on op, which must reset post's connection,
// then a Malformed one, which must answer 200 with a body that is not JSON.
func resetThenMalformed(t *testing.T, sim *engagesim.Sim, op string, post func() (*http.Response, error)) {
	t.Helper()
	sim.InjectFault(engagesim.Fault{Op: op, Reset: true, Times: 1})
	if resp, err := post(); err == nil {
		resp.Body.Close()
		t.Fatalf("reset fault answered %d", resp.StatusCode)
	} else if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("got %v, want a connection reset", err)
	}
	sim.InjectFault(engagesim.Fault{Op: op, Malformed: true, Times: 1})
	resp, err := post()
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || json.Valid(body) {
		t.Fatalf("malformed fault: %d %s", resp.StatusCode, body)
	}
}

// An injected 2xx answers as Engage answers a change that went through (ENGAGE.md §4):
// with a transaction ID, on every operation but a search, which changes nothing; an
// injected refusal carries none.
func TestAnInjected2xxOnAChangeCarriesATransactionID(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	base := sim.BaseURL() + "/" + domain + "/conversations"
	for _, tc := range []struct {
		op, method, path string
		status           int
		wantTID          bool
	}{
		{engagesim.OpClose, "POST", "/c1/close", 200, true},
		{engagesim.OpUpdate, "PATCH", "/c1", 200, true},
		{engagesim.OpAddParticipant, "POST", "/c1/participants", 200, true},
		{engagesim.OpRemoveParticipant, "DELETE", "/c1/participants/a1", 202, true},
		{engagesim.OpAppend, "POST", "/c1/messages", 200, true},
		{engagesim.OpCreate, "POST", "", 201, true},
		{engagesim.OpSearch, "POST", "/search", 200, false},
		{engagesim.OpClose, "POST", "/c1/close", 409, false},
		{engagesim.OpClose, "POST", "/c1/close", 503, false},
	} {
		sim.InjectFault(engagesim.Fault{Op: tc.op, Status: tc.status, Times: 1})
		st, env := call(t, tc.method, base+tc.path, tok, nil)
		if st != tc.status || env.Status != tc.status || (env.TID != "") != tc.wantTID {
			t.Errorf("%s injected %d: %d %+v, want a tid: %v", tc.op, tc.status, st, env, tc.wantTID)
		}
	}
}

// NoTID leaves the tid out of a change that goes through, and out of an injected 2xx on
// one: the change is made all the same. A search never matches it, so the fault waits
// for the change it is meant for.
func TestANoTIDFaultAnswersAChangeThatWentThroughWithoutItsTransactionID(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	base := sim.BaseURL() + "/" + domain + "/conversations"
	id := sim.SeedConversation(domain, engagesim.Conversation{Channel: "sms", CustomerAddress: "c", BizAddress: "b", Status: "active"})
	sim.InjectFault(engagesim.Fault{NoTID: true, Times: 1})
	if st := searchStatus(t, sim, domain, tok); st != http.StatusOK || len(sim.Faults()) != 1 {
		t.Fatalf("search: %d, faults left %v; want 200 and the fault not spent", st, sim.Faults())
	}
	message := map[string]string{"channel": "sms", "direction": "inbound", "messagetype": "text", "text": "hi", "timestamp": "2026-03-01T12:00:00Z"}
	st, env := call(t, "POST", base+"/"+id+"/messages", tok, message)
	if c, _ := sim.Conversation(domain, id); st != http.StatusOK || env.Code != engagesim.CodeOK || env.TID != "" || len(c.Messages) != 1 {
		t.Fatalf("append under the fault: %d %+v, %d messages; want 200 without a tid, the message appended", st, env, len(c.Messages))
	}
	if st, env := call(t, "POST", base+"/"+id+"/messages", tok, message); st != http.StatusOK || env.TID == "" {
		t.Fatalf("append after the fault: %d %+v, want a tid again", st, env)
	}
	sim.InjectFault(engagesim.Fault{Op: engagesim.OpCreate, NoTID: true, Times: 1})
	st, env = call(t, "POST", base, tok, map[string]any{"channel": "sms", "bizaddress": "b", "customeraddress": "d", "messages": []any{message}})
	if st != http.StatusCreated || env.TID != "" || !strings.Contains(string(env.Value), "conversationId") {
		t.Fatalf("create under the fault: %d %+v, want 201 with the conversation's ID and no tid", st, env)
	}
	sim.InjectFault(engagesim.Fault{Op: engagesim.OpClose, Status: http.StatusOK, NoTID: true, Times: 1})
	if st, env := call(t, "POST", base+"/"+id+"/close", tok, nil); st != http.StatusOK || env.TID != "" {
		t.Fatalf("an injected 200 under the fault: %d %+v, want no tid", st, env)
	}
}
