package engagesim

import "net/http"

// routes lays out every endpoint; Engage's part follows ENGAGE.md §4.
func (s *Sim) routes() http.Handler {
	mux := http.NewServeMux()

	mux.HandleFunc("/oauth/authorize", s.handleAuthorize)
	mux.HandleFunc("/oauth/token", s.handleToken)
	mux.HandleFunc("/api/v1/oauth/token", s.handleClientCredentials)

	const conv = "/api/v1/{domain}/conversations"
	mux.HandleFunc("POST "+conv+"/search", s.api(OpSearch, s.handleSearch))
	mux.HandleFunc("POST "+conv, s.api(OpCreate, s.handleCreate))
	mux.HandleFunc("POST "+conv+"/{id}/messages", s.api(OpAppend, s.handleAppend))
	mux.HandleFunc("PATCH "+conv+"/{id}", s.api(OpUpdate, s.handleUpdate))
	mux.HandleFunc("POST "+conv+"/{id}/close", s.api(OpClose, s.handleClose))
	mux.HandleFunc("POST "+conv+"/{id}/participants", s.api(OpAddParticipant, s.handleAddParticipant))
	mux.HandleFunc("DELETE "+conv+"/{id}/participants/{participant}", s.api(OpRemoveParticipant, s.handleRemoveParticipant))
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		fail(w, http.StatusNotFound, CodeNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path)
	})

	s.adminRoutes(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.inflight.Add(1)
		defer s.inflight.Add(-1)
		mux.ServeHTTP(w, r)
	})
}

// InFlight is the number of requests being served now. Tests wait for it to drop to 0
// to see that no handler outlives its caller.
func (s *Sim) InFlight() int { return int(s.inflight.Load()) }
