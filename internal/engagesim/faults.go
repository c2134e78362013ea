package engagesim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Operations, as counted by Calls and targeted by faults. They match the engage client's
// operation names; OpToken is both token endpoints.
const (
	OpSearch            = "search"
	OpCreate            = "create"
	OpAppend            = "append"
	OpUpdate            = "update"
	OpClose             = "close"
	OpAddParticipant    = "add_participant"
	OpRemoveParticipant = "remove_participant"
	OpToken             = "token"
)

// Ops lists every operation, a fresh slice each call.
func Ops() []string { return slices.Clone(ops) }

var ops = []string{OpSearch, OpCreate, OpAppend, OpUpdate, OpClose, OpAddParticipant, OpRemoveParticipant, OpToken}

// Fault is a misbehaviour injected into matching calls. Several fields may combine:
// Latency first, then the first of Reset, Status, Malformed (Status with Malformed
// answers that status with a truncated body, as a gateway in front of Engage may);
// UnknownStatus changes the answer of a search that goes through, NoTID that of a change.
type Fault struct {
	// Op is the operation to disturb; "" or "*" disturbs every operation.
	Op string `json:"op,omitempty"`
	// Latency delays the answer. The wait ends early when the caller goes away or the
	// simulator closes, so no handler outlives its request.
	Latency time.Duration `json:"latency,omitempty"`
	// Status answers this HTTP status (200..599) with an Engage envelope (an OAuth error
	// body on the token endpoints) instead of doing the operation; a 2xx on a change
	// carries a tid, as Engage's does.
	Status int `json:"status,omitempty"`
	// RetryAfter is sent as Retry-After (whole seconds) with Status; a 429 without it
	// sends "1".
	RetryAfter time.Duration `json:"retryAfter,omitempty"`
	// Reset drops the connection without an answer (TCP RST where possible).
	Reset bool `json:"reset,omitempty"`
	// Malformed answers 200 with a truncated JSON body.
	Malformed bool `json:"malformed,omitempty"`
	// UnknownStatus makes a search answer a conversation in this status; with no
	// conversation to find, it invents one. Only searches match it.
	UnknownStatus string `json:"unknownStatus,omitempty"`
	// NoTID makes a change that goes through (or an injected 2xx on one) answer without
	// its tid, which Engage's answer to a change carries (ENGAGE.md §4): a client meets
	// the success it has to read without one. Only changes match it.
	NoTID bool `json:"noTid,omitempty"`
	// Times limits the fault to the next N calls it fires on; 0: until cleared.
	Times int `json:"times,omitempty"`
	// Percent fires the fault on that share of matching calls (deterministic for a
	// Config.Seed); 0 or 100: every call.
	Percent float64 `json:"percent,omitempty"`
}

// validate reports what is wrong with f, or nil.
func (f *Fault) validate() error {
	if f.Op != "" && f.Op != "*" && !slices.Contains(ops, f.Op) {
		return fmt.Errorf("unknown op %q (want one of %v or \"*\")", f.Op, ops)
	}
	if f.Status != 0 && (f.Status < 100 || f.Status > 599) {
		return fmt.Errorf("status %d is not an HTTP status", f.Status)
	}
	if f.Status != 0 && f.Status < 200 {
		// net/http sends a 1xx ahead of the real answer (a 200 here), or, for 101, as a
		// bare switch of protocols: neither is an answer Engage gives.
		return fmt.Errorf("status %d is informational, not an answer (want 200..599)", f.Status)
	}
	if f.Percent < 0 || f.Percent > 100 || f.Times < 0 || f.Latency < 0 || f.RetryAfter < 0 {
		return errors.New("percent must be 0..100; times, latency, retryAfter not negative")
	}
	if f.Latency == 0 && f.Status == 0 && !f.Reset && !f.Malformed && f.UnknownStatus == "" && !f.NoTID {
		return errors.New("fault does nothing: set latency, status, reset, malformed, unknownStatus or noTid")
	}
	return nil
}

