package main

import (
	"math"
	"os"
	"strings"
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

// The harness's scheduling latencies: a window is the difference of two readings, two
// windows add up, and the quantile is the bound of the bucket that holds it.
func TestHarnessStatsWindows(t *testing.T) {
	buckets := []float64{0, 1e-4, 1e-3, 1e-2, math.Inf(1)}
	h0 := harnessStats{gcs: 3, sched: []uint64{10, 5, 0, 0}, buckets: buckets}
	h1 := harnessStats{gcs: 5, sched: []uint64{208, 5, 1, 0}, buckets: buckets}
	w := h1.since(h0)
	if w.gcs != 2 || w.sched[0] != 198 || w.sched[2] != 1 {
		t.Fatalf("window %+v", w)
	}
	if got := w.schedQuantile(.99); got != 100*time.Microsecond {
		t.Errorf("p99 of 198 fast and 1 slow = %s, want the first bucket's bound, 100us", got)
	}
	both := w.add(harnessStats{gcs: 1, sched: []uint64{0, 0, 0, 4}, buckets: buckets})
	if both.gcs != 3 || both.sched[3] != 4 || w.sched[3] != 0 {
		t.Fatalf("sum %+v (window after: %+v)", both, w)
	}
	// 5 of 203 in the two slow buckets: the p99 lies in the unbounded one, reported as
	// its lower bound.
	if got := both.schedQuantile(.99); got != 10*time.Millisecond {
		t.Errorf("p99 = %s, want 10ms", got)
	}
	if (harnessStats{}).String() != "" || (harnessStats{}).add(w).gcs != 2 {
		t.Error("an empty reading should print nothing and add as nothing")
	}
	if r := readHarness(); len(r.sched)+1 != len(r.buckets) {
		t.Errorf("runtime/metrics: %d counts for %d bounds", len(r.sched), len(r.buckets))
	}
}

// Each of -cpuprofile, -memprofile and -trace needs the runtime's pprof endpoints.
func TestProfilesTurnOnPprof(t *testing.T) {
	for _, o := range []options{{cpuProfile: "c"}, {memProfile: "m"}, {trace: "t"}} {
		if !o.profiles() {
			t.Errorf("%+v: pprof left off", o)
		}
	}
	if (options{}).defaults().profiles() {
		t.Error("pprof on by default")
	}
}

// The added latency is one target's pooled quantiles and median window p99 less
// another's; a target over itself (the A/A comparison) is zero.
func TestLatencyOver(t *testing.T) {
	target := func(ms ...int) result {
		var r result
		for _, m := range ms {
			s := stats{}
			for i := range 100 {
				d := time.Millisecond
				if i >= 95 {
					d = time.Duration(m) * time.Millisecond
				}
				s.latencies = append(s.latencies, d)
			}
			s.requests = len(s.latencies)
			s.sort()
			r = r.add(s, rssStats{}, queries{}, r.windowP99s == nil)
		}
		r.s.sort()
		return r
	}
	base, slower := target(3, 4, 5), target(5, 6, 40)
	got := slower.over(base)
	want := latencyDiff{p50: 0, p99: 40*time.Millisecond - 5*time.Millisecond, windowP99Median: 2 * time.Millisecond}
	if got != want {
		t.Errorf("over = %+v, want %+v", got, want)
	}
	if aa := base.over(base); aa != (latencyDiff{}) {
		t.Errorf("a target over itself = %+v, want zero", aa)
	}
}

// The ceiling measured again is the same server: its requests go to the ceiling, with
// no API key, like the ceiling's own.
func TestCeilingAgainIsTheCeiling(t *testing.T) {
	e := &env{ceilingURL: "http://127.0.0.1:1", runtimeURL: "http://127.0.0.1:2", apiKey: "k"}
	for target, url := range map[string]string{ceiling: e.ceilingURL, ceilingAgain: e.ceilingURL, runtimeTarget: e.runtimeURL} {
		r := e.node("search-conversation", "auth", target)
		if r.url != url+"/v1/executions" {
			t.Errorf("%s: url %s", target, r.url)
		}
		if isCeiling(target) == (r.apiKey != "") {
			t.Errorf("%s: api key %q", target, r.apiKey)
		}
	}
}

// The half-load verdict compares the runtime with the ceiling only when both kept the
// offered rate, against the targets' thresholds, and otherwise meets neither target and
// says which server fell short, by the figures measured.
func TestHalfLoadVerdict(t *testing.T) {
	const rate = 1000
	served := func(rps int, p99 time.Duration) result {
		s := stats{requests: rps, elapsed: time.Second}
		for i := range 100 {
			d := time.Millisecond
			if i >= 95 {
				d = p99
			}
			s.latencies = append(s.latencies, d)
		}
		s.sort()
		return result{s: s}
	}
	keeps, near, slower, short := served(rate, 4*time.Millisecond), served(rate, 4900*time.Microsecond), served(rate, 6*time.Millisecond), served(700, 90*time.Millisecond)
	for _, c := range []struct {
		name         string
		res          map[string]result
		met50, met99 bool
		m50, m99     string // what the figures must contain
		notInFigs    string // and must not
	}{
		{"all kept the rate, p99 2 ms over", map[string]result{ceiling: keeps, runtimeTarget: slower, ceilingAgain: keeps}, true, false, "0.00ms (ceiling vs itself 0.00ms)", "2.00ms (ceiling vs itself 0.00ms)", ""},
		{"all kept the rate, p99 under 1 ms over", map[string]result{ceiling: keeps, runtimeTarget: near, ceilingAgain: keeps}, true, true, "0.00ms", "0.90ms (ceiling vs itself 0.00ms)", ""},
		{"the ceiling fell short", map[string]result{ceiling: short, runtimeTarget: keeps, ceilingAgain: keeps}, false, false, "no baseline", "no baseline", "ceiling vs itself"},
		{"the runtime fell short", map[string]result{ceiling: keeps, runtimeTarget: short, ceilingAgain: keeps}, false, false, "runtime overloaded: it answered 700 of 1000 requests/s", "runtime overloaded", "ceiling again"},
		{"the runtime and the ceiling again fell short", map[string]result{ceiling: keeps, runtimeTarget: short, ceilingAgain: short}, false, false, "runtime overloaded (700 of 1000 requests/s), and so was the ceiling measured again (700)", "runtime and ceiling again overloaded", ""},
		{"only the ceiling again fell short", map[string]result{ceiling: keeps, runtimeTarget: near, ceilingAgain: short}, true, true, "0.00ms", "0.90ms", "ceiling vs itself"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m50, m99, met50, met99 := halfLoadVerdict(rate, c.res)
			if met50 != c.met50 || met99 != c.met99 {
				t.Errorf("met p50, p99 = %v, %v; want %v, %v", met50, met99, c.met50, c.met99)
			}
			if !strings.Contains(m50, c.m50) || !strings.Contains(m99, c.m99) {
				t.Errorf("figures %q, %q; want them to hold %q, %q", m50, m99, c.m50, c.m99)
			}
			if c.notInFigs != "" && (strings.Contains(m50, c.notInFigs) || strings.Contains(m99, c.notInFigs)) {
				t.Errorf("figures %q, %q hold %q", m50, m99, c.notInFigs)
			}
		})
	}
}

