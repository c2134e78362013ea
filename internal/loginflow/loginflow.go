// Package loginflow finishes a Webex login the way a person does in a browser: it opens
// the service's /oauth/callback the provider sent them back to, and answers its
// confirmation page. `noderuntime dev` adds its demo authorization with it, and the
// tests their Webex logins.
//
// It knows only what a browser sees (the page's headline, its hidden fields), never the
// service's own packages: the page it reads is internal/httpapi's, and a change there
// shows here as a failed Finish.
package loginflow

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// The confirmation page's title, which Finish looks for.
const ConfirmHeadline = "Connect your Webex login?"

var hiddenField = regexp.MustCompile(`<input type="hidden" name="(state|code)" value="([^"]*)">`)

// Finish opens callback (the URL the provider redirected to) with c, checks that it asks
// to confirm, and answers with action, "connect" or "cancel". It returns the answer and
// its page; confirm is the confirmation page itself, for checks of what it says.
func Finish(ctx context.Context, c *http.Client, callback, action string) (resp *http.Response, page, confirm string, err error) {
	u, err := url.Parse(callback)
	if ue, ok := errors.AsType[*url.Error](err); ok {
		// Not ue itself: it quotes the whole URL, and the callback's query holds the
		// login's code and state.
		return nil, "", "", fmt.Errorf("the callback is not a URL: %w", ue.Err)
	}
	if err != nil {
		return nil, "", "", err
	}
	confirm, status, err := get(ctx, c, callback)
	if err != nil {
		return nil, "", "", err
	}
	if status != http.StatusOK || !strings.Contains(confirm, ConfirmHeadline) {
		return nil, "", confirm, fmt.Errorf("the callback did not ask to confirm: %d", status)
	}
	form := url.Values{"action": {action}}
	for _, m := range hiddenField.FindAllStringSubmatch(confirm, -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	target := u.Scheme + "://" + u.Host + u.Path
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, "", confirm, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = c.Do(req)
	if err != nil {
		return nil, "", confirm, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, string(body), confirm, err
}

func get(ctx context.Context, c *http.Client, u string) (string, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", 0, err
	}
	resp, err := c.Do(req)
	if ue, ok := errors.AsType[*url.Error](err); ok {
		// It names the whole URL, and the callback's query holds the login's code and
		// state.
		ue.URL = req.URL.Scheme + "://" + req.URL.Host + req.URL.Path
	}
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), resp.StatusCode, err
}
