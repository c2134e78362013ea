package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/noderuntime/noderuntime/internal/database"
	"github.com/noderuntime/noderuntime/internal/database/dbtest"
)

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitForOutput polls out until ready accepts it and returns what out holds then. It
// fails the test, showing out and the others (a program's other stream), if the program
// ends first (a value on exited) or timeout passes.
func waitForOutput[T any](t *testing.T, what string, out *lockedBuffer, ready func(string) bool, exited <-chan T, timeout time.Duration, others ...*lockedBuffer) string {
	t.Helper()
	shown := func(got string) string {
		for _, o := range others {
			got += "\n" + o.String()
		}
		return got
	}
	deadline := time.Now().Add(timeout)
	for {
		got := out.String()
		if ready(got) {
			return got
		}
		select {
		case v := <-exited:
			t.Fatalf("%s ended before it was ready (%v):\n%s", what, v, shown(got))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %s:\n%s", what, timeout, shown(got))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var curlLine = regexp.MustCompile(`(?s)curl -s (\S+) \\\s+-H 'Authorization: Bearer ([0-9a-f]+)' -H 'Content-Type: application/json' \\\s+-d '([^']+)'`)

// TestDevPrintsACurlThatRunsSearchConversation does what the README's quick start
// promises a new user: `noderuntime dev`, then paste the printed curl, get an outcome.
func TestDevPrintsACurlThatRunsSearchConversation(t *testing.T) {
	dbURL := dbtest.NewEmptyURL(t)
	var stdout, stderr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"dev", "--addr", "127.0.0.1:0", "--sim-addr", "127.0.0.1:0"},
			env(map[string]string{"DATABASE_URL": dbURL}), &stdout, &stderr)
	}()
	banner := waitForOutput(t, "noderuntime dev", &stdout, func(out string) bool { return strings.Contains(out, "Stop with Ctrl-C.") }, done, 60*time.Second, &stderr)
	m, status, raw := runPrintedCurl(t, "dev", banner)
	var answer struct {
		Outcome string         `json:"outcome"`
		Output  map[string]any `json:"output"`
	}
	if status != 200 || json.Unmarshal(raw, &answer) != nil || answer.Outcome != "conversationActive" || answer.Output["conversationId"] == "" {
		t.Fatalf("the printed curl answered %d %s", status, raw)
	}

	stopWithSIGTERM(t, "dev", done, &stderr)
	if strings.Contains(stderr.String(), m[2]) {
		t.Fatal("the API key appears in the logs")
	}
}

func TestDevFallsBackToAThrowawayClusterWithoutAnyPostgres(t *testing.T) {
	var out bytes.Buffer
	url, cleanup, err := devDatabaseURL(t.Context(), "", "postgres://postgres@127.0.0.1:1/postgres?connect_timeout=1", "unused", &out)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	if !strings.Contains(out.String(), "throwaway cluster") {
		t.Fatalf("said %q", out.String())
	}
	if _, _, err := database.Migrate(t.Context(), url); err != nil {
		t.Fatalf("the throwaway cluster does not take migrations: %v", err)
	}
}

func TestDevUsesTheLocalServerWithAFreshDatabase(t *testing.T) {
	var out bytes.Buffer
	// Not the real dev database: a developer's `make run` must survive `make test`.
	name := fmt.Sprintf("nrtest_%d_dev", os.Getpid())
	url, cleanup, err := devDatabaseURL(t.Context(), "", dbtest.AdminURL(), name, &out)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	t.Cleanup(func() {
		if conn, err := pgx.Connect(context.Background(), dbtest.AdminURL()); err == nil {
			_, _ = conn.Exec(context.Background(), "drop database if exists "+name+" with (force)")
			conn.Close(context.Background())
		}
	})
	if _, _, err := database.Migrate(t.Context(), url); err != nil {
		t.Fatalf("the fresh local database does not take migrations: %v", err)
	}
	if !strings.Contains(url, "/"+name) || !strings.Contains(out.String(), "recreated") {
		t.Fatalf("url %q, said %q", url, out.String())
	}
}

// TestDevRunsAgainOnTheSameDatabase: `make run` with DATABASE_URL set, stopped and run
// again, starts again. The first run's demo authorization is still in that database
// (sealed under the first run's random key, so of no use), and its name must not stop
// the second run from adding its own.
func TestDevRunsAgainOnTheSameDatabase(t *testing.T) {
	dbURL := dbtest.NewEmptyURL(t)
	var firstID string
	for i := range 2 {
		var stdout, stderr lockedBuffer
		done := make(chan int, 1)
		go func() {
			done <- run([]string{"dev", "--addr", "127.0.0.1:0", "--sim-addr", "127.0.0.1:0"},
				env(map[string]string{"DATABASE_URL": dbURL}), &stdout, &stderr)
		}()
		banner := waitForOutput(t, fmt.Sprintf("noderuntime dev, run %d", i+1), &stdout, func(out string) bool { return strings.Contains(out, "Stop with Ctrl-C.") }, done, 60*time.Second, &stderr)
		m, status, raw := runPrintedCurl(t, fmt.Sprintf("run %d", i+1), banner)
		if status != 200 || !strings.Contains(string(raw), `"outcome":"conversationActive"`) {
			t.Fatalf("run %d: the printed curl answered %d %s", i+1, status, raw)
		}
		var exec struct {
			AuthorizationID string `json:"authorizationId"`
		}
		if err := json.Unmarshal([]byte(m[3]), &exec); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			firstID = exec.AuthorizationID
		} else if exec.AuthorizationID == firstID {
			t.Fatalf("run 2 printed run 1's authorization %s", firstID)
		}

		stopWithSIGTERM(t, fmt.Sprintf("run %d: dev", i+1), done, &stderr)
	}
}