// The command name in /proc/<pid>/stat may hold spaces and parentheses; majflt is
// counted after its last ')'.
func TestMajorFaultsReadsPastAnAwkwardCommandName(t *testing.T) {
	stat := "4242 (no de) (x) S 1 4242 4242 0 -1 4194560 1536 0 7 0 12 3 0 0 20 0 9 0"
	if got := majorFaults(stat); got != 7 {
		t.Errorf("majorFaults = %d, want 7", got)
	}
	if majorFaults("4242 no parentheses") != 0 || majorFaults("1 (x) S 1") != 0 {
		t.Error("a malformed stat line gave major faults")
	}
	status := "Name:\tnoderuntime\nVmRSS:\t   40448 kB\nvoluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t35\n"
	if got := statusField(status, "nonvoluntary_ctxt_switches:"); got != 35 {
		t.Errorf("nonvoluntary switches = %d, want 35", got)
	}
	if got := statusField(status, "VmRSS:"); got != 40448 {
		t.Errorf("VmRSS = %d kB, want 40448", got)
	}
	if rss := readRSS(os.Getpid()); rss <= 0 {
		t.Errorf("this process's RSS read as %d kB", rss)
	}
	if statusField(status, "missing:") != 0 {
		t.Error("a missing field read as non-zero")
	}
}

