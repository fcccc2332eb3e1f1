package meerkat_test

// Benchmarks: echo round trips (a Meerkat echo server, polled on its own
// goroutine, and a handful of blocking standard-library clients doing
// request-response round trips), and the cost of one Poll iteration with
// many idle connections. Run with
//
//	go test -run '^$' -bench 'BenchmarkEcho|BenchmarkPollIdle' -benchtime 2s -count 3 .
//
// The figures and the machine they were measured on are in BENCHMARKS.md.

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meerkat-net/meerkat"
	"github.com/meerkat-net/meerkat/internal/testcert"
)

// benchClients is the number of client connections of each echo benchmark.
const benchClients = 8

// benchIOTimeout bounds one benchmark's client I/O, so that a server that
// stops answering fails the benchmark instead of hanging it.
const benchIOTimeout = 2 * time.Minute

// BenchmarkEcho measures echo round trips per second (rt/s) and payload
// bytes per second (one request's size counted per round trip) for each
// driver, plain and TLS, with 32-byte and 16 KiB messages. Each of
// benchClients connections sends a message and reads the whole echo before
// sending the next one. Every sub-benchmark checks afterwards that the
// server's goroutine, its connections and the clients are gone.
func BenchmarkEcho(b *testing.B) {
	for _, drv := range testDrivers() {
		for _, useTLS := range []bool{false, true} {
			mode := "plain"
			if useTLS {
				mode = "tls"
			}
			for _, size := range []int{32, 16 << 10} {
				b.Run(fmt.Sprintf("%s/%s/%s", drv, mode, benchSizeName(size)), func(b *testing.B) {
					benchEchoRun(b, drv, useTLS, size)
				})
			}
		}
	}
}

