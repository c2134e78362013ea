package httpapi_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/noderuntime/noderuntime/internal/httpapi"
)

func TestSIGTERMLetsAnInFlightRequestFinish(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		_, _ = io.WriteString(w, "finished")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The same wiring as main: the signal cancels the serving context.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- httpapi.Serve(ctx, httpapi.NewServer(h, time.Minute), ln, 10*time.Second) }()

	type result struct {
		body string
		err  error
	}
	answer := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/slow")
		if err != nil {
			answer <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		answer <- result{string(b), err}
	}()
	<-started
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-ctx.Done()
	// New connections are refused once shutdown began.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 100*time.Millisecond)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the listener still accepts connections after SIGTERM")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("Serve returned (%v) while a request was in flight", err)
	default:
	}
	close(release)
	got := <-answer
	if got.err != nil || got.body != "finished" {
		t.Fatalf("in-flight request: body %q err %v", got.body, got.err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// When the grace runs out, Serve says so (the grace, and that requests were cut off, not
// a bare "context deadline exceeded") and closes the connections it cut off, so their
// callers learn it at once instead of when the process exits.
func TestShutdownGiveUpAfterTheGracePeriod(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	started := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { close(started); <-block })
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- httpapi.Serve(ctx, httpapi.NewServer(h, time.Minute), ln, 200*time.Millisecond) }()
	client := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String())
		if err == nil {
			resp.Body.Close()
		}
		client <- err
	}()
	<-started
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "shutdown grace (200ms) ran out") {
			t.Fatalf("Serve returned %v, want the grace named as what ran out", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not give up after the grace period")
	}
	select {
	case err := <-client:
		if err == nil {
			t.Fatal("the cut-off request got an answer")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the cut-off request's connection is still open after Serve returned")
	}
}

// The server bounds what a client may send and how slowly: headers over 64 KiB are
// refused (431), and a client that trickles its headers or idles is let go.
func TestTheServerBoundsWhatAClientSendsAndHowSlowly(t *testing.T) {
	srv := httpapi.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}), time.Minute)
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.IdleTimeout <= 0 || srv.WriteTimeout != time.Minute {
		t.Fatalf("timeouts: header %v, read %v, idle %v, write %v", srv.ReadHeaderTimeout, srv.ReadTimeout, srv.IdleTimeout, srv.WriteTimeout)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/", nil)
	req.Header.Set("X-Padding", strings.Repeat("p", 100<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("100 KiB of headers: %d", resp.StatusCode)
	}
}

// "OPTIONS *" reaches the service's router, which answers it as any request it has no
// route for (a problem with the request's ID), not net/http's own bare 200, the one
// well-formed request whose answer carried no X-Request-Id.
func TestOPTIONSAsteriskIsTheRoutersToAnswer(t *testing.T) {
	srv := httpapi.NewServer(httpapi.NewOperationsRouter(slog.New(slog.DiscardHandler), httpapi.NewMetrics(prometheus.NewRegistry()), func(r chi.Router) {
		r.Get("/metrics", func(http.ResponseWriter, *http.Request) {})
	}), time.Minute)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Request-Id") == "" || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("OPTIONS *: %d %v, want the router's problem with a request ID", resp.StatusCode, resp.Header)
	}
}
