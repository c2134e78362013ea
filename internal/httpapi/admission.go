package httpapi

import (
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Admission caps the executions one replica runs at once. Each one in flight holds
// ~55 KiB (its connections, buffers and goroutines: docs/operations.md), so without a
// cap a flood, or an Engage that slows down, grows the process until the kernel kills
// it, cutting off every execution it was running, some after Engage acted. Past the
// cap a request is refused before anything runs, and the caller retries with nothing
// to undo.
type Admission struct {
	max      int64
	inFlight atomic.Int64
	refused  prometheus.Counter
}

// NewAdmission lets limit executions run at once (at least 1) and registers its
// metrics on reg.
func NewAdmission(limit int, reg prometheus.Registerer) *Admission {
	a := &Admission{
		max: int64(max(limit, 1)),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "noderuntime_executions_refused_total",
			Help: "Executions refused with 503 because the replica was running its maximum at once.",
		}),
	}
	reg.MustRegister(a.refused,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "noderuntime_executions_in_flight",
			Help: "Executions running now on this replica.",
		}, func() float64 { return float64(a.inFlight.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "noderuntime_executions_max_in_flight",
			Help: "The most executions this replica runs at once (NODERUNTIME_MAX_CONCURRENT_EXECUTIONS).",
		}, func() float64 { return float64(a.max) }))
	return a
}

// enter counts an execution in, or reports false when the replica already runs its
// maximum; a true must be followed by leave.
func (a *Admission) enter() bool {
	if a.inFlight.Add(1) > a.max {
		a.inFlight.Add(-1)
		a.refused.Inc()
		return false
	}
	return true
}

func (a *Admission) leave() { a.inFlight.Add(-1) }

// overloaded is the problem of a refused execution.
func (a *Admission) overloaded() Problem {
	return NewProblem(http.StatusServiceUnavailable, CodeOverloaded, "this replica is running its maximum of "+
		strconv.FormatInt(a.max, 10)+" executions at once; nothing was run: retry the request")
}