// readSched sees this process's own CPU time grow, and since subtracts field by field.
func TestReadSchedCountsThisProcessesCPUTime(t *testing.T) {
	u0 := readSched(os.Getpid(), -1)
	var u schedUse
	for deadline := time.Now().Add(10 * time.Second); u.run < 20*time.Millisecond; { // spin
		if time.Now().After(deadline) {
			t.Fatalf("10 s of spinning counted as %+v", u)
		}
		u = readSched(os.Getpid(), -1).since(u0)
	}
	if u.wait < 0 || u.preempted < 0 || u.majorFaults < 0 {
		t.Errorf("a count went backwards: %+v", u)
	}
	sum := schedUse{1, 2, 3, 4, 5, 6}.add(schedUse{10, 20, 30, 40, 50, 60})
	if sum != (schedUse{11, 22, 33, 44, 55, 66}) || sum.since(sum) != (schedUse{}) {
		t.Errorf("add/since: %+v", sum)
	}
	if got := (schedUse{run: time.Second, cpuBusy: 1200 * time.Millisecond}).String(); !strings.Contains(got, "srv-cpu-others=200.00ms") {
		t.Errorf("a pinned server's line: %q", got)
	}
	if got := (schedUse{run: time.Second}).String(); strings.Contains(got, "srv-cpu") {
		t.Errorf("a server on several CPUs has CPU figures: %q", got)
	}
}

// cpuLine reads one CPU's busy time and steal from /proc/stat, in 10 ms ticks, and
// nothing for a CPU the machine does not have.
func TestCPULineReadsOneCPUsBusyTimeAndSteal(t *testing.T) {
	stat := "cpu  9 9 9 9 9 9 9 9 0 0\ncpu0 100 2 30 5000 7 1 4 12 0 0\ncpu1 1 1 1 1 1 1 1 1 0 0\ncpu10 5 5 5 5 5 5 5 5 0 0\n"
	busy, steal := cpuLine(stat, 0)
	if busy != 137*clockTick || steal != 12*clockTick {
		t.Errorf("cpu0: busy %s steal %s, want 1.37s and 120ms", busy, steal)
	}
	if busy, _ := cpuLine(stat, 1); busy != 5*clockTick {
		t.Errorf("cpu1 read as %s: the line of cpu10 was taken for it?", busy)
	}
	if busy, steal := cpuLine(stat, 2); busy != 0 || steal != 0 {
		t.Error("a missing CPU has figures")
	}
	if busy, _ := cpuLine("cpu0 1 2 3\n", 0); busy != 0 {
		t.Error("a short line has figures")
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		if busy, _ := cpuLine(string(b), 0); busy <= 0 {
			t.Error("this machine's cpu0 was never busy")
		}
	}
}

// A host that halves its speed between two windows moves the pooled ratio, not the
// median of the ratios of neighbouring windows.
func TestPairedRatioFollowsTheHostsSpeedWindowByWindow(t *testing.T) {
	window := func(requests int) stats {
		return stats{requests: requests, elapsed: time.Second}
	}
	var ceiling, runtime result
	// Windows 1-2 on a fast host, 3-5 on one half as fast: the runtime is at 0.9 of the
	// ceiling in every pair but the third, where the host slowed between the two.
	for _, pair := range [][2]int{{1000, 900}, {1000, 900}, {1000, 450}, {500, 450}, {500, 450}} {
		ceiling = ceiling.add(window(pair[0]), rssStats{}, queries{}, ceiling.windowRPS == nil)
		runtime = runtime.add(window(pair[1]), rssStats{}, queries{}, runtime.windowRPS == nil)
	}
	if got := runtime.pairedRatio(ceiling); math.Abs(got-0.9) > 1e-9 {
		t.Errorf("paired ratio = %.3f, want 0.9", got)
	}
	if pooled := runtime.s.rps() / ceiling.s.rps(); pooled > 0.8 {
		t.Errorf("pooled ratio = %.3f: the example no longer shows the pooled ratio moved by the host", pooled)
	}
	if (result{}).pairedRatio(ceiling) != 0 {
		t.Error("no windows, yet a ratio")
	}
}
