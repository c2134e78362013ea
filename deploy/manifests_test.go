package deploy

import (
	"fmt"
	"go/ast"
	"go/format"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

const (
	imageRepo    = "ghcr.io/noderuntime/noderuntime"
	nonRootUID   = 65532
	secretName   = "noderuntime-secrets"
	defaultGrace = 65 * time.Second // NODERUNTIME_SHUTDOWN_GRACE's default in the service
	defaultMaxEx = 60 * time.Second // NODERUNTIME_EXECUTION_TIMEOUT_MAX's

	// An execution in flight holds ~55 KiB (4,000 held at once took the process to
	// 237 MiB, 2,000 to 130 MiB: docs/operations.md, Overload); the rest of the process
	// needs ~40 MiB. The cap on executions at once must fit the memory limit with margin.
	memoryPerExecution = 64 << 10
	memoryBesides      = 64 << 20
)

// secretVars come from the Secret by reference, never from a ConfigMap or a literal.
var secretVars = []string{"DATABASE_URL", "NODERUNTIME_ENCRYPTION_KEYS", "NODERUNTIME_API_KEYS", "WEBEX_CLIENT_SECRET"}

// configVars come from the ConfigMap.
var configVars = []string{
	"NODERUNTIME_ADDR", "NODERUNTIME_METRICS_ADDR", "NODERUNTIME_LOG_LEVEL", "NODERUNTIME_SHUTDOWN_GRACE",
	"NODERUNTIME_EXECUTION_TIMEOUT_MAX", "NODERUNTIME_MAX_CONCURRENT_EXECUTIONS",
	"NODERUNTIME_MAX_CONCURRENT_EXECUTIONS_PER_TENANT", "NODERUNTIME_TOKEN_REFRESH_SKEW", "NODERUNTIME_PUBLIC_URL",
	"WEBEX_AUTHORIZE_URL", "WEBEX_TOKEN_URL", "WEBEX_CLIENT_ID", "WEBEX_SCOPES", "ENGAGE_ALLOWED_BASE_URLS",
}

// expectation is what one kustomization must render beyond the common rules.
type expectation struct {
	namespace  string // "" for the base, which leaves it to the overlay
	replicas   int32
	tag        string
	monitoring bool // ServiceMonitor, PrometheusRule and the dashboard ConfigMap
}

var expectations = map[string]expectation{
	"base":          {replicas: 3, tag: "0.1.0"},
	"overlays/dev":  {namespace: "noderuntime-dev", replicas: 1, tag: "dev", monitoring: true},
	"overlays/prod": {namespace: "noderuntime", replicas: 4, tag: "0.1.0", monitoring: true},
}

func TestEveryKustomizationMeetsTheOperatingRules(t *testing.T) {
	t.Parallel()
	dirs := append([]string{"base"}, overlayDirs(t)...)
	for _, dir := range dirs {
		t.Run(dir, func(t *testing.T) {
			t.Parallel()
			want, ok := expectations[filepath.ToSlash(dir)]
			if !ok {
				t.Fatalf("%s has no expectation in manifests_test.go: add one", dir)
			}
			b, _ := renderBundle(t, dir)
			for _, p := range check(b, want) {
				t.Error(p)
			}
		})
	}
}

func TestOverlaysScaleAroundTheBase(t *testing.T) {
	t.Parallel()
	base, _ := renderBundle(t, "base")
	dev, _ := renderBundle(t, "overlays/dev")
	prod, _ := renderBundle(t, "overlays/prod")
	if len(base.Deployments) != 1 || len(dev.Deployments) != 1 || len(prod.Deployments) != 1 {
		t.Fatal("each kustomization must render one Deployment")
	}
	res := func(b *bundle) corev1.ResourceRequirements {
		return b.Deployments[0].Spec.Template.Spec.Containers[0].Resources
	}
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		bl, dl, pl := res(base).Limits[name], res(dev).Limits[name], res(prod).Limits[name]
		if dl.Cmp(bl) > 0 {
			t.Errorf("dev %s limit %s is above the base's %s", name, dl.String(), bl.String())
		}
		if pl.Cmp(bl) <= 0 {
			t.Errorf("prod %s limit %s is not above the base's %s", name, pl.String(), bl.String())
		}
	}
	if got := *prod.Deployments[0].Spec.Replicas; got <= *base.Deployments[0].Spec.Replicas {
		t.Errorf("prod runs %d replicas, not more than the base", got)
	}
}

