package dbtest

import (
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
)

// Switch is a TCP relay in front of a test's Postgres that the test can turn off. Off,
// it closes every connection it carries and each new one at once: to a pool, Postgres is
// unreachable (not refusing). On again, it relays as before.
type Switch struct {
	// URL is the database URL through the switch, with connect_timeout=1 so that a
	// connection attempt while it is off fails at once.
	URL string

	ln     net.Listener
	target string
	on     atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

// NewSwitch starts a switch, on, in front of dbURL's server. It stops when t ends, and
// waits for every relay it started.
func NewSwitch(t testing.TB, dbURL string) *Switch {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil || u.Host == "" {
		t.Fatalf("the database URL %q is not a URL with a host: the switch needs one", dbURL)
	}
	target := u.Host
	if u.Port() == "" {
		target = net.JoinHostPort(u.Hostname(), "5432")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.Host = ln.Addr().String()
	q := u.Query()
	q.Set("connect_timeout", "1")
	u.RawQuery = q.Encode()
	s := &Switch{URL: u.String(), ln: ln, target: target}
	s.on.Store(true)
	s.wg.Go(s.serve)
	t.Cleanup(func() {
		ln.Close()
		s.Set(false)
		s.wg.Wait()
	})
	return s
}

func (s *Switch) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		if !s.on.Load() {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", s.target)
		if err != nil {
			c.Close()
			continue
		}
		s.mu.Lock()
		if !s.on.Load() { // turned off while dialling: Set has closed the others already
			s.mu.Unlock()
			c.Close()
			up.Close()
			continue
		}
		s.conns = append(s.conns, c, up)
		s.mu.Unlock()
		s.wg.Go(func() { _, _ = io.Copy(up, c); up.Close() })
		s.wg.Go(func() { _, _ = io.Copy(c, up); c.Close() })
	}
}

// Set turns the switch on or off; off closes every connection it carries.
func (s *Switch) Set(on bool) {
	s.on.Store(on)
	if on {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}
