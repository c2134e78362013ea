package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The binary is built once per run of the package, the first time a test needs it, with
// the race detector when the tests have it.
var built struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func binary(t testing.TB) string {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "noderuntime-e2e-")
		if built.err != nil {
			return
		}
		gobin, err := exec.LookPath("go")
		if err != nil {
			built.err = fmt.Errorf("the go command is needed to build the binary: %w", err)
			return
		}
		built.path = filepath.Join(built.dir, "noderuntime")
		args := []string{"build", "-o", built.path}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command(gobin, append(args, "github.com/noderuntime/noderuntime/cmd/noderuntime")...)
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.path
}

func removeBuiltBinary() {
	if built.dir != "" {
		_ = os.RemoveAll(built.dir)
	}
}

// process is one `noderuntime serve` running as a child process.
type process struct {
	t      testing.TB
	name   string
	cmd    *exec.Cmd
	url    string
	exited chan struct{}
	code   int // exit code, once exited is closed

	mu    sync.Mutex
	lines [][]byte // every line of its stderr (its JSON log)
}

// processEnv is the environment of a replica: the suite's secrets and keys, the given
// database and simulator, a port chosen by the kernel, /metrics on the main port.
func processEnv(dbURL, engageBase string) map[string]string {
	return map[string]string{
		"DATABASE_URL":                dbURL,
		"NODERUNTIME_ADDR":            "127.0.0.1:0",
		"NODERUNTIME_ENCRYPTION_KEYS": "k1:" + encryptionKeyBase64,
		"NODERUNTIME_API_KEYS":        apiKeysSetting,
		"ENGAGE_ALLOWED_BASE_URLS":    engageBase,
		"NODERUNTIME_LOG_LEVEL":       "debug",
	}
}

// startProcess starts `noderuntime serve` with exactly env (and --metrics-addr= so
// /metrics is on the main port) and waits until it listens. Its stderr, and its metrics
// when t ends, go through the leak scan. When t ends it is stopped with SIGTERM (SIGKILL
// after 30 s) if still running, and a data race it reported fails t.
func startProcess(t testing.TB, name string, env map[string]string) *process {
	t.Helper()
	watchLeaks(t)
	cmd := exec.Command(binary(t), "serve", "--metrics-addr=")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if raceEnabled {
		// The race runtime waits 1 s at exit by default; a race still exits 66.
		cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0")
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{t: t, name: name, cmd: cmd, exited: make(chan struct{})}
	listening := make(chan string, 1)
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		scanLines(t.Name(), "the log of "+name, stderr, func(line []byte) {
			p.mu.Lock()
			p.lines = append(p.lines, bytes.Clone(line))
			p.mu.Unlock()
			var rec struct{ Msg, Addr string }
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "serving" && rec.Addr != "" {
				select {
				case listening <- rec.Addr:
				default:
				}
			}
		})
	}()
	go func() {
		<-logged // Wait must not close the pipe before everything was read
		err := cmd.Wait()
		p.code = cmd.ProcessState.ExitCode()
		if err != nil && p.code == 0 {
			p.code = -1
		}
		close(p.exited)
	}()
	scraper := newClient(t)
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default: // its metrics go through the leak scan too
			if resp, err := scraper.Get(p.url + "/metrics"); err == nil {
				resp.Body.Close()
			}
		}
		p.stop(30 * time.Second)
		p.mu.Lock()
		defer p.mu.Unlock()
		if t.Failed() {
			t.Logf("the last lines of %s's log:\n%s", name, bytes.Join(p.lines[max(0, len(p.lines)-30):], []byte("\n")))
		}
		for _, l := range p.lines {
			if bytes.Contains(l, []byte("WARNING: DATA RACE")) {
				t.Errorf("%s reported a data race; its log:\n%s", name, bytes.Join(p.lines, []byte("\n")))
				return
			}
		}
	})
	select {
	case addr := <-listening:
		p.url = "http://" + addr
	case <-p.exited:
		t.Fatalf("%s exited with %d before listening:\n%s", name, p.code, p.log())
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not listen within 60 s:\n%s", name, p.log())
	}
	return p
}

// stop sends SIGTERM and waits for the exit, killing the process after within.
func (p *process) stop(within time.Duration) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(within):
		_ = p.cmd.Process.Kill()
		<-p.exited
		p.t.Errorf("%s did not stop within %s of SIGTERM", p.name, within)
	}
}

// log is everything the process logged so far.
func (p *process) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return string(bytes.Join(p.lines, []byte("\n")))
}

// records returns the JSON log records whose msg is msg.
func (p *process) records(msg string) []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []map[string]any
	for _, l := range p.lines {
		var rec map[string]any
		if json.Unmarshal(l, &rec) == nil && rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// isConnectionError reports whether err means the request got no answer because the
// connection was refused or cut, not because of anything the server said.
func isConnectionError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		strings.Contains(err.Error(), "EOF") || strings.Contains(err.Error(), "connection reset")
}
