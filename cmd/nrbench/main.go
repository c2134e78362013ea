// Command nrbench measures noderuntime under load against the Engage simulator and
// against a "ceiling": a minimal handler that does only the unavoidable work (decode the
// request, one pooled call to the simulator, encode the answer). Both servers run as
// their own processes pinned to the same CPU with the same GOMAXPROCS, so the runtime's
// figures read as a ratio to what any Go service could do on this machine.
//
//	nrbench [-quick | -half-load] [-duration 10s] [-concurrency 32] [-soak 60s] [-burst 1000] [-cpuprofile f] [-memprofile f] [-trace f] [-windows]
//
// Output: one line per scenario with requests/s, p50, p99, p99.9, errors, the server's
// RSS and database queries per execution, then each target of the performance issue
// with the figure this run measured and MET or MISS. At half load the ceiling is
// measured again after each of the runtime's windows: the ceiling against itself shows
// how large a difference this harness reports between two identical servers.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "ceiling" {
		if err := runCeiling(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "nrbench ceiling:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	flag.DurationVar(&o.duration, "duration", o.defaults().duration, "length of each measured scenario")
	flag.DurationVar(&o.warmup, "warmup", o.defaults().warmup, "warm-up before each scenario")
	flag.IntVar(&o.concurrency, "concurrency", o.defaults().concurrency, "closed-loop concurrency at full load")
	flag.DurationVar(&o.soak, "soak", o.defaults().soak, "length of the RSS soak at full load (0 skips it)")
	flag.IntVar(&o.burst, "burst", o.defaults().burst, "concurrent executions in the expired-token burst")
	flag.StringVar(&o.serverCPU, "server-cpu", "0", "CPU list (taskset) of the server under test")
	flag.StringVar(&o.benchCPU, "bench-cpu", "1", "CPU list of the load generator and simulator")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "save a CPU profile of the runtime during the search scenario at 0 ms")
	flag.StringVar(&o.memProfile, "memprofile", "", "save the runtime's allocations (pprof allocs) during the search scenario at 0 ms")
	flag.StringVar(&o.gogc, "gogc", o.defaults().gogc, "GOGC of both servers (the deployment's)")
	flag.StringVar(&o.memLimit, "gomemlimit", o.defaults().memLimit, "GOMEMLIMIT of both servers (the deployment's)")
	flag.IntVar(&o.rounds, "rounds", o.defaults().rounds, "alternating windows per target in each full-load and half-load scenario")
	flag.BoolVar(&o.quick, "quick", false, "run only the full-load scenarios at 0 ms (the throughput ratio)")
	flag.BoolVar(&o.halfLoad, "half-load", false, "run only the full-load scenarios at 0 ms and the half-load ones (the added latency)")
	flag.BoolVar(&o.windows, "windows", false, "print each alternating window's figures too")
	flag.StringVar(&o.trace, "trace", "", "save an execution trace (go tool trace) of the runtime during its first half-load search window")
	flag.IntVar(&o.hold, "hold", 0, "run only the hold scenario: this many executions at once at an Engage answering in 3 s, with the runtime's RSS and refusals (the memory an execution holds)")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "nrbench:", err)
		os.Exit(1)
	}
}
