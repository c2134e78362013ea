// Package names checks the identifiers the service takes from its configuration and its
// callers: tenant IDs, encryption key IDs and Engage domains. It is a byte loop, not a
// regular expression: a compiled expression stays in the heap for the life of the
// process, hundreds of pointer-holding objects that every garbage collection marks
// again (docs/performance.md).
package names

// Valid reports whether s is 1 to max bytes, each an ASCII letter or digit, '.', '_' or
// '-'.
func Valid(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !nameByte(s[i]) {
			return false
		}
	}
	return true
}

// ValidLead is Valid with a letter or digit first.
func ValidLead(s string, max int) bool {
	return Valid(s, max) && alnum(s[0])
}

func alnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func nameByte(c byte) bool { return alnum(c) || c == '.' || c == '_' || c == '-' }
