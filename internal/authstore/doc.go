// Package authstore owns the authorizations nodes run with: their rows in Postgres with
// every secret encrypted at rest, the two ways to obtain tokens (the Webex login, an
// OAuth 2.0 authorization code flow with PKCE, and Engage's client credentials), the
// in-memory token cache of the execution path, the refresh of tokens under a row lock so
// that one replica refreshes at a time, and the invalidation of every replica's cache
// through Postgres LISTEN/NOTIFY.
//
// The execution path calls Token and, after Engage answered 401, Refresh. Every
// "this authorization cannot be used" answer of those two is an
// *outcomes.AuthorizationError; anything else (Postgres down, a ciphertext that does not
// decrypt, a token endpoint that fails) is a plain error.
//
// It knows Postgres, OAuth and the key ring; it must not know nodes, HTTP serving or
// the Engage conversation API.
package authstore
