package engagesim

import (
	"io"
	"net/http"
	"strings"
)

// Canned is an Engage that answers every call from memory with one fixed 200 answer,
// without a network or a simulator behind it. Benchmarks use it as the client's
// transport so that their figures are the runtime's own work alone.
type Canned struct{ Body string }

// RoundTrip implements http.RoundTripper.
func (c Canned) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	return &http.Response{
		StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(strings.NewReader(c.Body)),
		ContentLength: int64(len(c.Body)),
		Request:       r,
	}, nil
}
