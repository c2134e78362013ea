package engage_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/noderuntime/noderuntime/internal/engage"
	"github.com/noderuntime/noderuntime/internal/engagesim"
)

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
			client := engage.New(engage.Options{Transport: engagesim.Canned{Body: c.answer}, Observer: m, Breaker: &engage.BreakerOptions{Observer: m}})
			b.ReportAllocs()
			for b.Loop() {
				if err := c.call(client); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
