//go:build long

package authstore_test

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/noderuntime/noderuntime/internal/authstore"
	"github.com/noderuntime/noderuntime/internal/engagesim"
	"github.com/noderuntime/noderuntime/internal/outcomes"
)

// freezingProxy carries TCP connections to Postgres. freeze makes the LISTEN
// connections it carries at that moment go silent, as a network partition or a
// fail-over behind a virtual IP does: nothing is forwarded either way any more, and
// neither side is told (the sockets stay open).
type freezingProxy struct {
	ln       net.Listener
	upstream string
	stop     chan struct{}
	mu       sync.Mutex
	conns    []*carried
}

type carried struct{ listens, frozen atomic.Bool }

func (e *env) freezingProxy(upstream string) *freezingProxy {
	e.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	p := &freezingProxy{ln: ln, upstream: upstream, stop: make(chan struct{})}
	e.t.Cleanup(func() {
		close(p.stop)
		ln.Close()
	})
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			go p.carry(client)
		}
	}()
	return p
}

func (p *freezingProxy) carry(client net.Conn) {
	server, err := net.Dial("tcp", p.upstream)
	if err != nil {
		client.Close()
		return
	}
	c := &carried{}
	p.mu.Lock()
	p.conns = append(p.conns, c)
	p.mu.Unlock()
	go p.pipe(c, server, client, true)
	p.pipe(c, client, server, false)
}

// pipe copies src to dst until either fails; once c is frozen it swallows what it
// reads and waits for the proxy to stop.
func (p *freezingProxy) pipe(c *carried, dst, src net.Conn, fromClient bool) {
	defer src.Close()
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if fromClient && bytes.Contains(buf[:n], []byte("listen noderuntime_authorizations")) {
				c.listens.Store(true)
			}
			if c.frozen.Load() {
				<-p.stop
				return
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// freeze silences the LISTEN connections carried now and returns how many there were.
func (p *freezingProxy) freeze() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.conns {
		if c.listens.Load() {
			c.frozen.Store(true)
			n++
		}
	}
	return n
}

// A listener connection that dies without an error (a partition, a fail-over behind a
// virtual IP) hears no more notifications and says nothing: it is found by the ping
// after 15 s of silence, unanswered within 5 s, and the instance reconnects and forgets
// its cache. A deletion it missed is then refused, about 20 s later, not served from
// the cache until CacheMaxAge.
func TestLongASilentlyDeadListenerIsFoundByItsPing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engagesim.Config{})
	cfg, err := pgxpool.ParseConfig(e.url)
	if err != nil {
		t.Fatal(err)
	}
	proxy := e.freezingProxy(net.JoinHostPort(cfg.ConnConfig.Host, strconv.Itoa(int(cfg.ConnConfig.Port))))
	host, port, _ := net.SplitHostPort(proxy.ln.Addr().String())
	p, _ := strconv.Atoi(port)
	cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Fallbacks = host, uint16(p), nil
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	a := e.replica()
	b := e.store(func(o *authstore.Options) { o.Pool = pool })
	waitListening(t, a, b)
	auth := e.createCC(a, acme, "deleted behind a partition")
	warm(t, e, b, 1, auth.ID)

	if n := proxy.freeze(); n != 1 {
		t.Fatalf("silenced %d listener connections, want B's one", n)
	}
	if err := a.Delete(ctxT(t), acme, authstore.ActorAPI, auth.ID); err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, 30*time.Second, "B refuses the authorization deleted while its listener was silent", func() bool {
		_, err := b.Token(ctxT(t), acme, auth.ID)
		return err != nil
	})
	_, err = b.Token(ctxT(t), acme, auth.ID)
	wantAuthError(t, err, outcomes.CodeAuthorizationNotFound)
	t.Logf("B refused the deleted authorization %s after the partition", took.Round(time.Millisecond))
}
