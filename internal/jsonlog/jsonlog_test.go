package jsonlog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

// both logs the same record through this handler and through slog.JSONHandler and
// returns the two outputs.
func both(t testing.TB, opts *slog.HandlerOptions, log func(*slog.Logger)) (fast, want string) {
	t.Helper()
	var a, b bytes.Buffer
	log(slog.New(New(&a, opts)))
	log(slog.New(slog.NewJSONHandler(&b, opts)))
	return a.String(), b.String()
}

var when = time.Date(2026, 11, 25, 13, 47, 46, 123456000, time.UTC)

// values covers every kind, the strings JSON escapes and the floats that switch to
// exponent form, on the fast path and off it.
var values = []slog.Attr{
	slog.String("plain", "search-conversation"),
	slog.String("escapes", "quote\" backslash\\ nl\n cr\r tab\t nul\x00 bell\x07 del\x7f"),
	slog.String("html", "<a href='x'>&amp;</a>"),
	slog.String("unicode", "héllo wörld 日本 🙂 \u2028 \u2029"),
	slog.String("invalid utf-8", "a\xffb\xc3(c\xe2\x82"),
	slog.String("", "empty key"),
	slog.String("empty value", ""),
	slog.Int64("int", -9223372036854775808),
	slog.Int("zero", 0),
	slog.Uint64("uint", math.MaxUint64),
	slog.Float64("durationMs", 1.234),
	slog.Float64("tiny", 1e-7),
	slog.Float64("edge small", 1e-6),
	slog.Float64("huge", 1e21),
	slog.Float64("just below huge", 999999999999999900000),
	slog.Float64("negative", -0.000000123),
	slog.Float64("negative zero", math.Copysign(0, -1)),
	slog.Float64("negative plain", -1234.5),
	slog.Float64("e-10", 1.5e-10),
	slog.Float64("e+100", 2e100),
	slog.Float64("nan", math.NaN()),
	slog.Float64("inf", math.Inf(-1)),
	slog.Bool("t", true),
	slog.Bool("f", false),
	slog.Duration("elapsed", 1500*time.Millisecond),
	slog.Time("at", time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 5*3600+1800))),
	slog.Time("far", time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC)),
	slog.Time("before year 0", time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)),
	slog.Any("error", errors.New("boom")),
	slog.Any("struct", struct{ A int }{1}),
	slog.Group("group", slog.String("inner", "v")),
	{},
}

func TestEveryAttributeAsSlogWritesIt(t *testing.T) {
	for _, a := range values {
		t.Run(a.Key, func(t *testing.T) {
			fast, want := both(t, nil, func(l *slog.Logger) {
				l.LogAttrs(context.Background(), slog.LevelInfo, "request", slog.String("requestId", "r1"), a)
			})
			if strip(fast) != strip(want) {
				t.Fatalf("got  %s\nwant %s", fast, want)
			}
			// Line writes the same, stamped now: compare all but the time.
			var buf bytes.Buffer
			h := New(&buf, nil)
			if err := h.Line(context.Background(), slog.LevelInfo, "request", slog.String("requestId", "r1"), a); err != nil {
				t.Fatal(err)
			}
			if strip(buf.String()) != strip(want) {
				t.Fatalf("Line wrote %s\nwant        %s", buf.String(), want)
			}
		})
	}
}

// strip removes the time key from each line: slog.Logger stamps its own.
func strip(out string) string {
	lines := strings.Split(out, "\n")
	for n, line := range lines {
		if i := strings.Index(line, `"time":"`); i >= 0 {
			if j := strings.Index(line[i+8:], `"`); j >= 0 {
				lines[n] = line[:i] + line[i+8+j+2:]
			}
		}
	}
	return strings.Join(lines, "\n")
}

func TestEveryAttributeInOneRecord(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError, slog.LevelInfo + 2} {
		fast, want := both(t, &slog.HandlerOptions{Level: slog.LevelDebug}, func(l *slog.Logger) {
			l.LogAttrs(context.Background(), level, "msg with \"quotes\"", values...)
			l.LogAttrs(context.Background(), level, "fast only", values[:5]...)
		})
		if strip(fast) != strip(want) {
			t.Fatalf("level %s:\ngot  %s\nwant %s", level, fast, want)
		}
	}
}

