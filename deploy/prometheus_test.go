package deploy

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite generated files (the PrometheusRule) from their sources")

const (
	rulesFile          = "prometheus/rules.yml"
	rulesTestFile      = "prometheus/rules_test.yml"
	prometheusRuleFile = "components/monitoring/prometheusrule.yaml"
	runbookFile        = "../docs/runbook.md"
	operationsFile     = "../docs/operations.md"
	runbookURL         = "https://github.com/noderuntime/noderuntime/blob/main/docs/runbook.md#"
)

// metricTypes are the series the service exports (DESIGN.md, Observability). Rules and
// the dashboard may use these, the Go and process collectors' series, `up`, and
// kube-state-metrics; a misspelt name is caught here rather than by an alert that never fires.
var metricTypes = map[string]string{
	"noderuntime_executions_total":                   "counter",
	"noderuntime_execution_duration_seconds":         "histogram",
	"noderuntime_executions_in_flight":               "gauge",
	"noderuntime_executions_max_in_flight":           "gauge",
	"noderuntime_executions_refused_total":           "counter",
	"noderuntime_engage_requests_total":              "counter",
	"noderuntime_engage_request_duration_seconds":    "histogram",
	"noderuntime_token_refreshes_total":              "counter",
	"noderuntime_token_cache_requests_total":         "counter",
	"noderuntime_authorizations":                     "gauge",
	"noderuntime_db_pool_acquired_connections":       "gauge",
	"noderuntime_db_pool_idle_connections":           "gauge",
	"noderuntime_db_pool_total_connections":          "gauge",
	"noderuntime_db_pool_max_connections":            "gauge",
	"noderuntime_db_pool_acquire_wait_seconds_total": "counter",
	"noderuntime_http_requests_total":                "counter",
	"noderuntime_http_request_duration_seconds":      "histogram",
	"noderuntime_circuit_breakers":                   "gauge",
	"noderuntime_db_pool_acquire_waits_total":        "counter",
	"noderuntime_db_queries_total":                   "counter",
	"noderuntime_postgres_up":                        "gauge",
}

var otherMetrics = regexp.MustCompile(`^(up|go_[a-z0-9_]+|process_[a-z0-9_]+|kube_[a-z0-9_]+)$`)

// rulesFileContent is the plain Prometheus rules file's shape.
type rulesFileContent struct {
	Groups []monitoringv1.RuleGroup `json:"groups"`
}

func readRules(t *testing.T) []monitoringv1.RuleGroup {
	t.Helper()
	y, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rf rulesFileContent
	if err := decodeStrict(y, &rf); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	if len(rf.Groups) == 0 {
		t.Fatalf("%s has no groups", rulesFile)
	}
	return rf.Groups
}

func alerts(groups []monitoringv1.RuleGroup) []monitoringv1.Rule {
	var out []monitoringv1.Rule
	for _, g := range groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				out = append(out, r)
			}
		}
	}
	return out
}

// prometheusRuleFor is the PrometheusRule manifest carrying the rules file's groups: the
// file's YAML from `groups:` on, indented under spec, so comments and block scalars stay.
func prometheusRuleFor(rules []byte) []byte {
	var b bytes.Buffer
	b.WriteString(`# GENERATED from deploy/prometheus/rules.yml; DO NOT EDIT. Change the rules file, then
# run ` + "`go test ./... -run TestPrometheusRuleMatchesRulesFile -update`" + ` in deploy/.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: noderuntime
  labels:
    app.kubernetes.io/name: noderuntime
spec:
`)
	started := false
	for _, line := range strings.SplitAfter(string(rules), "\n") {
		if !started && strings.HasPrefix(line, "groups:") {
			started = true
		}
		if !started {
			continue
		}
		if strings.TrimSpace(line) != "" {
			b.WriteString("  ")
		}
		b.WriteString(line)
	}
	return b.Bytes()
}

