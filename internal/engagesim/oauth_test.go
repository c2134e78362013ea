package engagesim_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/noderuntime/noderuntime/internal/engagesim"
)

func TestWebexLoginCodeFlowWithPKCEIssuesRotatingTokens(t *testing.T) {
	t.Parallel()
	for name, style := range map[string]oauth2.AuthStyle{"client_secret_basic": oauth2.AuthStyleInHeader, "client_secret_post": oauth2.AuthStyleInParams} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sim := engagesim.Start(t, baseConfig())
			conf := oauthConfig(sim, style)
			tok := codeFlow(t, conf)
			if tok.AccessToken == "" || tok.RefreshToken == "" || tok.TokenType != "Bearer" || tok.Extra("scope") != "cjp:config_read" {
				t.Fatalf("token %+v", tok)
			}
			if d := time.Until(tok.Expiry); d < 59*time.Minute || d > 61*time.Minute {
				t.Fatalf("expires in %v, want an hour", d)
			}
			if st := searchStatus(t, sim, domain, tok.AccessToken); st != http.StatusOK {
				t.Fatalf("search with the new token: %d", st)
			}
			if st := searchStatus(t, sim, "globex", tok.AccessToken); st != http.StatusForbidden {
				t.Fatalf("search on another domain: %d", st)
			}

			next, err := conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
			if err != nil {
				t.Fatal(err)
			}
			if next.RefreshToken == "" || next.RefreshToken == tok.RefreshToken || next.AccessToken == tok.AccessToken {
				t.Fatalf("refresh did not rotate: %+v", next)
			}
			if st := searchStatus(t, sim, domain, next.AccessToken); st != http.StatusOK {
				t.Fatalf("search with the refreshed token: %d", st)
			}
			if g := sim.Grants(engagesim.GrantAuthorizationCode); g != 1 {
				t.Errorf("authorization_code grants %d", g)
			}
			if g := sim.Grants(engagesim.GrantRefreshToken); g != 1 {
				t.Errorf("refresh_token grants %d", g)
			}
			if n := sim.Calls(engagesim.OpToken); n != 2 {
				t.Errorf("token calls %d", n)
			}
		})
	}
}

func TestReusedRefreshTokenIsInvalidGrantAndRevokesTheFamily(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, baseConfig())
	conf := oauthConfig(sim, oauth2.AuthStyleInHeader)
	first := codeFlow(t, conf)
	second, err := conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: first.RefreshToken}).Token()
	if err != nil {
		t.Fatal(err)
	}
	_, err = conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: first.RefreshToken}).Token()
	wantOAuthError(t, err, "invalid_grant", http.StatusBadRequest)
	// The whole family is gone: the newest refresh token and every access token.
	_, err = conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: second.RefreshToken}).Token()
	wantOAuthError(t, err, "invalid_grant", http.StatusBadRequest)
	for _, at := range []string{first.AccessToken, second.AccessToken} {
		if st := searchStatus(t, sim, domain, at); st != http.StatusUnauthorized {
			t.Errorf("access token after family revocation: %d", st)
		}
	}
	if n := sim.InvalidGrants(); n != 2 {
		t.Errorf("invalid grants %d, want 2", n)
	}
	// Another login is another family, untouched.
	if st := searchStatus(t, sim, domain, codeFlow(t, conf).AccessToken); st != http.StatusOK {
		t.Errorf("new login: %d", st)
	}
}