func TestRecordsAsSlogWritesThem(t *testing.T) {
	cases := map[string]func(*slog.Logger){
		"no attributes":  func(l *slog.Logger) { l.Info("started") },
		"key-value args": func(l *slog.Logger) { l.Warn("w", "a", 1, "b", "two", "c", 3.5) },
		"with attrs":     func(l *slog.Logger) { l.With("component", "store").Info("x", "k", "v") },
		"with group":     func(l *slog.Logger) { l.WithGroup("g").Info("x", "k", "v") },
		"below level":    func(l *slog.Logger) { l.Debug("hidden") },
		"zero time": func(l *slog.Logger) {
			_ = l.Handler().Handle(context.Background(), slog.NewRecord(time.Time{}, slog.LevelInfo, "no time", 0))
		},
		"fixed time": func(l *slog.Logger) {
			r := slog.NewRecord(when, slog.LevelError, "fixed", 0)
			r.AddAttrs(values[:12]...)
			_ = l.Handler().Handle(context.Background(), r)
		},
	}
	for name, log := range cases {
		t.Run(name, func(t *testing.T) {
			fast, want := both(t, nil, log)
			if strip(fast) != strip(want) {
				t.Fatalf("got  %s\nwant %s", fast, want)
			}
		})
	}
}

func TestOptionsThatNeedSlogAreHonoured(t *testing.T) {
	opts := &slog.HandlerOptions{
		AddSource: true,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == "secret" {
				a.Value = slog.StringValue("[redacted]")
			}
			return a
		},
	}
	var buf bytes.Buffer
	h := New(&buf, opts)
	r := slog.NewRecord(when, slog.LevelInfo, "m", 0)
	r.AddAttrs(slog.String("secret", "hunter2"))
	if err := h.Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	_ = h.Line(context.Background(), slog.LevelInfo, "m", slog.String("secret", "hunter2"))
	if strings.Contains(buf.String(), "hunter2") || strings.Count(buf.String(), "[redacted]") != 2 {
		t.Fatalf("ReplaceAttr not applied: %s", buf.String())
	}
}

func TestLevel(t *testing.T) {
	h := New(&bytes.Buffer{}, &slog.HandlerOptions{Level: slog.LevelWarn})
	if h.Enabled(context.Background(), slog.LevelInfo) || !h.Enabled(context.Background(), slog.LevelWarn) {
		t.Fatal("level not honoured")
	}
	if !New(&bytes.Buffer{}, nil).Enabled(context.Background(), slog.LevelInfo) {
		t.Fatal("the default level is info")
	}
}

// Lines written concurrently, on the fast path and through slog's, never interleave.
func TestConcurrentLinesStayWhole(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(New(&buf, nil))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if i%2 == 0 {
					l.Info("fast", "g", g, "i", i, "pad", strings.Repeat("x", 100))
				} else {
					l.Info("slow", "g", g, "err", errors.New("e"), "pad", strings.Repeat("y", 100))
				}
			}
		}()
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 1600 {
		t.Fatalf("%d lines", len(lines))
	}
	for _, line := range lines {
		if !strings.HasPrefix(line, `{"time":`) || !strings.HasSuffix(line, `}`) || strings.Count(line, `"msg"`) != 1 {
			t.Fatalf("broken line %q", line)
		}
	}
}

func FuzzLinesAsSlogWritesThem(f *testing.F) {
	f.Add("request", "requestId", "a\"b\\c\n", int64(-1), 1.234, true)
	f.Add("", "k", "\xff\u2028", int64(0), 1e-7, false)
	f.Add("m", "", "", int64(1<<62), 1e21, true)
	f.Fuzz(func(t *testing.T, msg, key, s string, i int64, fl float64, b bool) {
		fast, want := both(t, nil, func(l *slog.Logger) {
			r := slog.NewRecord(when, slog.LevelInfo, msg, 0)
			r.AddAttrs(slog.String(key, s), slog.Int64(key+"i", i), slog.Float64("f", fl), slog.Bool("b", b), slog.String(s, msg))
			_ = l.Handler().Handle(context.Background(), r)
		})
		if fast != want {
			t.Fatalf("got  %s\nwant %s", fast, want)
		}
	})
}

