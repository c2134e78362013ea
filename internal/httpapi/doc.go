// Package httpapi is the service's HTTP edge: the chi router, the middleware every
// request passes (request ID, access log, metrics, panic recovery, limits, API-key
// authentication), RFC 9457 problem responses, and the handlers that wire the node
// runtime and the authorization store to the HTTP contract of DESIGN.md.
//
// Handlers stay short: decoding, limits and errors are handled in one place here, and
// the work itself belongs to internal/nodes and internal/authstore.
package httpapi
