package meerkat_test

// Shared test machinery: the drivers to run on, a Manager per test with an
// event-order checker on every handler, polling until a condition holds, and
// resource baselines (goroutines, descriptors) for leak checks.

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meerkat-net/meerkat"
	"github.com/meerkat-net/meerkat/internal/driver"
	"github.com/meerkat-net/meerkat/internal/testcert"
)

// TestMain starts the runtime's network poller before any test takes a
// resource baseline, so that its descriptors count as already there.
func TestMain(m *testing.M) {
	if ln, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		ln.Close()
	}
	os.Exit(m.Run())
}

// testDrivers lists the drivers to test: every driver of this platform, or
// only the one MEERKAT_DRIVER names.
func testDrivers() []string {
	if d := os.Getenv("MEERKAT_DRIVER"); d != "" {
		return []string{d}
	}
	return driver.Names()
}

// forEachDriver runs fn as a subtest per driver.
func forEachDriver(t *testing.T, fn func(t *testing.T, drv string)) {
	for _, drv := range testDrivers() {
		t.Run(drv, func(t *testing.T) { fn(t, drv) })
	}
}

// forEachDriverTLS runs fn as a subtest per driver, plain and TLS.
func forEachDriverTLS(t *testing.T, fn func(t *testing.T, drv string, useTLS bool)) {
	for _, drv := range testDrivers() {
		for _, useTLS := range []bool{false, true} {
			name := drv + "/plain"
			if useTLS {
				name = drv + "/tls"
			}
			t.Run(name, func(t *testing.T) { fn(t, drv, useTLS) })
		}
	}
}

// env is one test's Manager, with every handler passed through wrap checked
// for event order. Cleanup closes the Manager and then verifies the order.
type env struct {
	t      testing.TB
	m      *meerkat.Manager
	drv    string
	useTLS bool
	chk    *checker
}

func newEnv(t testing.TB, drv string, useTLS bool) *env {
	t.Helper()
	m, err := meerkat.NewManagerDriver(drv)
	if err != nil {
		t.Fatalf("driver %s: %v", drv, err)
	}
	m.TLSConfig = testcert.ServerConfig()
	m.TLSConfig.RootCAs = testcert.Default.CA.Pool
	m.Logger = slog.New(slog.NewTextHandler(&testLogWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	e := &env{t: t, m: m, drv: drv, useTLS: useTLS, chk: newChecker(t)}
	t.Cleanup(func() {
		m.Close()
		e.chk.verify(true)
	})
	return e
}

// scheme is "tcp" or, for TLS tests, "https" (TLS over TCP with nothing
// else: the core has no HTTP).
func (e *env) scheme() string {
	if e.useTLS {
		return "https"
	}
	return "tcp"
}

// listen opens a checked listener on a free loopback port and returns it
// with its address.
func (e *env) listen(fn meerkat.Handler) (*meerkat.Conn, string) {
	e.t.Helper()
	l, err := e.m.Listen(e.scheme()+"://127.0.0.1:0", e.chk.wrap(fn))
	if err != nil {
		e.t.Fatalf("listen: %v", err)
	}
	return l, l.LocalAddr().String()
}

// connect opens a checked client connection to addr ("host:port").
func (e *env) connect(addr string, fn meerkat.Handler) *meerkat.Conn {
	e.t.Helper()
	c, err := e.m.Connect(e.scheme()+"://"+addr, e.chk.wrap(fn))
	if err != nil {
		e.t.Fatalf("connect: %v", err)
	}
	return c
}

// dialPeer connects a blocking standard-library peer to addr, with TLS for
// TLS tests (trusting the test CA).
func (e *env) dialPeer(addr string) net.Conn {
	e.t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		e.t.Fatalf("dial: %v", err)
	}
	if e.useTLS {
		cfg := testcert.ClientConfig()
		cfg.ServerName, _, _ = net.SplitHostPort(addr)
		return tls.Client(nc, cfg)
	}
	return nc
}

// pollUntil polls until cond holds, failing the test after timeout.
func (e *env) pollUntil(timeout time.Duration, what string, cond func() bool) {
	e.t.Helper()
	pollUntil(e.t, e.m, timeout, what, cond)
}

func pollUntil(t testing.TB, m *meerkat.Manager, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		m.Poll(10 * time.Millisecond)
	}
}

