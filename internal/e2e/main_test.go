package e2e

import (
	"fmt"
	"os"
	"testing"

	"github.com/noderuntime/noderuntime/internal/database/dbtest"
)

// TestMain runs the suite, then fails it if any canary secret reached a log line, a
// metric or a response at any time, even after the test that caused it had ended.
func TestMain(m *testing.M) {
	code := dbtest.Run(m)
	if report := leaks.report(); report != "" {
		fmt.Fprintln(os.Stderr, "FAIL: canary secrets leaked:\n"+report)
		code = 1
	}
	removeBuiltBinary()
	os.Exit(code)
}
