package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/noderuntime/noderuntime/internal/idempotency"
	"github.com/noderuntime/noderuntime/internal/nodes"
	"github.com/noderuntime/noderuntime/internal/outcomes"
	"github.com/noderuntime/noderuntime/internal/tenant"
)

// Executions is what POST /v1/executions needs.
type Executions struct {
	Registry *nodes.Registry
	Executor *nodes.Executor
	// Idempotency stores answers for the Idempotency-Key header; nil: requests with the
	// header are refused with 503.
	Idempotency *idempotency.Store
	// DefaultTimeout is the deadline of an execution without timeoutMs; MaxTimeout caps
	// timeoutMs.
	DefaultTimeout, MaxTimeout time.Duration
	// Admission caps the executions run at once; nil: no cap.
	Admission *Admission
}

// Limits of the execution envelope.
const (
	maxIdempotencyKey  = 255
	maxAuthorizationID = 256
	// idempotencyGrace is how long past its deadline an execution's key stays held: the
	// time to store its answer.
	idempotencyGrace = 5 * time.Second
)

// ExecutionRoutes serves POST /v1/executions (DESIGN.md): every request that names a
// node version answers 200 with the outcome; only requests that cannot be routed get a
// problem.
func ExecutionRoutes(e Executions) func(chi.Router) {
	if e.Registry == nil || e.Executor == nil {
		panic("httpapi: ExecutionRoutes needs a Registry and an Executor")
	}
	if e.DefaultTimeout <= 0 {
		e.DefaultTimeout = 10 * time.Second
	}
	if e.MaxTimeout < e.DefaultTimeout {
		e.MaxTimeout = e.DefaultTimeout
	}
	h := &executionHandler{Executions: e}
	return func(r chi.Router) { r.Post("/executions", h.serve) }
}

type executionHandler struct{ Executions }

// executionRequest is the body of POST /v1/executions.
type executionRequest struct {
	Node            string            `json:"node"`
	Version         string            `json:"version"`
	AuthorizationID string            `json:"authorizationId"`
	Input           json.RawMessage   `json:"input"`
	TimeoutMs       *int64            `json:"timeoutMs"`
	Context         *executionContext `json:"context"`
}

// executionContext says where in a flow the execution comes from; it is logged.
type executionContext struct {
	FlowID        string `json:"flowId"`
	NodeID        string `json:"nodeId"`
	TransactionID string `json:"transactionId"`
}

// appendLogAttrs appends the context's fields for the access-log line. They are the
// caller's own identifiers, of any length up to the body's limit: clipped, so one
// request cannot write a megabyte into the log.
func (c *executionContext) appendLogAttrs(attrs []slog.Attr) []slog.Attr {
	return append(attrs, slog.String("flowId", clipTo(c.FlowID, maxLoggedContext)),
		slog.String("flowNodeId", clipTo(c.NodeID, maxLoggedContext)),
		slog.String("transactionId", clipTo(c.TransactionID, maxLoggedContext)))
}

// annotateRefused names on the access-log line of an envelope that decoded but is
// refused (400, or 404 for a node or version that does not exist) the node and version
// it asked for, as sent and clipped, and its context: the flow that sends it, to be
// told. The problem document is the caller's; the log is the operator's.
func annotateRefused(ctx context.Context, req *executionRequest) {
	attrs := []slog.Attr{slog.String("node", clipValue(req.Node)), slog.String("version", clipValue(req.Version))}
	if c := req.Context; c != nil {
		attrs = c.appendLogAttrs(attrs)
	}
	AnnotateLog(ctx, attrs...)
}

// executionResponse is the answer of an execution.
type executionResponse struct {
	Outcome     outcomes.Outcome `json:"outcome"`
	Output      map[string]any   `json:"output"`
	Error       *outcomes.Error  `json:"error,omitempty"`
	ExecutionID string           `json:"executionId"`
	DurationMs  int64            `json:"durationMs"`
	// outputOrder is the version's outputs in byte order (nodes.Version.SortedOutputs).
	outputOrder []string
}

