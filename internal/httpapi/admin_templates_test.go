package httpapi

import "testing"

// The admin templates are parsed on first use, so a template that does not parse must
// fail here rather than on an operator's first page.
func TestAdminTemplatesParse(t *testing.T) {
	pages := adminTemplates()
	for _, name := range []string{"login", "list", "new", "reauthorize", "delete", "message", "confirm_login", "to_login"} {
		p, ok := pages[name]
		if !ok || p.Lookup("layout") == nil || p.Lookup("content") == nil {
			t.Errorf("page %q: parsed %v, templates %s", name, ok, p.DefinedTemplates())
		}
	}
	if len(pages) != 8 {
		t.Errorf("%d pages, want 8", len(pages))
	}
}
