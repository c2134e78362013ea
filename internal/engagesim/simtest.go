package engagesim

import "testing"

// Start serves a new simulator on an httptest server for the length of a test.
func Start(tb testing.TB, cfg Config) *Sim {
	tb.Helper()
	s := New(cfg).StartHTTPTest()
	tb.Cleanup(s.Close)
	return s
}
