package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"sort"
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
}

// stats summarises one scenario.
type stats struct {
	requests, errors int
	elapsed          time.Duration
	latencies        []time.Duration // sorted
}

func (s stats) rps() float64 { return float64(s.requests) / s.elapsed.Seconds() }

func (s stats) quantile(q float64) time.Duration {
	if len(s.latencies) == 0 {
		return 0
	}
	i := int(q * float64(len(s.latencies)-1))
	return s.latencies[i]
}

func newClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        conns * 2,
			MaxIdleConnsPerHost: conns * 2,
			MaxConnsPerHost:     0,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		},
	}
}

func send(c *http.Client, r request) (bool, time.Duration) {
	req, _ := http.NewRequest(http.MethodPost, r.url, bytes.NewReader(r.body))
	req.Header.Set("Content-Type", "application/json")
	if r.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+r.apiKey)
	}
	for k, v := range r.headers {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return false, time.Since(start)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	return err == nil && r.accept(resp.StatusCode, body), d
}

// closedLoop keeps `concurrency` requests in flight for d.
func closedLoop(c *http.Client, r request, concurrency int, d time.Duration) stats {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var mu sync.Mutex
	var all stats
	var wg sync.WaitGroup
	start := time.Now()
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 4096)
			errs := 0
			for ctx.Err() == nil {
				ok, l := send(c, r)
				lat = append(lat, l)
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
	sort.Slice(all.latencies, func(i, j int) bool { return all.latencies[i] < all.latencies[j] })
	return all
}

// openLoopConns is the open loop's connections (and workers); due requests beyond them
// wait in line, and their wait counts in their latency.
const openLoopConns = 64

// openLoop sends at a fixed rate for d, measuring each request from the moment it was
// due, so a slow server cannot hide its queueing (no coordinated omission).
func openLoop(c *http.Client, r request, rate float64, d time.Duration) stats {
	interval := time.Duration(float64(time.Second) / rate)
	due := make(chan time.Time, 4096)
	var mu sync.Mutex
	var all stats
	var wg sync.WaitGroup
	// Enough connections for any backlog a hiccup leaves, as an orchestrator's pool would
	// have, and no more: each connection costs both sides memory and wake-ups.
	for range openLoopConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			errs := 0
			for at := range due {
				ok, _ := send(c, r)
				lat = append(lat, time.Since(at))
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
	sort.Slice(all.latencies, func(i, j int) bool { return all.latencies[i] < all.latencies[j] })
	return all
}

// burst fires n requests at once and waits for all.
func burst(c *http.Client, r request, n int) stats {
	var wg sync.WaitGroup
	lat := make([]time.Duration, n)
	oks := make([]bool, n)
	gate := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			oks[i], lat[i] = send(c, r)
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
	sort.Slice(s.latencies, func(i, j int) bool { return s.latencies[i] < s.latencies[j] })
	return s
}
