package engagesim

import (
	"maps"
	"sync"
)

// counters count what the simulator served, so tests can see what happened (how many
// refreshes a burst of executions caused, whether a search was retried).
type counters struct {
	mu            sync.Mutex
	calls         map[string]int
	grants        map[string]int
	invalidGrants int
}

func (c *counters) init() {
	c.calls = map[string]int{}
	c.grants = map[string]int{}
}

func (c *counters) call(op string) {
	c.mu.Lock()
	c.calls[op]++
	c.mu.Unlock()
}

func (c *counters) grant(kind string) {
	c.mu.Lock()
	c.grants[kind]++
	c.mu.Unlock()
}

func (c *counters) invalidGrant() {
	c.mu.Lock()
	c.invalidGrants++
	c.mu.Unlock()
}

// Calls counts the requests of an operation (Ops), whatever their answer, faults
// included. OpToken counts both token endpoints.
func (s *Sim) Calls(op string) int {
	s.counters.mu.Lock()
	defer s.counters.mu.Unlock()
	return s.counters.calls[op]
}

// Grants counts the tokens issued by grant kind: GrantAuthorizationCode,
// GrantRefreshToken, GrantClientCredentials.
func (s *Sim) Grants(kind string) int {
	s.counters.mu.Lock()
	defer s.counters.mu.Unlock()
	return s.counters.grants[kind]
}

// InvalidGrants counts the invalid_grant answers of the token endpoint.
func (s *Sim) InvalidGrants() int {
	s.counters.mu.Lock()
	defer s.counters.mu.Unlock()
	return s.counters.invalidGrants
}

// Counts is a snapshot of every counter.
type Counts struct {
	Calls         map[string]int `json:"calls"`
	Grants        map[string]int `json:"grants"`
	InvalidGrants int            `json:"invalidGrants"`
}

// Counts returns a snapshot of every counter.
func (s *Sim) Counts() Counts {
	s.counters.mu.Lock()
	defer s.counters.mu.Unlock()
	return Counts{Calls: maps.Clone(s.counters.calls), Grants: maps.Clone(s.counters.grants), InvalidGrants: s.counters.invalidGrants}
}

// ResetCounters sets every counter to zero.
func (s *Sim) ResetCounters() {
	s.counters.mu.Lock()
	defer s.counters.mu.Unlock()
	clear(s.counters.calls)
	clear(s.counters.grants)
	s.counters.invalidGrants = 0
}
