package meerkat_test

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/meerkat-net/meerkat"
)

// TestResetClosesIdleConnection: a peer's RST on an idle connection is
// EvError then EvClose within two Poll iterations, on every driver, plain
// and TLS, and nothing is left behind.
func TestResetClosesIdleConnection(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		base := snapshot()
		var server *meerkat.Conn
		ready := false
		l, addr := e.listen(func(c *meerkat.Conn, ev meerkat.Event, _ any) {
			switch ev {
			case meerkat.EvAccept:
				server = c
				if !useTLS {
					ready = true
				}
			case meerkat.EvTLSHandshake:
				ready = true
			}
		})
		peer := e.dialPeer(addr)
		go func() {
			if tc, ok := peer.(interface{ Handshake() error }); ok {
				tc.Handshake()
			}
		}()
		e.pollUntil(5*time.Second, "the accept", func() bool { return ready })

		resetPeer(t, peer)
		for i := 0; i < 2 && !e.chk.closed(server); i++ {
			e.m.Poll(time.Second)
		}
		ev := e.chk.events(server)
		if !e.chk.closed(server) || len(ev) < 2 || ev[len(ev)-2] != meerkat.EvError {
			t.Fatalf("after the RST and two Polls: events %v, want ... EvError EvClose", summarize(ev))
		}
		errs := e.chk.errorsOf(server)
		if len(errs) != 1 || errors.Is(errs[0], io.EOF) {
			t.Fatalf("errors %v, want one reset error", errs)
		}
		t.Logf("reset reported as: %v", errs[0])
		l.Close()
		e.m.Poll(0)
		expectBaseline(t, base, 5*time.Second)
	})
}

// TestDrainDeliversEverythingThenEOF: Drain of 10 MiB reaches the peer
// whole, followed by EOF.
func TestDrainDeliversEverythingThenEOF(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		payload := bytes.Repeat([]byte("0123456789abcdef"), 10<<20/16)
		var server *meerkat.Conn
		_, addr := e.listen(func(c *meerkat.Conn, ev meerkat.Event, _ any) {
			if ev == meerkat.EvAccept {
				server = c
				if !c.Send(payload) {
					t.Error("Send of 10 MiB refused")
				}
				c.Drain()
				c.Drain() // idempotent
			}
		})
		got := make(chan []byte, 1)
		go func() {
			peer := e.dialPeer(addr)
			defer peer.Close()
			b, err := io.ReadAll(peer)
			if err != nil {
				t.Errorf("peer read: %v", err)
			}
			got <- b
		}()
		var b []byte
		e.pollUntil(20*time.Second, "the peer's EOF", func() bool {
			select {
			case b = <-got:
				return true
			default:
				return false
			}
		})
		if !bytes.Equal(b, payload) {
			t.Fatalf("peer got %d bytes, want %d intact", len(b), len(payload))
		}
		e.pollUntil(5*time.Second, "EvClose", func() bool { return server != nil && e.chk.closed(server) })
		if errs := e.chk.errorsOf(server); len(errs) != 0 {
			t.Fatalf("drain ended with errors %v", errs)
		}
	})
}