// Without rotation the answer has no refresh_token (read raw: the oauth2 package would
// fill the old one in) and the refresh token presented keeps working.
func TestWithoutRotationARefreshAnswersNoRefreshTokenAndKeepsTheOldOneValid(t *testing.T) {
	t.Parallel()
	cfg := baseConfig()
	cfg.NoRefreshTokenRotation = true
	sim := engagesim.Start(t, cfg)
	tok := codeFlow(t, oauthConfig(sim, oauth2.AuthStyleInHeader))
	for i := range 3 {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, sim.TokenURL(),
			strings.NewReader(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(clientID, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("refresh %d: HTTP %d %v %v", i, resp.StatusCode, body, err)
		}
		if _, ok := body["refresh_token"]; ok {
			t.Fatalf("refresh %d answered a refresh_token", i)
		}
		at, _ := body["access_token"].(string)
		if at == "" || at == tok.AccessToken || searchStatus(t, sim, domain, at) != http.StatusOK {
			t.Fatalf("refresh %d: no working new access token", i)
		}
	}
	if n := sim.InvalidGrants(); n != 0 {
		t.Fatalf("%d invalid_grant answers, want 0", n)
	}
}

func TestUnregisteredRedirectURIIsRefusedWithoutRedirecting(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, baseConfig())
	bad := oauthConfig(sim, oauth2.AuthStyleInHeader)
	for name, ru := range map[string]string{"other host": "http://evil.example/cb", "prefix only": redirectURI + "/x", "missing": ""} {
		bad.RedirectURL = ru
		resp, err := noRedirects.Get(bad.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || !strings.Contains(string(body), "invalid_request") {
			t.Errorf("%s: %d %q %s", name, resp.StatusCode, resp.Header.Get("Location"), body)
		}
	}
}

func TestCodeExchangedWithAnotherRedirectURIIsInvalidGrant(t *testing.T) {
	t.Parallel()
	cfg := baseConfig()
	cfg.Clients[0].RedirectURIs = append(cfg.Clients[0].RedirectURIs, "http://127.0.0.1:9/other")
	sim := engagesim.Start(t, cfg)
	conf := oauthConfig(sim, oauth2.AuthStyleInHeader)
	verifier := oauth2.GenerateVerifier()
	loc := login(t, conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)), "ada", "lovelace", "login")
	conf.RedirectURL = "http://127.0.0.1:9/other"
	_, err := conf.Exchange(t.Context(), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	wantOAuthError(t, err, "invalid_grant", http.StatusBadRequest)
}

func TestReusedCodeIsInvalidGrantAndRevokesWhatItIssued(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, baseConfig())
	conf := oauthConfig(sim, oauth2.AuthStyleInParams)
	verifier := oauth2.GenerateVerifier()
	loc := login(t, conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)), "ada", "lovelace", "login")
	code := loc.Query().Get("code")
	tok, err := conf.Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	_, err = conf.Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
	wantOAuthError(t, err, "invalid_grant", http.StatusBadRequest)
	if st := searchStatus(t, sim, domain, tok.AccessToken); st != http.StatusUnauthorized {
		t.Errorf("access token from a replayed code: %d", st)
	}
	_, err = conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	wantOAuthError(t, err, "invalid_grant", http.StatusBadRequest)
}

func TestWrongOrMissingVerifierIsRefused(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, baseConfig())
	conf := oauthConfig(sim, oauth2.AuthStyleInHeader)
	verifier := oauth2.GenerateVerifier()
	code := login(t, conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)), "ada", "lovelace", "login").Query().Get("code")
	_, err := conf.Exchange(t.Context(), code)
	wantOAuthError(t, err, "invalid_request", http.StatusBadRequest)
	_, err = conf.Exchange(t.Context(), code, oauth2.VerifierOption(oauth2.GenerateVerifier()))
	wantOAuthError(t, err, "invalid_grant", http.StatusBadRequest)
	_, err = conf.Exchange(t.Context(), code, oauth2.VerifierOption("short"))
	wantOAuthError(t, err, "invalid_grant", http.StatusBadRequest)
	if g := sim.Grants(engagesim.GrantAuthorizationCode); g != 0 {
		t.Fatalf("grants %d", g)
	}
}

func TestExpiredCodeIsInvalidGrant(t *testing.T) {
	t.Parallel()
	clk := newClock()
	cfg := baseConfig()
	cfg.Now, cfg.CodeTTL = clk.Now, 30*time.Second
	sim := engagesim.Start(t, cfg)
	conf := oauthConfig(sim, oauth2.AuthStyleInHeader)
	verifier := oauth2.GenerateVerifier()
	code := login(t, conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)), "ada", "lovelace", "login").Query().Get("code")
	clk.Advance(30 * time.Second)
	_, err := conf.Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
	wantOAuthError(t, err, "invalid_grant", http.StatusBadRequest)
}

