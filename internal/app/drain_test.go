package app_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/noderuntime/noderuntime/internal/app"
	"github.com/noderuntime/noderuntime/internal/database/dbtest"
)

// On SIGTERM the service stops taking connections but finishes the request it is
// handling: the drain lasts up to NODERUNTIME_SHUTDOWN_GRACE, not zero.
func TestARequestInFlightWhenTheStopComesIsStillAnswered(t *testing.T) {
	t.Parallel()
	a, err := app.New(t.Context(), testConfig(t, dbtest.NewURL(t)), quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	finish, done := stopWithARequestInFlight(t, a, "")
	res := finish()
	if res.StatusCode/100 == 5 {
		t.Errorf("the request in flight was answered %d", res.StatusCode)
	}
	if err := <-done; err != nil {
		t.Errorf("Run returned %v after a drain that finished within the grace", err)
	}
}

// firstConnListener closes waiting when the server reads its first connection a
// second time: it has read the request's head, and its handler waits for the body.
type firstConnListener struct {
	net.Listener
	first   *sync.Once
	waiting chan struct{}
}

func (l *firstConnListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	wrapped := c
	l.first.Do(func() { wrapped = &secondReadConn{Conn: c, waiting: l.waiting} })
	return wrapped, nil
}

type secondReadConn struct {
	net.Conn
	reads   atomic.Int32
	waiting chan struct{}
}

func (c *secondReadConn) Read(p []byte) (int, error) {
	if c.reads.Add(1) == 2 {
		close(c.waiting)
	}
	return c.Conn.Read(p)
}

// Run releases what New opened however it stops, so a stopped App holds no Postgres
// connection: the pool is closed, and so is the authorization listener's connection.
func TestRunReleasesThePoolAndTheAuthorizationListenerHoweverItStops(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, a *app.App) error
	}{
		{"stopped while serving", func(t *testing.T, a *app.App) error {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			return a.Run(ctx, func(net.Addr) { cancel() })
		}},
		{"stopped before serving", func(t *testing.T, a *app.App) error {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			return a.Run(ctx, func(net.Addr) { t.Error("a Run stopped before it started took a port") })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, err := app.New(t.Context(), testConfig(t, dbtest.NewURL(t)), quietLogger())
			if err != nil {
				t.Fatal(err)
			}
			for deadline := time.Now().Add(10 * time.Second); !a.Authorizations().Listening(); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the authorization listener never connected")
				}
			}
			if err := tc.run(t, a); err != nil {
				t.Fatal(err)
			}
			if a.Authorizations().Listening() {
				t.Error("the authorization listener still holds its connection after Run returned")
			}
			if err := a.Pool().Ping(t.Context()); err == nil {
				t.Error("the pool is still open after Run returned")
			}
		})
	}
}

// While the main listener drains after SIGTERM (up to NODERUNTIME_SHUTDOWN_GRACE, a
// minute), /metrics still answers: the executions that finish then, and one cut off at
// the grace, are counted where Prometheus can read them, and the pod is not blind for
// the whole drain. It stops once the drain is over.
func TestTheMetricsListenerServesUntilTheDrainEnds(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, dbtest.NewURL(t))
	cfg.MetricsAddr = freeAddr(t)
	a, err := app.New(t.Context(), cfg, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	finish, done := stopWithARequestInFlight(t, a, cfg.MetricsAddr)
	client := &http.Client{Timeout: 10 * time.Second}
	res, err := client.Get("http://" + cfg.MetricsAddr + "/metrics")
	if err != nil {
		t.Fatalf("/metrics during the drain: %v, want it served until the drain ends", err)
	}
	scrape, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(scrape), "\nnoderuntime_executions_in_flight 1\n") {
		t.Errorf("/metrics during the drain: %d, want 200 with the execution in flight counted", res.StatusCode)
	}

	finish()
	if err := <-done; err != nil {
		t.Errorf("Run returned %v after a drain that finished within the grace", err)
	}
	if c, err := net.Dial("tcp", cfg.MetricsAddr); err == nil {
		c.Close()
		t.Error("the metrics listener still accepts connections after Run returned")
	}
}

// stopWithARequestInFlight runs a, sends a request whose body it holds back, stops a
// once the handler waits for that body, and returns when the main listener takes no
// new connection (the drain has begun). finish sends the rest of the body and returns
// the answer; done gets what Run returned. The listener on metricsAddr is left as is.
func stopWithARequestInFlight(t *testing.T, a *app.App, metricsAddr string) (finish func() *http.Response, done <-chan error) {
	t.Helper()
	waiting := make(chan struct{}) // closed when the handler waits for the rest of the body
	var first sync.Once
	a.UseListen(func(network, address string) (net.Listener, error) {
		ln, err := net.Listen(network, address)
		if err != nil || address == metricsAddr {
			return ln, err
		}
		return &firstConnListener{Listener: ln, first: &first, waiting: waiting}, nil
	})
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	ran := make(chan error, 1)
	addrc := make(chan net.Addr, 1)
	go func() { ran <- a.Run(ctx, func(addr net.Addr) { addrc <- addr }) }()
	addr := (<-addrc).String()

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	body := `{"node":"no-such-node","version":"1","input":{}}`
	if _, err := io.WriteString(conn, "POST /v1/executions HTTP/1.1\r\nHost: noderuntime\r\nAuthorization: Bearer key\r\n"+
		"Content-Type: application/json\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body[:10]); err != nil {
		t.Fatal(err)
	}
	<-waiting
	cancel()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break // draining
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the listener still accepts connections 10 s after the stop")
		}
	}
	return func() *http.Response {
		t.Helper()
		if _, err := io.WriteString(conn, body[10:]); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("the request in flight was cut off instead of answered: %v", err)
		}
		res.Body.Close()
		return res
	}, ran
}