// checker records every connection's events and verifies the lifecycle
// invariant: exactly one EvOpen, first; at most one EvClose, last; nothing
// after it. With all set, every connection must have had its EvClose.
type checker struct {
	t     testing.TB
	mu    sync.Mutex
	conns map[*meerkat.Conn]*connRecord
	order []*meerkat.Conn
}

type connRecord struct {
	id     uint64
	events []meerkat.Event
	errors []error
}

func newChecker(t testing.TB) *checker {
	return &checker{t: t, conns: make(map[*meerkat.Conn]*connRecord)}
}

// wrap returns fn with every event recorded first (fn may be nil).
func (k *checker) wrap(fn meerkat.Handler) meerkat.Handler {
	return func(c *meerkat.Conn, ev meerkat.Event, data any) {
		k.mu.Lock()
		r := k.conns[c]
		if r == nil {
			r = &connRecord{id: c.ID()}
			k.conns[c] = r
			k.order = append(k.order, c)
		}
		if ev != meerkat.EvPoll { // EvPoll is too frequent to keep
			r.events = append(r.events, ev)
		}
		if ev == meerkat.EvError {
			err, _ := data.(error)
			r.errors = append(r.errors, err)
		}
		k.mu.Unlock()
		if fn != nil {
			fn(c, ev, data)
		}
	}
}

// events returns the events recorded for c, without EvPoll.
func (k *checker) events(c *meerkat.Conn) []meerkat.Event {
	k.mu.Lock()
	defer k.mu.Unlock()
	if r := k.conns[c]; r != nil {
		return slices.Clone(r.events)
	}
	return nil
}

// errorsOf returns the errors delivered to c.
func (k *checker) errorsOf(c *meerkat.Conn) []error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if r := k.conns[c]; r != nil {
		return slices.Clone(r.errors)
	}
	return nil
}

// closed reports whether c has had its EvClose.
func (k *checker) closed(c *meerkat.Conn) bool {
	ev := k.events(c)
	return len(ev) > 0 && ev[len(ev)-1] == meerkat.EvClose
}

// count returns how many connections saw ev (accepted ones, say, with
// meerkat.EvAccept).
func (k *checker) count(ev meerkat.Event) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for _, r := range k.conns {
		if slices.Contains(r.events, ev) {
			n++
		}
	}
	return n
}

// verify checks every connection's event order; with all, it also requires
// every connection to be closed.
func (k *checker) verify(all bool) {
	k.t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, c := range k.order {
		r := k.conns[c]
		if msg := lifecycleViolation(r.events, all); msg != "" {
			k.t.Errorf("conn %d: %s; events: %v", r.id, msg, summarize(r.events))
		}
	}
}

func lifecycleViolation(ev []meerkat.Event, mustBeClosed bool) string {
	if len(ev) == 0 || ev[0] != meerkat.EvOpen {
		return "first event is not EvOpen"
	}
	opens, closes := 0, 0
	for i, e := range ev {
		switch e {
		case meerkat.EvOpen:
			opens++
		case meerkat.EvClose:
			closes++
			if i != len(ev)-1 {
				return "events after EvClose"
			}
		}
	}
	switch {
	case opens != 1:
		return fmt.Sprintf("%d EvOpen", opens)
	case closes > 1:
		return fmt.Sprintf("%d EvClose", closes)
	case mustBeClosed && closes == 0:
		return "no EvClose"
	}
	return ""
}

