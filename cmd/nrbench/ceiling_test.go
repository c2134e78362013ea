package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/noderuntime/noderuntime/internal/database"
	"github.com/noderuntime/noderuntime/internal/engagesim"
)

// BenchmarkCeiling is the ceiling's work per request in process, with Engage's answer
// canned: the figure to set next to internal/httpapi's BenchmarkExecution/canned.
func BenchmarkCeiling(b *testing.B) {
	for _, c := range []struct{ name, body, answer string }{
		{"search-conversation-1.3",
			`{"node":"search-conversation","version":"1.3","authorizationId":"a1","input":{"channel":"sms","bizAddress":"+15559999","customerAddress":"+15550001"}}`,
			`{"status":200,"code":1000,"description":"conversation found","value":{"conversationId":"c0ffee","aliasId":"","chatExist":true,"status":"active","teamId":"t1","userId":"u1"}}`},
		{"append-message-1.4",
			`{"node":"append-message","version":"1.4","authorizationId":"a1","input":{"conversationId":"c0ffee","channel":"sms","direction":"inbound","messageType":"text","text":"Hello from the benchmark","timestamp":"2026-11-25T10:00:00Z"}}`,
			`{"status":200,"code":1000,"description":"message appended","tid":"tid-3fcb5f72cb833738e836b8e472300d62"}`},
	} {
		b.Run(c.name, func(b *testing.B) {
			h := ceilingHandler(&http.Client{Transport: engagesim.Canned{Body: c.answer}}, "http://engage.invalid/api/v1/bench", "token")
			body := []byte(c.body)
			rd := bytes.NewReader(body)
			req := httptest.NewRequest(http.MethodPost, "/v1/executions", nil)
			b.ReportAllocs()
			for b.Loop() {
				rd.Reset(body)
				r := *req
				r.Body = io.NopCloser(rd)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, &r)
				if w.Code != http.StatusOK {
					b.Fatal(w.Code, w.Body.String())
				}
			}
		})
	}
}

// The ceiling makes the call the runtime makes, and Engage accepts it: a ceiling whose
// calls Engage refused would be measuring a cheaper path on both sides.
func TestCeilingMakesTheRuntimesEngageCalls(t *testing.T) {
	sim := engagesim.Start(t, engagesim.Config{Tenants: []engagesim.Tenant{{ID: "t", Secret: "s", Domain: "bench"}}})
	conv := sim.SeedConversation("bench", engagesim.Conversation{Channel: "sms", CustomerAddress: "+15550002", BizAddress: "+15559999", Status: "active"})
	h := ceilingHandler(http.DefaultClient, sim.BaseURL()+"/bench", sim.AccessToken("bench"))
	serve := func(body string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/executions", strings.NewReader(body)))
		return w
	}

	w := serve(`{"node":"search-conversation","version":"1.3","authorizationId":"a1","input":{"channel":"sms","bizAddress":"+15559999","customerAddress":"+15550002"}}`)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"conversationId":"`+conv+`"`) {
		t.Fatalf("search: %d %s", w.Code, w.Body)
	}
	w = serve(`{"node":"append-message","version":"1.4","authorizationId":"a1","input":{"conversationId":"` + conv + `","channel":"sms","direction":"inbound","messageType":"text","text":"Hello","timestamp":"2026-11-25T10:00:00Z"}}`)
	if w.Code != http.StatusOK {
		t.Fatalf("append: %d %s", w.Code, w.Body)
	}
	if c, _ := sim.Conversation("bench", conv); len(c.Messages) != 1 || c.Messages[0].Text != "Hello" {
		t.Fatalf("the simulator stored %+v", c.Messages)
	}
	// Engage refusing the call is an error the harness counts, not a 200.
	w = serve(`{"node":"append-message","version":"1.4","authorizationId":"a1","input":{"conversationId":"nope","channel":"sms","direction":"inbound","messageType":"text","text":"Hello","timestamp":"2026-11-25T10:00:00Z"}}`)
	if w.Code != http.StatusBadGateway {
		t.Fatalf("append to a missing conversation: %d %s", w.Code, w.Body)
	}
}

// The ceiling's /metrics and the runtime's (client_golang's Go collector, as
// internal/app registers it) give the harness the same two figures under the same names.
func TestBothServersReportCollectionsAndAllocations(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	for name, h := range map[string]http.Handler{
		"ceiling": http.HandlerFunc(serveGCMetrics),
		"runtime": promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(h)
			defer srv.Close()
			e := &env{client: srv.Client(), metricsURL: srv.URL, ceilingURL: srv.URL}
			g0 := e.serverGC(name)
			sink = make([]byte, 1<<20)
			runtime.GC()
			g1 := e.serverGC(name)
			if g1.cycles < g0.cycles+1 || g1.allocs < g0.allocs+1<<20 {
				t.Fatalf("%+v -> %+v: want a collection and 1 MiB more", g0, g1)
			}
		})
	}
}

var sink []byte

// The harness counts the runtime's own queries: the exposition of its real collector,
// read the way each window reads it, leaves out the queries of a scrape.
func TestDBQueriesLeaveOutTheScrapes(t *testing.T) {
	pool, err := pgxpool.New(context.Background(), "postgres://127.0.0.1:1/none") // never connects
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	counter := &database.QueryCounter{}
	for range 2 {
		counter.TraceQueryStart(context.Background(), nil, pgx.TraceQueryStartData{})
	}
	for range 3 {
		counter.TraceQueryStart(database.ForScrape(context.Background()), nil, pgx.TraceQueryStartData{})
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(database.NewPoolCollector(pool, counter))
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	e := &env{client: srv.Client(), metricsURL: srv.URL}
	if got := e.dbQueries(); got != 2 {
		t.Errorf("dbQueries = %v, want the service's 2 (of %d in all)", got, counter.Count())
	}
}
