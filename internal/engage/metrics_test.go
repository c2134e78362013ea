package engage_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/noderuntime/noderuntime/internal/engage"
	"github.com/noderuntime/noderuntime/internal/engagesim"
)

func TestMetricsCountCallsByOperationAndStatus(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewPedanticRegistry()
	m := engage.NewMetrics(reg)
	sim := engagesim.Start(t, engagesim.Config{})
	c := engage.New(engage.Options{Observer: m})
	defer c.CloseIdleConnections()
	tg := engage.Target{BaseURL: sim.BaseURL(), Domain: domain}
	tok := sim.AccessToken(domain)
	req := engage.SearchRequest{Channel: "sms", CustomerAddress: "c", BizAddress: "b"}
	for range 2 {
		if _, err := c.Search(t.Context(), tg, tok, req); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = c.Close(t.Context(), tg, tok, "missing")
	sim.InjectFault(engagesim.Fault{Op: engage.OpSearch, Latency: time.Minute, Times: 1})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	_, _ = c.Search(ctx, tg, tok, req)

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	var observations uint64
	for _, mf := range mfs {
		for _, metric := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range metric.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch mf.GetName() {
			case "noderuntime_engage_requests_total":
				counts[labels["operation"]+" "+labels["status"]] = metric.GetCounter().GetValue()
			case "noderuntime_engage_request_duration_seconds":
				observations += metric.GetHistogram().GetSampleCount()
			}
		}
	}
	want := map[string]float64{"search 200": 2, "close 404": 1, "search timeout": 1}
	for k, v := range want {
		if counts[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, counts[k], v, counts)
		}
	}
	if len(counts) != len(want) || observations != 4 {
		t.Errorf("series %v, %d observations", counts, observations)
	}
}
