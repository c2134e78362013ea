package engagesim_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/noderuntime/noderuntime/internal/engagesim"
)

func TestSignInReturnsTheRedirectWithCodeAndState(t *testing.T) {
	sim := engagesim.Start(t, engagesim.Config{
		Users:   []engagesim.User{{Username: "ada", Password: "pw", Domain: "acme"}},
		Clients: []engagesim.OAuthClient{{ID: "c", Secret: "s", RedirectURIs: []string{"http://app.test/cb"}}},
	})
	q := url.Values{"client_id": {"c"}, "redirect_uri": {"http://app.test/cb"}, "response_type": {"code"}, "state": {"st1"},
		"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}}
	back, err := engagesim.SignIn(context.Background(), sim.AuthorizeURL()+"?"+q.Encode(), "ada", "pw")
	if err != nil {
		t.Fatal(err)
	}
	if back.Host != "app.test" || back.Query().Get("state") != "st1" || back.Query().Get("code") == "" {
		t.Fatalf("redirect %s", back)
	}
	if _, err := engagesim.SignIn(context.Background(), sim.AuthorizeURL()+"?"+q.Encode(), "ada", "wrong"); err == nil {
		t.Fatal("a wrong password signed in")
	}
}
