package app_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/noderuntime/noderuntime/internal/app"
	"github.com/noderuntime/noderuntime/internal/database/dbtest"
)

// failingListener is a listener whose Accept fails once fail is called, as a listener
// whose socket broke.
type failingListener struct {
	net.Listener
	once   sync.Once
	failed chan struct{}
}

func (l *failingListener) fail() { l.once.Do(func() { close(l.failed) }) }

func (l *failingListener) Accept() (net.Conn, error) {
	type accepted struct {
		c   net.Conn
		err error
	}
	got := make(chan accepted, 1)
	go func() { c, err := l.Listener.Accept(); got <- accepted{c, err} }()
	select {
	case a := <-got:
		return a.c, a.err
	case <-l.failed:
		l.Listener.Close()
		return nil, errors.New("the listener broke")
	}
}

// When one of the two servers fails, Run stops the other and returns the failure, at
// once: a process serving only /metrics (or only the API, unobserved) would otherwise
// run on until SIGTERM.
func TestRunStopsWhenEitherListenerFails(t *testing.T) {
	for _, which := range []string{"main", "metrics"} {
		t.Run(which, func(t *testing.T) {
			cfg := testConfig(t, dbtest.NewURL(t))
			cfg.MetricsAddr = freeAddr(t)
			a, err := app.New(context.Background(), cfg, quietLogger())
			if err != nil {
				t.Fatal(err)
			}
			var broken *failingListener
			a.UseListen(func(network, addr string) (net.Listener, error) {
				ln, err := net.Listen(network, addr)
				if err != nil {
					return nil, err
				}
				fl := &failingListener{Listener: ln, failed: make(chan struct{})}
				if (which == "metrics") == (addr == cfg.MetricsAddr) {
					broken = fl
				}
				return fl, nil
			})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			up := make(chan struct{})
			go func() { done <- a.Run(ctx, func(net.Addr) { close(up) }) }()
			<-up
			broken.fail()
			select {
			case err := <-done:
				if err == nil || (which == "metrics" && !strings.Contains(err.Error(), "NODERUNTIME_METRICS_ADDR")) {
					t.Fatalf("Run returned %v, want the %s listener's failure", err, which)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("Run still serves 20 s after the %s listener failed", which)
			}
		})
	}
}
