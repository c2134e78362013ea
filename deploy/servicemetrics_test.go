package deploy

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// serviceStrings returns every string literal in the service's non-test Go files.
func serviceStrings(t *testing.T) map[string]bool {
	t.Helper()
	lits := map[string]bool{}
	inspectServiceCode(t, func(n ast.Node) bool {
		if bl, ok := n.(*ast.BasicLit); ok && bl.Kind == token.STRING {
			if v, err := strconv.Unquote(bl.Value); err == nil {
				lits[v] = true
			}
		}
		return true
	})
	return lits
}

// inspectServiceCode walks the syntax tree of every non-test Go file of the service
// (internal/ and cmd/) with ast.Inspect.
func inspectServiceCode(t *testing.T, visit func(ast.Node) bool) {
	t.Helper()
	for _, root := range []string{"../internal", "../cmd"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			ast.Inspect(f, visit)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestServiceExportsTheMetricsRulesAndDashboardUse keeps the alerts and the dashboard
// honest against the service's code: a metric they use must be named in the service's
// source, whole ("noderuntime_executions_total") or as a prefix and a suffix
// ("noderuntime_db_pool_" + "idle_connections"). A renamed metric fails here instead of
// leaving an alert that can never fire.
func TestServiceExportsTheMetricsRulesAndDashboardUse(t *testing.T) {
	t.Parallel()
	lits := serviceStrings(t)
	defined := func(name string) bool {
		if lits[name] {
			return true
		}
		for l := range lits {
			if strings.HasSuffix(l, "_") && strings.HasPrefix(name, l) && lits[strings.TrimPrefix(name, l)] {
				return true
			}
		}
		return false
	}
	var missing []string
	for name := range metricTypes {
		if !defined(name) {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	for _, name := range missing {
		t.Errorf("the rules or the dashboard use %s (a %s), which no Go source under internal/ or cmd/ names", name, metricTypes[name])
	}
}

// serviceMetricLabels returns the label names of every metric the service's code
// declares with a literal name: a *Vec constructor's options (Name: "noderuntime_...")
// and label list ([]string{...}), or prometheus.NewDesc("noderuntime_...", help,
// []string{...}, ...). Metrics without labels map to an empty list.
func serviceMetricLabels(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	strs := func(e ast.Expr) ([]string, bool) {
		cl, ok := e.(*ast.CompositeLit)
		if !ok {
			return nil, false
		}
		if at, ok := cl.Type.(*ast.ArrayType); !ok || fmt.Sprint(at.Elt) != "string" {
			return nil, false
		}
		var l []string
		for _, el := range cl.Elts {
			if bl, ok := el.(*ast.BasicLit); ok && bl.Kind == token.STRING {
				v, _ := strconv.Unquote(bl.Value)
				l = append(l, v)
			}
		}
		return l, true
	}
	literal := func(e ast.Expr) string {
		if bl, ok := e.(*ast.BasicLit); ok && bl.Kind == token.STRING {
			v, _ := strconv.Unquote(bl.Value)
			return v
		}
		return ""
	}
	inspectServiceCode(t, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		name, labels := "", []string{}
		if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "NewDesc" && len(call.Args) >= 3 {
			name = literal(call.Args[0])
			labels, _ = strs(call.Args[2])
		} else {
			for _, a := range call.Args {
				if l, ok := strs(a); ok {
					labels = l
				}
				cl, ok := a.(*ast.CompositeLit)
				if !ok {
					continue
				}
				for _, el := range cl.Elts {
					if kv, ok := el.(*ast.KeyValueExpr); ok && fmt.Sprint(kv.Key) == "Name" {
						name = literal(kv.Value)
					}
				}
			}
		}
		if strings.HasPrefix(name, "noderuntime_") {
			out[name] = labels
		}
		return true
	})
	return out
}

// docsMetricRow is one row of the metrics table in docs/operations.md: | `name` | type; `label`, ... | ...
var docsMetricRow = regexp.MustCompile("(?m)^\\| `(noderuntime_[a-z0-9_]+)` \\| ([a-z]+)((?:; [^|]*)?) \\|")

// docsMetricUse is a metric named in prose or a query, with its label matchers if any.
var docsMetricUse = regexp.MustCompile(`\bnoderuntime_[a-z0-9_]+(\{[^}]*\})?`)

// notMetrics are noderuntime_ names in the docs and the code that are not metrics.
var notMetrics = map[string]bool{
	"noderuntime_dev":              true, // the database `make run` recreates
	"noderuntime_no_such_database": true, // dbtest's probe of a refusing server
	"noderuntime_no_such_role":     true,
}

// TestDocsNameOnlyExportedMetrics keeps the metrics the docs cite honest: the table of
// docs/operations.md lists exactly the service's metrics with their types and the labels
// the code declares for them, every
// noderuntime_ metric the README and docs/ name is one of them (a histogram's _bucket,
// _sum and _count included), every label a query or a name{label} in them uses is one
// the table gives that metric (or a scrape target's), and no metric name in the code
// is missing from the list the rules, the dashboard and this table are held to.
func TestDocsNameOnlyExportedMetrics(t *testing.T) {
	t.Parallel()
	ops, err := os.ReadFile(operationsFile)
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]map[string]bool{}
	for _, m := range docsMetricRow.FindAllSubmatch(ops, -1) {
		name, typ := string(m[1]), string(m[2])
		if _, dup := labels[name]; dup {
			t.Errorf("%s lists %s twice", operationsFile, name)
		}
		labels[name] = map[string]bool{}
		for _, l := range regexp.MustCompile("`([a-z_]+)`").FindAllSubmatch(m[3], -1) {
			labels[name][string(l[1])] = true
		}
		if want, ok := metricTypes[name]; !ok {
			t.Errorf("%s lists %s, which the service does not export", operationsFile, name)
		} else if typ != want {
			t.Errorf("%s calls %s a %s; it is a %s", operationsFile, name, typ, want)
		}
	}
	for name := range metricTypes {
		if _, ok := labels[name]; !ok {
			t.Errorf("%s's metrics table does not list %s", operationsFile, name)
		}
	}
	code := serviceMetricLabels(t)
	if len(code) < 10 {
		t.Fatalf("found only %d metric declarations in the code: %v", len(code), code)
	}
	for name, want := range code {
		doc, ok := labels[name]
		if !ok {
			continue // reported above, if it is a metric
		}
		got := slices.Sorted(maps.Keys(doc))
		want = slices.Sorted(slices.Values(want))
		if !slices.Equal(got, want) {
			t.Errorf("%s gives %s the labels %v; the code gives it %v", operationsFile, name, got, want)
		}
	}

	docs, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	targetLabels := map[string]bool{"namespace": true, "pod": true, "job": true, "instance": true, "le": true}
	for _, path := range append(docs, "../README.md") {
		doc, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range docsMetricUse.FindAllSubmatch(doc, -1) {
			name := string(bytes.TrimSuffix(m[0], m[1]))
			if notMetrics[name] {
				continue
			}
			if !knownMetric(name) || otherMetrics.MatchString(name) {
				t.Errorf("%s names %s, which the service does not export", path, name)
				continue
			}
			base := name
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(name, suffix); ok && metricTypes[b] == "histogram" {
					base = b
				}
			}
			// {a,b} lists labels; {a="x", b!~"y"} matches on them.
			for _, l := range regexp.MustCompile(`([a-z_]+)\s*(?:[=!]~?|,|\}$)`).FindAllSubmatch(bytes.Trim(m[1], "{"), -1) {
				if label := string(l[1]); !labels[base][label] && !targetLabels[label] {
					t.Errorf("%s uses the label %s of %s, which %s does not give it", path, label, base, operationsFile)
				}
			}
		}
	}

	for lit := range serviceStrings(t) {
		if strings.HasPrefix(lit, "noderuntime_") && !strings.HasSuffix(lit, "_") && metricName.MatchString(lit) &&
			metricName.FindString(lit) == lit && metricTypes[lit] == "" && !notMetrics[lit] {
			t.Errorf("the code names %s, which is neither in metricTypes (the list of exported metrics) nor known not to be a metric", lit)
		}
	}
}
