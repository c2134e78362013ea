// Package engagesim is an in-memory Webex Engage for tests, the standalone simulator
// (cmd/engagesim) and `noderuntime dev`. It serves, on one http.Handler:
//
//   - the OAuth 2.0 authorization server of the "Webex login" kind: /oauth/authorize
//     (an HTML login form) and /oauth/token (authorization_code with PKCE S256,
//     refresh_token with rotation and family revocation);
//   - the client-credentials token endpoint of the standalone kind: {base}/oauth/token;
//   - the conversation API of ../shared/ENGAGE.md §4 under {base}/{domain}/..., with the
//     {status, code, description, value, tid} envelope;
//   - an admin API under /_sim/ (JSON) for faults, counters, credentials and seeding.
//
// {base} is URL()+"/api/v1". Tests drive the same things through Go methods: seeding
// conversations, injecting faults, changing credentials, reading counters.
//
// It models Engage as ENGAGE.md decides it; it must not import the client
// (internal/engage), so that a wire-key mistake in one is caught by the other.
// The admin API has no authentication: never expose the simulator beyond loopback.
package engagesim
