package engage_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/noderuntime/noderuntime/internal/engage"
	"github.com/noderuntime/noderuntime/internal/engagesim"
)

func breakerFixture(t *testing.T) (*fixture, *engage.Metrics) {
	t.Helper()
	f := setup(t)
	m := engage.NewMetrics(prometheus.NewRegistry())
	f.client = engage.New(engage.Options{Breaker: &engage.BreakerOptions{OpenFor: 200 * time.Millisecond, ConsecutiveFailures: 5, Observer: m}})
	t.Cleanup(f.client.CloseIdleConnections)
	return f, m
}

func (f *fixture) search(t *testing.T) error {
	t.Helper()
	_, err := f.client.Search(t.Context(), f.target, f.token, engage.SearchRequest{Channel: "sms", CustomerAddress: "+1", BizAddress: "2"})
	return err
}

func TestBreakerOpensOnPersistentFailureFailsFastAndRecovers(t *testing.T) {
	f, m := breakerFixture(t)
	f.sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Status: 503})
	for i := range 5 {
		if k := engage.KindOf(f.search(t)); k != engage.KindUpstream {
			t.Fatalf("call %d: kind %q, want upstream", i, k)
		}
	}
	before := f.sim.Calls(engagesim.OpSearch)
	err := f.search(t)
	if k := engage.KindOf(err); k != engage.KindCircuitOpen {
		t.Fatalf("after 5 failures: kind %q (%v), want circuit_open", k, err)
	}
	if f.sim.Calls(engagesim.OpSearch) != before {
		t.Fatal("an open breaker still sent the call to Engage")
	}
	if got := breakerState(m, f.sim.BaseURL()); got != "open" {
		t.Fatalf("breaker state metric %v, want open", got)
	}

	f.sim.ClearFaults()
	deadline := time.Now().Add(10 * time.Second)
	for f.search(t) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the breaker did not close after Engage recovered")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for range 3 { // half-open lets a few probes through, then closes
		if err := f.search(t); err != nil {
			t.Fatalf("after recovery: %v", err)
		}
	}
	if got := breakerState(m, f.sim.BaseURL()); got != "closed" {
		t.Fatalf("breaker state metric %v, want closed", got)
	}
}

// The state metric follows the breaker without calls: once OpenFor has passed, an open
// breaker is half-open (the next calls are probes), not open for ever on the dashboard.
func TestTheBreakerMetricTurnsHalfOpenWithoutCalls(t *testing.T) {
	f, m := breakerFixture(t)
	f.sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Status: 503})
	for range 5 {
		_ = f.search(t)
	}
	if got := breakerState(m, f.sim.BaseURL()); got != "open" {
		t.Fatalf("breaker state metric %v after 5 failures, want open", got)
	}
	calls := f.sim.Calls(engagesim.OpSearch)
	deadline := time.Now().Add(10 * time.Second)
	for breakerState(m, f.sim.BaseURL()) != "half_open" {
		if time.Now().After(deadline) {
			t.Fatalf("breaker state metric %v 10 s after it opened for 200 ms, want half_open", breakerState(m, f.sim.BaseURL()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if f.sim.Calls(engagesim.OpSearch) != calls {
		t.Fatal("turning half-open sent a call to Engage")
	}
}

func TestBreakerIgnoresBusinessErrorsRateLimitsAndTimeouts(t *testing.T) {
	f, _ := breakerFixture(t)
	f.sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Status: 429, Times: 6})
	for range 6 {
		if k := engage.KindOf(f.search(t)); k != engage.KindRateLimited {
			t.Fatalf("kind %q, want rate_limited", k)
		}
	}
	f.sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Latency: time.Second, Times: 6})
	for range 6 {
		ctx, cancel := contextWithTimeout(t, 20*time.Millisecond)
		_, err := f.client.Search(ctx, f.target, f.token, engage.SearchRequest{Channel: "sms", CustomerAddress: "+1", BizAddress: "2"})
		cancel()
		if k := engage.KindOf(err); k != engage.KindTimeout {
			t.Fatalf("kind %q, want timeout", k)
		}
	}
	for range 6 {
		if _, err := f.client.Close(t.Context(), f.target, f.token, "no-such-conversation"); engage.KindOf(err) != engage.KindBusiness {
			t.Fatalf("close unknown: %v", err)
		}
	}
	f.sim.ClearFaults()
	if err := f.search(t); err != nil {
		t.Fatalf("the breaker opened on errors that are not Engage failing: %v", err)
	}
}