// check returns every violated rule as a sentence; none means the bundle is fine.
func check(b *bundle, want expectation) []string {
	var p problems

	if len(b.Secrets) != 0 {
		p.add("the manifests contain %d Secret object(s): secrets are created out of band and only referenced", len(b.Secrets))
	}
	for _, cm := range b.ConfigMaps {
		for k, v := range cm.Data {
			for _, s := range secretVars {
				if strings.Contains(k, s) || strings.Contains(v, s+"=") {
					p.add("ConfigMap %s carries the secret %s", cm.Name, s)
				}
			}
			if strings.Contains(v, "postgres://") || strings.Contains(v, "postgresql://") {
				p.add("ConfigMap %s key %s holds a database URL", cm.Name, k)
			}
		}
	}

	if len(b.Deployments) != 1 {
		p.add("want one Deployment, got %d", len(b.Deployments))
		return p
	}
	d := b.Deployments[0]
	pod := d.Spec.Template.Spec
	podLabels := labels.Set(d.Spec.Template.Labels)

	p.namespaces(b, want.namespace)

	// Deployment shape.
	if d.Spec.Replicas == nil || *d.Spec.Replicas != want.replicas {
		p.add("Deployment replicas = %v, want %d", deref(d.Spec.Replicas), want.replicas)
	}
	if sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector); err != nil || !sel.Matches(podLabels) {
		p.add("Deployment selector does not match its pod template (%v)", err)
	}
	if s := d.Spec.Strategy.RollingUpdate; s == nil || s.MaxUnavailable == nil || s.MaxUnavailable.IntValue() != 0 {
		p.add("Deployment rolling update must keep maxUnavailable 0 so a bad release never removes serving pods")
	}
	if len(pod.Containers) != 1 {
		p.add("Deployment has %d containers, want 1", len(pod.Containers))
		return p
	}
	c := pod.Containers[0]
	p.podSecurity("Deployment", pod)
	p.containerSecurity("Deployment", pod, c)
	p.image("Deployment", c, want.tag)
	p.resources("Deployment", c)
	if !slices.Equal(c.Args, []string{"serve"}) && len(c.Args) != 0 {
		p.add("Deployment container args %q, want [serve]", c.Args)
	}
	if len(c.Command) != 0 {
		p.add("Deployment overrides the image's ENTRYPOINT with %q", c.Command)
	}

	ports := map[string]int32{}
	for _, port := range c.Ports {
		ports[port.Name] = port.ContainerPort
	}
	if ports["http"] != 8080 || ports["metrics"] != 9090 {
		p.add("container ports %v, want http 8080 and metrics 9090", ports)
	}

	// Readiness leaves Postgres out: it is shared, so checking it would take every
	// replica out of the Service during its outage, cached executions and all.
	p.probe("readiness", c.ReadinessProbe, "/readyz?exclude=postgres")
	if r := c.ReadinessProbe; r != nil && r.TimeoutSeconds <= serviceReadinessCheckSeconds {
		// /readyz?exclude=postgres passes a Postgres outage, but answers only once the
		// service's own check of Postgres gave up: a probe that gives up first fails on
		// a Postgres that hangs, on every replica at once.
		p.add("readiness probe timeout %ds does not exceed the service's own %ds check of Postgres (readinessCheckTimeout)",
			r.TimeoutSeconds, serviceReadinessCheckSeconds)
	}
	p.probe("liveness", c.LivenessProbe, "/healthz")
	p.probe("startup", c.StartupProbe, "")
	if c.LivenessProbe != nil && c.LivenessProbe.HTTPGet != nil && strings.HasPrefix(c.LivenessProbe.HTTPGet.Path, "/readyz") {
		p.add("liveness must not use /readyz: a Postgres outage would restart every pod")
	}

	// Shutdown: the kubelet kills the pod after the grace period, so it must cover the
	// preStop delay and the service's own drain.
	preStop := time.Duration(0)
	switch {
	case c.Lifecycle == nil || c.Lifecycle.PreStop == nil:
		p.add("container has no preStop hook: endpoints may still send traffic after SIGTERM")
	case c.Lifecycle.PreStop.Sleep != nil:
		preStop = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	case c.Lifecycle.PreStop.Exec != nil:
		p.add("preStop exec needs a shell or sleep binary the distroless image does not have; use the sleep action")
	default:
		p.add("preStop hook is neither a sleep nor an exec")
	}
	if preStop <= 0 && c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		p.add("preStop sleeps %s, want a few seconds", preStop)
	}
	grace := defaultGrace
	if v, ok := configValue(b, c, "NODERUNTIME_SHUTDOWN_GRACE"); ok {
		g, err := time.ParseDuration(v)
		if err != nil {
			p.add("NODERUNTIME_SHUTDOWN_GRACE %q: %v", v, err)
		}
		grace = g
	}
	if tgp := pod.TerminationGracePeriodSeconds; tgp == nil || time.Duration(*tgp)*time.Second < preStop+grace {
		p.add("terminationGracePeriodSeconds %v is shorter than preStop %s + shutdown grace %s", deref(tgp), preStop, grace)
	}
	maxEx := defaultMaxEx
	if v, ok := configValue(b, c, "NODERUNTIME_EXECUTION_TIMEOUT_MAX"); ok {
		if d, err := time.ParseDuration(v); err == nil {
			maxEx = d
		}
	}
	if grace < maxEx {
		p.add("shutdown grace %s is shorter than NODERUNTIME_EXECUTION_TIMEOUT_MAX %s: an execution in flight at SIGTERM would be cut off", grace, maxEx)
	}

	if len(pod.TopologySpreadConstraints) == 0 {
		p.add("Deployment has no topologySpreadConstraints")
	}
	for _, tsc := range pod.TopologySpreadConstraints {
		if sel, err := metav1.LabelSelectorAsSelector(tsc.LabelSelector); err != nil || !sel.Matches(podLabels) {
			p.add("topology spread on %s does not select the Deployment's pods", tsc.TopologyKey)
		}
	}

	p.env("Deployment", b, c, secretVars, true)
	p.gc(c)
	p.maxProcs(c)
	p.executionsFit(b, c)
	for _, v := range configVars {
		if _, ok := configValue(b, c, v); !ok {
			p.add("Deployment gets %s from no ConfigMap", v)
		}
	}

	// ServiceAccount.
	saFound := false
	for _, sa := range b.ServiceAccounts {
		if sa.Name == pod.ServiceAccountName {
			saFound = true
			if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
				p.add("ServiceAccount %s mounts its token", sa.Name)
			}
		}
	}
	if !saFound {
		p.add("Deployment's ServiceAccount %q is not in the manifests", pod.ServiceAccountName)
	}

	// Service.
	if len(b.Services) != 1 {
		p.add("want one Service, got %d", len(b.Services))
	} else {
		svc := b.Services[0]
		sel := labels.SelectorFromSet(svc.Spec.Selector)
		if len(svc.Spec.Selector) == 0 || !sel.Matches(podLabels) {
			p.add("Service selector %v does not select the Deployment's pods", svc.Spec.Selector)
		}
		for _, j := range b.Jobs {
			if sel.Matches(labels.Set(j.Spec.Template.Labels)) {
				p.add("Service selector also selects the pods of Job %s", j.Name)
			}
		}
		svcPorts := map[string]string{}
		for _, sp := range svc.Spec.Ports {
			svcPorts[sp.Name] = fmt.Sprintf("%d->%s", sp.Port, sp.TargetPort.String())
		}
		if svcPorts["http"] != "8080->http" || svcPorts["metrics"] != "9090->metrics" {
			p.add("Service ports %v, want http 8080->http and metrics 9090->metrics", svcPorts)
		}
	}

	// PodDisruptionBudget.
	if len(b.PDBs) != 1 {
		p.add("want one PodDisruptionBudget, got %d", len(b.PDBs))
	} else {
		pdb := b.PDBs[0]
		if sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector); err != nil || !sel.Matches(podLabels) {
			p.add("PodDisruptionBudget does not select the Deployment's pods")
		}
		switch {
		case pdb.Spec.MaxUnavailable != nil:
			if pdb.Spec.MaxUnavailable.IntValue() < 1 && pdb.Spec.MaxUnavailable.StrVal == "" {
				p.add("PodDisruptionBudget maxUnavailable %s blocks every node drain", pdb.Spec.MaxUnavailable.String())
			}
		case pdb.Spec.MinAvailable != nil:
			if pdb.Spec.MinAvailable.StrVal == "" && int32(pdb.Spec.MinAvailable.IntValue()) >= want.replicas {
				p.add("PodDisruptionBudget minAvailable %s >= replicas %d blocks every node drain", pdb.Spec.MinAvailable.String(), want.replicas)
			}
		default:
			p.add("PodDisruptionBudget sets neither maxUnavailable nor minAvailable")
		}
	}

	// HorizontalPodAutoscaler.
	if len(b.HPAs) != 1 {
		p.add("want one HorizontalPodAutoscaler, got %d", len(b.HPAs))
	} else {
		h := b.HPAs[0]
		if h.Spec.ScaleTargetRef.Kind != "Deployment" || h.Spec.ScaleTargetRef.Name != d.Name || h.Spec.ScaleTargetRef.APIVersion != "apps/v1" {
			p.add("HPA targets %+v, not Deployment %s", h.Spec.ScaleTargetRef, d.Name)
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas != want.replicas {
			p.add("HPA minReplicas %v differs from the Deployment's %d replicas", deref(h.Spec.MinReplicas), want.replicas)
		}
		if h.Spec.MaxReplicas < want.replicas {
			p.add("HPA maxReplicas %d < replicas %d", h.Spec.MaxReplicas, want.replicas)
		}
		cpu := false
		for _, m := range h.Spec.Metrics {
			if m.Resource != nil && m.Resource.Name == corev1.ResourceCPU && m.Resource.Target.AverageUtilization != nil {
				cpu = true
			}
		}
		if !cpu {
			p.add("HPA does not scale on CPU utilization")
		}
		if _, ok := c.Resources.Requests[corev1.ResourceCPU]; !ok {
			p.add("HPA on CPU utilization needs a CPU request")
		}
	}

	p.networkPolicy(b, d)
	p.migrationJob(b, c, want.tag)
	if want.monitoring {
		p.monitoring(b)
	} else if len(b.ServiceMonitors)+len(b.PrometheusRules) != 0 {
		p.add("unexpected prometheus-operator objects in a kustomization that should not have them")
	}
	return p
}

