package httpapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/noderuntime/noderuntime/internal/authstore"
	"github.com/noderuntime/noderuntime/internal/engagesim"
)

// chromiumPath is Debian's chromium (.ci/run installs it); CHROMIUM overrides it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium"} {
		if p == "" {
			continue
		}
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Fatal("chromium is not installed: run `make test` (it installs Debian's chromium) or apt-get install chromium")
	return ""
}

// TestAdminPagesInARealBrowser drives Debian's chromium through the admin pages: sign
// in, add a Webex-login authorization, log in on the simulator's form, see the
// confirmation and the active status, delete it. Each page is saved as a screenshot in
// testdata/artifacts/<test name>/.
func TestAdminPagesInARealBrowser(t *testing.T) {
	path := chromiumPath(t)
	s := newAuthServer(t)
	artifacts := filepath.Join("testdata", "artifacts", t.Name())
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1200, 900),
	)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	if err := chromedp.Do(browser); err != nil { // starts the browser, without a deadline on it
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancel := context.WithTimeout(browser, 90*time.Second)
	defer cancel()

	step := 0
	shot := func(name string) {
		t.Helper()
		step++
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		file := filepath.Join(artifacts, strings.Join([]string{twoDigits(step), name}, "-")+".png")
		if err := os.WriteFile(file, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return strings.TrimSpace(v)
	}
	location := func() string {
		t.Helper()
		u, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		return u
	}

	// 1. The admin pages send a stranger to sign in.
	do("open the admin pages", chromedp.Navigate(s.srv.URL+"/admin/"), chromedp.WaitVisible(chromedp.CSS("#apiKey")))
	if got := location(); got != s.srv.URL+"/admin/login" {
		t.Fatalf("at %s, want the sign-in page", got)
	}
	shot("sign-in")

	// 2. Sign in with the tenant's API key.
	do("sign in", chromedp.SendKeys(chromedp.CSS("#apiKey"), azAcmeKey), chromedp.Click(chromedp.CSS("#signin")), chromedp.WaitVisible(chromedp.CSS("#tenant")))
	if got := text("#tenant"); got != "acme" {
		t.Fatalf("signed in as %q", got)
	}
	if got := text("#empty"); got != "No authorizations yet." {
		t.Fatalf("empty list says %q", got)
	}
	shot("empty-list")

	// 3. Add a Webex-login authorization.
	do("open the add page", chromedp.Click(chromedp.CSS("#add")), chromedp.WaitVisible(chromedp.CSS("#webex-form")))
	do("fill the Webex form", chromedp.SendKeys(chromedp.CSS("#webex-name"), "Browser bot"), chromedp.SendKeys(chromedp.CSS("#webex-domain"), "acme"))
	shot("add-form")
	do("authorize at Webex", chromedp.Click(chromedp.CSS("#webex-submit")), chromedp.WaitVisible(chromedp.CSS("#username")))
	if got := location(); !strings.HasPrefix(got, s.sim.AuthorizeURL()+"?") {
		t.Fatalf("at %s, want the provider's login", got)
	}
	if got := text("h1"); got != "Sign in" {
		t.Fatalf("provider page says %q", got)
	}
	shot("provider-login")

	// 4. Log in on the simulator's form and come back to the confirmation.
	do("log in at the provider",
		chromedp.SendKeys(chromedp.CSS("#username"), "alice"), chromedp.SendKeys(chromedp.CSS("#password"), azAlicePassword),
		chromedp.Click(chromedp.CSS("#login")), chromedp.WaitVisible(chromedp.CSS("#headline")))
	if got := location(); !strings.HasPrefix(got, s.srv.URL+"/oauth/callback?") {
		t.Fatalf("at %s, want the callback", got)
	}
	// The callback asks first, naming whose authorization the login completes.
	if got := text("#headline"); got != "Connect your Webex login?" {
		t.Fatalf("the callback says %q", got)
	}
	if got := text("section.card p"); !strings.Contains(got, "Browser bot of the noderuntime tenant acme") {
		t.Fatalf("the callback does not name the authorization and tenant: %q", got)
	}
	shot("confirm-login")
	do("connect", chromedp.Click(chromedp.CSS("#connect")), chromedp.WaitVisible(chromedp.CSS("#back")))
	if got := text("#headline"); got != "Authorization Browser bot added" {
		t.Fatalf("confirmation says %q", got)
	}
	shot("confirmation")

	// 5. The list shows it active.
	row := `tr[data-name="Browser bot"]`
	do("back to the list", chromedp.Click(chromedp.CSS("#back")), chromedp.WaitVisible(chromedp.CSS(row)))
	if got := text(row + " [data-status]"); got != "active" {
		t.Fatalf("status %q, want active", got)
	}
	shot("list-active")

	// 6. Delete it, with confirmation.
	do("ask to delete", chromedp.Click(chromedp.CSS(row+" a.danger")), chromedp.WaitVisible(chromedp.CSS("#confirm-delete")))
	if got := text("h1"); got != "Delete Browser bot?" {
		t.Fatalf("confirmation page says %q", got)
	}
	shot("confirm-delete")
	do("delete", chromedp.Click(chromedp.CSS("#confirm-delete")), chromedp.WaitVisible(chromedp.CSS("#notice")))
	if got := text("#notice"); got != "Authorization Browser bot deleted." {
		t.Fatalf("notice %q", got)
	}
	if got := text("#empty"); got != "No authorizations yet." {
		t.Fatalf("after delete the list says %q", got)
	}
	shot("deleted")

	if _, list := s.api("GET", "/v1/authorizations", azAcmeKey, nil); len(list["authorizations"].([]any)) != 0 {
		t.Fatalf("still listed: %v", list)
	}
	if n := s.sim.Grants(engagesim.GrantAuthorizationCode); n != 1 {
		t.Fatalf("%d code exchanges, want 1", n)
	}
	t.Logf("screenshots in %s", artifacts)
}

func twoDigits(n int) string {
	if n < 10 {
		return "0" + string(rune('0'+n))
	}
	return string(rune('0'+n/10)) + string(rune('0'+n%10))
}

// withAuthorizeRedirect puts the provider's authorize endpoint behind a redirect to
// another origin, as Webex's is (webexapis.com/v1/authorize sends the browser on to
// its identity broker).
func withAuthorizeRedirect(t *testing.T) azOption {
	return func(o *authstore.Options) {
		target := o.Webex.AuthorizeURL
		front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target+"?"+r.URL.RawQuery, http.StatusFound)
		}))
		t.Cleanup(front.Close)
		o.Webex.AuthorizeURL = front.URL + "/v1/authorize"
	}
}

