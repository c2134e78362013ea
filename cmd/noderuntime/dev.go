package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/noderuntime/noderuntime/internal/app"
	"github.com/noderuntime/noderuntime/internal/config"
	"github.com/noderuntime/noderuntime/internal/database"
	"github.com/noderuntime/noderuntime/internal/engagesim"
	"github.com/noderuntime/noderuntime/internal/loginflow"
	"github.com/noderuntime/noderuntime/internal/pgtemp"
	"github.com/noderuntime/noderuntime/internal/secrets"
	"github.com/noderuntime/noderuntime/internal/tenant"
)

// The demo world `dev` creates.
const (
	devTenant    = "demo"
	devAuthName  = "demo"
	devDomain    = "demo"
	devUser      = "demo"
	devPassword  = "demo-password"
	devDatabase  = "noderuntime_dev"
	devCustomer  = "+15550001"
	devBizNumber = "+15559999"
	devClientID  = "noderuntime-dev" // the service's OAuth client at the simulator
)

// dev gives a working system on a laptop: Postgres (DATABASE_URL, else the local server,
// else a throwaway cluster), the Engage simulator in-process, the service, a demo API key
// and a demo authorization made through the real Webex login flow.
func dev(args []string, env lookupEnv, stdout, stderr io.Writer) int {
	fs := newFlagSet("dev", "Run the service with an in-process Engage simulator and a demo authorization.\nUses DATABASE_URL, else the local Postgres (database "+devDatabase+", recreated), else a throwaway cluster.", stderr)
	addr := fs.String("addr", envOr(env.get, "NODERUNTIME_ADDR", "127.0.0.1:8080"), "listen address of the service (env NODERUNTIME_ADDR)")
	simAddr := fs.String("sim-addr", "127.0.0.1:8090", "listen address of the Engage simulator")
	local := fs.String("local-postgres", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable&connect_timeout=3", "the local server tried when DATABASE_URL is unset")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if code := flagsOnly(fs, stderr); code >= 0 {
		return code
	}
	// An empty flag is unset, as serve reads it: "" would listen on every interface,
	// and the simulator's admin API has no authentication.
	fs.VisitAll(func(f *flag.Flag) {
		if strings.TrimSpace(f.Value.String()) == "" {
			_ = f.Value.Set(f.DefValue)
		}
	})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	level := slog.LevelInfo
	if v := env.get("NODERUNTIME_LOG_LEVEL"); v != "" {
		if level.UnmarshalText([]byte(v)) != nil {
			return configError(stderr, &config.Error{Variable: "NODERUNTIME_LOG_LEVEL", Problem: fmt.Sprintf("%q is not a level (want debug, info, warn or error)", v)})
		}
	}
	given := strings.TrimSpace(env.get("DATABASE_URL"))
	if given != "" {
		if err := config.CheckDatabaseURL(given); err != nil {
			return configError(stderr, err) // as serve and migrate do, before pgx sees it
		}
	}
	logger := newLogger(stderr, level)
	fail := func(err error) int {
		fmt.Fprintf(stderr, "noderuntime dev: %v\n", err)
		return exitFailed
	}

	// The address first: a second run while the first holds its port must fail before
	// it recreates the local server's database, which the first run is using.
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "noderuntime dev: listen on %s: %v (set --addr or NODERUNTIME_ADDR)\n", *addr, err)
		return exitFailed
	}
	defer ln.Close()
	publicURL := "http://" + ln.Addr().String()

	dbURL, cleanup, err := devDatabaseURL(ctx, given, *local, devDatabase, stdout)
	if err != nil {
		return fail(err)
	}
	defer cleanup()
	if _, _, err := database.Migrate(ctx, dbURL); err != nil {
		return fail(err)
	}

	clientSecret := randomHex(16)
	sim, stopSim, err := startDevSimulator(*simAddr, publicURL, clientSecret)
	if err != nil {
		return fail(err)
	}
	defer stopSim()

	apiKey := randomHex(20)
	cfg, err := devConfig(dbURL, apiKey, publicURL, clientSecret, sim)
	if err != nil {
		return fail(err)
	}
	cfg.Addr = ln.Addr().String()
	ln.Close() // app.Run listens itself; the port is held until this moment
	a, err := app.New(ctx, cfg, logger)
	if err != nil {
		return fail(err)
	}
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, func(net.Addr) { close(ready) }) }()
	if code, ok := untilReady(ready, done, fail); !ok {
		return code
	}

	authID, err := devAuthorization(ctx, publicURL, apiKey, sim)
	if err != nil {
		fmt.Fprintf(stderr, "noderuntime dev: demo authorization: %v\n", err)
		stop()
		<-done
		return exitFailed
	}
	sim.SeedConversation(devDomain, engagesim.Conversation{Channel: "sms", CustomerAddress: devCustomer, BizAddress: devBizNumber, Status: engagesim.StatusActive})
	printDevBanner(stdout, publicURL, apiKey, authID, sim)

	if err := <-done; err != nil {
		return fail(err)
	}
	return exitOK
}

