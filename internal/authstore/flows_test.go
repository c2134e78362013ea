package authstore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/noderuntime/noderuntime/internal/authstore"
	"github.com/noderuntime/noderuntime/internal/engagesim"
	"github.com/noderuntime/noderuntime/internal/outcomes"
	"github.com/noderuntime/noderuntime/internal/secrets"
	"github.com/noderuntime/noderuntime/internal/tenant"
)

func TestClientCredentialsAreCheckedAtOnceAndStoredOnlyEncrypted(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	a := e.createCC(s, acme, "standalone")
	if a.Status != authstore.StatusActive || a.Kind != authstore.KindClientCredentials || a.TenantID != "tenant-1" {
		t.Fatalf("created %+v", a)
	}
	if got := e.sim.Grants(engagesim.GrantClientCredentials); got != 1 {
		t.Fatalf("%d client-credentials grants, want 1 (checked at once)", got)
	}
	c, err := s.Token(ctxT(t), acme, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.works(c); err != nil {
		t.Fatalf("the stored token does not work at Engage: %v", err)
	}
	// Nothing in the row is readable: not the secret, not the token.
	var secret, token []byte
	var keyID string
	if err := e.pool.QueryRow(context.Background(), "select tenant_secret, access_token, key_id from authorizations where id = $1", a.ID).Scan(&secret, &token, &keyID); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(secret, []byte(ccSecret)) || bytes.Contains(token, []byte(c.AccessToken.Reveal())) || bytes.Contains(token, []byte("simat_")) {
		t.Fatal("a secret is stored in clear")
	}
	if id, _ := secrets.KeyID(secret); id != "k1" || keyID != "k1" {
		t.Fatalf("key IDs %q / %q, want k1", id, keyID)
	}
}

func TestRefusedClientCredentialsAnswerTheProvidersErrorAndStoreNothing(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	_, err := s.Create(ctxT(t), acme, authstore.ActorAPI, authstore.CreateRequest{
		Name: "bad", Kind: authstore.KindClientCredentials, BaseURL: e.sim.BaseURL(), Domain: "acme",
		TenantID: "tenant-1", TenantSecret: secrets.New("wrong-secret"),
	})
	ae := wantCode(t, err, authstore.ErrProviderRejected)
	if ae.ProviderError != "invalid_client" {
		t.Fatalf("provider error %q, want invalid_client", ae.ProviderError)
	}
	var n int
	if err := e.pool.QueryRow(context.Background(), "select count(*) from authorizations").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d rows stored (%v), want none", n, err)
	}
}

// A token endpoint that is busy or failing (429, 5xx) when client credentials are
// checked has refused nothing: the caller is told to try again, not that the
// credentials are wrong; and nothing is stored either way.
func TestClientCredentialsCheckedWhileTheTokenEndpointIsBusyAnswerTryAgain(t *testing.T) {
	for _, tc := range []struct {
		status int
		want   authstore.ErrorCode
	}{
		{http.StatusTooManyRequests, authstore.ErrProviderUnavailable},
		{http.StatusServiceUnavailable, authstore.ErrProviderUnavailable},
		{http.StatusBadRequest, authstore.ErrProviderRejected},
	} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			e := newEnv(t, engagesim.Config{})
			s := e.store()
			e.sim.InjectFault(engagesim.Fault{Op: engagesim.OpToken, Status: tc.status})
			_, err := s.Create(ctxT(t), acme, authstore.ActorAPI, authstore.CreateRequest{
				Name: "busy", Kind: authstore.KindClientCredentials, BaseURL: e.sim.BaseURL(), Domain: "acme",
				TenantID: "tenant-1", TenantSecret: secrets.New(ccSecret),
			})
			wantCode(t, err, tc.want)
			var n int
			if err := e.pool.QueryRow(context.Background(), "select count(*) from authorizations").Scan(&n); err != nil || n != 0 {
				t.Fatalf("%d rows stored (%v), want none", n, err)
			}
		})
	}
}

