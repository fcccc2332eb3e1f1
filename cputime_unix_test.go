//go:build unix

package meerkat_test

import (
	"syscall"
	"testing"
	"time"
)

// mgrCPUTime is the process's user plus system CPU time.
func mgrCPUTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
