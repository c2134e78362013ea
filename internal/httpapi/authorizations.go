package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/noderuntime/noderuntime/internal/authstore"
	"github.com/noderuntime/noderuntime/internal/secrets"
)

// AuthorizationRoutes serves the authorizations API under /v1 (DESIGN.md
// "Authorizations"). Answers never contain a secret or a token.
func AuthorizationRoutes(store *authstore.Store, logger *slog.Logger) func(chi.Router) {
	h := &authorizationHandlers{store: store, logger: logger}
	return func(r chi.Router) {
		r.Post("/authorizations", h.create)
		r.Get("/authorizations", h.list)
		r.Get("/authorizations/{id}", h.get)
		r.Delete("/authorizations/{id}", h.delete)
		r.Post("/authorizations/{id}/reauthorize", h.reauthorize)
	}
}

type authorizationHandlers struct {
	store  *authstore.Store
	logger *slog.Logger
}

// createAuthorizationRequest is the body of POST /v1/authorizations. The optional
// fields are pointers: a field given is given, even empty (see given).
type createAuthorizationRequest struct {
	Name         string  `json:"name"`
	Kind         string  `json:"kind"`
	Region       *string `json:"region"`
	BaseURL      *string `json:"baseUrl"`
	Domain       string  `json:"domain"`
	TenantID     *string `json:"tenantId"`
	TenantSecret *string `json:"tenantSecret"`
}

// given refuses what CreateAuthorization refuses by the fields given, whatever their
// value: both region and baseUrl (its oneOf), or a Webex login with a tenantId or
// tenantSecret (its else); and a region not of its enum as written ("US", " us"). The
// store, which also serves the admin form (where a field left empty is one not given),
// takes an empty value for none and reads a region leniently, and would have stored
// what the request did not say.
func (b *createAuthorizationRequest) given() error {
	switch {
	case b.Region != nil && b.BaseURL != nil:
		return &authstore.Error{Code: authstore.ErrInvalid, Message: "give either region or baseUrl, not both"}
	case utf8.RuneCountInString(b.Name) > maxNameChars:
		// maxLength counts what was sent, before the store trims it.
		return &authstore.Error{Code: authstore.ErrInvalid, Message: fmt.Sprintf("name is longer than %d characters", maxNameChars)}
	case b.TenantID != nil && utf8.RuneCountInString(*b.TenantID) > maxTenantIDChars:
		return errTenantIDLength
	case b.Region != nil && !slices.Contains(authstore.Regions(), *b.Region):
		return &authstore.Error{Code: authstore.ErrInvalid, Message: fmt.Sprintf("unknown region %q; want one of %s, or a baseUrl", clipValue(*b.Region), strings.Join(authstore.Regions(), ", "))}
	case authstore.Kind(b.Kind) == authstore.KindWebexLogin && (b.TenantID != nil || b.TenantSecret != nil):
		return &authstore.Error{Code: authstore.ErrInvalid, Message: "tenantId and tenantSecret are for client-credentials; a webex-login gets its tokens from the Webex login, so leave them out"}
	}
	return nil
}

// The maxLength of CreateAuthorization's name and of tenantId, in characters as sent
// (the store holds the trimmed value to its own limits).
const (
	maxNameChars     = 100
	maxTenantIDChars = 256
)

var errTenantIDLength = &authstore.Error{Code: authstore.ErrInvalid, Message: fmt.Sprintf("tenantId is longer than %d characters", maxTenantIDChars)}

// reauthorizeRequest is the optional body of POST /v1/authorizations/{id}/reauthorize;
// its fields are pointers, so that one given empty is still given (a Webex login takes
// neither).
type reauthorizeRequest struct {
	TenantID     *string `json:"tenantId"`
	TenantSecret *string `json:"tenantSecret"`
}

