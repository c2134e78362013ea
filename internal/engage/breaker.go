package engage

import (
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
)

// BreakerOptions turn on a circuit breaker per Engage base URL and domain: when Engage
// fails persistently for a domain (5xx, connection failures, malformed answers), calls
// to it fail at once with KindCircuitOpen instead of each waiting for its own failure,
// and a few probe calls close the breaker again when Engage recovers. Per domain, not
// only per base URL, so that what one Engage tenant's calls provoke never refuses
// another's (an outage of a whole region trips every domain's breaker soon enough).
//
// Business errors, 401/403 and 429 count as successes (Engage answered); the caller's
// deadline and cancellations count as neither: a timeout often says more about the
// caller's deadline than about Engage, and an open breaker must never turn a flow's
// onTimeout into something else, but probes that time out must not close it either.
type BreakerOptions struct {
	// OpenFor is how long a tripped breaker refuses calls before letting probes through.
	// Zero: 5 s.
	OpenFor time.Duration
	// ConsecutiveFailures in a row trip the breaker. Zero: 5. Half of the calls failing
	// trips it too, once 20 calls have been counted (CountFor).
	ConsecutiveFailures uint32
	// CountFor is how long a closed breaker counts calls before it starts its counts
	// afresh: failures spread thinly over hours never add up to a trip. Zero: 30 s.
	CountFor time.Duration
	// Observer, if set, sees every state change.
	Observer BreakerObserver
	// MaxBreakers bounds how many breakers are kept: past it, the closed ones are
	// forgotten (a closed breaker holds at most a few failures of its domain, which are
	// then counted again from none). Zero: 10,000.
	MaxBreakers int
}

// BreakerObserver sees breaker state changes: from and to are Breaker* states. Domains
// are the tenants' choice: an observer may log them but must not make them metric
// labels (unbounded).
type BreakerObserver interface {
	ObserveBreakerChange(target, domain string, from, to int)
}

// The states a BreakerObserver sees; they index BreakerStates().
const (
	// BreakerNone is the from of a breaker just made (closed), and the to of a closed
	// one forgotten (MaxBreakers).
	BreakerNone     = -1
	BreakerClosed   = 0
	BreakerHalfOpen = 1
	BreakerOpen     = 2
)

// breakers holds one breaker per base URL and domain. Base URLs are bounded by the
// allowlist, domains only by the authorizations tenants create (deleted ones included),
// so the closed breakers are forgotten past MaxBreakers; and a domain is never a metric
// label.
type breakers struct {
	opts BreakerOptions
	mu   sync.Mutex
	m    map[breakerKey]*breaker
}

// breaker is one breaker and the state its observer last saw. A call that got cb before
// it was forgotten still reports to it; once forgotten, its changes are not observed
// (the observer counted it out already). mu is taken inside gobreaker's own lock
// (OnStateChange) and inside breakers.mu, never around either.
type breaker struct {
	cb        *gobreaker.TwoStepCircuitBreaker[struct{}]
	mu        sync.Mutex
	state     gobreaker.State
	forgotten bool
}

type breakerKey struct{ target, domain string }

func newBreakers(o BreakerOptions) *breakers {
	if o.OpenFor <= 0 {
		o.OpenFor = 5 * time.Second
	}
	if o.ConsecutiveFailures == 0 {
		o.ConsecutiveFailures = 5
	}
	if o.CountFor <= 0 {
		o.CountFor = 30 * time.Second
	}
	if o.MaxBreakers <= 0 {
		o.MaxBreakers = 10_000
	}
	return &breakers{opts: o, m: map[breakerKey]*breaker{}}
}

func (b *breakers) get(t Target) *gobreaker.TwoStepCircuitBreaker[struct{}] {
	k := breakerKey{t.BaseURL, t.Domain}
	b.mu.Lock()
	defer b.mu.Unlock()
	if br, ok := b.m[k]; ok {
		return br.cb
	}
	if len(b.m) >= b.opts.MaxBreakers {
		b.forgetClosed()
	}
	br := &breaker{state: gobreaker.StateClosed}
	var cb *gobreaker.TwoStepCircuitBreaker[struct{}]
	cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        k.target + " " + k.domain,
		MaxRequests: 3, // the probes a half-open breaker lets through
		Interval:    b.opts.CountFor,
		Timeout:     b.opts.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= b.opts.ConsecutiveFailures ||
				(c.Requests >= 20 && c.TotalFailures*2 >= c.Requests)
		},
		IsSuccessful: func(err error) bool { return err == nil },
		// A call cut by the caller's deadline or cancellation is neither: counted as a
		// success, probes that time out against a hanging Engage would close the breaker.
		IsExcluded: func(err error) bool { return err == errBreakerExcluded },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			br.mu.Lock()
			defer br.mu.Unlock()
			br.state = to
			if b.opts.Observer == nil || br.forgotten {
				return
			}
			b.opts.Observer.ObserveBreakerChange(k.target, k.domain, breakerState(from), breakerState(to))
			if to == gobreaker.StateOpen {
				// gobreaker moves on to half-open only when asked: without calls the
				// metric would say open for ever after OpenFor. Asking once then moves
				// it (and reports the change).
				time.AfterFunc(b.opts.OpenFor, func() { cb.State() })
			}
		},
	})
	br.cb = cb
	b.m[k] = br
	if b.opts.Observer != nil {
		b.opts.Observer.ObserveBreakerChange(k.target, k.domain, BreakerNone, BreakerClosed)
	}
	return cb
}

// forgetClosed drops the closed breakers; b.mu is held. The open and half-open ones
// stay: they are what stops calls to a failing domain.
func (b *breakers) forgetClosed() {
	for k, br := range b.m {
		br.mu.Lock()
		if br.state == gobreaker.StateClosed {
			// Calls begun through it may still trip it: forgotten, that goes unobserved.
			br.forgotten = true
			delete(b.m, k)
			if b.opts.Observer != nil {
				b.opts.Observer.ObserveBreakerChange(k.target, k.domain, BreakerClosed, BreakerNone)
			}
		}
		br.mu.Unlock()
	}
}

func breakerState(s gobreaker.State) int {
	switch s {
	case gobreaker.StateHalfOpen:
		return BreakerHalfOpen
	case gobreaker.StateOpen:
		return BreakerOpen
	}
	return BreakerClosed
}

// countsAgainstEngage reports whether a call's failure says Engage itself is failing.
func countsAgainstEngage(e *Error) bool {
	return e != nil && e.Kind == KindUpstream
}

// breakerResult is what the breaker records for a call that ended in e (nil: success).
func breakerResult(e *Error) error {
	switch {
	case countsAgainstEngage(e):
		return errBreakerFailure
	case e != nil && (e.Kind == KindTimeout || e.Kind == KindCanceled):
		return errBreakerExcluded // says nothing about Engage, either way
	}
	return nil
}

// errBreakerFailure is what the breaker records for a failure, errBreakerExcluded for a
// call that says nothing about Engage; their texts never matter.
var (
	errBreakerFailure  = &Error{Kind: KindUpstream}
	errBreakerExcluded = &Error{Kind: KindTimeout}
)