func TestBreakersAreSeparatePerBaseURL(t *testing.T) {
	f, _ := breakerFixture(t)
	other := engagesim.Start(t, engagesim.Config{})
	f.sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Status: 500})
	for range 6 {
		_ = f.search(t)
	}
	if k := engage.KindOf(f.search(t)); k != engage.KindCircuitOpen {
		t.Fatalf("failing region: %q", k)
	}
	_, err := f.client.Search(t.Context(), engage.Target{BaseURL: other.BaseURL(), Domain: domain}, other.AccessToken(domain), engage.SearchRequest{Channel: "sms", CustomerAddress: "+1", BizAddress: "2"})
	if err != nil {
		t.Fatalf("a healthy region was refused: %v", err)
	}
}

// One Engage tenant's failures never refuse another's calls on the same base URL: the
// breaker is per domain, so what one tenant's requests provoke stays its own.
func TestBreakersAreSeparatePerDomain(t *testing.T) {
	tg := downForTheFailingDomain(t)
	m := engage.NewMetrics(prometheus.NewRegistry())
	c := engage.New(engage.Options{Breaker: &engage.BreakerOptions{OpenFor: time.Minute, Observer: m}})
	failing, healthy := tg, tg
	failing.Domain, healthy.Domain = "failing", "healthy"
	req := engage.SearchRequest{Channel: "sms", CustomerAddress: "+1", BizAddress: "2"}
	for range 6 {
		_, _ = c.Search(t.Context(), failing, "tok", req)
	}
	if _, err := c.Search(t.Context(), failing, "tok", req); engage.KindOf(err) != engage.KindCircuitOpen {
		t.Fatalf("the failing domain: %v, want circuit_open", err)
	}
	for range 10 {
		if _, err := c.Search(t.Context(), healthy, "tok", req); err != nil {
			t.Fatalf("another domain on the same base URL was refused: %v", err)
		}
	}
	// The metric counts them by state; the domains stay out of it (unbounded).
	for _, st := range engage.BreakerStates() {
		want := map[string]float64{"open": 1, "closed": 1}[st]
		if got := testutil.ToFloat64(m.Breakers(tg.BaseURL, st)); got != want {
			t.Errorf("%s breakers of the base URL: %v, want %v (failing open, healthy closed)", st, got, want)
		}
	}
}

// Domains are the tenants' choice, so the breakers kept are bounded: past MaxBreakers
// the closed ones are forgotten (and no longer counted), the open one stays and still
// refuses its domain.
func TestTheClosedBreakersAreForgottenPastTheBoundAndTheOpenOneKept(t *testing.T) {
	tg := downForTheFailingDomain(t)
	m := engage.NewMetrics(prometheus.NewRegistry())
	c := engage.New(engage.Options{Breaker: &engage.BreakerOptions{OpenFor: time.Minute, Observer: m, MaxBreakers: 3}})
	req := engage.SearchRequest{Channel: "sms", CustomerAddress: "+1", BizAddress: "2"}
	failing := tg
	failing.Domain = "failing"
	for range 6 {
		_, _ = c.Search(t.Context(), failing, "tok", req)
	}
	kept := func() (n float64) {
		for _, st := range engage.BreakerStates() {
			n += testutil.ToFloat64(m.Breakers(tg.BaseURL, st))
		}
		return n
	}
	for i := range 10 {
		healthy := tg
		healthy.Domain = fmt.Sprintf("tenant-%d", i)
		if _, err := c.Search(t.Context(), healthy, "tok", req); err != nil {
			t.Fatalf("domain %s: %v", healthy.Domain, err)
		}
		if n := kept(); n > 3 {
			t.Fatalf("after %d domains, %v breakers kept, want at most 3", i+1, n)
		}
	}
	if got := testutil.ToFloat64(m.Breakers(tg.BaseURL, "open")); got != 1 {
		t.Fatalf("%v open breakers, want the failing domain's", got)
	}
	if _, err := c.Search(t.Context(), failing, "tok", req); engage.KindOf(err) != engage.KindCircuitOpen {
		t.Fatalf("the failing domain after the others: %v, want circuit_open", err)
	}
}