func TestAuthorizeRequiresPKCES256AndStateAndAnswersOnTheRedirect(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, baseConfig())
	conf := oauthConfig(sim, oauth2.AuthStyleInHeader)
	verifier := oauth2.GenerateVerifier()
	for name, tc := range map[string]struct {
		url, err string
	}{
		"no PKCE":        {conf.AuthCodeURL("st"), "invalid_request"},
		"plain PKCE":     {conf.AuthCodeURL("st", oauth2.SetAuthURLParam("code_challenge", verifier), oauth2.SetAuthURLParam("code_challenge_method", "plain")), "invalid_request"},
		"no state":       {conf.AuthCodeURL("", oauth2.S256ChallengeOption(verifier)), "invalid_request"},
		"token flow":     {conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("response_type", "token")), "unsupported_response_type"},
		"junk challenge": {conf.AuthCodeURL("st", oauth2.SetAuthURLParam("code_challenge", "abc"), oauth2.SetAuthURLParam("code_challenge_method", "S256")), "invalid_request"},
	} {
		resp, err := noRedirects.Get(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || loc == nil || !strings.HasPrefix(loc.String(), redirectURI) || loc.Query().Get("error") != tc.err {
			t.Errorf("%s: %d %s", name, resp.StatusCode, loc)
		}
	}
}

func TestLoginFormRefusesWrongPasswordAndReportsCancel(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, baseConfig())
	conf := oauthConfig(sim, oauth2.AuthStyleInHeader)
	authURL := conf.AuthCodeURL("st-9", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))

	loc := login(t, authURL, "ada", "", "cancel")
	if loc.Query().Get("error") != "access_denied" || loc.Query().Get("state") != "st-9" || loc.Query().Get("code") != "" {
		t.Fatalf("cancel redirected to %s", loc)
	}

	q, _ := url.Parse(authURL)
	form := q.Query()
	form.Set("username", "ada")
	form.Set("password", "wrong")
	form.Set("action", "login")
	resp, err := noRedirects.PostForm(sim.AuthorizeURL(), form)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Location") != "" || !strings.Contains(string(body), `id="error"`) {
		t.Fatalf("wrong password: %d %s", resp.StatusCode, body)
	}
}

func TestChangedCredentialsRevokeEveryToken(t *testing.T) {
	t.Parallel()
	for name, change := range map[string]func(*engagesim.Sim) error{
		"password changed": func(s *engagesim.Sim) error { return s.ChangePassword("ada", "babbage") },
		"tokens revoked":   func(s *engagesim.Sim) error { return s.RevokeTokens("ada") },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sim := engagesim.Start(t, baseConfig())
			conf := oauthConfig(sim, oauth2.AuthStyleInHeader)
			tok := codeFlow(t, conf)
			if err := change(sim); err != nil {
				t.Fatal(err)
			}
			_, err := conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
			wantOAuthError(t, err, "invalid_grant", http.StatusBadRequest)
			if st := searchStatus(t, sim, domain, tok.AccessToken); st != http.StatusUnauthorized {
				t.Fatalf("access token after the change: %d", st)
			}
		})
	}
	sim := engagesim.Start(t, baseConfig())
	if err := sim.ChangePassword("nobody", "x"); err == nil {
		t.Fatal("changing an unknown user's password succeeded")
	}
}

func TestTokenEndpointAuthenticatesTheClient(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, baseConfig())
	for name, style := range map[string]oauth2.AuthStyle{"basic": oauth2.AuthStyleInHeader, "post": oauth2.AuthStyleInParams} {
		conf := oauthConfig(sim, style)
		conf.ClientSecret = "wrong"
		_, err := conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: "x"}).Token()
		wantOAuthError(t, err, "invalid_client", http.StatusUnauthorized)
		conf.ClientID, conf.ClientSecret = "stranger", secret
		_, err = conf.Exchange(t.Context(), "code", oauth2.VerifierOption(oauth2.GenerateVerifier()))
		wantOAuthError(t, err, "invalid_client", http.StatusUnauthorized)
		_ = name
	}
	post := func(form url.Values, basic bool) (int, string) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, sim.TokenURL(), strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if basic {
			req.SetBasicAuth(clientID, secret)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for name, tc := range map[string]struct {
		form  url.Values
		basic bool
		want  string
	}{
		"both methods":                  {url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "client_id": {clientID}, "client_secret": {secret}}, true, `"invalid_request"`},
		"another client_id in the body": {url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "client_id": {"stranger"}}, true, `"invalid_request"`},
		"no client authentication":      {url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}, false, `"invalid_client"`},
		"unknown grant type":            {url.Values{"grant_type": {"password"}}, true, `"unsupported_grant_type"`},
		"client credentials at login":   {url.Values{"grant_type": {"client_credentials"}}, true, `"unauthorized_client"`},
		"no grant type":                 {url.Values{}, true, `"invalid_request"`},
		"unknown refresh token":         {url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}, true, `"invalid_grant"`},
	} {
		st, body := post(tc.form, tc.basic)
		if st/100 != 4 || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s", name, st, body)
		}
	}
}

