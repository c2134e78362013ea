package main

import (
	"context"
	"slices"
	"sync"
	"time"
)

// request is one call the load generator repeats.
type request struct {
	url     string
	apiKey  string
	body    []byte
	accept  func(status int, body []byte) bool // is this answer a success?
	headers map[string]string
	wire    wireRequest // built by prepare
	wireErr error
}

// prepare builds the request's bytes on the wire.
func (r request) prepare() request {
	r.wire, r.wireErr = buildWire(r)
	return r
}

// stats summarises one scenario.
type stats struct {
	requests, errors int
	elapsed          time.Duration
	latencies        []time.Duration // sorted
	// lags (open loop only, sorted): how late each request left the load generator
	// after it was due, the harness's own share of its latency.
	lags []time.Duration
}

func (s stats) rps() float64 { return float64(s.requests) / s.elapsed.Seconds() }

func (s stats) quantile(q float64) time.Duration { return quantile(s.latencies, q) }

// sort orders the latencies and lags, for quantile.
func (s stats) sort() {
	slices.Sort(s.latencies)
	slices.Sort(s.lags)
}

// quantile is the q-quantile of sorted durations (0 when there are none).
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(q*float64(len(sorted)-1))]
}

// send makes one request on wc and says whether its answer was a success.
func send(wc *wireConn, r request) bool {
	if r.wireErr != nil {
		return false
	}
	status, body, err := wc.do(r.wire)
	return err == nil && r.accept(status, body)
}

// closedLoop keeps `concurrency` requests in flight for d.
func closedLoop(p *wirePool, r request, concurrency int, d time.Duration) stats {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var mu sync.Mutex
	var all stats
	var wg sync.WaitGroup
	start := time.Now()
	for range concurrency {
		wc := p.get(r.wire.addr) // before the goroutine, as in burst
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer p.put(wc)
			lat := make([]time.Duration, 0, 4096)
			errs := 0
			for ctx.Err() == nil {
				start := time.Now()
				ok := send(wc, r)
				lat = append(lat, time.Since(start))
				if !ok {
					errs++
				}
			}
			mu.Lock()
			all.latencies = append(all.latencies, lat...)
			all.errors += errs
			mu.Unlock()
		}()
	}
	wg.Wait()
	all.elapsed = time.Since(start)
	all.requests = len(all.latencies)
	all.sort()
	return all
}

// openLoopConns is the open loop's connections (and workers); due requests beyond them
// wait in line, and their wait counts in their latency.
const openLoopConns = 64

// openLoop sends at a fixed rate for d, measuring each request from the moment it was
// due, so a slow server cannot hide its queueing (no coordinated omission).
func openLoop(p *wirePool, r request, rate float64, d time.Duration) stats {
	interval := time.Duration(float64(time.Second) / rate)
	due := make(chan time.Time, 4096)
	var mu sync.Mutex
	var all stats
	var wg sync.WaitGroup
	// Enough connections for any backlog a hiccup leaves, as an orchestrator's pool would
	// have, and no more: each connection costs both sides memory and wake-ups.
	for range openLoopConns {
		wc := p.get(r.wire.addr) // before the goroutine, as in burst
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer p.put(wc)
			var lat, lags []time.Duration
			errs := 0
			for at := range due {
				lags = append(lags, time.Since(at))
				ok := send(wc, r)
				lat = append(lat, time.Since(at))
				if !ok {
					errs++
				}
			}
			mu.Lock()
			all.latencies = append(all.latencies, lat...)
			all.lags = append(all.lags, lags...)
			all.errors += errs
			mu.Unlock()
		}()
	}
	start := time.Now()
	next := start
	for next.Sub(start) < d {
		if wait := time.Until(next); wait > 0 {
			time.Sleep(wait)
		}
		due <- next
		next = next.Add(interval)
	}
	close(due)
	wg.Wait()
	all.elapsed = time.Since(start)
	all.requests = len(all.latencies)
	all.sort()
	return all
}

// burst fires n requests at once, each on a connection of its own, and waits for all.
func burst(p *wirePool, r request, n int) stats {
	var wg sync.WaitGroup
	lat := make([]time.Duration, n)
	oks := make([]bool, n)
	gate := make(chan struct{})
	for i := range n {
		// Taken here, not in the goroutine: a goroutine that started late would otherwise
		// reuse a connection an earlier one had already put back, and the burst would not
		// be n requests at once.
		wc := p.get(r.wire.addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer p.put(wc)
			<-gate
			start := time.Now()
			oks[i] = send(wc, r)
			lat[i] = time.Since(start)
		}()
	}
	start := time.Now()
	close(gate)
	wg.Wait()
	s := stats{requests: n, elapsed: time.Since(start), latencies: lat}
	for _, ok := range oks {
		if !ok {
			s.errors++
		}
	}
	s.sort()
	return s
}
