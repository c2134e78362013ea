package engage

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Engage's path layout (ENGAGE.md §4, our decision). The capture of Connect's own node
// suggests the real layout may differ; if it does, this file is the only one to change.
//
//	search              POST   {base}/{domain}/conversations/search
//	create              POST   {base}/{domain}/conversations
//	append              POST   {base}/{domain}/conversations/{id}/messages
//	update              PATCH  {base}/{domain}/conversations/{id}
//	close               POST   {base}/{domain}/conversations/{id}/close
//	add_participant     POST   {base}/{domain}/conversations/{id}/participants
//	remove_participant  DELETE {base}/{domain}/conversations/{id}/participants/{participant}

// layout returns the method of op, and prefix (the base URL without trailing slashes, or
// its path) followed by op's path; the target is already checked. Every dynamic segment
// is path-escaped, so a conversation ID or participant with "/" or "?" cannot address
// another resource.
func layout(prefix string, t Target, op, conversationID, participant string) (string, string, error) {
	if op != OpSearch && op != OpCreate && conversationID == "" {
		return "", "", errMissing("conversation ID")
	}
	if op == OpRemoveParticipant && participant == "" {
		return "", "", errMissing("participant")
	}
	for _, s := range []string{conversationID, participant} {
		if s == "." || s == ".." {
			// Escaping leaves dots alone: the request would go to another endpoint.
			// No "engage:" of its own: the *Error the client wraps it in says so.
			return "", "", fmt.Errorf("%q is not an ID", s)
		}
	}
	var b strings.Builder
	b.Grow(len(prefix) + len(t.Domain) + len(conversationID) + len(participant) + 40)
	b.WriteString(prefix)
	b.WriteByte('/')
	b.WriteString(url.PathEscape(t.Domain))
	b.WriteString("/conversations")
	conv := func() {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(conversationID))
	}
	method := http.MethodPost
	switch op {
	case OpSearch:
		b.WriteString("/search")
	case OpCreate:
	case OpAppend:
		conv()
		b.WriteString("/messages")
	case OpUpdate:
		conv()
		method = http.MethodPatch
	case OpClose:
		conv()
		b.WriteString("/close")
	case OpAddParticipant:
		conv()
		b.WriteString("/participants")
	case OpRemoveParticipant:
		conv()
		b.WriteString("/participants/")
		b.WriteString(url.PathEscape(participant))
		method = http.MethodDelete
	default:
		return "", "", errMissing("known operation")
	}
	return method, b.String(), nil
}

// validate checks that the target can address Engage at all. Which hosts are allowed is
// the caller's policy (ENGAGE_ALLOWED_BASE_URLS), not this package's.
func (t Target) validate() error {
	if t.Domain == "" {
		return errMissing("domain")
	}
	u, err := url.Parse(t.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errMissing("absolute http(s) base URL")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return errMissing("base URL without query or fragment")
	}
	return nil
}

type missingError string

func (m missingError) Error() string { return "invalid target or request: need " + string(m) }

func errMissing(what string) error { return missingError(what) }

// maxKnownBases bounds the base URLs a Client remembers as checked; an allowlist has a
// handful.
const maxKnownBases = 256

// base is a base URL checked and parsed once. Every request URL is a copy of url with
// op's path after path: what url.Parse of the whole URL string gives, without parsing it.
type base struct {
	url  url.URL // the base URL without trailing slashes, host normalized as http.NewRequest does
	path string  // its path as written (escaped), without trailing slashes
}

// parseBase parses a checked base URL. Nil: the base URL cannot simply be extended (a
// "?" or "#" left in it puts op's path in the query or fragment); its request URLs are
// parsed whole, as they always were.
func parseBase(baseURL string) *base {
	s := strings.TrimRight(baseURL, "/")
	if strings.ContainsAny(s, "?#") {
		return nil
	}
	u, err := url.Parse(s)
	i := strings.Index(s, "://")
	if err != nil || u.Host == "" || i < 0 {
		return nil
	}
	// s is scheme://authority[path]; the authority ends at the first "/".
	path := ""
	if j := strings.IndexByte(s[i+3:], '/'); j >= 0 {
		path = s[i+3+j:]
	}
	u.Host = removeEmptyPort(u.Host)
	return &base{url: *u, path: path}
}

// removeEmptyPort is net/http's: "host:" is "host".
func removeEmptyPort(host string) string {
	if strings.LastIndex(host, ":") > strings.LastIndex(host, "]") {
		return strings.TrimSuffix(host, ":")
	}
	return host
}

// endpoint returns the method and URL of op's request. The check and the parse of a base
// URL are done once per base URL, not once per call (the tests hold the result to the
// plain layout of the whole URL string, parsed: endpointString).
func (c *Client) endpoint(t Target, op, conversationID, participant string) (string, *url.URL, error) {
	c.basesMu.RLock()
	b, known := c.bases[t.BaseURL]
	c.basesMu.RUnlock()
	if !known || t.Domain == "" {
		if err := t.validate(); err != nil {
			return "", nil, err
		}
		b = parseBase(t.BaseURL)
		c.basesMu.Lock()
		if len(c.bases) < maxKnownBases {
			c.bases[t.BaseURL] = b
		}
		c.basesMu.Unlock()
	}
	if b == nil {
		method, s, err := layout(strings.TrimRight(t.BaseURL, "/"), t, op, conversationID, participant)
		if err != nil {
			return "", nil, err
		}
		u, err := url.Parse(s)
		if err != nil {
			return "", nil, err
		}
		u.Host = removeEmptyPort(u.Host)
		return method, u, nil
	}
	method, p, err := layout(b.path, t, op, conversationID, participant)
	if err != nil {
		return "", nil, err
	}
	u := new(url.URL)
	*u = b.url
	// url.URL.setPath: Path unescaped, RawPath only when the default escaping differs.
	if u.Path, err = url.PathUnescape(p); err != nil {
		return "", nil, err
	}
	u.RawPath = ""
	if u.EscapedPath() != p {
		u.RawPath = p
	}
	return method, u, nil
}