type problems []string

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

func deref[T any](v *T) any {
	if v == nil {
		return "unset"
	}
	return *v
}

func (p *problems) namespaces(b *bundle, ns string) {
	if ns == "" {
		return
	}
	if len(b.Namespaces) != 1 || b.Namespaces[0].Name != ns {
		p.add("want the Namespace %s in the overlay", ns)
	} else if b.Namespaces[0].Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		p.add("Namespace %s does not enforce the restricted Pod Security Standard", ns)
	}
	var metas []metav1.ObjectMeta
	for _, o := range b.ServiceAccounts {
		metas = append(metas, o.ObjectMeta)
	}
	for _, o := range b.ConfigMaps {
		metas = append(metas, o.ObjectMeta)
	}
	for _, o := range b.Services {
		metas = append(metas, o.ObjectMeta)
	}
	for _, o := range b.Deployments {
		metas = append(metas, o.ObjectMeta)
	}
	for _, o := range b.Jobs {
		metas = append(metas, o.ObjectMeta)
	}
	for _, o := range b.PDBs {
		metas = append(metas, o.ObjectMeta)
	}
	for _, o := range b.HPAs {
		metas = append(metas, o.ObjectMeta)
	}
	for _, o := range b.NetworkPolicies {
		metas = append(metas, o.ObjectMeta)
	}
	for _, o := range b.ServiceMonitors {
		metas = append(metas, o.ObjectMeta)
	}
	for _, o := range b.PrometheusRules {
		metas = append(metas, o.ObjectMeta)
	}
	for _, m := range metas {
		if m.Namespace != ns {
			p.add("%s is in namespace %q, want %q", m.Name, m.Namespace, ns)
		}
	}
}

