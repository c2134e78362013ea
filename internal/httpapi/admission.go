package httpapi

import (
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/noderuntime/noderuntime/internal/tenant"
)

// Admission caps the executions one replica runs at once. Each one in flight holds
// ~55 KiB (its connections, buffers and goroutines: docs/operations.md), so without a
// cap a flood, or an Engage that slows down, grows the process until the kernel kills
// it, cutting off every execution it was running, some after Engage acted. Past the
// cap a request is refused before anything runs, and the caller retries with nothing
// to undo. A cap per tenant keeps one tenant's flood from taking every slot.
type Admission struct {
	max, perTenant int64
	inFlight       atomic.Int64
	// tenants holds each configured tenant's executions in flight; built once, read
	// without a lock. Empty when tenants have no cap of their own.
	tenants map[tenant.ID]*atomic.Int64

	replicaFull, tenantFull       Problem
	refusedReplica, refusedTenant prometheus.Counter
}

// AdmissionOptions are the caps of an Admission.
type AdmissionOptions struct {
	// Max is the executions the replica runs at once (at least 1).
	Max int
	// PerTenant is the most one tenant runs at once on the replica; 0, or Max and above:
	// no cap of its own.
	PerTenant int
	// Tenants are those PerTenant applies to: the configured ones.
	Tenants []tenant.ID
}

// NewAdmission builds the caps of o and registers their metrics on reg.
func NewAdmission(o AdmissionOptions, reg prometheus.Registerer) *Admission {
	a := &Admission{max: int64(max(o.Max, 1)), perTenant: int64(o.PerTenant), tenants: map[tenant.ID]*atomic.Int64{}}
	if a.perTenant > 0 && a.perTenant < a.max {
		for _, t := range o.Tenants {
			a.tenants[t] = new(atomic.Int64)
		}
	}
	a.replicaFull = NewProblem(http.StatusServiceUnavailable, CodeOverloaded, "this replica is running its maximum of "+
		strconv.FormatInt(a.max, 10)+" executions at once; nothing was run: retry the request")
	a.tenantFull = NewProblem(http.StatusServiceUnavailable, CodeOverloaded, "this tenant is running its maximum of "+
		strconv.FormatInt(a.perTenant, 10)+" executions at once on this replica; nothing was run: retry the request")
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "noderuntime_executions_refused_total",
		Help: "Executions refused with 503 because the replica, or the tenant on it, was running its maximum at once.",
	}, []string{"limit"})
	a.refusedReplica, a.refusedTenant = refused.WithLabelValues("replica"), refused.WithLabelValues("tenant")
	reg.MustRegister(refused,
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

// enter counts an execution of tenant t in, or answers the problem that refuses it.
// Admitted, it answers the tenant's own count (nil without one) to hand to leave.
func (a *Admission) enter(t tenant.ID) (own *atomic.Int64, refused *Problem) {
	own = a.tenants[t]
	if own != nil && own.Add(1) > a.perTenant {
		own.Add(-1)
		a.refusedTenant.Inc()
		return nil, &a.tenantFull
	}
	if a.inFlight.Add(1) > a.max {
		a.inFlight.Add(-1)
		if own != nil {
			own.Add(-1)
		}
		a.refusedReplica.Inc()
		return nil, &a.replicaFull
	}
	return own, nil
}

// leave counts an admitted execution out.
func (a *Admission) leave(own *atomic.Int64) {
	a.inFlight.Add(-1)
	if own != nil {
		own.Add(-1)
	}
}
