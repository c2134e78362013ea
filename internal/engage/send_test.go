package engage

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// The client used to send every call with http.Client.Do and http.NewRequestWithContext;
// it now builds its requests and calls its RoundTripper itself. These tests hold it to
// what those did, field by field and error by error.

// viaDo is how the client sent a request before.
func viaDo(rt http.RoundTripper) func(*http.Request) (*http.Response, error) {
	hc := &http.Client{
		Transport:     rt,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return hc.Do
}

// oldRequest is how the client built a request before.
func oldRequest(ctx context.Context, t *testing.T, tg Target, op, conv, participant, token string, body []byte) *http.Request {
	t.Helper()
	rt, err := endpointString(tg, op, conv, participant)
	if err != nil {
		t.Fatalf("%+v %s: %v", tg, op, err)
	}
	var rd io.Reader = http.NoBody
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, rt.method, rt.url, rd)
	if err != nil {
		t.Fatalf("%+v %s: %v", tg, op, err)
	}
	req.Header["Authorization"] = []string{"Bearer " + token}
	req.Header["Accept"] = jsonType
	req.Header["User-Agent"] = []string{"noderuntime"}
	if body != nil {
		req.Header["Content-Type"] = jsonType
		req.ContentLength = int64(len(body))
	}
	return req
}

// newRequestFor is how the client builds a request now.
func newRequestFor(ctx context.Context, t *testing.T, c *Client, tg Target, op, conv, participant, token string, body []byte) *http.Request {
	t.Helper()
	method, u, err := c.endpoint(tg, op, conv, participant)
	if err != nil {
		t.Fatalf("%+v %s: %v", tg, op, err)
	}
	return c.newRequest(ctx, method, u, token, body)
}

