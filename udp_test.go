package meerkat_test

// Tests of UDP: a bound socket receiving datagrams from several senders
// and replying to each, and a connected UDP client.

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/meerkat-net/meerkat"
)

// TestUDPListenerRepliesToEachSender: a udp:// listener delivers each
// datagram as one EvRead of exactly its bytes, with RemoteAddr set to its
// sender, and Send in that handler answers that sender only. Bytes the
// handler leaves unconsumed do not run into the next datagram.
func TestUDPListenerRepliesToEachSender(t *testing.T) {
	skipOnWine(t, wineNoUDP)
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		type dgram struct {
			from netip.AddrPort
			n    int
			data string
		}
		var got []dgram
		l, err := e.m.Listen("udp://127.0.0.1:0", e.chk.wrap(func(c *meerkat.Conn, ev meerkat.Event, data any) {
			if ev != meerkat.EvRead {
				return
			}
			n, _ := data.(int)
			got = append(got, dgram{c.RemoteAddr(), n, string(c.Recv().Bytes())})
			if !c.Send([]byte("re:" + string(c.Recv().Bytes()))) {
				t.Errorf("Send to %v refused", c.RemoteAddr())
			}
			// Nothing consumed: the next datagram must still arrive alone.
		}))
		if err != nil {
			t.Fatal(err)
		}
		if got := mgrFlags(l); got != "listening,udp" {
			t.Errorf("UDP listener flags %q", got)
		}
		laddr := net.UDPAddrFromAddrPort(l.LocalAddr())
		if l.LocalAddr().Port() == 0 {
			t.Fatalf("UDP listener LocalAddr %v has no port", l.LocalAddr())
		}

		const senders, each = 3, 5
		peers := make([]*net.UDPConn, senders)
		want := map[string]netip.AddrPort{}
		for i := range peers {
			pc, err := net.DialUDP("udp", nil, laddr)
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			peers[i] = pc
			for j := range each {
				msg := fmt.Sprintf("peer %d datagram %d%s", i, j, string(make([]byte, j*100)))
				if _, err := pc.Write([]byte(msg)); err != nil {
					t.Fatal(err)
				}
				want[msg] = pc.LocalAddr().(*net.UDPAddr).AddrPort()
			}
		}
		e.pollUntil(5*time.Second, "every datagram", func() bool { return len(got) >= senders*each })
		e.m.Poll(0)
		if len(got) != senders*each {
			t.Fatalf("%d EvRead, want %d (one per datagram)", len(got), senders*each)
		}
		for _, g := range got {
			from, ok := want[g.data]
			if !ok || g.n != len(g.data) {
				t.Fatalf("EvRead(%d) with %q: not one whole datagram", g.n, g.data)
			}
			if g.from != from {
				t.Fatalf("datagram %.20q: RemoteAddr %v, want its sender %v", g.data, g.from, from)
			}
			delete(want, g.data)
		}

		// Each peer gets the replies to its own datagrams, in order.
		buf := make([]byte, 2048)
		for i, pc := range peers {
			pc.SetReadDeadline(time.Now().Add(5 * time.Second))
			for j := range each {
				n, err := pc.Read(buf)
				if err != nil {
					t.Fatalf("peer %d reply %d: %v", i, j, err)
				}
				if w := fmt.Sprintf("re:peer %d datagram %d%s", i, j, string(make([]byte, j*100))); string(buf[:n]) != w {
					t.Fatalf("peer %d got %.30q, want %.30q", i, buf[:n], w)
				}
			}
		}
	})
}