// untilReady waits until the service app.Run starts is ready (ok), or Run ends first:
// then code is dev's exit code. Run's nil then is a stop (Ctrl-C during the start), not a
// failure: exitOK, and nothing printed; an error goes to fail.
func untilReady(ready <-chan struct{}, done <-chan error, fail func(error) int) (code int, ok bool) {
	select {
	case err := <-done:
		if err != nil {
			return fail(err), false
		}
		return exitOK, false
	case <-ready:
		return exitOK, true
	}
}

// devDatabaseURL picks the database: DATABASE_URL as given, else a fresh database on
// the local server, else a throwaway cluster.
func devDatabaseURL(ctx context.Context, given, local, name string, stdout io.Writer) (string, func(), error) {
	if given != "" {
		return given, func() {}, nil
	}
	if conn, err := pgx.Connect(ctx, local); err == nil {
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "drop database if exists "+pgx.Identifier{name}.Sanitize()+" with (force)"); err != nil {
			return "", nil, fmt.Errorf("local postgres: %w", err)
		}
		if _, err := conn.Exec(ctx, "create database "+pgx.Identifier{name}.Sanitize()); err != nil {
			return "", nil, fmt.Errorf("local postgres: %w", err)
		}
		fmt.Fprintf(stdout, "postgres: the local server, database %s (recreated)\n", name)
		return database.WithDatabaseName(local, name), func() {}, nil
	}
	cluster, err := pgtemp.Start(ctx, "")
	if err != nil {
		if errors.Is(err, pgtemp.ErrNoBinaries) {
			return "", nil, errors.New("no Postgres: set DATABASE_URL, start a local server on 127.0.0.1:5432, or install the postgresql package")
		}
		return "", nil, err
	}
	fmt.Fprintf(stdout, "postgres: a throwaway cluster in %s on port %d\n", cluster.Dir, cluster.Port)
	return cluster.URL("postgres"), func() { cluster.Close() }, nil
}

func startDevSimulator(addr, publicURL, clientSecret string) (*engagesim.Sim, func(), error) {
	sim := engagesim.New(engagesim.Config{
		Users:   []engagesim.User{{Username: devUser, Password: devPassword, Domain: devDomain}},
		Clients: []engagesim.OAuthClient{{ID: devClientID, Secret: clientSecret, RedirectURIs: []string{publicURL + "/oauth/callback"}}},
		Tenants: []engagesim.Tenant{{ID: "demo-tenant", Secret: randomHex(16), Domain: devDomain}},
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return nil, nil, fmt.Errorf("engage simulator: %w", err)
		}
	}
	srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	sim.SetURL("http://" + ln.Addr().String())
	return sim, func() { srv.Close() }, nil
}

func devConfig(dbURL, apiKey, publicURL, clientSecret string, sim *engagesim.Sim) (config.Config, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return config.Config{}, err
	}
	// An ID of its own too: on a DATABASE_URL an earlier run used, that run's rows are
	// then under a key this ring does not hold (logged at start), not under another key
	// with this one's ID, which the start refuses as a key pasted wrong.
	ring, err := secrets.ParseKeyRing("dev-" + randomHex(4) + ":" + base64.StdEncoding.EncodeToString(key))
	if err != nil {
		return config.Config{}, err
	}
	keys, err := tenant.ParseKeys(devTenant + ":" + tenant.HashKey(apiKey))
	if err != nil {
		return config.Config{}, err
	}
	return config.Config{
		DatabaseURL:    dbURL,
		EncryptionKeys: ring,
		APIKeys:        keys,
		PublicURL:      publicURL,
		Webex: config.Webex{
			AuthorizeURL: sim.AuthorizeURL(), TokenURL: sim.TokenURL(),
			ClientID: devClientID, ClientSecret: secrets.New(clientSecret), Scopes: []string{"engage"},
		},
		EngageAllowedBases:  append([]string{sim.BaseURL()}, config.DefaultEngageBaseURLs()...),
		ExecutionTimeout:    10 * time.Second,
		ExecutionTimeoutMax: 60 * time.Second,
		ShutdownGrace:       5 * time.Second,
		TokenRefreshSkew:    5 * time.Minute,
		LogLevel:            slog.LevelInfo,
	}, nil
}

