package e2e

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
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

// needle is one form of a canary the scan looks for.
type needle struct {
	value []byte
	name  string
}

// needlesOf returns what the scan looks for, for each canary (value to name): the value
// as written; percent-encoded as url.QueryEscape and url.PathEscape write it, when that
// differs; and in base64, std and URL alphabets, at each of the 3 offsets it may start at
// in the encoded bytes, where what encodes it alone (the groups it shares with no other
// byte) is at least 16 characters (shorter could turn up by chance). That part is in the
// raw and the padded encoding alike, and in a larger text encoded ("Bearer <value>").
// Built once: the scan runs on every log line and answer of the suite.
func needlesOf(values map[string]string) []needle {
	var out []needle
	seen := map[string]bool{}
	add := func(value, name string) {
		if !seen[value] {
			seen[value] = true
			out = append(out, needle{[]byte(value), name})
		}
	}
	keys := slices.Sorted(maps.Keys(values))
	for _, value := range keys { // the plain values first: a finding names the plainest form
		add(value, values[value])
	}
	for _, value := range keys {
		name := values[value]
		for _, esc := range []string{url.QueryEscape(value), url.PathEscape(value)} {
			if esc != value {
				add(esc, name+" (percent-encoded)")
			}
		}
		for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
			for offset := range 3 {
				in := append(make([]byte, offset), value...)
				first, full := 0, len(in)/3*4
				if offset > 0 {
					first = 4 // the group the value shares with the bytes before it
				}
				if full-first >= 16 {
					add(enc.EncodeToString(in)[first:full], name+" (base64)")
				}
			}
		}
	}
	return out
}

// suiteNeedles are the forms of the suite's canaries.
var suiteNeedles = needlesOf(canaries)

// leakScan collects every canary found anywhere in the suite.
type leakScan struct {
	needles  []needle // suiteNeedles when nil
	mu       sync.Mutex
	findings []leak
}

type leak struct{ test, source, canary, context string }

// leaks is the suite's scan: every service log, child process' stderr, response and
// metrics scrape of every test goes through it.
var leaks = &leakScan{}

// scan records each canary b holds, once, in the first of its forms found.
func (l *leakScan) scan(test, source string, b []byte) {
	needles := l.needles
	if needles == nil {
		needles = suiteNeedles
	}
	var found []leak
	for _, n := range needles {
		i := bytes.Index(b, n.value)
		if i < 0 || slices.ContainsFunc(found, func(f leak) bool { return f.canary == n.name }) {
			continue
		}
		lo, hi := max(0, i-60), min(len(b), i+len(n.value)+60)
		ctx := strings.ReplaceAll(string(b[lo:hi]), string(n.value), "<"+n.name+">")
		found = append(found, leak{test: test, source: source, canary: n.name, context: ctx})
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

	// Each encoded form, of a canary whose two percent-encodings differ from it (of the
	// suite's, only the base64 encryption key's QueryEscape does, by its "="), and of each
	// of the suite's canaries long enough to be looked for in base64.
	const special = "tok/with+plus and>?~CANARY-77"
	cases := map[string]*leakScan{special: {needles: needlesOf(map[string]string{special: "test secret"})}}
	for value := range canaries {
		if len(value) >= 14 { // what encodes it alone is 16 characters at each offset
			cases[value] = &leakScan{}
		}
	}
	for value, scan := range cases {
		name := canaries[value]
		if value == special {
			name = "test secret"
		}
		var planted []string
		if value == special {
			planted = append(planted, url.QueryEscape(value), url.PathEscape(value))
		}
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
			for _, before := range []string{"", "B", "Be", "Bearer "} {
				planted = append(planted, enc.EncodeToString([]byte(value)), enc.EncodeToString([]byte(before+value+"\r\nAccept: */*")))
			}
		}
		for i, form := range planted {
			test := fmt.Sprint("T", i)
			scan.scan(test, "logs", []byte(`{"msg":"dump","request":"`+form+`"}`))
			found := scan.of(test)
			if len(found) != 1 || !strings.HasPrefix(found[0].canary, name+" (") || strings.Contains(found[0].context, form) {
				t.Errorf("%s as %s: found %q", name, form, found)
			}
		}
	}
}