// The callback page shows the provider's error code, and anyone can write one into a
// login link: a code that is not an RFC 6749 code (words, markup) is shown as
// invalid_error_code, never as the text that came in.
func TestALoginErrorCodeThatIsNotACodeIsNeverShown(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	st, err := s.Create(ctxT(t), acme, authstore.ActorAPI, authstore.CreateRequest{Name: "denied", Kind: authstore.KindWebexLogin, BaseURL: e.sim.BaseURL(), Domain: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	q := e.login(st.AuthorizeURL, "cancel")
	const injected = "Your account is locked: call +1 555 0100 <b>now</b>"
	q.Set("error", injected)
	_, err = s.CompleteLogin(ctxT(t), q)
	ae := wantCode(t, err, authstore.ErrLoginDenied)
	if ae.ProviderError != "invalid_error_code" || strings.Contains(ae.Message, "locked") || strings.Contains(err.Error(), "locked") {
		t.Fatalf("provider error %q, message %q: want invalid_error_code and none of the text", ae.ProviderError, ae.Message)
	}
}

func TestWebexLoginGoesFromPendingToActiveThroughTheProvidersLogin(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	started, err := s.Create(ctxT(t), acme, authstore.ActorAPI, authstore.CreateRequest{
		Name: "Support bot", Kind: authstore.KindWebexLogin, Region: "", BaseURL: e.sim.BaseURL() + "/", Domain: "acme",
	})
	if err != nil {
		t.Fatal(err)
	}
	if started.Status != authstore.StatusPending || started.BaseURL != e.sim.BaseURL() {
		t.Fatalf("created %+v", started.Authorization)
	}
	u := mustParse(t, started.AuthorizeURL)
	q := u.Query()
	if !strings.HasPrefix(started.AuthorizeURL, e.sim.AuthorizeURL()+"?") || q.Get("code_challenge_method") != "S256" ||
		len(q.Get("code_challenge")) != 43 || len(q.Get("state")) < 43 || q.Get("redirect_uri") != redirectURI || q.Get("client_id") != "noderuntime" {
		t.Fatalf("authorize URL %s", started.AuthorizeURL)
	}
	_, err = s.Token(ctxT(t), acme, started.ID)
	wantAuthError(t, err, outcomes.CodeAuthorizationPending)

	callback := e.login(started.AuthorizeURL, "login")
	a, err := s.CompleteLogin(ctxT(t), callback)
	if err != nil {
		t.Fatal(err)
	}
	if a.Status != authstore.StatusActive || a.Name != "Support bot" {
		t.Fatalf("after login %+v", a)
	}
	c, err := s.Token(ctxT(t), acme, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.works(c); err != nil {
		t.Fatalf("token does not work: %v", err)
	}

	// The same callback again: the state was single use; nothing changes.
	var version int64
	_ = e.pool.QueryRow(context.Background(), "select version from authorizations where id = $1", a.ID).Scan(&version)
	_, err = s.CompleteLogin(ctxT(t), callback)
	wantCode(t, err, authstore.ErrStateUnknown)
	var after int64
	_ = e.pool.QueryRow(context.Background(), "select version from authorizations where id = $1", a.ID).Scan(&after)
	if after != version {
		t.Fatal("a replayed callback changed the authorization")
	}
	if n := e.sim.Grants(engagesim.GrantAuthorizationCode); n != 1 {
		t.Fatalf("%d code exchanges, want 1", n)
	}
	events, err := s.Audit(ctxT(t), acme, a.ID)
	if err != nil || len(events) != 2 || events[0].Action != "created" || events[1].Action != "authorized" || events[1].Actor != "login" {
		t.Fatalf("audit %+v %v", events, err)
	}
}

func TestLoginFailuresShowWhyAndChangeNothing(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	start := func(name string) authstore.Started {
		st, err := s.Create(ctxT(t), acme, authstore.ActorAPI, authstore.CreateRequest{Name: name, Kind: authstore.KindWebexLogin, BaseURL: e.sim.BaseURL(), Domain: "acme"})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	cases := []struct {
		name  string
		query func(st authstore.Started) map[string][]string
		want  authstore.ErrorCode
	}{
		{"unknown state", func(st authstore.Started) map[string][]string {
			q := e.login(st.AuthorizeURL, "login")
			q.Set("state", "never-issued")
			return q
		}, authstore.ErrStateUnknown},
		{"no state at all", func(st authstore.Started) map[string][]string {
			q := e.login(st.AuthorizeURL, "login")
			q.Del("state")
			return q
		}, authstore.ErrStateUnknown},
		{"expired state", func(st authstore.Started) map[string][]string {
			q := e.login(st.AuthorizeURL, "login")
			if _, err := e.pool.Exec(context.Background(), "update oauth_states set expires_at = now() - interval '1 second'"); err != nil {
				t.Fatal(err)
			}
			return q
		}, authstore.ErrStateExpired},
		// Starting a login clears old states, but keeps those expired within a day: an
		// expired one still says so, rather than reading as unknown.
		{"a state expired an hour ago, with a login started since", func(st authstore.Started) map[string][]string {
			q := e.login(st.AuthorizeURL, "login")
			if _, err := e.pool.Exec(context.Background(), "update oauth_states set expires_at = now() - interval '1 hour'"); err != nil {
				t.Fatal(err)
			}
			start("started since " + st.ID)
			return q
		}, authstore.ErrStateExpired},
		{"the user cancels at the provider", func(st authstore.Started) map[string][]string {
			return e.login(st.AuthorizeURL, "cancel")
		}, authstore.ErrLoginDenied},
		{"a code that does not exchange", func(st authstore.Started) map[string][]string {
			q := e.login(st.AuthorizeURL, "login")
			q.Set("code", "simcode_forged")
			return q
		}, authstore.ErrExchangeFailed},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := start("login " + string(rune('a'+i)))
			_, err := s.CompleteLogin(ctxT(t), c.query(st))
			ae := wantCode(t, err, c.want)
			if strings.Contains(ae.Message, "simcode_") {
				t.Fatal("the message repeats the code")
			}
			if got := e.status(st.ID); got != "pending" {
				t.Fatalf("status %s after a failed login, want pending", got)
			}
			if _, err := e.pool.Exec(context.Background(), "delete from oauth_states"); err != nil {
				t.Fatal(err)
			}
		})
	}
	if e.sim.Grants(engagesim.GrantAuthorizationCode) != 0 {
		t.Fatal("a failed login obtained tokens")
	}
}

func TestNamesAreUniquePerTenant(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	e.createCC(s, acme, "shared name")
	e.createCC(s, acme, "caf\u00e9")
	// Spellings that look the same on a page are the same name: surrounding space, a
	// no-break space or two spaces (HTML shows one), a decomposed accent (NFD).
	for _, lookalike := range []string{" shared name ", "shared\u00a0name", "shared  name", "shared\u3000name", "cafe\u0301"} {
		_, err := s.Create(ctxT(t), acme, authstore.ActorAPI, authstore.CreateRequest{
			Name: lookalike, Kind: authstore.KindClientCredentials, BaseURL: e.sim.BaseURL(), Domain: "acme",
			TenantID: "tenant-1", TenantSecret: secrets.New(ccSecret),
		})
		wantCode(t, err, authstore.ErrConflict)
	}
	e.createCC(s, globex, "shared name") // another tenant may use it
	if n := e.sim.Grants(engagesim.GrantClientCredentials); n != 3 {
		t.Fatalf("%d token calls, want 3 (a duplicate is refused before calling the provider)", n)
	}
}

func TestNamesMustBePrintableTextThatKeepsItsOrder(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	for _, name := range []string{"", "   ", "tab\there", "desk\u202egnp.exe", "a\u2066b\u2069", "mark\u200f", strings.Repeat("n", 101),
		// Invisible characters make a second "acme" that looks like the first.
		"acme\u200b", "\ufeffacme", "ac\u00adme", "ac\u2060me", "acme\u200d", "ac\u200dme", "\u200c\u0645"} {
		_, err := s.Create(ctxT(t), acme, authstore.ActorAPI, authstore.CreateRequest{Name: name, Kind: authstore.KindWebexLogin, BaseURL: e.sim.BaseURL(), Domain: "acme"})
		wantCode(t, err, authstore.ErrInvalid)
	}
	for _, name := range []string{"Support desk", "Équipe 東京", "família 👨\u200d👩\u200d👧", "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"} {
		if _, err := s.Create(ctxT(t), acme, authstore.ActorAPI, authstore.CreateRequest{Name: name, Kind: authstore.KindWebexLogin, BaseURL: e.sim.BaseURL(), Domain: "acme"}); err != nil {
			t.Errorf("name %q: %v", name, err)
		}
	}
}

func TestBaseURLsOffTheAllowlistAreRefusedWithoutARequest(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	var hits atomic.Int64
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer evil.Close()
	s := e.store()
	for _, req := range []authstore.CreateRequest{
		{BaseURL: evil.URL + "/api/v1", Kind: authstore.KindClientCredentials},
		{BaseURL: evil.URL + "/api/v1", Kind: authstore.KindWebexLogin},
		{Region: "us", Kind: authstore.KindClientCredentials}, // documented, but not on this allowlist
		{BaseURL: e.sim.BaseURL() + "/../evil", Kind: authstore.KindClientCredentials},
	} {
		req.Name, req.Domain, req.TenantID, req.TenantSecret = "x", "acme", "tenant-1", secrets.New(ccSecret)
		_, err := s.Create(ctxT(t), acme, authstore.ActorAPI, req)
		wantCode(t, err, authstore.ErrBaseURLNotAllowed)
	}
	for _, req := range []authstore.CreateRequest{
		{Region: "mars"},
		{Region: "us", BaseURL: e.sim.BaseURL()},
		{},
		{BaseURL: "ftp://example.com"},
		{BaseURL: "http://user:pw@example.com"},
	} {
		req.Name, req.Kind, req.Domain, req.TenantID, req.TenantSecret = "x", authstore.KindClientCredentials, "acme", "tenant-1", secrets.New(ccSecret)
		_, err := s.Create(ctxT(t), acme, authstore.ActorAPI, req)
		wantCode(t, err, authstore.ErrInvalid)
	}
	if hits.Load() != 0 || e.sim.Calls(engagesim.OpToken) != 0 {
		t.Fatalf("requests were sent: %d to the host off the list, %d token calls", hits.Load(), e.sim.Calls(engagesim.OpToken))
	}
}

// A base URL in capitals names the same server: it is accepted, and stored as the
// allowlist writes it, whichever case either was given in.
func TestABaseURLInCapitalsIsTheAllowedOne(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	lower := e.sim.BaseURL()
	shouted := strings.ToUpper(strings.TrimSuffix(lower, "/api/v1")) + "/api/v1/"
	for name, s := range map[string]*authstore.Store{
		"allowlist as given":    e.store(),
		"allowlist in capitals": e.store(func(o *authstore.Options) { o.AllowedBaseURLs = []string{shouted} }),
	} {
		for _, base := range []string{lower, shouted} {
			got, err := s.Create(ctxT(t), acme, authstore.ActorAPI, authstore.CreateRequest{
				Name: name + " " + base, Kind: authstore.KindClientCredentials, BaseURL: base, Domain: "acme",
				TenantID: "tenant-1", TenantSecret: secrets.New(ccSecret),
			})
			if err != nil {
				t.Fatalf("%s, base %s: %v", name, base, err)
			}
			if got.Authorization.BaseURL != lower {
				t.Errorf("%s, base %s: stored %q, want %q", name, base, got.Authorization.BaseURL, lower)
			}
		}
	}
}

// The allowlist shrank after an authorization was made (or a row was written past the
// API): the store never hands out its token nor sends its secret to that base URL.
func TestAnAuthorizationWhoseBaseURLLeftTheAllowlistIsNeverUsed(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	auth := e.createCC(e.store(), acme, "made while allowed")
	shrunk := e.store(func(o *authstore.Options) { o.AllowedBaseURLs = []string{"https://api-us-site-1.imiengage.io/api/v1"} })
	tokenCalls := e.sim.Calls(engagesim.OpToken)
	_, err := shrunk.Token(ctxT(t), acme, auth.ID)
	wantAuthError(t, err, outcomes.CodeAuthorizationNotFound)
	e.expire(auth.ID) // a refresh would send the tenant secret to the base URL
	_, err = shrunk.Token(ctxT(t), acme, auth.ID)
	wantAuthError(t, err, outcomes.CodeAuthorizationNotFound)
	_, err = shrunk.Reauthorize(ctxT(t), acme, authstore.ActorAPI, auth.ID, authstore.ReauthorizeRequest{})
	wantCode(t, err, authstore.ErrBaseURLNotAllowed)
	if n := e.sim.Calls(engagesim.OpToken) - tokenCalls; n != 0 {
		t.Fatalf("%d token requests went to a base URL off the allowlist", n)
	}
	// Nor is a Webex login started for one: it would end active and still unusable.
	login := e.createLogin(e.store(), acme, "login made while allowed")
	tokenCalls = e.sim.Calls(engagesim.OpToken)
	_, err = shrunk.Reauthorize(ctxT(t), acme, authstore.ActorAPI, login.ID, authstore.ReauthorizeRequest{})
	wantCode(t, err, authstore.ErrBaseURLNotAllowed)
	if n := e.sim.Calls(engagesim.OpToken) - tokenCalls; n != 0 {
		t.Fatalf("%d token requests went to a base URL off the allowlist", n)
	}
}

func TestRegionsNameTheDocumentedBaseURLs(t *testing.T) {
	want := map[string]string{
		"us": "https://api-us-site-1.imiengage.io/api/v1", "uk": "https://api-uk-site-1.imiengage.io/api/v1",
		"eu": "https://api-eu-site-1.imiengage.io/api/v1", "ca": "https://api-ca-site-1.imiengage.io/api/v1",
		"syd": "https://api-syd-site-1.imiengage.com.au/api/v1", "ind": "https://api-ind-site-1.imiengage.io/api/v1",
	}
	for r, u := range want {
		if got, ok := authstore.RegionBaseURL(strings.ToUpper(r)); !ok || got != u {
			t.Errorf("region %s: %q, want %q", r, got, u)
		}
	}
	if len(authstore.Regions()) != len(want) {
		t.Errorf("regions %v", authstore.Regions())
	}
}

// An authorization is shown in a region only when its base URL is that region's
// documented one: a host or path that merely looks like it is shown without a region.
func TestOnlyADocumentedBaseURLIsShownInItsRegion(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	documented, _ := authstore.RegionBaseURL("us")
	lookalikes := []string{"https://api-us-site-1.imiengage.io.example.test/api/v1", "https://api-us-site-1.imiengage.io/api/v2"}
	s := e.store(func(o *authstore.Options) {
		o.AllowedBaseURLs = append(o.AllowedBaseURLs, append(lookalikes, documented)...)
	})
	for i, tc := range []struct{ base, region string }{
		{documented, "us"}, {lookalikes[0], ""}, {lookalikes[1], ""},
	} {
		got, err := s.Create(ctxT(t), acme, authstore.ActorAPI, authstore.CreateRequest{
			Name: "base " + strconv.Itoa(i), Kind: authstore.KindWebexLogin, BaseURL: tc.base, Domain: "acme",
		})
		if err != nil {
			t.Fatal(err)
		}
		if got.Region != tc.region {
			t.Errorf("%s: region %q, want %q", tc.base, got.Region, tc.region)
		}
	}
}

// Credentials given where they do not belong, or malformed, are refused before any
// grant is asked for and before anything changes: a tenant ID or secret for a Webex
// login (which gets its tokens from the login; the caller may have meant
// client-credentials), and a tenant ID that is not printable text on a re-authorization.
func TestMisplacedOrMalformedCredentialsAreRefusedBeforeAnyGrant(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	login := e.createLogin(s, acme, "login")
	cc := e.createCC(s, acme, "cc")
	e.sim.ResetCounters()
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"a tenant ID for a new Webex login", func() error {
			_, err := s.Create(ctxT(t), acme, authstore.ActorAPI, authstore.CreateRequest{
				Name: "new login", Kind: authstore.KindWebexLogin, BaseURL: e.sim.BaseURL(), Domain: "acme", TenantID: "tenant-1",
			})
			return err
		}},
		{"a tenant secret to re-authorize a Webex login", func() error {
			_, err := s.Reauthorize(ctxT(t), acme, authstore.ActorAPI, login.ID, authstore.ReauthorizeRequest{TenantSecret: secrets.New(ccSecret)})
			return err
		}},
		{"a tenant ID with a control character to re-authorize client credentials", func() error {
			_, err := s.Reauthorize(ctxT(t), acme, authstore.ActorAPI, cc.ID, authstore.ReauthorizeRequest{TenantID: "tenant-1\x00"})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantCode(t, tc.call(), authstore.ErrInvalid)
		})
	}
	if n := e.sim.Grants(engagesim.GrantClientCredentials); n != 0 {
		t.Fatalf("%d client-credentials grants, want none", n)
	}
	if list, err := s.List(ctxT(t), acme); err != nil || len(list) != 2 {
		t.Fatalf("%d authorizations (%v), want the 2 made before", len(list), err)
	}
	for _, a := range []authstore.Authorization{login, cc} {
		if got, err := s.Get(ctxT(t), acme, a.ID); err != nil || !got.UpdatedAt.Equal(a.UpdatedAt) {
			t.Fatalf("%s changed (%v)", a.Name, err)
		}
	}
}