// devAuthorization adds the demo authorization the way a person would: create it,
// sign in on the (simulated) Webex login page, come back to the callback and confirm.
// A database given as DATABASE_URL may still hold an earlier run's demo authorization,
// sealed under that run's random key and so of no use to anyone: it is replaced.
func devAuthorization(ctx context.Context, publicURL, apiKey string, sim *engagesim.Sim) (string, error) {
	body, _ := json.Marshal(map[string]string{"name": devAuthName, "kind": "webex-login", "baseUrl": sim.BaseURL(), "domain": devDomain})
	status, raw, err := devCall(ctx, http.MethodPost, publicURL+"/v1/authorizations", apiKey, body)
	if err == nil && status == http.StatusConflict {
		if err = deleteDevAuthorization(ctx, publicURL, apiKey); err == nil {
			status, raw, err = devCall(ctx, http.MethodPost, publicURL+"/v1/authorizations", apiKey, body)
		}
	}
	if err != nil {
		return "", err
	}
	var created struct {
		ID           string `json:"id"`
		AuthorizeURL string `json:"authorizeUrl"`
	}
	if status != http.StatusCreated || json.Unmarshal(raw, &created) != nil || created.AuthorizeURL == "" {
		return "", fmt.Errorf("create: %d %s", status, raw)
	}
	back, err := engagesim.SignIn(ctx, created.AuthorizeURL, devUser, devPassword)
	if err != nil {
		return "", err
	}
	resp, page, _, err := loginflow.Finish(ctx, http.DefaultClient, back.String(), "connect")
	if err != nil {
		return "", fmt.Errorf("callback: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("callback: %d %s", resp.StatusCode, page)
	}
	return created.ID, nil
}

// deleteDevAuthorization deletes the demo tenant's authorization named devAuthName.
func deleteDevAuthorization(ctx context.Context, publicURL, apiKey string) error {
	status, raw, err := devCall(ctx, http.MethodGet, publicURL+"/v1/authorizations", apiKey, nil)
	if err != nil {
		return err
	}
	var list struct {
		Authorizations []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"authorizations"`
	}
	if status != http.StatusOK || json.Unmarshal(raw, &list) != nil {
		return fmt.Errorf("list: %d %s", status, raw)
	}
	for _, a := range list.Authorizations {
		if a.Name != devAuthName {
			continue
		}
		status, raw, err := devCall(ctx, http.MethodDelete, publicURL+"/v1/authorizations/"+url.PathEscape(a.ID), apiKey, nil)
		if err != nil {
			return err
		}
		if status != http.StatusNoContent {
			return fmt.Errorf("delete the earlier run's authorization: %d %s", status, raw)
		}
	}
	return nil
}

// devCall sends one request of the authorizations API with the demo API key.
func devCall(ctx context.Context, method, target, apiKey string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

func printDevBanner(w io.Writer, publicURL, apiKey, authID string, sim *engagesim.Sim) {
	exec := map[string]any{
		"node": "search-conversation", "version": "1.3", "authorizationId": authID,
		"input": map[string]string{"channel": "sms", "bizAddress": devBizNumber, "customerAddress": devCustomer},
	}
	body, _ := json.Marshal(exec)
	fmt.Fprintf(w, `
noderuntime dev is ready.
  service            %s   (admin pages: %s/admin/, metrics: %s/metrics)
  Engage simulator   %s   (login %s / %s; admin API %s)
  API key            %s   (tenant %q)
  authorization      %s   (webex-login %q, active)

Run Search Conversation:

curl -s %s/v1/executions \
  -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' \
  -d '%s'

Stop with Ctrl-C.
`, publicURL, publicURL, publicURL, sim.URL(), devUser, devPassword, sim.AdminURL(), apiKey, devTenant, authID, devAuthName,
		publicURL, apiKey, body)
}

func envOr(getenv func(string) string, k, def string) string {
	if v := getenv(k); v != "" {
		return v
	}
	return def
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
