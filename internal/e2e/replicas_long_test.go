//go:build long

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/noderuntime/noderuntime/internal/database/dbtest"
	"github.com/noderuntime/noderuntime/internal/engagesim"
)

// tokenTraffic records, in front of the simulator, when each token grant arrived and
// what the Engage API answered.
type tokenTraffic struct {
	mu       sync.Mutex
	grants   map[string][]time.Time // "refresh_token" or "client_credentials" -> arrivals
	statuses map[int]int            // Engage API answers by status
}

func (tt *tokenTraffic) wrap(h http.Handler) http.Handler {
	tt.grants, tt.statuses = map[string][]time.Time{}, map[int]int{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		if strings.HasSuffix(r.URL.Path, "/oauth/token") {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			form, _ := url.ParseQuery(string(body))
			tt.mu.Lock()
			tt.grants[form.Get("grant_type")] = append(tt.grants[form.Get("grant_type")], at)
			tt.mu.Unlock()
			h.ServeHTTP(w, r)
			return
		}
		rec := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		if strings.Contains(r.URL.Path, "/conversations") {
			tt.mu.Lock()
			tt.statuses[rec.status]++
			tt.mu.Unlock()
		}
	})
}

func (tt *tokenTraffic) since(kind string, t0 time.Time) []time.Time {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	var out []time.Time
	for _, at := range tt.grants[kind] {
		if !at.Before(t0) {
			out = append(out, at)
		}
	}
	return out
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) { s.status = code; s.ResponseWriter.WriteHeader(code) }

