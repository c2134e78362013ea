package httpapi_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/noderuntime/noderuntime/internal/engage"
	"github.com/noderuntime/noderuntime/internal/engagesim"
	"github.com/noderuntime/noderuntime/internal/httpapi"
	"github.com/noderuntime/noderuntime/internal/jsonlog"
	"github.com/noderuntime/noderuntime/internal/nodes"
	"github.com/noderuntime/noderuntime/internal/tenant"
)

// The benchmarks of POST /v1/executions run the real router, middleware, executor and
// Engage client: "sim" calls the simulator over loopback HTTP, so its figures include
// the simulator's own work in this process; "canned" answers Engage's part from memory,
// so allocs/op are the runtime's alone. The access log is JSON, written to io.Discard.

// benchRouter builds the edge as internal/app does, on the simulator's credentials.
func benchRouter(b *testing.B, transport http.RoundTripper) (http.Handler, *engagesim.Sim) {
	b.Helper()
	sim := engagesim.Start(b, engagesim.Config{Tenants: []engagesim.Tenant{{ID: simTenantID, Secret: simTenantSecret, Domain: simDomain}}})
	sim.SeedConversation(simDomain, engagesim.Conversation{Channel: "sms", CustomerAddress: "+15550001", BizAddress: "+15559999", Status: "active"})
	creds := &simCredentials{sim: sim}
	reg := prometheus.NewRegistry()
	client := engage.New(engage.Options{Transport: transport, Observer: engage.NewMetrics(reg)})
	b.Cleanup(client.CloseIdleConnections)
	exec := nodes.NewExecutor(nodes.ExecutorOptions{
		Engage: client, Credentials: creds,
		Metrics: nodes.NewMetrics(reg, registry, httpapi.LatencyBuckets),
	})
	keys, err := tenant.ParseKeys("acme:" + tenant.HashKey(execKey) + ",globex:" + tenant.HashKey(globexKey))
	if err != nil {
		b.Fatal(err)
	}
	router := httpapi.NewRouter(httpapi.Deps{
		Logger:  slog.New(jsonlog.New(io.Discard, nil)),
		Metrics: httpapi.NewMetrics(reg),
		APIKeys: keys,
		V1Hot: []func(chi.Router){
			httpapi.ExecutionRoutes(httpapi.Executions{Registry: registry, Executor: exec, DefaultTimeout: 10 * time.Second, MaxTimeout: time.Minute,
				Admission: httpapi.NewAdmission(httpapi.AdmissionOptions{Max: 2000, PerTenant: 1000, Tenants: keys.Tenants()}, reg)}), // as served, with a tenant's cap too
		},
	})
	return router, sim
}

var benchBodies = map[string]string{
	"search-conversation-1.3": `{"node":"search-conversation","version":"1.3","authorizationId":"` + authOK + `",` +
		`"input":{"channel":"sms","bizAddress":"+15559999","customerAddress":"+15550001"},` +
		`"timeoutMs":5000,"context":{"flowId":"f1","nodeId":"n6","transactionId":"t9"}}`,
	"append-message-1.4": `{"node":"append-message","version":"1.4","authorizationId":"` + authOK + `",` +
		`"input":{"conversationId":"CONV","channel":"sms","direction":"inbound","messageType":"text",` +
		`"text":"Hello from the benchmark","timestamp":"2026-11-25T10:00:00Z"},` +
		`"timeoutMs":5000,"context":{"flowId":"f1","nodeId":"n6","transactionId":"t9"}}`,
}

var benchWant = map[string]string{
	"search-conversation-1.3": `"outcome":"conversationActive"`,
	"append-message-1.4":      `"outcome":"onAppendMessageSuccess"`,
}

// discardWriter is a ResponseWriter that keeps the status and the last body, and
// allocates nothing per request once its buffers have grown.
type discardWriter struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }
func (w *discardWriter) Write(p []byte) (int, error) { return w.body.Write(p) }

func (w *discardWriter) reset() {
	clear(w.h)
	w.status = 0
	w.body.Reset()
}

func BenchmarkExecution(b *testing.B) {
	for _, engageKind := range []string{"canned", "sim"} {
		for _, name := range []string{"search-conversation-1.3", "append-message-1.4"} {
			b.Run(engageKind+"/"+name, func(b *testing.B) {
				var transport http.RoundTripper
				if engageKind == "canned" {
					answer := `{"status":200,"code":1000,"description":"conversation found","value":{"conversationId":"c0ffee","aliasId":"","chatExist":true,"status":"active","teamId":"t1","userId":"u1"}}`
					if strings.HasPrefix(name, "append") {
						answer = `{"status":200,"code":1000,"description":"message appended","tid":"tid-3fcb5f72cb833738e836b8e472300d62"}`
					}
					transport = engagesim.Canned{Body: answer}
				}
				router, sim := benchRouter(b, transport)
				conv := sim.SeedConversation(simDomain, engagesim.Conversation{Channel: "sms", CustomerAddress: "+15550002", BizAddress: "+15559999", Status: "active"})
				body := []byte(strings.Replace(benchBodies[name], "CONV", conv, 1))
				want := []byte(benchWant[name])
				w := &discardWriter{h: http.Header{}}
				req := httptest.NewRequest(http.MethodPost, "/v1/executions", nil)
				req.Header.Set("Authorization", "Bearer "+execKey)
				req.Header.Set("Content-Type", "application/json")
				rd := bytes.NewReader(body)
				serve := func() {
					w.reset()
					rd.Reset(body)
					r := *req
					r.Body = io.NopCloser(rd)
					r.ContentLength = int64(len(body))
					router.ServeHTTP(w, &r)
					if w.status != http.StatusOK || !bytes.Contains(w.body.Bytes(), want) {
						b.Fatalf("%d %s", w.status, w.body.Bytes())
					}
				}
				serve() // the first call fetches the token
				b.ReportAllocs()
				for b.Loop() {
					serve()
				}
			})
		}
	}
}
