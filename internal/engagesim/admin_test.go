package engagesim_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/noderuntime/noderuntime/internal/engagesim"
)

// admin sends a JSON request to the admin API and returns the status and body.
func admin(t *testing.T, sim *engagesim.Sim, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, sim.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAdminAPIInjectsListsAndClearsFaults(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	tok := sim.AccessToken(domain)
	st, body := admin(t, sim, "POST", "/_sim/faults", `{"op":"search","status":502,"latency":"5ms","times":2}`)
	if st != http.StatusCreated || !strings.Contains(body, `"id":1`) {
		t.Fatalf("inject: %d %s", st, body)
	}
	if st, body := admin(t, sim, "GET", "/_sim/faults", ""); st != 200 || !strings.Contains(body, `"latency":"5ms"`) || !strings.Contains(body, `"remaining":2`) {
		t.Fatalf("list: %d %s", st, body)
	}
	if got := searchStatus(t, sim, domain, tok); got != 502 {
		t.Fatalf("search under the fault: %d", got)
	}
	for _, bad := range []string{`{"op":"teleport","status":500}`, `{"op":"search","latency":"soon"}`, `{"op":"search"}`, `{"op":"search","statuss":500}`} {
		if st, body := admin(t, sim, "POST", "/_sim/faults", bad); st != http.StatusBadRequest {
			t.Errorf("%s: %d %s", bad, st, body)
		}
	}
	if st, body := admin(t, sim, "POST", "/_sim/faults", `{"op":"append","noTid":true}`); st != http.StatusCreated {
		t.Fatalf("inject noTid: %d %s", st, body)
	}
	if st, body := admin(t, sim, "GET", "/_sim/faults", ""); st != 200 || !strings.Contains(body, `"noTid":true`) {
		t.Fatalf("list with noTid: %d %s", st, body)
	}
	if st, _ := admin(t, sim, "DELETE", "/_sim/faults/2", ""); st != http.StatusNoContent {
		t.Fatalf("remove the noTid fault: %d", st)
	}
	if st, _ := admin(t, sim, "DELETE", "/_sim/faults/1", ""); st != http.StatusNoContent {
		t.Fatalf("remove: %d", st)
	}
	if st, _ := admin(t, sim, "DELETE", "/_sim/faults/1", ""); st != http.StatusNotFound {
		t.Fatalf("remove twice: %d", st)
	}
	admin(t, sim, "POST", "/_sim/faults", `{"status":500}`)
	if st, _ := admin(t, sim, "DELETE", "/_sim/faults", ""); st != http.StatusNoContent || len(sim.Faults()) != 0 {
		t.Fatalf("clear: %d %v", st, sim.Faults())
	}
	if got := searchStatus(t, sim, domain, tok); got != 200 {
		t.Fatalf("search after clearing: %d", got)
	}
	st, body = admin(t, sim, "GET", "/_sim/counters", "")
	var counts engagesim.Counts
	if err := json.Unmarshal([]byte(body), &counts); err != nil || st != 200 || counts.Calls["search"] != 2 {
		t.Fatalf("counters: %d %s", st, body)
	}
	if st, _ := admin(t, sim, "DELETE", "/_sim/counters", ""); st != http.StatusNoContent || sim.Calls("search") != 0 {
		t.Fatal("counters not reset")
	}
	if st, body := admin(t, sim, "GET", "/_sim/", ""); st != 200 || !strings.Contains(body, "/_sim/faults") {
		t.Fatalf("index: %d %s", st, body)
	}
}

func TestAdminAPIManagesIdentitiesAndCredentialChanges(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	for path, body := range map[string]string{
		"/_sim/users":   `{"username":"grace","password":"hopper","domain":"acme"}`,
		"/_sim/clients": `{"id":"noderuntime","secret":"s3cr3t","redirectUris":["` + redirectURI + `"]}`,
		"/_sim/tenants": `{"id":"tenant-1","secret":"tsecret","domain":"acme"}`,
	} {
		if st, b := admin(t, sim, "POST", path, body); st != http.StatusNoContent {
			t.Fatalf("%s: %d %s", path, st, b)
		}
		if st, _ := admin(t, sim, "POST", path, `{}`); st != http.StatusBadRequest {
			t.Fatalf("%s with nothing: %d", path, st)
		}
	}
	conf := oauthConfig(sim, oauth2.AuthStyleInHeader)
	verifier := oauth2.GenerateVerifier()
	loc := login(t, conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), "grace", "hopper", "login")
	tok, err := conf.Exchange(t.Context(), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	cc := &clientcredentials.Config{ClientID: "tenant-1", ClientSecret: "tsecret", TokenURL: sim.ClientCredentialsTokenURL()}
	ctok, err := cc.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}

	if st, _ := admin(t, sim, "POST", "/_sim/users/grace/password", `{"password":"new"}`); st != http.StatusNoContent {
		t.Fatalf("password: %d", st)
	}
	if st, _ := admin(t, sim, "POST", "/_sim/users/nobody/password", `{"password":"new"}`); st != http.StatusNotFound {
		t.Fatalf("unknown user: %d", st)
	}
	_, err = conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	wantOAuthError(t, err, "invalid_grant", http.StatusBadRequest)

	if st, _ := admin(t, sim, "POST", "/_sim/tenants/tenant-1/secret", `{"secret":"rotated"}`); st != http.StatusNoContent {
		t.Fatalf("secret: %d", st)
	}
	if st := searchStatus(t, sim, domain, ctok.AccessToken); st != http.StatusUnauthorized {
		t.Fatalf("tenant token after rotation: %d", st)
	}
	if st, _ := admin(t, sim, "POST", "/_sim/users/grace/revoke", ""); st != http.StatusNoContent {
		t.Fatalf("revoke: %d", st)
	}
}