func (h *executionHandler) serve(w http.ResponseWriter, r *http.Request) {
	t, _ := Tenant(r.Context())
	if a := h.Admission; a != nil {
		// Refused before the body is read: a flood costs as little as it can, and
		// nothing (an Idempotency-Key included) is recorded for a retry to trip on.
		own, refused := a.enter(t)
		if refused != nil {
			w.Header().Set("Retry-After", "1")
			WriteProblem(w, r, *refused)
			return
		}
		defer a.leave(own)
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var req executionRequest
	if !req.decodeFast(body) {
		req = executionRequest{}
		if !decodeBytes(w, r, body, &req) {
			return
		}
	}
	if msg := req.validate(); msg != "" {
		annotateRefused(r.Context(), &req)
		WriteProblem(w, r, NewProblem(http.StatusBadRequest, CodeBadRequest, msg))
		return
	}
	v, err := h.Registry.Lookup(req.Node, req.Version)
	if err != nil {
		annotateRefused(r.Context(), &req)
		WriteProblem(w, r, lookupProblem(h.Registry, err))
		return
	}
	ctx := r.Context()
	timeout := h.timeout(req.TimeoutMs)
	attrs := []slog.Attr{
		slog.String("node", v.Node().ID()),
		slog.String("version", v.Number()),
		slog.String("authorizationId", req.AuthorizationID),
	}
	if c := req.Context; c != nil {
		attrs = c.appendLogAttrs(attrs)
	}
	AnnotateLog(ctx, attrs...)
	nreq := nodes.Request{Tenant: t, AuthorizationID: req.AuthorizationID, Input: req.Input}

	keys := r.Header["Idempotency-Key"]
	if len(keys) == 0 {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		// The answer is encoded into a pooled buffer: Write copies it into the
		// connection's own buffer, so it can serve the next request.
		buf := answerBuffers.Get().(*[]byte)
		answer, _ := h.execute(ctx, v, nreq, (*buf)[:0])
		writeRawJSON(w, answer)
		if cap(answer) <= maxPooledAnswer {
			*buf = answer[:0]
			answerBuffers.Put(buf)
		}
		return
	}
	if len(keys) > 1 {
		// Proxies disagree on which of two lines counts; refuse rather than guess.
		WriteProblem(w, r, NewProblem(http.StatusBadRequest, CodeBadRequest, "Idempotency-Key is given more than once"))
		return
	}
	key := keys[0]
	if msg := checkIdempotencyKey(key); msg != "" {
		WriteProblem(w, r, NewProblem(http.StatusBadRequest, CodeBadRequest, msg))
		return
	}
	h.serveIdempotent(w, r, v, nreq, t, key, sha256.Sum256(body), timeout)
}

// serveIdempotent runs the execution once per tenant, key and body: the first request
// runs it and stores its answer, the others get that answer (DESIGN.md).
func (h *executionHandler) serveIdempotent(w http.ResponseWriter, r *http.Request, v *nodes.Version, nreq nodes.Request, t tenant.ID, key string, sum [sha256.Size]byte, timeout time.Duration) {
	if h.Idempotency == nil {
		WriteProblem(w, r, NewProblem(http.StatusServiceUnavailable, CodeUnavailable, "Idempotency-Key is not available on this server"))
		return
	}
	// Waiting for another request with the key ends with this request's own deadline
	// (plus the time that one needs to store its answer), or when the caller leaves.
	waitCtx, cancelWait := context.WithTimeout(r.Context(), timeout+idempotencyGrace)
	defer cancelWait()
	claim, err := h.Idempotency.Claim(waitCtx, t, key, sum[:], timeout+idempotencyGrace, v.ReadOnly())
	if err != nil {
		AnnotateLog(r.Context(), slog.String("idempotencyError", err.Error()))
		WriteProblem(w, r, NewProblem(http.StatusServiceUnavailable, CodeUnavailable, "the idempotency store is unavailable; retry the request"))
		return
	}
	AnnotateLog(r.Context(), slog.String("idempotency", claim.State.String()))
	switch claim.State {
	case idempotency.Replay:
		w.Header().Set("Idempotent-Replayed", "true")
		writeRawJSON(w, claim.Response)
	case idempotency.Mismatch:
		WriteProblem(w, r, NewProblem(http.StatusUnprocessableEntity, CodeUnprocessable,
			"this Idempotency-Key was used with another request body (bodies are compared byte for byte: a retry must send the same bytes, the same whitespace and key order included); use a new key for a new request"))
	case idempotency.InProgress:
		WriteProblem(w, r, NewProblem(http.StatusConflict, CodeConflict,
			"a request with this Idempotency-Key is still running; retry it later to get its answer"))
	case idempotency.Abandoned:
		WriteProblem(w, r, NewProblem(http.StatusConflict, CodeConflict,
			"an earlier request with this Idempotency-Key did not finish, and what it did in Engage is unknown; check, then use a new key"))
	case idempotency.Run:
		// The caller leaving must not cut the execution short: its answer is stored
		// for the retry that is sure to come. A take-over of an abandoned key starts
		// after a long wait: it still ends by this request's own wait deadline, so the
		// answer never comes later than timeout + grace (nor past the write timeout).
		deadline := time.Now().Add(timeout)
		if d, ok := waitCtx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		ctx, cancel := context.WithDeadline(context.WithoutCancel(r.Context()), deadline)
		defer cancel()
		answer, unapplied := h.execute(ctx, v, nreq, nil) // kept by the idempotency store
		storeCtx, cancelStore := context.WithTimeout(context.WithoutCancel(r.Context()), idempotencyGrace)
		defer cancelStore()
		var err error
		if unapplied {
			// Nothing happened in Engage (bad input, an authorization that cannot be used,
			// no token, a refused call): a retry with the key, after the cause is fixed,
			// runs the execution instead of replaying this failure for 24 h.
			err = h.Idempotency.Release(storeCtx, t, key, claim.Holder)
		} else {
			err = h.Idempotency.Complete(storeCtx, t, key, claim.Holder, answer)
		}
		if err != nil {
			// The answer is still the caller's; a retry will find the key abandoned.
			AnnotateLog(r.Context(), slog.String("idempotencyError", err.Error()))
		}
		writeRawJSON(w, answer)
	}
}

// answerBuffers hold encoded answers between requests; a buffer grown past
// maxPooledAnswer by a rare large answer is left to the garbage collector.
var answerBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

const maxPooledAnswer = 16 << 10

// execute runs the node version and appends its encoded answer to buf; unapplied
// reports a failure that certainly changed nothing in Engage (outcomes.Result).
func (h *executionHandler) execute(ctx context.Context, v *nodes.Version, req nodes.Request, buf []byte) (answer []byte, unapplied bool) {
	start := time.Now()
	res := h.Executor.Execute(ctx, v, req)
	elapsed := time.Since(start)
	resp := executionResponse{
		Outcome:     res.Outcome,
		Output:      res.Output,
		Error:       res.Error,
		ExecutionID: newExecutionID(),
		DurationMs:  elapsed.Milliseconds(),
		outputOrder: v.SortedOutputs(),
	}
	attrs := []slog.Attr{
		slog.String("outcome", string(res.Outcome)),
		slog.String("executionId", resp.ExecutionID),
		slog.Float64("executionMs", float64(elapsed.Microseconds())/1000),
	}
	if res.Error != nil {
		attrs = append(attrs, slog.String("errorCode", res.Error.Code))
	}
	AnnotateLog(ctx, attrs...)
	return appendEncodedAnswer(buf, &resp), res.Unapplied
}

// encodeAnswer is the JSON of an execution's answer.
func encodeAnswer(resp *executionResponse) []byte {
	return appendEncodedAnswer(make([]byte, 0, 1024), resp)
}

// appendEncodedAnswer appends the JSON of an execution's answer to b.
func appendEncodedAnswer(b []byte, resp *executionResponse) []byte {
	if out, ok := appendAnswer(b, resp); ok {
		return out
	}
	buf := bytes.NewBuffer(b[:len(b):len(b)])
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(resp); err != nil {
		// An output holds only strings, numbers and booleans: this cannot fail.
		panic("httpapi: encode execution answer: " + err.Error())
	}
	return buf.Bytes()
}

func (h *executionHandler) timeout(ms *int64) time.Duration {
	if ms == nil {
		return min(h.DefaultTimeout, h.MaxTimeout)
	}
	d := time.Duration(*ms) * time.Millisecond
	if *ms > int64(h.MaxTimeout/time.Millisecond) {
		d = h.MaxTimeout
	}
	return d
}

// validate checks the envelope; it returns what is wrong, or "".
func (req *executionRequest) validate() string {
	switch {
	case req.Node == "":
		return "node is required"
	case req.Version == "":
		return "version is required"
	case strings.TrimSpace(req.AuthorizationID) == "":
		return "authorizationId is required"
	case len(req.AuthorizationID) > maxAuthorizationID && utf8.RuneCountInString(req.AuthorizationID) > maxAuthorizationID:
		// Characters, as the OpenAPI's maxLength counts them (and this message says).
		return fmt.Sprintf("authorizationId is over %d characters", maxAuthorizationID)
	case len(req.Input) == 0 || bytes.Equal(req.Input, []byte("null")):
		return "input is required: a JSON object with the node's input variables"
	case req.Input[0] != '{':
		return "input must be a JSON object"
	case req.TimeoutMs != nil && *req.TimeoutMs <= 0:
		return "timeoutMs must be a positive number of milliseconds"
	}
	return ""
}

// checkIdempotencyKey returns what is wrong with an Idempotency-Key, or "".
func checkIdempotencyKey(key string) string {
	if key == "" {
		// A caller that sends the header asked for idempotency: running without it
		// could repeat a create on its retry.
		return "Idempotency-Key is empty"
	}
	if len(key) > maxIdempotencyKey {
		return fmt.Sprintf("Idempotency-Key is over %d characters", maxIdempotencyKey)
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < 0x21 || c > 0x7e {
			return "Idempotency-Key must be printable ASCII without spaces"
		}
	}
	return ""
}

// lookupProblem is the 404 of an unknown node or version; it lists what exists.
func lookupProblem(reg *nodes.Registry, err error) Problem {
	le, ok := errors.AsType[*nodes.LookupError](err)
	if !ok {
		return NewProblem(http.StatusNotFound, CodeNotFound, "no such node version")
	}
	if len(le.Versions) == 0 {
		p := NewProblem(http.StatusNotFound, CodeNotFound, fmt.Sprintf("there is no node %q; GET /v1/nodes lists them", clipValue(le.Node)))
		p.Extra = map[string]any{"nodes": reg.NodeIDs()}
		return p
	}
	p := NewProblem(http.StatusNotFound, CodeNotFound, fmt.Sprintf("node %s has no version %q; it has %s",
		le.Node, clipValue(le.Version), strings.Join(le.Versions, ", ")))
	p.Extra = map[string]any{"versions": le.Versions}
	return p
}

func clipValue(s string) string { return clipTo(s, 64) }

// maxLoggedContext is how much of each context field the log keeps.
const maxLoggedContext = 256

// clipTo cuts s to at most max bytes and marks the cut.
func clipTo(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut-- // never half a character
	}
	return s[:cut] + "..."
}

// readBody reads the whole body (already capped by limitBody); on failure it has
// answered.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			WriteProblem(w, r, NewProblem(http.StatusRequestEntityTooLarge, CodePayloadTooLarge, fmt.Sprintf("the body is over %d bytes", MaxBodyBytes)))
			return nil, false
		}
		WriteProblem(w, r, NewProblem(http.StatusBadRequest, CodeBadRequest, "the body could not be read"))
		return nil, false
	}
	return body, true
}

// The answer headers' values, shared by every answer: net/http only reads them, and
// Set would allocate a new slice for each on every request.
var (
	headerJSON    = []string{"application/json"}
	headerNoStore = []string{"no-store"}
)

func writeRawJSON(w http.ResponseWriter, body []byte) {
	h := w.Header()
	h["Content-Type"] = headerJSON
	h["Cache-Control"] = headerNoStore
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// newExecutionID is a random UUID (version 4).
func newExecutionID() string {
	var b [16]byte
	randomBytes(&b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}