func TestAccessTokensExpireAfterTheirLifetime(t *testing.T) {
	t.Parallel()
	clk := newClock()
	cfg := baseConfig()
	cfg.Now, cfg.AccessTokenTTL = clk.Now, time.Second
	sim := engagesim.Start(t, cfg)
	conf := oauthConfig(sim, oauth2.AuthStyleInHeader)
	tok := codeFlow(t, conf)
	if d := time.Until(tok.Expiry); d > 2*time.Second {
		t.Fatalf("expires in %v, want about a second", d)
	}
	if st := searchStatus(t, sim, domain, tok.AccessToken); st != http.StatusOK {
		t.Fatalf("fresh token: %d", st)
	}
	clk.Advance(time.Second)
	if st := searchStatus(t, sim, domain, tok.AccessToken); st != http.StatusUnauthorized {
		t.Fatalf("expired token: %d", st)
	}
	// The refresh token outlives it.
	next, err := conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil {
		t.Fatal(err)
	}
	if st := searchStatus(t, sim, domain, next.AccessToken); st != http.StatusOK {
		t.Fatalf("refreshed token: %d", st)
	}
}

func TestClientCredentialsIssueDomainTokensWithoutRefresh(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, baseConfig())
	for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
		cc := &clientcredentials.Config{ClientID: "tenant-1", ClientSecret: "tsecret", TokenURL: sim.ClientCredentialsTokenURL(), AuthStyle: style}
		tok, err := cc.Token(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if tok.RefreshToken != "" || tok.TokenType != "Bearer" {
			t.Fatalf("token %+v", tok)
		}
		if d := time.Until(tok.Expiry); d < 3590*time.Second || d > 3601*time.Second {
			t.Fatalf("expires in %v, want 3600 s", d)
		}
		if st := searchStatus(t, sim, domain, tok.AccessToken); st != http.StatusOK {
			t.Fatalf("search: %d", st)
		}
		if st := searchStatus(t, sim, "globex", tok.AccessToken); st != http.StatusForbidden {
			t.Fatalf("search on another domain: %d", st)
		}
	}
	if g := sim.Grants(engagesim.GrantClientCredentials); g != 2 {
		t.Errorf("grants %d", g)
	}
}

func TestClientCredentialsRefuseWrongSecretsAndChangedSecrets(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, baseConfig())
	cc := &clientcredentials.Config{ClientID: "tenant-1", ClientSecret: "wrong", TokenURL: sim.ClientCredentialsTokenURL(), AuthStyle: oauth2.AuthStyleInParams}
	_, err := cc.Token(t.Context())
	wantOAuthError(t, err, "invalid_client", http.StatusUnauthorized)

	cc.ClientSecret = "tsecret"
	tok, err := cc.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.ChangeTenantSecret("tenant-1", "rotated"); err != nil {
		t.Fatal(err)
	}
	if st := searchStatus(t, sim, domain, tok.AccessToken); st != http.StatusUnauthorized {
		t.Fatalf("token after the secret changed: %d", st)
	}
	_, err = cc.Token(t.Context())
	wantOAuthError(t, err, "invalid_client", http.StatusUnauthorized)
	cc.ClientSecret = "rotated"
	if _, err := cc.Token(t.Context()); err != nil {
		t.Fatalf("new secret: %v", err)
	}
	// The login users' endpoint does not take tenants, and this one takes only client_credentials.
	login := oauthConfig(sim, oauth2.AuthStyleInHeader)
	login.Endpoint.TokenURL = sim.ClientCredentialsTokenURL()
	login.ClientID, login.ClientSecret = "tenant-1", "rotated"
	_, err = login.TokenSource(t.Context(), &oauth2.Token{RefreshToken: "x"}).Token()
	wantOAuthError(t, err, "unsupported_grant_type", http.StatusBadRequest)
}

