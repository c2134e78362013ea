package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/noderuntime/noderuntime/internal/engage"
	"github.com/noderuntime/noderuntime/internal/engagesim"
)

func TestRunServesTheSimulatorUntilCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"-addr", "127.0.0.1:0", "-tenant", "t1:se:cret:acme", "-user", "ada:pw:acme",
			"-client", "nr:sec:http://127.0.0.1:9/cb", "-token-ttl", "2m", "-code-ttl", "1ns"}, pw)
		pw.Close()
	}()

	// Read the banner: the URLs are the readiness signal.
	urls := map[string]string{}
	sc := bufio.NewScanner(pr)
	for sc.Scan() && len(urls) < 5 {
		if k, v, ok := strings.Cut(sc.Text(), ": "); ok && strings.HasPrefix(strings.TrimSpace(v), "http://127.0.0.1:") {
			urls[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	base := urls["engage base URL"]
	if base == "" || urls["client credentials"] != base+"/oauth/token" || urls["authorize"] == "" || urls["admin"] == "" {
		t.Fatalf("banner URLs %v", urls)
	}

	// The tenant's secret holds a colon: only the first and last colons split.
	cc := &clientcredentials.Config{ClientID: "t1", ClientSecret: "se:cret", TokenURL: urls["client credentials"]}
	tok, err := cc.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(tok.Expiry); d > 2*time.Minute+time.Second || d < time.Minute {
		t.Fatalf("-token-ttl ignored: expires in %v", d)
	}
	c := engage.New(engage.Options{})
	defer c.CloseIdleConnections()
	resp, err := c.Search(t.Context(), engage.Target{BaseURL: base, Domain: "acme"}, tok.AccessToken,
		engage.SearchRequest{Channel: "sms", CustomerAddress: "c", BizAddress: "b"})
	if err != nil || resp.Value.ChatExist {
		t.Fatalf("search: %+v %v", resp, err)
	}
	page, err := http.Get(urls["authorize"] + "?client_id=nr&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&response_type=code&state=s" +
		"&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256")
	if err != nil {
		t.Fatal(err)
	}
	page.Body.Close()
	if page.StatusCode != http.StatusOK {
		t.Fatalf("login page: %d", page.StatusCode)
	}

	// -code-ttl 1ns: a code has expired by the time it is exchanged.
	conf := &oauth2.Config{ClientID: "nr", ClientSecret: "sec", RedirectURL: "http://127.0.0.1:9/cb",
		Endpoint: oauth2.Endpoint{AuthURL: urls["authorize"], TokenURL: urls["token"]}}
	verifier := oauth2.GenerateVerifier()
	back, err := engagesim.SignIn(t.Context(), conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), "ada", "pw")
	if err != nil || back.Query().Get("code") == "" {
		t.Fatalf("sign in: %v %v", back, err)
	}
	_, err = conf.Exchange(t.Context(), back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if re, ok := errors.AsType[*oauth2.RetrieveError](err); !ok || re.ErrorCode != "invalid_grant" {
		t.Fatalf("-code-ttl ignored: exchange %v", err)
	}

	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not stop after cancel")
	}
}

func TestRunRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-user", "ada"},
		{"-user", "ada:pw"},
		{"-code-ttl", "0s"},
		{"-tenant", "t1::acme"},
		{"-client", "id:secret"},
		{"-token-ttl", "0s"},
		{"-nope"},
		{"extra"},
	} {
		// A run that accepts the flags serves until its context ends: end it soon, so
		// that an accepted flag fails the test instead of hanging it.
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		err := run(ctx, append([]string{"-addr", "127.0.0.1:0"}, args...), io.Discard)
		if err == nil {
			t.Errorf("%v: accepted", args)
		} else if code := exitCode(err); code != 2 {
			t.Errorf("%v: exit code %d, want 2 (usage): %v", args, code, err)
		}
		cancel()
	}
}

// -help prints the flags and exits 0, as Go's commands and noderuntime do; a failure
// while running (here: the address is taken) exits 1.
func TestHelpExitsZeroAndAFailureWhileRunningExitsOne(t *testing.T) {
	var out strings.Builder
	err := run(t.Context(), []string{"-help"}, &out)
	if code := exitCode(err); code != 0 {
		t.Errorf("-help: exit code %d, want 0 (%v)", code, err)
	}
	if !strings.Contains(out.String(), "-token-ttl") {
		t.Errorf("-help printed no flags:\n%s", out.String())
	}

	taken, lerr := net.Listen("tcp", "127.0.0.1:0")
	if lerr != nil {
		t.Fatal(lerr)
	}
	defer taken.Close()
	err = run(t.Context(), []string{"-addr", taken.Addr().String()}, io.Discard)
	if code := exitCode(err); code != 1 {
		t.Errorf("a taken address: exit code %d, want 1 (%v)", code, err)
	}
}
