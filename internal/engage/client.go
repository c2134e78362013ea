package engage

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// defaultMaxResponseBytes bounds how much of an answer the client reads.
const defaultMaxResponseBytes = 1 << 20

// Observer sees every call that reached the network: op is one of the Op constants,
// status the HTTP status as a string ("200", "404", ...) or "timeout", "canceled",
// "transport_error" when no complete answer arrived.
type Observer interface {
	ObserveEngageCall(op string, status string, d time.Duration)
}

// The status labels (Observer) of calls without a complete HTTP answer; not to be
// confused with the conversation statuses (StatusQueued, ...).
const (
	labelTimeout        = "timeout"
	labelCanceled       = "canceled"
	labelTransportError = "transport_error"
)

// Options configure a Client. The zero value is usable.
type Options struct {
	// Transport carries the requests. Nil: one tuned *http.Transport with keep-alives,
	// shared by every call of this Client.
	Transport http.RoundTripper
	// MaxResponseBytes bounds the body read; larger answers fail as KindUpstream.
	// Zero or less: 1 MiB (defaultMaxResponseBytes).
	MaxResponseBytes int64
	// Observer, if set, sees every call's operation, status and duration.
	Observer Observer
	// UserAgent is sent with every call; empty: "noderuntime".
	UserAgent string
	// Breaker, if set, puts a circuit breaker in front of each Engage base URL and domain.
	Breaker *BreakerOptions
}

// Client calls Engage. It is safe for concurrent use; make one per process and share it.
type Client struct {
	rt        http.RoundTripper // called directly, not through an http.Client (see send)
	max       int64
	obs       Observer
	userAgent []string

	basesMu  sync.RWMutex
	bases    map[string]*base // base URLs already checked (Client.endpoint)
	breakers *breakers
}

// New returns a Client.
func New(opts Options) *Client {
	rt := opts.Transport
	if rt == nil {
		rt = NewTransport()
	}
	max := opts.MaxResponseBytes
	if max <= 0 {
		max = defaultMaxResponseBytes
	}
	ua := opts.UserAgent
	if ua == "" {
		ua = "noderuntime"
	}
	var br *breakers
	if opts.Breaker != nil {
		br = newBreakers(*opts.Breaker)
	}
	return &Client{
		breakers:  br,
		rt:        rt,
		max:       max,
		obs:       opts.Observer,
		userAgent: []string{ua},
		bases:     map[string]*base{},
	}
}

// NewTransport returns the transport a Client uses by default: keep-alives, enough idle
// connections per host for a busy replica talking to one regional Engage, bounded dial and
// TLS handshake. Request deadlines come from contexts, not from here.
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// CloseIdleConnections closes the idle keep-alive connections of the transport.
func (c *Client) CloseIdleConnections() {
	if t, ok := c.rt.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
}

// Search looks for the conversation of a customer on a channel.
func (c *Client) Search(ctx context.Context, t Target, token string, req SearchRequest) (*SearchResponse, error) {
	w, env, err := call[searchWire](ctx, c, OpSearch, t, token, "", "", &req)
	if err != nil {
		return nil, err
	}
	v := &w.Value
	return &SearchResponse{Envelope: env, Value: SearchValue{
		ConversationID: string(v.ConversationID),
		AliasID:        string(v.AliasID),
		ChatExist:      bool(v.ChatExist),
		Status:         string(v.Status),
		TeamID:         string(v.TeamID),
		UserID:         string(v.UserID),
	}}, nil
}

// Create starts a conversation with its first message(s).
func (c *Client) Create(ctx context.Context, t Target, token string, req CreateRequest) (*CreateResponse, error) {
	w, env, err := call[createWire](ctx, c, OpCreate, t, token, "", "", &req)
	if err != nil {
		return nil, err
	}
	return &CreateResponse{Envelope: env, TID: string(w.TID), ConversationID: string(w.Value.ConversationID)}, nil
}

// Append adds a message to a conversation.
func (c *Client) Append(ctx context.Context, t Target, token, conversationID string, msg Message) (*MutationResponse, error) {
	return c.mutate(ctx, OpAppend, t, token, conversationID, "", &msg)
}

// Update changes a conversation's alias ID and/or status (re-open: Status "queued").
func (c *Client) Update(ctx context.Context, t Target, token, conversationID string, req UpdateRequest) (*MutationResponse, error) {
	return c.mutate(ctx, OpUpdate, t, token, conversationID, "", &req)
}

// Close closes a conversation.
func (c *Client) Close(ctx context.Context, t Target, token, conversationID string) (*MutationResponse, error) {
	return c.mutate(ctx, OpClose, t, token, conversationID, "", nil)
}