// A code and a refresh token belong to the client they were issued to (RFC 6749 §4.1.3,
// §6): another registered client presenting them gets invalid_grant, and its attempt
// spends or revokes nothing of the rightful client's.
func TestCodesAndRefreshTokensBelongToTheirClient(t *testing.T) {
	t.Parallel()
	cfg := baseConfig()
	cfg.Clients = append(cfg.Clients, engagesim.OAuthClient{ID: "intruder", Secret: "x", RedirectURIs: []string{redirectURI}})
	sim := engagesim.Start(t, cfg)
	conf := oauthConfig(sim, oauth2.AuthStyleInHeader)
	other := oauthConfig(sim, oauth2.AuthStyleInHeader)
	other.ClientID, other.ClientSecret = "intruder", "x"
	verifier := oauth2.GenerateVerifier()
	code := login(t, conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)), "ada", "lovelace", "login").Query().Get("code")
	_, err := other.Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
	wantOAuthError(t, err, "invalid_grant", http.StatusBadRequest)
	tok, err := conf.Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("the rightful client after another's try: %v", err)
	}
	_, err = other.TokenSource(t.Context(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	wantOAuthError(t, err, "invalid_grant", http.StatusBadRequest)
	if _, err := conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err != nil {
		t.Fatalf("the rightful client's refresh after another's try: %v", err)
	}
}

// A code whose user changed their password before it was exchanged is spent
// (invalid_grant), as every token of that user is.
func TestACodeDiesWithItsUsersCredentials(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, baseConfig())
	conf := oauthConfig(sim, oauth2.AuthStyleInHeader)
	verifier := oauth2.GenerateVerifier()
	code := login(t, conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)), "ada", "lovelace", "login").Query().Get("code")
	if err := sim.ChangePassword("ada", "babbage"); err != nil {
		t.Fatal(err)
	}
	_, err := conf.Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
	wantOAuthError(t, err, "invalid_grant", http.StatusBadRequest)
}

// With RefreshTokenTTL a refresh token expires (invalid_grant, the runtime's
// needs_reauthorization); each rotation starts a new one's lifetime.
func TestRefreshTokensExpireAfterRefreshTokenTTL(t *testing.T) {
	t.Parallel()
	clk := newClock()
	cfg := baseConfig()
	cfg.Now, cfg.RefreshTokenTTL = clk.Now, time.Hour
	sim := engagesim.Start(t, cfg)
	conf := oauthConfig(sim, oauth2.AuthStyleInHeader)
	tok := codeFlow(t, conf)
	clk.Advance(59 * time.Minute)
	next, err := conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil {
		t.Fatalf("refresh within its lifetime: %v", err)
	}
	clk.Advance(time.Hour)
	_, err = conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: next.RefreshToken}).Token()
	wantOAuthError(t, err, "invalid_grant", http.StatusBadRequest)
}

// A refresh may ask for the scope granted or less, never more (RFC 6749 §6).
func TestARefreshCannotWidenTheScope(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, baseConfig())
	tok := codeFlow(t, oauthConfig(sim, oauth2.AuthStyleInHeader))
	refresh := func(scope string) (int, string) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, sim.TokenURL(), strings.NewReader(url.Values{
			"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "scope": {scope}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(clientID, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, body := refresh("cjp:config_read spark:all"); st != http.StatusBadRequest || !strings.Contains(body, `"invalid_scope"`) {
		t.Fatalf("wider scope: %d %s", st, body)
	}
	if st, body := refresh("cjp:config_read"); st != http.StatusOK {
		t.Fatalf("the granted scope: %d %s", st, body)
	}
}

// Client-credentials tokens live ClientCredentialsTTL (ENGAGE.md §5: 3600 s by
// default), not the Webex login's lifetime, and say so in expires_in.
func TestClientCredentialsTokensLiveTheirOwnLifetime(t *testing.T) {
	t.Parallel()
	clk := newClock()
	cfg := baseConfig()
	cfg.Now, cfg.ClientCredentialsTTL = clk.Now, 2*time.Second
	sim := engagesim.Start(t, cfg)
	cc := &clientcredentials.Config{ClientID: "tenant-1", ClientSecret: "tsecret", TokenURL: sim.ClientCredentialsTokenURL(), AuthStyle: oauth2.AuthStyleInHeader}
	tok, err := cc.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(tok.Expiry); d > 3*time.Second {
		t.Fatalf("expires in %v, want 2 s", d)
	}
	if st := searchStatus(t, sim, domain, tok.AccessToken); st != http.StatusOK {
		t.Fatalf("fresh token: %d", st)
	}
	clk.Advance(2 * time.Second)
	if st := searchStatus(t, sim, domain, tok.AccessToken); st != http.StatusUnauthorized {
		t.Fatalf("token past its lifetime: %d", st)
	}
}

