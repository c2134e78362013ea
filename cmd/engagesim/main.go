// Command engagesim runs the Engage simulator (internal/engagesim) as its own program:
// the Webex login OAuth server, the client-credentials token endpoint, the conversation
// API and the admin API, for local development and manual testing. It listens on
// loopback by default; its admin API has no authentication.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/noderuntime/noderuntime/internal/engagesim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "engagesim:", err)
	}
	os.Exit(exitCode(err))
}

// usageError is a command line the simulator cannot run with.
type usageError struct{ error }

// exitCode follows Go's commands and noderuntime's: 0 after -help, 2 for a command line
// that cannot run, 1 for a failure while running.
func exitCode(err error) int {
	var usage usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &usage):
		return 2
	default:
		return 1
	}
}

// listValue is a repeatable flag of colon-separated triples: first:middle:last, where
// only the middle part (a password or secret) may hold colons, except for -client whose
// last part is a URL.
type listValue struct {
	items [][3]string
	url   bool // the last part is a URL: split after the first two colons
}

func (l *listValue) String() string { return fmt.Sprint(len(l.items), " entries") }

func (l *listValue) Set(s string) error {
	var a, b, c string
	if l.url {
		parts := strings.SplitN(s, ":", 3)
		if len(parts) != 3 {
			return errors.New("want id:secret:redirectURI")
		}
		a, b, c = parts[0], parts[1], parts[2]
	} else {
		first, last := strings.Index(s, ":"), strings.LastIndex(s, ":")
		if first < 0 || first == last {
			return errors.New("want name:secret:domain")
		}
		a, b, c = s[:first], s[first+1:last], s[last+1:]
	}
	if a == "" || b == "" || c == "" {
		return errors.New("no part may be empty")
	}
	l.items = append(l.items, [3]string{a, b, c})
	return nil
}

// run starts the simulator, prints where it is, and serves until ctx ends.
func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("engagesim", flag.ContinueOnError)
	fs.SetOutput(out)
	addr := fs.String("addr", "127.0.0.1:8090", "listen address (keep it on loopback: the admin API has no authentication)")
	users := &listValue{}
	tenants := &listValue{}
	clients := &listValue{url: true}
	fs.Var(users, "user", "Webex login user `name:password:domain` (repeatable)")
	fs.Var(tenants, "tenant", "client-credentials tenant `id:secret:domain` (repeatable)")
	fs.Var(clients, "client", "OAuth client `id:secret:redirectURI` (repeatable)")
	tokenTTL := fs.Duration("token-ttl", time.Hour, "access token lifetime, both kinds")
	codeTTL := fs.Duration("code-ttl", engagesim.DefaultCodeTTL, "authorization code lifetime")
	seed := fs.Uint64("seed", 1, "seed of percentage faults")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	if *tokenTTL <= 0 || *codeTTL <= 0 {
		return usageError{errors.New("-token-ttl and -code-ttl must be positive")}
	}

	cfg := engagesim.Config{AccessTokenTTL: *tokenTTL, ClientCredentialsTTL: *tokenTTL, CodeTTL: *codeTTL, Seed: *seed}
	for _, u := range users.items {
		cfg.Users = append(cfg.Users, engagesim.User{Username: u[0], Password: u[1], Domain: u[2]})
	}
	for _, t := range tenants.items {
		cfg.Tenants = append(cfg.Tenants, engagesim.Tenant{ID: t[0], Secret: t[1], Domain: t[2]})
	}
	for _, c := range clients.items {
		cfg.Clients = append(cfg.Clients, engagesim.OAuthClient{ID: c[0], Secret: c[1], RedirectURIs: []string{c[2]}})
	}
	sim := engagesim.New(cfg)
	defer sim.Close()

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", *addr)
	if err != nil {
		return err
	}
	sim.SetURL("http://" + ln.Addr().String())
	srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second}

	fmt.Fprintf(out, "engagesim listening on %s\n", sim.URL())
	fmt.Fprintf(out, "  authorize:          %s\n", sim.AuthorizeURL())
	fmt.Fprintf(out, "  token:              %s\n", sim.TokenURL())
	fmt.Fprintf(out, "  engage base URL:    %s\n", sim.BaseURL())
	fmt.Fprintf(out, "  client credentials: %s\n", sim.ClientCredentialsTokenURL())
	fmt.Fprintf(out, "  admin:              %s\n", sim.AdminURL())
	fmt.Fprintf(out, "  users %d, tenants %d, clients %d, token lifetime %s\n", len(cfg.Users), len(cfg.Tenants), len(cfg.Clients), *tokenTTL)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// End injected latencies first, so draining does not wait for them.
	sim.Close()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	fmt.Fprintln(out, "engagesim stopped")
	return nil
}
