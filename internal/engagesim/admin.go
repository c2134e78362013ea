package engagesim

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// The admin API, for the running program (cmd/engagesim, noderuntime dev) what the Go
// methods are for tests. JSON in and out, no authentication: loopback only.
//
//	GET    /_sim/                                this index
//	GET    /_sim/faults                          faults in force
//	POST   /_sim/faults                          inject {op, latency:"250ms", status, retryAfter:"2s", reset, malformed, unknownStatus, noTid, times, percent} -> {id}
//	DELETE /_sim/faults                          clear all
//	DELETE /_sim/faults/{id}                     remove one
//	GET    /_sim/counters                        {calls, grants, invalidGrants}
//	DELETE /_sim/counters                        reset
//	POST   /_sim/users                           add {username, password, domain}
//	POST   /_sim/users/{username}/password       {password}: change it, revoke their tokens
//	POST   /_sim/users/{username}/revoke         revoke their tokens
//	POST   /_sim/clients                         add {id, secret, redirectUris}
//	POST   /_sim/tenants                         add {id, secret, domain}
//	POST   /_sim/tenants/{id}/secret             {secret}: change it, revoke its tokens
//	POST   /_sim/domains/{domain}/tokens         mint an access token -> {access_token}
//	GET    /_sim/domains/{domain}/conversations  list
//	POST   /_sim/domains/{domain}/conversations  seed a Conversation -> {id}
//	GET    /_sim/domains/{domain}/conversations/{id}
//	PUT    /_sim/domains/{domain}/conversations/{id}/status  {status}
const adminIndex = `engagesim admin API (JSON)
GET    /_sim/faults | POST /_sim/faults | DELETE /_sim/faults | DELETE /_sim/faults/{id}
GET    /_sim/counters | DELETE /_sim/counters
POST   /_sim/users | POST /_sim/users/{username}/password | POST /_sim/users/{username}/revoke
POST   /_sim/clients | POST /_sim/tenants | POST /_sim/tenants/{id}/secret
POST   /_sim/domains/{domain}/tokens
GET    /_sim/domains/{domain}/conversations | POST /_sim/domains/{domain}/conversations
GET    /_sim/domains/{domain}/conversations/{id} | PUT /_sim/domains/{domain}/conversations/{id}/status
`

// faultJSON is Fault with durations as Go duration strings ("250ms").
type faultJSON struct {
	Op            string  `json:"op,omitempty"`
	Latency       string  `json:"latency,omitempty"`
	Status        int     `json:"status,omitempty"`
	RetryAfter    string  `json:"retryAfter,omitempty"`
	Reset         bool    `json:"reset,omitempty"`
	Malformed     bool    `json:"malformed,omitempty"`
	UnknownStatus string  `json:"unknownStatus,omitempty"`
	NoTID         bool    `json:"noTid,omitempty"`
	Times         int     `json:"times,omitempty"`
	Percent       float64 `json:"percent,omitempty"`
	ID            int     `json:"id,omitempty"`
	Remaining     int     `json:"remaining,omitempty"`
}

func injectedFaultJSON(f InjectedFault) faultJSON {
	return faultJSON{Op: f.Op, Latency: durString(f.Latency), Status: f.Status, RetryAfter: durString(f.RetryAfter),
		Reset: f.Reset, Malformed: f.Malformed, UnknownStatus: f.UnknownStatus, NoTID: f.NoTID, Times: f.Times, Percent: f.Percent,
		ID: f.ID, Remaining: f.Remaining}
}

// fault is the Fault in is, not yet validated; ID and Remaining are not the caller's to
// set and are ignored.
func (in *faultJSON) fault() (Fault, error) {
	lat, err1 := parseDur(in.Latency)
	ra, err2 := parseDur(in.RetryAfter)
	if err := errors.Join(err1, err2); err != nil {
		return Fault{}, err
	}
	return Fault{Op: in.Op, Latency: lat, Status: in.Status, RetryAfter: ra, Reset: in.Reset,
		Malformed: in.Malformed, UnknownStatus: in.UnknownStatus, NoTID: in.NoTID, Times: in.Times, Percent: in.Percent}, nil
}

