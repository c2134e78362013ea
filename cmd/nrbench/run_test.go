package main

import (
	"testing"
	"time"
)

// One window's stall moves the pooled p99 but not the median of the windows' p99s.
func TestMedianWindowP99(t *testing.T) {
	window := func(slow time.Duration) stats {
		s := stats{}
		for i := range 100 {
			d := time.Millisecond
			if i >= 95 {
				d = slow
			}
			s.latencies = append(s.latencies, d)
		}
		s.requests = len(s.latencies)
		s.sort()
		return s
	}
	var r result
	for _, slow := range []time.Duration{4 * time.Millisecond, 5 * time.Millisecond, 90 * time.Millisecond} {
		r = r.add(window(slow), rssStats{}, queries{}, r.windowP99s == nil)
	}
	r.s.sort()
	if got := r.medianWindowP99(); got != 5*time.Millisecond {
		t.Errorf("median window p99 = %s, want 5ms", got)
	}
	if got := r.s.quantile(.99); got != 90*time.Millisecond {
		t.Errorf("pooled p99 = %s, want the stalled window's 90ms", got)
	}
	if (result{}).medianWindowP99() != 0 {
		t.Error("no windows, yet a median")
	}
}
