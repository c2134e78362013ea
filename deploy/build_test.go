package deploy

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// maxBinaryBytes keeps the image under issue 7's 30 MB: distroless static adds about 2 MB.
const maxBinaryBytes = 25 << 20

// TestDockerfileGoBuildMakesAStaticStampedBinary runs the Dockerfile's own `go build`
// command, as the build stage would, for this machine's platform, and checks the result:
// statically linked, built with CGO_ENABLED=0 and -trimpath, the version stamped, small.
func TestDockerfileGoBuildMakesAStaticStampedBinary(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("../cmd/noderuntime"); err != nil {
		t.Fatalf("the binary's package is missing: %v", err)
	}
	src, goMod := readDockerfile(t)
	target := map[string]string{"TARGETOS": runtime.GOOS, "TARGETARCH": runtime.GOARCH, "VERSION": buildVersion}
	p, facts := checkDockerfile(src, goMod, target)
	if len(p) != 0 || facts.build == nil {
		t.Fatalf("the Dockerfile has problems: %q", p)
	}

	out := filepath.Join(t.TempDir(), "noderuntime")
	args := append([]string(nil), facts.build.args...)
	for i := range args {
		if args[i] == "-o" && i+1 < len(args) {
			args[i+1] = out
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = ".."
	cmd.Env = os.Environ()
	for k, v := range facts.build.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	started := time.Now()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	t.Logf("go %s took %s", strings.Join(args, " "), time.Since(started).Round(time.Second))

	info, err := buildinfo.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if settings["CGO_ENABLED"] != "0" {
		t.Errorf("binary built with CGO_ENABLED=%q", settings["CGO_ENABLED"])
	}
	if settings["-trimpath"] != "true" {
		t.Errorf("binary built without -trimpath")
	}
	// Go does not record -ldflags under -trimpath; look for the stamped value itself.
	if bin, err := os.ReadFile(out); err != nil {
		t.Fatal(err)
	} else if !bytes.Contains(bin, []byte(buildVersion)) {
		t.Errorf("binary does not contain the stamped version %q", buildVersion)
	}

	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			t.Error("binary asks for a dynamic loader: it would not start on distroless static or scratch")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) != 0 {
		t.Errorf("binary links shared libraries %v", libs)
	}

	st, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("binary size: %d bytes (%.1f MiB)", st.Size(), float64(st.Size())/(1<<20))
	if st.Size() > maxBinaryBytes {
		t.Errorf("binary is %d bytes, over %d: the image would pass 30 MB", st.Size(), maxBinaryBytes)
	}

	// The stamp reaches the program, not only the build metadata.
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	version := exec.CommandContext(ctx, out, "version")
	version.Env = []string{} // version needs no configuration
	b, err := version.CombinedOutput()
	if err != nil {
		t.Fatalf("noderuntime version: %v\n%s", err, b)
	}
	if !strings.Contains(string(b), buildVersion) {
		t.Errorf("noderuntime version printed %q, want it to contain %q", b, buildVersion)
	}
}
