package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/noderuntime/noderuntime/internal/tenant"
)

type requestIDKey struct{}

// RequestID returns the request's ID (accepted from X-Request-Id or generated).
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// A caller's request ID is echoed only if it is short and plain, so it cannot inject
// anything into logs or headers.
var acceptableRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !acceptableRequestID.MatchString(id) {
			id = newID()
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
	})
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// logFields collects attributes that handlers add to the request's one access-log line.
type logFields struct {
	mu    sync.Mutex
	attrs []slog.Attr
}

type logFieldsKey struct{}

// AnnotateLog adds attributes (node, version, outcome, ...) to the request's access log
// line. Never pass a secret.
func AnnotateLog(ctx context.Context, attrs ...slog.Attr) {
	if f, ok := ctx.Value(logFieldsKey{}).(*logFields); ok {
		f.mu.Lock()
		f.attrs = append(f.attrs, attrs...)
		f.mu.Unlock()
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

// observe writes one access-log line and the HTTP metrics per request.
func observe(logger *slog.Logger, m *Metrics) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			fields := &logFields{}
			rec := &statusRecorder{ResponseWriter: w}
			r = r.WithContext(context.WithValue(r.Context(), logFieldsKey{}, fields))
			next.ServeHTTP(rec, r)
			if rec.status == 0 {
				rec.status = http.StatusOK
			}
			elapsed := time.Since(start)
			route := chi.RouteContext(r.Context()).RoutePattern()
			if route == "" {
				route = "unmatched"
			}
			m.requests.WithLabelValues(route, strconv.Itoa(rec.status)).Inc()
			m.duration.WithLabelValues(route).Observe(elapsed.Seconds())

			level := slog.LevelInfo
			if rec.status >= 500 {
				level = slog.LevelError
			}
			if route == "/healthz" || route == "/readyz" || route == "/metrics" {
				level = slog.LevelDebug // probes and scrapes would drown the log
			}
			attrs := []slog.Attr{
				slog.String("requestId", RequestID(r.Context())),
				slog.String("method", r.Method),
				slog.String("route", route),
				slog.Int("status", rec.status),
				slog.Int("bytes", rec.bytes),
				slog.Float64("durationMs", float64(elapsed.Microseconds())/1000),
			}
			fields.mu.Lock()
			attrs = append(attrs, fields.attrs...)
			fields.mu.Unlock()
			logger.LogAttrs(r.Context(), level, "request", attrs...)
		})
	}
}

// recoverPanics answers a panicking handler with a 500 problem and logs the stack; the
// server keeps serving.
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
			if ct := r.Header.Get("Content-Type"); ct != "" || hasBody {
				mt, _, err := mime.ParseMediaType(ct)
				if err != nil || !(mt == "application/json" || strings.HasSuffix(mt, "+json")) {
					WriteProblem(w, r, NewProblem(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType, "send the body as application/json"))
					return
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
			key, ok := bearer(r.Header.Get("Authorization"))
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
