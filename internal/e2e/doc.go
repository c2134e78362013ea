// Package e2e holds the end-to-end reliability tests of noderuntime: the service as
// `serve` builds it (in process through internal/app, or the real binary in child
// processes) against the Engage simulator and real Postgres, under Engage faults,
// hostile input, a Postgres restart, SIGTERM during load and several replicas on one
// database. Every test also feeds what the service logged, answered and exposed as
// metrics to one scan for canary secrets. docs/reliability.md maps each promise of the
// service to the test here (or elsewhere) that proves it.
//
// The package has no code of its own beyond this comment: everything is in _test.go
// files, so nothing here can reach the service binary.
package e2e