// downForTheFailingDomain is an Engage that answers 503 for the domain "failing" and
// succeeds for every other.
func downForTheFailingDomain(t *testing.T) engage.Target {
	return fake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if strings.Contains(r.URL.Path, "/failing/") {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":503,"code":5030,"description":"down"}`))
			return
		}
		_, _ = w.Write([]byte(`{"status":200,"code":1000,"description":"ok","value":{}}`))
	})
}

// breakerState is the state of the one breaker of target as noderuntime_circuit_breakers
// counts it: the state counting 1 while the others count 0, else a description.
func breakerState(m *engage.Metrics, target string) string {
	var counts []string
	state := ""
	for _, st := range engage.BreakerStates() {
		n := testutil.ToFloat64(m.Breakers(target, st))
		counts = append(counts, fmt.Sprintf("%s=%v", st, n))
		switch {
		case n == 1 && state == "":
			state = st
		case n != 0:
			state = "several"
		}
	}
	if state == "" || state == "several" {
		return strings.Join(counts, " ")
	}
	return state
}

func contextWithTimeout(t *testing.T, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(t.Context(), d)
}

// A malformed answer is Engage failing as much as a 503 is (BreakerOptions): persistent
// ones open the breaker too, although they come with a 200.
func TestBreakerOpensOnPersistentMalformedAnswers(t *testing.T) {
	f, _ := breakerFixture(t)
	f.sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Malformed: true})
	for i := range 5 {
		if k := engage.KindOf(f.search(t)); k != engage.KindUpstream {
			t.Fatalf("call %d: kind %q, want upstream", i, k)
		}
	}
	if k := engage.KindOf(f.search(t)); k != engage.KindCircuitOpen {
		t.Fatalf("after 5 malformed answers: kind %q, want circuit_open", k)
	}
}

// A create whose success lacks the new conversation's ID is a malformed answer like any
// other (ENGAGE.md §4: create's value is {conversationId}): it counts against Engage, and
// five in a row open the breaker.
func TestBreakerOpensOnPersistentCreatesWithoutAConversationID(t *testing.T) {
	f, _ := breakerFixture(t)
	f.sim.InjectFault(engagesim.Fault{Op: engagesim.OpCreate, Status: http.StatusCreated})
	create := func() error {
		_, err := f.client.Create(t.Context(), f.target, f.token, engage.CreateRequest{Channel: "sms", CustomerAddress: "+1", BizAddress: "2",
			Messages: []engage.Message{{Channel: "sms", Direction: "inbound", MessageType: "text", Text: "hi", Timestamp: "2026-03-01T12:00:00Z"}}})
		return err
	}
	for i := range 5 {
		err := create()
		if e, ok := errors.AsType[*engage.Error](err); !ok || e.Kind != engage.KindUpstream || e.HTTPStatus != http.StatusCreated ||
			e.Code != engagesim.CodeOK || e.Description == "" || len(e.Raw) == 0 {
			t.Fatalf("call %d: %v, want upstream with Engage's status, code, description and body", i, err)
		}
	}
	if k := engage.KindOf(create()); k != engage.KindCircuitOpen {
		t.Fatalf("after 5 creates without a conversationId: kind %q, want circuit_open", k)
	}
}

// Besides 5 failures in a row, the breaker opens when at least half of 20 or more calls
// in its 30 s window failed: an Engage failing every other call never fails 5 in a row.
func TestBreakerOpensWhenHalfOfTwentyCallsFail(t *testing.T) {
	third, _ := breakerFixture(t)
	for i := range 30 { // a third failing: stays closed
		if i%3 == 0 {
			third.sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Status: 503, Times: 1})
		}
		if k := engage.KindOf(third.search(t)); k == engage.KindCircuitOpen {
			t.Fatalf("call %d: the breaker opened with a third of the calls failing", i)
		}
	}

	half, m := breakerFixture(t)
	for i := range 21 { // every other one failing, the 21st too
		if i%2 == 0 {
			half.sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Status: 503, Times: 1})
		}
		if k := engage.KindOf(half.search(t)); k == engage.KindCircuitOpen {
			t.Fatalf("call %d: open before 20 calls", i)
		}
	}
	before := half.sim.Calls(engagesim.OpSearch)
	if k := engage.KindOf(half.search(t)); k != engage.KindCircuitOpen {
		t.Fatalf("after 11 of 21 calls failed: kind %q, want circuit_open", k)
	}
	if half.sim.Calls(engagesim.OpSearch) != before {
		t.Fatal("an open breaker still sent the call to Engage")
	}
	if got := breakerState(m, half.sim.BaseURL()); got != "open" {
		t.Fatalf("breaker state metric %v, want open", got)
	}
}

