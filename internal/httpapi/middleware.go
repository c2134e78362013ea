package httpapi

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"mime"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/noderuntime/noderuntime/internal/tenant"
)

// requestState is what the edge keeps for one request: its ID, the status and size of
// its answer, and the attributes of its access-log line. observe allocates it once and
// puts it in the context once, instead of a context value (and a copy of the request)
// per piece.
type requestState struct {
	id  string
	rec statusRecorder
	// tenant is the caller authenticate resolved (authed): kept here rather than in a
	// new context, which would copy the request once more.
	tenant tenant.ID
	authed bool
	// abort: recoverPanics found the handler panicking after its answer began; observe
	// logs and counts the request, then cuts the connection (http.ErrAbortHandler).
	abort bool
	// refusal: the answer is a designed refusal (503 overloaded), which observe logs at
	// WARN: nothing in the service failed, and the caller retries.
	refusal bool

	mu sync.Mutex
	// attrs is the access-log line: len(baseAttrs) slots that observe fills at the end,
	// then what handlers add. It starts on inline, so a typical execution's line
	// allocates nothing of its own.
	attrs  []slog.Attr
	inline [24]slog.Attr
}

// baseAttrs is the number of attributes every access-log line starts with.
const baseAttrs = 6

type requestStateKey struct{}

func stateOf(ctx context.Context) *requestState {
	st, _ := ctx.Value(requestStateKey{}).(*requestState)
	return st
}

// RequestID returns the request's ID (accepted from X-Request-Id or generated).
func RequestID(ctx context.Context) string {
	if st := stateOf(ctx); st != nil {
		return st.id
	}
	return ""
}

// Tenant returns the caller the API key resolved, for the routes under /v1.
func Tenant(ctx context.Context) (tenant.ID, bool) {
	if st := stateOf(ctx); st != nil && st.authed {
		return st.tenant, true
	}
	return tenant.FromContext(ctx)
}

// acceptableRequestID reports whether a caller's request ID is short and plain
// (^[A-Za-z0-9._:-]{1,128}$), so it can be echoed without injecting anything into logs
// or headers.
func acceptableRequestID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9',
			c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// randomBytes fills b from math/rand/v2's generator (ChaCha8, seeded by the runtime):
// request and execution IDs must be unique, not secret, and crypto/rand's per-call
// system-random checks cost a request a microsecond.
func randomBytes(b *[16]byte) {
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
}

func newID() string {
	var b [16]byte
	randomBytes(&b)
	var s [32]byte
	hex.Encode(s[:], b[:])
	return string(s[:])
}

// AnnotateLog adds attributes (node, version, outcome, ...) to the request's access log
// line. Never pass a secret.
func AnnotateLog(ctx context.Context, attrs ...slog.Attr) {
	if st := stateOf(ctx); st != nil {
		st.mu.Lock()
		st.attrs = append(st.attrs, attrs...)
		st.mu.Unlock()
	}
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += n
	return n, err
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// nosniff is every answer's X-Content-Type-Options: a browser takes a JSON answer or a
// problem document, which may quote what the caller sent, for what its Content-Type
// says and never sniffs HTML out of it. Shared, read-only: it saves an allocation per
// request on the hot path.
var nosniff = []string{"nosniff"}

// observe gives the request its ID (X-Request-Id, echoed in the answer) and
// X-Content-Type-Options, and writes one access-log line and the HTTP metrics per request.
func observe(logger *slog.Logger, m *Metrics) func(http.Handler) http.Handler {
	patterns := &routePatterns{m: map[string]string{}}
	line, _ := logger.Handler().(lineLogger)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			st := &requestState{id: r.Header.Get("X-Request-Id")}
			if !acceptableRequestID(st.id) {
				st.id = newID()
			}
			h := w.Header()
			h.Set("X-Request-Id", st.id)
			h["X-Content-Type-Options"] = nosniff
			st.attrs = st.inline[:baseAttrs]
			st.rec.ResponseWriter = w
			rec := &st.rec
			r = r.WithContext(context.WithValue(r.Context(), requestStateKey{}, st))
			next.ServeHTTP(rec, r)
			if st.abort {
				// After the line and the metric below: a cut answer is a request too.
				defer panic(http.ErrAbortHandler)
			}
			if rec.status == 0 {
				rec.status = http.StatusOK
			}
			elapsed := time.Since(start)
			route := patterns.of(chi.RouteContext(r.Context()))
			if route == "" {
				route = "unmatched"
			}
			m.observe(route, rec.status, elapsed)

			level := slog.LevelInfo
			switch {
			case st.abort || rec.status >= 500 && !st.refusal:
				level = slog.LevelError
			case rec.status >= 500:
				level = slog.LevelWarn
			}
			if route == "/healthz" || route == "/readyz" || route == "/metrics" {
				level = slog.LevelDebug // probes and scrapes would drown the log
			}
			if !logger.Enabled(r.Context(), level) {
				return
			}
			st.mu.Lock()
			attrs := st.attrs
			st.mu.Unlock()
			attrs[0] = slog.String("requestId", st.id)
			attrs[1] = slog.String("method", r.Method)
			attrs[2] = slog.String("route", route)
			attrs[3] = slog.Int("status", rec.status)
			attrs[4] = slog.Int("bytes", rec.bytes)
			attrs[5] = slog.Float64("durationMs", float64(elapsed.Microseconds())/1000)
			if line != nil {
				_ = line.Line(r.Context(), level, "request", attrs...)
				return
			}
			logger.LogAttrs(r.Context(), level, "request", attrs...)
		})
	}
}

