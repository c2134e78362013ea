package deploy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// settingsFile declares every setting `serve` reads, each as setting{env: "NAME", ...}.
const settingsFile = "../internal/config/config.go"

// runtimeVars are the Go runtime's own variables, set for the process, not read by it.
var runtimeVars = map[string]bool{"GOGC": true, "GOMEMLIMIT": true, "GOMAXPROCS": true}

// migrateVars are what `migrate up`, the migration Job's command, reads.
var migrateVars = map[string]bool{"DATABASE_URL": true}

// serviceSettings returns the variables of the settings in internal/config: the env
// fields of its setting literals.
func serviceSettings(t *testing.T) map[string]bool {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), settingsFile, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		kv, ok := n.(*ast.KeyValueExpr)
		if !ok {
			return true
		}
		if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "env" {
			if bl, ok := kv.Value.(*ast.BasicLit); ok && bl.Kind == token.STRING {
				v, _ := strconv.Unquote(bl.Value)
				out[v] = true
			}
		}
		return true
	})
	if len(out) < 15 {
		t.Fatalf("found only %d settings in %s: is each still setting{env: \"NAME\", ...}?", len(out), settingsFile)
	}
	return out
}

// containerVars lists the variables a container gets: its env and the keys of the
// ConfigMaps it reads with envFrom.
func containerVars(b *bundle, c corev1.Container) []string {
	var out []string
	for _, e := range c.Env {
		out = append(out, e.Name)
	}
	for _, from := range c.EnvFrom {
		for _, cm := range b.ConfigMaps {
			if from.ConfigMapRef != nil && cm.Name == from.ConfigMapRef.Name {
				for k := range cm.Data {
					out = append(out, from.Prefix+k)
				}
			}
		}
	}
	return out
}

// TestManifestsSetOnlyVariablesTheServiceReads: a variable the service does not read
// (a misspelt key in the ConfigMap or an overlay, a setting renamed in the code) is
// ignored without a word, and the setting it was meant for keeps its default.
func TestManifestsSetOnlyVariablesTheServiceReads(t *testing.T) {
	t.Parallel()
	settings := serviceSettings(t)
	for _, v := range append(slices.Clone(configVars), secretVars...) {
		if !settings[v] {
			t.Errorf("manifests_test.go expects %s, which %s does not read", v, settingsFile)
		}
	}
	for _, dir := range append([]string{"base"}, overlayDirs(t)...) {
		b, _ := renderBundle(t, dir)
		for _, d := range b.Deployments {
			for _, c := range d.Spec.Template.Spec.Containers {
				for _, v := range containerVars(b, c) {
					if !settings[v] && !runtimeVars[v] {
						t.Errorf("%s: Deployment %s sets %s, which serve does not read (%s)", dir, d.Name, v, settingsFile)
					}
				}
			}
		}
		for _, j := range b.Jobs {
			for _, c := range j.Spec.Template.Spec.Containers {
				for _, v := range containerVars(b, c) {
					if !migrateVars[v] && !runtimeVars[v] {
						t.Errorf("%s: Job %s sets %s, which migrate does not read", dir, j.Name, v)
					}
				}
			}
		}
	}
}

// docsTableRow is a row of a two- or three-column table whose first cells are code.
var docsTableRow = regexp.MustCompile("(?m)^\\| (`[^|]*`) \\| ([^|]*) \\|")

// docsSection returns the text of the "## title" section of doc.
func docsSection(t *testing.T, doc, title string) string {
	t.Helper()
	_, rest, ok := strings.Cut(doc, "\n## "+title+"\n")
	if !ok {
		t.Fatalf("%s has no section %q", operationsFile, title)
	}
	section, _, _ := strings.Cut(rest, "\n## ")
	return section
}

// TestOperationsTablesAreTheManifests holds docs/operations.md's "Configuration" table
// to the base ConfigMap (every key, with its value where the table quotes one) and its
// "Configuring secrets" table to the Deployment's secretKeyRefs (every key and variable).
func TestOperationsTablesAreTheManifests(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(operationsFile)
	if err != nil {
		t.Fatal(err)
	}
	ops := string(raw)
	code := regexp.MustCompile("`([^`]*)`")
	b, _ := renderBundle(t, "base")
	if len(b.Deployments) != 1 || len(b.Deployments[0].Spec.Template.Spec.Containers) != 1 {
		t.Fatal("want one Deployment of one container")
	}
	c := b.Deployments[0].Spec.Template.Spec.Containers[0]

	config := map[string]string{}
	for _, v := range containerVars(b, c) {
		if val, ok := configValue(b, c, v); ok {
			config[v] = val
		}
	}
	documented := map[string]bool{}
	for _, row := range docsTableRow.FindAllStringSubmatch(docsSection(t, ops, "Configuration"), -1) {
		vars := code.FindAllStringSubmatch(row[1], -1)
		base := strings.TrimSpace(row[2])
		for _, v := range vars {
			documented[v[1]] = true
			val, ok := config[v[1]]
			switch {
			case !ok:
				t.Errorf("%s's configuration table lists %s, which the base ConfigMap does not set", operationsFile, v[1])
			case len(vars) == 1 && strings.HasPrefix(base, "`"):
				if m := code.FindStringSubmatch(base); m[1] != val {
					t.Errorf("%s gives %s the base value %q; the ConfigMap's is %q", operationsFile, v[1], m[1], val)
				}
			}
		}
	}
	for v := range config {
		if !documented[v] {
			t.Errorf("%s's configuration table does not list %s, which the base ConfigMap sets", operationsFile, v)
		}
	}

	refs := map[string]string{} // Secret key: variable
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			refs[e.ValueFrom.SecretKeyRef.Key] = e.Name
		}
	}
	rows := 0
	for _, row := range docsTableRow.FindAllStringSubmatch(docsSection(t, ops, "Configuring secrets"), -1) {
		key, variable := code.FindStringSubmatch(row[1]), code.FindStringSubmatch(row[2])
		if key == nil || variable == nil {
			continue
		}
		rows++
		if got, ok := refs[key[1]]; !ok || got != variable[1] {
			t.Errorf("%s: Secret key %s gives %s; the Deployment reads that key into %q", operationsFile, key[1], variable[1], got)
		}
	}
	if rows != len(refs) {
		t.Errorf("%s's Secret table has %d rows; the Deployment reads %d keys of the Secret (%v)", operationsFile, rows, len(refs), refs)
	}
}