func TestPrometheusRuleMatchesRulesFile(t *testing.T) {
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(prometheusRuleFile, prometheusRuleFor(rules), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := readRules(t)

	y, err := os.ReadFile(prometheusRuleFile)
	if err != nil {
		t.Fatal(err)
	}
	var pr monitoringv1.PrometheusRule
	if err := decodeStrict(y, &pr); err != nil {
		t.Fatalf("%s: %v", prometheusRuleFile, err)
	}
	if !reflect.DeepEqual(pr.Spec.Groups, want) {
		t.Fatalf("%s differs from %s: run `go test ./... -run TestPrometheusRuleMatchesRulesFile -update` in deploy/", prometheusRuleFile, rulesFile)
	}
	// And as rendered: kustomize must not touch the expressions.
	for _, dir := range overlayDirs(t) {
		b, _ := renderBundle(t, dir)
		for _, r := range b.PrometheusRules {
			if !reflect.DeepEqual(r.Spec.Groups, want) {
				t.Errorf("%s: the rendered PrometheusRule differs from %s", dir, rulesFile)
			}
		}
	}
}

func TestPrometheusRuleSyncCheckCanFail(t *testing.T) {
	t.Parallel()
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	edited := bytes.Replace(prometheusRuleFor(rules), []byte("> 0.05"), []byte("> 0.5"), 1)
	var pr monitoringv1.PrometheusRule
	if err := decodeStrict(edited, &pr); err != nil {
		t.Fatal(err)
	}
	if reflect.DeepEqual(pr.Spec.Groups, readRules(t)) {
		t.Fatal("a changed threshold went unnoticed")
	}
}

// slug is GitHub's anchor for a Markdown heading.
func slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteRune('-')
		}
	}
	return b.String()
}

func anchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	md, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, line := range strings.Split(string(md), "\n") {
		if h, ok := strings.CutPrefix(line, "#"); ok {
			out[slug(strings.TrimLeft(h, "#"))] = true
		}
	}
	return out
}

func TestEveryAlertHasARunbookParagraphAndMeaning(t *testing.T) {
	t.Parallel()
	runbook := anchors(t, runbookFile)
	ops, err := os.ReadFile(operationsFile)
	if err != nil {
		t.Fatal(err)
	}
	list := alerts(readRules(t))
	if len(list) < 6 {
		t.Fatalf("want at least the six alerts of issue 7, got %d", len(list))
	}
	seen := map[string]bool{}
	for _, a := range list {
		if seen[a.Alert] {
			t.Errorf("alert %s is defined twice", a.Alert)
		}
		seen[a.Alert] = true
		if sev := a.Labels["severity"]; sev != "critical" && sev != "warning" {
			t.Errorf("%s: severity %q, want critical or warning", a.Alert, sev)
		}
		if a.For == nil || *a.For == "" {
			t.Errorf("%s: no `for`, a single bad scrape would page", a.Alert)
		}
		for _, k := range []string{"summary", "description", "runbook_url"} {
			if a.Annotations[k] == "" {
				t.Errorf("%s: no %s annotation", a.Alert, k)
			}
		}
		anchor, ok := strings.CutPrefix(a.Annotations["runbook_url"], runbookURL)
		if !ok || anchor != strings.ToLower(a.Alert) {
			t.Errorf("%s: runbook_url %q, want %s%s", a.Alert, a.Annotations["runbook_url"], runbookURL, strings.ToLower(a.Alert))
		} else if !runbook[anchor] {
			t.Errorf("%s: %s has no heading for #%s", a.Alert, runbookFile, anchor)
		}
		if !bytes.Contains(ops, []byte(a.Alert)) {
			t.Errorf("%s: %s does not say what the alert means", a.Alert, operationsFile)
		}
	}
	// The alerts issue 7 asks for, by what they watch.
	for _, want := range []struct{ what, expr string }{
		{"failure ratio", `outcome=~"onError|Failure|onFailure"`},
		{"timeout ratio", `outcome="onTimeout"`},
		{"token refresh failures", `noderuntime_token_refreshes_total`},
		{"authorizations needing re-authorization", `status="needs_reauthorization"`},
		{"p99 execution latency", `histogram_quantile(0.99`},
		{"pod not ready", `kube_pod_status_ready`},
		// Pods stay ready through a Postgres outage: the service's own check must tell.
		{"Postgres outage", `noderuntime_postgres_up`},
	} {
		if !slices.ContainsFunc(list, func(r monitoringv1.Rule) bool { return strings.Contains(r.Expr.String(), want.expr) }) {
			t.Errorf("no alert watches the %s (%s)", want.what, want.expr)
		}
	}
}

var metricName = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)