func benchSizeName(n int) string {
	if n >= 1<<10 && n%(1<<10) == 0 {
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

func benchEchoRun(b *testing.B, drv string, useTLS bool, size int) {
	base := snapshot()
	srv := benchStartServer(b, drv, useTLS)
	conns := make([]net.Conn, 0, benchClients)
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
		srv.stop(b)
		expectBaseline(b, base, 10*time.Second)
	}()
	for range benchClients {
		conns = append(conns, benchDial(b, srv.addr, useTLS))
	}

	// Every client checks its first echo, so that a server that returns
	// the wrong bytes cannot produce a figure.
	msg := bytes.Repeat([]byte("meerkat!"), size/8+1)[:size]
	for _, nc := range conns {
		if err := benchRoundTrip(nc, msg, make([]byte, size)); err != nil {
			b.Fatalf("first round trip: %v", err)
		}
	}

	b.SetBytes(int64(size))
	b.ReportAllocs()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, len(conns))
	b.ResetTimer()
	start := time.Now()
	for _, nc := range conns {
		wg.Go(func() {
			buf := make([]byte, size)
			for next.Add(1) <= int64(b.N) {
				if err := benchRoundTrip(nc, msg, buf); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatalf("round trip: %v", err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "rt/s")
}

// benchRoundTrip sends msg and reads its echo into buf.
func benchRoundTrip(nc net.Conn, msg, buf []byte) error {
	if _, err := nc.Write(msg); err != nil {
		return err
	}
	if _, err := io.ReadFull(nc, buf); err != nil {
		return err
	}
	if !bytes.Equal(buf, msg) {
		return fmt.Errorf("echo differs from the %d bytes sent", len(msg))
	}
	return nil
}

// benchDial connects a blocking client, finishing the TLS handshake before
// the clock starts.
func benchDial(b *testing.B, addr string, useTLS bool) net.Conn {
	b.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		b.Fatalf("dial: %v", err)
	}
	if useTLS {
		cfg := testcert.ClientConfig()
		cfg.ServerName, _, _ = net.SplitHostPort(addr)
		tc := tls.Client(nc, cfg)
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			nc.Close()
			b.Fatalf("tls handshake: %v", err)
		}
		nc = tc
	}
	nc.SetDeadline(time.Now().Add(benchIOTimeout))
	return nc
}

// benchServer is an echo server whose Manager lives on its own goroutine:
// the Manager is created, listens, polls and is closed there, as Poll
// requires.
type benchServer struct {
	addr     string
	m        *meerkat.Manager // only for Wakeup, which is safe from any goroutine
	listener uint64
	stopping atomic.Bool
	done     chan struct{}
	accepted atomic.Int64
	closed   atomic.Int64
}

func benchStartServer(b *testing.B, drv string, useTLS bool) *benchServer {
	b.Helper()
	s := &benchServer{done: make(chan struct{})}
	ready := make(chan error, 1)
	go s.run(b, drv, useTLS, ready)
	if err := <-ready; err != nil {
		<-s.done
		b.Fatalf("server: %v", err)
	}
	return s
}

func (s *benchServer) run(b *testing.B, drv string, useTLS bool, ready chan<- error) {
	defer close(s.done)
	m, err := meerkat.NewManagerDriver(drv)
	if err != nil {
		ready <- err
		return
	}
	defer m.Close()
	m.Logger = slog.New(slog.NewTextHandler(&testLogWriter{t: b}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	m.TLSConfig = testcert.ServerConfig()
	scheme := "tcp"
	if useTLS {
		scheme = "https"
	}
	l, err := m.Listen(scheme+"://127.0.0.1:0", s.handle)
	if err != nil {
		ready <- err
		return
	}
	s.addr, s.m, s.listener = l.LocalAddr().String(), m, l.ID()
	ready <- nil
	for !s.stopping.Load() {
		m.Poll(100 * time.Millisecond)
	}
}

// handle echoes what it receives and counts connections.
func (s *benchServer) handle(c *meerkat.Conn, ev meerkat.Event, _ any) {
	switch ev {
	case meerkat.EvAccept:
		s.accepted.Add(1)
	case meerkat.EvRead:
		c.Send(c.Recv().Bytes())
		c.Recv().Consume(c.Recv().Len())
	case meerkat.EvClose:
		if !c.IsListening() {
			s.closed.Add(1)
		}
	}
}

// stop ends the Poll loop, whose goroutine closes the Manager, and checks
// that every accepted connection got its EvClose.
func (s *benchServer) stop(b *testing.B) {
	b.Helper()
	s.stopping.Store(true)
	s.m.Wakeup(s.listener, nil)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		b.Fatalf("server goroutine did not stop")
	}
	if a, c := s.accepted.Load(), s.closed.Load(); a != c {
		b.Errorf("server accepted %d connections but closed %d", a, c)
	}
}

// BenchmarkPollIdle measures one Poll iteration with nothing to do while n
// plain connections are open and idle (both ends are in this process, so n
// stays well under the descriptor limit). It shows how the cost of an
// iteration grows with the number of connections; ns/conn is the cost per
// open connection.
func BenchmarkPollIdle(b *testing.B) {
	for _, drv := range testDrivers() {
		for _, n := range []int{10, 1000, 5000} {
			b.Run(fmt.Sprintf("%s/%d", drv, n), func(b *testing.B) {
				benchPollIdleRun(b, drv, n)
			})
		}
	}
}

func benchPollIdleRun(b *testing.B, drv string, n int) {
	base := snapshot()
	m, err := meerkat.NewManagerDriver(drv)
	if err != nil {
		b.Fatalf("driver %s: %v", drv, err)
	}
	m.Logger = slog.New(slog.NewTextHandler(&testLogWriter{t: b}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var accepted int
	l, err := m.Listen("tcp://127.0.0.1:0", func(c *meerkat.Conn, ev meerkat.Event, _ any) {
		if ev == meerkat.EvAccept {
			accepted++
		}
	})
	if err != nil {
		b.Fatalf("listen: %v", err)
	}
	addr := l.LocalAddr().String()
	peers := make([]net.Conn, 0, n)
	defer func() {
		for _, nc := range peers {
			nc.Close()
		}
		m.Close()
		expectBaseline(b, base, 10*time.Second)
	}()
	// Dial in batches smaller than the listen backlog, letting the Manager
	// accept each batch.
	for len(peers) < n {
		for range min(256, n-len(peers)) {
			nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				b.Fatalf("dial %d: %v", len(peers), err)
			}
			peers = append(peers, nc)
		}
		pollUntil(b, m, 10*time.Second, "accepts", func() bool { return accepted == len(peers) })
	}
	for range 10 { // settle: no pending work left from the accepts
		m.Poll(0)
	}
	for b.Loop() {
		m.Poll(0)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n+1), "ns/conn")
}
