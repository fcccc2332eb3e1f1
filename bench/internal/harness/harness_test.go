package harness

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary serve as the harness's child processes.
func TestMain(m *testing.M) {
	MaybeServe()
	os.Exit(m.Run())
}

// TestIdleMemSmall runs the idle-memory harness on every server with 100
// connections: each server must hold exactly those connections open at the
// measurement, and the report must cover every server and the targets.
func TestIdleMemSmall(t *testing.T) {
	results, err := RunIdleMem(IdleMemConfig{Kinds: Kinds, Conns: 100, Parallel: 8})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != len(Kinds) {
		t.Fatalf("%d results for %d servers", len(results), len(Kinds))
	}
	for _, r := range results {
		if r.After.Conns != 100 || r.Before.Conns != 0 {
			t.Errorf("%s: connections before/after = %d/%d, want 0/100", r.Kind, r.Before.Conns, r.After.Conns)
		}
		if r.Before.RSSKiB <= 0 || r.After.RSSKiB <= 0 {
			t.Errorf("%s: RSS not measured: %d -> %d KiB", r.Kind, r.Before.RSSKiB, r.After.RSSKiB)
		}
	}
	var b strings.Builder
	WriteIdleMemReport(&b, results)
	for _, k := range Kinds {
		if !strings.Contains(b.String(), "| "+string(k)+" |") {
			t.Errorf("report has no row for %s:\n%s", k, b.String())
		}
	}
	if !strings.Contains(b.String(), "no goroutine per idle connection") {
		t.Errorf("report does not check the epoll target:\n%s", b.String())
	}
	t.Logf("\n%s", b.String())
}

// TestIdleMemProfile checks that a server writes a heap profile on request.
func TestIdleMemProfile(t *testing.T) {
	dir := t.TempDir()
	results, err := RunIdleMem(IdleMemConfig{Kinds: []Kind{MeerkatEpoll}, Conns: 10, ProfileDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(results[0].Profile)
	if err != nil || fi.Size() == 0 {
		t.Fatalf("heap profile: %v (%v)", err, fi)
	}
}

// TestEchoSmall runs the echo throughput harness briefly, without pinning
// (which would move the test process): every echo server must complete
// round trips with the right bytes.
func TestEchoSmall(t *testing.T) {
	cfg := EchoConfig{
		Kinds:    []Kind{MeerkatEpoll, MeerkatPortable, NetEcho, MeerkatEpollTLS},
		Conns:    4,
		Size:     32,
		Warmup:   50 * time.Millisecond,
		Duration: 200 * time.Millisecond,
	}
	results, err := RunEcho(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if r.RoundTrips == 0 {
			t.Errorf("%s: no round trip counted", r.Kind)
		}
	}
	var b strings.Builder
	WriteEchoReport(&b, cfg, results)
	t.Logf("\n%s", b.String())
}

// TestEchoRejectsHTTP checks that the echo harness refuses a server that
// does not echo.
func TestEchoRejectsHTTP(t *testing.T) {
	if _, err := RunEcho(EchoConfig{Kinds: []Kind{NetHTTP}, Conns: 1, Size: 32}); err == nil {
		t.Fatal("echo run against net/http succeeded")
	}
}

// TestParseKinds checks the server list syntax.
func TestParseKinds(t *testing.T) {
	ks, err := ParseKinds("meerkat-epoll, nethttp-tls")
	if err != nil || len(ks) != 2 || ks[0] != MeerkatEpoll || ks[1] != NetHTTPTLS {
		t.Fatalf("ParseKinds = %v, %v", ks, err)
	}
	if _, err := ParseKinds("nginx"); err == nil {
		t.Fatal("unknown server accepted")
	}
	if ks, _ := ParseKinds("all"); len(ks) != len(Kinds) {
		t.Fatalf("all = %v", ks)
	}
}