// TestAdminWebexLoginStartsWhenTheProviderRedirects: the add form must reach the
// provider's login page in a real browser even when the authorize endpoint redirects
// to a host of its own. A form's navigation is held to the page's form-action on every
// redirect, and the provider's next hosts are not the service's to know.
func TestAdminWebexLoginStartsWhenTheProviderRedirects(t *testing.T) {
	path := chromiumPath(t)
	s := newAuthServer(t, withAuthorizeRedirect(t))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path), chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-dev-shm-usage", true),
	)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancel := context.WithTimeout(browser, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.srv.URL+"/admin/login"), chromedp.WaitVisible(chromedp.CSS("#apiKey")),
		chromedp.SendKeys(chromedp.CSS("#apiKey"), azAcmeKey), chromedp.Click(chromedp.CSS("#signin")), chromedp.WaitVisible(chromedp.CSS("#tenant")),
		chromedp.Navigate(s.srv.URL+"/admin/authorizations/new"), chromedp.WaitVisible(chromedp.CSS("#webex-form")),
		chromedp.SendKeys(chromedp.CSS("#webex-name"), "Redirected"), chromedp.SendKeys(chromedp.CSS("#webex-domain"), "acme"),
	); err != nil {
		t.Fatalf("sign in and fill the form: %v", err)
	}
	// A blocked navigation leaves the form on screen: wait a bounded time for the login.
	wait, cancelWait := context.WithTimeout(ctx, 15*time.Second)
	defer cancelWait()
	if err := chromedp.Do(wait, chromedp.Click(chromedp.CSS("#webex-submit")), chromedp.WaitVisible(chromedp.CSS("#username"))); err != nil {
		u, _ := chromedp.Run(ctx, chromedp.Location())
		t.Fatalf("the provider's login page never showed (%v); the browser is at %s", err, u)
	}
	if u, _ := chromedp.Run(ctx, chromedp.Location()); !strings.HasPrefix(u, s.sim.AuthorizeURL()+"?") {
		t.Fatalf("at %s, want the provider's login", u)
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#username"), "alice"), chromedp.SendKeys(chromedp.CSS("#password"), azAlicePassword),
		chromedp.Click(chromedp.CSS("#login")), chromedp.WaitVisible(chromedp.CSS("#connect")),
		chromedp.Click(chromedp.CSS("#connect")), chromedp.WaitVisible(chromedp.CSS("#back")),
	); err != nil {
		t.Fatalf("log in and connect: %v", err)
	}
	if got, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#headline"))); strings.TrimSpace(got) != "Authorization Redirected added" {
		t.Fatalf("confirmation says %q", got)
	}
	_, list := s.api("GET", "/v1/authorizations", azAcmeKey, nil)
	if got := list["authorizations"].([]any)[0].(map[string]any)["status"]; got != "active" {
		t.Fatalf("status %v, want active", got)
	}
}

