package e2e

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
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

	exist := map[string]bool{} // every test function of the repository, build tags or not
	ours := map[string]bool{}  // those of this package
	fset := token.NewFileSet()
	err = filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
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

// testName returns the name of a top-level Test or Fuzz function.
func testName(decl ast.Decl) (string, bool) {
	fn, ok := decl.(*ast.FuncDecl)
	if !ok || fn.Recv != nil {
		return "", false
	}
	name := fn.Name.Name
	return name, strings.HasPrefix(name, "Test") || strings.HasPrefix(name, "Fuzz")
}
