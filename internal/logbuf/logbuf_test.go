package logbuf_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/noderuntime/noderuntime/internal/logbuf"
)

// sink records every write the buffer makes to it.
type sink struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
	fail   error
}

func (s *sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	if s.fail != nil {
		return 0, s.fail
	}
	return s.buf.Write(p)
}

func (s *sink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}

func TestCloseWritesEveryBufferedLine(t *testing.T) {
	var s sink
	w := logbuf.New(&s, time.Hour, 0)
	var want strings.Builder
	for i := range 1000 {
		line := fmt.Sprintf(`{"msg":"request","n":%d}`+"\n", i)
		want.WriteString(line)
		if _, err := w.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if s.String() != want.String() {
		t.Fatalf("after Close the output has %d of %d bytes", len(s.String()), want.Len())
	}
	if n := s.count(); n > 1+want.Len()/logbuf.DefaultSize {
		t.Fatalf("%d writes for %d bytes: the lines were not gathered", n, want.Len())
	}
	// A line after Close still reaches the output, at once.
	_, _ = w.Write([]byte("late\n"))
	if !strings.HasSuffix(s.String(), "late\n") {
		t.Fatal("a line written after Close was lost")
	}
}

func TestALineWaitsAtMostTheDelay(t *testing.T) {
	var s sink
	w := logbuf.New(&s, 20*time.Millisecond, 0)
	defer w.Close()
	start := time.Now()
	_, _ = w.Write([]byte("one\n"))
	if s.String() != "" {
		t.Fatal("the line was written through instead of buffered")
	}
	for s.String() != "one\n" {
		if time.Since(start) > 2*time.Second {
			t.Fatal("the buffered line was not flushed by the timer")
		}
		time.Sleep(time.Millisecond)
	}
	// The timer re-arms for the next line.
	_, _ = w.Write([]byte("two\n"))
	for s.String() != "one\ntwo\n" {
		if time.Since(start) > 4*time.Second {
			t.Fatal("the second line was not flushed by the timer")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestConcurrentLinesStayWholeAndInOrderPerWriter(t *testing.T) {
	var s sink
	w := logbuf.New(&s, time.Millisecond, 512) // small: many flushes meanwhile
	// Flush, called meanwhile (as serve does before its last words), keeps them too.
	done := make(chan struct{})
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		for {
			select {
			case <-done:
				return
			default:
				_ = w.Flush()
			}
		}
	}()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				_, _ = fmt.Fprintf(w, "g%d %04d %s\n", g, i, strings.Repeat("x", i%100))
			}
		}()
	}
	wg.Wait()
	close(done)
	<-flushed
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	next := map[string]int{}
	lines := strings.Split(strings.TrimSuffix(s.String(), "\n"), "\n")
	if len(lines) != 8*500 {
		t.Fatalf("%d lines, want %d", len(lines), 8*500)
	}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 2 {
			t.Fatalf("torn line %q", l)
		}
		i, err := strconv.Atoi(f[1])
		pad := strings.TrimPrefix(l, f[0]+" "+f[1]+" ")
		if err != nil || i != next[f[0]] || pad != strings.Repeat("x", i%100) {
			t.Fatalf("line %q torn or out of order (want %s %04d)", l, f[0], next[f[0]])
		}
		next[f[0]]++
	}
}

func TestALineLargerThanTheBufferIsWrittenThroughAfterTheOthers(t *testing.T) {
	var s sink
	w := logbuf.New(&s, time.Hour, 16)
	_, _ = w.Write([]byte("short\n"))
	big := strings.Repeat("y", 40) + "\n"
	_, _ = w.Write([]byte(big))
	if s.String() != "short\n"+big {
		t.Fatalf("got %q", s.String())
	}
	_ = w.Close()
}

func TestFlushAndCloseReportTheOutputsError(t *testing.T) {
	s := sink{fail: errors.New("disk full")}
	w := logbuf.New(&s, time.Hour, 0)
	_, _ = w.Write([]byte("line\n"))
	if err := w.Flush(); err == nil || err.Error() != "disk full" {
		t.Fatalf("Flush: %v", err)
	}
	if err := w.Close(); err == nil {
		t.Fatal("Close forgot the error")
	}
}

