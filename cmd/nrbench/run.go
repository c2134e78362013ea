package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/noderuntime/noderuntime/internal/engagesim"
	"github.com/noderuntime/noderuntime/internal/tenant"
)

type options struct {
	duration, warmup, soak time.Duration
	concurrency, burst     int
	serverCPU, benchCPU    string
	cpuProfile, memProfile string
	// gogc and memLimit are the GOGC and GOMEMLIMIT both servers run with: the
	// deployment's (deploy/base).
	gogc, memLimit string
	// quick runs only the full-load scenarios at 0 ms: the throughput ratio, for
	// iterating on the hot path.
	quick bool
	// rounds is the number of alternating windows per target (see alternate).
	rounds int
	// halfLoad runs the full-load scenarios at 0 ms (whose ceiling sets the rate), then
	// the half-load ones: the added latency, for iterating on it.
	halfLoad bool
	// windows prints each alternating window's figures as well.
	windows bool
	// trace saves an execution trace of the runtime in its first half-load search window.
	trace string
	// hold, when above 0, runs only the hold scenario with that many executions.
	hold int
}

// profiles reports whether any profile or trace of the runtime was asked for: the
// runtime then serves /debug/pprof/ on its metrics listener.
func (o options) profiles() bool { return o.cpuProfile != "" || o.memProfile != "" || o.trace != "" }

func (options) defaults() options {
	return options{duration: 10 * time.Second, warmup: 2 * time.Second, soak: 60 * time.Second, concurrency: 32, burst: 1000, gogc: "400", memLimit: "48MiB", rounds: 5}
}

const (
	domain       = "bench"
	tenantID     = "bench-tenant"
	tenantSecret = "bench-tenant-secret"
	// burstTTL is the token lifetime of the burst authorization: long enough for the
	// baseline burst to run on one token, short enough to wait for it to expire.
	burstTTL = 10 * time.Second
)

// env is everything one benchmark run set up.
type env struct {
	o           options
	dir         string
	apiKey      string
	steady      *engagesim.Sim
	short       *engagesim.Sim // a short token lifetime, for the burst on an expired token
	runtime     *exec.Cmd
	runtimeURL  string
	metricsURL  string
	ceiling     *exec.Cmd
	ceilingURL  string
	authID      string
	burstAuthID string
	convID      string
	client      *http.Client // set-up calls and scrapes
	load        wirePool     // the load generator's connections

	mu       sync.Mutex
	cleanups []func()
}

// onCleanup registers fn to run when the benchmark ends or is interrupted.
func (e *env) onCleanup(fn func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cleanups = append(e.cleanups, fn)
}

