package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/noderuntime/noderuntime/internal/engagesim"
)

// An execution whose caller left before it ended (an orchestrator's client timeout
// shorter than Engage's answer, an orchestrator restarting) answered no edge to anyone:
// it is not counted as an onError outcome, which NoderuntimeHighErrorRatio (critical)
// reads as the runtime failing, and its log line says `canceled`, not `internal` (a
// bug, whose runbook advice is a rollback).
func TestAnExecutionItsCallerLeftIsNotCountedAsAFailure(t *testing.T) {
	e := startE2E(t)
	auth := e.authorize("cc", map[string]any{"kind": "client-credentials", "baseUrl": e.sim.BaseURL(), "domain": e2eDomain,
		"tenantId": "acme-engage", "tenantSecret": e2eCCSecret}, "")
	e.sim.InjectFault(engagesim.Fault{Op: engagesim.OpSearch, Latency: time.Minute, Times: 1})
	raw, err := json.Marshal(map[string]any{"node": "search-conversation", "version": "1.3", "authorizationId": auth,
		"input": map[string]any{"channel": "SMS", "bizAddress": "+15559999", "customerAddress": "+15550001"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, leave := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url+"/v1/executions", bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e2eKey)
	req.Header.Set("Content-Type", "application/json")
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); e.sim.Calls(engagesim.OpSearch) == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the search never reached Engage")
		}
	}
	leave() // the caller goes while Engage has not answered
	<-done
	var line map[string]any
	for deadline := time.Now().Add(10 * time.Second); line == nil; time.Sleep(10 * time.Millisecond) {
		for _, l := range strings.Split(e.logs.String(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "request" && m["route"] == "/v1/executions" {
				line = m
			}
		}
		if line == nil && time.Now().After(deadline) {
			t.Fatal("no access log line for the execution its caller left")
		}
	}
	if line["errorCode"] != "canceled" {
		t.Errorf("access log line %v, want errorCode canceled", line)
	}
	for _, m := range e.metricFamilies()["noderuntime_executions_total"].GetMetric() {
		if label(m, "node") == "search-conversation" && m.GetCounter().GetValue() != 0 {
			t.Errorf("noderuntime_executions_total{outcome=%q} %v, want the execution its caller left not counted",
				label(m, "outcome"), m.GetCounter().GetValue())
		}
	}
}
