package database_test

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func collect(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			// A labelled series is keyed as in the exposition: name{a="x",b="y"}.
			key := f.GetName()
			if len(m.GetLabel()) > 0 {
				pairs := make([]string, 0, len(m.GetLabel()))
				for _, l := range m.GetLabel() {
					pairs = append(pairs, l.GetName()+"=\""+l.GetValue()+"\"")
				}
				key += "{" + strings.Join(pairs, ",") + "}"
			}
			switch {
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			}
		}
	}
	return out
}
