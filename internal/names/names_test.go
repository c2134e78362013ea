package names

import (
	"regexp"
	"testing"
)

// The regular expressions the loops replaced, the reference they must agree with.
var (
	tenantID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	domain   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	keyID    = regexp.MustCompile(`^[A-Za-z0-9._-]{1,32}$`)
)

func agree(t *testing.T, s string) {
	t.Helper()
	for _, c := range []struct {
		name string
		got  bool
		re   *regexp.Regexp
	}{
		{"tenant ID", ValidLead(s, 63), tenantID},
		{"domain", ValidLead(s, 128), domain},
		{"key ID", Valid(s, 32), keyID},
	} {
		if want := c.re.MatchString(s); c.got != want {
			t.Errorf("%s %q: %v, the expression says %v", c.name, s, c.got, want)
		}
	}
}

func TestNamesAgreeWithTheExpressions(t *testing.T) {
	long := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = 'a'
		}
		return string(b)
	}
	for _, s := range []string{
		"", "a", "A", "0", "acme", "acme-eu.1_x", ".acme", "_acme", "-acme", "acme ", " acme",
		"acme\n", "ac/me", "acmé", "ac\x00me", "ACME.", "a.b-c_d",
		// The last letter and digit of each range, first and inside.
		"z", "Z", "9", "acme9", "ACMEz", "9Z",
		long(32), long(33), long(63), long(64), long(128), long(129),
		// The bytes just outside each range of letters and digits.
		"a/b", "a:b", "a@b", "a[b", "a`b", "a{b", "/a", ":a", "@a", "[a", "`a", "{a",
	} {
		agree(t, s)
	}
}

func FuzzNamesAgreeWithTheExpressions(f *testing.F) {
	for _, s := range []string{"", "acme", ".acme", "acme\n", "acmé", "a-b.c_d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { agree(t, s) })
}
