package meerkat_test

// Tests of outgoing connections: how each way a connect can fail is
// reported, asynchronous name resolution, and IPv6.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meerkat-net/meerkat"
)

// connectFailed checks that c's events were exactly EvOpen, EvError, EvClose,
// and returns the error.
func connectFailed(t *testing.T, e *env, c *meerkat.Conn) error {
	t.Helper()
	ev := e.chk.events(c)
	if fmt.Sprint(ev) != fmt.Sprint([]meerkat.Event{meerkat.EvOpen, meerkat.EvError, meerkat.EvClose}) {
		t.Fatalf("events %v, want EvOpen EvError EvClose", summarize(ev))
	}
	errs := e.chk.errorsOf(c)
	if len(errs) != 1 || errs[0] == nil {
		t.Fatalf("errors %v, want one", errs)
	}
	t.Logf("reported as: %v", errs[0])
	return errs[0]
}

// TestConnectRefused: connecting to a port nobody listens on ends in
// EvError (connection refused, naming the address) and EvClose, and
// nothing else.
func TestConnectRefused(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		c := mgrConnect(e, "tcp://"+addr, nil)
		e.pollUntil(5*time.Second, "EvClose", func() bool { return e.chk.closed(c) })
		err = connectFailed(t, e, c)
		if !errors.Is(err, syscall.ECONNREFUSED) || !strings.Contains(err.Error(), addr) {
			t.Fatalf("error %q: want ECONNREFUSED naming %s", err, addr)
		}
	})
}

// connectFullBacklog returns the address of a listening socket whose
// accept queue is full, so that the kernel drops new SYNs and a connect to
// it neither succeeds nor fails (see lcFullAcceptQueue; Linux only).
func connectFullBacklog(t *testing.T) string {
	t.Helper()
	if lcPendingConnect == nil {
		t.Skip("a full backlog drops SYNs on Linux; other systems may refuse instead")
	}
	addr, release := lcPendingConnect(t)
	t.Cleanup(release)
	return addr
}

// TestConnectTimeout: a connect to a listener whose backlog is full (SYNs
// dropped) ends after Manager.ConnectTimeout in EvError (ErrConnectTimeout)
// and EvClose, and nothing else.
func TestConnectTimeout(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		addr := connectFullBacklog(t)
		e.m.ConnectTimeout = 300 * time.Millisecond
		base := snapshot()
		start := time.Now()
		c := mgrConnect(e, "tcp://"+addr, nil)
		e.pollUntil(5*time.Second, "EvClose", func() bool { return e.chk.closed(c) })
		elapsed := time.Since(start)
		err := connectFailed(t, e, c)
		if !errors.Is(err, meerkat.ErrConnectTimeout) {
			t.Fatalf("error %q, want ErrConnectTimeout", err)
		}
		if elapsed < 300*time.Millisecond || elapsed > 2*time.Second {
			t.Fatalf("a 300 ms connect timeout fired after %v", elapsed)
		}
		expectBaseline(t, base, 5*time.Second)
	})
}

// connectDNSServer runs a DNS responder on a loopback UDP port and returns
// its address. It answers A and AAAA queries for the names in hosts (lower
// case, without the final dot) with their addresses of that family, and
// every other name with NXDOMAIN.
func connectDNSServer(t *testing.T, hosts map[string][]netip.Addr) string {
	t.Helper()
	skipOnWine(t, wineNoUDP)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := connectDNSAnswer(buf[:n], hosts); resp != nil {
				pc.WriteTo(resp, from)
			}
		}
	}()
	return pc.LocalAddr().String()
}