func (p *problems) podSecurity(what string, pod corev1.PodSpec) {
	sc := pod.SecurityContext
	if sc == nil {
		p.add("%s pod has no securityContext", what)
		return
	}
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		p.add("%s pod securityContext.runAsNonRoot is not true", what)
	}
	if sc.RunAsUser == nil || *sc.RunAsUser != nonRootUID {
		p.add("%s pod securityContext.runAsUser = %v, want %d", what, deref(sc.RunAsUser), nonRootUID)
	}
	if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		p.add("%s pod seccompProfile is not RuntimeDefault", what)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		p.add("%s pod mounts a service account token", what)
	}
	if pod.HostNetwork || pod.HostPID || pod.HostIPC {
		p.add("%s pod shares a host namespace", what)
	}
}

func (p *problems) containerSecurity(what string, pod corev1.PodSpec, c corev1.Container) {
	sc := c.SecurityContext
	if sc == nil {
		p.add("%s container %s has no securityContext", what, c.Name)
		return
	}
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		p.add("%s container securityContext.runAsNonRoot is not true", what)
	}
	if sc.RunAsUser != nil && *sc.RunAsUser != nonRootUID {
		p.add("%s container securityContext.runAsUser = %d, want %d", what, *sc.RunAsUser, nonRootUID)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		p.add("%s container securityContext.readOnlyRootFilesystem is not true", what)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		p.add("%s container securityContext.allowPrivilegeEscalation is not false", what)
	}
	if sc.Privileged != nil && *sc.Privileged {
		p.add("%s container is privileged", what)
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		p.add("%s container does not drop ALL capabilities", what)
	} else if len(sc.Capabilities.Add) != 0 {
		p.add("%s container adds capabilities %v", what, sc.Capabilities.Add)
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil && pod.SecurityContext != nil {
		seccomp = pod.SecurityContext.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		p.add("%s container seccompProfile is not RuntimeDefault", what)
	}
}

func (p *problems) image(what string, c corev1.Container, tag string) {
	repo, got, ok := strings.Cut(c.Image, ":")
	if !ok || strings.Contains(got, "/") {
		p.add("%s image %q has no tag", what, c.Image)
		return
	}
	if repo != imageRepo {
		p.add("%s image %q is not from %s", what, c.Image, imageRepo)
	}
	if got == "latest" || got != tag {
		p.add("%s image tag %q, want %q", what, got, tag)
	}
}

func (p *problems) resources(what string, c corev1.Container) {
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, hasReq := c.Resources.Requests[name]
		lim, hasLim := c.Resources.Limits[name]
		if !hasReq || req.IsZero() {
			p.add("%s container has no %s request", what, name)
		}
		if !hasLim || lim.IsZero() {
			p.add("%s container has no %s limit", what, name)
		}
		if hasReq && hasLim && req.Cmp(lim) > 0 {
			p.add("%s container %s request %s is above its limit %s", what, name, req.String(), lim.String())
		}
	}
	if lim, ok := c.Resources.Limits[corev1.ResourceMemory]; ok && lim.Cmp(resource.MustParse("64Mi")) < 0 {
		p.add("%s memory limit %s is too small for a Go service with a connection pool", what, lim.String())
	}
}

func (p *problems) probe(kind string, pr *corev1.Probe, path string) {
	if pr == nil {
		p.add("container has no %s probe", kind)
		return
	}
	if pr.HTTPGet == nil {
		p.add("%s probe is not an HTTP GET", kind)
		return
	}
	if path != "" && pr.HTTPGet.Path != path {
		p.add("%s probe path %q, want %q", kind, pr.HTTPGet.Path, path)
	}
	if pr.HTTPGet.Port.String() != "http" && pr.HTTPGet.Port.IntValue() != 8080 {
		p.add("%s probe port %s, want the http port", kind, pr.HTTPGet.Port.String())
	}
	if pr.TimeoutSeconds < 1 || pr.PeriodSeconds < 1 || pr.FailureThreshold < 1 {
		p.add("%s probe leaves timeout, period or failure threshold to the defaults", kind)
	}
}

// env checks that each of vars reaches the container from the Secret by reference.
func (p *problems) env(what string, b *bundle, c corev1.Container, vars []string, all bool) {
	byName := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		byName[e.Name] = e
		if e.Value != "" && slices.Contains(secretVars, e.Name) {
			p.add("%s sets the secret %s as a literal value", what, e.Name)
		}
	}
	for _, v := range vars {
		e, ok := byName[v]
		if !ok {
			if all {
				p.add("%s does not get %s", what, v)
			}
			continue
		}
		ref := (*corev1.SecretKeySelector)(nil)
		if e.ValueFrom != nil {
			ref = e.ValueFrom.SecretKeyRef
		}
		if ref == nil || ref.Name != secretName || ref.Key == "" {
			p.add("%s gets %s from somewhere other than a secretKeyRef to %s", what, v, secretName)
		}
	}
}

