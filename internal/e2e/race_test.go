//go:build race

package e2e

import "time"

// raceEnabled: the tests run with the race detector, so the binary is built with it too.
const raceEnabled = true

// deadlineSlack is how late after its deadline a timed-out execution may answer in
// these tests. The promise is 100 ms (docs/reliability.md), and `make test` holds a
// build without the race detector to it (norace_test.go). With the detector the
// service does its work several times slower, beside the other packages' tests on two
// cores: answers to a 300 ms deadline came after 400-480 ms. A deadline ignored (the
// faults' 5 or 10 s) or spent twice still fails 250 ms.
const deadlineSlack = 250 * time.Millisecond
