package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/noderuntime/noderuntime/internal/tenant"
)

// Deps is everything the HTTP edge needs; main (internal/app) fills it.
type Deps struct {
	Logger  *slog.Logger
	Metrics *Metrics
	APIKeys tenant.Keys
	// Ready runs the readiness check (Postgres reachable, schema current) for /readyz.
	Ready func(context.Context) Readiness
	// Gatherer, when set, is served at /metrics on this router.
	Gatherer prometheus.Gatherer
	// V1 registers feature routes under /v1, behind V1Middleware.
	V1 []func(v1 chi.Router)
	// V1Hot registers routes as V1 does, and again on the root router with the /v1
	// prefix and the same middleware. chi then finds them in one lookup instead of
	// two (the mount, then the sub-router, each joining the route pattern and setting
	// path values). The copy under the mount still answers what the root one does not
	// match, so another method on the path is still 405 after authentication. Only the
	// route methods of chi.Router (Get, Post, Put, Patch, Delete, Method, MethodFunc,
	// Handle, HandleFunc) may be used there.
	V1Hot []func(v1 chi.Router)
}

// NewRouter builds the service's HTTP handler.
func NewRouter(d Deps) chi.Router {
	r := newRouter(d.Logger, d.Metrics)
	// Its 404s may name a /v1 route ("//v1/executions"), for a caller with a key.
	r.NotFound(notFound(r, d.APIKeys))

	r.Get("/healthz", healthz)
	r.Get("/readyz", readyz(d.Ready))
	if d.Gatherer != nil {
		r.Method(http.MethodGet, "/metrics", MetricsHandler(d.Gatherer))
	}

	r.Route("/v1", func(v1 chi.Router) {
		v1.Use(V1Middleware(d.APIKeys)...)
		v1.NotFound(notFound(r, d.APIKeys))
		for _, mount := range append(d.V1Hot, d.V1...) {
			mount(v1)
		}
	})
	hot := prefixed{Router: r.With(V1Middleware(d.APIKeys)...), prefix: "/v1"}
	for _, mount := range d.V1Hot {
		mount(hot)
	}
	return r
}

// NewOperationsRouter is the metrics listener's router: only the routes mount adds
// (/metrics, the profiler), with what every answer of the main router has: a request ID,
// the access log, and problem documents for unknown routes and methods.
func NewOperationsRouter(logger *slog.Logger, m *Metrics, mount func(chi.Router)) chi.Router {
	r := newRouter(logger, m)
	mount(r)
	return r
}

func newRouter(logger *slog.Logger, m *Metrics) chi.Router {
	r := chi.NewRouter()
	// routeMethod answers HEAD wherever GET is served (RFC 9110 §9.3.2; net/http drops
	// the body), and a method chi does not know as any other a path does not take.
	r.Use(observe(logger, m), recoverPanics(logger), routeMethod(r))
	r.NotFound(notFound(r, tenant.Keys{}))
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		// chi sets Allow only in its own 405 handler; a 405 must carry it (RFC 9110
		// §15.5.6).
		w.Header().Set("Allow", allowedMethods(r, req))
		WriteProblem(w, req, NewProblem(http.StatusMethodNotAllowed, CodeMethodNotAllowed, req.Method+" is not allowed here"))
	})
	return r
}

// notFound answers a path no route of root serves. When the path differs from one it
// serves only by a trailing or a doubled slash (a base URL joined with a slash too
// many: "/v1/" + "/executions"), the detail names that one and its methods: "no such
// route" alone leaves the caller comparing paths that look the same. A /v1 route is
// named only to a caller with one of keys, as everything under /v1 is.
func notFound(root chi.Routes, keys tenant.Keys) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		detail := "no such route"
		if alt := cleanPath(escapedPath(r)); alt != escapedPath(r) && (!underV1(alt) || authorized(r, keys)) {
			if methods := methodsAt(root, alt); len(methods) > 0 {
				detail = fmt.Sprintf("no such route; %s is one (%s): paths are matched exactly, without a trailing or a doubled slash",
					clipTo(alt, 256), strings.Join(methods, ", "))
			}
		}
		WriteProblem(w, r, NewProblem(http.StatusNotFound, CodeNotFound, detail))
	}
}