// Half-open probes that time out against a hanging Engage say nothing about it: they
// neither close the breaker (as successes would) nor count as failures.
func TestProbesThatTimeOutDoNotCloseTheBreaker(t *testing.T) {
	f, m := breakerFixture(t)
	f.sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Status: 503, Times: 5})
	for range 5 {
		_ = f.search(t)
	}
	if got := breakerState(m, f.sim.BaseURL()); got != "open" {
		t.Fatalf("breaker state %v after 5 failures, want open", got)
	}
	f.sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Latency: time.Minute}) // Engage hangs
	timedOut := func() engage.Kind {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
		defer cancel()
		_, err := f.client.Search(ctx, f.target, f.token, engage.SearchRequest{Channel: "sms", CustomerAddress: "+1", BizAddress: "2"})
		return engage.KindOf(err)
	}
	probes := 0
	deadline := time.Now().Add(10 * time.Second)
	for probes < 5 {
		switch k := timedOut(); k {
		case engage.KindTimeout:
			probes++ // a probe went through, half-open, and timed out
		case engage.KindCircuitOpen:
			if time.Now().After(deadline) {
				t.Fatal("the breaker never let a probe through")
			}
			time.Sleep(20 * time.Millisecond)
		default:
			t.Fatalf("kind %q", k)
		}
	}
	if got := breakerState(m, f.sim.BaseURL()); got != "half_open" {
		t.Fatalf("breaker state %v after %d probes timed out, want half_open (neither closed nor reopened)", got, probes)
	}
}

// The breaker's two trip rules at their boundaries: ConsecutiveFailures in a row (5 when
// the options leave it zero, as the runtime's do), or at least half of 20 or more calls.
func TestTheBreakerOpensAtExactlyItsTripRuleAndNotOneCallBefore(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts engage.BreakerOptions
		// fails says whether call i (of calls) fails; the breaker must be open after the
		// last call and closed after every call before it.
		fails func(i int) bool
		calls int
	}{
		{"five consecutive failures with the default options", engage.BreakerOptions{},
			func(int) bool { return true }, 5},
		{"three consecutive failures when configured so", engage.BreakerOptions{ConsecutiveFailures: 3},
			func(int) bool { return true }, 3},
		{"exactly half of twenty calls failing", engage.BreakerOptions{ConsecutiveFailures: 5},
			func(i int) bool { return i%2 == 1 }, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := setup(t)
			f.client = engage.New(engage.Options{Breaker: &tc.opts})
			t.Cleanup(f.client.CloseIdleConnections)
			for i := range tc.calls {
				if tc.fails(i) {
					f.sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Status: 503, Times: 1})
				}
				if k := engage.KindOf(f.search(t)); k == engage.KindCircuitOpen {
					t.Fatalf("call %d of %d: the breaker opened early", i+1, tc.calls)
				}
			}
			before := f.sim.Calls(engagesim.OpSearch)
			if k := engage.KindOf(f.search(t)); k != engage.KindCircuitOpen {
				t.Fatalf("after %d calls: kind %q, want circuit_open", tc.calls, k)
			}
			if f.sim.Calls(engagesim.OpSearch) != before {
				t.Fatal("an open breaker still sent the call to Engage")
			}
		})
	}
}

