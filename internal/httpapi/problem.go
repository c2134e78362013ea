package httpapi

import (
	"encoding/json"
	"log/slog"
	"net/http"
)

// ProblemCode names a kind of non-outcome error. Codes are stable: clients may match on
// them; each is documented in docs/problems.md.
type ProblemCode string

const (
	CodeBadRequest           ProblemCode = "bad_request"
	CodeUnauthorized         ProblemCode = "unauthorized"
	CodeNotFound             ProblemCode = "not_found"
	CodeMethodNotAllowed     ProblemCode = "method_not_allowed"
	CodeConflict             ProblemCode = "conflict"
	CodePayloadTooLarge      ProblemCode = "payload_too_large"
	CodeUnsupportedMediaType ProblemCode = "unsupported_media_type"
	CodeUnprocessable        ProblemCode = "unprocessable"
	CodeNotReady             ProblemCode = "not_ready"
	CodeInternal             ProblemCode = "internal"
	CodeUnavailable          ProblemCode = "unavailable"
	CodeOverloaded           ProblemCode = "overloaded"
)

var problemTitles = map[ProblemCode]string{
	CodeBadRequest:           "Bad request",
	CodeUnauthorized:         "Unauthorized",
	CodeNotFound:             "Not found",
	CodeMethodNotAllowed:     "Method not allowed",
	CodeConflict:             "Conflict",
	CodePayloadTooLarge:      "Payload too large",
	CodeUnsupportedMediaType: "Unsupported media type",
	CodeUnprocessable:        "Unprocessable content",
	CodeNotReady:             "Not ready",
	CodeInternal:             "Internal server error",
	CodeUnavailable:          "Service unavailable",
	CodeOverloaded:           "Overloaded",
}

// Problem is an RFC 9457 problem document.
type Problem struct {
	Type      string         `json:"type"`
	Title     string         `json:"title"`
	Status    int            `json:"status"`
	Detail    string         `json:"detail,omitempty"`
	Instance  string         `json:"instance,omitempty"`
	Code      ProblemCode    `json:"code"`
	RequestID string         `json:"requestId,omitempty"`
	Extra     map[string]any `json:"-"`
}

// MarshalJSON flattens Extra members next to the standard ones, as RFC 9457 allows.
func (p Problem) MarshalJSON() ([]byte, error) {
	type plain Problem
	base, err := json.Marshal(plain(p))
	if err != nil || len(p.Extra) == 0 {
		return base, err
	}
	extra, err := json.Marshal(p.Extra)
	if err != nil {
		return nil, err
	}
	out := append(base[:len(base)-1], ',')
	return append(out, extra[1:]...), nil
}

// NewProblem builds a problem of the given kind.
func NewProblem(status int, code ProblemCode, detail string) Problem {
	return Problem{
		Type:   "urn:noderuntime:problem:" + string(code),
		Title:  problemTitles[code],
		Status: status,
		Detail: detail,
		Code:   code,
	}
}

// bearerChallenge is the WWW-Authenticate of every 401 (RFC 9110 wants one): the
// credential is an API key sent as a bearer token, or typed into the admin sign-in.
const bearerChallenge = `Bearer realm="noderuntime"`

// WriteProblem answers with p as application/problem+json, and names its code on the
// request's access-log line: the request ID the caller has finds why it failed.
func WriteProblem(w http.ResponseWriter, r *http.Request, p Problem) {
	p.RequestID = RequestID(r.Context())
	AnnotateLog(r.Context(), slog.String("errorCode", string(p.Code)))
	if p.Code == CodeOverloaded {
		if st := stateOf(r.Context()); st != nil {
			st.refusal = true
		}
	}
	if p.Instance == "" {
		// A URI reference (RFC 9457 §3.1.5): the path as it came, escaped, not decoded
		// (a space, a backslash or a NUL would make it none).
		p.Instance = r.URL.EscapedPath()
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	if p.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", bearerChallenge)
	}
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// WriteJSON answers with v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