func underV1(path string) bool { return path == "/v1" || strings.HasPrefix(path, "/v1/") }

// authorized reports whether the request was authenticated under /v1, or carries one
// valid API key (a path outside /v1, such as "//v1/executions", is not authenticated).
func authorized(r *http.Request, keys tenant.Keys) bool {
	if st := stateOf(r.Context()); st != nil && st.authed {
		return true
	}
	lines := r.Header["Authorization"]
	if len(lines) != 1 {
		return false
	}
	key, ok := bearer(lines[0])
	if !ok {
		return false
	}
	_, ok = keys.Lookup(key)
	return ok
}

// escapedPath is the path the router matched: as sent, escapes kept.
func escapedPath(r *http.Request) string {
	if r.URL.RawPath != "" {
		return r.URL.RawPath
	}
	return r.URL.Path
}

// cleanPath is path with each run of slashes made one and without a trailing slash
// ("/" stays "/").
func cleanPath(path string) string {
	b := make([]byte, 0, len(path))
	for i := 0; i < len(path); i++ {
		if path[i] == '/' && len(b) > 0 && b[len(b)-1] == '/' {
			continue
		}
		b = append(b, path[i])
	}
	if len(b) > 1 && b[len(b)-1] == '/' {
		b = b[:len(b)-1]
	}
	return string(b)
}

// routedMethods are the methods the routers use, in the order Allow lists them.
var routedMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// allowedMethods lists the methods root serves on the request's path, HEAD with GET.
func allowedMethods(root chi.Routes, req *http.Request) string {
	return strings.Join(methodsAt(root, escapedPath(req)), ", ")
}

func methodsAt(root chi.Routes, path string) []string {
	var allowed []string
	for _, m := range routedMethods {
		if serves(root, m, path) || (m == http.MethodHead && serves(root, http.MethodGet, path)) {
			allowed = append(allowed, m)
		}
	}
	return allowed
}

// serves reports whether root has a route of method at path. chi's tree matches a
// mount's own path ("/admin", "/admin/") for every method: what is served there is the
// mounted router's "/".
func serves(root chi.Routes, method, path string) bool {
	for _, rt := range root.Routes() {
		if mount, ok := strings.CutSuffix(rt.Pattern, "/*"); ok && rt.SubRoutes != nil && (path == mount || path == mount+"/") {
			return serves(rt.SubRoutes, method, "/")
		}
	}
	return root.Match(chi.NewRouteContext(), method, path)
}

// routeMethod routes a HEAD request without a HEAD route of its own as its GET, as
// chi's middleware.GetHead does, but also at a mounted router's own path, which chi's
// tree matches for every method: there middleware.GetHead saw a route and let the HEAD
// through, to the mounted router's 405.
//
// It routes a method chi does not know (FOO, PROPFIND) as TRACE, which no route takes:
// chi would answer it at once with the root's 405 and an empty Allow, even where the
// path serves nothing (a 404) or belongs to a mounted router with answers of its own
// (the admin pages'). The answer still names the request's own method.
func routeMethod(root chi.Routes) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rctx := chi.RouteContext(r.Context())
			switch {
			case rctx == nil:
			case r.Method == http.MethodHead:
				path := rctx.RoutePath
				if path == "" {
					path = r.URL.RawPath
				}
				if path == "" {
					path = r.URL.Path
				}
				if !serves(root, http.MethodHead, path) {
					rctx.RouteMethod = http.MethodGet
				}
			case !slices.Contains(chiMethods, r.Method):
				rctx.RouteMethod = http.MethodTrace
			}
			next.ServeHTTP(w, r)
		})
	}
}

// chiMethods are the methods chi routes (its methodMap); routedMethods never has TRACE.
var chiMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace}