func TestAdminAPISeedsAndReadsConversations(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, engagesim.Config{})
	st, body := admin(t, sim, "POST", "/_sim/domains/acme/conversations",
		`{"channel":"sms","customerAddress":"c","bizAddress":"b","status":"onhold","messages":[{"text":"seeded","messagetype":"text"}]}`)
	var seeded struct{ ID string }
	if err := json.Unmarshal([]byte(body), &seeded); err != nil || st != http.StatusCreated || seeded.ID == "" {
		t.Fatalf("seed: %d %s", st, body)
	}
	path := "/_sim/domains/acme/conversations/" + url.PathEscape(seeded.ID)
	if st, _ := admin(t, sim, "PUT", path+"/status", `{"status":"closed"}`); st != http.StatusNoContent {
		t.Fatalf("status: %d", st)
	}
	st, body = admin(t, sim, "GET", path, "")
	if st != 200 || !strings.Contains(body, `"status":"closed"`) || !strings.Contains(body, `"text":"seeded"`) {
		t.Fatalf("read: %d %s", st, body)
	}
	if st, _ := admin(t, sim, "GET", "/_sim/domains/acme/conversations/nope", ""); st != http.StatusNotFound {
		t.Fatalf("unknown: %d", st)
	}
	if st, body := admin(t, sim, "GET", "/_sim/domains/acme/conversations", ""); st != 200 || !strings.Contains(body, seeded.ID) {
		t.Fatalf("list: %d %s", st, body)
	}
	st, body = admin(t, sim, "POST", "/_sim/domains/acme/tokens", "")
	var minted struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal([]byte(body), &minted); err != nil || st != http.StatusCreated {
		t.Fatalf("mint: %d %s", st, body)
	}
	if st := searchStatus(t, sim, domain, minted.AccessToken); st != 200 {
		t.Fatalf("minted token: %d", st)
	}
}

// A credential change through the admin API needs the new credential: an empty password
// or secret is refused, and the old one still works.
func TestAdminAPIRefusesEmptyNewCredentials(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, baseConfig())
	for path, body := range map[string]string{"/_sim/users/ada/password": `{"password":""}`, "/_sim/tenants/tenant-1/secret": `{}`} {
		if st, b := admin(t, sim, "POST", path, body); st != http.StatusBadRequest {
			t.Errorf("%s %s: %d %s", path, body, st, b)
		}
	}
	cc := &clientcredentials.Config{ClientID: "tenant-1", ClientSecret: "tsecret", TokenURL: sim.ClientCredentialsTokenURL()}
	if _, err := cc.Token(t.Context()); err != nil {
		t.Fatalf("the old secret: %v", err)
	}
	codeFlow(t, oauthConfig(sim, oauth2.AuthStyleInHeader))
}

// The counters' snapshot holds every counter, and a reset zeroes every one.
func TestCountsHoldEveryCounterAndResetZeroesThem(t *testing.T) {
	t.Parallel()
	sim := engagesim.Start(t, baseConfig())
	cc := &clientcredentials.Config{ClientID: "tenant-1", ClientSecret: "tsecret", TokenURL: sim.ClientCredentialsTokenURL()}
	if _, err := cc.Token(t.Context()); err != nil {
		t.Fatal(err)
	}
	_, err := oauthConfig(sim, oauth2.AuthStyleInHeader).TokenSource(t.Context(), &oauth2.Token{RefreshToken: "x"}).Token()
	wantOAuthError(t, err, "invalid_grant", http.StatusBadRequest)
	if c := sim.Counts(); c.Calls[engagesim.OpToken] != 2 || c.Grants[engagesim.GrantClientCredentials] != 1 || c.InvalidGrants != 1 {
		t.Fatalf("counts %+v", c)
	}
	sim.ResetCounters()
	if c := sim.Counts(); len(c.Calls) != 0 || len(c.Grants) != 0 || c.InvalidGrants != 0 {
		t.Fatalf("after the reset %+v", c)
	}
}