func readBody(t *testing.T, rc io.ReadCloser) string {
	t.Helper()
	if rc == nil {
		return "<nil>"
	}
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRequestsAreThoseNewRequestMade(t *testing.T) {
	t.Parallel()
	type ctxKey struct{}
	ctx := context.WithValue(t.Context(), ctxKey{}, 1)
	bases := []string{
		"https://api-us-site-1.imiengage.io/api/v1",
		"https://api-us-site-1.imiengage.io/api/v1/",
		"https://api-us-site-1.imiengage.io/api/v1///",
		"https://api-us-site-1.imiengage.io",
		"https://api-us-site-1.imiengage.io/",
		"HTTPS://API.example/API",
		"http://127.0.0.1:8080/api/v1",
		"http://127.0.0.1:/api/v1",
		"http://[::1]:8080/api",
		"http://[::1]:/api",
		"https://user:secret@x.example/api",
		"https://user@x.example:443/api",
		"https://x.example/a%2Fb/v1",
		"https://x.example/a%2F/",
		"https://x.example/a b/v1",
		"https://x.example/a!b(c)*/v1",
		"https://x.example/caf%C3%A9/v1",
		"https://x.example/café/v1",
		"https://x.example/a;b=c,d:e@f$g&h+i/v1",
		"https://x.example/api?",
		"https://x.example/api/?",
		"https://x.example/api#",
		"https://x.example/api/#",
		"https://x.example/api/?#",
	}
	calls := []struct{ op, conv, participant string }{
		{OpSearch, "", ""},
		{OpCreate, "", ""},
		{OpAppend, "c/1?x#y %z", ""},
		{OpUpdate, "c1", ""},
		{OpClose, "é", ""},
		{OpAddParticipant, "c1", ""},
		{OpRemoveParticipant, "c1", "agent/7 ?#%2F"},
	}
	c := New(Options{})
	for _, baseURL := range bases {
		for _, domain := range []string{"acme", "acme corp/x"} {
			tg := Target{BaseURL: baseURL, Domain: domain}
			if err := tg.validate(); err != nil {
				t.Fatalf("%s is not a valid base URL: %v", baseURL, err)
			}
			for _, call := range calls {
				for _, body := range [][]byte{nil, []byte(`{"text":"hi"}` + "\n")} {
					name := fmt.Sprintf("%s %q %s %q %q body %v", baseURL, domain, call.op, call.conv, call.participant, body != nil)
					// Twice: the first call checks the base URL, the second uses the check.
					for range 2 {
						want := oldRequest(ctx, t, tg, call.op, call.conv, call.participant, "tok", body)
						got := newRequestFor(ctx, t, c, tg, call.op, call.conv, call.participant, "tok", body)
						compareRequests(t, name, got, want)
					}
				}
			}
		}
	}
}

func compareRequests(t *testing.T, name string, got, want *http.Request) {
	t.Helper()
	if !reflect.DeepEqual(*got.URL, *want.URL) {
		t.Errorf("%s: URL\n got %#v\nwant %#v", name, *got.URL, *want.URL)
	}
	if got.URL.String() != want.URL.String() || got.URL.RequestURI() != want.URL.RequestURI() {
		t.Errorf("%s: URL %s %s, want %s %s", name, got.URL, got.URL.RequestURI(), want.URL, want.URL.RequestURI())
	}
	if got.Method != want.Method || got.Host != want.Host || got.Proto != want.Proto ||
		got.ProtoMajor != want.ProtoMajor || got.ProtoMinor != want.ProtoMinor ||
		got.ContentLength != want.ContentLength || got.Context() != want.Context() ||
		!reflect.DeepEqual(got.Header, want.Header) ||
		(got.GetBody == nil) != (want.GetBody == nil) ||
		(got.Body == http.NoBody) != (want.Body == http.NoBody) ||
		got.Close != want.Close || got.TransferEncoding != nil || got.Trailer != nil {
		t.Errorf("%s:\n got %+v\nwant %+v", name, got, want)
	}
	if g, w := readBody(t, got.Body), readBody(t, want.Body); g != w {
		t.Errorf("%s: body %q, want %q", name, g, w)
	}
	if got.GetBody != nil {
		for range 2 {
			g, _ := got.GetBody()
			w, _ := want.GetBody()
			if gs, ws := readBody(t, g), readBody(t, w); gs != ws {
				t.Errorf("%s: GetBody %q, want %q", name, gs, ws)
			}
		}
	}
}

// rtFunc is a RoundTripper that answers what its function does, and counts its calls.
type rtFunc struct {
	f     func(*http.Request) (*http.Response, error)
	calls *int
}

func (r rtFunc) RoundTrip(req *http.Request) (*http.Response, error) {
	*r.calls++
	if req.Body != nil {
		_, _ = io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	return r.f(req)
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestSendAnswersAndFailsAsDoDid(t *testing.T) {
	// Do logs "RoundTripper returned a response & error"; the client does not log.
	prev := log.Writer()
	log.SetOutput(io.Discard)
	defer log.SetOutput(prev)

	answer := func(status int, header http.Header, body string) func(*http.Request) (*http.Response, error) {
		return func(req *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: status, Header: header, Request: req, ContentLength: int64(len(body)),
				Body: io.NopCloser(strings.NewReader(body))}, nil
		}
	}
	loc := func(l string) http.Header { return http.Header{"Location": {l}} }
	cases := map[string]func(*http.Request) (*http.Response, error){
		"200":                        answer(200, http.Header{}, `{"status":200}`),
		"404":                        answer(404, http.Header{}, `{"status":404}`),
		"304 with a bad Location":    answer(304, loc("%zz"), ""),
		"300 with a bad Location":    answer(300, loc("%zz"), ""),
		"301 without Location":       answer(301, http.Header{}, "moved"),
		"302 with a Location":        answer(302, loc("https://elsewhere.example/x?tok"), "found"),
		"302 with a relative one":    answer(302, loc("/x"), "found"),
		"303 with a bad Location":    answer(303, loc("%zz"), "see other"),
		"307 with a bad Location":    answer(307, loc("http://a b.example/"), ""),
		"308 with a bad Location":    answer(308, loc(":nope"), ""),
		"308 with a Location":        answer(308, loc("https://elsewhere.example/"), ""),
		"301 with a bad Location":    answer(301, loc("http://[::1"), ""),
		"302 with an empty Location": answer(302, http.Header{"Location": {""}}, ""),
		"bad Location, other request URL": func(req *http.Request) (*http.Response, error) {
			other, _ := http.NewRequest("GET", "https://u:p@other.example/y", nil)
			return &http.Response{StatusCode: 302, Header: loc("%zz"), Request: other, Body: http.NoBody}, nil
		},
		"bad Location, no request": func(req *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: 302, Header: loc("%zz"), Body: http.NoBody}, nil
		},
		"error":       func(*http.Request) (*http.Response, error) { return nil, errors.New("boom") },
		"net timeout": func(*http.Request) (*http.Response, error) { return nil, timeoutErr{} },
		"deadline":    func(*http.Request) (*http.Response, error) { return nil, context.DeadlineExceeded },
		"canceled":    func(*http.Request) (*http.Response, error) { return nil, context.Canceled },
		"refused": func(*http.Request) (*http.Response, error) {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
		},
		"HTTP to HTTPS": func(*http.Request) (*http.Response, error) {
			return nil, tls.RecordHeaderError{RecordHeader: [5]byte{'H', 'T', 'T', 'P', '/'}}
		},
		"bad TLS record": func(*http.Request) (*http.Response, error) {
			return nil, tls.RecordHeaderError{RecordHeader: [5]byte{1, 2, 3, 4, 5}}
		},
		"answer & error": func(req *http.Request) (*http.Response, error) {
			r, _ := answer(200, nil, "x")(req)
			return r, errors.New("both")
		},
		"nil, nil": func(*http.Request) (*http.Response, error) { return nil, nil },
		"nil body": func(req *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: 200, Request: req}, nil
		},
		"nil body, -1": func(req *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: 200, ContentLength: -1}, nil
		},
		"nil body, 5": func(req *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: 200, ContentLength: 5}, nil
		},
		"302, nil body": func(req *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: 302, Header: loc("/x")}, nil
		},
		"302, bad, nobod": func(req *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: 302, Header: loc("%zz")}, nil
		},
	}
	ctx := t.Context()
	for name, f := range cases {
		for _, baseURL := range []string{"https://x.example/api/v1", "https://user:secret@x.example/api/v1"} {
			for _, op := range []string{OpSearch, OpClose, OpUpdate, OpRemoveParticipant} {
				var body []byte
				if op != OpClose && op != OpRemoveParticipant {
					body = []byte(`{"a":1}` + "\n")
				}
				tg := Target{BaseURL: baseURL, Domain: "acme"}
				var newCalls, oldCalls int
				c := New(Options{Transport: rtFunc{f, &newCalls}})
				got, gotErr := c.send(newRequestFor(ctx, t, c, tg, op, "c1", "p1", "tok", body))
				want, wantErr := viaDo(rtFunc{f, &oldCalls})(oldRequest(ctx, t, tg, op, "c1", "p1", "tok", body))
				where := fmt.Sprintf("%s, %s, %s", name, baseURL, op)
				if newCalls != 1 || oldCalls != 1 {
					t.Errorf("%s: %d round trips, Do made %d", where, newCalls, oldCalls)
				}
				if wantErr != nil && strings.Contains(wantErr.Error(), "failed to parse Location header") {
					// Where send departs from Do on purpose: a redirect with a Location
					// Do cannot parse is still an answer (a bad one), not a failed
					// connection that a search would retry.
					if gotErr != nil || got == nil || got.StatusCode < 300 || got.StatusCode > 399 {
						t.Errorf("%s: got %v, %v; want the redirect as an answer", where, got, gotErr)
					}
					if got != nil {
						got.Body.Close()
					}
					continue
				}
				compareErrors(t, where, gotErr, wantErr)
				if (got == nil) != (want == nil) {
					t.Fatalf("%s: response %v, Do answered %v", where, got, want)
				}
				if got != nil {
					if got.StatusCode != want.StatusCode || !reflect.DeepEqual(got.Header, want.Header) {
						t.Errorf("%s: answer %d %v, Do answered %d %v", where, got.StatusCode, got.Header, want.StatusCode, want.Header)
					}
					if g, w := readBody(t, got.Body), readBody(t, want.Body); g != w {
						t.Errorf("%s: body %q, Do's %q", where, g, w)
					}
				}
			}
		}
	}
}