// connectDNSAnswer builds the response to one query, nil if it is malformed.
func connectDNSAnswer(q []byte, hosts map[string][]netip.Addr) []byte {
	if len(q) < 12 {
		return nil
	}
	// The question: labels up to a zero byte, then type and class.
	var labels []string
	end := 12
	for end < len(q) && q[end] != 0 {
		l := int(q[end])
		if end+1+l > len(q) {
			return nil
		}
		labels = append(labels, strings.ToLower(string(q[end+1:end+1+l])))
		end += l + 1
	}
	end += 5
	if end > len(q) {
		return nil
	}
	qtype := int(q[end-4])<<8 | int(q[end-3])
	addrs, known := hosts[strings.Join(labels, ".")]
	var answers []netip.Addr
	for _, a := range addrs {
		if a.Is4() && qtype == 1 || a.Is6() && qtype == 28 {
			answers = append(answers, a)
		}
	}
	rcode := byte(0)
	if !known {
		rcode = 3 // NXDOMAIN
	}
	resp := []byte{q[0], q[1], 0x84 | q[2]&0x79, 0x80 | rcode, 0, 1, 0, byte(len(answers)), 0, 0, 0, 0}
	resp = append(resp, q[12:end]...)
	for _, a := range answers {
		ip := a.AsSlice()
		resp = append(resp, 0xc0, 12, q[end-4], q[end-3], 0, 1, 0, 0, 0, 60, 0, byte(len(ip)))
		resp = append(resp, ip...)
	}
	return resp
}

// connectResolver is a pure-Go resolver that asks only the DNS server at
// addr.
func connectResolver(addr string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
}

// TestConnectUnresolvableHost: a host name the resolver does not know ends
// in EvError, naming the host, then EvClose, and nothing else: with a DNS
// server answering NXDOMAIN, and with a resolver that cannot reach any.
func TestConnectUnresolvableHost(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		dnsAddr := connectDNSServer(t, nil)
		for _, tc := range []struct {
			name     string
			resolver *net.Resolver
			want     func(*net.DNSError) bool
		}{
			{"nxdomain", connectResolver(dnsAddr), func(de *net.DNSError) bool { return de.IsNotFound }},
			{"no_server", &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
				return nil, errors.New("no DNS server in this test")
			}}, func(*net.DNSError) bool { return true }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e := newEnv(t, drv, false)
				e.m.Resolver = tc.resolver
				const host = "no-such-host.meerkat.test"
				c := mgrConnect(e, "tcp://"+host+":80", nil)
				e.pollUntil(10*time.Second, "EvClose", func() bool { return e.chk.closed(c) })
				err := connectFailed(t, e, c)
				var de *net.DNSError
				if !strings.Contains(err.Error(), host) || !errors.As(err, &de) || !tc.want(de) {
					t.Fatalf("error %q (%#v): want a DNS error naming %s", err, de, host)
				}
			})
		}
	})
}

// TestConnectClosedWhileResolving: a connection whose name is still
// resolving — the DNS server never answers — ends with EvClose at the end
// of the Poll iteration in which it is closed (by Close in a handler, by
// the connect timeout, or by Manager.Close); no EvResolve or EvConnect
// follows, and the resolver's goroutines are gone.
func TestConnectClosedWhileResolving(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		for _, how := range []string{"Close", "ConnectTimeout", "Manager.Close"} {
			t.Run(strings.ReplaceAll(how, ".", "_"), func(t *testing.T) {
				e := newEnv(t, drv, false)
				dials := make(chan struct{}, 16)
				e.m.Resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
					dials <- struct{}{}
					<-ctx.Done() // a DNS server that never answers
					return nil, ctx.Err()
				}}
				if how == "ConnectTimeout" {
					e.m.ConnectTimeout = 200 * time.Millisecond
				}
				base := snapshot()
				closeNow := false
				start := time.Now()
				c := mgrConnect(e, "tcp://slow-name.meerkat.test:80", func(c *meerkat.Conn, ev meerkat.Event, _ any) {
					if ev == meerkat.EvPoll && closeNow {
						c.Close()
					}
				})
				select {
				case <-dials:
				case <-time.After(5 * time.Second):
					t.Fatal("the resolver never dialled its server")
				}
				for range 3 {
					e.m.Poll(10 * time.Millisecond)
				}
				if ev := e.chk.events(c); len(ev) != 1 {
					t.Fatalf("while resolving: events %v, want EvOpen only", summarize(ev))
				}
				want := []meerkat.Event{meerkat.EvOpen, meerkat.EvClose}
				switch how {
				case "Close":
					closeNow = true
					e.m.Poll(0)
					if !e.chk.closed(c) {
						t.Fatalf("Close while resolving: no EvClose at the end of that Poll (events %v)", summarize(e.chk.events(c)))
					}
					for range 5 {
						e.m.Poll(10 * time.Millisecond)
					}
				case "ConnectTimeout":
					e.pollUntil(5*time.Second, "the connect timeout", func() bool { return e.chk.closed(c) })
					if d := time.Since(start); d < 200*time.Millisecond || d > 2*time.Second {
						t.Errorf("a 200 ms connect timeout ended the lookup after %v", d)
					}
					errs := e.chk.errorsOf(c)
					if len(errs) != 1 || !errors.Is(errs[0], meerkat.ErrConnectTimeout) {
						t.Fatalf("errors %v, want ErrConnectTimeout", errs)
					}
					want = []meerkat.Event{meerkat.EvOpen, meerkat.EvError, meerkat.EvClose}
				case "Manager.Close":
					e.m.Close()
					if !e.chk.closed(c) {
						t.Fatal("Manager.Close while resolving: no EvClose")
					}
				}
				if ev := e.chk.events(c); fmt.Sprint(ev) != fmt.Sprint(want) {
					t.Fatalf("events %v, want %v", summarize(ev), want)
				}
				expectBaseline(t, base, 5*time.Second)
			})
		}
	})
}