// The sweep of dead tokens that bounds a long-running simulator never takes a live one.
func TestTheSweepOfDeadTokensKeepsLiveOnes(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, baseConfig())
	first := sim.AccessToken(domain)
	for range 5000 {
		sim.AccessToken(domain)
	}
	if st := searchStatus(t, sim, domain, first); st != http.StatusOK {
		t.Fatalf("a live token after the sweep: %d", st)
	}
}

// A code_verifier must be 43 to 128 unreserved characters (RFC 7636 §4.1), even when its
// hash matches the challenge: a client that makes short verifiers must fail here.
func TestAShortVerifierIsRefusedEvenWhenItMatches(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, baseConfig())
	conf := oauthConfig(sim, oauth2.AuthStyleInHeader)
	const verifier = "too-short-but-matching"
	code := login(t, conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)), "ada", "lovelace", "login").Query().Get("code")
	_, err := conf.Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
	wantOAuthError(t, err, "invalid_grant", http.StatusBadRequest)
}

// The login form's POST is checked as its GET is: a form whose hidden fields were
// changed to an unregistered redirect URI, or without PKCE, gets no code.
func TestASignInWithTamperedFieldsGetsNoCode(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, baseConfig())
	conf := oauthConfig(sim, oauth2.AuthStyleInHeader)
	u, _ := url.Parse(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	for name, tamper := range map[string]func(url.Values){
		"unregistered redirect_uri": func(f url.Values) { f.Set("redirect_uri", "http://evil.example/cb") },
		"no code_challenge":         func(f url.Values) { f.Del("code_challenge") },
	} {
		form := u.Query()
		form.Set("username", "ada")
		form.Set("password", "lovelace")
		form.Set("action", "login")
		tamper(form)
		resp, err := noRedirects.PostForm(sim.AuthorizeURL(), form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if loc != nil && (loc.Query().Get("code") != "" || strings.HasPrefix(loc.String(), "http://evil.example")) {
			t.Errorf("%s: %d redirected to %s", name, resp.StatusCode, loc)
		}
	}
}

// A code_verifier longer than 128 characters, or with a character outside the unreserved
// set, is refused even when its hash matches (RFC 7636 §4.1), as a short one is.
func TestAVerifierOutsideRFC7636IsRefusedEvenWhenItMatches(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, baseConfig())
	conf := oauthConfig(sim, oauth2.AuthStyleInHeader)
	for name, verifier := range map[string]string{
		"129 characters":           strings.Repeat("a", 129),
		"base64 (not url) letters": strings.Repeat("a+/", 15),
	} {
		code := login(t, conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)), "ada", "lovelace", "login").Query().Get("code")
		_, err := conf.Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
		if re, ok := errors.AsType[*oauth2.RetrieveError](err); !ok || re.ErrorCode != "invalid_grant" {
			t.Errorf("%s: %v, want invalid_grant", name, err)
		}
	}
}