func compareErrors(t *testing.T, where string, got, want error) {
	t.Helper()
	if (got == nil) != (want == nil) {
		t.Fatalf("%s: error %v, Do's %v", where, got, want)
	}
	if got == nil {
		return
	}
	if got.Error() != want.Error() {
		t.Errorf("%s: error\n got %q\nwant %q", where, got, want)
	}
	gu, gok := errors.AsType[*url.Error](got)
	wu, wok := errors.AsType[*url.Error](want)
	if !gok || !wok || gu.Op != wu.Op || gu.URL != wu.URL || gu.Timeout() != wu.Timeout() ||
		reflect.TypeOf(gu.Err) != reflect.TypeOf(wu.Err) {
		t.Errorf("%s: error %#v, Do's %#v", where, got, want)
	}
	for _, target := range []error{context.DeadlineExceeded, context.Canceled, http.ErrSchemeMismatch} {
		if errors.Is(got, target) != errors.Is(want, target) {
			t.Errorf("%s: errors.Is(%v) differs from Do's", where, target)
		}
	}
	// What the classification sees is the same.
	ctx := context.Background()
	if g, w := transportError(ctx, OpSearch, got), transportError(ctx, OpSearch, want); g.Kind != w.Kind {
		t.Errorf("%s: kind %s, Do's %s", where, g.Kind, w.Kind)
	}
}