func run(o options) error {
	e := &env{o: o, client: &http.Client{Timeout: 30 * time.Second}}
	var cleanOnce sync.Once
	cleanup := func() {
		cleanOnce.Do(func() {
			e.mu.Lock()
			fns := e.cleanups
			e.mu.Unlock()
			for i := len(fns) - 1; i >= 0; i-- {
				fns[i]()
			}
		})
	}
	defer cleanup()
	// Interrupted, it still stops the servers it started and drops its database.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	go func() {
		if _, ok := <-sig; ok {
			fmt.Fprintln(os.Stderr, "nrbench: interrupted; cleaning up")
			cleanup()
			os.Exit(130)
		}
	}()
	var err error
	if e.dir, err = os.MkdirTemp("", "nrbench-"); err != nil {
		return err
	}
	e.onCleanup(func() { os.RemoveAll(e.dir) })
	pin(os.Getpid(), o.benchCPU)
	// The harness's own collections (load generator and simulators, marked on one CPU)
	// stall every request in flight, on both servers' figures alike: fewer of them.
	// (Off altogether, the heap grows through fresh pages, and faulting them in costs
	// the harness's CPU more than collecting.)
	debug.SetGCPercent(400)
	fmt.Printf("# nrbench %s, %d CPUs (%s), server on CPU %s with GOMAXPROCS=1 GOGC=%s GOMEMLIMIT=%s, load generator and simulator on CPU %s\n",
		time.Now().UTC().Format(time.RFC3339), runtime.NumCPU(), cpuModel(), o.serverCPU, o.gogc, o.memLimit, o.benchCPU)
	steps := []struct {
		name string
		fn   func() error
	}{
		{"simulators", e.startSimulators},
		{"database and runtime", e.startRuntime},
		{"authorizations", e.createAuthorizations},
		{"ceiling", e.startCeiling},
		{"scenarios", e.scenarios},
	}
	for _, s := range steps {
		if err := s.fn(); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

func (e *env) startSimulators() error {
	start := func(cfg engagesim.Config) (*engagesim.Sim, error) {
		s := engagesim.New(cfg)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		s.SetURL("http://" + ln.Addr().String())
		e.onCleanup(func() { srv.Close() })
		return s, nil
	}
	var err error
	tenants := []engagesim.Tenant{{ID: tenantID, Secret: tenantSecret, Domain: domain}}
	// The append scenarios store a message per request; bounded, the simulator's heap
	// (and its GC on the harness's CPU) stays the same for whichever server runs later.
	if e.steady, err = start(engagesim.Config{Tenants: tenants, KeepMessages: 1000}); err != nil {
		return err
	}
	e.short, err = start(engagesim.Config{Tenants: tenants, ClientCredentialsTTL: burstTTL})
	return err
}

func adminURL() string {
	for _, v := range []string{"TEST_DATABASE_URL", "DATABASE_URL"} {
		if s := os.Getenv(v); s != "" {
			return s
		}
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

func (e *env) startRuntime() error {
	ctx := context.Background()
	dbName := fmt.Sprintf("nrbench_%d", os.Getpid())
	conn, err := pgx.Connect(ctx, adminURL())
	if err != nil {
		return fmt.Errorf("no PostgreSQL (set DATABASE_URL or start the local one): %w", err)
	}
	dropAbandoned(ctx, conn)
	if _, err := conn.Exec(ctx, "create database "+dbName); err != nil {
		conn.Close(ctx)
		return err
	}
	e.onCleanup(func() {
		_, _ = conn.Exec(context.Background(), "drop database if exists "+dbName+" with (force)")
		conn.Close(context.Background())
	})
	u, _ := url.Parse(adminURL())
	u.Path = "/" + dbName

	bin := filepath.Join(e.dir, "noderuntime")
	build := exec.Command("go", "build", "-o", bin, "./cmd/noderuntime")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build noderuntime (run nrbench from the repository root): %w", err)
	}
	e.apiKey = randomHex(16)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	addr, maddr := freeAddr(), freeAddr()
	cmd := exec.Command("taskset", "-c", e.o.serverCPU, bin, "serve", "--migrate")
	cmd.SysProcAttr = dieWithParent()
	cmd.Env = append(os.Environ(),
		"GOMAXPROCS=1", // the base Deployment's: deploy/ sets it from the CPU limit of 1
		"GOGC="+e.o.gogc,
		"GOMEMLIMIT="+e.o.memLimit,
		"NODERUNTIME_ADDR="+addr,
		"NODERUNTIME_METRICS_ADDR="+maddr,
		"DATABASE_URL="+u.String(),
		"NODERUNTIME_ENCRYPTION_KEYS=bench:"+base64.StdEncoding.EncodeToString(key),
		"NODERUNTIME_API_KEYS=bench:"+tenant.HashKey(e.apiKey),
		"ENGAGE_ALLOWED_BASE_URLS="+e.steady.BaseURL()+","+e.short.BaseURL(),
		"NODERUNTIME_TOKEN_REFRESH_SKEW=500ms",
		"NODERUNTIME_LOG_LEVEL=info",
		"NODERUNTIME_PPROF="+strconv.FormatBool(e.o.profiles()),
		// The base Deployment's cap, or the burst if larger: the burst measures
		// latency, not refusals.
		"NODERUNTIME_MAX_CONCURRENT_EXECUTIONS="+strconv.Itoa(max(baseMaxExecutions, e.o.burst)),
	)
	logFile, err := os.Create(filepath.Join(e.dir, "runtime.log"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return err
	}
	e.runtime = cmd
	e.onCleanup(func() { stop(cmd); logFile.Close() })
	e.runtimeURL, e.metricsURL = "http://"+addr, "http://"+maddr
	return waitReady(e.runtimeURL+"/readyz", filepath.Join(e.dir, "runtime.log"))
}

func (e *env) createAuthorizations() error {
	create := func(name, base string) (string, error) {
		body, _ := json.Marshal(map[string]string{
			"name": name, "kind": "client-credentials", "baseUrl": base, "domain": domain,
			"tenantId": tenantID, "tenantSecret": tenantSecret,
		})
		req, _ := http.NewRequest(http.MethodPost, e.runtimeURL+"/v1/authorizations", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e.apiKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := e.client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var out struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		}
		if err := json.Unmarshal(raw, &out); err != nil || resp.StatusCode != http.StatusCreated || out.Status != "active" {
			return "", fmt.Errorf("create authorization %s: %d %s", name, resp.StatusCode, raw)
		}
		return out.ID, nil
	}
	var err error
	if e.authID, err = create("bench", e.steady.BaseURL()); err != nil {
		return err
	}
	if e.burstAuthID, err = create("burst", e.short.BaseURL()); err != nil {
		return err
	}
	e.steady.SeedConversation(domain, engagesim.Conversation{Channel: "sms", CustomerAddress: "+15550001", BizAddress: "+15559999", Status: "active"})
	e.convID = e.steady.SeedConversation(domain, engagesim.Conversation{Channel: "sms", CustomerAddress: "+15550002", BizAddress: "+15559999", Status: "active"})
	return nil
}

func (e *env) startCeiling() error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command("taskset", "-c", e.o.serverCPU, self, "ceiling",
		"-engage", e.steady.BaseURL()+"/"+domain, "-token", e.steady.AccessToken(domain))
	cmd.SysProcAttr = dieWithParent()
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1", "GOGC="+e.o.gogc, "GOMEMLIMIT="+e.o.memLimit)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	e.ceiling = cmd
	e.onCleanup(func() { stop(cmd) })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return fmt.Errorf("ceiling did not print its address: %w", err)
	}
	e.ceilingURL = "http://" + strings.TrimSpace(line)
	return nil
}

// node returns the execution request of a scenario against the runtime or the ceiling.
func (e *env) node(name, authID, target string) request {
	input := map[string]any{"channel": "sms", "bizAddress": "+15559999", "customerAddress": "+15550001"}
	version, want := "1.3", `"outcome":"conversationActive"`
	if name == "append-message" {
		version, want = "1.4", `"outcome":"onAppendMessageSuccess"`
		input = map[string]any{"conversationId": e.convID, "channel": "sms", "direction": "inbound",
			"messageType": "text", "text": "Hello from the benchmark", "timestamp": "2026-11-25T10:00:00Z"}
	}
	body, _ := json.Marshal(map[string]any{"node": name, "version": version, "authorizationId": authID, "input": input})
	r := request{body: body}
	if isCeiling(target) {
		r.url = e.ceilingURL + "/v1/executions"
		r.accept = func(status int, _ []byte) bool { return status == http.StatusOK }
		return r.prepare()
	}
	r.url, r.apiKey = e.runtimeURL+"/v1/executions", e.apiKey
	r.accept = func(status int, b []byte) bool { return status == http.StatusOK && bytes.Contains(b, []byte(want)) }
	return r.prepare()
}

// The targets of a scenario. ceilingAgain is the ceiling measured in a window of its
// own after the runtime's: the ceiling against itself (an A/A comparison) shows how
// large a difference between two identical servers the harness reports on this machine.
const (
	ceiling       = "ceiling"
	runtimeTarget = "runtime"
	ceilingAgain  = "ceiling-again"
)

func isCeiling(target string) bool { return target == ceiling || target == ceilingAgain }

func (e *env) pidOf(target string) int {
	if isCeiling(target) {
		return e.ceiling.Process.Pid
	}
	return e.runtime.Process.Pid
}

// measure runs fn while sampling the target's RSS and counting the runtime's own database
// queries. Reading the counter is a /metrics scrape, and a scrape counts authorizations
// by status in Postgres (at most once per 10 s); the runtime counts that query under
// origin="scrape", so the service's count is the executions' alone.
func (e *env) measure(target string, fn func() stats) (stats, rssStats, queries) {
	q0 := e.dbQueries()
	g0 := e.serverGC(target)
	pid := e.pidOf(target)
	rs := sampleRSS(pid)
	h0 := readHarness()
	cpu, err := strconv.Atoi(e.o.serverCPU)
	if err != nil {
		cpu = -1 // a list of CPUs: their use is not read
	}
	c0, b0, t0 := readSched(pid, cpu), readSched(os.Getpid(), -1), time.Now()
	s := fn()
	c1, b1, wall := readSched(pid, cpu), readSched(os.Getpid(), -1), time.Since(t0)
	r := rs.stop()
	g1 := e.serverGC(target)
	r.cpu = cpuUse{server: c1.run - c0.run, bench: b1.run - b0.run, wall: wall, requests: s.requests, harness: readHarness().since(h0),
		gcs: int(g1.cycles - g0.cycles), allocs: g1.allocs - g0.allocs, kernel: c1.since(c0)}
	q1 := e.dbQueries()
	var q queries
	if target == runtimeTarget {
		q = queries{n: int(q1 - q0), execs: s.requests}
	}
	return s, r, q
}

// serviceQueries is the series of the runtime's own database queries, all but its
// scrapes'.
const serviceQueries = `noderuntime_db_queries_total{origin="service"}`

// dbQueries is the runtime's count of its own database queries so far.
func (e *env) dbQueries() float64 {
	m, _ := e.metrics(e.metricsURL+"/metrics", serviceQueries)
	return m[serviceQueries]
}

// cpuUse is the CPU time the server and the harness (load generator and simulators)
// spent in a scenario. A server short of 100% at full load was waiting on the
// harness's CPU; µs per request is the server's cost whatever its throughput.
type cpuUse struct {
	server, bench, wall time.Duration
	requests            int
	harness             harnessStats
	// gcs and allocs are the server's collections and allocated bytes: at the same
	// rate, the more a request allocates, the more often a mark phase shares the
	// server's one P with the requests.
	gcs    int
	allocs float64
	// kernel is what the kernel did to the server in the window.
	kernel schedUse
}

func (c cpuUse) String() string {
	if c.wall <= 0 || c.requests == 0 {
		return ""
	}
	return fmt.Sprintf(" cpu=%.0f%% cpu/req=%.1fus gcs=%d alloc/req=%.1fKiB bench-cpu=%.0f%%",
		100*c.server.Seconds()/c.wall.Seconds(), float64(c.server.Microseconds())/float64(c.requests),
		c.gcs, c.allocs/1024/float64(c.requests),
		100*c.bench.Seconds()/c.wall.Seconds()) + c.harness.String() + c.kernel.String()
}

// schedUse is what the kernel's scheduler and memory did to one process, all its
// threads together, from /proc: time on a CPU, time runnable but kept off its CPU by
// another task, the times another task took its CPU from it, and page faults that
// had to wait on a disk. A stall the server's own runtime did not cause shows here.
// When the process has a CPU of its own, that CPU's figures too: its busy time (the
// process's and any other task's, interrupts included) and its steal, the time the
// virtual machine's host gave that CPU to something else, which no task inside sees.
type schedUse struct {
	run, wait         time.Duration
	preempted         int
	majorFaults       int
	cpuBusy, cpuSteal time.Duration
}

func (u schedUse) since(u0 schedUse) schedUse {
	return schedUse{run: u.run - u0.run, wait: u.wait - u0.wait,
		preempted: u.preempted - u0.preempted, majorFaults: u.majorFaults - u0.majorFaults,
		cpuBusy: u.cpuBusy - u0.cpuBusy, cpuSteal: u.cpuSteal - u0.cpuSteal}
}

func (u schedUse) add(o schedUse) schedUse {
	return schedUse{run: u.run + o.run, wait: u.wait + o.wait,
		preempted: u.preempted + o.preempted, majorFaults: u.majorFaults + o.majorFaults,
		cpuBusy: u.cpuBusy + o.cpuBusy, cpuSteal: u.cpuSteal + o.cpuSteal}
}

// String gives the CPU's other use as its busy time less the process's (the two come
// from different clocks, of 10 ms and 1 ns steps: a small negative is noise).
// A server on a list of CPUs has no CPU figures (they read 0), and none are printed.
func (u schedUse) String() string {
	line := fmt.Sprintf(" srv-wait=%s srv-preempted=%d srv-majflt=%d", ms(u.wait), u.preempted, u.majorFaults)
	if u.cpuBusy > 0 || u.cpuSteal > 0 {
		line += fmt.Sprintf(" srv-cpu-others=%s srv-cpu-steal=%s", ms(u.cpuBusy-u.run), ms(u.cpuSteal))
	}
	return line
}

// readSched reads process pid's schedUse so far: schedstat and status of every thread
// (a thread that ended meanwhile is left out), the process's stat, and when cpu is not
// -1, that CPU's line of /proc/stat.
func readSched(pid, cpu int) schedUse {
	var u schedUse
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	for _, t := range tasks {
		if b, err := os.ReadFile(t + "/schedstat"); err == nil {
			if f := strings.Fields(string(b)); len(f) >= 2 {
				run, _ := strconv.ParseInt(f[0], 10, 64)
				wait, _ := strconv.ParseInt(f[1], 10, 64)
				u.run += time.Duration(run)
				u.wait += time.Duration(wait)
			}
		}
		if b, err := os.ReadFile(t + "/status"); err == nil {
			u.preempted += statusField(string(b), "nonvoluntary_ctxt_switches:")
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		u.majorFaults = majorFaults(string(b))
	}
	if cpu >= 0 {
		if b, err := os.ReadFile("/proc/stat"); err == nil {
			u.cpuBusy, u.cpuSteal = cpuLine(string(b), cpu)
		}
	}
	return u
}

// clockTick is USER_HZ, the unit of /proc/stat: 100 on every Linux architecture Go
// runs on.
const clockTick = 10 * time.Millisecond

// cpuLine is the busy time (user, nice, system, irq, softirq) and the steal of one CPU
// from /proc/stat, zero when its line is missing.
func cpuLine(stat string, cpu int) (busy, steal time.Duration) {
	prefix := fmt.Sprintf("cpu%d ", cpu)
	for line := range strings.Lines(stat) {
		v, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		f := strings.Fields(v) // user nice system idle iowait irq softirq steal ...
		if len(f) < 8 {
			return 0, 0
		}
		tick := func(i int) time.Duration {
			n, _ := strconv.ParseInt(f[i], 10, 64)
			return time.Duration(n) * clockTick
		}
		return tick(0) + tick(1) + tick(2) + tick(5) + tick(6), tick(7)
	}
	return 0, 0
}

// statusField is the number after name in a /proc status file (its unit, such as kB,
// left out), 0 when missing.
func statusField(status, name string) int {
	for line := range strings.Lines(status) {
		if v, ok := strings.CutPrefix(line, name); ok {
			if f := strings.Fields(v); len(f) > 0 {
				n, _ := strconv.Atoi(f[0])
				return n
			}
			return 0
		}
	}
	return 0
}

// majorFaults is majflt from a /proc/<pid>/stat line: the 12th field, counted after
// the command name, which is in parentheses and may itself hold spaces.
func majorFaults(stat string) int {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 10 {
		return 0
	}
	n, _ := strconv.Atoi(f[9])
	return n
}

// result is one target's figures in a scenario.
type result struct {
	s   stats
	rss rssStats
	q   queries
	// windowP99s is each window's p99: their median is untouched by a stall of the
	// shared machine that falls in one window, which the pooled p99 takes in whole.
	windowP99s []time.Duration
	// windowRPS is each window's throughput, for a ratio taken window by window.
	windowRPS []float64
}

// medianWindowP99 is the median of the windows' p99s.
func (r result) medianWindowP99() time.Duration {
	p := slices.Clone(r.windowP99s)
	slices.Sort(p)
	if len(p) == 0 {
		return 0
	}
	return p[len(p)/2]
}

// pairedRatio is the median, over the alternating windows, of r's throughput in a
// window divided by base's in the window just before it. The pooled ratio takes a host
// that changes speed within the run as a difference between the servers; neighbouring
// windows mostly share the host's speed, so their ratio does not (it is shown beside the
// pooled one, which stays the target's figure).
func (r result) pairedRatio(base result) float64 {
	n := min(len(r.windowRPS), len(base.windowRPS))
	ratios := make([]float64, 0, n)
	for i := range n {
		if base.windowRPS[i] > 0 {
			ratios = append(ratios, r.windowRPS[i]/base.windowRPS[i])
		}
	}
	if len(ratios) == 0 {
		return 0
	}
	slices.Sort(ratios)
	return ratios[len(ratios)/2]
}

// latencyDiff is how much later one target answered than another.
type latencyDiff struct{ p50, p99, windowP99Median time.Duration }

// over is r's latency over base's: pooled p50 and p99, and the median of the windows'
// p99s.
func (r result) over(base result) latencyDiff {
	return latencyDiff{
		p50:             r.s.quantile(.5) - base.s.quantile(.5),
		p99:             r.s.quantile(.99) - base.s.quantile(.99),
		windowP99Median: r.medianWindowP99() - base.medianWindowP99(),
	}
}

// overloadedAt reports whether an open loop at rate outran the target: a server that
// cannot keep up queues without bound, so its answers per second fall short of the rate
// and its latency grows with the run.
func (r result) overloadedAt(rate float64) bool { return r.s.rps() < 0.97*rate }

// halfLoadVerdict is the half-load targets' verdict on res at the offered rate: the
// added latencies to print, with the ceiling against itself beside them, and whether
// each target is met (added p50 under 0.2 ms, added p99 under 1 ms). An overloaded
// server's latency is its queue's length, so there is no comparison to make and neither
// target is met; the message says which server fell short, and by how much, from what
// was measured.
func halfLoadVerdict(rate float64, res map[string]result) (m50, m99 string, met50, met99 bool) {
	c, rt, again := res[ceiling], res[runtimeTarget], res[ceilingAgain]
	switch {
	case c.overloadedAt(rate):
		return "no baseline: the ceiling was overloaded (a noisy machine?)", "no baseline", false, false
	case rt.overloadedAt(rate) && again.overloadedAt(rate):
		// The ceiling fell short too, in the windows right after the runtime's: this
		// machine could not give even the ceiling the rate by then.
		return fmt.Sprintf("runtime overloaded (%.0f of %.0f requests/s), and so was the ceiling measured again (%.0f): the machine was slower than in the full-load scenarios", rt.s.rps(), rate, again.s.rps()),
			"runtime and ceiling again overloaded", false, false
	case rt.overloadedAt(rate):
		return fmt.Sprintf("runtime overloaded: it answered %.0f of %.0f requests/s", rt.s.rps(), rate), "runtime overloaded", false, false
	}
	added := rt.over(c)
	m50, m99 = ms(added.p50), ms(added.p99)
	if !again.overloadedAt(rate) {
		// The verdict stays the runtime against the ceiling; the A/A figure beside it
		// says what a difference of that size is worth here.
		aa := again.over(c)
		m50 += " (ceiling vs itself " + ms(aa.p50) + ")"
		m99 += " (ceiling vs itself " + ms(aa.p99) + ")"
	}
	return m50, m99, added.p50 < 200*time.Microsecond, added.p99 < time.Millisecond
}

// alternate measures targets (the ceiling and the runtime, and for the added latency the
// ceiling again) on node in alternating windows (-rounds of each, -duration in all per
// target, after one warm-up each), so that a slow spell of the shared machine falls on
// all; each target's figures are its windows' together.
// The runtime's first window is profiled as profiles say; with -windows, each window's
// figures are printed too.
func (e *env) alternate(node string, targets []string, run func(r request, d time.Duration) stats, profiles []profileSpec) (map[string]result, error) {
	rounds := max(1, e.o.rounds)
	window := e.o.duration / time.Duration(rounds)
	out := map[string]result{}
	for i := range rounds {
		for _, target := range targets {
			r := e.node(node, e.authID, target)
			if i == 0 {
				run(r, e.o.warmup)
			}
			var taken []chan error
			if i == 0 && target == runtimeTarget {
				for _, p := range profiles {
					if p.file != "" {
						c := make(chan error, 1)
						go func() { c <- e.profile(p.kind, p.file, window-window/4) }()
						taken = append(taken, c)
					}
				}
			}
			s, use, q := e.measure(target, func() stats { return run(r, window) })
			for _, c := range taken {
				if err := <-c; err != nil {
					return nil, fmt.Errorf("profile: %w", err)
				}
			}
			if e.o.windows {
				fmt.Printf("window      %-20s %-8s %d/%d %s%s\n", node, target, i+1, rounds, s.format(), use.cpu.kernel)
			}
			out[target] = out[target].add(s, use, q, i == 0)
		}
	}
	for target, r := range out {
		r.s.sort()
		out[target] = r
	}
	return out, nil
}

// add merges one window into the result; the caller sorts the latencies at the end.
func (r result) add(s stats, rss rssStats, q queries, first bool) result {
	r.s.requests += s.requests
	r.s.errors += s.errors
	r.s.elapsed += s.elapsed
	r.s.latencies = append(r.s.latencies, s.latencies...)
	r.s.lags = append(r.s.lags, s.lags...)
	r.windowP99s = append(r.windowP99s, s.quantile(.99))
	rps := 0.0 // a window that measured nothing keeps its place in the pairing
	if s.elapsed > 0 {
		rps = s.rps()
	}
	r.windowRPS = append(r.windowRPS, rps)
	if first {
		r.rss.first = rss.first
	}
	r.rss.last = rss.last
	r.rss.max = max(r.rss.max, rss.max)
	r.rss.cpu.server += rss.cpu.server
	r.rss.cpu.bench += rss.cpu.bench
	r.rss.cpu.kernel = r.rss.cpu.kernel.add(rss.cpu.kernel)
	r.rss.cpu.wall += rss.cpu.wall
	r.rss.cpu.requests += rss.cpu.requests
	r.rss.cpu.harness = r.rss.cpu.harness.add(rss.cpu.harness)
	r.rss.cpu.gcs += rss.cpu.gcs
	r.rss.cpu.allocs += rss.cpu.allocs
	r.q.n += q.n
	r.q.execs += q.execs
	return r
}

// queries is the count of database queries in a scenario.
type queries struct{ n, execs int }

func (q queries) String() string {
	per := 0.0
	if q.execs > 0 {
		per = float64(q.n) / float64(q.execs)
	}
	return fmt.Sprintf("dbq=%d (%.5f/exec)", q.n, per)
}

func (e *env) scenarios() error {
	o := e.o
	if o.hold > 0 {
		return e.holdExecutions(o.hold)
	}
	ceilingMax := map[string]float64{}
	ratios := map[string]float64{} // runtime rps / ceiling rps at 0 ms
	maxQueries := 0                // in one runtime scenario
	var v verdicts
	var fullLoadRSS int64 // the runtime's largest RSS at full load (kB)
	// soak: RSS over a long run at full load, under 64 MiB and without growth (the last
	// sample within 10% of the first). It runs right after the full-load scenarios at
	// 0 ms, on the state they leave: after the 20 ms scenarios (256 connections) or an
	// overloaded half-load, the process holds memory it returns to the system only over
	// minutes, which says nothing about growth at a steady load.
	soak := func() {
		r := e.node("search-conversation", e.authID, "runtime")
		rs := sampleRSS(e.pidOf("runtime"))
		s := closedLoop(&e.load, r, o.concurrency, o.soak)
		rss := rs.stop()
		fmt.Printf("soak        %-20s upstream=0s    runtime  conc=%-4d %s rss-first=%s rss-last=%s rss-max=%s duration=%s\n",
			"search-conversation", o.concurrency, s.format(), mib(rss.first), mib(rss.last), mib(rss.max), o.soak)
		fullLoadRSS = max(fullLoadRSS, rss.max)
		v.add("no RSS growth over the soak "+o.soak.String()+" (last <= first + 10%)", mib(rss.first)+" -> "+mib(rss.last), float64(rss.last) <= 1.1*float64(rss.first))
	}
	// Added latency at half of the ceiling's maximum load. The rate is the ceiling's, not
	// the runtime's: the point is that the runtime sustains it with little added latency.
	// It runs right after the full-load scenarios at 0 ms and the soak, on the state
	// they leave (32 connections), not after the 20 ms ones' 256.
	halfLoad := func() error {
		for _, node := range []string{"search-conversation", "append-message"} {
			rate := ceilingMax[node] / 2
			var profiles []profileSpec
			if node == "search-conversation" {
				profiles = []profileSpec{{"trace", o.trace}}
			}
			res, err := e.alternate(node, []string{ceiling, runtimeTarget, ceilingAgain}, func(r request, d time.Duration) stats { return openLoop(&e.load, r, rate, d) }, profiles)
			if err != nil {
				return err
			}
			aa := res[ceilingAgain].over(res[ceiling])
			for _, target := range []string{ceiling, runtimeTarget, ceilingAgain} {
				s, rss, q := res[target].s, res[target].rss, res[target].q
				line := fmt.Sprintf("half-load   %-20s upstream=0s    %-8s rate=%-6.0f %s window-p99-median=%s rss=%s", node, target, rate, s.format(), ms(res[target].medianWindowP99()), rss.format())
				if res[target].overloadedAt(rate) {
					line += " OVERLOADED (answered below the offered rate)"
				}
				switch target {
				case ceilingAgain:
					line += fmt.Sprintf(" a/a-p50=%s a/a-p99=%s a/a-window-p99-median=%s", ms(aa.p50), ms(aa.p99), ms(aa.windowP99Median))
				case runtimeTarget:
					added := res[runtimeTarget].over(res[ceiling])
					line += fmt.Sprintf(" %s added-p50=%s added-p99=%s added-window-p99-median=%s", q, ms(added.p50), ms(added.p99), ms(added.windowP99Median))
					short := strings.SplitN(node, "-", 2)[0]
					m50, m99, met50, met99 := halfLoadVerdict(rate, res)
					v.add("added p50 < 0.2 ms at half the ceiling's max ("+short+")", m50, met50)
					v.add("added p99 < 1 ms at half the ceiling's max ("+short+")", m99, met99)
				}
				fmt.Println(line)
			}
		}
		return nil
	}
	latencies := []time.Duration{0, 20 * time.Millisecond}
	if o.quick || o.halfLoad {
		latencies = latencies[:1]
	}
	for _, latency := range latencies {
		e.steady.ClearFaults()
		if latency > 0 {
			e.steady.InjectFault(engagesim.Fault{Op: "*", Latency: latency})
		}
		conc := o.concurrency
		if latency > 0 {
			conc = o.concurrency * 8 // keep the server busy while Engage takes its time
		}
		for _, node := range []string{"search-conversation", "append-message"} {
			var profiles []profileSpec
			if latency == 0 && node == "search-conversation" {
				profiles = []profileSpec{{"profile", o.cpuProfile}, {"allocs", o.memProfile}}
			}
			res, err := e.alternate(node, []string{ceiling, runtimeTarget}, func(r request, d time.Duration) stats { return closedLoop(&e.load, r, conc, d) }, profiles)
			if err != nil {
				return err
			}
			c, rt := res[ceiling], res[runtimeTarget]
			ratio := rt.s.rps() / c.s.rps()
			fmt.Printf("full-load   %-20s upstream=%-5s %-8s conc=%-4d %s rss=%s\n", node, latency, "ceiling", conc, c.s.format(), c.rss.format())
			fmt.Printf("full-load   %-20s upstream=%-5s %-8s conc=%-4d %s rss=%s %s ratio=%.2f ratio-window-median=%.2f\n", node, latency, "runtime", conc, rt.s.format(), rt.rss.format(), rt.q, ratio, rt.pairedRatio(c))
			maxQueries = max(maxQueries, rt.q.n)
			fullLoadRSS = max(fullLoadRSS, rt.rss.max)
			if latency == 0 {
				ceilingMax[node] = c.s.rps()
				ratios[node] = ratio
			}
		}
		if latency == 0 && o.soak > 0 && !o.quick && !o.halfLoad {
			soak()
		}
		if latency == 0 && !o.quick {
			if err := halfLoad(); err != nil {
				return err
			}
		}
	}
	e.steady.ClearFaults()
	v.add("RSS < 64 MiB at full load (every full-load scenario and the soak)", mib(fullLoadRSS), fullLoadRSS < 64*1024)
	v.add("throughput >= 85% of the ceiling (search, 0 ms)", fmt.Sprintf("%.2f", ratios["search-conversation"]), ratios["search-conversation"] >= 0.85)
	v.add("throughput >= 85% of the ceiling (append, 0 ms)", fmt.Sprintf("%.2f", ratios["append-message"]), ratios["append-message"] >= 0.85)
	v.add("0 database queries per execution (steady state)",
		fmt.Sprintf("at most %d per scenario of thousands", maxQueries), maxQueries == 0)
	if o.quick {
		v.print()
		return nil
	}

	if o.halfLoad {
		v.print()
		return nil
	}

	// A burst of concurrent executions, first on a valid token (the baseline: at this
	// concurrency on one core the p99 is queueing), then the same burst on an expired
	// token: one refresh, every execution succeeds, and the p99 stays under 3x the
	// baseline's plus one token round trip.
	if o.burst > 0 {
		r := e.node("search-conversation", e.burstAuthID, "runtime")
		e.short.SeedConversation(domain, engagesim.Conversation{Channel: "sms", CustomerAddress: "+15550001", BizAddress: "+15559999", Status: "active"})
		tokenRTT := e.tokenRoundTrip()
		// One execution fetches a fresh token (the one made at creation is long expired);
		// the baseline burst then runs well within its lifetime (burstTTL).
		first := &wireConn{}
		ok := send(first, r)
		first.close()
		if !ok {
			return fmt.Errorf("burst: the first execution on the burst authorization failed")
		}
		runBurst := func(label string) (stats, int) {
			// Each burst opens its connections anew, so the two compare like with like.
			e.load.closeIdle()
			g0 := e.short.Grants("client_credentials")
			s := burst(&e.load, r, o.burst)
			grants := e.short.Grants("client_credentials") - g0
			fmt.Printf("burst       %-20s %-14s runtime  n=%-5d %s refreshes=%d\n", "search-conversation", label, o.burst, s.format(), grants)
			return s, grants
		}
		base, baseGrants := runBurst("valid token")
		if baseGrants != 0 {
			fmt.Printf("# the baseline burst refreshed %d times: it outlasted the token (burstTTL %s); its p99 is not a clean baseline\n", baseGrants, burstTTL)
		}
		// Let the token expire (its lifetime is burstTTL).
		time.Sleep(burstTTL + time.Second)
		s, grants := runBurst("expired token")
		target := 3*base.quantile(.99) + tokenRTT
		fmt.Printf("burst       target: expired p99 < 3 x valid p99 (%s) + token round trip (%s) = %s\n", ms(base.quantile(.99)), ms(tokenRTT), ms(target))
		e.load.closeIdle()
		v.add(fmt.Sprintf("burst of %d on an expired token: exactly one refresh", o.burst), strconv.Itoa(grants), grants == 1)
		v.add(fmt.Sprintf("burst of %d on an expired token: no errors", o.burst), fmt.Sprintf("%d/%d", s.errors, s.requests), s.errors == 0)
		v.add("burst p99 < 3 x baseline burst p99 + token round trip", ms(s.quantile(.99))+" < "+ms(target), s.quantile(.99) < target)
	}
	v.print()
	return nil
}

// baseMaxExecutions is the base Deployment's NODERUNTIME_MAX_CONCURRENT_EXECUTIONS.
const baseMaxExecutions = 2000

// holdLatency is how long Engage takes to answer in the hold scenario: long enough for
// every execution of the burst to be in flight at once.
const holdLatency = 3 * time.Second

// holdExecutions holds n executions at once at an Engage that answers in holdLatency,
// and prints the runtime's RSS before and at most, what each accepted execution added,
// and how many the runtime refused: the memory an execution in flight holds, which
// sizes NODERUNTIME_MAX_CONCURRENT_EXECUTIONS (docs/operations.md, Overload), and the
// cap at work past it.
func (e *env) holdExecutions(n int) error {
	r := e.node("search-conversation", e.authID, runtimeTarget)
	if !send(&wireConn{}, r) { // a token first, so the burst measures executions only
		return errors.New("hold: the first execution failed")
	}
	e.load.closeIdle()
	e.steady.InjectFault(engagesim.Fault{Op: "*", Latency: holdLatency})
	defer e.steady.ClearFaults()
	pid := e.pidOf(runtimeTarget)
	before := readRSS(pid)
	rss := sampleRSS(pid)
	s := burst(&e.load, r, n)
	got := rss.stop()
	e.load.closeIdle()
	accepted := s.requests - s.errors
	per := 0.0
	if accepted > 0 {
		per = float64(got.max-before) / float64(accepted)
	}
	fmt.Printf("hold        %-20s upstream=%-5s runtime  n=%-5d accepted=%d refused=%d rss-before=%s rss-max=%s per-execution=%.1fKiB p99=%s\n",
		"search-conversation", holdLatency, n, accepted, s.errors, mib(before), mib(got.max), per, ms(s.quantile(.99)))
	return nil
}

// verdicts collects each target of the issue with what this run measured.
type verdicts []verdict

type verdict struct {
	target, measured string
	met              bool
}

func (v *verdicts) add(target, measured string, met bool) {
	*v = append(*v, verdict{target, measured, met})
}

func (v verdicts) print() {
	fmt.Println("# targets")
	for _, x := range v {
		mark := "MET "
		if !x.met {
			mark = "MISS"
		}
		fmt.Printf("target      %s  %-58s %s\n", mark, x.target, x.measured)
	}
}

// profileSpec asks for a profile of the runtime's first window into file (none when
// file is empty).
type profileSpec struct{ kind, file string }

// profile saves a profile of the runtime over d: "profile" (CPU), "allocs" (the
// allocations made during d) or "trace" (an execution trace, for go tool trace).
func (e *env) profile(kind, file string, d time.Duration) error {
	resp, err := e.client.Get(fmt.Sprintf("%s/debug/pprof/%s?seconds=%d", e.metricsURL, kind, max(1, int(d.Seconds()))))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile: HTTP %d", resp.StatusCode)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

// tokenRoundTrip times one client-credentials grant at the simulator.
func (e *env) tokenRoundTrip() time.Duration {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {tenantID}, "client_secret": {tenantSecret}}
	start := time.Now()
	resp, err := e.client.PostForm(e.short.ClientCredentialsTokenURL(), form)
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return time.Since(start)
}

// metrics reads un-labelled samples from the Prometheus text at url: those not there
// are missing from the map.
func (e *env) metrics(url string, names ...string) (map[string]float64, error) {
	resp, err := e.client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if ok && slices.Contains(names, name) {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				out[name] = f
			}
		}
	}
	return out, sc.Err()
}