// List answers the tenant's own authorizations by name, whatever order they were
// made in, and whatever the database's collation: a capital letter does not sort
// before every lower-case one.
func TestListAnswersTheTenantsAuthorizationsByName(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	for _, a := range []struct {
		t    tenant.ID
		name string
	}{{acme, "charlie"}, {acme, "alpha"}, {globex, "aardvark"}, {acme, "Bravo"}, {acme, "bravo"}, {acme, "Delta"}} {
		if _, err := s.Create(ctxT(t), a.t, authstore.ActorAPI, authstore.CreateRequest{Name: a.name, Kind: authstore.KindWebexLogin, BaseURL: e.sim.BaseURL(), Domain: "acme"}); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.List(ctxT(t), acme)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range list {
		names = append(names, a.Name)
	}
	if strings.Join(names, ",") != "alpha,Bravo,bravo,charlie,Delta" {
		t.Fatalf("listed %v, want alpha, Bravo, bravo, charlie, Delta", names)
	}
}

func TestWebexLoginNeedsItsConfiguration(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store(func(o *authstore.Options) { o.Webex = authstore.Webex{} })
	_, err := s.Create(ctxT(t), acme, authstore.ActorAPI, authstore.CreateRequest{Name: "x", Kind: authstore.KindWebexLogin, BaseURL: e.sim.BaseURL(), Domain: "acme"})
	wantCode(t, err, authstore.ErrWebexDisabled)
}

func TestAForeignTenantsIDBehavesExactlyAsAMissingOne(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	a := e.createCC(s, acme, "acme's")
	missing := "6f1c2b9e-8d0a-4c3e-9f1a-2b3c4d5e6f70"
	ctx := ctxT(t)
	type answers struct{ token, refresh, get, del, reauth, audit string }
	ask := func(id string) answers {
		_, tokErr := s.Token(ctx, globex, id)
		_, refErr := s.Refresh(ctx, globex, id, secrets.New("x"))
		_, getErr := s.Get(ctx, globex, id)
		delErr := s.Delete(ctx, globex, authstore.ActorAPI, id)
		_, reErr := s.Reauthorize(ctx, globex, authstore.ActorAPI, id, authstore.ReauthorizeRequest{})
		ev, _ := s.Audit(ctx, globex, id)
		return answers{tokErr.Error(), refErr.Error(), getErr.Error(), delErr.Error(), reErr.Error(), strings.Repeat("e", len(ev))}
	}
	foreign, absent, malformed := ask(a.ID), ask(missing), ask("not-a-uuid'; drop table authorizations; --")
	if foreign != absent || malformed != absent {
		t.Fatalf("foreign %+v\nmissing %+v\nmalformed %+v", foreign, absent, malformed)
	}
	_, err := s.Token(ctx, globex, a.ID)
	wantAuthError(t, err, outcomes.CodeAuthorizationNotFound)
	if list, _ := s.List(ctx, globex); len(list) != 0 {
		t.Fatalf("globex lists %v", list)
	}
	if _, err := s.Token(ctx, acme, strings.ToUpper(a.ID)); err != nil {
		t.Fatalf("the owner, with the ID in capitals: %v", err)
	}
	if e.status(a.ID) != "active" {
		t.Fatal("the foreign tenant changed acme's authorization")
	}
}

func TestDeleteRemovesTheAuthorizationAndKeepsItsAuditTrail(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	a := e.createCC(s, acme, "to delete")
	if err := s.Delete(ctxT(t), acme, authstore.ActorAdmin, a.ID); err != nil {
		t.Fatal(err)
	}
	_, err := s.Token(ctxT(t), acme, a.ID)
	wantAuthError(t, err, outcomes.CodeAuthorizationNotFound)
	_, err = s.Get(ctxT(t), acme, a.ID)
	wantCode(t, err, authstore.ErrNotFound)
	err = s.Delete(ctxT(t), acme, authstore.ActorAdmin, a.ID)
	wantCode(t, err, authstore.ErrNotFound)
	events, _ := s.Audit(ctxT(t), acme, a.ID)
	if len(events) != 3 || events[2].Action != "deleted" || events[2].Actor != "admin" {
		t.Fatalf("audit %+v", events)
	}
}

func TestReauthorizingWebexLoginKeepsTheOldTokensUntilTheNewLoginCompletes(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	a := e.createLogin(s, acme, "relogin")
	before, err := s.Token(ctxT(t), acme, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Reauthorize(ctxT(t), acme, authstore.ActorAPI, a.ID, authstore.ReauthorizeRequest{})
	if err != nil || st.AuthorizeURL == "" {
		t.Fatalf("reauthorize: %+v %v", st, err)
	}
	if c, err := s.Token(ctxT(t), acme, a.ID); err != nil || c.AccessToken != before.AccessToken {
		t.Fatalf("token changed before the new login completed: %v", err)
	}
	if done, err := s.CompleteLogin(ctxT(t), e.login(st.AuthorizeURL, "login")); err != nil || !done.Reauthorized {
		t.Fatalf("second login: %+v %v", done, err)
	}
	after, err := s.Token(ctxT(t), acme, a.ID)
	if err != nil || after.AccessToken.Reveal() == before.AccessToken.Reveal() {
		t.Fatalf("after the new login: same token or %v", err)
	}
}

func TestErrorsNeverCarryASecret(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	_, err := s.Create(ctxT(t), acme, authstore.ActorAPI, authstore.CreateRequest{
		Name: "x", Kind: authstore.KindClientCredentials, BaseURL: e.sim.BaseURL(), Domain: "acme",
		TenantID: "tenant-1", TenantSecret: secrets.New(ccSecret + "-wrong"),
	})
	if err == nil || strings.Contains(err.Error(), ccSecret) {
		t.Fatalf("error %v", err)
	}
	var ae *authstore.Error
	if !errors.As(err, &ae) || strings.Contains(ae.ProviderDescription, ccSecret) {
		t.Fatalf("provider description %q", ae.ProviderDescription)
	}
}

// heldTransport answers each request, then holds the answer until release is closed,
// telling answered when the provider has answered: a re-authorization stopped between
// the grant and its write.
type heldTransport struct {
	answered chan struct{}
	release  chan struct{}
}

func (h heldTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	h.answered <- struct{}{}
	<-h.release
	return resp, err
}

// Two re-authorizations of one client-credentials authorization at once: the one that
// checked the stored secret again must not write that old secret back over the new one
// the other stored meanwhile (the next refresh would be refused, the row would need
// re-authorizing, and the new secret would be lost without an error).
func TestAReauthorizationNeverWritesBackCredentialsChangedMeanwhile(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	auth := e.createCC(e.store(), acme, "desk")
	held := heldTransport{answered: make(chan struct{}, 1), release: make(chan struct{})}
	slow := e.replica(func(o *authstore.Options) { o.HTTPClient = &http.Client{Transport: held} })
	done := make(chan error, 1)
	go func() {
		_, err := slow.Reauthorize(context.Background(), acme, authstore.ActorAPI, auth.ID, authstore.ReauthorizeRequest{})
		done <- err
	}()
	<-held.answered // its grant, with the stored secret, is answered

	const rotated = "rotated-cc-secret"
	if err := e.sim.ChangeTenantSecret("tenant-1", rotated); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store().Reauthorize(ctxT(t), acme, authstore.ActorAPI, auth.ID, authstore.ReauthorizeRequest{TenantSecret: secrets.New(rotated)}); err != nil {
		t.Fatal(err)
	}
	close(held.release)
	wantCode(t, <-done, authstore.ErrConflict)

	// The rotated secret is what is stored: a refresh works with it.
	e.expire(auth.ID)
	c, err := e.replica().Token(ctxT(t), acme, auth.ID)
	if err != nil {
		t.Fatalf("token after both re-authorizations: %v (status %s)", err, e.status(auth.ID))
	}
	if err := e.works(c); err != nil {
		t.Fatal(err)
	}
}

// The same for the tenant ID: a re-authorization that kept the stored tenant ID must
// not write it back over the one another re-authorization moved the authorization to
// meanwhile (with the same secret, so only the ID tells the two apart).
func TestAReauthorizationNeverWritesBackATenantIDChangedMeanwhile(t *testing.T) {
	e := newEnv(t, engagesim.Config{Tenants: []engagesim.Tenant{{ID: "tenant-2", Secret: ccSecret, Domain: "acme"}}})
	auth := e.createCC(e.store(), acme, "desk")
	held := heldTransport{answered: make(chan struct{}, 1), release: make(chan struct{})}
	slow := e.replica(func(o *authstore.Options) { o.HTTPClient = &http.Client{Transport: held} })
	done := make(chan error, 1)
	go func() {
		_, err := slow.Reauthorize(ctxT(t), acme, authstore.ActorAPI, auth.ID, authstore.ReauthorizeRequest{})
		done <- err
	}()
	select {
	case <-held.answered: // its grant, for the stored tenant-1, is answered
	case err := <-done:
		t.Fatalf("the first re-authorization ended before its grant was answered: %v", err)
	}

	if _, err := e.store().Reauthorize(ctxT(t), acme, authstore.ActorAPI, auth.ID, authstore.ReauthorizeRequest{TenantID: "tenant-2"}); err != nil {
		t.Fatal(err)
	}
	close(held.release)
	wantCode(t, <-done, authstore.ErrConflict)
	got, err := e.store().Get(ctxT(t), acme, auth.ID)
	if err != nil || got.TenantID != "tenant-2" {
		t.Fatalf("tenant ID %q (%v) after both re-authorizations, want tenant-2", got.TenantID, err)
	}
}

// A client-credentials authorization that needed re-authorization and got it is active
// with no reason left over: the old "re-authorize it" would tell the user to act again.
func TestAReauthorizedClientCredentialsAuthorizationKeepsNoStaleStatusReason(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	a := e.createCC(s, acme, "refused, then fixed")
	if err := e.sim.ChangeTenantSecret("tenant-1", newCCSecret); err != nil {
		t.Fatal(err)
	}
	e.expire(a.ID)
	_, err := s.Token(ctxT(t), acme, a.ID)
	wantAuthError(t, err, outcomes.CodeNeedsReauthorization)
	if got, err := s.Get(ctxT(t), acme, a.ID); err != nil || got.StatusReason == "" {
		t.Fatalf("needs_reauthorization without a reason: %+v %v", got, err)
	}
	if _, err := s.Reauthorize(ctxT(t), acme, authstore.ActorAPI, a.ID, authstore.ReauthorizeRequest{TenantSecret: secrets.New(newCCSecret)}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctxT(t), acme, a.ID)
	if err != nil || got.Status != authstore.StatusActive || got.StatusReason != "" {
		t.Fatalf("after the re-authorization: status %s, reason %q (%v); want active with no reason", got.Status, got.StatusReason, err)
	}
}

// leaveAfterAnswer is a token endpoint's transport whose caller leaves once the
// provider has answered: the code is exchanged, the answer read, the caller gone.
type leaveAfterAnswer struct{ leave context.CancelFunc }

func (l leaveAfterAnswer) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
	}
	l.leave()
	return resp, err
}

