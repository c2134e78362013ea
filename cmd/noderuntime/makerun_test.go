package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/noderuntime/noderuntime/internal/database/dbtest"
)

// TestMakeRunStopsCleanlyOnCtrlC runs the README's first command as a user does and
// presses Ctrl-C (SIGINT to the terminal's process group): the service stops, and make
// reports no error for it.
func TestMakeRunStopsCleanlyOnCtrlC(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatal("make is not installed; the README's commands need it")
	}
	cmd := exec.Command("make", "--no-print-directory", "run", "RUN_BIN="+filepath.Join(t.TempDir(), "noderuntime"))
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbtest.NewEmptyURL(t), "NODERUNTIME_ADDR=127.0.0.1:0")
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a terminal's own process group
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })

	// Building the binary on a cold cache beside the other packages' tests takes a
	// minute or more; the wait ends as soon as the banner is printed.
	waitForOutput(t, "make run", &out, func(s string) bool { return strings.Contains(s, "Stop with Ctrl-C.") }, exited, 8*time.Minute)

	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited: // make itself ends by the interrupt, as it should; what it printed matters
	case <-time.After(time.Minute):
		t.Fatalf("make run did not end a minute after Ctrl-C:\n%s", out.String())
	}
	got := out.String()
	if !strings.Contains(got, `"msg":"stopped"`) {
		t.Fatalf("the service did not say it stopped:\n%s", got)
	}
	if strings.Contains(got, "make: ***") {
		t.Fatalf("make reported an error for a clean stop:\n%s", got)
	}
}
