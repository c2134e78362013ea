// Package deploy holds the offline checks of what ships noderuntime: the Dockerfile at
// the repository root, the kustomize base and overlays, the Prometheus rules and the
// Grafana dashboard. It is its own Go module so that kustomize, the Kubernetes API types
// and buildkit's parser never enter the service binary's dependency graph.
//
// Run the checks with `cd deploy && go test ./...`. They need no cluster, no registry
// and no network; the promtool checks need promtool on PATH and fail without it
// (`bash .ci/install-test-deps`, which `make test` runs, installs it).
package deploy