// gc checks the garbage collector's budget: a GOGC, and a GOMEMLIMIT of at least
// 32 MiB (below, the collector would run all the time) and at most 90% of the memory
// limit (the collector must act before the kernel does).
func (p *problems) gc(c corev1.Container) {
	var gogc, memLimit string
	for _, e := range c.Env {
		switch e.Name {
		case "GOGC":
			gogc = e.Value
		case "GOMEMLIMIT":
			memLimit = e.Value
		}
	}
	if n, err := strconv.Atoi(gogc); err != nil || n < 100 {
		p.add("GOGC %q is not a number of at least 100", gogc)
	}
	limit := c.Resources.Limits[corev1.ResourceMemory]
	soft, ok := goBytes(memLimit)
	switch {
	case !ok:
		p.add("GOMEMLIMIT %q is not a Go memory limit (like 200MiB)", memLimit)
	case limit.IsZero():
	case soft < 32<<20 || float64(soft) > 0.9*float64(limit.Value()):
		p.add("GOMEMLIMIT %s is not between 32 MiB and 90%% of the memory limit %s", memLimit, limit.String())
	}
}

// executionsFit checks that the executions a replica runs at once fit its memory limit:
// past it the kernel kills the pod and every execution it was running, some after
// Engage acted.
func (p *problems) executionsFit(b *bundle, c corev1.Container) {
	v, ok := configValue(b, c, "NODERUNTIME_MAX_CONCURRENT_EXECUTIONS")
	n, err := strconv.Atoi(v)
	if !ok || err != nil || n < 1 {
		p.add("NODERUNTIME_MAX_CONCURRENT_EXECUTIONS %q is not a positive number", v)
		return
	}
	limit := c.Resources.Limits[corev1.ResourceMemory]
	if need := int64(n)*memoryPerExecution + memoryBesides; !limit.IsZero() && need > limit.Value() {
		p.add("NODERUNTIME_MAX_CONCURRENT_EXECUTIONS %d needs %d MiB, more than the memory limit %s", n, need>>20, limit.String())
	}
	// Empty: tenants have no cap of their own. Set, the service refuses to start with
	// one above the replica's.
	if v, _ := configValue(b, c, "NODERUNTIME_MAX_CONCURRENT_EXECUTIONS_PER_TENANT"); v != "" {
		if per, err := strconv.Atoi(v); err != nil || per < 1 || per > n {
			p.add("NODERUNTIME_MAX_CONCURRENT_EXECUTIONS_PER_TENANT %q is not a number from 1 to NODERUNTIME_MAX_CONCURRENT_EXECUTIONS (%d)", v, n)
		}
	}
}

// maxProcs checks that GOMAXPROCS follows the CPU limit: the downward API's limits.cpu
// in whole CPUs, or a literal no larger than the limit rounded up. Left to Go, a one-CPU
// limit gets two Ps, and the pod is throttled.
func (p *problems) maxProcs(c corev1.Container) {
	limit := c.Resources.Limits[corev1.ResourceCPU]
	for _, e := range c.Env {
		if e.Name != "GOMAXPROCS" {
			continue
		}
		if e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil {
			ref := e.ValueFrom.ResourceFieldRef
			// An omitted divisor is Kubernetes' default, 1.
			wholeCPUs := ref.Divisor.IsZero() || ref.Divisor.Cmp(resource.MustParse("1")) == 0
			if ref.Resource != "limits.cpu" || (ref.ContainerName != "" && ref.ContainerName != c.Name) || !wholeCPUs {
				p.add("GOMAXPROCS comes from %s of %q with divisor %s, want limits.cpu of this container with divisor 1", ref.Resource, ref.ContainerName, ref.Divisor.String())
			}
			return
		}
		n, err := strconv.Atoi(e.Value)
		switch {
		case err != nil || n < 1:
			p.add("GOMAXPROCS %q is not a positive number", e.Value)
		case !limit.IsZero() && int64(n) > (limit.MilliValue()+999)/1000:
			p.add("GOMAXPROCS %d is more than the CPU limit %s", n, limit.String())
		}
		return
	}
	p.add("GOMAXPROCS is not set from the CPU limit")
}