// TestConnectResolvesHostNames: a host name is resolved without blocking
// Poll: the client sees EvOpen, EvResolve with the netip.AddrPort it will
// connect to, then EvConnect.
func TestConnectResolvesHostNames(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		l, _ := e.listen(nil)
		port := l.LocalAddr().Port()
		var resolved any
		connected := false
		c := mgrConnect(e, fmt.Sprintf("tcp://localhost:%d", port), func(c *meerkat.Conn, ev meerkat.Event, data any) {
			switch ev {
			case meerkat.EvResolve:
				resolved = data
			case meerkat.EvConnect:
				connected = true
			}
		})
		e.pollUntil(10*time.Second, "EvConnect", func() bool { return connected || e.chk.closed(c) })
		want := []meerkat.Event{meerkat.EvOpen, meerkat.EvResolve, meerkat.EvConnect}
		if ev := e.chk.events(c); fmt.Sprint(ev) != fmt.Sprint(want) {
			t.Fatalf("events %v (errors %v), want %v", summarize(ev), e.chk.errorsOf(c), want)
		}
		ap, ok := resolved.(netip.AddrPort)
		if !ok || !ap.Addr().IsLoopback() || ap.Port() != port {
			t.Fatalf("EvResolve data %#v, want a loopback netip.AddrPort with port %d", resolved, port)
		}
		if c.RemoteAddr() != ap {
			t.Fatalf("RemoteAddr %v, want the resolved %v", c.RemoteAddr(), ap)
		}
	})
}

// TestConnectIPv6: listeners and clients work on [::1], plain and TLS (the
// test certificate covers ::1), with IPv6 addresses on both ends.
func TestConnectIPv6(t *testing.T) {
	if ln, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		ln.Close()
	}
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		var accepted *meerkat.Conn
		l, err := e.m.Listen(e.scheme()+"://[::1]:0", e.chk.wrap(func(c *meerkat.Conn, ev meerkat.Event, data any) {
			if ev == meerkat.EvAccept {
				accepted = c
			}
			echo(c, ev, data)
		}))
		if err != nil {
			t.Fatal(err)
		}
		la := l.LocalAddr()
		if !la.Addr().Is6() || !la.Addr().IsLoopback() || la.Port() == 0 {
			t.Fatalf("listener LocalAddr %v, want [::1] and a port", la)
		}
		got := ""
		c := mgrConnect(e, e.scheme()+"://"+la.String(), func(c *meerkat.Conn, ev meerkat.Event, _ any) {
			switch ev {
			case meerkat.EvConnect:
				c.Printf("over IPv6")
			case meerkat.EvRead:
				got += string(c.Recv().Bytes())
				c.Recv().Consume(c.Recv().Len())
			}
		})
		e.pollUntil(5*time.Second, "the echo", func() bool { return got == "over IPv6" || e.chk.closed(c) })
		if got != "over IPv6" {
			t.Fatalf("echo %q, events %v, errors %v", got, summarize(e.chk.events(c)), e.chk.errorsOf(c))
		}
		if c.RemoteAddr() != la || !c.LocalAddr().Addr().Is6() || accepted.RemoteAddr() != c.LocalAddr() {
			t.Fatalf("addresses: client %v -> %v, accepted from %v", c.LocalAddr(), c.RemoteAddr(), accepted.RemoteAddr())
		}
		if useTLS && !c.IsTLS() {
			t.Fatal("https:// client without TLS")
		}
	})
}