// An empty --addr is unset (NODERUNTIME_ADDR, else 127.0.0.1:8080 applies), not every
// interface on a random port.
func TestDevWithAnEmptyAddrListensWhereItWouldWithout(t *testing.T) {
	var stdout, stderr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"dev", "--addr=", "--sim-addr", "127.0.0.1:0"},
			env(map[string]string{"DATABASE_URL": dbtest.NewEmptyURL(t), "NODERUNTIME_ADDR": "127.0.0.1:0"}), &stdout, &stderr)
	}()
	banner := waitForOutput(t, "noderuntime dev", &stdout, func(out string) bool { return strings.Contains(out, "Stop with Ctrl-C.") }, done, 60*time.Second, &stderr)
	stopWithSIGTERM(t, "dev", done, &stderr)
	if !strings.Contains(banner, "service            http://127.0.0.1:") {
		t.Fatalf("dev with --addr= serves elsewhere:\n%s", banner)
	}
}

// stopWithSIGTERM sends the test process SIGTERM, as Kubernetes or Ctrl-C would, and
// waits for the command running in it (what names it) to exit 0.
func stopWithSIGTERM(t *testing.T, what string, done <-chan int, stderr *lockedBuffer) {
	t.Helper()
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("%s exited %d after SIGTERM:\n%s", what, code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not stop after SIGTERM", what)
	}
}

// runPrintedCurl finds the curl in dev's banner and sends what it would: it returns the
// curl's parts (curlLine's submatches), the answer's status and its body.
func runPrintedCurl(t *testing.T, what, banner string) (m []string, status int, body []byte) {
	t.Helper()
	m = curlLine.FindStringSubmatch(banner)
	if m == nil {
		t.Fatalf("%s: no curl in the banner:\n%s", what, banner)
	}
	req, _ := http.NewRequest(http.MethodPost, m[1], strings.NewReader(m[3]))
	req.Header.Set("Authorization", "Bearer "+m[2])
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ = io.ReadAll(resp.Body)
	return m, resp.StatusCode, body
}

// A second `make run` while the first still holds its port must fail before it picks a
// database: the local server's noderuntime_dev is dropped WITH (FORCE) when recreated,
// which would take the first run's database away from under it.
func TestDevWithItsAddressTakenFailsBeforeTouchingAnyDatabase(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	// No DATABASE_URL and a local server that is not there: what dev would pick next is
	// a throwaway cluster, and it must not get that far either.
	noPostgres := []string{"--sim-addr", "127.0.0.1:0",
		"--local-postgres", "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=1"}
	for name, tc := range map[string]struct {
		args []string
		vars map[string]string
	}{
		"given by --addr":           {append([]string{"dev", "--addr", taken.Addr().String()}, noPostgres...), map[string]string{}},
		"given by NODERUNTIME_ADDR": {append([]string{"dev"}, noPostgres...), map[string]string{"NODERUNTIME_ADDR": taken.Addr().String()}},
	} {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr lockedBuffer
			code := run(tc.args, env(tc.vars), &stdout, &stderr)
			if code != exitFailed || !strings.Contains(stderr.String(), "listen on "+taken.Addr().String()) {
				t.Fatalf("dev with its address taken exited %d:\n%s", code, stderr.String())
			}
			if strings.Contains(stdout.String(), "postgres:") {
				t.Fatalf("dev chose a database before it found its address taken:\n%s", stdout.String())
			}
		})
	}
}

// A Ctrl-C while dev starts the service makes app.Run return nil before it is ready (as
// internal/app's tests pin): that is a stop, so dev exits 0 and prints nothing, where it
// used to print "noderuntime dev: <nil>" and exit 1. The signal itself cannot be timed
// to land between app.New and Run, so the decision is tested on Run's answer.
func TestDevStoppedBeforeTheServiceIsReadyExitsZeroSayingNothing(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		start   func(ready chan struct{}, done chan error)
		code    int
		ok      bool
		printed string
	}{
		{"ready", func(ready chan struct{}, _ chan error) { close(ready) }, exitOK, true, ""},
		{"stopped before ready", func(_ chan struct{}, done chan error) { done <- nil }, exitOK, false, ""},
		{"failed before ready", func(_ chan struct{}, done chan error) { done <- fmt.Errorf("listen: boom") }, exitFailed, false, "noderuntime dev: listen: boom\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var stderr bytes.Buffer
			fail := func(err error) int { fmt.Fprintf(&stderr, "noderuntime dev: %v\n", err); return exitFailed }
			ready, done := make(chan struct{}), make(chan error, 1)
			c.start(ready, done)
			code, ok := untilReady(ready, done, fail)
			if code != c.code || ok != c.ok || stderr.String() != c.printed {
				t.Fatalf("exit %d, ready %v, printed %q; want %d, %v, %q", code, ok, stderr.String(), c.code, c.ok, c.printed)
			}
		})
	}
}