// AddParticipant adds an agent to a conversation.
func (c *Client) AddParticipant(ctx context.Context, t Target, token, conversationID, participant string) (*MutationResponse, error) {
	if participant == "" {
		return nil, &Error{Op: OpAddParticipant, Kind: KindInvalidRequest, Err: errMissing("participant")}
	}
	return c.mutate(ctx, OpAddParticipant, t, token, conversationID, "", &participantRequest{Participant: participant})
}

// RemoveParticipant removes an agent from a conversation.
func (c *Client) RemoveParticipant(ctx context.Context, t Target, token, conversationID, participant string) (*MutationResponse, error) {
	return c.mutate(ctx, OpRemoveParticipant, t, token, conversationID, participant, nil)
}

func (c *Client) mutate(ctx context.Context, op string, t Target, token, conversationID, participant string, body any) (*MutationResponse, error) {
	w, env, err := call[noValue](ctx, c, op, t, token, conversationID, participant, body)
	if err != nil {
		return nil, err
	}
	return &MutationResponse{Envelope: env, TID: string(w.TID)}, nil
}

// call does one request and decodes a 2xx envelope whose value is V. Every failure is an
// *Error, scrubbed of the token.
func call[V any](ctx context.Context, c *Client, op string, t Target, token, conversationID, participant string, body any) (*wire[V], Envelope, error) {
	w := new(wire[V])
	status, raw, err := c.roundTrip(ctx, op, t, token, conversationID, participant, body, func(raw []byte) error {
		if err := decodeObject(raw, w); err != nil {
			return err
		}
		if w.Status == 0 && w.Code == 0 && !hasEnvelopeKeys(raw) {
			// A gateway's {} or {"message": ...} is not Engage's answer with a 2xx either:
			// a search would read it as "no conversation", a mutation as done.
			return errNoEnvelope
		}
		if w.Status != 0 && (w.Status < 200 || w.Status > 299) {
			// Engage's envelope repeats the HTTP status; one that says a refusal in a
			// 2xx answer is not read as done (a flow would take the success edge of a
			// mutation that did not happen), nor guessed into the refusal it names.
			return fmt.Errorf("the envelope's status %d is not a success, in a 2xx answer", w.Status)
		}
		if v, ok := any(&w.Value).(completer); ok {
			return v.complete()
		}
		return nil
	})
	if err != nil {
		return nil, Envelope{}, err.scrub(token)
	}
	return w, w.envelope(status, raw), nil
}

// completer is a value that says what a success must hold: one without it is a
// malformed answer, KindUpstream, which counts against the breaker as any other does.
type completer interface {
	complete() error
}

// roundTrip sends one request and decodes a 2xx answer with decode; it returns the
// status and body of that answer, and anything else as a classified *Error. A 2xx answer
// that does not decode is KindUpstream and counts against the breaker like a 5xx.
func (c *Client) roundTrip(ctx context.Context, op string, t Target, token, conversationID, participant string, body any, decode func([]byte) error) (int, []byte, *Error) {
	method, u, err := c.endpoint(t, op, conversationID, participant)
	if err != nil {
		return 0, nil, &Error{Op: op, Kind: KindInvalidRequest, Err: err}
	}
	payload, err := encodeBody(body)
	if err != nil {
		return 0, nil, &Error{Op: op, Kind: KindInvalidRequest, Err: err}
	}
	if ctx == nil { // as http.NewRequestWithContext
		return 0, nil, &Error{Op: op, Kind: KindInvalidRequest, Err: errors.New("net/http: nil Context")}
	}
	req := c.newRequest(ctx, method, u, token, payload)

	var done func(error)
	if c.breakers != nil {
		if done, err = c.breakers.get(t).Allow(); err != nil {
			return 0, nil, &Error{Op: op, Kind: KindCircuitOpen, Err: errors.New("engage at this base URL is failing for this domain; calls are refused for a few seconds")}
		}
	}
	start := time.Now()
	status, raw, e := c.exchange(ctx, op, req)
	if e == nil {
		// Before anything reads it: a 2xx answer becomes output variables (Search's
		// responsePayload and description), idempotency records and error texts.
		raw = withoutToken(raw, token)
		if derr := decode(raw); derr != nil {
			e = &Error{Op: op, Kind: KindUpstream, HTTPStatus: status, Raw: raw, Err: fmt.Errorf("malformed answer: %w", derr)}
			// What the envelope says can often still be read (a refusal inside a 2xx, a
			// value of the wrong shape): the failure carries Engage's code and
			// description, as every failure Engage answered does (ENGAGE.md §2).
			e.Code, e.Description = readableEnvelope(raw)
		}
	}
	if done != nil {
		done(breakerResult(e))
	}
	if c.obs != nil {
		c.obs.ObserveEngageCall(op, statusLabel(status, e), time.Since(start))
	}
	return status, raw, e
}

