package app_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/noderuntime/noderuntime/internal/config"
	"github.com/noderuntime/noderuntime/internal/database/dbtest"
	"github.com/noderuntime/noderuntime/internal/secrets"
)

// The Webex login sends the user back to NODERUNTIME_PUBLIC_URL's /oauth/callback,
// the redirect URI registered with the integration: a public URL written with a
// trailing slash gives the same URI, not one with "//" that Webex would refuse.
func TestTheWebexLoginRedirectsToThePublicURLsCallbackWithOrWithoutATrailingSlash(t *testing.T) {
	t.Parallel()
	for name, publicURL := range map[string]string{
		"without a trailing slash": "https://noderuntime.example",
		"with a trailing slash":    "https://noderuntime.example/",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t, dbtest.NewURL(t))
			cfg.PublicURL = publicURL
			cfg.Webex = config.Webex{
				AuthorizeURL: "https://webexapis.example/v1/authorize", TokenURL: "https://webexapis.example/v1/access_token",
				ClientID: "noderuntime", ClientSecret: secrets.New("client-secret"), Scopes: []string{"spark:people_read"},
			}
			_, srv := serveApp(t, cfg, quietLogger())
			body, _ := json.Marshal(map[string]any{"name": "login", "kind": "webex-login", "baseUrl": cfg.EngageAllowedBases[0], "domain": "acme"})
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/authorizations", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer key")
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var created struct {
				AuthorizeURL string `json:"authorizeUrl"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&created); err != nil || resp.StatusCode != http.StatusCreated {
				t.Fatalf("create a webex-login authorization: %d %v", resp.StatusCode, err)
			}
			u, err := url.Parse(created.AuthorizeURL)
			if err != nil {
				t.Fatal(err)
			}
			if got := u.Query().Get("redirect_uri"); got != "https://noderuntime.example/oauth/callback" {
				t.Fatalf("redirect_uri %q, want https://noderuntime.example/oauth/callback", got)
			}
		})
	}
}
