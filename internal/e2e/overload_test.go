package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/noderuntime/noderuntime/internal/config"
	"github.com/noderuntime/noderuntime/internal/engagesim"
)

// An execution past the replica's cap gets the answer api/openapi.yaml describes (a
// problem with the code overloaded and Retry-After), checked as the conformance test
// checks every answer, and the execution it would have run never reaches Engage.
func TestAnExecutionPastTheCapGetsTheDocumentedAnswer(t *testing.T) {
	spec := loadOpenAPI(t)
	s := startService(t, serviceOptions{configure: func(c *config.Config) { c.MaxExecutions = 1 }})
	check := newOASChecker(t, spec, s.url)
	s.client = check.client(s.client)
	sim := s.sims[0]
	auth := s.createClientCredentials("capped", sim)
	conv := seedConversation(sim)
	sim.InjectFault(engagesim.Fault{Op: engagesim.OpAppend, Latency: time.Minute})

	held := make(chan struct{})
	go func() { // the one execution the cap lets in, held at Engage until its deadline
		defer close(held)
		body, _ := json.Marshal(appendText(auth, conv, "held", 1000))
		req, _ := http.NewRequest(http.MethodPost, s.url+"/v1/executions", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+acmeKey)
		req.Header.Set("Content-Type", "application/json")
		if resp, err := s.client.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	eventually(t, 10*time.Second, "the first append waits on Engage", func() bool { return sim.InFlight() == 1 })

	resp, raw := s.do(http.MethodPost, "/v1/executions", acmeKey, appendText(auth, conv, "refused", 1000), nil)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" || !strings.Contains(string(raw), `"code":"overloaded"`) {
		t.Fatalf("past the cap: %d (Retry-After %q) %s", resp.StatusCode, resp.Header.Get("Retry-After"), raw)
	}
	<-held
	if n := sim.Calls(engagesim.OpAppend); n != 1 {
		t.Errorf("%d appends reached Engage, want the held one only", n)
	}
	check.mu.Lock()
	defer check.mu.Unlock()
	if check.seen["execute"]["503"] != 1 {
		t.Errorf("the checker saw %v answers of execute, want the one 503", check.seen["execute"])
	}
}
