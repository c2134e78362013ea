package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/noderuntime/noderuntime/internal/database/dbtest"
	"github.com/noderuntime/noderuntime/internal/engagesim"
)

// sent is one request of the load, as the client saw it.
type sent struct {
	id       string
	wrote    time.Time // when the request was written whole
	answered time.Time
	status   int
	outcome  string
	err      error
}

// TestSIGTERMDuringLoadAnswersEveryAcceptedRequestAndExitsZero runs the real binary
// under load (appends that take 1 s at Engage, each on its own connection), sends it
// SIGTERM while many are in flight, and checks: every request the service accepted got
// its whole answer (200 with the success outcome), including those in flight at the
// signal; every request that got no answer was refused at the connection, was never
// logged and changed nothing in Engage; every message Engage appended belongs to an
// answered request; and the process exits 0 within NODERUNTIME_SHUTDOWN_GRACE.
func TestSIGTERMDuringLoadAnswersEveryAcceptedRequestAndExitsZero(t *testing.T) {
	const grace = 10 * time.Second
	sim := startSim(t, simOptions{})
	env := processEnv(dbtest.NewURL(t), sim.BaseURL())
	env["NODERUNTIME_SHUTDOWN_GRACE"] = grace.String()
	p := startProcess(t, "the service", env)
	setup := newClient(t)
	auth := createAuthorization(t, setup, p.url, acmeKey, clientCredentials("load", sim.BaseURL()))
	conv := seedConversation(sim)
	if a, _ := executeAt(t, setup, p.url, appendText(auth, conv, "warm-up", 5000), nil); a.Outcome != "onAppendMessageSuccess" {
		t.Fatalf("warm-up: %s %+v", a.Outcome, a.Error)
	}
	if resp, _ := send(t, setup, http.MethodGet, p.url+"/metrics", "", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", resp.StatusCode) // scanned for canaries like every answer
	}
	closeIdle(setup)
	sim.InjectFault(engagesim.Fault{Op: engagesim.OpAppend, Latency: time.Second})

	// Each request on a new connection: a keep-alive connection the server closes as
	// idle at shutdown could race a request being written to it, which no server can
	// answer and no client could tell from a refused one.
	load := newClient(t)
	load.Transport.(scanningTransport).base.DisableKeepAlives = true
	var (
		mu      sync.Mutex
		results []*sent
		seq     atomic.Int64
		stop    atomic.Bool
		wg      sync.WaitGroup
	)
	for range 24 {
		wg.Go(func() {
			for !stop.Load() {
				r := &sent{id: fmt.Sprintf("load-%d", seq.Add(1))}
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
				body, _ := json.Marshal(appendText(auth, conv, r.id, 8000))
				req, _ := http.NewRequest(http.MethodPost, p.url+"/v1/executions", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+acmeKey)
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Request-Id", r.id)
				req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
					WroteRequest: func(httptrace.WroteRequestInfo) { r.wrote = time.Now() },
				}))
				resp, err := load.Do(req)
				r.answered = time.Now()
				if err != nil {
					r.err = err
					return // the service is going away: an orchestrator would go elsewhere
				}
				var a answer
				_ = json.NewDecoder(resp.Body).Decode(&a)
				resp.Body.Close()
				r.status, r.outcome = resp.StatusCode, a.Outcome
			}
		})
	}
	eventually(t, 20*time.Second, "the load did not put 12 executions in flight at Engage", func() bool { return sim.InFlight() >= 12 })
	inFlight := sim.InFlight()
	signaled := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(grace + 5*time.Second):
		t.Fatalf("the process did not exit within %s of SIGTERM", grace+5*time.Second)
	}
	exited := time.Since(signaled)
	stop.Store(true)
	wg.Wait()

	if p.code != 0 || exited > grace {
		t.Errorf("exit code %d after %s; want 0 within the grace of %s", p.code, exited, grace)
	}
	logged := map[string]float64{}
	for _, rec := range p.records("request") {
		if id, _ := rec["requestId"].(string); id != "" {
			logged[id], _ = rec["status"].(float64)
		}
	}
	appended := map[string]bool{}
	c, _ := sim.Conversation(engageDomain, conv)
	for _, m := range c.Messages {
		appended[m.Text] = true
	}
	answeredAfter := 0
	for _, r := range results {
		switch {
		case r.err == nil:
			if r.status != http.StatusOK || r.outcome != "onAppendMessageSuccess" {
				t.Errorf("%s: %d %s, want 200 onAppendMessageSuccess", r.id, r.status, r.outcome)
			}
			if !appended[r.id] || logged[r.id] != http.StatusOK {
				t.Errorf("%s: answered, but appended %v, logged %v", r.id, appended[r.id], logged[r.id])
			}
			if r.answered.After(signaled) && r.wrote.Before(signaled) {
				answeredAfter++
			}
		case !isConnectionError(r.err):
			t.Errorf("%s: %v: an error that is not a refused connection", r.id, r.err)
		default:
			if _, ok := logged[r.id]; ok || appended[r.id] {
				t.Errorf("%s got no answer (%v), but the service logged it (%v) or Engage appended it (%v)", r.id, r.err, ok, appended[r.id])
			}
		}
	}
	if answeredAfter < inFlight {
		t.Errorf("%d requests written before the signal were answered after it; %d were in flight at Engage", answeredAfter, inFlight)
	}
	if len(p.records("stopped")) != 1 {
		t.Errorf("no \"stopped\" line: the process did not shut down cleanly")
	}
	t.Logf("%d requests, %d in flight at Engage at the signal, %d answered after it, exit after %s", len(results), inFlight, answeredAfter, exited.Round(time.Millisecond))
}
