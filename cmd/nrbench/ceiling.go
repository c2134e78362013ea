package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/metrics"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

// runCeiling serves the reference handler: decode the execution request, make the one
// Engage call it implies through a pooled client, encode an answer. Nothing else: no
// authentication, validation, token store, metrics or logging. No real service can be
// faster, so the runtime's throughput is reported as a share of this one's.
func runCeiling(args []string) error {
	fs := flag.NewFlagSet("ceiling", flag.ContinueOnError)
	base := fs.String("engage", "", "Engage base URL including the domain, e.g. http://127.0.0.1:1234/api/v1/acme")
	token := fs.String("token", "", "Engage access token")
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute}}
	h := ceilingHandler(client, *base, *token)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	// A path comparison rather than a ServeMux: the ceiling's requests pay for nothing
	// the harness's scrape needs.
	withMetrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" {
			serveGCMetrics(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
	srv := &http.Server{Handler: withMetrics, ReadHeaderTimeout: 10 * time.Second}
	// NRBENCH_CEILING_CPUPROFILE profiles the ceiling over its whole life, to compare
	// with the runtime's profile (-cpuprofile).
	stopProfile := func() {}
	if path := os.Getenv("NRBENCH_CEILING_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		stopProfile = func() { pprof.StopCPUProfile(); f.Close() }
	}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
		<-sig
		stopProfile()
		srv.Close()
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}

// ceilingHandler is the ceiling's whole work per request, calling Engage at base
// (including the domain) through client with token. The call is the one the runtime
// makes, so the simulator does the same work for both: the node's input names become
// Engage's wire names (lower case; an append's conversationId moves to the path), and an
// answer other than Engage's 200 is a 502, which the harness counts as an error.
func ceilingHandler(client *http.Client, base, token string) http.Handler {
	auth := "Bearer " + token
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Node  string                     `json:"node"`
			Input map[string]json.RawMessage `json:"input"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		path := base + "/conversations/search"
		if in.Node == "append-message" {
			var id string
			_ = json.Unmarshal(in.Input["conversationId"], &id)
			delete(in.Input, "conversationId")
			path = base + "/conversations/" + id + "/messages"
		}
		wire := make(map[string]json.RawMessage, len(in.Input))
		for k, v := range in.Input {
			wire[strings.ToLower(k)] = v
		}
		body, _ := json.Marshal(wire)
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Authorization", auth)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			http.Error(w, string(raw), http.StatusBadGateway)
			return
		}
		var env map[string]any
		_ = json.Unmarshal(raw, &env)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"outcome": "ok", "output": env["value"]})
	})
}

// serveGCMetrics answers the two collector figures the harness reads from the runtime's
// /metrics, under the names client_golang's Go collector gives them there, from the same
// runtime/metrics sources.
func serveGCMetrics(w http.ResponseWriter, _ *http.Request) {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	fmt.Fprintf(w, "go_gc_duration_seconds_count %d\ngo_memstats_alloc_bytes_total %d\n", s[0].Value.Uint64(), s[1].Value.Uint64())
}