// TestLongThreeReplicasShareOneDatabaseWithTokensExpiringEveryFewSeconds runs three
// `noderuntime serve` processes on one database and 1,000 executions spread over them
// for about 25 s, with access tokens that live 3 s and NODERUNTIME_TOKEN_REFRESH_SKEW=1s,
// on a Webex login (rotating refresh tokens) and a client-credentials authorization.
//
// "Exactly one refresh per expiry", precisely: per authorization, consecutive grants
// arrive between TTL-skew and TTL apart (each token is replaced once, after it entered
// the skew and before it expired, by one replica), so their count over the run is at
// most duration/(TTL-skew)+1 and at least duration/TTL-1; no grant is refused
// (invalid_grant: a refresh token spent twice); and Engage never answers 401 (no
// expired token was used). Every execution succeeds, every replica serves its share,
// no replica logs an error, and 20 identical appends with one Idempotency-Key spread
// over the three append one message.
func TestLongThreeReplicasShareOneDatabaseWithTokensExpiringEveryFewSeconds(t *testing.T) {
	const (
		ttl        = 3 * time.Second
		skew       = time.Second
		executions = 1000
		duration   = 25 * time.Second
		tolerance  = 250 * time.Millisecond
	)
	var backends []*url.URL
	var next atomic.Int64
	lb := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(backends[next.Add(1)%int64(len(backends))])
	}})
	defer lb.Close()
	traffic := &tokenTraffic{}
	sim := startSim(t, simOptions{publicURL: lb.URL, tokenTTL: ttl, wrap: traffic.wrap})
	env := processEnv(dbtest.NewURL(t), sim.BaseURL())
	env["NODERUNTIME_TOKEN_REFRESH_SKEW"] = skew.String()
	env["NODERUNTIME_PUBLIC_URL"] = lb.URL
	env["WEBEX_AUTHORIZE_URL"] = sim.AuthorizeURL()
	env["WEBEX_TOKEN_URL"] = sim.TokenURL()
	env["WEBEX_CLIENT_ID"] = webexClientID
	env["WEBEX_CLIENT_SECRET"] = webexClientSecret
	var replicas []*process
	for i := range 3 {
		p := startProcess(t, fmt.Sprintf("replica %d", i), env)
		replicas = append(replicas, p)
		backends = append(backends, must(url.Parse(p.url)))
	}
	client := newClient(t)
	login := createLogin(t, client, lb.URL, sim, "webex login")
	cc := createAuthorization(t, client, replicas[0].url, acmeKey, clientCredentials("client credentials", sim.BaseURL()))
	conv := seedConversation(sim)
	auths := []string{login, cc}

	t0 := time.Now()
	var failed atomic.Int64
	var wg sync.WaitGroup
	tick := time.NewTicker(duration / executions)
	for i := range executions {
		<-tick.C
		wg.Go(func() {
			e := search(auths[i%2], 5000)
			if i%4 >= 2 {
				e = appendText(auths[i%2], conv, fmt.Sprintf("message %d", i), 5000)
			}
			a, _ := executeAt(t, client, replicas[i%3].url, e, nil)
			if a.Outcome != "conversationActive" && a.Outcome != "onAppendMessageSuccess" {
				if failed.Add(1) <= 10 {
					t.Errorf("execution %d on replica %d: %s %+v", i, i%3, a.Outcome, a.Error)
				}
			}
		})
	}
	tick.Stop()
	wg.Wait()
	elapsed := time.Since(t0)
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d executions did not succeed", n, executions)
	}

	for _, kind := range []string{engagesim.GrantRefreshToken, engagesim.GrantClientCredentials} {
		grants := traffic.since(kind, t0)
		most := int(elapsed/(ttl-skew-tolerance)) + 1
		least := int(math.Floor(elapsed.Seconds()/ttl.Seconds())) - 1
		if len(grants) > most || len(grants) < least {
			t.Errorf("%s: %d grants in %s, want %d to %d (one per expiry)", kind, len(grants), elapsed.Round(time.Millisecond), least, most)
		}
		for j := 1; j < len(grants); j++ {
			if gap := grants[j].Sub(grants[j-1]); gap < ttl-skew-tolerance || gap > ttl+tolerance {
				t.Errorf("%s: grants %d and %d are %s apart, want between %s and %s", kind, j-1, j, gap.Round(time.Millisecond), ttl-skew, ttl)
			}
		}
		t.Logf("%s: %d grants in %s", kind, len(grants), elapsed.Round(time.Millisecond))
	}
	if n := sim.InvalidGrants(); n != 0 {
		t.Errorf("the token endpoint answered invalid_grant %d times: a refresh token was spent twice", n)
	}
	traffic.mu.Lock()
	if n := traffic.statuses[http.StatusUnauthorized]; n != 0 {
		t.Errorf("Engage answered 401 %d times: an expired token was used", n)
	}
	traffic.mu.Unlock()
	for _, id := range auths {
		_, raw := send(t, client, http.MethodGet, replicas[1].url+"/v1/authorizations/"+id, acmeKey, nil, nil)
		if !strings.Contains(string(raw), `"status":"active"`) {
			t.Errorf("authorization %s after the run: %s", id, raw)
		}
	}

	// Idempotency across replicas: one message for 20 requests with one key.
	before := len(must(conversation(sim, conv)).Messages)
	sim.InjectFault(engagesim.Fault{Op: engagesim.OpAppend, Latency: 300 * time.Millisecond})
	answers := make([][]byte, 20)
	staggered(20, 0, func(i int) {
		body := appendText(cc, conv, "exactly once across replicas", 5000)
		resp, raw := send(t, client, http.MethodPost, replicas[i%3].url+"/v1/executions", acmeKey, map[string]any(body), http.Header{"Idempotency-Key": {"across-replicas"}})
		if resp.StatusCode != http.StatusOK {
			t.Errorf("keyed request %d: %d %s", i, resp.StatusCode, raw)
		}
		answers[i] = raw
	})
	sim.ClearFaults()
	if got := len(must(conversation(sim, conv)).Messages) - before; got != 1 {
		t.Errorf("20 requests with one Idempotency-Key over 3 replicas appended %d messages, want 1", got)
	}
	for i := range answers {
		if !bytes.Equal(answers[i], answers[0]) {
			t.Errorf("answer %d differs: %s vs %s", i, answers[i], answers[0])
		}
	}

	for _, p := range replicas {
		if n := len(p.records("request")); n < executions/3 {
			t.Errorf("%s served %d requests, want at least %d", p.name, n, executions/3)
		}
		for _, line := range strings.Split(p.log(), "\n") {
			var rec struct{ Level string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Level == "ERROR" {
				t.Errorf("%s logged an error: %s", p.name, line)
			}
		}
	}
}

func conversation(sim *engagesim.Sim, id string) (engagesim.Conversation, error) {
	c, ok := sim.Conversation(engageDomain, id)
	if !ok {
		return c, engagesim.ErrNotFound
	}
	return c, nil
}