// A browser that leaves the callback once the provider exchanged the code (a
// double-clicked confirm, whose second click aborts the first; a closed tab) must not
// lose the login: its state and its code are spent by then, so no request could store
// it again, and the authorization would stay pending.
func TestALoginWhoseBrowserLeavesAfterTheCodeExchangeIsStillStored(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	ctx, leave := context.WithCancel(ctxT(t))
	defer leave()
	s := e.store(func(o *authstore.Options) {
		o.HTTPClient = &http.Client{Transport: leaveAfterAnswer{leave}}
	})
	started, err := s.Create(ctxT(t), acme, authstore.ActorAPI, authstore.CreateRequest{
		Name: "desk", Kind: authstore.KindWebexLogin, BaseURL: e.sim.BaseURL(), Domain: "acme",
	})
	if err != nil {
		t.Fatal(err)
	}
	callback := e.login(started.AuthorizeURL, "login")
	_, err = s.CompleteLogin(ctx, callback)
	if st := e.status(started.ID); st != string(authstore.StatusActive) {
		t.Fatalf("status %s after the exchanged login (CompleteLogin: %v), want active", st, err)
	}
	if _, err := s.CompleteLogin(ctxT(t), callback); authstore.CodeOf(err) != authstore.ErrStateUnknown {
		t.Fatalf("the callback again: %v, want the state spent", err)
	}
}

