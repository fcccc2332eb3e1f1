//go:build linux

package meerkat_test

// Linux-only parts of the lifecycle suite.

import (
	"net"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

func init() { lcPendingConnect = lcFullAcceptQueue }

// lcFullAcceptQueue opens a listening socket with a backlog of 0 on
// 127.0.0.1 and fills its accept queue (Linux queues one connection for
// backlog 0 and then drops SYNs), so that a further connect stays pending
// until it times out. It returns the address and a function releasing the
// socket and the connections that fill it (idempotent).
func lcFullAcceptQueue(t *testing.T) (string, func()) {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	var fillers []net.Conn
	var once sync.Once
	release := func() {
		once.Do(func() {
			for _, c := range fillers {
				c.Close()
			}
			syscall.Close(fd)
		})
	}
	fail := func(format string, args ...any) {
		release()
		t.Helper()
		t.Fatalf(format, args...)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		fail("bind: %v", err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		fail("listen: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		fail("getsockname: %v", err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	// Connect until one attempt hangs: then the queue is full. A connect
	// that completes but times out on a loaded machine fills the queue as
	// well, so a timeout always means "full".
	for range 8 {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return addr, release
		}
		fillers = append(fillers, c)
	}
	fail("8 connections to a listener with backlog 0 all succeeded: cannot make a pending connect")
	return "", nil
}