// summarize shortens runs of one event ("EvRead x12").
func summarize(ev []meerkat.Event) string {
	var b strings.Builder
	for i := 0; i < len(ev); {
		j := i
		for j < len(ev) && ev[j] == ev[i] {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(ev[i].String())
		if j-i > 1 {
			fmt.Fprintf(&b, "x%d", j-i)
		}
		i = j
	}
	return b.String()
}

// testLogWriter sends the Manager's log to the test's log.
type testLogWriter struct {
	t  testing.TB
	mu sync.Mutex
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// resources is a snapshot of what a leak would grow.
type resources struct {
	goroutines int
	fds        int // -1 where descriptors cannot be counted
}

func snapshot() resources {
	return resources{goroutines: runtime.NumGoroutine(), fds: openFDs()}
}

// openFDs counts the process's open descriptors (Linux only: under Wine,
// /proc/self/fd would list Wine's own descriptors).
func openFDs() int {
	if runtime.GOOS != "linux" {
		return -1
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// expectBaseline waits (up to timeout) for goroutines and descriptors to be
// back at base, then fails with the difference. Goroutines of the test's own
// peers may take a moment to return after their sockets close.
func expectBaseline(t testing.TB, base resources, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		now := snapshot()
		if now.goroutines <= base.goroutines && now.fds <= base.fds {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("resources not back to baseline: goroutines %d (was %d), descriptors %d (was %d)\n%s",
				now.goroutines, base.goroutines, now.fds, base.fds, buf[:n])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Differences of Wine 8 from Windows that tests allow for (see
// .ci/wine/README.md), each named where it is used.
const (
	// Go's UDP sockets call WSAIoctl(SIO_UDP_CONNRESET), which Wine 8 does
	// not support (WSAEOPNOTSUPP): no UDP socket can be opened.
	wineNoUDP = "Wine 8 cannot open Go's UDP sockets (SIO_UDP_CONNRESET is unsupported)"
	// A read issued after a reset arrived may see EOF instead of
	// WSAECONNRESET.
	wineResetAsEOF = "Wine 8 may report a reset that arrived before the read as EOF"
	// NtSetInformationFile(FileDispositionInformationEx), the POSIX-semantics
	// delete Go's os.RemoveAll uses for a directory's entries, is
	// STATUS_NOT_IMPLEMENTED in Wine 8 and Go does not fall back on that
	// status: removing a non-empty directory (t.TempDir's cleanup) fails
	// with "unlinkat ...: Invalid function". os.Remove (DeleteFileW,
	// RemoveDirectoryW) works.
	wineNoPosixDelete = "Wine 8 lacks FileDispositionInformationEx: os.RemoveAll of a non-empty directory fails with \"Invalid function\""
	// CreateSymbolicLinkW is a stub in Wine 8: os.Symlink reports success
	// and creates nothing.
	wineNoSymlinks = "Wine 8's CreateSymbolicLinkW is a stub: os.Symlink succeeds without creating the link"
	// The Linux programs the tests use as peers (mosquitto and its
	// clients) cannot be started by the Windows build; their cases run
	// in the Linux suite.
	wineNoLinuxPeers = "the Windows build cannot start Linux peer programs (mosquitto); those cases run on Linux"
)

// skipOnWine skips a test that depends on something Wine lacks.
func skipOnWine(t testing.TB, why string) {
	t.Helper()
	if onWine() {
		t.Skip(why)
	}
}

// resetPeer closes a peer's connection with SO_LINGER 0, which sends a RST.
func resetPeer(t testing.TB, nc net.Conn) {
	t.Helper()
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	tcp, ok := nc.(*net.TCPConn)
	if !ok {
		t.Fatalf("resetPeer: %T is not a TCP connection", nc)
	}
	if err := tcp.SetLinger(0); err != nil {
		t.Fatalf("SO_LINGER: %v", err)
	}
	tcp.Close()
}

// echo is a handler that sends back whatever it receives.
func echo(c *meerkat.Conn, ev meerkat.Event, _ any) {
	if ev == meerkat.EvRead {
		c.Send(c.Recv().Bytes())
		c.Recv().Consume(c.Recv().Len())
	}
}

var _ = io.EOF