// Creates with one name in one tenant that race on two replicas (both kinds, so the
// check of client credentials at the provider widens the window): exactly one is
// stored, and every other one is the conflict (409), not an internal error.
func TestConcurrentCreatesWithOneNameOnTwoReplicasStoreOneAndRefuseTheRestAsAConflict(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	stores := []*authstore.Store{e.replica(), e.replica()}
	for _, kind := range []authstore.Kind{authstore.KindClientCredentials, authstore.KindWebexLogin} {
		name := "raced " + string(kind)
		var won, conflicts atomic.Int32
		concurrently(8, func(i int) {
			req := authstore.CreateRequest{Name: name, Kind: kind, BaseURL: e.sim.BaseURL(), Domain: "acme"}
			if kind == authstore.KindClientCredentials {
				req.TenantID, req.TenantSecret = "tenant-1", secrets.New(ccSecret)
			}
			_, err := stores[i%2].Create(ctxT(t), acme, authstore.ActorAPI, req)
			if ae, ok := errors.AsType[*authstore.Error](err); ok && ae.Code == authstore.ErrConflict {
				conflicts.Add(1)
			} else if err != nil {
				t.Errorf("%s create %d: %v, want success or a conflict", kind, i, err)
			} else {
				won.Add(1)
			}
		})
		if won.Load() != 1 || conflicts.Load() != 7 {
			t.Fatalf("%s: %d created, %d conflicts; want 1 and 7", kind, won.Load(), conflicts.Load())
		}
		var n int
		if err := e.pool.QueryRow(ctxT(t), "select count(*) from authorizations where tenant = $1 and name = $2", string(acme), name).Scan(&n); err != nil || n != 1 {
			t.Fatalf("%s: %d rows named %q (%v), want 1", kind, n, name, err)
		}
	}
}