// TestUDPConnectSendsAndReceives: Connect("udp://...") reports EvConnect
// first (no EvResolve for an IP), sends each Send as one datagram, and
// delivers each reply as one EvRead; unconsumed bytes are dropped with
// their datagram.
func TestUDPConnectSendsAndReceives(t *testing.T) {
	skipOnWine(t, wineNoUDP)
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		server, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer server.Close()
		var reads []string
		connected := false
		c := mgrConnect(e, "udp://"+server.LocalAddr().String(), func(c *meerkat.Conn, ev meerkat.Event, data any) {
			switch ev {
			case meerkat.EvConnect:
				connected = true
				if got := mgrFlags(c); got != "client,udp" {
					t.Errorf("UDP client flags %q", got)
				}
				c.Send([]byte("one"))
				c.Send([]byte("two"))
			case meerkat.EvRead:
				if n := data.(int); n != c.Recv().Len() {
					t.Errorf("EvRead(%d) with %d bytes in Recv", n, c.Recv().Len())
				}
				reads = append(reads, string(c.Recv().Bytes()))
				c.Recv().Consume(1) // the rest must not reach the next EvRead
			}
		})
		e.pollUntil(5*time.Second, "EvConnect", func() bool { return connected || e.chk.closed(c) })
		if ev := e.chk.events(c); fmt.Sprint(ev) != fmt.Sprint([]meerkat.Event{meerkat.EvOpen, meerkat.EvConnect}) {
			t.Fatalf("events %v, want EvOpen EvConnect", summarize(ev))
		}
		server.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 2048)
		for _, want := range []string{"one", "two"} {
			n, from, err := server.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatalf("server read: %v", err)
			}
			if string(buf[:n]) != want {
				t.Fatalf("server got %q, want %q", buf[:n], want)
			}
			if from.Port() != c.LocalAddr().Port() {
				t.Fatalf("datagram from %v, client LocalAddr %v", from, c.LocalAddr())
			}
			if _, err := server.WriteToUDPAddrPort([]byte("reply to "+want), from); err != nil {
				t.Fatal(err)
			}
		}
		e.pollUntil(5*time.Second, "two replies", func() bool { return len(reads) >= 2 })
		e.m.Poll(0)
		if fmt.Sprint(reads) != "[reply to one reply to two]" {
			t.Fatalf("client read %q, want each reply whole and alone", reads)
		}
	})
}

// TestUDPDrainAndShutdown: a UDP socket has nothing queued (datagrams go
// out at once), so Drain closes a UDP client and a UDP listener at the end
// of the Poll, and Shutdown with UDP sockets open finishes with nil.
func TestUDPDrainAndShutdown(t *testing.T) {
	skipOnWine(t, wineNoUDP)
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		server, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer server.Close()
		connected := false
		c := mgrConnect(e, "udp://"+server.LocalAddr().String(), func(c *meerkat.Conn, ev meerkat.Event, _ any) {
			if ev == meerkat.EvConnect {
				connected = true
			}
		})
		l, err := e.m.Listen("udp://127.0.0.1:0", e.chk.wrap(nil))
		if err != nil {
			t.Fatal(err)
		}
		e.pollUntil(5*time.Second, "EvConnect", func() bool { return connected })
		c.Send([]byte("last words"))
		c.Drain()
		l.Drain()
		e.m.Poll(0)
		if !e.chk.closed(c) || !e.chk.closed(l) {
			t.Fatalf("Drain of UDP sockets: client closed %v, listener closed %v after the Poll", e.chk.closed(c), e.chk.closed(l))
		}
		server.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 64)
		if n, err := server.Read(buf); err != nil || string(buf[:n]) != "last words" {
			t.Fatalf("server got %q, %v; want the datagram sent before Drain", buf[:n], err)
		}

		c = mgrConnect(e, "udp://"+server.LocalAddr().String(), nil)
		l, err = e.m.Listen("udp://127.0.0.1:0", e.chk.wrap(nil))
		if err != nil {
			t.Fatal(err)
		}
		e.m.Poll(0)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		if err := e.m.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown with UDP sockets: %v", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("Shutdown with only UDP sockets took %v", d)
		}
		if !e.chk.closed(c) || !e.chk.closed(l) {
			t.Fatal("Shutdown left UDP sockets open")
		}
	})
}

// TestUDPListenerOnAllInterfaces: a udp:// listener with no host (IPv6 and
// IPv4 where both exist) reports an IPv4 sender as a plain IPv4 address
// and its reply reaches that sender; before any datagram has arrived, Send
// on a listener has nobody to send to and returns false.
func TestUDPListenerOnAllInterfaces(t *testing.T) {
	skipOnWine(t, wineNoUDP)
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		var from netip.AddrPort
		l, err := e.m.Listen("udp://:0", e.chk.wrap(func(c *meerkat.Conn, ev meerkat.Event, _ any) {
			if ev == meerkat.EvRead {
				from = c.RemoteAddr()
				c.Send([]byte("reply"))
			}
		}))
		if err != nil {
			t.Fatal(err)
		}
		if l.Send([]byte("to nobody")) {
			t.Error("Send on a UDP listener before any datagram returned true")
		}
		pc, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", l.LocalAddr().Port()))
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		if _, err := pc.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		e.pollUntil(5*time.Second, "the datagram", func() bool { return from.IsValid() })
		if want := pc.LocalAddr().(*net.UDPAddr).AddrPort(); from != want {
			t.Fatalf("RemoteAddr %v, want the IPv4 sender %v", from, want)
		}
		pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 64)
		if n, err := pc.Read(buf); err != nil || string(buf[:n]) != "reply" {
			t.Fatalf("sender got %q, %v; want the reply", buf[:n], err)
		}
	})
}
