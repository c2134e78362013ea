package e2e

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// The secrets the suite configures, and the prefixes of what the simulator issues. They
// are canaries: none may ever appear in a log line, a metric or a response.
const (
	acmeKey           = "e2e-acme-api-key-CANARY-1f3a"
	globexKey         = "e2e-globex-api-key-CANARY-8c2d"
	userPassword      = "alice-password-CANARY-90e4"
	webexClientSecret = "webex-client-secret-CANARY-5b2e"
	tenantSecret      = "tenant-secret-CANARY-c7d1"
	encryptionKey     = "e2e-canary-encryption-key-32byte" // 32 bytes: AES-256
)

var encryptionKeyBase64 = base64.StdEncoding.EncodeToString([]byte(encryptionKey))

// canaries maps what is searched for to the name a finding shows (never the value).
var canaries = map[string]string{
	acmeKey:             "API key (acme)",
	globexKey:           "API key (globex)",
	userPassword:        "user password",
	webexClientSecret:   "Webex client secret",
	tenantSecret:        "tenant secret",
	encryptionKey:       "encryption key",
	encryptionKeyBase64: "encryption key (base64)",
	"simat_":            "access token",
	"simrt_":            "refresh token",
	"simcode_":          "login code",
}

// leakScan collects every canary found anywhere in the suite.
type leakScan struct {
	mu       sync.Mutex
	findings []leak
}

type leak struct{ test, source, canary, context string }

// leaks is the suite's scan: every service log, child process' stderr, response and
// metrics scrape of every test goes through it.
var leaks = &leakScan{}

func (l *leakScan) scan(test, source string, b []byte) {
	var found []leak
	for value, name := range canaries {
		if i := bytes.Index(b, []byte(value)); i >= 0 {
			lo, hi := max(0, i-60), min(len(b), i+len(value)+60)
			ctx := strings.ReplaceAll(string(b[lo:hi]), value, "<"+name+">")
			found = append(found, leak{test: test, source: source, canary: name, context: ctx})
		}
	}
	if len(found) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.findings = append(l.findings, found...)
}

// of returns the findings of one test.
func (l *leakScan) of(test string) []leak {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []leak
	for _, f := range l.findings {
		if f.test == test {
			out = append(out, f)
		}
	}
	return out
}

// report describes every finding, or "" when there is none.
func (l *leakScan) report() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, f := range l.findings {
		fmt.Fprintf(&b, "  %s: %s in %s: %q\n", f.test, f.canary, f.source, f.context)
	}
	return b.String()
}

// watchLeaks fails t, when it ends, if anything it produced held a canary. It runs after
// every other cleanup of t (child processes stopped, final metrics scraped), so call it
// first. Findings after t ended are caught by TestMain.
func watchLeaks(t testing.TB) {
	t.Helper()
	watched.Lock()
	defer watched.Unlock()
	if watched.m[t.Name()] {
		return
	}
	watched.m[t.Name()] = true
	t.Cleanup(func() {
		for _, f := range leaks.of(t.Name()) {
			t.Errorf("%s leaked into %s: %q", f.canary, f.source, f.context)
		}
	})
}

var watched = struct {
	sync.Mutex
	m map[string]bool
}{m: map[string]bool{}}

// leakWriter scans everything written to it (slog writes one record per Write) and
// keeps the last records, which a failing test shows.
type leakWriter struct {
	test, source string
	mu           sync.Mutex
	tail         [][]byte
	// warnings are the first warnings and errors: the tail of a long run may hold only
	// the requests after the one whose cause the failure needs.
	warnings [][]byte
}

// maxWarnings bounds leakWriter.warnings.
const maxWarnings = 40

func (w *leakWriter) Write(p []byte) (int, error) {
	leaks.scan(w.test, w.source, p)
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.tail) == 30 {
		w.tail = w.tail[1:]
	}
	w.tail = append(w.tail, bytes.Clone(p))
	if len(w.warnings) < maxWarnings && (bytes.Contains(p, []byte(`"level":"WARN"`)) || bytes.Contains(p, []byte(`"level":"ERROR"`))) {
		w.warnings = append(w.warnings, bytes.Clone(p))
	}
	return len(p), nil
}

// showOnFailure logs the last records w received if t fails.
func (w *leakWriter) showOnFailure(t testing.TB) {
	t.Cleanup(func() {
		if t.Failed() {
			w.mu.Lock()
			defer w.mu.Unlock()
			t.Logf("the first warnings and errors of %s:\n%s", w.source, bytes.Join(w.warnings, nil))
			t.Logf("the last lines of %s:\n%s", w.source, bytes.Join(w.tail, nil))
		}
	})
}

// scanLines scans r line by line until it ends (a child process' stderr), handing each
// line to onLine as well.
func scanLines(test, source string, r io.Reader, onLine func(line []byte)) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		leaks.scan(test, source, sc.Bytes())
		if onLine != nil {
			onLine(sc.Bytes())
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

// scanningTransport reads every response whole, scans its headers and body, and hands
// the body on.
type scanningTransport struct {
	test string
	base *http.Transport
}

func (s scanningTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := s.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	var head bytes.Buffer
	_ = resp.Header.Write(&head)
	leaks.scan(s.test, "the response headers of "+req.Method+" "+req.URL.Path, head.Bytes())
	leaks.scan(s.test, "the response to "+req.Method+" "+req.URL.Path, body)
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// newClient is an HTTP client whose responses are scanned for canaries. It does not
// follow redirects: where a response sends the caller is part of what tests check.
func newClient(t testing.TB) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport:     scanningTransport{test: t.Name(), base: tr},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func closeIdle(c *http.Client) { c.Transport.(scanningTransport).base.CloseIdleConnections() }

func TestTheLeakScanFindsACanaryAndNamesWhereWithoutShowingIt(t *testing.T) {
	t.Parallel()
	scan := &leakScan{}
	scan.scan("T", "logs", []byte(`{"msg":"refreshed","token":"simat_0123"}`))
	scan.scan("T", "a response", []byte(`{"ok":true}`))
	got := scan.report()
	if !strings.Contains(got, "T: access token in logs") || strings.Contains(got, "simat_") || strings.Contains(got, "a response") {
		t.Fatalf("report %q", got)
	}
	if len(scan.of("T")) != 1 || len(scan.of("U")) != 0 {
		t.Fatalf("findings by test: %v", scan.findings)
	}
}
