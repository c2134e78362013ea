package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// The load generator speaks HTTP/1.1 itself: each request's bytes are built once, and
// each answer is read into a buffer its connection reuses, on one goroutine per
// connection. net/http's client cost the harness, which shares one CPU with the
// simulators, two goroutine hand-offs and dozens of allocations per request; its
// collections stalled the requests in flight and set the p99 of both servers alike.

// wireTimeout bounds one request, as the http.Client's Timeout did.
const wireTimeout = 30 * time.Second

// wireRequest is a request's bytes on the wire and where they go.
type wireRequest struct {
	addr string
	raw  []byte
}

// buildWire writes r as an HTTP/1.1 request on a keep-alive connection.
func buildWire(r request) (wireRequest, error) {
	u, err := url.Parse(r.url)
	if err != nil {
		return wireRequest{}, err
	}
	if u.Scheme != "http" {
		return wireRequest{}, fmt.Errorf("load generator: %s: only http", r.url)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", u.RequestURI(), u.Host, len(r.body))
	if r.apiKey != "" {
		fmt.Fprintf(&b, "Authorization: Bearer %s\r\n", r.apiKey)
	}
	for k, v := range r.headers {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n")
	b.Write(r.body)
	return wireRequest{addr: u.Host, raw: b.Bytes()}, nil
}

// wireConn is one keep-alive connection. Not safe for concurrent use.
type wireConn struct {
	addr string
	c    net.Conn
	br   *bufio.Reader
	body []byte
}

// do sends w and reads the answer: its status and body (valid until the next call).
// After an error, or an answer that closes the connection, the next call dials anew. A
// kept connection the server closed while it sat idle is dialled again once, as
// net/http's client would: the server never read the request.
func (wc *wireConn) do(w wireRequest) (int, []byte, error) {
	reused := wc.c != nil
	status, body, err := wc.try(w)
	if reused && errors.Is(err, errIdleClosed) {
		status, body, err = wc.try(w)
	}
	return status, body, err
}

func (wc *wireConn) try(w wireRequest) (int, []byte, error) {
	if wc.c == nil {
		c, err := net.DialTimeout("tcp", w.addr, 5*time.Second)
		if err != nil {
			return 0, nil, err
		}
		wc.c, wc.addr = c, w.addr
		if wc.br == nil {
			wc.br = bufio.NewReaderSize(c, 16<<10)
		} else {
			wc.br.Reset(c)
		}
	}
	status, body, keep, err := wc.roundTrip(w)
	if err != nil || !keep {
		wc.close()
	}
	return status, body, err
}

// errIdleClosed: the connection was closed before the answer's first byte.
var errIdleClosed = errors.New("load generator: connection closed before the answer")

func (wc *wireConn) roundTrip(w wireRequest) (status int, body []byte, keep bool, err error) {
	if err := wc.c.SetDeadline(time.Now().Add(wireTimeout)); err != nil {
		return 0, nil, false, err
	}
	if _, err := wc.c.Write(w.raw); err != nil {
		return 0, nil, false, fmt.Errorf("%w: %w", errIdleClosed, err)
	}
	line, err := wc.line()
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			err = fmt.Errorf("%w: %w", errIdleClosed, err)
		}
		return 0, nil, false, err
	}
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, nil, false, fmt.Errorf("load generator: bad status line %q", line)
	}
	if status, err = strconv.Atoi(string(line[9:12])); err != nil {
		return 0, nil, false, fmt.Errorf("load generator: bad status line %q", line)
	}
	length, chunked, keep := -1, false, line[7] == '1'
	for {
		h, err := wc.line()
		if err != nil {
			return 0, nil, false, err
		}
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return 0, nil, false, fmt.Errorf("load generator: bad header %q", h)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 {
				return 0, nil, false, fmt.Errorf("load generator: bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
			if !chunked {
				return 0, nil, false, fmt.Errorf("load generator: Transfer-Encoding %q", value)
			}
		case bytes.EqualFold(name, []byte("Connection")):
			keep = keep && !bytes.EqualFold(value, []byte("close"))
		}
	}
	wc.body = wc.body[:0]
	switch {
	case status == http.StatusNoContent || status == http.StatusNotModified || status < 200:
		// no body, whatever the headers say (RFC 9112 §6.3)
	case chunked:
		err = wc.readChunked()
	case length >= 0:
		err = wc.readN(length)
	default: // the body runs to the end of the connection
		var b bytes.Buffer
		_, err = b.ReadFrom(wc.br)
		wc.body, keep = append(wc.body, b.Bytes()...), false
	}
	if err != nil {
		return 0, nil, false, err
	}
	return status, wc.body, keep, nil
}

// line reads one line without its CRLF.
func (wc *wireConn) line() ([]byte, error) {
	line, err := wc.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("load generator: header line over %d bytes", wc.br.Size())
		}
		return nil, err
	}
	return bytes.TrimRight(line, "\r\n"), nil
}

func (wc *wireConn) readN(n int) error {
	start := len(wc.body)
	wc.body = append(wc.body, make([]byte, n)...)
	_, err := io.ReadFull(wc.br, wc.body[start:])
	return err
}

func (wc *wireConn) readChunked() error {
	for {
		line, err := wc.line()
		if err != nil {
			return err
		}
		size, _, _ := bytes.Cut(line, []byte(";"))
		n, err := strconv.ParseInt(string(bytes.TrimSpace(size)), 16, 32)
		if err != nil || n < 0 {
			return fmt.Errorf("load generator: bad chunk size %q", line)
		}
		if n == 0 {
			for { // trailers, up to the empty line
				t, err := wc.line()
				if err != nil || len(t) == 0 {
					return err
				}
			}
		}
		if err := wc.readN(int(n)); err != nil {
			return err
		}
		if crlf, err := wc.line(); err != nil || len(crlf) != 0 {
			return fmt.Errorf("load generator: chunk without its CRLF")
		}
	}
}

func (wc *wireConn) close() {
	if wc.c != nil {
		wc.c.Close()
		wc.c = nil
	}
}

// wirePool keeps the load generator's idle connections per address across windows, as
// an orchestrator's client would.
type wirePool struct {
	mu   sync.Mutex
	idle map[string][]*wireConn
}

func (p *wirePool) get(addr string) *wireConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cs := p.idle[addr]; len(cs) > 0 {
		wc := cs[len(cs)-1]
		p.idle[addr] = cs[:len(cs)-1]
		return wc
	}
	return &wireConn{}
}

func (p *wirePool) put(wc *wireConn) {
	if wc.c == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.idle == nil {
		p.idle = map[string][]*wireConn{}
	}
	p.idle[wc.addr] = append(p.idle[wc.addr], wc)
}

// closeIdle closes every idle connection: the next requests dial anew.
func (p *wirePool) closeIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, cs := range p.idle {
		for _, wc := range cs {
			wc.close()
		}
	}
	p.idle = nil
}