func (h *authorizationHandlers) create(w http.ResponseWriter, r *http.Request) {
	var body createAuthorizationRequest
	if !DecodeJSON(w, r, &body) {
		return
	}
	if err := body.given(); err != nil {
		h.fail(w, r, err)
		return
	}
	t, _ := Tenant(r.Context())
	started, err := h.store.Create(r.Context(), t, authstore.ActorAPI, authstore.CreateRequest{
		Name: body.Name, Kind: authstore.Kind(body.Kind), Region: value(body.Region), BaseURL: value(body.BaseURL),
		Domain: body.Domain, TenantID: value(body.TenantID), TenantSecret: secrets.New(value(body.TenantSecret)),
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	AnnotateLog(r.Context(), slog.String("authorizationId", started.ID))
	w.Header().Set("Location", "/v1/authorizations/"+started.ID)
	WriteJSON(w, http.StatusCreated, started)
}

func (h *authorizationHandlers) list(w http.ResponseWriter, r *http.Request) {
	t, _ := Tenant(r.Context())
	list, err := h.store.List(r.Context(), t)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, map[string]any{"authorizations": list})
}

func (h *authorizationHandlers) get(w http.ResponseWriter, r *http.Request) {
	t, _ := Tenant(r.Context())
	a, err := h.store.Get(r.Context(), t, pathParam(r, "id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, a)
}

func (h *authorizationHandlers) delete(w http.ResponseWriter, r *http.Request) {
	t, _ := Tenant(r.Context())
	id := pathParam(r, "id")
	if err := h.store.Delete(r.Context(), t, authstore.ActorAPI, id); err != nil {
		h.fail(w, r, err)
		return
	}
	AnnotateLog(r.Context(), slog.String("authorizationId", id))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

func (h *authorizationHandlers) reauthorize(w http.ResponseWriter, r *http.Request) {
	// The body is optional: none, an empty one (also when chunked) or only white space
	// keeps the stored credentials.
	var body reauthorizeRequest
	raw, ok := readBody(w, r)
	if !ok {
		return
	}
	if len(bytes.TrimSpace(raw)) > 0 && !decodeBytes(w, r, raw, &body) {
		return
	}
	if body.TenantID != nil && utf8.RuneCountInString(*body.TenantID) > maxTenantIDChars {
		h.fail(w, r, errTenantIDLength)
		return
	}
	t, _ := Tenant(r.Context())
	id := pathParam(r, "id")
	started, err := h.store.Reauthorize(r.Context(), t, authstore.ActorAPI, id, authstore.ReauthorizeRequest{
		TenantID: value(body.TenantID), TenantSecret: secrets.New(value(body.TenantSecret)),
		CredentialsGiven: body.TenantID != nil || body.TenantSecret != nil,
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	AnnotateLog(r.Context(), slog.String("authorizationId", started.ID))
	WriteJSON(w, http.StatusOK, started)
}

// fail answers a store error as a problem. The store's messages are safe to show; an
// unexpected error is logged and answered as a bare 500.
func (h *authorizationHandlers) fail(w http.ResponseWriter, r *http.Request, err error) {
	WriteProblem(w, r, authorizationProblem(r, h.logger, err))
}

func authorizationProblem(r *http.Request, logger *slog.Logger, err error) Problem {
	e, ok := errors.AsType[*authstore.Error](err)
	if !ok {
		logger.ErrorContext(r.Context(), "authorization request failed",
			slog.String("requestId", RequestID(r.Context())), slog.String("error", err.Error()))
		return NewProblem(http.StatusInternalServerError, CodeInternal, "an internal error occurred; the request ID identifies it in the logs")
	}
	var p Problem
	switch e.Code {
	case authstore.ErrNotFound:
		p = NewProblem(http.StatusNotFound, CodeNotFound, e.Message)
	case authstore.ErrConflict:
		p = NewProblem(http.StatusConflict, CodeConflict, e.Message)
	case authstore.ErrProviderUnavailable:
		p = NewProblem(http.StatusBadGateway, CodeUnavailable, e.Message)
	default:
		p = NewProblem(http.StatusUnprocessableEntity, CodeUnprocessable, e.Message)
	}
	p.Extra = map[string]any{"reason": e.Code}
	if e.ProviderError != "" {
		p.Extra["providerError"] = e.ProviderError
	}
	if e.ProviderDescription != "" {
		p.Extra["providerDescription"] = e.ProviderDescription
	}
	return p
}

// value is the string p points to, "" for none.
func value(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