// prefixed registers routes with a path prefix on an inline router (see Deps.V1Hot).
type prefixed struct {
	chi.Router
	prefix string
}

func (p prefixed) Get(pattern string, h http.HandlerFunc)    { p.Router.Get(p.prefix+pattern, h) }
func (p prefixed) Post(pattern string, h http.HandlerFunc)   { p.Router.Post(p.prefix+pattern, h) }
func (p prefixed) Put(pattern string, h http.HandlerFunc)    { p.Router.Put(p.prefix+pattern, h) }
func (p prefixed) Patch(pattern string, h http.HandlerFunc)  { p.Router.Patch(p.prefix+pattern, h) }
func (p prefixed) Delete(pattern string, h http.HandlerFunc) { p.Router.Delete(p.prefix+pattern, h) }
func (p prefixed) Handle(pattern string, h http.Handler)     { p.Router.Handle(p.prefix+pattern, h) }
func (p prefixed) HandleFunc(pattern string, h http.HandlerFunc) {
	p.Router.HandleFunc(p.prefix+pattern, h)
}
func (p prefixed) Method(method, pattern string, h http.Handler) {
	p.Router.Method(method, p.prefix+pattern, h)
}
func (p prefixed) MethodFunc(method, pattern string, h http.HandlerFunc) {
	p.Router.MethodFunc(method, p.prefix+pattern, h)
}

// MetricsHandler serves the Prometheus exposition of g.
func MetricsHandler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

func healthz(w http.ResponseWriter, _ *http.Request) {
	WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// Readiness is what one readiness check found.
type Readiness struct {
	// Err says why the service cannot take traffic; nil means ready.
	Err error
	// PostgresDown is "unreachable" or "refused" when Err is only that Postgres does not
	// answer (or refuses the connection) and the schema was found current since the
	// process started: the service still serves what its memory caches hold.
	PostgresDown string
}

// excludePostgres is the one check /readyz?exclude= may leave out (as the apiserver's
// /readyz?exclude=etcd does).
const excludePostgres = "postgres"

// readyz answers the check. With ?exclude=postgres a Postgres outage alone is 200,
// degraded: a readiness probe on a shared dependency would take every replica out of
// the Service at once, though each still serves its cached executions.
func readyz(ready func(context.Context) Readiness) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// A query that does not parse (a bad escape, a semicolon) would drop the pair
		// silently, and a mistaken probe would pass as the full check.
		q, err := url.ParseQuery(r.URL.RawQuery)
		exclude, given := q["exclude"]
		if err != nil || (given && (len(exclude) != 1 || exclude[0] != excludePostgres)) {
			WriteProblem(w, r, NewProblem(http.StatusBadRequest, CodeBadRequest, `exclude: the only check that can be excluded is "postgres", given once`))
			return
		}
		var res Readiness
		if ready != nil {
			res = ready(r.Context())
		}
		switch {
		case res.Err == nil:
			WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
		case given && res.PostgresDown != "":
			WriteJSON(w, http.StatusOK, map[string]string{"status": "degraded", "postgres": res.PostgresDown})
		default:
			WriteProblem(w, r, NewProblem(http.StatusServiceUnavailable, CodeNotReady, res.Err.Error()))
		}
	}
}

// V1Middleware is the chain every /v1 request passes: API-key authentication first (a
// caller without a key learns nothing else: it is 401 whatever it sent), then the body
// limit and JSON only.
func V1Middleware(keys tenant.Keys) []func(http.Handler) http.Handler {
	return []func(http.Handler) http.Handler{authenticate(keys), limitBody, requireJSON}
}

// pathParam is the route parameter decoded: chi matches on the escaped path, so
// "1%2E4" names version 1.4, as RFC 3986 §6.2.2.2 says it does. One that does not
// decode is kept as sent, and names nothing.
func pathParam(r *http.Request, name string) string {
	raw := chi.URLParam(r, name)
	if v, err := url.PathUnescape(raw); err == nil {
		return v
	}
	return raw
}
