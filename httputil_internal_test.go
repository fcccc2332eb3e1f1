package meerkat

import (
	"bytes"
	"strings"
	"testing"
)

// TestHTTPMatchStepsAreBounded: HTTPMatch's work is bounded by a count,
// not a clock: on patterns that make naive backtracking exponential (or
// polynomial of high degree), it takes at most one step per wildcard per
// byte of the subject, plus one per wildcard.
func TestHTTPMatchStepsAreBounded(t *testing.T) {
	as := bytes.Repeat([]byte("a"), 100_000)
	slashy := bytes.Repeat([]byte("a/"), 50_000)
	mixed := bytes.Repeat([]byte("ab/?a#"), 20_000)
	cases := []struct {
		pattern string
		s       []byte
		ok      bool
	}{
		{"*a*a*a*a*a*b", as, false},
		{"#a#a#a#a#a#b", as, false},
		{"*a#a*a#a*a#b", as, false},
		{"*a*a*a*a*a*a", as, true},
		{"#?#?#?#?#?#b", slashy, false},
		{"*?*?*?*?*?*b", slashy, false},
		{"#/*/#/*/#/*b", slashy, false},
		{"#a/#a/#a/#a/#b", slashy, false},
		{"*?#?*?#?*?#?x", mixed, false},
		{"#" + strings.Repeat("?", 10) + "*#c", mixed, false},
		{strings.Repeat("*a", 30) + "b", as, false}, // more stars than fit on the stack
		{strings.Repeat("#a", 30) + "b", as, false},
	}
	for _, tc := range cases {
		ok, steps := httpMatch(tc.pattern, tc.s, make([][]byte, 8))
		if ok != tc.ok {
			t.Errorf("httpMatch(%q, %d bytes) = %v, want %v", tc.pattern, len(tc.s), ok, tc.ok)
		}
		stars := strings.Count(tc.pattern, "*") + strings.Count(tc.pattern, "#")
		if limit := (stars + 1) * (len(tc.s) + 2); steps > limit {
			t.Errorf("httpMatch(%q, %d bytes) took %d steps, more than %d", tc.pattern, len(tc.s), steps, limit)
		}
	}
}
