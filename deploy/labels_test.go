package deploy

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// selector is a noderuntime_ metric with its label matchers: name{label op "value", ...}.
var selector = regexp.MustCompile(`\b(noderuntime_[a-z0-9_]+)\s*\{([^}]*)\}`)

var matcher = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"`)

var grouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)

var legendLabel = regexp.MustCompile(`\{\{\s*\.?([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)

// scrapeLabels are what Prometheus and the ServiceMonitor add to every series.
var scrapeLabels = map[string]bool{"namespace": true, "pod": true, "job": true, "instance": true, "service": true, "container": true, "endpoint": true}

// numericLabels take HTTP status codes: the service writes them with strconv, not as
// literals, so any three digits (or a regex of them) is a value they can have.
var numericLabels = map[string]bool{"status": true, "code": true}

// queryLabelChecker holds the service's labels and literal strings, to check a query.
type queryLabelChecker struct {
	labels map[string][]string // metric -> label names, from the service's code
	lits   map[string]bool     // every string literal of the service's code
}

func newQueryLabelChecker(t *testing.T) queryLabelChecker {
	return queryLabelChecker{labels: serviceMetricLabels(t), lits: serviceStrings(t)}
}

// metricLabels are the label names a series of name (a histogram's _bucket included) has.
func (c queryLabelChecker) metricLabels(name string) ([]string, bool) {
	if l, ok := c.labels[name]; ok {
		return l, true
	}
	if base, ok := strings.CutSuffix(name, "_bucket"); ok && metricTypes[base] == "histogram" {
		return append(slices.Clone(c.labels[base]), "le"), true
	}
	for _, suffix := range []string{"_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && metricTypes[base] == "histogram" {
			return c.labels[base], true
		}
	}
	// The pool's gauges are named "noderuntime_db_pool_" + a literal, and have no labels.
	if strings.HasPrefix(name, "noderuntime_db_pool_") && metricTypes[name] != "" {
		return nil, true
	}
	return nil, false
}

// check returns what is wrong with the noderuntime_ selectors of expr: a label the
// metric does not have, or a value the service never gives the label. An alert or a
// panel that selects on either matches nothing, silently. legends are the label names
// a legend or an annotation reads from the result: with a by clause, they must be in it.
func (c queryLabelChecker) check(expr string, legends []string) []string {
	var problems []string
	have := map[string]bool{}
	for k := range scrapeLabels {
		have[k] = true
	}
	onlyOurs := !regexp.MustCompile(`\b(kube_|up\b|go_|process_)`).MatchString(expr)
	for _, s := range selector.FindAllStringSubmatch(expr, -1) {
		name := s[1]
		labels, ok := c.metricLabels(name)
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: not a metric the service declares", name))
			continue
		}
		for _, l := range labels {
			have[l] = true
		}
		for _, m := range matcher.FindAllStringSubmatch(s[2], -1) {
			label, op, value := m[1], m[2], m[3]
			if scrapeLabels[label] {
				continue
			}
			if !slices.Contains(labels, label) {
				problems = append(problems, fmt.Sprintf("%s has no label %s (it has %v)", name, label, labels))
				continue
			}
			if strings.Contains(value, "$") || label == "le" {
				continue // a dashboard variable; a histogram's bucket bound
			}
			alternatives := []string{value}
			if op == "=~" || op == "!~" {
				if !regexp.MustCompile(`^[a-zA-Z0-9_|]+$`).MatchString(value) {
					continue // a pattern, not a list of values
				}
				alternatives = strings.Split(value, "|")
			}
			for _, v := range alternatives {
				if numericLabels[label] && regexp.MustCompile(`^[1-5][0-9][0-9]$`).MatchString(v) {
					continue
				}
				if !c.lits[v] {
					problems = append(problems, fmt.Sprintf("%s{%s%s%q}: the service never gives %s the value %q", name, label, op, value, label, v))
				}
			}
		}
	}
	// Any metric without a selector: its labels count too.
	for _, n := range usedMetrics(expr) {
		if l, ok := c.metricLabels(n); ok {
			for _, x := range l {
				have[x] = true
			}
		}
	}
	if !onlyOurs {
		return problems // kube-state-metrics' and Prometheus' own labels are not ours to list
	}
	var grouped map[string]bool
	for _, g := range grouping.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(g[1], ",") {
			if l = strings.TrimSpace(l); l == "" {
				continue
			}
			if !have[l] {
				problems = append(problems, fmt.Sprintf("groups by %s, which none of its metrics has", l))
			}
			if grouped == nil {
				grouped = map[string]bool{}
			}
			grouped[l] = true
		}
	}
	for _, l := range legends {
		if !have[l] || (grouped != nil && !grouped[l] && strings.Contains(expr, " by (")) {
			problems = append(problems, fmt.Sprintf("reads the label %s, which its result does not have", l))
		}
	}
	return problems
}

// TestRulesAndDashboardSelectOnlyLabelsAndValuesTheServiceGives: the metric names of the
// rules and the dashboard are checked elsewhere, their labels here. A matcher on a label
// the metric lacks (code= for status=), or on a value the service never writes
// (outcome="onErrors"), matches no series: the alert stays silent for ever, the panel
// empty, and a promtool unit test written with the same mistake in its input series
// passes anyway. So the unit tests' input series are held to the code too.
func TestRulesAndDashboardSelectOnlyLabelsAndValuesTheServiceGives(t *testing.T) {
	t.Parallel()
	c := newQueryLabelChecker(t)
	annotationLabel := regexp.MustCompile(`\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)`)
	for _, r := range alerts(readRules(t)) {
		var legends []string
		for _, a := range r.Annotations {
			for _, m := range annotationLabel.FindAllStringSubmatch(a, -1) {
				legends = append(legends, m[1])
			}
		}
		for _, p := range c.check(r.Expr.String(), legends) {
			t.Errorf("alert %s: %s", r.Alert, p)
		}
	}

	d, _ := readDashboard(t)
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(map[string]any); ok {
			if s, ok := q["query"].(string); ok {
				for _, p := range c.check(s, nil) {
					t.Errorf("dashboard variable %s: %s", v.Name, p)
				}
			}
		}
	}
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var withLegends struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr         string `json:"expr"`
				LegendFormat string `json:"legendFormat"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := yaml.Unmarshal(raw, &withLegends); err != nil {
		t.Fatal(err)
	}
	for _, p := range withLegends.Panels {
		for _, tg := range p.Targets {
			var legends []string
			for _, m := range legendLabel.FindAllStringSubmatch(tg.LegendFormat, -1) {
				legends = append(legends, m[1])
			}
			for _, prob := range c.check(tg.Expr, legends) {
				t.Errorf("panel %q: %s", p.Title, prob)
			}
		}
	}

	tests, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	var unit struct {
		Tests []struct {
			InputSeries []struct {
				Series string `json:"series"`
			} `json:"input_series"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(tests, &unit); err != nil {
		t.Fatal(err)
	}
	for _, u := range unit.Tests {
		for _, s := range u.InputSeries {
			for _, p := range c.check(s.Series, nil) {
				t.Errorf("%s input series %s: %s", rulesTestFile, s.Series, p)
			}
		}
	}
}

// TestTheLabelCheckFindsWhatItLooksFor: the check above must be able to fail.
func TestTheLabelCheckFindsWhatItLooksFor(t *testing.T) {
	t.Parallel()
	c := newQueryLabelChecker(t)
	for _, tc := range []struct{ expr, legend, want string }{
		{`sum(rate(noderuntime_engage_requests_total{code="400"}[5m]))`, "", "has no label code"},
		{`sum(rate(noderuntime_executions_total{outcome=~"onError|onFailures"}[5m]))`, "", `never gives outcome the value "onFailures"`},
		{`max(noderuntime_authorizations{status="needs_reauth"})`, "", `never gives status the value "needs_reauth"`},
		{`sum by (domain) (noderuntime_circuit_breakers)`, "", "groups by domain"},
		{`sum by (status) (rate(noderuntime_engage_requests_total[5m]))`, "operation", "reads the label operation"},
		{`noderuntime_no_such_metric{a="b"}`, "", "not a metric the service declares"},
	} {
		var legends []string
		if tc.legend != "" {
			legends = []string{tc.legend}
		}
		problems := c.check(tc.expr, legends)
		if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tc.want) }) {
			t.Errorf("%s: problems %q, want one saying %q", tc.expr, problems, tc.want)
		}
	}
	if p := c.check(`sum by (operation, status) (rate(noderuntime_engage_requests_total{status=~"401|403", operation="append"}[5m]))`, []string{"operation"}); len(p) != 0 {
		t.Errorf("a correct query: %q", p)
	}
}
