package engage_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/noderuntime/noderuntime/internal/engage"
)

// cannedTransport answers every call from memory, so a benchmark measures the client's
// own work (URL, request encoding, answer decoding, metrics) and not a server's.
type cannedTransport struct{ body string }

func (c cannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	return &http.Response{
		StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(strings.NewReader(c.body)),
		ContentLength: int64(len(c.body)),
		Request:       r,
	}, nil
}

// BenchmarkClientCanned is one call of each hot operation against a canned answer,
// with the Prometheus observer and the circuit breaker the service uses.
func BenchmarkClientCanned(b *testing.B) {
	target := engage.Target{BaseURL: "https://api-us-site-1.imiengage.io/api/v1", Domain: "acme"}
	ctx := context.Background()
	for _, c := range []struct {
		name, answer string
		call         func(*engage.Client) error
	}{
		{"search", `{"status":200,"code":1000,"description":"conversation found","value":{"conversationId":"c0ffee","aliasId":"","chatExist":true,"status":"active","teamId":"t1","userId":"u1"}}`,
			func(c *engage.Client) error {
				_, err := c.Search(ctx, target, "token", engage.SearchRequest{Channel: "sms", CustomerAddress: "+15550001", BizAddress: "+15559999"})
				return err
			}},
		{"append", `{"status":200,"code":1000,"description":"message appended","tid":"tid-3fcb5f72cb833738e836b8e472300d62"}`,
			func(c *engage.Client) error {
				_, err := c.Append(ctx, target, "token", "c0ffee", textMessage("Where is my order?"))
				return err
			}},
	} {
		b.Run(c.name, func(b *testing.B) {
			m := engage.NewMetrics(prometheus.NewRegistry())
			client := engage.New(engage.Options{Transport: cannedTransport{c.answer}, Observer: m, Breaker: &engage.BreakerOptions{Observer: m}})
			b.ReportAllocs()
			for b.Loop() {
				if err := c.call(client); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
