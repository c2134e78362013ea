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
	"runtime/pprof"
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
	auth := "Bearer " + *token
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Node  string                     `json:"node"`
			Input map[string]json.RawMessage `json:"input"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		path := *base + "/conversations/search"
		if in.Node == "append-message" {
			var id string
			_ = json.Unmarshal(in.Input["conversationId"], &id)
			path = *base + "/conversations/" + id + "/messages"
		}
		body, _ := json.Marshal(in.Input)
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
		var env map[string]any
		_ = json.Unmarshal(raw, &env)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"outcome": "ok", "output": env["value"]})
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
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