func durString(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

func parseDur(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	return time.ParseDuration(s)
}

func (s *Sim) adminRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /_sim/{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte(adminIndex))
	})

	mux.HandleFunc("GET /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		list := s.Faults()
		out := make([]faultJSON, len(list))
		for i, f := range list {
			out[i] = injectedFaultJSON(f)
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("POST /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		var in faultJSON
		if !adminDecode(w, r, &in) {
			return
		}
		f, err := in.fault()
		if err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		if err := f.validate(); err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		writeJSON(w, http.StatusCreated, map[string]int{"id": s.InjectFault(f)})
	})
	mux.HandleFunc("DELETE /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		s.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE /_sim/faults/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.Atoi(r.PathValue("id"))
		if err != nil || !s.RemoveFault(id) {
			adminError(w, http.StatusNotFound, "no such fault")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})

	mux.HandleFunc("GET /_sim/counters", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Counts())
	})
	mux.HandleFunc("DELETE /_sim/counters", func(w http.ResponseWriter, r *http.Request) {
		s.ResetCounters()
		w.WriteHeader(http.StatusNoContent)
	})

	mux.HandleFunc("POST /_sim/users", func(w http.ResponseWriter, r *http.Request) {
		var u User
		if !adminDecode(w, r, &u) {
			return
		}
		if u.Username == "" || u.Password == "" || u.Domain == "" {
			adminError(w, http.StatusBadRequest, "username, password and domain are required")
			return
		}
		s.AddUser(u)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /_sim/users/{username}/password", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Password string `json:"password"`
		}
		if !adminDecode(w, r, &in) {
			return
		}
		if in.Password == "" {
			adminError(w, http.StatusBadRequest, "password is required")
			return
		}
		adminResult(w, s.ChangePassword(r.PathValue("username"), in.Password))
	})
	mux.HandleFunc("POST /_sim/users/{username}/revoke", func(w http.ResponseWriter, r *http.Request) {
		adminResult(w, s.RevokeTokens(r.PathValue("username")))
	})
	mux.HandleFunc("POST /_sim/clients", func(w http.ResponseWriter, r *http.Request) {
		var c OAuthClient
		if !adminDecode(w, r, &c) {
			return
		}
		if c.ID == "" || c.Secret == "" || len(c.RedirectURIs) == 0 {
			adminError(w, http.StatusBadRequest, "id, secret and redirectUris are required")
			return
		}
		s.AddClient(c)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /_sim/tenants", func(w http.ResponseWriter, r *http.Request) {
		var t Tenant
		if !adminDecode(w, r, &t) {
			return
		}
		if t.ID == "" || t.Secret == "" || t.Domain == "" {
			adminError(w, http.StatusBadRequest, "id, secret and domain are required")
			return
		}
		s.AddTenant(t)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /_sim/tenants/{id}/secret", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Secret string `json:"secret"`
		}
		if !adminDecode(w, r, &in) {
			return
		}
		if in.Secret == "" {
			adminError(w, http.StatusBadRequest, "secret is required")
			return
		}
		adminResult(w, s.ChangeTenantSecret(r.PathValue("id"), in.Secret))
	})

	mux.HandleFunc("POST /_sim/domains/{domain}/tokens", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusCreated, map[string]string{"access_token": s.AccessToken(r.PathValue("domain"))})
	})
	mux.HandleFunc("GET /_sim/domains/{domain}/conversations", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Conversations(r.PathValue("domain")))
	})
	mux.HandleFunc("POST /_sim/domains/{domain}/conversations", func(w http.ResponseWriter, r *http.Request) {
		var c Conversation
		if !adminDecode(w, r, &c) {
			return
		}
		writeJSON(w, http.StatusCreated, map[string]string{"id": s.SeedConversation(r.PathValue("domain"), c)})
	})
	mux.HandleFunc("GET /_sim/domains/{domain}/conversations/{id}", func(w http.ResponseWriter, r *http.Request) {
		c, ok := s.Conversation(r.PathValue("domain"), r.PathValue("id"))
		if !ok {
			adminError(w, http.StatusNotFound, "no such conversation")
			return
		}
		writeJSON(w, http.StatusOK, c)
	})
	mux.HandleFunc("PUT /_sim/domains/{domain}/conversations/{id}/status", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Status string `json:"status"`
		}
		if !adminDecode(w, r, &in) {
			return
		}
		adminResult(w, s.SetStatus(r.PathValue("domain"), r.PathValue("id"), in.Status))
	})
}

func adminDecode(w http.ResponseWriter, r *http.Request, v any) bool {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		adminError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return false
	}
	return true
}

func adminError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func adminResult(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		adminError(w, http.StatusNotFound, err.Error())
	case err != nil:
		adminError(w, http.StatusInternalServerError, err.Error())
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}