// newBrowserTab starts chromium for t (1200×900) and returns a tab's context, bounded.
func newBrowserTab(t *testing.T) context.Context {
	t.Helper()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath(t)), chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1200, 900),
	)
	t.Cleanup(cancelAlloc)
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancel := context.WithTimeout(browser, 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestAdminLongNameKeepsThePagesInTheWindow: a name may be 100 characters without a space
// (an identifier, say). The pages that show it must still fit a desktop window, not
// push the table, the header's Sign out and the page sideways out of it; on a phone's
// width (the pages set a viewport) the list's table scrolls within the page.
func TestAdminLongNameKeepsThePagesInTheWindow(t *testing.T) {
	s := newAuthServer(t)
	name := strings.Repeat("Acme_Support_EU_", 7)[:100]
	id := s.createCC(name)
	ctx := newBrowserTab(t)
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.srv.URL+"/admin/login"), chromedp.WaitVisible(chromedp.CSS("#apiKey")),
		chromedp.SendKeys(chromedp.CSS("#apiKey"), azAcmeKey), chromedp.Click(chromedp.CSS("#signin")), chromedp.WaitVisible(chromedp.CSS("#tenant")),
	); err != nil {
		t.Fatalf("sign in: %v", err)
	}
	for _, width := range []int64{1200, 390} {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(width, 900)); err != nil {
			t.Fatal(err)
		}
		for _, page := range []string{"/admin/", "/admin/authorizations/new", "/admin/authorizations/" + id + "/reauthorize", "/admin/authorizations/" + id + "/delete"} {
			if err := chromedp.Do(ctx, chromedp.Navigate(s.srv.URL+page), chromedp.WaitVisible(chromedp.CSS("h1"))); err != nil {
				t.Fatalf("open %s: %v", page, err)
			}
			over, err := chromedp.Run(ctx, chromedp.Evaluate[float64]("document.documentElement.scrollWidth - document.documentElement.clientWidth"))
			if err != nil {
				t.Fatal(err)
			}
			if over > 0 {
				t.Errorf("%s is %.0f px wider than a window %d px wide", page, over, width)
			}
		}
	}
}

// TestAdminPagesWorkFromTheKeyboard: the sign-in page starts in the API key field; the
// first Tab on a page reaches a "Skip to content" link, shown when focused, that moves
// the focus past the header; a screen reader names each of the add page's two forms
// and the header's sign-out (a form without a name is announced as nothing useful).
func TestAdminPagesWorkFromTheKeyboard(t *testing.T) {
	s := newAuthServer(t)
	s.createCC("Support desk") // the list then has a row of links to Tab past
	ctx := newBrowserTab(t)
	active := func() string {
		t.Helper()
		id, err := chromedp.Run(ctx, chromedp.Evaluate[string]("document.activeElement.id"))
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(s.srv.URL+"/admin/login"), chromedp.WaitVisible(chromedp.CSS("#apiKey"))); err != nil {
		t.Fatal(err)
	}
	if got := active(); got != "apiKey" {
		t.Fatalf("the sign-in page starts with the focus on %q, want the API key field", got)
	}
	if err := chromedp.Do(ctx, chromedp.KeyEvent(azAcmeKey), chromedp.KeyEvent(kb.Enter), chromedp.WaitVisible(chromedp.CSS("#tenant"))); err != nil {
		t.Fatalf("sign in from the keyboard: %v", err)
	}

	// On the list, before its header's links and the rows'.
	if err := chromedp.Do(ctx, chromedp.KeyEvent("\t")); err != nil {
		t.Fatal(err)
	}
	if got := active(); got != "skip" {
		t.Fatalf("the first Tab reaches %q, want the skip link", got)
	}
	left, err := chromedp.Run(ctx, chromedp.Evaluate[float64]("document.activeElement.getBoundingClientRect().left"))
	if err != nil || left < 0 {
		t.Fatalf("the focused skip link is off the page (left %v): %v", left, err)
	}
	if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
	if got := active(); got != "main" {
		t.Fatalf("the skip link moved the focus to %q, want the page's main content", got)
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(s.srv.URL+"/admin/authorizations/new"), chromedp.WaitVisible(chromedp.CSS("#cc-form"))); err != nil {
		t.Fatal(err)
	}
	tree, err := chromedp.Call(ctx, accessibility.GetFullAXTree, accessibility.GetFullAXTreeParams{})
	if err != nil {
		t.Fatal(err)
	}
	var forms []string
	for _, n := range tree.Nodes {
		if n.Role != nil && string(n.Role.Value) == `"form"` {
			name := `""`
			if n.Name != nil {
				name = string(n.Name.Value)
			}
			forms = append(forms, name)
		}
	}
	if want := []string{`"Sign out"`, `"Webex login"`, `"Client credentials"`}; !slices.Equal(forms, want) {
		t.Fatalf("the add page's named forms are %v, want %v", forms, want)
	}
}