// A line written through (larger than the buffer) that the output refuses is reported
// by Flush and Close too, as a buffered one is.
func TestAnErrorWritingALineThroughIsReportedByFlushAndClose(t *testing.T) {
	s := sink{fail: errors.New("disk full")}
	w := logbuf.New(&s, time.Hour, 8)
	if _, err := w.Write([]byte(strings.Repeat("y", 20) + "\n")); err == nil {
		t.Fatal("Write: no error")
	}
	if err := w.Flush(); err == nil || err.Error() != "disk full" {
		t.Fatalf("Flush: %v", err)
	}
	if err := w.Close(); err == nil {
		t.Fatal("Close forgot the error")
	}
}

// Close writes whatever is buffered, down to a single byte.
func TestCloseWritesALoneByte(t *testing.T) {
	var s sink
	w := logbuf.New(&s, time.Hour, 0)
	_, _ = w.Write([]byte("\n"))
	if err := w.Close(); err != nil || s.String() != "\n" {
		t.Fatalf("output %q, error %v", s.String(), err)
	}
}

// BenchmarkAccessLogLine writes one access-log-sized line to a pipe, as a container's
// stderr is: straight, and through the buffer.
func BenchmarkAccessLogLine(b *testing.B) {
	line := []byte(`{"time":"2026-11-25T12:00:00.000000000Z","level":"INFO","msg":"request","requestId":"0123456789abcdef0123456789abcdef","method":"POST","route":"/v1/executions","status":200,"bytes":412,"durationMs":1.234,"tenant":"bench","node":"search-conversation","version":"1.3","authorizationId":"7d0c1a2b-0000-4000-8000-000000000001","outcome":"conversationActive","executionId":"66f7c982-2201-4407-a81f-4112791c2806","executionMs":1.1}` + "\n")
	for _, buffered := range []bool{false, true} {
		name := "direct"
		if buffered {
			name = "buffered"
		}
		b.Run(name, func(b *testing.B) {
			r, f, err := os.Pipe()
			if err != nil {
				b.Fatal(err)
			}
			drained := make(chan struct{})
			go func() { _, _ = io.Copy(io.Discard, r); close(drained) }()
			defer func() { f.Close(); <-drained; r.Close() }()
			var w io.Writer = f
			if buffered {
				lw := logbuf.New(f, logbuf.DefaultDelay, logbuf.DefaultSize)
				defer lw.Close()
				w = lw
			}
			b.SetBytes(int64(len(line)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := w.Write(line); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A line that would take the buffer one byte past its size sends the buffered lines
// out first: the buffer never grows past its size.
func TestALineThatWouldOverfillTheBufferSendsTheOthersFirst(t *testing.T) {
	var s sink
	w := logbuf.New(&s, time.Hour, 8)
	defer w.Close()
	_, _ = w.Write([]byte("1234\n"))
	_, _ = w.Write([]byte("abc\n")) // 9 bytes in all: one too many
	if got := s.String(); got != "1234\n" {
		t.Fatalf("written before the second line was buffered: %q", got)
	}
}

// flaky fails with each error in turn.
type flaky struct{ errs []error }

func (f *flaky) Write(p []byte) (int, error) {
	err := f.errs[0]
	if len(f.errs) > 1 {
		f.errs = f.errs[1:]
	}
	return 0, err
}

func TestTheFirstErrorOfTheOutputIsTheOneReported(t *testing.T) {
	first := errors.New("disk full")
	w := logbuf.New(&flaky{errs: []error{first, errors.New("later")}}, time.Hour, 8)
	_, _ = w.Write([]byte("1234567\n"))
	_ = w.Flush()
	_, _ = w.Write([]byte("1234567\n"))
	if err := w.Close(); !errors.Is(err, first) {
		t.Fatalf("Close: %v, want %v", err, first)
	}
}

// Lines that keep coming do not hold back the first: the timer starts with the first
// line of a batch and is not pushed back by the lines after it, so a busy log still
// reaches the output within about the delay.
func TestASteadyStreamOfLinesDoesNotHoldBackTheFirst(t *testing.T) {
	const delay = 200 * time.Millisecond
	var s sink
	w := logbuf.New(&s, delay, 0)
	defer w.Close()
	start := time.Now()
	_, _ = w.Write([]byte("first\n"))
	for !strings.HasPrefix(s.String(), "first\n") {
		// Generous for a loaded machine (the line is out after one delay); a timer put
		// off by every write would hold it for as long as the writes go on.
		if waited := time.Since(start); waited > 25*delay {
			t.Fatalf("the first line still waits after %v with a delay of %v", waited, delay)
		}
		_, _ = w.Write([]byte("more\n"))
		time.Sleep(delay / 40)
	}
}

// The buffer holds up to its size: lines that fill it exactly wait for the timer (or
// the next line) like the others, rather than costing a write each.
func TestLinesThatFillTheBufferExactlyStayBuffered(t *testing.T) {
	var s sink
	w := logbuf.New(&s, time.Hour, 10)
	_, _ = w.Write([]byte("1234\n"))
	_, _ = w.Write([]byte("6789\n"))
	if n := s.count(); n != 0 {
		t.Fatalf("%d writes for two lines that fill the buffer exactly", n)
	}
	_ = w.Flush()
	_, _ = w.Write([]byte("123456789\n"))
	if n := s.count(); n != 1 {
		t.Fatalf("%d writes after a line as large as the buffer", n)
	}
	if err := w.Close(); err != nil || s.String() != "1234\n6789\n123456789\n" {
		t.Fatalf("output %q, error %v", s.String(), err)
	}
}

// A zero delay takes the default: the line waits in memory rather than going out at
// once.
func TestAZeroDelayTakesTheDefault(t *testing.T) {
	var s sink
	w := logbuf.New(&s, 0, 0)
	defer w.Close()
	start := time.Now()
	_, _ = w.Write([]byte("one\n"))
	for s.String() != "one\n" {
		if time.Since(start) > 50*logbuf.DefaultDelay {
			t.Fatal("the buffered line was not flushed by the timer")
		}
		time.Sleep(time.Millisecond)
	}
	if waited := time.Since(start); waited < logbuf.DefaultDelay {
		t.Fatalf("the line went out after %v, before the default delay of %v", waited, logbuf.DefaultDelay)
	}
}

// A line as large as the buffer fits in it once the lines before it are sent: it waits
// like the others rather than being written through.
func TestALineAsLargeAsTheBufferAfterOthersIsBuffered(t *testing.T) {
	var s sink
	w := logbuf.New(&s, time.Hour, 10)
	_, _ = w.Write([]byte("ab\n"))
	_, _ = w.Write([]byte("123456789\n"))
	if got := s.String(); got != "ab\n" {
		t.Fatalf("written before Close: %q", got)
	}
	if err := w.Close(); err != nil || s.String() != "ab\n123456789\n" {
		t.Fatalf("output %q, error %v", s.String(), err)
	}
}

// Flush and Close with nothing buffered make no write: an empty write is still a
// system call.
func TestNothingBufferedMakesNoWrite(t *testing.T) {
	var s sink
	w := logbuf.New(&s, time.Hour, 0)
	_ = w.Flush()
	_, _ = w.Write([]byte("line\n"))
	_ = w.Flush()
	_ = w.Flush()
	_ = w.Close()
	if n := s.count(); n != 1 {
		t.Fatalf("%d writes for one line", n)
	}
}

// Write reports every byte of a line as written, buffered, written through or after
// Close, as io.Writer requires (fmt.Fprintf and io.Copy take a short count for an
// error).
func TestWriteReportsTheWholeLine(t *testing.T) {
	var s sink
	w := logbuf.New(&s, time.Hour, 8)
	for i, line := range []string{"buf\n", "written through\n", "after Close\n"} {
		if i == 2 {
			_ = w.Close()
		}
		if n, err := w.Write([]byte(line)); n != len(line) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", line, n, err)
		}
	}
}

// A write the output refuses drops the lines it held (package doc): once the output
// takes bytes again, only the lines logged since go out, and the refusal is still the
// error Flush reports.
func TestLinesTheOutputRefusedAreNotWrittenAgain(t *testing.T) {
	refused := errors.New("disk full")
	s := sink{fail: refused}
	w := logbuf.New(&s, time.Hour, 64)
	_, _ = w.Write([]byte("lost\n"))
	if err := w.Flush(); !errors.Is(err, refused) {
		t.Fatalf("Flush: %v, want %v", err, refused)
	}
	s.mu.Lock()
	s.fail = nil
	s.mu.Unlock()
	_, _ = w.Write([]byte("kept\n"))
	if err := w.Flush(); !errors.Is(err, refused) {
		t.Fatalf("Flush after the output recovered: %v, want the first error, %v", err, refused)
	}
	if got := s.String(); got != "kept\n" {
		t.Fatalf("output %q, want only the line logged after the refusal", got)
	}
}
