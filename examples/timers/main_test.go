package main

import (
	"strings"
	"testing"
	"time"
)

func TestTimers(t *testing.T) {
	var out strings.Builder
	run(&out, 20*time.Millisecond, 5)
	want := "tick 0\ntick 1\ntick 2\ntick 3\ntick 4\nstopped\n"
	if out.String() != want {
		t.Fatalf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}