func (f *Fault) matches(op string) bool {
	if f.Op != "" && f.Op != "*" && f.Op != op {
		return false
	}
	if f.Latency == 0 && f.Status == 0 && !f.Reset && !f.Malformed {
		// It only changes an answer: it matches the calls whose answer it changes.
		return (f.UnknownStatus != "" && op == OpSearch) || (f.NoTID && isChange(op))
	}
	return true
}

// isChange reports whether op may change a conversation: every operation of the
// conversation API but a search.
func isChange(op string) bool { return op != OpSearch && op != OpToken }

// InjectedFault is a fault in force, with its ID and how many firings it has left.
type InjectedFault struct {
	ID int `json:"id"`
	Fault
	Remaining int `json:"remaining,omitempty"`
}

type faultSet struct {
	mu     sync.Mutex
	nextID int
	list   []*InjectedFault
	rng    *rand.Rand
}

func (fs *faultSet) init(seed uint64) {
	fs.rng = rand.New(rand.NewPCG(seed, 0x656e67616765))
}

// InjectFault adds a fault and returns its ID. It panics on an invalid fault: that is a
// mistake in a test, not a condition to handle (the admin API validates first).
func (s *Sim) InjectFault(f Fault) int {
	if err := f.validate(); err != nil {
		panic("engagesim: " + err.Error())
	}
	fs := &s.faults
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.nextID++
	fs.list = append(fs.list, &InjectedFault{ID: fs.nextID, Fault: f, Remaining: f.Times})
	return fs.nextID
}

// RemoveFault removes one fault; it reports whether it was there.
func (s *Sim) RemoveFault(id int) bool {
	fs := &s.faults
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n := len(fs.list)
	fs.list = slices.DeleteFunc(fs.list, func(f *InjectedFault) bool { return f.ID == id })
	return len(fs.list) < n
}

// ClearFaults removes every fault.
func (s *Sim) ClearFaults() {
	fs := &s.faults
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.list = nil
}

// Faults lists the faults in force.
func (s *Sim) Faults() []InjectedFault {
	fs := &s.faults
	fs.mu.Lock()
	defer fs.mu.Unlock()
	out := make([]InjectedFault, len(fs.list))
	for i, f := range fs.list {
		out[i] = *f
	}
	return out
}

// effect is what the faults firing on one call add up to.
type effect struct {
	latency       time.Duration
	action        *Fault // the one Reset, Status or Malformed fault that acts, if any
	unknownStatus string
	noTID         bool
}

// take decides which faults fire on a call of op and consumes their counts.
func (fs *faultSet) take(op string) effect {
	var e effect
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if len(fs.list) == 0 {
		return e
	}
	kept := fs.list[:0]
	for _, f := range fs.list {
		fired := false
		if f.matches(op) && (f.Percent == 0 || f.Percent >= 100 || fs.rng.Float64()*100 < f.Percent) {
			acts := f.Reset || f.Status != 0 || f.Malformed
			unknown := f.UnknownStatus != "" && op == OpSearch
			noTID := f.NoTID && isChange(op)
			if f.Latency > 0 || (acts && e.action == nil) || (unknown && e.unknownStatus == "") || (noTID && !e.noTID) {
				fired = true
				e.latency += f.Latency
				if acts && e.action == nil {
					cp := f.Fault
					e.action = &cp
				}
				if unknown && e.unknownStatus == "" {
					e.unknownStatus = f.UnknownStatus
				}
				if noTID {
					e.noTID = true
				}
			}
		}
		if fired && f.Times > 0 {
			f.Remaining--
			if f.Remaining == 0 {
				continue
			}
		}
		kept = append(kept, f)
	}
	clear(fs.list[len(kept):])
	fs.list = kept
	return e
}