func BenchmarkAccessLine(b *testing.B) {
	attrs := []slog.Attr{
		slog.String("requestId", "0f1e2d3c4b5a69788796a5b4c3d2e1f0"), slog.String("method", "POST"),
		slog.String("route", "/v1/executions"), slog.Int("status", 200), slog.Int("bytes", 412),
		slog.Float64("durationMs", 1.234), slog.String("tenant", "acme"), slog.String("node", "search-conversation"),
		slog.String("version", "1.3"), slog.String("authorizationId", "8f0c6f1e-3c0b-4d55-9a57-6c1c1b1d9e10"),
		slog.String("flowId", "f1"), slog.String("flowNodeId", "n6"), slog.String("transactionId", "t9"),
		slog.String("outcome", "conversationActive"), slog.String("executionId", "5c72b4f8-0d6a-4b7e-9d1f-2a3b4c5d6e7f"),
		slog.Float64("executionMs", 0.871),
	}
	for _, c := range []struct {
		name string
		h    slog.Handler
	}{{"slog.JSONHandler", slog.NewJSONHandler(discard{}, nil)}, {"jsonlog", New(discard{}, nil)}} {
		b.Run(c.name+"/LogAttrs", func(b *testing.B) {
			l := slog.New(c.h)
			b.ReportAllocs()
			for b.Loop() {
				l.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs...)
			}
		})
	}
	b.Run("jsonlog/Line", func(b *testing.B) {
		h := New(discard{}, nil)
		b.ReportAllocs()
		for b.Loop() {
			_ = h.Line(context.Background(), slog.LevelInfo, "request", attrs...)
		}
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// A record that carries its own time is compared whole, time included (the tests above
// strip it, since slog.Logger stamps its own): no time key for the zero time, and a
// time attribute in the last year JSON can write and the first it cannot.
func TestARecordsOwnTimeIsWrittenAsSlogWritesIt(t *testing.T) {
	for name, r := range map[string]slog.Record{
		"zero time":  slog.NewRecord(time.Time{}, slog.LevelInfo, "no time", 0),
		"fixed time": slog.NewRecord(when, slog.LevelInfo, "fixed", 0),
		"year 9999": func() slog.Record {
			r := slog.NewRecord(when, slog.LevelInfo, "m", 0)
			r.AddAttrs(slog.Time("at", time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)))
			return r
		}(),
		"year 10000": func() slog.Record {
			r := slog.NewRecord(when, slog.LevelInfo, "m", 0)
			r.AddAttrs(slog.Time("at", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)))
			return r
		}(),
		// The record's own time out of range sends it all to slog, attributes included.
		"own time in year 10000": func() slog.Record {
			r := slog.NewRecord(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), slog.LevelInfo, "m", 0)
			r.AddAttrs(slog.String("k", "v"))
			return r
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			fast, want := both(t, nil, func(l *slog.Logger) { _ = l.Handler().Handle(context.Background(), r) })
			if fast != want {
				t.Fatalf("got  %s\nwant %s", fast, want)
			}
		})
	}
}

// Each option that needs slog's handler is honoured alone, not only with the other: a
// ReplaceAttr that redacts a secret must redact it on every line.
func TestEachOptionThatNeedsSlogIsHonouredAlone(t *testing.T) {
	t.Run("ReplaceAttr", func(t *testing.T) {
		var buf bytes.Buffer
		h := New(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == "secret" {
				a.Value = slog.StringValue("[redacted]")
			}
			return a
		}})
		slog.New(h).Info("m", "secret", "hunter2")
		if err := h.Line(context.Background(), slog.LevelInfo, "m", slog.String("secret", "hunter2")); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(buf.String(), "hunter2") || strings.Count(buf.String(), `"secret":"[redacted]"`) != 2 {
			t.Fatalf("ReplaceAttr not applied: %s", buf.String())
		}
	})
	t.Run("AddSource", func(t *testing.T) {
		var buf bytes.Buffer
		slog.New(New(&buf, &slog.HandlerOptions{AddSource: true})).Info("m")
		if !strings.Contains(buf.String(), `"source":{`) {
			t.Fatalf("no source: %s", buf.String())
		}
	})
}

// Line writes the level it is given and stamps the line now, on the fast path and off
// it: an attribute the fast path leaves to slog sends the whole line there, the
// attributes after it included.
func TestLineWritesItsLevelAndTheTimeNow(t *testing.T) {
	for name, attrs := range map[string][]slog.Attr{
		"fast path":            {slog.String("k", "v")},
		"slog after the first": {slog.Any("error", errors.New("boom")), slog.String("k", "v")},
	} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			before := time.Now()
			if err := New(&buf, nil).Line(context.Background(), slog.LevelWarn, "m", attrs...); err != nil {
				t.Fatal(err)
			}
			after := time.Now()
			var line struct {
				Time          time.Time
				Level, Msg, K string
			}
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatalf("%v: %s", err, buf.String())
			}
			if line.Level != "WARN" || line.Msg != "m" || line.K != "v" || line.Time.Before(before.Round(0)) || line.Time.After(after) {
				t.Fatalf("line %s written between %v and %v", buf.String(), before, after)
			}
		})
	}
}

// failing refuses every write.
type failing struct{ err error }

func (f failing) Write([]byte) (int, error) { return 0, f.err }

// The writer's error is returned, as slog.JSONHandler returns it, whichever path wrote
// the line: Handle and Line, on the fast path and through slog.
func TestTheWritersErrorIsReturnedOnEveryPath(t *testing.T) {
	full := errors.New("disk full")
	h := New(failing{full}, nil)
	for name, attr := range map[string]slog.Attr{"fast path": slog.String("k", "v"), "slog": slog.Any("error", errors.New("boom"))} {
		r := slog.NewRecord(when, slog.LevelInfo, "m", 0)
		r.AddAttrs(attr)
		if err := h.Handle(context.Background(), r); !errors.Is(err, full) {
			t.Errorf("%s: Handle returned %v", name, err)
		}
		if err := h.Line(context.Background(), slog.LevelInfo, "m", attr); !errors.Is(err, full) {
			t.Errorf("%s: Line returned %v", name, err)
		}
	}
}