// A breaker forgotten while a call through it is still running is no longer counted:
// that call's failure, which trips the forgotten breaker, must not move the metric (it
// would count the forgotten breaker's closed state twice and an open breaker that no
// call can ever close again).
func TestABreakerForgottenDuringACallIsNotCountedWhenThatCallTripsIt(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	tg := fake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if strings.Contains(r.URL.Path, "/failing/") {
			once.Do(func() { close(entered) })
			<-release
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":503,"code":5030,"description":"down"}`))
			return
		}
		_, _ = w.Write([]byte(`{"status":200,"code":1000,"description":"ok","value":{}}`))
	})
	m := engage.NewMetrics(prometheus.NewRegistry())
	c := engage.New(engage.Options{Breaker: &engage.BreakerOptions{OpenFor: time.Minute, ConsecutiveFailures: 1, Observer: m, MaxBreakers: 1}})
	req := engage.SearchRequest{Channel: "sms", CustomerAddress: "+1", BizAddress: "2"}
	failing, healthy := tg, tg
	failing.Domain, healthy.Domain = "failing", "healthy"

	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = c.Search(context.Background(), failing, "tok", req)
	}()
	<-entered
	// The bound is reached: the failing domain's breaker, closed so far, is forgotten.
	if _, err := c.Search(t.Context(), healthy, "tok", req); err != nil {
		t.Fatalf("healthy domain: %v", err)
	}
	close(release)
	<-done

	want := map[string]float64{"closed": 1, "half_open": 0, "open": 0} // the healthy domain's
	for _, st := range engage.BreakerStates() {
		if got := testutil.ToFloat64(m.Breakers(tg.BaseURL, st)); got != want[st] {
			t.Errorf("%s breakers: %v, want %v", st, got, want[st])
		}
	}
}

