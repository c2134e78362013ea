package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const dashboardFile = "grafana/noderuntime.json"

type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

func readDashboard(t *testing.T) (dashboard, []byte) {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d, raw
}

func TestDashboardShowsWhatOperatorsNeed(t *testing.T) {
	t.Parallel()
	d, _ := readDashboard(t)
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 {
		t.Errorf("dashboard uid %q title %q schemaVersion %d: want a stable uid, a title and schema >= 36", d.UID, d.Title, d.SchemaVersion)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" || vars["namespace"] != "query" {
		t.Errorf("dashboard variables %v: want a datasource picker and a namespace query", vars)
	}

	ids := map[int]bool{}
	var exprs []string
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d is used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q does not use the dashboard's datasource variable", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if !strings.Contains(tg.Expr, `namespace="$namespace"`) {
				t.Errorf("panel %q query %s ignores the namespace variable", p.Title, tg.RefID)
			}
			for _, n := range usedMetrics(substituteVariables(tg.Expr)) {
				if !knownMetric(n) {
					t.Errorf("panel %q uses %s, which nothing exports", p.Title, n)
				}
			}
			exprs = append(exprs, tg.Expr)
		}
	}
	if overlaps := overlappingPanels(d.Panels); len(overlaps) != 0 {
		t.Errorf("panels overlap: %v", overlaps)
	}

	// What issue 7 asks the dashboard to show.
	for _, want := range []struct{ what, substr string }{
		{"executions by outcome", "sum by (outcome) (rate(noderuntime_executions_total"},
		{"latency quantiles", "histogram_quantile(0.5, sum by (le) (rate(noderuntime_execution_duration_seconds_bucket"},
		{"p99 latency", "histogram_quantile(0.99, sum by (le) (rate(noderuntime_execution_duration_seconds_bucket"},
		{"Engage status codes", "sum by (status) (rate(noderuntime_engage_requests_total"},
		{"token refreshes", "sum by (result) (rate(noderuntime_token_refreshes_total"},
		{"token cache hit ratio", `noderuntime_token_cache_requests_total{namespace="$namespace", result="hit"}`},
		{"pool saturation", "noderuntime_db_pool_acquired_connections{namespace=\"$namespace\"} / noderuntime_db_pool_max_connections"},
		// What docs/runbook.md sends the operator to read.
		{"executions by node, version and outcome", "sum by (node, version, outcome) (rate(noderuntime_executions_total"},
		{"circuit breakers not closed per target", "max by (target, state) (noderuntime_circuit_breakers"},
		{"Postgres reachability per pod", "min by (pod) (noderuntime_postgres_up"},
		{"executions in flight per pod", "max by (pod) (noderuntime_executions_in_flight"},
	} {
		if !slices.ContainsFunc(exprs, func(e string) bool { return strings.Contains(e, want.substr) }) {
			t.Errorf("no panel shows the %s (%s)", want.what, want.substr)
		}
	}
}

func overlappingPanels(panels []panel) []string {
	var out []string
	for i, a := range panels {
		for _, b := range panels[i+1:] {
			ga, gb := a.GridPos, b.GridPos
			if ga.X < gb.X+gb.W && gb.X < ga.X+ga.W && ga.Y < gb.Y+gb.H && gb.Y < ga.Y+ga.H {
				out = append(out, fmt.Sprintf("%q and %q", a.Title, b.Title))
			}
		}
	}
	return out
}

// substituteVariables replaces Grafana's variables with values PromQL accepts.
func substituteVariables(expr string) string {
	return strings.NewReplacer("$__rate_interval", "5m", "$namespace", "noderuntime", "$node", ".*").Replace(expr)
}

// TestPromtoolParsesDashboardQueries turns every panel query into a recording rule, so
// promtool's parser checks the dashboard's PromQL as it checks the alerts'.
func TestPromtoolParsesDashboardQueries(t *testing.T) {
	t.Parallel()
	d, _ := readDashboard(t)
	type rule struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	var rules []rule
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			rules = append(rules, rule{Record: fmt.Sprintf("dashboard:panel_%d_%s", p.ID, strings.ToLower(tg.RefID)), Expr: substituteVariables(tg.Expr)})
		}
	}
	y, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dashboard-queries.yml")
	if err := os.WriteFile(path, y, 0o644); err != nil {
		t.Fatal(err)
	}
	runPromtool(t, ".", "check", "rules", path)
}

func TestDashboardConfigMapCarriesTheFile(t *testing.T) {
	t.Parallel()
	_, raw := readDashboard(t)
	for _, dir := range overlayDirs(t) {
		b, _ := renderBundle(t, dir)
		found := false
		for _, cm := range b.ConfigMaps {
			if cm.Labels["grafana_dashboard"] == "1" {
				found = true
				if cm.Data["noderuntime.json"] != string(raw) {
					t.Errorf("%s: ConfigMap %s does not carry %s as is", dir, cm.Name, dashboardFile)
				}
			}
		}
		if !found {
			t.Errorf("%s: no dashboard ConfigMap", dir)
		}
	}
}