// goBytes parses a GOMEMLIMIT value: a number of bytes with an optional B, KiB, MiB,
// GiB or TiB suffix.
func goBytes(s string) (int64, bool) {
	num, mult := s, int64(1)
	for i, unit := range []string{"TiB", "GiB", "MiB", "KiB", "B"} {
		if n, ok := strings.CutSuffix(s, unit); ok {
			num, mult = n, int64(1)<<(10*(4-i))
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	return n * mult, true
}

// configValue finds name in the ConfigMaps the container reads with envFrom.
func configValue(b *bundle, c corev1.Container, name string) (string, bool) {
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef == nil {
			continue
		}
		for _, cm := range b.ConfigMaps {
			if cm.Name == from.ConfigMapRef.Name {
				if v, ok := cm.Data[from.Prefix+name]; ok {
					return v, true
				}
			}
		}
	}
	return "", false
}

func (p *problems) networkPolicy(b *bundle, d *appsv1.Deployment) {
	if len(b.NetworkPolicies) != 1 {
		p.add("want one NetworkPolicy, got %d", len(b.NetworkPolicies))
		return
	}
	np := b.NetworkPolicies[0]
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil || sel.Empty() {
		p.add("NetworkPolicy podSelector is empty or invalid: it would govern every pod in the namespace")
		return
	}
	if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		p.add("NetworkPolicy does not select the Deployment's pods")
	}
	for _, j := range b.Jobs {
		if !sel.Matches(labels.Set(j.Spec.Template.Labels)) {
			p.add("NetworkPolicy does not select the pods of Job %s", j.Name)
		}
	}
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
		p.add("NetworkPolicy policyTypes %v, want Ingress and Egress", np.Spec.PolicyTypes)
	}

	// Ingress: the orchestrator on http, Prometheus on metrics, nothing else.
	var orchestrator, prometheus bool
	for _, r := range np.Spec.Ingress {
		if len(r.From) == 0 {
			p.add("an ingress rule allows every source")
		}
		ports := portSet(r.Ports)
		for _, peer := range r.From {
			if peer.IPBlock != nil {
				p.add("an ingress rule allows an IP block %s", peer.IPBlock.CIDR)
			}
			ns := ""
			if peer.NamespaceSelector != nil {
				ns = peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"]
			}
			switch {
			case ns == "orchestrator" && slices.Equal(ports, []string{"http/TCP"}):
				orchestrator = true
			case ns == "monitoring" && peer.PodSelector != nil && peer.PodSelector.MatchLabels["app.kubernetes.io/name"] == "prometheus" &&
				slices.Equal(ports, []string{"metrics/TCP"}):
				prometheus = true
			default:
				p.add("an ingress rule allows %+v on %v, neither the orchestrator on http nor Prometheus on metrics", peer, ports)
			}
		}
	}
	if !orchestrator {
		p.add("NetworkPolicy does not let the orchestrator namespace reach the http port")
	}
	if !prometheus {
		p.add("NetworkPolicy does not let Prometheus reach the metrics port")
	}

	// Egress: DNS, Postgres and HTTPS only.
	var egress []string
	for _, r := range np.Spec.Egress {
		if len(r.Ports) == 0 {
			p.add("an egress rule allows every port")
		}
		egress = append(egress, portSet(r.Ports)...)
	}
	slices.Sort(egress)
	if want := []string{"443/TCP", "53/TCP", "53/UDP", "5432/TCP"}; !slices.Equal(slices.Compact(egress), want) {
		p.add("NetworkPolicy egress ports %v, want %v", egress, want)
	}
}

func portSet(ports []networkingv1.NetworkPolicyPort) []string {
	var out []string
	for _, np := range ports {
		proto := "TCP"
		if np.Protocol != nil {
			proto = string(*np.Protocol)
		}
		port := "all"
		if np.Port != nil {
			port = np.Port.String()
		}
		if np.EndPort != nil {
			port += fmt.Sprintf("-%d", *np.EndPort)
		}
		out = append(out, port+"/"+proto)
	}
	slices.Sort(out)
	return out
}

func (p *problems) migrationJob(b *bundle, server corev1.Container, tag string) {
	if len(b.Jobs) != 1 {
		p.add("want one migration Job, got %d", len(b.Jobs))
		return
	}
	j := b.Jobs[0]
	pod := j.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		p.add("migration Job has %d containers, want 1", len(pod.Containers))
		return
	}
	c := pod.Containers[0]
	if !slices.Equal(c.Args, []string{"migrate", "up"}) || len(c.Command) != 0 {
		p.add("migration Job runs command %q args %q, want the image's entrypoint with [migrate up]", c.Command, c.Args)
	}
	if c.Image != server.Image {
		p.add("migration Job image %q differs from the Deployment's %q: it would migrate to another schema", c.Image, server.Image)
	}
	if pod.RestartPolicy != corev1.RestartPolicyNever && pod.RestartPolicy != corev1.RestartPolicyOnFailure {
		p.add("migration Job restartPolicy %q", pod.RestartPolicy)
	}
	if len(c.EnvFrom) != 0 {
		p.add("migration Job uses envFrom: a reference to the hashed ConfigMap changes its immutable template with every config change")
	}
	if j.Spec.BackoffLimit == nil || j.Spec.ActiveDeadlineSeconds == nil {
		p.add("migration Job must bound its retries (backoffLimit) and its run time (activeDeadlineSeconds)")
	}
	p.podSecurity("migration Job", pod)
	p.containerSecurity("migration Job", pod, c)
	p.image("migration Job", c, tag)
	p.resources("migration Job", c)
	p.env("migration Job", b, c, []string{"DATABASE_URL"}, true)
}

func (p *problems) monitoring(b *bundle) {
	if len(b.ServiceMonitors) != 1 || len(b.Services) != 1 {
		p.add("want one ServiceMonitor for the one Service, got %d", len(b.ServiceMonitors))
	} else {
		sm, svc := b.ServiceMonitors[0], b.Services[0]
		sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(svc.Labels)) {
			p.add("ServiceMonitor selector does not select Service %s", svc.Name)
		}
		// The alerts select job="noderuntime".
		if sm.Spec.JobLabel == "" || svc.Labels[sm.Spec.JobLabel] != "noderuntime" {
			p.add("ServiceMonitor jobLabel %q does not make job=\"noderuntime\"", sm.Spec.JobLabel)
		}
		if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "metrics" || sm.Spec.Endpoints[0].Path != "/metrics" {
			p.add("ServiceMonitor must scrape the Service's metrics port at /metrics")
		}
	}
	if len(b.PrometheusRules) != 1 {
		p.add("want one PrometheusRule, got %d", len(b.PrometheusRules))
	}
	dashboard := false
	for _, cm := range b.ConfigMaps {
		if cm.Labels["grafana_dashboard"] == "1" && cm.Data["noderuntime.json"] != "" {
			dashboard = true
		}
	}
	if !dashboard {
		p.add("no dashboard ConfigMap for Grafana's sidecar")
	}
}

