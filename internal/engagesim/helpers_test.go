package engagesim_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/noderuntime/noderuntime/internal/engagesim"
)

const (
	domain      = "acme"
	clientID    = "noderuntime"
	secret      = "s3cr3t"
	redirectURI = "http://127.0.0.1:9/oauth/callback"
)

// clock is a settable Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func baseConfig() engagesim.Config {
	return engagesim.Config{
		Users:   []engagesim.User{{Username: "ada", Password: "lovelace", Domain: domain}},
		Clients: []engagesim.OAuthClient{{ID: clientID, Secret: secret, RedirectURIs: []string{redirectURI}}},
		Tenants: []engagesim.Tenant{{ID: "tenant-1", Secret: "tsecret", Domain: domain}},
	}
}

func oauthConfig(sim *engagesim.Sim, style oauth2.AuthStyle) *oauth2.Config {
	return &oauth2.Config{
		ClientID: clientID, ClientSecret: secret, RedirectURL: redirectURI, Scopes: []string{"cjp:config_read"},
		Endpoint: oauth2.Endpoint{AuthURL: sim.AuthorizeURL(), TokenURL: sim.TokenURL(), AuthStyle: style},
	}
}

// noRedirects is a client that shows redirects instead of following them.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// login drives the login page like a browser: GET the form, POST its fields with the
// credentials, and returns the redirect it answers with.
func login(t *testing.T, authURL, username, password, action string) *url.URL {
	t.Helper()
	resp, err := noRedirects.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("authorize page: %d %s", resp.StatusCode, page)
	}
	for _, id := range []string{`id="username"`, `id="password"`, `id="login"`, `type="password"`} {
		if !bytes.Contains(page, []byte(id)) {
			t.Fatalf("login page lacks %s", id)
		}
	}
	form := url.Values{"username": {username}, "password": {password}, "action": {action}}
	for _, m := range hiddenInput.FindAllSubmatch(page, -1) {
		form.Set(string(m[1]), html.UnescapeString(string(m[2])))
	}
	u, _ := url.Parse(authURL)
	resp, err = noRedirects.PostForm(u.Scheme+"://"+u.Host+"/oauth/authorize", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("login answered %d, not a redirect: %s", resp.StatusCode, body)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// codeFlow runs the whole Webex login and exchanges the code.
func codeFlow(t *testing.T, conf *oauth2.Config) *oauth2.Token {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	loc := login(t, conf.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier)), "ada", "lovelace", "login")
	if loc.Query().Get("state") != "st-1" || loc.Query().Get("code") == "" {
		t.Fatalf("redirect %s", loc)
	}
	tok, err := conf.Exchange(t.Context(), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// wantOAuthError fails unless err is a token endpoint error with that code.
func wantOAuthError(t *testing.T, err error, code string, status int) {
	t.Helper()
	re, ok := errors.AsType[*oauth2.RetrieveError](err)
	if !ok {
		t.Fatalf("got %v, want OAuth error %s", err, code)
	}
	if re.ErrorCode != code || re.Response.StatusCode != status {
		t.Fatalf("got %s (HTTP %d): %s; want %s (HTTP %d)", re.ErrorCode, re.Response.StatusCode, re.ErrorDescription, code, status)
	}
}

// envelope is the simulator's answer, as a client reads it.
type envelope struct {
	Status      int             `json:"status"`
	Code        int             `json:"code"`
	Description string          `json:"description"`
	Value       json.RawMessage `json:"value"`
	TID         string          `json:"tid"`
}

// call sends a JSON request to the Engage API and decodes the envelope.
func call(t *testing.T, method, u, token string, body any) (int, envelope) {
	t.Helper()
	resp, env := callForAnswer(t, method, u, token, body)
	return resp.StatusCode, env
}

// callForAnswer is call that also gives the answer itself, for its headers (its body is
// read and closed).
func callForAnswer(t *testing.T, method, u, token string, body any) (*http.Response, envelope) {
	t.Helper()
	resp, raw := send(t, method, u, token, body)
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatalf("%s %s: HTTP %d, body is not an envelope: %v", method, u, resp.StatusCode, err)
	}
	if env.Status != resp.StatusCode {
		t.Fatalf("envelope status %d, HTTP %d", env.Status, resp.StatusCode)
	}
	return resp, env
}

// send sends a JSON request (body: nil, a string, a reader of unknown length, sent
// chunked, or a value to encode) with token, and returns the answer and its body.
func send(t *testing.T, method, u, token string, body any) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewReader([]byte(b))
	case io.Reader:
		rd = b
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, raw
}

// searchStatus calls search with token and returns the HTTP status.
func searchStatus(t *testing.T, sim *engagesim.Sim, dom, token string) int {
	t.Helper()
	st, _ := call(t, http.MethodPost, sim.BaseURL()+"/"+dom+"/conversations/search", token,
		map[string]string{"channel": "sms", "customeraddress": "c", "bizaddress": "b"})
	return st
}

// postBrokenChunkedBody posts to path a chunked body whose second chunk size is not a
// number, so that reading the body fails on the server, and returns the answer.
func postBrokenChunkedBody(t *testing.T, sim *engagesim.Sim, path, header string) *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(sim.URL(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_, err = io.WriteString(conn, "POST "+path+" HTTP/1.1\r\nHost: engage\r\n"+header+
		"\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"cha\r\nzz\r\n")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}