// lineLogger is a handler that writes a line from its attributes as they are
// (internal/jsonlog), without the copy of every attribute past the fifth that
// slog.Logger makes into a record.
type lineLogger interface {
	Line(ctx context.Context, level slog.Level, msg string, attrs ...slog.Attr) error
}

// routePatterns caches chi's RoutePattern, which joins and rewrites the matched
// patterns on every call, by the patterns it joins. They come from the router's own
// definitions, so the cache stays small; it stops growing at maxRoutePatterns anyway.
type routePatterns struct {
	mu sync.RWMutex
	m  map[string]string
}

const maxRoutePatterns = 1024

func (p *routePatterns) of(rctx *chi.Context) string {
	if rctx == nil {
		return ""
	}
	var buf [256]byte
	key := buf[:0]
	for _, s := range rctx.RoutePatterns {
		key = append(key, s...)
		key = append(key, 0)
	}
	p.mu.RLock()
	route, ok := p.m[string(key)]
	p.mu.RUnlock()
	if ok {
		return route
	}
	route = rctx.RoutePattern()
	p.mu.Lock()
	if len(p.m) < maxRoutePatterns {
		p.m[string(key)] = route
	}
	p.mu.Unlock()
	return route
}

// recoverPanics answers a panicking handler with a 500 problem, or cuts the answer it had
// begun, and logs the stack; the server keeps serving.
func recoverPanics(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				v := recover()
				if v == nil {
					return
				}
				if v == http.ErrAbortHandler {
					panic(v) // the server's own way to abort a response
				}
				logger.ErrorContext(r.Context(), "handler panicked",
					slog.String("requestId", RequestID(r.Context())),
					slog.String("panic", fmt.Sprint(v)),
					slog.String("stack", string(debug.Stack())))
				if rec, ok := w.(*statusRecorder); ok && rec.status != 0 {
					// The answer has begun: a problem appended to it would read as part of a
					// success. The connection is cut instead, so the client sees it broke;
					// by observe, once it has logged and counted the request.
					if st := stateOf(r.Context()); st != nil {
						AnnotateLog(r.Context(), slog.String("errorCode", string(CodeInternal)))
						st.abort = true
						return
					}
					panic(http.ErrAbortHandler)
				}
				WriteProblem(w, r, NewProblem(http.StatusInternalServerError, CodeInternal, "an internal error occurred; the request ID identifies it in the logs"))
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// limitBody caps the request body at MaxBodyBytes: an announced larger body is refused at
// once, a longer stream fails when the handler reads past the limit.
func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > MaxBodyBytes {
			WriteProblem(w, r, NewProblem(http.StatusRequestEntityTooLarge, CodePayloadTooLarge, fmt.Sprintf("the body is over %d bytes", MaxBodyBytes)))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		next.ServeHTTP(w, r)
	})
}

