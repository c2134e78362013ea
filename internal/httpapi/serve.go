package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Serve runs srv on ln until ctx is done (SIGTERM in main), then stops accepting new
// connections and lets in-flight requests finish within grace.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if errors.Is(err, context.DeadlineExceeded) {
		// What is still running is cut off now: its callers learn it at once, and no
		// handler outlives Serve by more than its own next write.
		_ = srv.Close()
		err = fmt.Errorf("the shutdown grace (%v) ran out with requests in flight; they were cut off", grace)
	}
	if serveErr := <-errc; !errors.Is(serveErr, http.ErrServerClosed) && err == nil {
		err = serveErr
	}
	return err
}

// NewServer returns an http.Server with the timeouts a public-facing service needs.
// writeTimeout must exceed the longest execution deadline.
func NewServer(h http.Handler, writeTimeout time.Duration) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		// "OPTIONS *" goes to the router too, which answers it with the request's ID as
		// every answer of the service, not net/http's bare 200.
		DisableGeneralOptionsHandler: true,
	}
}
