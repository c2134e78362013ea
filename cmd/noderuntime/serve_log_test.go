package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/noderuntime/noderuntime/internal/database/dbtest"
	"github.com/noderuntime/noderuntime/internal/tenant"
)

var servingLine = regexp.MustCompile(`"msg":"serving","addr":"([^"]+)"`)

// TestServeWritesEveryLogLineBeforeItExits: the log is buffered, and whatever is still
// in the buffer when SIGTERM ends the process must reach stderr, the last access-log
// line and the final "stopped" included.
func TestServeWritesEveryLogLineBeforeItExits(t *testing.T) {
	const apiKey, requests = "serve-log-test-key", 300
	vars := map[string]string{
		"DATABASE_URL":                dbtest.NewEmptyURL(t),
		"NODERUNTIME_ADDR":            "127.0.0.1:0",
		"NODERUNTIME_METRICS_ADDR":    "127.0.0.1:0",
		"NODERUNTIME_ENCRYPTION_KEYS": goodKeys,
		"NODERUNTIME_API_KEYS":        "acme:" + tenant.HashKey(apiKey),
	}
	var stdout, stderr lockedBuffer
	done := make(chan int, 1)
	go func() { done <- run([]string{"serve", "--migrate"}, env(vars), &stdout, &stderr) }()
	logs := waitForOutput(t, "noderuntime serve", &stderr, servingLine.MatchString, done, 60*time.Second, &stdout)
	addr := servingLine.FindStringSubmatch(logs)[1]
	for i := range requests {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/nodes", nil)
		req.Header.Set("Authorization", "Bearer "+apiKey)
		req.Header.Set("X-Request-Id", fmt.Sprintf("log-test-%04d", i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /v1/nodes: %d", resp.StatusCode)
		}
	}
	stopWithSIGTERM(t, "serve", done, &stderr)

	lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
	seen := map[string]bool{}
	for _, l := range lines {
		var rec struct {
			Msg       string `json:"msg"`
			RequestID string `json:"requestId"`
		}
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("a log line is not whole JSON: %q", l)
		}
		if rec.Msg == "request" && strings.HasPrefix(rec.RequestID, "log-test-") {
			seen[rec.RequestID] = true
		}
	}
	if len(seen) != requests {
		t.Fatalf("%d access-log lines of %d requests reached stderr", len(seen), requests)
	}
	if last := lines[len(lines)-1]; !strings.Contains(last, `"msg":"stopped"`) {
		t.Fatalf("the last line is %q, want the final \"stopped\"", last)
	}
}

// A SIGTERM while serve starts (its migration or its schema check waiting on a
// Postgres that does not answer) stops it with exit 0 and a line that says so, without
// ever taking its port or logging Postgres unreachable.
func TestSIGTERMWhileStartingStopsWithoutServing(t *testing.T) {
	for name, args := range map[string][]string{
		"during the schema check": {"serve"},
		"during the migration":    {"serve", "--migrate"},
	} {
		t.Run(name, func(t *testing.T) {
			// A "Postgres" that accepts connections and never answers.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			connected := make(chan struct{})
			go func() {
				var conns []net.Conn
				defer func() {
					for _, c := range conns {
						c.Close()
					}
				}()
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					if conns = append(conns, c); len(conns) == 1 {
						close(connected)
					}
				}
			}()
			vars := map[string]string{
				"DATABASE_URL":                "postgres://postgres@" + ln.Addr().String() + "/db?sslmode=disable&connect_timeout=60",
				"NODERUNTIME_ADDR":            "127.0.0.1:0",
				"NODERUNTIME_METRICS_ADDR":    "127.0.0.1:0",
				"NODERUNTIME_ENCRYPTION_KEYS": goodKeys,
				"NODERUNTIME_API_KEYS":        goodAPIKeys,
			}
			var stdout, stderr lockedBuffer
			done := make(chan int, 1)
			go func() { done <- run(args, env(vars), &stdout, &stderr) }()
			select {
			case <-connected: // serve waits on Postgres, its signal handler installed
			case code := <-done:
				t.Fatalf("serve exited %d before connecting:\n%s", code, stderr.String())
			case <-time.After(30 * time.Second):
				t.Fatal("serve never connected to Postgres")
			}
			if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			select {
			case code := <-done:
				out := stderr.String()
				if code != 0 || !strings.Contains(out, `"msg":"stopped before serving"`) ||
					strings.Contains(out, `"msg":"serving`) || strings.Contains(out, "not reachable") {
					t.Fatalf("exit %d, want 0 and only \"stopped before serving\":\n%s", code, out)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("serve did not stop after SIGTERM")
			}
		})
	}
}