func intOrString(v int32) intstr.IntOrString { return intstr.FromInt32(v) }

// setEnv sets the container's variable name, which the rendering must have.
func setEnv(c *corev1.Container, name, value string) { envVar(c, name).Value = value }

// envVar is the container's variable name, for a case to break; the rendering must have it.
func envVar(c *corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	panic("the rendering has no variable " + name)
}

// TestChecksCatchBrokenManifests proves the checks above can fail: each case breaks one
// rule in an otherwise good rendering and expects check to say so.
func TestChecksCatchBrokenManifests(t *testing.T) {
	t.Parallel()
	docs, err := render("overlays/prod")
	if err != nil {
		t.Fatal(err)
	}
	want := expectations["overlays/prod"]
	pod := func(b *bundle) *corev1.PodSpec { return &b.Deployments[0].Spec.Template.Spec }
	ctr := func(b *bundle) *corev1.Container { return &pod(b).Containers[0] }
	f, tr := false, true
	cases := []struct {
		name   string
		mutate func(b *bundle)
		says   string
	}{
		{"root allowed", func(b *bundle) { pod(b).SecurityContext.RunAsNonRoot = &f }, "runAsNonRoot"},
		{"writable root filesystem", func(b *bundle) { ctr(b).SecurityContext.ReadOnlyRootFilesystem = &f }, "readOnlyRootFilesystem"},
		{"privilege escalation", func(b *bundle) { ctr(b).SecurityContext.AllowPrivilegeEscalation = &tr }, "allowPrivilegeEscalation"},
		{"capabilities kept", func(b *bundle) { ctr(b).SecurityContext.Capabilities = nil }, "drop ALL"},
		{"unconfined seccomp", func(b *bundle) {
			ctr(b).SecurityContext.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}
		}, "seccompProfile"},
		{"readiness on the liveness endpoint", func(b *bundle) { ctr(b).ReadinessProbe.HTTPGet.Path = "/healthz" }, "readiness probe path"},
		{"readiness following Postgres", func(b *bundle) { ctr(b).ReadinessProbe.HTTPGet.Path = "/readyz" }, "readiness probe path"},
		{"readiness giving up before the service's check", func(b *bundle) { ctr(b).ReadinessProbe.TimeoutSeconds = 2 }, "readiness probe timeout"},
		{"no startup probe", func(b *bundle) { ctr(b).StartupProbe = nil }, "startup probe"},
		{"no memory limit", func(b *bundle) { delete(ctr(b).Resources.Limits, corev1.ResourceMemory) }, "memory limit"},
		{"GOMEMLIMIT above the limit", func(b *bundle) { setEnv(ctr(b), "GOMEMLIMIT", "600MiB") }, "GOMEMLIMIT"},
		{"GOMEMLIMIT unparsable", func(b *bundle) { setEnv(ctr(b), "GOMEMLIMIT", "400Mi") }, "GOMEMLIMIT"},
		{"GOMEMLIMIT tiny", func(b *bundle) { setEnv(ctr(b), "GOMEMLIMIT", "8MiB") }, "GOMEMLIMIT"},
		{"GOGC off", func(b *bundle) { setEnv(ctr(b), "GOGC", "off") }, "GOGC"},
		{"GOMAXPROCS left to Go", func(b *bundle) {
			ctr(b).Env = slices.DeleteFunc(ctr(b).Env, func(e corev1.EnvVar) bool { return e.Name == "GOMAXPROCS" })
		}, "GOMAXPROCS is not set"},
		{"GOMAXPROCS above the CPU limit", func(b *bundle) {
			*envVar(ctr(b), "GOMAXPROCS") = corev1.EnvVar{Name: "GOMAXPROCS", Value: "4"}
		}, "more than the CPU limit"},
		{"GOMAXPROCS from the request", func(b *bundle) {
			envVar(ctr(b), "GOMAXPROCS").ValueFrom.ResourceFieldRef.Resource = "requests.cpu"
		}, "want limits.cpu"},
		{"GOMAXPROCS in millicores", func(b *bundle) {
			envVar(ctr(b), "GOMAXPROCS").ValueFrom.ResourceFieldRef.Divisor = resource.MustParse("1m")
		}, "divisor 1m"},
		{"latest image", func(b *bundle) { ctr(b).Image = imageRepo + ":latest" }, "image tag"},
		{"secret as a literal", func(b *bundle) {
			*envVar(ctr(b), "DATABASE_URL") = corev1.EnvVar{Name: "DATABASE_URL", Value: "postgres://u:p@db/nr"}
		}, "DATABASE_URL as a literal"},
		{"a Secret object", func(b *bundle) {
			b.Secrets = append(b.Secrets, &corev1.Secret{StringData: map[string]string{"database-url": "postgres://"}})
		}, "Secret object"},
		{"grace shorter than the drain", func(b *bundle) { s := int64(10); pod(b).TerminationGracePeriodSeconds = &s }, "terminationGracePeriodSeconds"},
		{"grace shorter than the longest execution", func(b *bundle) {
			for _, cm := range b.ConfigMaps {
				if _, ok := cm.Data["NODERUNTIME_SHUTDOWN_GRACE"]; ok {
					cm.Data["NODERUNTIME_SHUTDOWN_GRACE"] = "20s"
				}
			}
		}, "cut off"},
		{"more executions at once than the memory holds", func(b *bundle) {
			for _, cm := range b.ConfigMaps {
				if _, ok := cm.Data["NODERUNTIME_MAX_CONCURRENT_EXECUTIONS"]; ok {
					cm.Data["NODERUNTIME_MAX_CONCURRENT_EXECUTIONS"] = "8000"
				}
			}
		}, "more than the memory limit"},
		{"a tenant's share above the replica's", func(b *bundle) {
			for _, cm := range b.ConfigMaps {
				if _, ok := cm.Data["NODERUNTIME_MAX_CONCURRENT_EXECUTIONS_PER_TENANT"]; ok {
					cm.Data["NODERUNTIME_MAX_CONCURRENT_EXECUTIONS_PER_TENANT"] = "5000"
				}
			}
		}, "PER_TENANT \"5000\""},
		{"token mounted", func(b *bundle) { pod(b).AutomountServiceAccountToken = &tr }, "service account token"},
		{"HPA below the replicas", func(b *bundle) { m := int32(2); b.HPAs[0].Spec.MinReplicas = &m }, "minReplicas"},
		{"PDB blocking drains", func(b *bundle) {
			b.PDBs[0].Spec.MaxUnavailable = nil
			v := intOrString(want.replicas)
			b.PDBs[0].Spec.MinAvailable = &v
		}, "blocks every node drain"},
		{"egress to plain HTTP", func(b *bundle) {
			port, proto := intOrString(80), corev1.ProtocolTCP
			np := &b.NetworkPolicies[0].Spec
			np.Egress = append(np.Egress, networkingv1.NetworkPolicyEgressRule{Ports: []networkingv1.NetworkPolicyPort{{Port: &port, Protocol: &proto}}})
		}, "egress ports"},
		{"ingress from everywhere", func(b *bundle) {
			np := &b.NetworkPolicies[0].Spec
			np.Ingress = append(np.Ingress, networkingv1.NetworkPolicyIngressRule{})
		}, "allows every source"},
		{"migration of another image", func(b *bundle) { b.Jobs[0].Spec.Template.Spec.Containers[0].Image = imageRepo + ":0.0.9" }, "differs from the Deployment"},
		{"migration that serves", func(b *bundle) { b.Jobs[0].Spec.Template.Spec.Containers[0].Args = []string{"serve"} }, "[migrate up]"},
		{"Service selecting the Job", func(b *bundle) {
			b.Services[0].Spec.Selector = map[string]string{"app.kubernetes.io/name": "noderuntime"}
		}, "selects the pods of Job"},
		{"ServiceMonitor on another port", func(b *bundle) { b.ServiceMonitors[0].Spec.Endpoints[0].Port = "http" }, "metrics port"},
		{"object outside the namespace", func(b *bundle) { b.Services[0].Namespace = "default" }, "want \"noderuntime\""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b, err := decode(docs)
			if err != nil {
				t.Fatal(err)
			}
			if got := check(b, want); len(got) != 0 {
				t.Fatalf("the unbroken rendering already has problems: %q", got)
			}
			c.mutate(b)
			got := check(b, want)
			if !slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, c.says) }) {
				t.Fatalf("check did not report %q; it reported %q", c.says, got)
			}
		})
	}
}

