// Package engage is the typed HTTP client of Webex Engage: the one place in noderuntime
// that knows Engage's URL layout, its JSON wire keys and its response envelope, and that
// classifies every failure into a small set of kinds a node can map to an outcome
// (see ../shared/ENGAGE.md §4).
//
// It knows nothing of nodes, outcomes, tokens' origin or Postgres: a caller hands it a
// Target (base URL and domain), a bearer token and a typed request, and gets a typed
// response or an *Error. It never retries and never logs; deadlines come from the
// caller's context. Tokens never appear in errors.
package engage
