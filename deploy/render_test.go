package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// bundle is one rendered kustomization, every object decoded into its API type.
type bundle struct {
	Namespaces      []*corev1.Namespace
	ServiceAccounts []*corev1.ServiceAccount
	ConfigMaps      []*corev1.ConfigMap
	Secrets         []*corev1.Secret
	Services        []*corev1.Service
	Deployments     []*appsv1.Deployment
	Jobs            []*batchv1.Job
	PDBs            []*policyv1.PodDisruptionBudget
	HPAs            []*autoscalingv2.HorizontalPodAutoscaler
	NetworkPolicies []*networkingv1.NetworkPolicy
	ServiceMonitors []*monitoringv1.ServiceMonitor
	PrometheusRules []*monitoringv1.PrometheusRule
}

// document is one rendered object before decoding.
type document struct {
	apiVersion, kind, name string
	yaml                   []byte
}

// render builds the kustomization in dir with kustomize's Go API, as `kustomize build`
// would, without a cluster or a kustomize binary.
func render(dir string) ([]document, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	var docs []document
	for _, r := range m.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.CurId(), err)
		}
		docs = append(docs, document{apiVersion: r.GetApiVersion(), kind: r.GetKind(), name: r.GetName(), yaml: y})
	}
	return docs, nil
}

// decodeStrict decodes y into out and fails on any field out's type does not have, and
// on duplicate fields: a typo in a manifest is an error here, not a silently ignored key
// in the cluster.
func decodeStrict(y []byte, out any) error {
	return yaml.UnmarshalStrict(y, out)
}

// decode sorts docs into a bundle. An object of a kind the bundle does not know, or of
// a known kind at another API version, is an error.
func decode(docs []document) (*bundle, error) {
	b := &bundle{}
	for _, d := range docs {
		var err error
		switch d.apiVersion + " " + d.kind {
		case "v1 Namespace":
			b.Namespaces, err = appendDecoded(b.Namespaces, d)
		case "v1 ServiceAccount":
			b.ServiceAccounts, err = appendDecoded(b.ServiceAccounts, d)
		case "v1 ConfigMap":
			b.ConfigMaps, err = appendDecoded(b.ConfigMaps, d)
		case "v1 Secret":
			b.Secrets, err = appendDecoded(b.Secrets, d)
		case "v1 Service":
			b.Services, err = appendDecoded(b.Services, d)
		case "apps/v1 Deployment":
			b.Deployments, err = appendDecoded(b.Deployments, d)
		case "batch/v1 Job":
			b.Jobs, err = appendDecoded(b.Jobs, d)
		case "policy/v1 PodDisruptionBudget":
			b.PDBs, err = appendDecoded(b.PDBs, d)
		case "autoscaling/v2 HorizontalPodAutoscaler":
			b.HPAs, err = appendDecoded(b.HPAs, d)
		case "networking.k8s.io/v1 NetworkPolicy":
			b.NetworkPolicies, err = appendDecoded(b.NetworkPolicies, d)
		case "monitoring.coreos.com/v1 ServiceMonitor":
			b.ServiceMonitors, err = appendDecoded(b.ServiceMonitors, d)
		case "monitoring.coreos.com/v1 PrometheusRule":
			b.PrometheusRules, err = appendDecoded(b.PrometheusRules, d)
		default:
			err = fmt.Errorf("unexpected object: no check knows %s %s", d.apiVersion, d.kind)
		}
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", d.kind, d.name, err)
		}
	}
	return b, nil
}

func appendDecoded[T any](list []*T, d document) ([]*T, error) {
	v := new(T)
	if err := decodeStrict(d.yaml, v); err != nil {
		return list, err
	}
	return append(list, v), nil
}

// renderBundle renders and decodes dir (relative to deploy/) or fails the test.
func renderBundle(t *testing.T, dir string) (*bundle, []document) {
	t.Helper()
	docs, err := render(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := decode(docs)
	if err != nil {
		t.Fatal(err)
	}
	return b, docs
}

// overlayDirs lists deploy/overlays/*: a new overlay is checked without editing a test.
func overlayDirs(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir("overlays")
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, filepath.Join("overlays", e.Name()))
		}
	}
	sort.Strings(dirs)
	if len(dirs) == 0 {
		t.Fatal("no overlays under deploy/overlays")
	}
	return dirs
}

func TestEveryKustomizationRendersAndDecodesStrictly(t *testing.T) {
	t.Parallel()
	for _, dir := range append([]string{"base"}, overlayDirs(t)...) {
		t.Run(dir, func(t *testing.T) {
			t.Parallel()
			_, docs := renderBundle(t, dir)
			if len(docs) == 0 {
				t.Fatal("rendered no objects")
			}
		})
	}
}

func TestStrictDecodingRejectsUnknownFieldsAndKinds(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		doc  document
	}{
		{"a misspelled field", document{apiVersion: "apps/v1", kind: "Deployment", yaml: []byte(
			"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replica: 3\n")}},
		{"a field at the wrong level", document{apiVersion: "v1", kind: "ServiceAccount", yaml: []byte(
			"apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x, automountServiceAccountToken: false}\n")}},
		{"a duplicate field", document{apiVersion: "v1", kind: "Service", yaml: []byte(
			"apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {type: ClusterIP, type: NodePort}\n")}},
		{"an unknown field in a CRD", document{apiVersion: "monitoring.coreos.com/v1", kind: "ServiceMonitor", yaml: []byte(
			"apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: x}\nspec:\n  endpoints: [{port: metrics, scrapeInterval: 30s}]\n")}},
		{"an older API version", document{apiVersion: "autoscaling/v1", kind: "HorizontalPodAutoscaler", yaml: []byte(
			"apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata: {name: x}\n")}},
		{"a kind no check knows", document{apiVersion: "v1", kind: "Pod", yaml: []byte(
			"apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if _, err := decode([]document{c.doc}); err == nil {
				t.Fatalf("decoded without error:\n%s", c.doc.yaml)
			}
		})
	}
}
