package deploy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// serviceStrings returns every string literal in the service's non-test Go files.
func serviceStrings(t *testing.T) map[string]bool {
	t.Helper()
	lits := map[string]bool{}
	for _, root := range []string{"../internal", "../cmd"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				if bl, ok := n.(*ast.BasicLit); ok && bl.Kind == token.STRING {
					if v, err := strconv.Unquote(bl.Value); err == nil {
						lits[v] = true
					}
				}
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return lits
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
