package main

import (
	"bytes"
	"maps"
	"net"
	"strings"
	"testing"

	"github.com/noderuntime/noderuntime/internal/database/dbtest"
	"github.com/noderuntime/noderuntime/internal/tenant"
)

// The exit code tells the platform what happened: 0 only for what was asked (help
// included), 2 for a command line to fix, and the usage or one line on stderr says why.
func TestTheCommandLineExitsZeroOnlyForHelpAndTwoForAnythingToFix(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no command prints the usage and fails", nil, exitUsage, "Usage: noderuntime <command>"},
		{"help prints the usage", []string{"help"}, exitOK, "rotate-keys"},
		{"-h prints the usage", []string{"-h"}, exitOK, "Usage: noderuntime <command>"},
		{"--help prints the usage", []string{"--help"}, exitOK, "Usage: noderuntime <command>"},
		{"a command's --help prints its flags", []string{"rotate-keys", "--help"}, exitOK, "-batch-size"},
		{"an unknown command", []string{"bogus"}, exitUsage, `unknown command "bogus"`},
		{"an unknown flag", []string{"serve", "--no-such-flag"}, exitUsage, "no-such-flag"},
		{"migrate without a subcommand", []string{"migrate"}, exitUsage, "up|status"},
		{"migrate with an unknown subcommand", []string{"migrate", "down"}, exitUsage, "up|status"},
		{"migrate with a word after the subcommand", []string{"migrate", "up", "now"}, exitUsage, "up|status"},
		{"rotate-keys with a word", []string{"rotate-keys", "now"}, exitUsage, "takes flags only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := run(tc.args, env(map[string]string{"DATABASE_URL": "postgres://127.0.0.1:1/none"}), &stdout, &stderr)
			if code != tc.code || !strings.Contains(stderr.String(), tc.stderr) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, stderr.String(), tc.code, tc.stderr)
			}
		})
	}
}

// A serve that cannot take its port exits 1 with the setting named in its log: exit 0
// would tell the platform it stopped as asked, and it would not be restarted.
func TestServeThatCannotListenExitsOneNamingTheSetting(t *testing.T) {
	t.Parallel()
	code, addr, stderr := serveOnABusyPort(t, nil)
	if code != exitFailed || !strings.Contains(stderr, "NODERUNTIME_ADDR: listen on "+addr) {
		t.Fatalf("exit %d, stderr %q; want exit 1 naming NODERUNTIME_ADDR", code, stderr)
	}
}

// A shutdown grace shorter than the longest execution is warned about at start, as the
// README says, before anything else can stop the start (here a port taken).
func TestServeWarnsAtStartOfAGraceShorterThanTheLongestExecution(t *testing.T) {
	t.Parallel()
	code, _, stderr := serveOnABusyPort(t, map[string]string{
		"NODERUNTIME_SHUTDOWN_GRACE":        "1s",
		"NODERUNTIME_EXECUTION_TIMEOUT_MAX": "2s",
		"NODERUNTIME_EXECUTION_TIMEOUT":     "1s",
	})
	if code != exitFailed || !strings.Contains(stderr, "NODERUNTIME_SHUTDOWN_GRACE (1s) is shorter than NODERUNTIME_EXECUTION_TIMEOUT_MAX (2s)") {
		t.Fatalf("exit %d, stderr %q; want the warning about NODERUNTIME_SHUTDOWN_GRACE", code, stderr)
	}
}

// serveOnABusyPort runs serve, with settings added to a working set, on an address
// something else holds, and returns its exit code, that address and what it logged.
func serveOnABusyPort(t *testing.T, settings map[string]string) (code int, addr, stderr string) {
	t.Helper()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() })
	vars := map[string]string{
		"DATABASE_URL":                dbtest.NewURL(t),
		"NODERUNTIME_ADDR":            busy.Addr().String(),
		"NODERUNTIME_ENCRYPTION_KEYS": goodKeys,
		"NODERUNTIME_API_KEYS":        "acme:" + tenant.HashKey("key"),
	}
	maps.Copy(vars, settings)
	var stdout, errout bytes.Buffer
	code = run([]string{"serve"}, env(vars), &stdout, &errout)
	return code, busy.Addr().String(), errout.String()
}
