package e2e

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestDocsNameOnlyTestsThatExist keeps docs/reliability.md honest: every test it names
// as the proof of a promise exists in the repository, and every test of this package is
// named there (a new reliability test says which promise it proves).
func TestDocsNameOnlyTestsThatExist(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/reliability.md")
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]bool{}
	for _, m := range regexp.MustCompile("`((?:Test|Fuzz)[A-Za-z0-9_]+)`").FindAllSubmatch(doc, -1) {
		named[string(m[1])] = true
	}
	if len(named) < 20 {
		t.Fatalf("docs/reliability.md names only %d tests", len(named))
	}

	exist, ours := repositoryTests(t)
	for name := range named {
		if !exist[name] {
			t.Errorf("docs/reliability.md names %s, which does not exist", name)
		}
	}
	for name := range ours {
		if !named[name] && name != "TestMain" {
			t.Errorf("%s is not named in docs/reliability.md: say which promise it proves", name)
		}
	}
}

// repositoryTests returns every Test, Fuzz and Benchmark function of the repository
// (build tags or not, the deploy module included), and the Test and Fuzz functions of
// this package.
func repositoryTests(t *testing.T) (exist, ours map[string]bool) {
	t.Helper()
	exist = map[string]bool{}
	ours = map[string]bool{}
	fset := token.NewFileSet()
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") && path != "../.." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if ok && fn.Recv == nil && strings.HasPrefix(fn.Name.Name, "Benchmark") {
				exist[fn.Name.Name] = true
			}
			if name, ok := testName(decl); ok {
				exist[name] = true
				if filepath.Dir(path) == filepath.Join("..", "..", "internal", "e2e") {
					ours[name] = true
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return exist, ours
}

// docTestName is a test, fuzz target or benchmark named in prose: TestX, FuzzX,
// BenchmarkX (a capital, digit or underscore after the prefix, so "Testing" is not one).
var docTestName = regexp.MustCompile(`\b(?:Test|Fuzz|Benchmark)[A-Z0-9_][A-Za-z0-9_]*`)

// namedTests returns the tests doc names, once per mention.
func namedTests(doc []byte) []string {
	var out []string
	for _, m := range docTestName.FindAll(doc, -1) {
		out = append(out, string(m))
	}
	return out
}

// TestEveryDocNamesOnlyTestsThatExist extends the check above to the README, every page
// of docs/ and the Makefile: a test, fuzz target or benchmark they name (as the proof of
// a claim, or in a command) exists, so a renamed test cannot leave a doc pointing at
// nothing.
func TestEveryDocNamesOnlyTestsThatExist(t *testing.T) {
	t.Parallel()
	docs, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	docs = append(docs, "../../README.md", "../../Makefile")
	exist, _ := repositoryTests(t)
	total := 0
	for _, path := range docs {
		doc, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range namedTests(doc) {
			total++
			if !exist[name] {
				t.Errorf("%s names %s, which does not exist", strings.TrimPrefix(path, "../../"), name)
			}
		}
	}
	if total < 100 {
		t.Fatalf("the docs name only %d tests: is the pattern still right?", total)
	}
}

// testName returns the name of a top-level Test or Fuzz function.
func testName(decl ast.Decl) (string, bool) {
	fn, ok := decl.(*ast.FuncDecl)
	if !ok || fn.Recv != nil {
		return "", false
	}
	name := fn.Name.Name
	return name, strings.HasPrefix(name, "Test") || strings.HasPrefix(name, "Fuzz")
}

// TestTheDocsListEveryCodeTheServiceHas holds the pages people read to the codes the Go
// constants have, as TestTheOpenAPIEnumsListEveryCodeTheServiceHas holds the OpenAPI
// enums: the error codes of failure outcomes in docs/nodes.md, the problem codes of
// docs/problems.md's table, and the authorization store's reasons in
// docs/authorizations.md.
func TestTheDocsListEveryCodeTheServiceHas(t *testing.T) {
	t.Parallel()
	read := func(path string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join("..", "..", path))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// between returns the text of doc from the first start to the next end after it.
	between := func(path, doc, start, end string) string {
		t.Helper()
		_, rest, ok := strings.Cut(doc, start)
		if ok {
			rest, _, ok = strings.Cut(rest, end)
		}
		if !ok {
			t.Fatalf("%s: no text between %q and %q", path, start, end)
		}
		return rest
	}
	codes := func(text string, re *regexp.Regexp) []string {
		var out []string
		for _, m := range re.FindAllStringSubmatch(text, -1) {
			out = append(out, m[1])
		}
		return out
	}
	snake := regexp.MustCompile("`([a-z_]+)`")
	cases := []struct {
		path, dir string
		listed    func(doc string) []string
		keep      func(name, typ, value string) bool
	}{
		{"docs/nodes.md", "internal/outcomes",
			func(doc string) []string { return codes(between("docs/nodes.md", doc, "Codes: ", "."), snake) },
			func(name, _, _ string) bool { return strings.HasPrefix(name, "Code") }},
		{"docs/problems.md", "internal/httpapi",
			func(doc string) []string {
				return codes(doc, regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\| [0-9]{3} \\|"))
			},
			func(_, typ, _ string) bool { return typ == "ProblemCode" }},
		{"docs/authorizations.md", "internal/authstore",
			func(doc string) []string {
				return codes(between("docs/authorizations.md", doc, "add a `reason`:", "What the HTTP layer"), snake)
			},
			func(_, typ, value string) bool { return typ == "ErrorCode" && !strings.HasPrefix(value, "login_") }},
	}
	for _, c := range cases {
		listed := c.listed(read(c.path))
		consts := stringConstants(t, filepath.Join("..", "..", c.dir), c.keep)
		if len(consts) < 5 || len(listed) < 5 {
			t.Fatalf("%s: %d constants, %d codes in %s: is the pattern still right?", c.dir, len(consts), len(listed), c.path)
		}
		values := map[string]bool{}
		for name, value := range consts {
			values[value] = true
			if !slices.Contains(listed, value) {
				t.Errorf("%s.%s = %q is not listed in %s", c.dir, name, value, c.path)
			}
		}
		for _, value := range listed {
			if !values[value] {
				t.Errorf("%s lists %q, which no constant of %s is", c.path, value, c.dir)
			}
		}
	}
}
