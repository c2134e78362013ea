// Package logbuf is the service's log output: a writer that gathers log lines in memory
// and writes them in a few large writes, after a short delay or when the buffer fills,
// instead of one write system call per line. At full load the access log alone would
// otherwise cost one syscall per request.
//
// Lines are never split or reordered: each Write is kept whole, and buffered bytes go
// out in the order they came. Close (at shutdown) writes what is left; a process that
// dies without it can lose at most the last Delay of lines.
//
// The output is written under the buffer's lock, as a direct write to it would block:
// an output that stops taking bytes (a stderr pipe nobody reads) holds up every line
// logged meanwhile. A write the output refuses drops the lines it held; they are not
// tried again, and the first such error is what Flush and Close report.
package logbuf

import (
	"io"
	"sync"
	"time"
)

// Defaults of New.
const (
	// DefaultDelay bounds how long a line waits in memory: short enough that a person
	// tailing the log sees nothing lag.
	DefaultDelay = 100 * time.Millisecond
	// DefaultSize is the buffer size: a few hundred access-log lines.
	DefaultSize = 64 << 10
)

// Writer buffers writes to an io.Writer. It is safe for concurrent use.
type Writer struct {
	mu     sync.Mutex
	out    io.Writer
	buf    []byte
	size   int
	delay  time.Duration
	timer  *time.Timer
	armed  bool
	closed bool
	err    error // the first error of the underlying writer, reported by Flush and Close
}

// New returns a Writer on out that holds a line at most delay and at most size bytes;
// zero takes the defaults.
func New(out io.Writer, delay time.Duration, size int) *Writer {
	if delay <= 0 {
		delay = DefaultDelay
	}
	if size <= 0 {
		size = DefaultSize
	}
	w := &Writer{out: out, buf: make([]byte, 0, size), size: size, delay: delay}
	w.timer = time.AfterFunc(time.Hour, w.flushByTimer)
	w.timer.Stop()
	return w
}

// Write buffers p whole. A p that does not fit in an empty buffer is written through.
// After Close, writes go straight to the underlying writer.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return w.out.Write(p)
	}
	if len(w.buf)+len(p) > w.size {
		w.flushLocked()
		if len(p) > w.size {
			return w.writeOut(p)
		}
	}
	w.buf = append(w.buf, p...)
	if !w.armed {
		w.armed = true
		w.timer.Reset(w.delay)
	}
	return len(p), nil
}

// Flush writes the buffered lines now.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flushLocked()
	return w.err
}

// Close writes the buffered lines and makes later writes unbuffered (a line logged
// after shutdown still appears). It does not close the underlying writer.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer.Stop()
	w.armed = false
	w.flushLocked()
	w.closed = true
	return w.err
}

func (w *Writer) flushByTimer() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.armed = false
	w.flushLocked()
}

// flushLocked writes the buffer; the caller holds mu, so lines keep their order.
func (w *Writer) flushLocked() {
	if len(w.buf) == 0 {
		return
	}
	_, _ = w.writeOut(w.buf)
	w.buf = w.buf[:0]
}

func (w *Writer) writeOut(p []byte) (int, error) {
	n, err := w.out.Write(p)
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}
