package main

import (
	"fmt"
	"math"
	"runtime/metrics"
	"time"
)

// harnessStats is what the harness's own Go runtime did in a window: its collections,
// and how long its goroutines (load generator and simulators) waited to run. A long
// wait there is the instrument's latency, on both servers' figures alike.
type harnessStats struct {
	gcs     uint64
	sched   []uint64  // /sched/latencies:seconds, count per bucket
	buckets []float64 // the buckets' bounds, len(sched)+1
}

func readHarness() harnessStats {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/sched/latencies:seconds"}}
	metrics.Read(s)
	h := s[1].Value.Float64Histogram()
	return harnessStats{gcs: s[0].Value.Uint64(), sched: h.Counts, buckets: h.Buckets}
}

// since is the window from h0 to h.
func (h harnessStats) since(h0 harnessStats) harnessStats {
	d := harnessStats{gcs: h.gcs - h0.gcs, sched: make([]uint64, len(h.sched)), buckets: h.buckets}
	for i := range h.sched {
		d.sched[i] = h.sched[i] - h0.sched[i]
	}
	return d
}

// add merges two windows.
func (h harnessStats) add(o harnessStats) harnessStats {
	if h.sched == nil {
		return o
	}
	sum := harnessStats{gcs: h.gcs + o.gcs, sched: make([]uint64, len(h.sched)), buckets: h.buckets}
	for i := range h.sched {
		sum.sched[i] = h.sched[i] + o.sched[i]
	}
	return sum
}

// schedQuantile is the upper bound of the bucket that holds the q-quantile of the
// scheduling latencies (the lower bound for the last, unbounded, bucket).
func (h harnessStats) schedQuantile(q float64) time.Duration {
	var total uint64
	for _, c := range h.sched {
		total += c
	}
	var seen uint64
	for i, c := range h.sched {
		seen += c
		if total > 0 && float64(seen) >= q*float64(total) {
			b := h.buckets[i+1]
			if math.IsInf(b, 1) {
				b = h.buckets[i]
			}
			return time.Duration(b * float64(time.Second))
		}
	}
	return 0
}

func (h harnessStats) String() string {
	if h.sched == nil {
		return ""
	}
	return fmt.Sprintf(" bench-gcs=%d bench-sched-p99=%s", h.gcs, ms(h.schedQuantile(.99)))
}