// encodeBody is the JSON of a request body; nil for none.
func encodeBody(body any) ([]byte, error) {
	if a, ok := body.(jsonAppender); ok {
		return a.appendJSON(make([]byte, 0, 128)), nil
	}
	if body == nil {
		return nil, nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Engage gets text as written: "<" stays "<", not "\u003c".
	enc.SetEscapeHTML(false)
	if err := enc.Encode(body); err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	return buf.Bytes(), nil
}

var jsonType = []string{"application/json"}

// newRequest is the request http.NewRequestWithContext(ctx, method, u.String(), body)
// makes, with Engage's headers, from a URL already parsed.
func (c *Client) newRequest(ctx context.Context, method string, u *url.URL, token string, body []byte) *http.Request {
	// Canonical keys set directly: no per-call canonicalization.
	h := make(http.Header, 4)
	h["Authorization"] = []string{"Bearer " + token}
	h["Accept"] = jsonType
	h["User-Agent"] = c.userAgent
	r := http.Request{
		Method:     method,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     h,
		Body:       http.NoBody,
		Host:       u.Host,
	}
	if body != nil {
		h["Content-Type"] = jsonType
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		// The transport resends a body it could not send (a dead keep-alive connection).
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	return r.WithContext(ctx)
}

// send does what http.Client.Do did for this client, by calling the RoundTripper itself:
// Do's per-call work for what this client never uses (copying the headers for redirects
// it never follows, cookies, Client.Timeout) cost microseconds and allocations per call
// under load. Its answers and errors are Do's, down to the *url.Error around a failure.
func (c *Client) send(req *http.Request) (*http.Response, error) {
	resp, err := c.rt.RoundTrip(req)
	if err != nil {
		// A response that comes with an error is ignored, as Do ignores it.
		if tlsErr, ok := err.(tls.RecordHeaderError); ok && string(tlsErr.RecordHeader[:]) == "HTTP/" {
			err = http.ErrSchemeMismatch
		}
		return nil, urlError(req, err)
	}
	if resp == nil {
		return nil, urlError(req, fmt.Errorf("http: RoundTripper implementation (%T) returned a nil *Response with a nil error", c.rt))
	}
	if resp.Body == nil {
		if resp.ContentLength > 0 {
			return nil, urlError(req, fmt.Errorf("http: RoundTripper implementation (%T) returned a *Response with content length %d but a nil Body", c.rt, resp.ContentLength))
		}
		resp.Body = http.NoBody
	}
	// A redirect is not an Engage answer; following one could carry the token elsewhere.
	// It is never followed and surfaces as KindUpstream (a bad answer), whatever its
	// Location holds: unlike Do, an unreadable Location is not a connection failure.
	return resp, nil
}

// urlError wraps err as Do does for a request that got no answer.
func urlError(req *http.Request, err error) error {
	u := req.URL
	s := u.String()
	if _, ok := u.User.Password(); ok {
		s = strings.Replace(s, u.User.String()+"@", u.User.Username()+":***@", 1)
	}
	return &url.Error{Op: req.Method[:1] + strings.ToLower(req.Method[1:]), URL: s, Err: err}
}

// exchange sends req and reads and classifies the answer.
func (c *Client) exchange(ctx context.Context, op string, req *http.Request) (int, []byte, *Error) {
	resp, err := c.send(req)
	if err != nil {
		return 0, nil, transportError(ctx, op, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 {
		// 101 Switching Protocols: the body is the bare connection, which the deadline no
		// longer bounds. Not an answer; never read it.
		return resp.StatusCode, nil, &Error{Op: op, Kind: KindUpstream, HTTPStatus: resp.StatusCode,
			Err: fmt.Errorf("unexpected HTTP status %d", resp.StatusCode)}
	}
	raw, err := readAll(io.LimitReader(resp.Body, c.max+1), resp.ContentLength)
	if err != nil {
		// The status came, the answer did not: it is not Engage's verdict.
		return 0, nil, transportError(ctx, op, err)
	}
	// A byte order mark is not JSON, and some servers (IIS, .NET) start with one.
	raw = bytes.TrimPrefix(raw, utf8BOM)
	status := resp.StatusCode
	if int64(len(raw)) > c.max {
		return status, nil, &Error{Op: op, Kind: KindUpstream, HTTPStatus: status,
			Err: fmt.Errorf("answer body over %d bytes", c.max)}
	}
	if status >= 200 && status < 300 {
		return status, raw, nil
	}
	return status, nil, statusError(op, status, resp.Header, raw)
}

var utf8BOM = []byte("\xef\xbb\xbf")

// readAll is io.ReadAll with a first buffer of the announced length (when there is one,
// and it is small), so a usual answer is read without growing the buffer.
func readAll(r io.Reader, length int64) ([]byte, error) {
	size := int64(512)
	if length > 0 && length < 64<<10 {
		size = length + 1 // room for the read that sees EOF
	}
	b := make([]byte, 0, size)
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

// transportError classifies a failure without a complete answer. The caller's context
// decides: its deadline is a timeout (onTimeout means the execution's deadline passed,
// ENGAGE.md §2), its cancellation is the caller's choice. Anything else, the transport's
// own dial or TLS handshake timeout included, is a connection failure while the
// execution still has time: a search may retry it, and it counts for the breaker.
// HTTPStatus stays 0, even when a status line arrived before the failure: no answer was
// read.
func transportError(ctx context.Context, op string, err error) *Error {
	e := &Error{Op: op, Kind: KindUpstream, Err: err}
	switch cerr := ctx.Err(); {
	case errors.Is(cerr, context.DeadlineExceeded):
		e.Kind = KindTimeout
	case errors.Is(cerr, context.Canceled):
		e.Kind = KindCanceled
	}
	return e
}

// statusError classifies a complete non-2xx answer.
func statusError(op string, status int, h http.Header, raw []byte) *Error {
	e := &Error{Op: op, HTTPStatus: status, Raw: raw}
	var w wire[noValue]
	envErr := decodeObject(raw, &w)
	if envErr == nil && !hasEnvelopeKeys(raw) {
		// {"message": ...} or {} from a gateway is JSON, not Engage's verdict.
		envErr = errNoEnvelope
	}
	if envErr == nil {
		e.Code = int(w.Code)
		e.Description = string(w.Description)
	}
	switch {
	case status == http.StatusForbidden && envErr != nil:
		// A WAF's or proxy's page, not Engage refusing the token for this domain: the
		// authorization is not at fault.
		e.Kind = KindUpstream
		e.Err = fmt.Errorf("HTTP 403 without an Engage envelope: %w", envErr)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		e.Kind = KindUnauthorized
	case status == http.StatusTooManyRequests:
		e.Kind = KindRateLimited
		e.RetryAfter = parseRetryAfter(h.Get("Retry-After"), time.Now())
	case status >= 400 && status < 500:
		e.Kind = KindBusiness
		if envErr != nil {
			// Not Engage's envelope: a proxy or gateway answered, not Engage's business rules.
			e.Kind = KindUpstream
			e.Err = fmt.Errorf("HTTP %d without an Engage envelope: %w", status, envErr)
		}
	case status >= 500:
		e.Kind = KindUpstream
	default:
		e.Kind = KindUpstream
		e.Err = fmt.Errorf("unexpected HTTP status %d", status)
	}
	return e
}

var errNoEnvelope = errors.New("the JSON object has neither status nor code")

// readableEnvelope returns the code and description of a 2xx answer that did not
// decode, when its envelope (whatever its value holds) can be read: zero values for a
// body that is not JSON, or not Engage's envelope.
func readableEnvelope(raw []byte) (int, string) {
	var w wire[noValue]
	if decodeObject(raw, &w) != nil || !hasEnvelopeKeys(raw) {
		return 0, ""
	}
	return int(w.Code), string(w.Description)
}

// hasEnvelopeKeys reports whether raw, a JSON object, has Engage's envelope keys:
// "status" or "code" (ENGAGE.md: every answer has both), matched as the envelope's
// decoding matches them. Only failed answers, and the rare 2xx with neither a status
// nor a code, get here: encoding/json is fast enough.
func hasEnvelopeKeys(raw []byte) bool {
	var keys struct {
		Status json.RawMessage `json:"status"`
		Code   json.RawMessage `json:"code"`
	}
	return json.Unmarshal(raw, &keys) == nil && (keys.Status != nil || keys.Code != nil)
}

// decodeObject decodes a JSON object; anything else (an array, null, a truncated body)
// is an error.
func decodeObject(raw []byte, v any) error {
	trimmed := bytes.TrimLeft(raw, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return errors.New("body is not a JSON object")
	}
	if f, ok := v.(fastDecoder); ok {
		if f.decodeFast(raw) {
			return nil
		}
		f.reset()
	}
	return json.Unmarshal(raw, v)
}

const maxRetryAfterSeconds = 24 * 60 * 60

// parseRetryAfter reads Retry-After as delay-seconds or an HTTP date (RFC 9110 §10.2.3),
// either capped at a day.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0
		}
		// Beyond a day it says nothing useful, and past ~292 years it would overflow.
		return time.Duration(min(secs, maxRetryAfterSeconds)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return min(d, maxRetryAfterSeconds*time.Second)
		}
	}
	return 0
}

// statusLabel is the status an Observer sees for a call.
func statusLabel(status int, e *Error) string {
	if e != nil {
		switch e.Kind {
		case KindTimeout:
			return labelTimeout
		case KindCanceled:
			return labelCanceled
		}
	}
	if status == 0 {
		return labelTransportError
	}
	return strconv.Itoa(status)
}