// TestConnectTriesEveryAddress: a name with several addresses is tried
// address by address, IPv4 first: when 127.0.0.1 refuses, the connection
// is made to ::1; when every address refuses, the error names the last.
func TestConnectTriesEveryAddress(t *testing.T) {
	if ln, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		ln.Close()
	}
	v4, v6 := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")
	dnsAddr := connectDNSServer(t, map[string][]netip.Addr{"dual.meerkat.test": {v6, v4}})
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		e.m.Resolver = connectResolver(dnsAddr)
		l, err := e.m.Listen("tcp://[::1]:0", e.chk.wrap(nil))
		if err != nil {
			t.Fatal(err)
		}
		port := l.LocalAddr().Port()
		var resolved any
		connected := false
		c := mgrConnect(e, fmt.Sprintf("tcp://dual.meerkat.test:%d", port), func(c *meerkat.Conn, ev meerkat.Event, data any) {
			switch ev {
			case meerkat.EvResolve:
				resolved = data
			case meerkat.EvConnect:
				connected = true
			}
		})
		e.pollUntil(10*time.Second, "EvConnect", func() bool { return connected || e.chk.closed(c) })
		want := []meerkat.Event{meerkat.EvOpen, meerkat.EvResolve, meerkat.EvConnect}
		if ev := e.chk.events(c); fmt.Sprint(ev) != fmt.Sprint(want) {
			t.Fatalf("events %v (errors %v), want %v", summarize(ev), e.chk.errorsOf(c), want)
		}
		if resolved != netip.AddrPortFrom(v4, port) {
			t.Errorf("EvResolve data %v, want the IPv4 address first", resolved)
		}
		if c.RemoteAddr() != netip.AddrPortFrom(v6, port) {
			t.Errorf("connected to %v, want [::1]:%d after 127.0.0.1 refused", c.RemoteAddr(), port)
		}

		l.Close()
		e.m.Poll(0)
		c2 := mgrConnect(e, fmt.Sprintf("tcp://dual.meerkat.test:%d", port), nil)
		e.pollUntil(10*time.Second, "EvClose", func() bool { return e.chk.closed(c2) })
		want = []meerkat.Event{meerkat.EvOpen, meerkat.EvResolve, meerkat.EvError, meerkat.EvClose}
		if ev := e.chk.events(c2); fmt.Sprint(ev) != fmt.Sprint(want) {
			t.Fatalf("events %v, want %v", summarize(ev), want)
		}
		err = e.chk.errorsOf(c2)[0]
		if !errors.Is(err, syscall.ECONNREFUSED) || !strings.Contains(err.Error(), netip.AddrPortFrom(v6, port).String()) {
			t.Fatalf("error %q: want ECONNREFUSED naming [::1]:%d", err, port)
		}
	})
}

// TestIdleTimeoutSparesConnectingClients: a connection still resolving or
// connecting is governed by ConnectTimeout, not IdleTimeout: with
// IdleTimeout 200 ms and ConnectTimeout 600 ms, a connect that hangs ends in
// ErrConnectTimeout after 600 ms, not in an idle timeout.
func TestIdleTimeoutSparesConnectingClients(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		for _, stage := range []string{"connecting", "resolving"} {
			t.Run(stage, func(t *testing.T) {
				e := newEnv(t, drv, false)
				e.m.IdleTimeout = 200 * time.Millisecond
				e.m.ConnectTimeout = 600 * time.Millisecond
				url := ""
				switch stage {
				case "connecting":
					url = "tcp://" + connectFullBacklog(t)
				case "resolving":
					e.m.Resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
						<-ctx.Done() // a DNS server that never answers
						return nil, ctx.Err()
					}}
					url = "tcp://slow-name.meerkat.test:80"
				}
				start := time.Now()
				c := mgrConnect(e, url, nil)
				e.pollUntil(5*time.Second, "EvClose", func() bool { return e.chk.closed(c) })
				elapsed := time.Since(start)
				err := connectFailed(t, e, c)
				if !errors.Is(err, meerkat.ErrConnectTimeout) {
					t.Fatalf("after %v: %q, want ErrConnectTimeout after 600 ms", elapsed, err)
				}
				if elapsed < 600*time.Millisecond {
					t.Fatalf("connect timeout after %v, want 600 ms", elapsed)
				}
			})
		}
	})
}