// TestGOMAXPROCSWithoutADivisorIsWholeCPUs: Kubernetes takes an omitted divisor as 1, so
// the check accepts it as it accepts "1".
func TestGOMAXPROCSWithoutADivisorIsWholeCPUs(t *testing.T) {
	t.Parallel()
	docs, err := render("overlays/prod")
	if err != nil {
		t.Fatal(err)
	}
	b, err := decode(docs)
	if err != nil {
		t.Fatal(err)
	}
	envVar(&b.Deployments[0].Spec.Template.Spec.Containers[0], "GOMAXPROCS").ValueFrom.ResourceFieldRef.Divisor = resource.Quantity{}
	if got := check(b, expectations["overlays/prod"]); len(got) != 0 {
		t.Fatalf("an omitted divisor is refused: %q", got)
	}
}

// serviceReadinessCheckSeconds is internal/app's readinessCheckTimeout, in seconds:
// /readyz answers within it (TestTheReadinessProbeWaitsForTheServicesCheck keeps the two
// equal).
const serviceReadinessCheckSeconds = 2

// TestTheReadinessProbeWaitsForTheServicesCheck reads readinessCheckTimeout in the
// service's code, so that the probe's check above follows it.
func TestTheReadinessProbeWaitsForTheServicesCheck(t *testing.T) {
	t.Parallel()
	found := ""
	inspectServiceCode(t, func(n ast.Node) bool {
		if vs, ok := n.(*ast.ValueSpec); ok && len(vs.Names) == 1 && vs.Names[0].Name == "readinessCheckTimeout" && len(vs.Values) == 1 {
			var b strings.Builder
			_ = format.Node(&b, token.NewFileSet(), vs.Values[0])
			found = b.String()
		}
		return true
	})
	if want := fmt.Sprintf("%d * time.Second", serviceReadinessCheckSeconds); found != want {
		t.Fatalf("readinessCheckTimeout is %q in the service, want %q: update serviceReadinessCheckSeconds and the probe", found, want)
	}
}
