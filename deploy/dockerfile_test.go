package deploy

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

const (
	dockerfilePath = "../Dockerfile"
	versionPackage = "github.com/noderuntime/noderuntime/internal/buildinfo.Version"
)

// stage is one FROM and the instructions under it.
type stage struct {
	name, base string
	from       *parser.Node
	nodes      []*parser.Node
}

// goBuild is the `go build` a RUN instruction runs: its variable assignments and its
// arguments after `go`, expanded as the builder's shell would.
type goBuild struct {
	stage string
	env   map[string]string
	args  []string
}

func (g goBuild) flag(name string) (string, bool) {
	for i, a := range g.args {
		if a == name && i+1 < len(g.args) {
			return g.args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// dockerfileFacts is what the other checks cross-reference.
type dockerfileFacts struct {
	user       string
	uid        int
	expose     []string
	entrypoint []string
	cmd        []string
	build      *goBuild
	output     string // the binary's path in the build stage
}

func parseStages(src []byte) ([]stage, error) {
	res, err := parser.Parse(bytes.NewReader(src))
	if err != nil {
		return nil, fmt.Errorf("parse Dockerfile: %w", err)
	}
	var stages []stage
	for _, n := range res.AST.Children {
		if instruction(n) == "from" {
			s := stage{from: n}
			if n.Next == nil {
				return nil, fmt.Errorf("line %d: FROM without an image", n.StartLine)
			}
			s.base = n.Next.Value
			if as := n.Next.Next; as != nil && strings.EqualFold(as.Value, "as") && as.Next != nil {
				s.name = as.Next.Value
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) == 0 {
			continue // global ARGs
		}
		stages[len(stages)-1].nodes = append(stages[len(stages)-1].nodes, n)
	}
	return stages, nil
}

// instruction is n's instruction in lower case; the parser keeps the file's spelling.
func instruction(n *parser.Node) string { return strings.ToLower(n.Value) }

func args(n *parser.Node) []string {
	var out []string
	for a := n.Next; a != nil; a = a.Next {
		out = append(out, a.Value)
	}
	return out
}

// buildVersion stands in for the VERSION build argument, to see it reach -ldflags.
const buildVersion = "v0.0.0-dockerfile-test"

// findGoBuild expands each RUN of s with the stage's ARGs and ENVs and returns the one
// that runs `go build`.
func findGoBuild(s stage, target map[string]string) (*goBuild, error) {
	env := map[string]string{}
	lex := shell.NewLex('\\')
	for _, n := range s.nodes {
		switch instruction(n) {
		case "arg", "env":
			for _, kv := range args(n) {
				k, v, _ := strings.Cut(kv, "=")
				if instruction(n) == "arg" {
					if tv, ok := target[k]; ok {
						v = tv
					}
				}
				env[k] = v
			}
		case "run":
			if n.Attributes["json"] || n.Next == nil {
				continue
			}
			words, err := lex.ProcessWords(n.Next.Value, envGetter(env))
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n.StartLine, err)
			}
			for _, cmd := range splitCommands(words) {
				assign := map[string]string{}
				i := 0
				for ; i < len(cmd) && strings.Contains(cmd[i], "=") && !strings.HasPrefix(cmd[i], "-"); i++ {
					k, v, _ := strings.Cut(cmd[i], "=")
					assign[k] = v
				}
				if i+1 < len(cmd) && cmd[i] == "go" && cmd[i+1] == "build" {
					for k, v := range env {
						if _, ok := assign[k]; !ok && !isArg(s, k) {
							assign[k] = v // ENV reaches the command too
						}
					}
					return &goBuild{stage: s.name, env: assign, args: cmd[i+1:]}, nil
				}
			}
		}
	}
	return nil, nil
}

func isArg(s stage, name string) bool {
	for _, n := range s.nodes {
		if instruction(n) == "arg" {
			for _, kv := range args(n) {
				if k, _, _ := strings.Cut(kv, "="); k == name {
					return true
				}
			}
		}
	}
	return false
}

func envGetter(m map[string]string) shell.EnvGetter {
	var kv []string
	for k, v := range m {
		kv = append(kv, k+"="+v)
	}
	return shell.EnvsFromSlice(kv)
}

func splitCommands(words []string) [][]string {
	var out [][]string
	var cur []string
	for _, w := range words {
		if w == "&&" || w == ";" || w == "||" {
			out, cur = append(out, cur), nil
			continue
		}
		cur = append(cur, w)
	}
	return append(out, cur)
}

var goDirective = regexp.MustCompile(`(?m)^go (\d+)\.(\d+)(?:\.(\d+))?\s*$`)

// checkDockerfile returns the Dockerfile's problems and the facts other checks compare.
func checkDockerfile(src []byte, goMod []byte, target map[string]string) (problems, dockerfileFacts) {
	var p problems
	var facts dockerfileFacts
	stages, err := parseStages(src)
	if err != nil {
		p.add("%v", err)
		return p, facts
	}
	if len(stages) < 2 {
		p.add("want a multi-stage build (a build stage and a small final stage), got %d stage(s)", len(stages))
		return p, facts
	}
	names := map[string]bool{}
	for _, s := range stages {
		names[s.name] = s.name != ""
		for _, n := range s.nodes {
			if instruction(n) == "healthcheck" {
				p.add("line %d: HEALTHCHECK: Kubernetes probes check health; the image must not", n.StartLine)
			}
		}
		if names[s.base] || s.base == "scratch" {
			continue
		}
		ref, digest := s.base, ""
		if i := strings.Index(ref, "@"); i >= 0 {
			ref, digest = ref[:i], ref[i+1:]
		}
		tag := ""
		if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
			tag = ref[i+1:]
		}
		if digest == "" && (tag == "" || tag == "latest") {
			p.add("FROM %s: pin a tag or digest, not latest", s.base)
		}
	}

	// The build stage: a static, reproducible, version-stamped binary.
	var build *goBuild
	var buildStage stage
	for _, s := range stages[:len(stages)-1] {
		gb, err := findGoBuild(s, target)
		if err != nil {
			p.add("%v", err)
		}
		if gb != nil {
			build, buildStage = gb, s
		}
	}
	if build == nil {
		p.add("no build stage runs `go build`")
		return p, facts
	}
	facts.build = build
	if !strings.HasPrefix(buildStage.base, "golang:") {
		p.add("build stage base %s is not the official golang image", buildStage.base)
	} else if m := goDirective.FindSubmatch(goMod); m != nil {
		want := string(m[1]) + "." + string(m[2])
		tag := strings.TrimPrefix(buildStage.base, "golang:")
		if tag != want && !strings.HasPrefix(tag, want+".") && !strings.HasPrefix(tag, want+"-") {
			p.add("build stage %s does not build with Go %s, the go.mod's", buildStage.base, want)
		}
	}
	if build.env["CGO_ENABLED"] != "0" {
		p.add("go build runs with CGO_ENABLED=%q, want 0 for a static binary", build.env["CGO_ENABLED"])
	}
	if !slices.Contains(build.args, "-trimpath") {
		p.add("go build lacks -trimpath: the binary would carry build paths")
	}
	ldflags, _ := build.flag("-ldflags")
	if !strings.Contains(ldflags, "-X "+versionPackage+"="+target["VERSION"]) {
		p.add("go build -ldflags %q does not stamp %s from the VERSION build argument", ldflags, versionPackage)
	}
	if !slices.Contains(build.args, "./cmd/noderuntime") {
		p.add("go build does not build ./cmd/noderuntime: %q", build.args)
	}
	facts.output, _ = build.flag("-o")

	// The final stage: distroless static or scratch, non-root, nothing to run a shell with.
	final := stages[len(stages)-1]
	if final.base != "scratch" && !strings.HasPrefix(final.base, "gcr.io/distroless/static") {
		p.add("final stage base %s is neither distroless static nor scratch", final.base)
	}
	copied := false
	for _, n := range final.nodes {
		a := args(n)
		switch instruction(n) {
		case "user":
			facts.user = strings.Join(a, " ")
		case "expose":
			facts.expose = append(facts.expose, a...)
		case "entrypoint":
			if !n.Attributes["json"] {
				p.add("ENTRYPOINT is in shell form: the final image has no shell")
			}
			facts.entrypoint = a
		case "cmd":
			if !n.Attributes["json"] {
				p.add("CMD is in shell form: the final image has no shell")
			}
			facts.cmd = a
		case "run":
			p.add("line %d: RUN in the final stage: the image has no shell", n.StartLine)
		case "copy":
			if slices.Contains(n.Flags, "--from="+build.stage) && len(a) == 2 && a[0] == facts.output && a[1] == "/noderuntime" {
				copied = true
			}
		}
	}
	if !copied {
		p.add("the final stage does not COPY --from=%s %s /noderuntime", build.stage, facts.output)
	}
	uid, _, _ := strings.Cut(facts.user, ":")
	n, err := strconv.Atoi(uid)
	switch {
	case facts.user == "":
		p.add("the final stage sets no USER: the container would run as root")
	case err != nil:
		p.add("USER %q is not numeric: Kubernetes' runAsNonRoot can only verify a numeric user", facts.user)
	case n == 0:
		p.add("USER %q is root", facts.user)
	default:
		facts.uid = n
	}
	if !slices.Equal(facts.entrypoint, []string{"/noderuntime"}) {
		p.add("ENTRYPOINT %q, want [\"/noderuntime\"]", facts.entrypoint)
	}
	if !slices.Equal(facts.cmd, []string{"serve"}) {
		p.add("CMD %q, want [\"serve\"]", facts.cmd)
	}
	return p, facts
}

func readDockerfile(t *testing.T) ([]byte, []byte) {
	t.Helper()
	src, err := os.ReadFile(dockerfilePath)
	if err != nil {
		t.Fatal(err)
	}
	goMod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	return src, goMod
}

var testTarget = map[string]string{"TARGETOS": "linux", "TARGETARCH": "amd64", "VERSION": buildVersion}

func TestDockerfileBuildsASmallStaticNonRootImage(t *testing.T) {
	t.Parallel()
	src, goMod := readDockerfile(t)
	p, facts := checkDockerfile(src, goMod, testTarget)
	for _, problem := range p {
		t.Error(problem)
	}
	if t.Failed() {
		return
	}
	// The image and the manifests agree: the user Kubernetes enforces, the ports it
	// probes and scrapes, and the subcommand it starts.
	if facts.uid != nonRootUID {
		t.Errorf("Dockerfile USER %d, the manifests run as %d", facts.uid, nonRootUID)
	}
	for _, port := range []string{"8080", "9090"} {
		if !slices.Contains(facts.expose, port) {
			t.Errorf("Dockerfile does not EXPOSE %s", port)
		}
	}
	b, _ := renderBundle(t, "base")
	if c := b.Deployments[0].Spec.Template.Spec.Containers[0]; !slices.Equal(c.Args, facts.cmd) {
		t.Errorf("Deployment args %q differ from the image's CMD %q", c.Args, facts.cmd)
	}
}

func TestDockerfileChecksCatchMistakes(t *testing.T) {
	t.Parallel()
	src, goMod := readDockerfile(t)
	cases := []struct {
		name, old, new, says string
	}{
		{"a fat final image", "FROM gcr.io/distroless/static-debian12:nonroot", "FROM golang:1.26.8", "final stage base"},
		{"root", "USER 65532:65532", "USER 0", "is root"},
		{"a named user", "USER 65532:65532", "USER nonroot", "not numeric"},
		{"no user", "USER 65532:65532\n", "", "no USER"},
		{"a health check", "ENTRYPOINT", "HEALTHCHECK CMD [\"/noderuntime\", \"version\"]\nENTRYPOINT", "HEALTHCHECK"},
		{"cgo", "CGO_ENABLED=0", "CGO_ENABLED=1", "CGO_ENABLED"},
		{"build paths", "-trimpath ", "", "-trimpath"},
		{"no version stamp", "-X github.com/noderuntime/noderuntime/internal/buildinfo.Version=$VERSION", "", "does not stamp"},
		{"a hard-coded version", "Version=$VERSION", "Version=1.0.0", "does not stamp"},
		{"an unpinned base", "golang:1.26.8 AS build", "golang:latest AS build", "not latest"},
		{"another Go", "golang:1.26.8 AS build", "golang:1.24.3 AS build", "does not build with Go"},
		{"a shell entrypoint", `ENTRYPOINT ["/noderuntime"]`, "ENTRYPOINT /noderuntime", "shell form"},
		{"a single stage", "COPY --from=build /out/noderuntime /noderuntime", "", "does not COPY"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			broken := strings.Replace(string(src), c.old, c.new, 1)
			if broken == string(src) {
				t.Fatalf("the Dockerfile has no %q to break", c.old)
			}
			got, _ := checkDockerfile([]byte(broken), goMod, testTarget)
			if !slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, c.says) }) {
				t.Fatalf("checkDockerfile did not report %q; it reported %q", c.says, got)
			}
		})
	}
}
