package httpapi_test

import (
	"regexp"
	"strings"
	"testing"
)

var (
	labelFor  = regexp.MustCompile(`<label for="([^"]+)"`)
	fieldTag  = regexp.MustCompile(`<(input|select|textarea)\b[^>]*>`)
	idAttr    = regexp.MustCompile(`\bid="([^"]+)"`)
	typeField = regexp.MustCompile(`\btype="([^"]+)"`)
)

// TestEveryFieldOfTheAdminPagesHasItsLabel: a screen reader names a field by the label
// whose for= is the field's id, and a click on the label focuses the field. Every
// label must point at a field of its page, and every field a person fills (not a
// hidden one) must have a label.
func TestEveryFieldOfTheAdminPagesHasItsLabel(t *testing.T) {
	s := newAuthServer(t)
	ccID := s.createCC("standalone")
	webexID, _ := s.pendingLogin("support")
	c := s.client(true)
	_, login := s.get(c, s.srv.URL+"/admin/login")
	s.signIn(c, azAcmeKey)
	pages := map[string]string{"sign-in": login}
	for name, path := range map[string]string{
		"list":                 "/admin/",
		"add":                  "/admin/authorizations/new",
		"re-authorize (cc)":    "/admin/authorizations/" + ccID + "/reauthorize",
		"re-authorize (webex)": "/admin/authorizations/" + webexID + "/reauthorize",
		"delete":               "/admin/authorizations/" + ccID + "/delete",
	} {
		_, pages[name] = s.get(c, s.srv.URL+path)
	}
	for name, page := range pages {
		ids := map[string]string{} // a field's id, its tag
		for _, tag := range fieldTag.FindAllString(page, -1) {
			if m := typeField.FindStringSubmatch(tag); m != nil && m[1] == "hidden" {
				continue
			}
			m := idAttr.FindStringSubmatch(tag)
			if m == nil {
				t.Errorf("%s page: a field without an id, so no label names it: %s", name, tag)
				continue
			}
			ids[m[1]] = tag
		}
		labelled := map[string]bool{}
		for _, m := range labelFor.FindAllStringSubmatch(page, -1) {
			if _, ok := ids[m[1]]; !ok {
				t.Errorf("%s page: the label for %q names no field of the page", name, m[1])
			}
			labelled[m[1]] = true
		}
		for id, tag := range ids {
			if !labelled[id] && !strings.Contains(tag, "aria-label") {
				t.Errorf("%s page: no label for the field %s", name, tag)
			}
		}
	}
}

// TestTheListsButtonsNameTheirAuthorization: a screen reader lists a page's links by
// name; "Delete", "Delete", "Delete" says not which. Each row's links name its
// authorization, and the column they are in has a heading.
func TestTheListsButtonsNameTheirAuthorization(t *testing.T) {
	s := newAuthServer(t)
	s.createCC("Billing <bot>")
	s.createCC("Support")
	c := s.client(true)
	list := s.signIn(c, azAcmeKey)
	if strings.Contains(list, "<th></th>") {
		t.Error("a column of the list has no heading")
	}
	for _, name := range []string{"Billing &lt;bot&gt;", "Support"} {
		for _, action := range []string{"Re-authorize", "Delete"} {
			if want := `aria-label="` + action + " " + name + `"`; !strings.Contains(list, want) {
				t.Errorf("no link named %s:\n%s", want, list)
			}
		}
	}
}