// applyAPIFaults applies the faults of a conversation call, answering with Engage's
// envelope. It reports false when a fault answered (or dropped) the call; the effect
// says how a call that goes on is to be answered (UnknownStatus, NoTID).
func (s *Sim) applyAPIFaults(w http.ResponseWriter, r *http.Request, op string) (effect, bool) {
	e := s.faults.take(op)
	if !s.wait(w, r, e.latency) {
		return e, false
	}
	if f := e.action; f != nil {
		switch {
		case f.Reset:
			resetConn(w)
		case f.Status != 0:
			setRetryAfter(w, f)
			if f.Status == http.StatusUnauthorized {
				// As the real refusal of a token says it (Sim.api).
				w.Header().Set("WWW-Authenticate", `Bearer realm="engage", error="invalid_token"`)
			}
			if f.Malformed {
				writeTruncated(w, f.Status, fmt.Sprintf(`{"status":%d,"code":%d,"description":"`, f.Status, codeForStatus(f.Status)))
				break
			}
			tid := ""
			if f.Status < 300 && op != OpSearch && !e.noTID {
				// Engage answers a change that went through with its transaction ID
				// (ENGAGE.md §4); a client must not meet a success without one only here.
				tid = newTID()
			}
			writeEnvelope(w, f.Status, codeForStatus(f.Status), http.StatusText(f.Status)+" (injected)", nil, tid)
		case f.Malformed:
			writeTruncated(w, http.StatusOK, `{"status":200,"code":1000,"description":"OK","value":{"conversationId":"`)
		}
		return e, false
	}
	return e, true
}

// applyTokenFaults applies the faults of a token call, answering with OAuth error
// bodies. It reports false when a fault answered (or dropped) the call.
func (s *Sim) applyTokenFaults(w http.ResponseWriter, r *http.Request, op string) bool {
	e := s.faults.take(op)
	if !s.wait(w, r, e.latency) {
		return false
	}
	if f := e.action; f != nil {
		switch {
		case f.Reset:
			resetConn(w)
		case f.Status != 0:
			setRetryAfter(w, f)
			if f.Malformed {
				writeTruncated(w, f.Status, `{"error":"`)
				break
			}
			_, _, basic := r.BasicAuth()
			oe := oerr(tokenErrorCode(f.Status), http.StatusText(f.Status)+" (injected)")
			oe.status = f.Status
			oe.write(w, basic)
		case f.Malformed:
			writeTruncated(w, http.StatusOK, `{"access_token":"`)
		}
		return false
	}
	return true
}

// writeTruncated answers status with a JSON body cut short.
func writeTruncated(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// wait sleeps d unless the caller leaves or the simulator closes first. It reports
// whether to go on.
func (s *Sim) wait(w http.ResponseWriter, r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	// net/http notices a departed client only once the request body has been read, so
	// read it now (bounded), or the wait would outlive its caller. What is read goes
	// back in front of the rest, so the handler's own limit answers an oversized body
	// as it would without the latency.
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20+1))
	rest := io.Reader(r.Body)
	if err != nil {
		if r.Context().Err() != nil {
			return false
		}
		// The handler meets the error where it reads and answers it in its own shape (an
		// envelope, or an OAuth error on a token endpoint), as it would without latency.
		rest = errReader{err}
	}
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(body), rest), r.Body}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	case <-s.done:
		fail(w, http.StatusServiceUnavailable, CodeServerError, "simulator shutting down")
		return false
	}
}

// errReader fails every read with err.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func setRetryAfter(w http.ResponseWriter, f *Fault) {
	switch {
	case f.RetryAfter > 0:
		w.Header().Set("Retry-After", strconv.FormatInt(expiresIn(f.RetryAfter), 10))
	case f.Status == http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "1")
	}
}

// tokenErrorCode is the RFC 6749 §5.2 error a token endpoint answers with status, as
// its real refusals do: a 400 is invalid_request, a 401 invalid_client.
func tokenErrorCode(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "invalid_request"
	case http.StatusUnauthorized:
		return "invalid_client"
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		return "temporarily_unavailable"
	}
	return "server_error"
}

func codeForStatus(status int) int {
	switch {
	case status == http.StatusUnauthorized:
		return CodeUnauthorized
	case status == http.StatusForbidden:
		return CodeForbidden
	case status == http.StatusNotFound:
		return CodeNotFound
	case status == http.StatusConflict:
		return CodeConflict
	case status == http.StatusTooManyRequests:
		return CodeRateLimited
	case status >= 500:
		return CodeServerError
	case status >= 400:
		return CodeInvalid
	}
	return CodeOK
}

// resetConn drops the connection: hijacked and closed with SO_LINGER 0, so the peer sees
// a TCP RST; where hijacking is impossible (HTTP/2), the stream is aborted.
func resetConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}
