//go:build !race

package e2e

import "time"

const raceEnabled = false

// deadlineSlack is the promise: a timed-out execution answers within its deadline plus
// 100 ms (race_test.go says why a race build gets more).
const deadlineSlack = 100 * time.Millisecond