// A login callback submitted several times at once (a double-clicked confirm, two tabs),
// on two replicas: one completes the login, the others find the state spent, and the
// login's code is exchanged once.
func TestACallbackSubmittedTwiceAtOnceCompletesOnceAndExchangesTheCodeOnce(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	stores := []*authstore.Store{e.replica(), e.replica()}
	started, err := stores[0].Create(ctxT(t), acme, authstore.ActorAPI, authstore.CreateRequest{
		Name: "double submit", Kind: authstore.KindWebexLogin, BaseURL: e.sim.BaseURL(), Domain: "acme",
	})
	if err != nil {
		t.Fatal(err)
	}
	query := e.login(started.AuthorizeURL, "login")
	e.sim.ResetCounters()
	var won, spent atomic.Int32
	concurrently(8, func(i int) {
		_, err := stores[i%2].CompleteLogin(ctxT(t), query)
		if ae, ok := errors.AsType[*authstore.Error](err); ok && ae.Code == authstore.ErrStateUnknown {
			spent.Add(1)
		} else if err != nil {
			t.Errorf("callback %d: %v, want success or an unknown state", i, err)
		} else {
			won.Add(1)
		}
	})
	if won.Load() != 1 || spent.Load() != 7 {
		t.Fatalf("%d logins completed, %d found the state spent; want 1 and 7", won.Load(), spent.Load())
	}
	if n := e.sim.Grants(engagesim.GrantAuthorizationCode); n != 1 {
		t.Fatalf("%d code exchanges, want 1", n)
	}
	if st := e.status(started.ID); st != string(authstore.StatusActive) {
		t.Fatalf("status %s, want active", st)
	}
}