// requireJSON refuses a request body that is not JSON.
func requireJSON(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hasBody := r.ContentLength > 0 || (r.ContentLength == -1 && r.Body != nil && r.Body != http.NoBody)
		if hasBody || r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
			if len(r.Header["Content-Type"]) > 1 {
				// Which one counts would depend on who reads it (a proxy, a WAF in
				// front): refused, as a second Authorization is.
				WriteProblem(w, r, NewProblem(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType, "send one Content-Type header, not several"))
				return
			}
			// "application/json" as such is what nearly every caller sends: accepted
			// without parsing (ParseMediaType allocates), as it would be.
			if ct := r.Header.Get("Content-Type"); ct != "application/json" && (ct != "" || hasBody) {
				mt, params, err := mime.ParseMediaType(ct)
				if errors.Is(err, mime.ErrInvalidMediaParameter) && (mt == "application/json" || strings.HasSuffix(mt, "+json")) {
					// JSON, with parameters that do not parse ("charset=", a lone "foo"):
					// "send the body as application/json" would tell the caller it had not.
					WriteProblem(w, r, NewProblem(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType,
						fmt.Sprintf("the Content-Type %s has parameters that do not parse (RFC 9110 §5.6.6: name=value, separated by semicolons); send application/json, with charset=utf-8 at most", clipValue(mt))))
					return
				}
				if err != nil || !(mt == "application/json" || strings.HasSuffix(mt, "+json")) {
					WriteProblem(w, r, NewProblem(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType, "send the body as application/json"))
					return
				}
				// JSON is UTF-8 (RFC 8259 §8.1) and the body is read as such: a body
				// labelled latin1 would have its accented letters refused or misread.
				if cs, ok := params["charset"]; ok && !utf8Label(cs) {
					WriteProblem(w, r, NewProblem(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType,
						fmt.Sprintf("charset %q is not supported; send the body as UTF-8", clipValue(cs))))
					return
				}
			}
			// The body is read as it comes: a compressed one would be refused as
			// "not valid UTF-8", and a plain one labelled compressed would run as if the
			// label were not there. Refused, as RFC 9110 §8.4 allows, saying why.
			for _, line := range r.Header["Content-Encoding"] {
				for _, coding := range strings.Split(line, ",") {
					if c := strings.TrimSpace(coding); c != "" && !strings.EqualFold(c, "identity") {
						WriteProblem(w, r, NewProblem(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType,
							fmt.Sprintf("Content-Encoding %q is not supported; send the body uncompressed", clipValue(c))))
						return
					}
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// authenticate resolves the caller's tenant from "Authorization: Bearer <api key>".
func authenticate(keys tenant.Keys) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			lines := r.Header["Authorization"]
			if len(lines) > 1 {
				// Proxies disagree on which line counts; refuse rather than guess.
				WriteProblem(w, r, NewProblem(http.StatusUnauthorized, CodeUnauthorized, "send one Authorization header, not several"))
				return
			}
			var key string
			ok := len(lines) == 1
			if ok {
				key, ok = bearer(lines[0])
			}
			if !ok {
				WriteProblem(w, r, NewProblem(http.StatusUnauthorized, CodeUnauthorized, "send an API key as Authorization: Bearer <key>"))
				return
			}
			id, ok := keys.Lookup(key)
			if !ok {
				WriteProblem(w, r, NewProblem(http.StatusUnauthorized, CodeUnauthorized, "the API key is not valid"))
				return
			}
			AnnotateLog(r.Context(), slog.String("tenant", string(id)))
			if st := stateOf(r.Context()); st != nil {
				st.tenant, st.authed = id, true
				next.ServeHTTP(w, r)
				return
			}
			next.ServeHTTP(w, r.WithContext(tenant.WithID(r.Context(), id)))
		})
	}
}

func bearer(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// LogRequestIDs wraps h so that a line logged with a request's context, below the HTTP
// edge (the authorization store's, the nodes'), carries the request's requestId as its
// access-log line does: the ID a caller has finds every line of its request. A line
// logged without a request's context passes unchanged. Not for the access log itself,
// which names the ID already.
func LogRequestIDs(h slog.Handler) slog.Handler { return requestIDHandler{h} }

type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if st := stateOf(ctx); st != nil {
		r = r.Clone()
		r.AddAttrs(slog.String("requestId", st.id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(attrs)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}

// utf8Label reports whether a charset parameter names UTF-8: one of the WHATWG Encoding
// Standard's labels for it (clients send "utf8" as often as "utf-8"), or US-ASCII, which
// is UTF-8's first half.
func utf8Label(charset string) bool {
	for _, label := range []string{"utf-8", "utf8", "unicode-1-1-utf-8", "unicode11utf8", "unicode20utf8", "x-unicode20utf8", "us-ascii"} {
		if strings.EqualFold(charset, label) {
			return true
		}
	}
	return false
}
