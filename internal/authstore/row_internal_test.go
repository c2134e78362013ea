package authstore

import "testing"

func TestNormalizeIDLowercasesAUUIDAndRefusesAnythingElse(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"7d0c1a2b-0000-4000-8000-000000000001": "7d0c1a2b-0000-4000-8000-000000000001",
		"7D0C1A2B-0000-4000-8000-0000000000AB": "7d0c1a2b-0000-4000-8000-0000000000ab",
		"7d0c1a2b-0000-4000-8000-00000000000G": "",
		"7d0c1a2b00000-4000-8000-000000000001": "",
		"7d0c1a2b-0000-4000-8000-00000000001":  "",
		"":                                     "",
	} {
		got, ok := normalizeID(in)
		if got != want || ok != (want != "") {
			t.Errorf("normalizeID(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}
