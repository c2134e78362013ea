package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/noderuntime/noderuntime/internal/engagesim"
)

// docCommand is a command line of the binary in the docs: in a code span
// (`noderuntime serve --migrate`), or in a code block at the start of a line, after a
// path (/noderuntime, bin/noderuntime) or after kubectl exec's "--".
var (
	docCommandInSpan  = regexp.MustCompile("`(?:bin/|/)?noderuntime ([a-z<][a-z-]*>?)([^`]*)`")
	docCommandInBlock = regexp.MustCompile(`(?:^\s*|(?:^|\s)(?:bin)?/|-- )noderuntime ([a-z][a-z-]*)([^|;&#)]*)`)
)

// subcommands are the words a command takes besides flags.
var subcommands = map[string][]string{"migrate": {"up", "status"}}

// commandFlags returns the flags of a command as its --help lists them.
func commandFlags(t *testing.T, name string) []string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run([]string{name, "--help"}, env(nil), &stdout, &stderr); code != exitOK {
		t.Fatalf("%s --help: exit %d", name, code)
	}
	var flags []string
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z][a-z-]*)`).FindAllStringSubmatch(stderr.String(), -1) {
		flags = append(flags, m[1])
	}
	return flags
}

// TestTheDocsRunOnlyCommandsAndFlagsThatExist: every `noderuntime <command> --flag` the
// README and docs/ give an operator names a command of the binary, with flags (and, for
// migrate, a subcommand) it takes. A renamed flag otherwise leaves a runbook step that
// stops at "flag provided but not defined".
func TestTheDocsRunOnlyCommandsAndFlagsThatExist(t *testing.T) {
	docs, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	flags := map[string][]string{}
	for _, c := range commands() {
		flags[c.name] = append(commandFlags(t, c.name), "help", "h")
	}
	found := 0
	for _, path := range append(docs, "../../README.md") {
		if filepath.Base(path) == "performance.md" {
			continue // nrbench's page: its commands are the benchmark's
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var lines [][]string
		inBlock := false
		for _, line := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "```") {
				inBlock = !inBlock
				continue
			}
			if inBlock {
				lines = append(lines, docCommandInBlock.FindAllStringSubmatch(line, -1)...)
			} else {
				lines = append(lines, docCommandInSpan.FindAllStringSubmatch(line, -1)...)
			}
		}
		for _, m := range lines {
			name, args := m[1], strings.Fields(m[2])
			if strings.HasPrefix(name, "<") {
				continue // `noderuntime <command> --help`
			}
			known, ok := flags[name]
			if !ok {
				t.Errorf("%s: `noderuntime %s`: no such command", path, name)
				continue
			}
			found++
			words := 0
			for i, a := range args {
				f, isFlag := strings.CutPrefix(a, "-")
				if !isFlag {
					if sub, ok := subcommands[name]; ok && words == 0 && (i == 0 || !strings.HasPrefix(args[i-1], "-") || strings.Contains(args[i-1], "=")) {
						if !slices.Contains(sub, a) && !strings.Contains(a, "|") {
							t.Errorf("%s: `noderuntime %s %s`: %s takes %v", path, name, a, name, sub)
						}
						words++
					}
					continue
				}
				f, _, _ = strings.Cut(strings.TrimPrefix(f, "-"), "=")
				if !slices.Contains(known, f) {
					t.Errorf("%s: `noderuntime %s ... %s`: %s has no flag --%s (it has %v)", path, name, a, name, f, known)
				}
			}
		}
	}
	if found < 10 {
		t.Fatalf("found only %d command lines in the docs: is the pattern still right?", found)
	}
}

// TestTheDocsReadEveryPodsLog: `kubectl logs deploy/noderuntime` reads one pod of the
// Deployment, perhaps not the one in trouble, and `kubectl logs -l ...` keeps only the
// last 10 lines of each pod unless --tail says otherwise. The log commands of the docs'
// code blocks read every pod's log, whole.
func TestTheDocsReadEveryPodsLog(t *testing.T) {
	t.Parallel()
	docs, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range append(docs, "../../README.md") {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		block := false // in a code block: the commands an operator copies
		for i, line := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "```") {
				block = !block
				continue
			}
			if !block {
				continue
			}
			if strings.Contains(line, "logs deploy/") {
				t.Errorf("%s:%d reads one pod's log: %s", path, i+1, line)
			}
			if strings.Contains(line, "logs -l ") && !strings.Contains(line, "--tail=-1") {
				t.Errorf("%s:%d reads the last 10 lines of each pod only: %s", path, i+1, line)
			}
		}
	}
}

// TestTheREADMEShowsTheDevBannerAsPrinted: the quick start's banner is what `make run`
// prints, line for line, with the README's API key and authorization ID in it: a new
// user compares the two to know the service is ready and how to stop it.
func TestTheREADMEShowsTheDevBannerAsPrinted(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)prints a ready-to-paste `curl`:\n\n```text\n(.*?)```").FindSubmatch(raw)
	if m == nil {
		t.Fatal("the README's quick start has no ```text block after \"prints a ready-to-paste `curl`:\"")
	}
	shown := string(m[1])
	key := regexp.MustCompile(`API key +([0-9a-f]+)`).FindStringSubmatch(shown)
	auth := regexp.MustCompile(`authorization +([0-9a-f-]{36})`).FindStringSubmatch(shown)
	if key == nil || auth == nil {
		t.Fatalf("the README's banner names no API key or authorization:\n%s", shown)
	}
	sim := engagesim.New(engagesim.Config{})
	sim.SetURL("http://127.0.0.1:8090")
	var printed bytes.Buffer
	printDevBanner(&printed, "http://127.0.0.1:8080", key[1], auth[1], sim)
	if want := strings.TrimPrefix(printed.String(), "\n"); shown != want {
		t.Errorf("the README's banner:\n%s\nnoderuntime dev prints:\n%s", shown, want)
	}
}