// A login that repairs an authorization in needs_reauthorization is a re-authorization
// too, both on the confirmation page (PendingLogin) and once completed: only a pending
// authorization's first login is not.
func TestALoginThatRepairsANeedsReauthorizationReadsAsAReauthorization(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	a := e.createLogin(s, acme, "repaired")
	if _, err := e.pool.Exec(ctxT(t), "update authorizations set status = 'needs_reauthorization' where id = $1", a.ID); err != nil {
		t.Fatal(err)
	}
	st, err := s.Reauthorize(ctxT(t), acme, authstore.ActorAPI, a.ID, authstore.ReauthorizeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	query := e.login(st.AuthorizeURL, "login")
	pending, err := s.PendingLogin(ctxT(t), query.Get("state"))
	if err != nil || !pending.Reauthorization {
		t.Fatalf("the login to confirm: %+v %v, want a re-authorization", pending, err)
	}
	done, err := s.CompleteLogin(ctxT(t), query)
	if err != nil || !done.Reauthorized || done.Status != authstore.StatusActive {
		t.Fatalf("the completed login: %+v %v, want an active re-authorization", done, err)
	}
}

// The confirmation page reads a login's state as CompleteLogin does: an expired one says
// so before anyone confirms it, and a spent one is unknown.
func TestPendingLoginRefusesAnExpiredOrSpentState(t *testing.T) {
	e := newEnv(t, engagesim.Config{})
	s := e.store()
	st, err := s.Create(ctxT(t), acme, authstore.ActorAPI, authstore.CreateRequest{Name: "late", Kind: authstore.KindWebexLogin, BaseURL: e.sim.BaseURL(), Domain: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	q := e.login(st.AuthorizeURL, "login")
	if _, err := s.PendingLogin(ctxT(t), q.Get("state")); err != nil {
		t.Fatalf("a fresh state: %v", err)
	}
	if _, err := e.pool.Exec(context.Background(), "update oauth_states set expires_at = now() - interval '1 second'"); err != nil {
		t.Fatal(err)
	}
	_, err = s.PendingLogin(ctxT(t), q.Get("state"))
	wantCode(t, err, authstore.ErrStateExpired)
	_, err = s.CompleteLogin(ctxT(t), q)
	wantCode(t, err, authstore.ErrStateExpired)
	_, err = s.PendingLogin(ctxT(t), q.Get("state"))
	wantCode(t, err, authstore.ErrStateUnknown)
}