// serverGC is a server's collections and allocated bytes so far, from its /metrics (the
// ceiling serves the same two names).
type serverGC struct{ cycles, allocs float64 }

func (e *env) serverGC(target string) serverGC {
	u := e.metricsURL + "/metrics"
	if isCeiling(target) {
		u = e.ceilingURL + "/metrics"
	}
	m, _ := e.metrics(u, "go_gc_duration_seconds_count", "go_memstats_alloc_bytes_total")
	return serverGC{cycles: m["go_gc_duration_seconds_count"], allocs: m["go_memstats_alloc_bytes_total"]}
}

func (s stats) format() string {
	line := fmt.Sprintf("rps=%-8.0f p50=%-7s p99=%-7s p99.9=%-7s errors=%d/%d",
		s.rps(), ms(s.quantile(.5)), ms(s.quantile(.99)), ms(s.quantile(.999)), s.errors, s.requests)
	if len(s.lags) > 0 {
		line += fmt.Sprintf(" lag-p50=%s lag-p99=%s", ms(quantile(s.lags, .5)), ms(quantile(s.lags, .99)))
	}
	return line
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }

type rssStats struct {
	first, last, max int64
	cpu              cpuUse
}

func (r rssStats) format() string { return mib(r.max) + r.cpu.String() }