// Both token endpoints answer RFC 6749's way whatever is wrong: POST only (405 with
// Allow), grant_type required, never cached (§5.1), and a Basic challenge only to a
// client that authenticated with Basic (§5.2).
func TestTokenEndpointsAnswerRFC6749Errors(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, baseConfig())
	// send posts form with Basic credentials unless basicSecret is empty.
	send := func(method, u string, form url.Values, basicSecret string) (*http.Response, string) {
		req, _ := http.NewRequestWithContext(t.Context(), method, u, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if basicSecret != "" {
			req.SetBasicAuth("tenant-1", basicSecret)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	for _, u := range []string{sim.TokenURL(), sim.ClientCredentialsTokenURL()} {
		resp, body := send(http.MethodGet, u, nil, "tsecret")
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" || !strings.Contains(body, `"invalid_request"`) {
			t.Errorf("GET %s: %d Allow %q %s", u, resp.StatusCode, resp.Header.Get("Allow"), body)
		}
	}
	cc := url.Values{"grant_type": {"client_credentials"}}
	for name, tc := range map[string]struct {
		form          url.Values
		basicSecret   string
		status        int
		error         string
		wantChallenge bool
	}{
		"issued":                   {cc, "tsecret", 200, "", false},
		"no grant type":            {url.Values{}, "tsecret", 400, `"invalid_request"`, false},
		"wrong secret with Basic":  {cc, "wrong", 401, `"invalid_client"`, true},
		"wrong secret in the body": {url.Values{"grant_type": {"client_credentials"}, "client_id": {"tenant-1"}, "client_secret": {"wrong"}}, "", 401, `"invalid_client"`, false},
	} {
		resp, body := send(http.MethodPost, sim.ClientCredentialsTokenURL(), tc.form, tc.basicSecret)
		if resp.StatusCode != tc.status || !strings.Contains(body, tc.error) {
			t.Errorf("%s: %d %s, want %d %s", name, resp.StatusCode, body, tc.status, tc.error)
		}
		if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Pragma") != "no-cache" {
			t.Errorf("%s: Cache-Control %q Pragma %q, want no-store no-cache", name, resp.Header.Get("Cache-Control"), resp.Header.Get("Pragma"))
		}
		if got := resp.Header.Get("WWW-Authenticate"); (got != "") != tc.wantChallenge {
			t.Errorf("%s: WWW-Authenticate %q", name, got)
		}
	}
}

// client_secret_basic form-encodes the ID and secret before base64 (RFC 6749 §2.3.1), so
// a secret with reserved characters works only when the endpoint decodes it.
func TestABasicSecretWithReservedCharactersAuthenticates(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, baseConfig())
	if err := sim.ChangeTenantSecret("tenant-1", "p@ss:w%rd +/"); err != nil {
		t.Fatal(err)
	}
	cc := &clientcredentials.Config{ClientID: "tenant-1", ClientSecret: "p@ss:w%rd +/", TokenURL: sim.ClientCredentialsTokenURL(), AuthStyle: oauth2.AuthStyleInHeader}
	if _, err := cc.Token(t.Context()); err != nil {
		t.Fatalf("basic with reserved characters: %v", err)
	}
}

// Adding a user or tenant that exists replaces it and revokes its tokens, as a change of
// password or secret does (Sim.AddUser, Sim.AddTenant).
func TestReplacingAUserOrTenantRevokesTheirTokens(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, baseConfig())
	user := codeFlow(t, oauthConfig(sim, oauth2.AuthStyleInHeader))
	cc := &clientcredentials.Config{ClientID: "tenant-1", ClientSecret: "tsecret", TokenURL: sim.ClientCredentialsTokenURL()}
	tenant, err := cc.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	sim.AddUser(engagesim.User{Username: "ada", Password: "lovelace", Domain: domain})
	sim.AddTenant(engagesim.Tenant{ID: "tenant-1", Secret: "tsecret", Domain: domain})
	for name, tok := range map[string]string{"user": user.AccessToken, "tenant": tenant.AccessToken} {
		if st := searchStatus(t, sim, domain, tok); st != http.StatusUnauthorized {
			t.Errorf("%s token after the replacement: %d, want 401", name, st)
		}
	}
	_, err = oauthConfig(sim, oauth2.AuthStyleInHeader).TokenSource(t.Context(), &oauth2.Token{RefreshToken: user.RefreshToken}).Token()
	wantOAuthError(t, err, "invalid_grant", http.StatusBadRequest)
}

// The authorize endpoint takes GET and POST only, and its redirects, which carry a code,
// are never cached.
func TestAuthorizeTakesGETAndPOSTAndItsRedirectsAreNotCached(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, baseConfig())
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, sim.AuthorizeURL(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, POST" {
		t.Fatalf("PUT: %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	conf := oauthConfig(sim, oauth2.AuthStyleInHeader)
	u, _ := url.Parse(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	form := u.Query()
	form.Set("username", "ada")
	form.Set("password", "lovelace")
	form.Set("action", "login")
	resp, err = noRedirects.PostForm(sim.AuthorizeURL(), form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("sign in: %d Cache-Control %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
}