// A caller leaving says nothing about Engage: between two failures it neither resets the
// failures in a row (as a success would) nor adds to them.
func TestACanceledCallNeitherResetsNorAddsToTheFailuresInARow(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{}, 1)
	var calls atomic.Int32
	release := make(chan struct{})
	tg := fake(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 2 {
			arrived <- struct{}{}
			select { // Engage hangs until the caller leaves
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":503,"code":5030,"description":"down"}`))
	})
	t.Cleanup(func() { close(release) }) // before the server's Close
	c := engage.New(engage.Options{Breaker: &engage.BreakerOptions{OpenFor: time.Minute, ConsecutiveFailures: 2}})
	req := engage.SearchRequest{Channel: "sms", CustomerAddress: "+1", BizAddress: "2"}
	if _, err := c.Search(t.Context(), tg, "tok", req); engage.KindOf(err) != engage.KindUpstream {
		t.Fatalf("first call: %v, want upstream", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	go func() { <-arrived; cancel() }()
	if _, err := c.Search(ctx, tg, "tok", req); engage.KindOf(err) != engage.KindCanceled {
		t.Fatalf("canceled call: %v, want canceled", err)
	}
	if _, err := c.Search(t.Context(), tg, "tok", req); engage.KindOf(err) != engage.KindUpstream {
		t.Fatalf("third call: %v, want upstream (the breaker has seen one failure in a row)", err)
	}
	if _, err := c.Search(t.Context(), tg, "tok", req); engage.KindOf(err) != engage.KindCircuitOpen {
		t.Fatalf("after two failures around a canceled call: %v, want circuit_open", err)
	}
}

// Past MaxBreakers only the closed breakers are forgotten: a half-open one keeps its
// probes' verdict, so a failing probe opens it again instead of a fresh breaker letting
// every call through.
func TestAHalfOpenBreakerIsKeptPastTheBound(t *testing.T) {
	t.Parallel()
	tg := downForTheFailingDomain(t)
	m := engage.NewMetrics(prometheus.NewRegistry())
	c := engage.New(engage.Options{Breaker: &engage.BreakerOptions{OpenFor: 20 * time.Millisecond, Observer: m, MaxBreakers: 2}})
	req := engage.SearchRequest{Channel: "sms", CustomerAddress: "+1", BizAddress: "2"}
	failing := tg
	failing.Domain = "failing"
	for range 5 {
		_, _ = c.Search(t.Context(), failing, "tok", req)
	}
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(m.Breakers(tg.BaseURL, "half_open")) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the failing domain's breaker never turned half-open")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i := range 4 {
		healthy := tg
		healthy.Domain = fmt.Sprintf("tenant-%d", i)
		if _, err := c.Search(t.Context(), healthy, "tok", req); err != nil {
			t.Fatalf("domain %s: %v", healthy.Domain, err)
		}
	}
	if _, err := c.Search(t.Context(), failing, "tok", req); engage.KindOf(err) != engage.KindUpstream {
		t.Fatalf("the probe: %v, want upstream", err)
	}
	if _, err := c.Search(t.Context(), failing, "tok", req); engage.KindOf(err) != engage.KindCircuitOpen {
		t.Fatalf("after a failed probe: %v, want circuit_open", err)
	}
}

// Once OpenFor has passed, a few probes (three) go through at once and the next call is
// still refused; the breaker closes when they all succeed.
func TestAHalfOpenBreakerLetsThreeProbesThroughAtOnceAndClosesWhenTheySucceed(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	arrived := make(chan struct{}, 8)
	release := make(chan struct{})
	var once sync.Once
	releaseAll := func() { once.Do(func() { close(release) }) }
	tg := fake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":503,"code":5030,"description":"down"}`))
			return
		}
		arrived <- struct{}{}
		<-release
		_, _ = w.Write([]byte(`{"status":200,"code":1000,"description":"ok","value":{}}`))
	})
	t.Cleanup(releaseAll) // before the server's Close
	m := engage.NewMetrics(prometheus.NewRegistry())
	c := engage.New(engage.Options{Breaker: &engage.BreakerOptions{OpenFor: 20 * time.Millisecond, ConsecutiveFailures: 1, Observer: m}})
	req := engage.SearchRequest{Channel: "sms", CustomerAddress: "+1", BizAddress: "2"}
	if _, err := c.Search(t.Context(), tg, "tok", req); engage.KindOf(err) != engage.KindUpstream {
		t.Fatalf("first call: %v, want upstream", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for breakerState(m, tg.BaseURL) != "half_open" {
		if time.Now().After(deadline) {
			t.Fatal("the breaker never turned half-open")
		}
		time.Sleep(5 * time.Millisecond)
	}
	results := make(chan error, 3)
	for i := range 3 {
		go func() {
			_, err := c.Search(t.Context(), tg, "tok", req)
			results <- err
		}()
		select {
		case <-arrived:
		case err := <-results:
			t.Fatalf("probe %d did not reach Engage: %v", i+1, err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second) // were it let through, it would hang
	defer cancel()
	if _, err := c.Search(ctx, tg, "tok", req); engage.KindOf(err) != engage.KindCircuitOpen {
		t.Fatalf("a fourth call while three probes are out: %v, want circuit_open", err)
	}
	releaseAll()
	for range 3 {
		if err := <-results; err != nil {
			t.Fatalf("probe: %v", err)
		}
	}
	if got := breakerState(m, tg.BaseURL); got != "closed" {
		t.Fatalf("breaker %s after three successful probes, want closed", got)
	}
}

// A closed breaker's counts start afresh every CountFor: a failure before that does not
// add to one after it, so the breaker stays closed where two in a row would trip it.
func TestAClosedBreakerStartsItsCountsAfreshAfterCountFor(t *testing.T) {
	t.Parallel()
	tg := fake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":503,"code":5030,"description":"down"}`))
	})
	const countFor = 50 * time.Millisecond
	c := engage.New(engage.Options{Breaker: &engage.BreakerOptions{OpenFor: time.Minute, ConsecutiveFailures: 2, CountFor: countFor}})
	req := engage.SearchRequest{Channel: "sms", CustomerAddress: "+1", BizAddress: "2"}
	if _, err := c.Search(t.Context(), tg, "tok", req); engage.KindOf(err) != engage.KindUpstream {
		t.Fatalf("first call: %v, want upstream", err)
	}
	time.Sleep(countFor + 20*time.Millisecond) // the passing of the window is what is tested
	if _, err := c.Search(t.Context(), tg, "tok", req); engage.KindOf(err) != engage.KindUpstream {
		t.Fatalf("second call: %v, want upstream", err)
	}
	if _, err := c.Search(t.Context(), tg, "tok", req); engage.KindOf(err) != engage.KindUpstream {
		t.Fatalf("third call: %v, want upstream: the first failure was counted in an earlier window", err)
	}
	if _, err := c.Search(t.Context(), tg, "tok", req); engage.KindOf(err) != engage.KindCircuitOpen {
		t.Fatalf("after two failures in a row within one window: %v, want circuit_open", err)
	}
}