func mib(kb int64) string { return fmt.Sprintf("%.1fMiB", float64(kb)/1024) }

type rssSampler struct {
	done chan struct{}
	out  chan rssStats
}

func sampleRSS(pid int) *rssSampler {
	s := &rssSampler{done: make(chan struct{}), out: make(chan rssStats, 1)}
	go func() {
		var r rssStats
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			kb := readRSS(pid)
			if r.first == 0 {
				r.first = kb
			}
			r.last = kb
			r.max = max(r.max, kb)
			select {
			case <-s.done:
				s.out <- r
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) stop() rssStats { close(s.done); return <-s.out }

// readRSS is process pid's resident set in kB, 0 once it is gone.
func readRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	return int64(statusField(string(b), "VmRSS:"))
}

func waitReady(u, logPath string) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(u); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	log, _ := os.ReadFile(logPath)
	return fmt.Errorf("not ready after 60s; log:\n%s", log)
}

func stop(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
	}
}

func pin(pid int, cpus string) {
	if err := exec.Command("taskset", "-a", "-p", "-c", cpus, strconv.Itoa(pid)).Run(); err != nil {
		fmt.Fprintln(os.Stderr, "nrbench: taskset:", err, "(running unpinned)")
	}
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return "unknown CPU"
}

// dieWithParent makes the kernel kill a server when nrbench itself dies, even by
// SIGKILL or a timeout, so no benchmark server outlives its run.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// dropAbandoned drops the databases of earlier runs that were killed before they could
// clean up (their process is gone).
func dropAbandoned(ctx context.Context, conn *pgx.Conn) {
	rows, err := conn.Query(ctx, "select datname from pg_database where datname like 'nrbench\\_%'")
	if err != nil {
		return
	}
	names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	for _, n := range names {
		pid, err := strconv.Atoi(strings.TrimPrefix(n, "nrbench_"))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); os.IsNotExist(err) {
			_, _ = conn.Exec(ctx, "drop database if exists "+pgx.Identifier{n}.Sanitize()+" with (force)")
		}
	}
}
