package engagesim

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// SignIn does what a person does on the login page: it opens authorizeURL, signs in as
// username, and returns where the simulator sends the browser back (the client's
// redirect URI with code and state, or with an OAuth error). It does not follow that
// redirect. For `noderuntime dev`, benchmarks and tests that need a real login without a
// browser.
func SignIn(ctx context.Context, authorizeURL, username, password string) (*url.URL, error) {
	u, err := url.Parse(authorizeURL)
	if err != nil {
		return nil, fmt.Errorf("engagesim: authorize URL: %w", err)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get, err := http.NewRequestWithContext(ctx, http.MethodGet, authorizeURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(get)
	if err != nil {
		return nil, fmt.Errorf("engagesim: open login page: %w", err)
	}
	page, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("engagesim: login page answered %d: %s", resp.StatusCode, firstLine(page))
	}
	form := u.Query()
	form.Set("username", username)
	form.Set("password", password)
	form.Set("action", "login")
	post, err := http.NewRequestWithContext(ctx, http.MethodPost, u.Scheme+"://"+u.Host+u.Path, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	post.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = client.Do(post)
	if err != nil {
		return nil, fmt.Errorf("engagesim: sign in: %w", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
		return nil, fmt.Errorf("engagesim: sign in answered %d: %s", resp.StatusCode, firstLine(body))
	}
	return resp.Location()
}

func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
