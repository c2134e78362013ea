package engage

import "strings"

// route is the method and URL of one call.
type route struct {
	method string
	url    string
}

// endpointString lays out op's request as one URL string, from the target alone: what
// the client did before it kept its base URLs parsed (Client.endpoint), and what that
// must still give.
func endpointString(t Target, op, conversationID, participant string) (route, error) {
	if err := t.validate(); err != nil {
		return route{}, err
	}
	method, u, err := layout(strings.TrimRight(t.BaseURL, "/"), t, op, conversationID, participant)
	return route{method: method, url: u}, err
}
