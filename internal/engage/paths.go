package engage

import (
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

// route is the method and URL of one call.
type route struct {
	method string
	url    string
}

// endpoint builds the method and URL for op. Every dynamic segment is path-escaped, so a
// conversation ID or participant with "/" or "?" cannot address another resource.
func endpoint(t Target, op, conversationID, participant string) (route, error) {
	if err := t.validate(); err != nil {
		return route{}, err
	}
	return layout(t, op, conversationID, participant)
}

// layout is endpoint after the target's check.
func layout(t Target, op, conversationID, participant string) (route, error) {
	if op != OpSearch && op != OpCreate && conversationID == "" {
		return route{}, errMissing("conversation ID")
	}
	if op == OpRemoveParticipant && participant == "" {
		return route{}, errMissing("participant")
	}
	var b strings.Builder
	b.Grow(len(t.BaseURL) + len(t.Domain) + len(conversationID) + len(participant) + 40)
	b.WriteString(strings.TrimRight(t.BaseURL, "/"))
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
		return route{}, errMissing("known operation")
	}
	return route{method: method, url: b.String()}, nil
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

// endpoint is the package's endpoint with the check of a base URL (a url.Parse) done
// once per base URL instead of once per call.
func (c *Client) endpoint(t Target, op, conversationID, participant string) (route, error) {
	c.basesMu.RLock()
	_, known := c.bases[t.BaseURL]
	c.basesMu.RUnlock()
	if known && t.Domain != "" {
		return layout(t, op, conversationID, participant)
	}
	rt, err := endpoint(t, op, conversationID, participant)
	if err == nil {
		c.basesMu.Lock()
		if len(c.bases) < maxKnownBases {
			c.bases[t.BaseURL] = struct{}{}
		}
		c.basesMu.Unlock()
	}
	return rt, err
}
