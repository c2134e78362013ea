// Package jsonlog is the service's slog handler. It writes the lines slog.JSONHandler
// writes, byte for byte, but encodes the common records itself: the access log writes
// one line per request, and slog's generic machinery (a pooled state per record, a
// Value switch per attribute, json.Marshal for every float) was a tenth of a request's
// CPU time.
//
// Records whose attributes are all strings, integers, floats, booleans, durations or
// times take the fast path. Anything else (a group, a LogValuer, an error or another
// value, NaN or an infinity, a time outside years 0-9999) and every derived handler
// (WithAttrs, WithGroup) go to slog.JSONHandler itself, on the same writer.
package jsonlog

import (
	"context"
	"io"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/noderuntime/noderuntime/internal/jsonenc"
)

// Handler is a slog.Handler; see the package comment.
type Handler struct {
	out   *lockedWriter
	level slog.Leveler
	slow  slog.Handler
	// plain is false when options (AddSource, ReplaceAttr) need slog's own handler for
	// every record.
	plain bool
}

// New returns a handler writing JSON lines to w with slog.JSONHandler's options.
func New(w io.Writer, opts *slog.HandlerOptions) *Handler {
	if opts == nil {
		opts = &slog.HandlerOptions{}
	}
	out := &lockedWriter{w: w}
	h := &Handler{out: out, level: opts.Level, slow: slog.NewJSONHandler(out, opts),
		plain: !opts.AddSource && opts.ReplaceAttr == nil}
	if h.level == nil {
		h.level = slog.LevelInfo
	}
	return h
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

// WithAttrs implements slog.Handler: derived loggers are rare and not hot, so they are
// slog's own.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler { return h.slow.WithAttrs(attrs) }

// WithGroup implements slog.Handler, as WithAttrs.
func (h *Handler) WithGroup(name string) slog.Handler { return h.slow.WithGroup(name) }

// Handle implements slog.Handler.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	if h.plain {
		buf := getBuffer()
		defer putBuffer(buf)
		line, ok := appendHead(*buf, r.Time, r.Level, r.Message)
		if ok {
			r.Attrs(func(a slog.Attr) bool {
				line, ok = appendAttr(line, a)
				return ok
			})
		}
		if ok {
			*buf = append(line, '}', '\n')
			return h.out.write(*buf)
		}
	}
	return h.slow.Handle(ctx, r)
}

// Line writes one record made of msg and attrs at level, stamped now, without building
// a slog.Record (which copies every attribute past the fifth into a new slice). The
// caller checks Enabled first, as slog.Logger does.
func (h *Handler) Line(ctx context.Context, level slog.Level, msg string, attrs ...slog.Attr) error {
	now := time.Now()
	if h.plain {
		buf := getBuffer()
		defer putBuffer(buf)
		line, ok := appendHead(*buf, now, level, msg)
		for i := 0; ok && i < len(attrs); i++ {
			line, ok = appendAttr(line, attrs[i])
		}
		if ok {
			*buf = append(line, '}', '\n')
			return h.out.write(*buf)
		}
	}
	r := slog.NewRecord(now, level, msg, 0)
	r.AddAttrs(attrs...)
	return h.slow.Handle(ctx, r)
}

// appendHead writes the opening brace and the built-in keys: time, level and msg.
func appendHead(b []byte, t time.Time, level slog.Level, msg string) ([]byte, bool) {
	b = append(b, '{')
	if !t.IsZero() {
		var ok bool
		if b, ok = appendTime(append(b, `"time":`...), t.Round(0)); !ok {
			return b, false
		}
		b = append(b, ',')
	}
	b = append(b, `"level":`...)
	b = appendString(b, level.String())
	b = append(b, `,"msg":`...)
	return appendString(b, msg), true
}

// appendAttr writes ,"key":value, or reports false for what the fast path leaves to
// slog.
func appendAttr(b []byte, a slog.Attr) ([]byte, bool) {
	if a.Key == "" {
		return b, false // an empty attribute is skipped and a group inlined: slog's rules
	}
	b = append(b, ',')
	b = appendString(b, a.Key)
	b = append(b, ':')
	v := a.Value
	switch v.Kind() {
	case slog.KindString:
		return appendString(b, v.String()), true
	case slog.KindInt64:
		return strconv.AppendInt(b, v.Int64(), 10), true
	case slog.KindUint64:
		return strconv.AppendUint(b, v.Uint64(), 10), true
	case slog.KindFloat64:
		return appendFloat(b, v.Float64())
	case slog.KindBool:
		return strconv.AppendBool(b, v.Bool()), true
	case slog.KindDuration:
		return strconv.AppendInt(b, int64(v.Duration()), 10), true
	case slog.KindTime:
		return appendTime(b, v.Time())
	}
	return b, false
}

func appendTime(b []byte, t time.Time) ([]byte, bool) {
	if y := t.Year(); y < 0 || y >= 10000 {
		return b, false
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), true
}

// appendFloat writes f as encoding/json does (which is what slog calls): the shortest
// decimal, in exponent form below 1e-6 or from 1e21, with a one-digit negative exponent
// written without its leading zero. NaN and infinities are errors there: left to slog.
func appendFloat(b []byte, f float64) ([]byte, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}

// appendString writes s quoted and escaped as slog.JSONHandler does.
func appendString(b []byte, s string) []byte { return jsonenc.AppendSlogString(b, s) }

// lockedWriter makes each line one Write, whichever path wrote it.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) write(p []byte) error {
	_, err := l.Write(p)
	return err
}

var buffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func getBuffer() *[]byte { return buffers.Get().(*[]byte) }

func putBuffer(b *[]byte) {
	if cap(*b) > 64<<10 {
		return // a rare huge line is not kept
	}
	*b = (*b)[:0]
	buffers.Put(b)
}
