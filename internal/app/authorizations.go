package app

import (
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/noderuntime/noderuntime/internal/adminsessions"
	"github.com/noderuntime/noderuntime/internal/authstore"
	"github.com/noderuntime/noderuntime/internal/httpapi"
)

// wireAuthorizations builds the authorization store (token cache, refresh under a row
// lock, LISTEN/NOTIFY listener) and adds its /v1 routes to deps. The returned function
// mounts the OAuth callback and the admin pages on the finished router.
func (a *App) wireAuthorizations(deps *httpapi.Deps) (func(chi.Router), error) {
	cfg := a.cfg
	redirect := ""
	if cfg.PublicURL != "" {
		redirect = strings.TrimRight(cfg.PublicURL, "/") + "/oauth/callback"
	}
	webex := authstore.Webex{
		AuthorizeURL: cfg.Webex.AuthorizeURL, TokenURL: cfg.Webex.TokenURL,
		ClientID: cfg.Webex.ClientID, ClientSecret: cfg.Webex.ClientSecret,
		Scopes: cfg.Webex.Scopes, RedirectURL: redirect,
	}
	store, err := authstore.New(authstore.Options{
		Pool:            a.pool,
		Keys:            cfg.EncryptionKeys,
		Logger:          a.belowRequests(),
		Registerer:      a.registry,
		AllowedBaseURLs: cfg.EngageAllowedBases,
		Webex:           webex,
		RefreshSkew:     cfg.TokenRefreshSkew,
		// A refresh must fail inside the deadline of the execution that waits for it.
		RefreshTimeout: min(authstore.DefaultRefreshTimeout, cfg.ExecutionTimeout/2),
	})
	if err != nil {
		return nil, err
	}
	a.auth = store
	deps.V1 = append(deps.V1, httpapi.AuthorizationRoutes(store, a.logger))
	return func(r chi.Router) {
		httpapi.MountAuthorizationPages(r, httpapi.PagesDeps{
			Store: store, Keys: cfg.EncryptionKeys, APIKeys: cfg.APIKeys, Logger: a.logger,
			AllowedBaseURLs: cfg.EngageAllowedBases, WebexEnabled: webex.Enabled() && redirect != "",
			SecureCookies: strings.HasPrefix(cfg.PublicURL, "https://"),
			SignOuts:      adminsessions.New(a.pool),
		})
	}, nil
}

// Authorizations is the authorization store: the execution path's token source.
func (a *App) Authorizations() *authstore.Store { return a.auth }