// usedMetrics returns the metric names in a PromQL expression: identifiers that are
// followed by a selector or a range, or stand alone, minus PromQL's own words.
func usedMetrics(expr string) []string {
	// Drop label matchers and strings, which hold label names and values.
	expr = regexp.MustCompile(`\{[^}]*\}|"[^"]*"|\[[^\]]*\]`).ReplaceAllString(expr, " ")
	// Drop grouping clauses: by (...), without (...), on (...), ignoring (...), group_left (...).
	expr = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`).ReplaceAllString(expr, " ")
	var out []string
	for _, loc := range metricName.FindAllStringIndex(expr, -1) {
		name := expr[loc[0]:loc[1]]
		rest := strings.TrimLeft(expr[loc[1]:], " \t\n")
		if strings.HasPrefix(rest, "(") || promqlWords[name] {
			continue // a function or an operator
		}
		if loc[0] > 0 && (expr[loc[0]-1] >= '0' && expr[loc[0]-1] <= '9' || expr[loc[0]-1] == '.') {
			continue // the tail of a number such as 1e3
		}
		out = append(out, name)
	}
	return out
}

var promqlWords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "by": true, "without": true,
	"on": true, "ignoring": true, "group_left": true, "group_right": true, "le": true, "Inf": true, "NaN": true, "e": true}

// knownMetric reports whether name is exported by the service or a standard exporter.
func knownMetric(name string) bool {
	if otherMetrics.MatchString(name) {
		return true
	}
	if _, ok := metricTypes[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && metricTypes[base] == "histogram" {
			return true
		}
	}
	return false
}

func TestRulesUseOnlyExportedMetrics(t *testing.T) {
	t.Parallel()
	for _, g := range readRules(t) {
		for _, r := range g.Rules {
			names := usedMetrics(r.Expr.String())
			if len(names) == 0 {
				t.Errorf("%s: found no metric in %q", r.Alert, r.Expr.String())
			}
			for _, n := range names {
				if !knownMetric(n) {
					t.Errorf("%s uses %s, which nothing exports", r.Alert, n)
				}
			}
		}
	}
	if knownMetric("noderuntime_execution_total") || knownMetric("noderuntime_executions_total_bucket") {
		t.Fatal("knownMetric accepts a misspelt name")
	}
}

// promtool returns promtool's path. `make test` installs it (.ci/install-test-deps).
func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not on PATH: run `make test` (it installs Debian's prometheus package) or apt-get install prometheus")
	}
	return path
}

func runPromtool(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
}

func TestPromtoolChecksRules(t *testing.T) {
	t.Parallel()
	runPromtool(t, ".", "check", "rules", rulesFile)

	// The rules as the operator will load them: the rendered PrometheusRule's spec.
	b, _ := renderBundle(t, "overlays/prod")
	if len(b.PrometheusRules) != 1 {
		t.Fatalf("prod renders %d PrometheusRules, want 1", len(b.PrometheusRules))
	}
	y, err := yaml.Marshal(rulesFileContent{Groups: b.PrometheusRules[0].Spec.Groups})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "prometheusrule-spec.yml")
	if err := os.WriteFile(path, y, 0o644); err != nil {
		t.Fatal(err)
	}
	runPromtool(t, ".", "check", "rules", path)
}

func TestPromtoolUnitTestsOfAlerts(t *testing.T) {
	t.Parallel()
	runPromtool(t, "prometheus", "test", "rules", filepath.Base(rulesTestFile))
}

func TestPromtoolRejectsABrokenRule(t *testing.T) {
	t.Parallel()
	bin := promtool(t)
	path := filepath.Join(t.TempDir(), "broken.yml")
	broken := "groups:\n  - name: x\n    rules:\n      - alert: Broken\n        expr: sum(rate(noderuntime_executions_total[5m]) > \n"
	if err := os.WriteFile(path, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "check", "rules", path).CombinedOutput(); err == nil {
		t.Fatalf("promtool accepted a rule with unbalanced parentheses:\n%s", out)
	}
}

// TestEveryAlertHasAUnitTestThatFiresItAndOneThatDoesNot: a promtool unit test that
// only expects silence passes with an expression that can never fire, and one that
// only expects the alert passes with one that always fires. Each alert needs both.
func TestEveryAlertHasAUnitTestThatFiresItAndOneThatDoesNot(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	var unit struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(raw, &unit); err != nil {
		t.Fatal(err)
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, u := range unit.Tests {
		for _, a := range u.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				silent[a.Alertname] = true
			}
		}
	}
	for _, a := range alerts(readRules(t)) {
		if !fires[a.Alert] {
			t.Errorf("%s: no case in %s expects it to fire", a.Alert, rulesTestFile)
		}
		if !silent[a.Alert] {
			t.Errorf("%s: no case in %s expects it to stay silent", a.Alert, rulesTestFile)
		}
	}
}
