package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// wireServer serves h on loopback and counts the connections it accepted.
func wireServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

func wireRequestTo(t *testing.T, url string) wireRequest {
	t.Helper()
	w, err := buildWire(request{url: url + "/v1/executions?x=1", apiKey: "k", body: []byte(`{"a":1}`), headers: map[string]string{"Idempotency-Key": "i"}})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// The request arrives as net/http's client would send it, and answers are read on one
// kept connection, whatever their framing.
func TestWireConnReadsAnswersOnOneConnection(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	srv, conns := wireServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("Authorization")+" "+r.Header.Get("Content-Type")+" "+r.Header.Get("Idempotency-Key")+" "+string(b))
		mu.Unlock()
		w.Write([]byte(`{"outcome":"ok"}`))
	})
	wc := &wireConn{}
	defer wc.close()
	w := wireRequestTo(t, srv.URL)
	for range 3 {
		status, body, err := wc.do(w)
		if err != nil || status != http.StatusOK || string(body) != `{"outcome":"ok"}` {
			t.Fatalf("do: %d %q %v", status, body, err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 3 requests, want 1", n)
	}
	want := `POST /v1/executions?x=1 Bearer k application/json i {"a":1}`
	for _, s := range seen {
		if s != want {
			t.Errorf("server saw %q, want %q", s, want)
		}
	}
}

func TestWireConnFraming(t *testing.T) {
	big := strings.Repeat("x", 20000) // past net/http's buffer: sent chunked
	srv, conns := wireServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/chunked":
			io.WriteString(w, big[:10000])
			w.(http.Flusher).Flush()
			io.WriteString(w, big[10000:])
		case "/close":
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		case "/teapot":
			w.WriteHeader(http.StatusTeapot)
			io.WriteString(w, "short and stout")
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		}
	})
	wc := &wireConn{}
	defer wc.close()
	for _, c := range []struct {
		path   string
		status int
		body   string
	}{
		{"/chunked", 200, big},
		{"/empty", 204, ""},
		{"/teapot", 418, "short and stout"},
		{"/close", 200, "bye"},
		{"/empty", 204, ""}, // on a new connection: the last one was closed
	} {
		w, err := buildWire(request{url: srv.URL + c.path})
		if err != nil {
			t.Fatal(err)
		}
		status, body, err := wc.do(w)
		if err != nil || status != c.status || string(body) != c.body {
			t.Fatalf("%s: %d %.40q %v, want %d %.40q", c.path, status, body, err, c.status, c.body)
		}
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (one closed by the server)", n)
	}
}

// A kept connection the server closed while idle is dialled again, not counted as an
// error; a server that is gone is.
func TestWireConnRedialsAfterIdleClose(t *testing.T) {
	srv, conns := wireServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	wc := &wireConn{}
	defer wc.close()
	w := wireRequestTo(t, srv.URL)
	if _, _, err := wc.do(w); err != nil {
		t.Fatal(err)
	}
	srv.CloseClientConnections()
	// Wait until the close has reached the client's side of the connection.
	for deadline := time.Now().Add(5 * time.Second); conns.Load() == 1; {
		wc.c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		if _, err := wc.br.Peek(1); err == io.EOF {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server's close never arrived")
		}
	}
	if status, body, err := wc.do(w); err != nil || status != 200 || string(body) != "ok" {
		t.Fatalf("after the server closed the idle connection: %d %q %v", status, body, err)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
	srv.Close()
	if _, _, err := wc.do(w); err == nil {
		t.Fatal("a closed server answered")
	}
}

func TestWireConnRejectsWhatIsNotHTTP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 4096)
			c.Read(buf)
			c.Write([]byte("SSH-2.0-OpenSSH\r\n\r\n"))
			c.Close()
		}
	}()
	wc := &wireConn{}
	w, err := buildWire(request{url: "http://" + ln.Addr().String() + "/"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := wc.do(w); err == nil || !strings.Contains(err.Error(), "bad status line") {
		t.Fatalf("err = %v, want a bad status line", err)
	}
	if _, err := buildWire(request{url: "https://example.invalid/"}); err == nil {
		t.Fatal("https accepted")
	}
}

// The pool hands a worker's connection to the next window, and closeIdle makes the next
// requests dial anew (the bursts).
func TestWirePoolKeepsConnectionsAcrossWindows(t *testing.T) {
	srv, conns := wireServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `"outcome":"ok"`) })
	var p wirePool
	defer p.closeIdle()
	r := request{url: srv.URL + "/v1/executions", accept: func(status int, b []byte) bool { return status == 200 && strings.Contains(string(b), "ok") }}.prepare()
	for range 2 {
		if s := closedLoop(&p, r, 4, 50*time.Millisecond); s.requests == 0 || s.errors != 0 {
			t.Fatalf("closed loop: %d requests, %d errors", s.requests, s.errors)
		}
	}
	if n := conns.Load(); n != 4 {
		t.Errorf("%d connections over two windows of 4 workers, want 4", n)
	}
	p.closeIdle()
	if s := burst(&p, r, 8); s.errors != 0 {
		t.Fatalf("burst: %d errors", s.errors)
	}
	if n := conns.Load(); n != 12 {
		t.Errorf("%d connections after a burst of 8 on closed idle connections, want 12", n)
	}
	s := openLoop(&p, r, 2000, 100*time.Millisecond)
	if s.requests < 150 || s.errors != 0 || len(s.lags) != s.requests {
		t.Fatalf("open loop: %d requests, %d errors, %d lags", s.requests, s.errors, len(s.lags))
	}
}
