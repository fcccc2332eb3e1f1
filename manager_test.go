package meerkat_test

// Tests of the Manager: Wakeup, timers, the quiet loop, Listen errors,
// settings (idle timeout, hexdump), iteration over connections, the
// connection flags, Shutdown and Run.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/meerkat-net/meerkat"
	"github.com/meerkat-net/meerkat/internal/testcert"
)

// TestWakeupDeliversInOrderPerSender: Wakeup from 8 goroutines x 10,000
// messages to one connection delivers every message exactly once, as
// EvWakeup, in the order each sender sent them. The senders reuse one buffer
// for all their messages, so a Wakeup that did not copy its data would show
// up as lost or repeated sequence numbers.
func TestWakeupDeliversInOrderPerSender(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		const senders, perSender = 8, 10000
		next := make([]uint32, senders)
		total := 0
		var problems []string
		l, _ := e.listen(func(c *meerkat.Conn, ev meerkat.Event, data any) {
			if ev != meerkat.EvWakeup {
				return
			}
			p, ok := data.([]byte)
			switch {
			case !ok || len(p) != 5:
				problems = append(problems, fmt.Sprintf("EvWakeup data %T %v", data, data))
			case int(p[0]) >= senders:
				problems = append(problems, fmt.Sprintf("unknown sender %d", p[0]))
			default:
				s, seq := p[0], binary.BigEndian.Uint32(p[1:])
				if seq != next[s] {
					problems = append(problems, fmt.Sprintf("sender %d: got #%d, want #%d", s, seq, next[s]))
				}
				next[s] = seq + 1
			}
			total++
		})
		var refused atomic.Int64
		var wg sync.WaitGroup
		t.Cleanup(wg.Wait)
		start := time.Now()
		for s := range senders {
			wg.Go(func() {
				buf := []byte{byte(s), 0, 0, 0, 0} // reused for every message
				for i := range perSender {
					binary.BigEndian.PutUint32(buf[1:], uint32(i))
					if !e.m.Wakeup(l.ID(), buf) {
						refused.Add(1)
					}
				}
			})
		}
		e.pollUntil(60*time.Second, "every wakeup", func() bool {
			return total >= senders*perSender || refused.Load() > 0 || len(problems) > 10
		})
		wg.Wait()
		for range 3 { // nothing more must come
			e.m.Poll(0)
		}
		t.Logf("%d wakeups delivered in %v", total, time.Since(start))
		if n := refused.Load(); n > 0 {
			t.Fatalf("Wakeup returned false %d times on an open Manager", n)
		}
		if len(problems) > 0 {
			t.Fatalf("%d problems, first: %v", len(problems), problems[:min(len(problems), 10)])
		}
		if total != senders*perSender {
			t.Fatalf("delivered %d wakeups, want %d", total, senders*perSender)
		}
	})
}

// TestWakeupCopiesData: the data passed to Wakeup is copied at once, so the
// caller may overwrite its buffer before Poll delivers it.
func TestWakeupCopiesData(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		var got []string
		l, _ := e.listen(func(c *meerkat.Conn, ev meerkat.Event, data any) {
			if ev == meerkat.EvWakeup {
				got = append(got, string(data.([]byte)))
			}
		})
		buf := []byte("first")
		e.m.Wakeup(l.ID(), buf)
		copy(buf, "XXXXX")
		e.m.Wakeup(l.ID(), buf)
		copy(buf, "YYYYY")
		e.m.Wakeup(l.ID(), nil)
		e.pollUntil(5*time.Second, "three wakeups", func() bool { return len(got) >= 3 })
		if want := []string{"first", "XXXXX", ""}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("EvWakeup data %q, want %q", got, want)
		}
	})
}

// TestWakeupForGoneConnectionIsDropped: a wakeup for a connection that is
// closing, closed, or never existed is dropped without an event, and Wakeup
// returns false once the Manager is closed.
func TestWakeupForGoneConnectionIsDropped(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		wakeups := map[uint64]int{}
		h := func(c *meerkat.Conn, ev meerkat.Event, data any) {
			if ev == meerkat.EvWakeup {
				wakeups[c.ID()]++
			}
		}
		closing, _ := e.listen(h)
		closed, _ := e.listen(h)
		alive, _ := e.listen(h)

		closed.Close()
		e.m.Poll(0)
		if !e.chk.closed(closed) {
			t.Fatal("a closed listener did not get EvClose in that Poll")
		}
		// Queued for a connection that is closed in the same iteration.
		if !e.m.Wakeup(closing.ID(), []byte("x")) {
			t.Fatal("Wakeup returned false on an open Manager")
		}
		closing.Close()
		// Queued for a connection already gone, and for one that never was.
		e.m.Wakeup(closed.ID(), []byte("x"))
		e.m.Wakeup(1<<60, []byte("x"))
		e.m.Wakeup(alive.ID(), []byte("x"))
		e.pollUntil(5*time.Second, "the live listener's wakeup", func() bool { return wakeups[alive.ID()] == 1 })
		e.m.Poll(0)
		if wakeups[closing.ID()] != 0 || wakeups[closed.ID()] != 0 || len(wakeups) != 1 {
			t.Fatalf("wakeups delivered %v; only conn %d should have one", wakeups, alive.ID())
		}

		e.m.Close()
		if e.m.Wakeup(alive.ID(), []byte("late")) {
			t.Fatal("Wakeup returned true after Manager.Close")
		}
		if wakeups[alive.ID()] != 1 {
			t.Fatalf("wakeups after Close: %v", wakeups)
		}
	})
}

// TestTimerOneShotFiresOnce: a timer without TimerRepeat fires once, not
// before its period has passed, and never again.
func TestTimerOneShotFiresOnce(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		n := 0
		var firedAfter time.Duration
		start := time.Now()
		e.m.AddTimer(20*time.Millisecond, 0, func() {
			n++
			firedAfter = time.Since(start)
		})
		e.pollUntil(5*time.Second, "the timer", func() bool { return n > 0 })
		for end := time.Now().Add(100 * time.Millisecond); time.Now().Before(end); {
			e.m.Poll(5 * time.Millisecond)
		}
		if n != 1 {
			t.Fatalf("one-shot timer fired %d times", n)
		}
		if firedAfter < 20*time.Millisecond {
			t.Fatalf("20 ms timer fired after %v", firedAfter)
		}
	})
}

// TestTimerRepeatKeepsItsPeriod: a 20 ms TimerRepeat timer polled with
// Poll(5ms) for about 500 ms fires about 25 times (15 to 30 allowed for a
// busy machine).
func TestTimerRepeatKeepsItsPeriod(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		n := 0
		tm := e.m.AddTimer(20*time.Millisecond, meerkat.TimerRepeat, func() { n++ })
		start := time.Now()
		for time.Since(start) < 500*time.Millisecond {
			e.m.Poll(5 * time.Millisecond)
		}
		elapsed := time.Since(start)
		tm.Stop()
		t.Logf("fired %d times in %v", n, elapsed)
		if n < 15 || n > 30 {
			t.Fatalf("20 ms timer fired %d times in %v, want 15..30", n, elapsed)
		}
	})
}

// TestTimerRunNowFiresAtNextPoll: TimerRunNow fires at the next Poll
// (which does not wait for the timeout), then keeps its period.
func TestTimerRunNowFiresAtNextPoll(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		var fires []time.Duration
		start := time.Now()
		e.m.AddTimer(50*time.Millisecond, meerkat.TimerRunNow|meerkat.TimerRepeat, func() {
			fires = append(fires, time.Since(start))
		})
		e.m.Poll(5 * time.Second)
		if len(fires) != 1 {
			t.Fatalf("after the first Poll: %d fires, want 1", len(fires))
		}
		if fires[0] > 40*time.Millisecond {
			t.Fatalf("Poll(5s) waited %v before firing a TimerRunNow timer", fires[0])
		}
		e.pollUntil(5*time.Second, "the second fire", func() bool { return len(fires) >= 2 })
		if fires[1] < 50*time.Millisecond {
			t.Fatalf("second fire at %v, before the period (50 ms) passed", fires[1])
		}

		// A one-shot TimerRunNow fires at the next Poll, once.
		once := 0
		e.m.AddTimer(time.Hour, meerkat.TimerRunNow, func() { once++ })
		e.m.Poll(5 * time.Second)
		e.m.Poll(0)
		if once != 1 {
			t.Fatalf("one-shot TimerRunNow fired %d times, want 1", once)
		}
	})
}

// TestTimerStop: Stop prevents a pending timer from firing, works from inside
// the timer's own function and on a timer already due in the same batch, and
// is safe to call twice and after the timer fired.
func TestTimerStop(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		pending := 0
		tp := e.m.AddTimer(10*time.Millisecond, meerkat.TimerRepeat, func() { pending++ })
		tp.Stop()
		tp.Stop()

		self := 0
		var ts *meerkat.Timer
		ts = e.m.AddTimer(5*time.Millisecond, meerkat.TimerRepeat, func() {
			self++
			ts.Stop()
			ts.Stop()
		})

		// Two timers due together, each stopping the other: exactly one fires.
		var ta, tb *meerkat.Timer
		pair := 0
		ta = e.m.AddTimer(10*time.Millisecond, 0, func() { pair++; tb.Stop() })
		tb = e.m.AddTimer(10*time.Millisecond, 0, func() { pair++; ta.Stop() })

		once := 0
		to := e.m.AddTimer(time.Millisecond, 0, func() { once++ })

		for end := time.Now().Add(150 * time.Millisecond); time.Now().Before(end); {
			e.m.Poll(5 * time.Millisecond)
		}
		to.Stop() // after it fired
		to.Stop()
		ts.Stop()
		e.m.Poll(0)
		if pending != 0 {
			t.Errorf("stopped timer fired %d times", pending)
		}
		if self != 1 {
			t.Errorf("timer that stops itself fired %d times, want 1", self)
		}
		if pair != 1 {
			t.Errorf("of two timers stopping each other, %d fired, want 1", pair)
		}
		if once != 1 {
			t.Errorf("one-shot fired %d times", once)
		}
	})
}

// TestTimerAfterStallFiresOnce: after the loop stalls for 100 ms (the test
// sleeping between Polls, or a handler blocking the loop), a 10 ms repeating
// timer fires exactly once, not in a burst of the ten periods it missed, and
// then resumes its rhythm.
func TestTimerAfterStallFiresOnce(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		for _, how := range []string{"sleep between Polls", "handler stalls"} {
			t.Run(strings.ReplaceAll(how, " ", "_"), func(t *testing.T) {
				e := newEnv(t, drv, false)
				n := 0
				tm := e.m.AddTimer(10*time.Millisecond, meerkat.TimerRepeat, func() { n++ })
				defer tm.Stop()
				e.pollUntil(5*time.Second, "two fires", func() bool { return n >= 2 })
				switch how {
				case "sleep between Polls":
					time.Sleep(100 * time.Millisecond) // the stall under test
				case "handler stalls":
					stalled := false
					e.m.AddTimer(0, 0, func() {
						time.Sleep(100 * time.Millisecond) // the stall under test
						stalled = true
					})
					e.m.Poll(0)
					if !stalled {
						t.Fatal("the stalling timer did not run at the next Poll")
					}
				}
				before := n
				e.m.Poll(0)
				if got := n - before; got != 1 {
					t.Fatalf("after a 100 ms stall the 10 ms timer fired %d times in one Poll, want 1", got)
				}
				// The rhythm resumes: at most one fire per Poll, about one per 10 ms.
				before = n
				start := time.Now()
				for time.Since(start) < 100*time.Millisecond {
					b := n
					e.m.Poll(time.Millisecond)
					if n-b > 1 {
						t.Fatalf("timer fired %d times in one Poll", n-b)
					}
				}
				if got := n - before; got < 3 || got > 12 {
					t.Fatalf("in the 100 ms after the stall the 10 ms timer fired %d times, want 3..12", got)
				}
			})
		}
	})
}

// TestTimerBoundsPollWait: Poll(1s) with a timer due in 50 ms returns after
// about 50 ms, having fired it.
func TestTimerBoundsPollWait(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		e.listen(nil) // an idle socket, as a real loop has
		fired := false
		start := time.Now()
		e.m.AddTimer(50*time.Millisecond, 0, func() { fired = true })
		polls := 0
		for !fired && polls < 5 {
			e.m.Poll(time.Second)
			polls++
		}
		elapsed := time.Since(start)
		t.Logf("fired after %v in %d Poll(1s)", elapsed, polls)
		if !fired || polls > 2 {
			t.Fatalf("timer fired=%v after %d Poll(1s) calls", fired, polls)
		}
		if elapsed < 50*time.Millisecond || elapsed > 500*time.Millisecond {
			t.Fatalf("Poll(1s) with a timer due in 50 ms took %v", elapsed)
		}
	})
}

// TestTimersStopAtManagerClose: Manager.Close stops every timer, also when
// called from a timer; timers added after Close never fire, and Poll on a
// closed Manager returns at once.
func TestTimersStopAtManagerClose(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		l, _ := e.listen(nil)
		n, closer := 0, 0
		e.m.AddTimer(time.Millisecond, meerkat.TimerRepeat, func() { n++ })
		e.m.AddTimer(5*time.Millisecond, meerkat.TimerRepeat, func() {
			closer++
			e.m.Close() // from inside a timer: takes effect at the end of this Poll
		})
		e.pollUntil(5*time.Second, "the closing timer", func() bool { return closer > 0 })
		if !e.chk.closed(l) {
			t.Fatal("Manager.Close from a timer: the listener has no EvClose after that Poll")
		}
		if _, err := e.m.Listen("tcp://127.0.0.1:0", nil); !errors.Is(err, meerkat.ErrClosed) {
			t.Fatalf("Listen after Close: %v, want ErrClosed", err)
		}
		before := n
		late := 0
		tl := e.m.AddTimer(0, meerkat.TimerRunNow|meerkat.TimerRepeat, func() { late++ })
		start := time.Now()
		for range 5 {
			e.m.Poll(50 * time.Millisecond)
		}
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Errorf("5 Poll(50ms) on a closed Manager took %v: Poll should return at once", d)
		}
		tl.Stop()
		if n != before || closer != 1 || late != 0 {
			t.Fatalf("timers fired after Close: repeat %d->%d, closer %d, added-after-close %d", before, n, closer, late)
		}
	})
}

// mgrPeer is a standard-library peer held idle by the test: after its
// optional handshake and FIN, its goroutine blocks reading until EOF, then
// waits for stop.
type mgrPeer struct {
	nc    net.Conn
	ready chan error    // the handshake (and FIN) is done
	eof   chan struct{} // the read returned
	stop  chan struct{}
	done  chan struct{}
}

func mgrStartPeer(t *testing.T, addr string, useTLS, fin bool) *mgrPeer {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	p := &mgrPeer{nc: nc, ready: make(chan error, 1), eof: make(chan struct{}),
		stop: make(chan struct{}), done: make(chan struct{})}
	if useTLS {
		cfg := testcert.ClientConfig()
		cfg.ServerName = "127.0.0.1"
		p.nc = tls.Client(nc, cfg)
	}
	go func() {
		defer close(p.done)
		defer p.nc.Close()
		var err error
		if tc, ok := p.nc.(*tls.Conn); ok {
			err = tc.Handshake()
			if err == nil && fin {
				err = tc.CloseWrite() // close_notify
			}
		}
		if err == nil && fin {
			err = nc.(*net.TCPConn).CloseWrite()
		}
		p.ready <- err
		io.Copy(io.Discard, p.nc)
		close(p.eof)
		<-p.stop
	}()
	t.Cleanup(p.close)
	return p
}

func (p *mgrPeer) close() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	p.nc.Close()
	<-p.done
}

// TestQuietLoopIsQuiet: with idle plain and TLS connections (accepted and
// client), a peer that sent FIN (plain and TLS) and a drained connection
// waiting for its peer's EOF, Poll(100ms) for 5 s returns about 50 times
// and the process burns under 5% of a CPU meanwhile.
func TestQuietLoopIsQuiet(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		e.m.DrainTimeout = time.Minute // keep the drained connection waiting
		handshakes := 0
		onTLS := func(c *meerkat.Conn, ev meerkat.Event, _ any) {
			if ev == meerkat.EvTLSHandshake {
				handshakes++
			}
		}
		plain, err := e.m.Listen("tcp://127.0.0.1:0", e.chk.wrap(nil))
		if err != nil {
			t.Fatal(err)
		}
		secure, err := e.m.Listen("https://127.0.0.1:0", e.chk.wrap(onTLS))
		if err != nil {
			t.Fatal(err)
		}
		var drained *meerkat.Conn
		drainer, err := e.m.Listen("tcp://127.0.0.1:0", e.chk.wrap(func(c *meerkat.Conn, ev meerkat.Event, _ any) {
			if ev == meerkat.EvAccept {
				drained = c
				c.Drain()
			}
		}))
		if err != nil {
			t.Fatal(err)
		}
		plainAddr, secureAddr := plain.LocalAddr().String(), secure.LocalAddr().String()

		idle := []*mgrPeer{mgrStartPeer(t, plainAddr, false, false), mgrStartPeer(t, secureAddr, true, false)}
		fins := []*mgrPeer{mgrStartPeer(t, plainAddr, false, true), mgrStartPeer(t, secureAddr, true, true)}
		waiter := mgrStartPeer(t, drainer.LocalAddr().String(), false, false)
		clients := []*meerkat.Conn{
			mgrConnect(e, "tcp://"+plainAddr, nil),
			mgrConnect(e, "https://"+secureAddr, onTLS),
		}

		// Settle: handshakes done, FIN peers' connections closed, the
		// drained connection's FIN read by its peer.
		peersReady := 0
		e.pollUntil(10*time.Second, "the setup to settle", func() bool {
			for _, p := range append(append(idle, fins...), waiter) {
				select {
				case err := <-p.ready:
					if err != nil {
						t.Fatalf("peer setup: %v", err)
					}
					peersReady++
				default:
				}
			}
			finsDone := true
			for _, p := range fins {
				select {
				case <-p.eof:
				default:
					finsDone = false
				}
			}
			waiterEOF := false
			select {
			case <-waiter.eof:
				waiterEOF = true
			default:
			}
			return peersReady == 5 && handshakes == 4 && finsDone && waiterEOF
		})
		live := 0
		for range e.m.Conns() {
			live++
		}
		// 3 listeners, 2 idle accepted + 2 client + their 2 accepted, 1 drained.
		if live != 10 {
			t.Fatalf("%d live connections before the quiet period, want 10", live)
		}
		if drained == nil || !drained.IsDraining() {
			t.Fatal("the drained connection is not draining")
		}

		runtime.GC()
		cpu0 := mgrCPUTime(t)
		start := time.Now()
		polls := 0
		for time.Since(start) < 5*time.Second {
			e.m.Poll(100 * time.Millisecond)
			polls++
		}
		wall := time.Since(start)
		cpu := mgrCPUTime(t) - cpu0
		t.Logf("%d Polls in %v, CPU %v (%.2f%%)", polls, wall, cpu, 100*cpu.Seconds()/wall.Seconds())
		if polls < 40 || polls > 55 {
			t.Errorf("Poll(100ms) returned %d times in %v, want 40..55", polls, wall)
		}
		if cpu > wall/20 {
			t.Errorf("the quiet loop used %v of CPU in %v (over 5%%)", cpu, wall)
		}
		for _, c := range clients {
			if e.chk.closed(c) {
				t.Errorf("idle client %d closed during the quiet period: %v", c.ID(), summarize(e.chk.events(c)))
			}
		}
		if e.chk.closed(drained) {
			t.Error("the drained connection closed during the quiet period")
		}
	})
}

// mgrConnect opens a checked client connection to a full URL.
func mgrConnect(e *env, url string, fn meerkat.Handler) *meerkat.Conn {
	e.t.Helper()
	c, err := e.m.Connect(url, e.chk.wrap(fn))
	if err != nil {
		e.t.Fatalf("connect %s: %v", url, err)
	}
	return c
}

// TestListenErrorsCreateNothing: a malformed URL, an address in use, or a
// call on a closed Manager makes Listen (and Connect) return an error at
// once; no connection is created and no handler is called.
func TestListenErrorsCreateNothing(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		calls := 0
		h := func(*meerkat.Conn, meerkat.Event, any) { calls++ }
		countConns := func() int {
			n := 0
			for range e.m.Conns() {
				n++
			}
			return n
		}

		for _, url := range []string{
			"",
			"127.0.0.1:8000",
			"tcp:/127.0.0.1:8000",
			"gopher://127.0.0.1:70",
			"tcp://127.0.0.1:+1",
			"tcp://127.0.0.1:65536",
			"tcp://127.0.0.1:x",
			"tcp://127.0.0.1:-1",
			"tcp://127.0.0.1:",
			"tcp://[::1:8000",
			"tcp://[::1]x",
			"tcp://::1:8000",
			"tcp://bad host:1",
			"tcp://-bad.example:1",
			"tcp://[127.0.0.1]:1",
		} {
			if c, err := e.m.Listen(url, h); c != nil || !errors.Is(err, meerkat.ErrBadURL) {
				t.Errorf("Listen(%q) = %v, %v; want nil and an ErrBadURL", url, c, err)
			}
			if c, err := e.m.Connect(url, h); c != nil || !errors.Is(err, meerkat.ErrBadURL) {
				t.Errorf("Connect(%q) = %v, %v; want nil and an ErrBadURL", url, c, err)
			}
		}
		for _, url := range []string{"tcp://127.0.0.1", "tcp://:8000", "udp://127.0.0.1:0"} {
			if c, err := e.m.Connect(url, h); c != nil || !errors.Is(err, meerkat.ErrBadURL) {
				t.Errorf("Connect(%q) = %v, %v; want nil and an ErrBadURL (no host or port)", url, c, err)
			}
		}

		// Address in use: our own listener, one of the net package, and UDP.
		l, addr := e.listen(nil)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		inUse := []string{"tcp://" + addr, "tcp://" + ln.Addr().String()}
		if !onWine() { // wineNoUDP
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			inUse = append(inUse, "udp://"+pc.LocalAddr().String())
		}
		base := countConns()
		for _, url := range inUse {
			c, err := e.m.Listen(url, h)
			if c != nil || !errors.Is(err, syscall.EADDRINUSE) {
				t.Errorf("Listen(%q) on a port in use = %v, %v; want nil and EADDRINUSE", url, c, err)
			} else {
				t.Logf("port in use: %v", err)
			}
		}
		if n := countConns(); n != base {
			t.Errorf("%d connections after failed Listens, want %d", n, base)
		}
		e.m.Poll(0)
		if calls != 0 {
			t.Errorf("handlers of failed calls were called %d times", calls)
		}
		if e.chk.closed(l) {
			t.Error("the listener closed after a second Listen on its port")
		}

		e.m.Close()
		if c, err := e.m.Listen("tcp://127.0.0.1:0", h); c != nil || !errors.Is(err, meerkat.ErrClosed) {
			t.Errorf("Listen on a closed Manager = %v, %v; want ErrClosed", c, err)
		}
		if c, err := e.m.Connect("tcp://"+addr, h); c != nil || !errors.Is(err, meerkat.ErrClosed) {
			t.Errorf("Connect on a closed Manager = %v, %v; want ErrClosed", c, err)
		}
		if err := e.m.Shutdown(context.Background()); !errors.Is(err, meerkat.ErrClosed) {
			t.Errorf("Shutdown on a closed Manager = %v; want ErrClosed", err)
		}
		if err := e.m.Run(context.Background()); !errors.Is(err, meerkat.ErrClosed) {
			t.Errorf("Run on a closed Manager = %v; want ErrClosed", err)
		}
		if calls != 0 {
			t.Errorf("handlers of calls on a closed Manager were called %d times", calls)
		}
	})
}

// TestLocalAndRemoteAddr: a listener on port 0 reports the port it got,
// which accepts connections; a client's LocalAddr is the accepted
// connection's RemoteAddr and the other way round.
func TestLocalAndRemoteAddr(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		var accepted *meerkat.Conn
		l, addr := e.listen(func(c *meerkat.Conn, ev meerkat.Event, _ any) {
			if ev == meerkat.EvAccept {
				accepted = c
			}
		})
		la := l.LocalAddr()
		if la.Port() == 0 || la.Addr().String() != "127.0.0.1" {
			t.Fatalf("listener LocalAddr %v, want 127.0.0.1 and a real port", la)
		}
		if nc, err := net.DialTimeout("tcp", la.String(), 5*time.Second); err != nil {
			t.Fatalf("dial the reported address: %v", err)
		} else {
			nc.Close()
		}
		byName, err := e.m.Listen("tcp://localhost:0", e.chk.wrap(nil))
		if err != nil {
			t.Fatalf("Listen on localhost: %v", err)
		}
		if a := byName.LocalAddr(); !a.Addr().IsLoopback() || a.Port() == 0 {
			t.Fatalf("tcp://localhost:0 listener LocalAddr %v, want loopback and a real port", a)
		}
		connected := false
		c := e.connect(addr, func(c *meerkat.Conn, ev meerkat.Event, _ any) {
			if ev == meerkat.EvConnect {
				connected = true
			}
		})
		e.pollUntil(5*time.Second, "connect and accept", func() bool { return connected && accepted != nil && accepted.LocalAddr() == la })
		if c.RemoteAddr() != la || accepted.LocalAddr() != la {
			t.Errorf("client RemoteAddr %v, accepted LocalAddr %v; want %v", c.RemoteAddr(), accepted.LocalAddr(), la)
		}
		if c.LocalAddr() != accepted.RemoteAddr() || c.LocalAddr().Port() == 0 {
			t.Errorf("client LocalAddr %v, accepted RemoteAddr %v; want equal, with a port", c.LocalAddr(), accepted.RemoteAddr())
		}
	})
}

// TestIdleTimeoutClosesIdleConnections: with IdleTimeout 200 ms, a
// connection whose peer keeps sending stays open; once it falls silent it
// gets EvError (ErrIdleTimeout) and EvClose about 200 ms later. The
// listener is not affected and keeps accepting.
func TestIdleTimeoutClosesIdleConnections(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		var conns []*meerkat.Conn
		var closedAt time.Time
		ready := false
		l, addr := e.listen(func(c *meerkat.Conn, ev meerkat.Event, _ any) {
			switch ev {
			case meerkat.EvAccept:
				conns = append(conns, c)
				ready = !useTLS
			case meerkat.EvTLSHandshake:
				ready = true
			case meerkat.EvRead:
				c.Recv().Consume(c.Recv().Len())
			case meerkat.EvClose:
				if closedAt.IsZero() {
					closedAt = time.Now()
				}
			}
		})
		peer := e.dialPeer(addr)
		defer peer.Close()
		handshake := make(chan error, 1)
		go func() {
			var err error
			if tc, ok := peer.(*tls.Conn); ok {
				err = tc.Handshake()
			}
			handshake <- err
		}()
		var herr error
		peerReady := false
		e.pollUntil(10*time.Second, "the handshake", func() bool {
			select {
			case herr = <-handshake:
				peerReady = true
			default:
			}
			return ready && peerReady
		})
		if herr != nil {
			t.Fatalf("peer handshake: %v", herr)
		}
		// From now on (a slow handshake on a loaded machine is not idleness).
		e.m.IdleTimeout = 200 * time.Millisecond

		type writerDone struct {
			last time.Time
			err  error
		}
		writer := make(chan writerDone, 1)
		go func() {
			var d writerDone
			for range 16 { // 480 ms of activity, a byte every 30 ms
				if _, d.err = peer.Write([]byte("x")); d.err != nil {
					break
				}
				d.last = time.Now()
				time.Sleep(30 * time.Millisecond)
			}
			writer <- d
			io.Copy(io.Discard, peer) // until the server closes
		}()
		var w writerDone
		written := false
		e.pollUntil(10*time.Second, "the idle close", func() bool {
			select {
			case w = <-writer:
				written = true
				if w.err != nil {
					t.Fatalf("peer write: %v", w.err)
				}
			default:
			}
			if !closedAt.IsZero() && !written {
				t.Fatalf("connection closed at %v while its peer was still sending", closedAt)
			}
			return !closedAt.IsZero()
		})
		last := w.last
		if len(conns) != 1 {
			t.Fatalf("%d connections accepted, want 1", len(conns))
		}
		errs := e.chk.errorsOf(conns[0])
		if len(errs) != 1 || !errors.Is(errs[0], meerkat.ErrIdleTimeout) {
			t.Fatalf("errors %v, want one ErrIdleTimeout", errs)
		}
		if ev := e.chk.events(conns[0]); len(ev) < 2 || ev[len(ev)-2] != meerkat.EvError {
			t.Fatalf("events %v, want ... EvError EvClose", summarize(ev))
		}
		if idle := closedAt.Sub(last); idle < 190*time.Millisecond || idle > 2*time.Second {
			t.Fatalf("closed %v after the last byte, want about 200 ms", idle)
		}
		t.Logf("closed %v after the last byte: %v", closedAt.Sub(last), errs[0])

		// The listener outlives several idle periods and still accepts.
		for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
			e.m.Poll(20 * time.Millisecond)
		}
		if e.chk.closed(l) || l.IsClosing() {
			t.Fatal("the idle timeout closed the listener")
		}
		p2 := e.dialPeer(addr)
		defer p2.Close()
		if tc, ok := p2.(*tls.Conn); ok {
			go tc.Handshake()
		}
		e.pollUntil(5*time.Second, "a second accept", func() bool { return len(conns) == 2 })
	})
}

// TestConnsIteratesLiveConnections: Conns yields every live connection
// once, the listener included; closing connections inside the loop is
// allowed and does not cut the iteration short, and closed connections are
// gone after the Poll that closed them.
func TestConnsIteratesLiveConnections(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		accepted := 0
		l, addr := e.listen(func(c *meerkat.Conn, ev meerkat.Event, _ any) {
			if ev == meerkat.EvAccept {
				accepted++
			}
		})
		connected := 0
		var clients []*meerkat.Conn
		for range 3 {
			clients = append(clients, e.connect(addr, func(c *meerkat.Conn, ev meerkat.Event, _ any) {
				if ev == meerkat.EvConnect {
					connected++
				}
			}))
		}
		e.pollUntil(5*time.Second, "3 connects and accepts", func() bool { return accepted == 3 && connected == 3 })
		ids := map[uint64]bool{}
		for c := range e.m.Conns() {
			if ids[c.ID()] {
				t.Fatalf("Conns yielded conn %d twice", c.ID())
			}
			ids[c.ID()] = true
		}
		if len(ids) != 7 || !ids[l.ID()] {
			t.Fatalf("Conns yielded %d connections (listener included: %v), want 7", len(ids), ids[l.ID()])
		}
		for range e.m.Conns() {
			break // stopping early is allowed
		}

		visited := 0
		for c := range e.m.Conns() {
			visited++
			if c.IsClient() {
				c.Close()
			}
		}
		if visited != 7 {
			t.Fatalf("closing inside the loop: visited %d connections, want 7", visited)
		}
		e.m.Poll(0)
		for _, c := range clients {
			if !e.chk.closed(c) {
				t.Fatalf("client %d not closed by the Poll after Close", c.ID())
			}
		}
		e.pollUntil(5*time.Second, "the accepted connections to close", func() bool {
			n := 0
			for c := range e.m.Conns() {
				if c != l {
					n++
				}
			}
			return n == 0
		})
		n := 0
		for range e.m.Conns() {
			n++
		}
		if n != 1 {
			t.Fatalf("%d live connections, want the listener only", n)
		}
	})
}

// mgrFlags lists the read-only flags set on c.
func mgrFlags(c *meerkat.Conn) string {
	var f []string
	for _, x := range []struct {
		name string
		on   bool
	}{
		{"client", c.IsClient()}, {"accepted", c.IsAccepted()}, {"listening", c.IsListening()},
		{"udp", c.IsUDP()}, {"tls", c.IsTLS()}, {"closing", c.IsClosing()},
		{"draining", c.IsDraining()}, {"full", c.IsFull()},
	} {
		if x.on {
			f = append(f, x.name)
		}
	}
	return strings.Join(f, ",")
}

// TestConnFlagsFollowState: IsClient, IsAccepted, IsListening, IsUDP, IsTLS,
// IsClosing, IsDraining and IsFull are right at each stage of a
// connection's life: open, connected, handshaken, full, draining, closed.
func TestConnFlagsFollowState(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		const limit = 1024
		e.m.RecvLimit = limit
		tlsFlag := ""
		if useTLS {
			tlsFlag = ",tls"
		}
		seen := map[string]string{} // "side event" -> flags
		ready := map[string]bool{}
		var server *meerkat.Conn
		received := 0
		consume := false
		l, addr := e.listen(func(c *meerkat.Conn, ev meerkat.Event, _ any) {
			switch ev {
			case meerkat.EvOpen, meerkat.EvAccept, meerkat.EvTLSHandshake, meerkat.EvClose:
				seen["server "+ev.String()] = mgrFlags(c)
			}
			switch ev {
			case meerkat.EvAccept:
				server = c
				ready["server"] = !useTLS
			case meerkat.EvTLSHandshake:
				ready["server"] = true
			case meerkat.EvRead:
				if consume {
					received += c.Recv().Len()
					c.Recv().Consume(c.Recv().Len())
				}
			}
		})
		if got := mgrFlags(l); got != "listening" {
			t.Errorf("listener flags %q, want %q", got, "listening")
		}
		var client *meerkat.Conn
		client = e.connect(addr, func(c *meerkat.Conn, ev meerkat.Event, _ any) {
			switch ev {
			case meerkat.EvOpen, meerkat.EvConnect, meerkat.EvTLSHandshake, meerkat.EvClose:
				seen["client "+ev.String()] = mgrFlags(c)
			}
			switch ev {
			case meerkat.EvConnect:
				ready["client"] = !useTLS
			case meerkat.EvTLSHandshake:
				ready["client"] = true
			}
		})
		if got := mgrFlags(client); got != "client" {
			t.Errorf("client flags while connecting %q, want %q", got, "client")
		}
		e.pollUntil(5*time.Second, "both sides ready", func() bool { return ready["server"] && ready["client"] })
		if got := mgrFlags(server); got != "accepted"+tlsFlag {
			t.Errorf("idle accepted flags %q", got)
		}

		// Full: the server consumes nothing until told to.
		payload := bytes.Repeat([]byte("f"), 4*limit)
		client.Send(payload)
		e.pollUntil(5*time.Second, "the server's buffer to fill", server.IsFull)
		if got, want := mgrFlags(server), "accepted"+tlsFlag+",full"; got != want {
			t.Errorf("full server flags %q, want %q", got, want)
		}
		if n := server.Recv().Len(); n != limit {
			t.Errorf("full receive buffer holds %d bytes, want RecvLimit %d", n, limit)
		}
		received = server.Recv().Len()
		server.Recv().Consume(received)
		consume = true
		if server.IsFull() {
			t.Error("IsFull still true after consuming everything")
		}
		e.pollUntil(5*time.Second, "the rest of the payload", func() bool { return received == len(payload) })

		// Draining: the client drains; the server sees its EOF and drains too.
		client.Drain()
		if got, want := mgrFlags(client), "client"+tlsFlag+",draining"; got != want {
			t.Errorf("after Drain: client flags %q, want %q", got, want)
		}
		e.pollUntil(5*time.Second, "both closes", func() bool { return e.chk.closed(client) && e.chk.closed(server) })
		want := map[string]string{
			"server EvOpen":    "accepted",
			"server EvAccept":  "accepted",
			"server EvClose":   "accepted" + tlsFlag + ",closing,draining",
			"client EvOpen":    "client",
			"client EvConnect": "client",
			"client EvClose":   "client" + tlsFlag + ",closing,draining",
		}
		if useTLS {
			want["server EvTLSHandshake"] = "accepted,tls"
			want["client EvTLSHandshake"] = "client,tls"
		}
		for k, w := range want {
			if seen[k] != w {
				t.Errorf("%s: flags %q, want %q", k, seen[k], w)
			}
		}

		// Closing: set by Close at once.
		c2 := e.connect(addr, nil)
		c2.Close()
		if got := mgrFlags(c2); got != "client,closing" {
			t.Errorf("after Close: flags %q, want %q", got, "client,closing")
		}
		e.m.Poll(0)
		if !e.chk.closed(c2) {
			t.Error("Close before the connect finished: no EvClose at the end of the next Poll")
		}
	})
}

// TestUserDataRoundTrips: UserData set in EvOpen is the same value in every
// later event, EvClose included, and each connection keeps its own.
func TestUserDataRoundTrips(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		type session struct {
			id     uint64
			events int
		}
		var bad []string
		closed := 0
		h := func(c *meerkat.Conn, ev meerkat.Event, _ any) {
			if ev == meerkat.EvOpen {
				if c.UserData != nil {
					bad = append(bad, fmt.Sprintf("conn %d: UserData %v before it was set", c.ID(), c.UserData))
				}
				c.UserData = &session{id: c.ID()}
				return
			}
			s, ok := c.UserData.(*session)
			if !ok || s.id != c.ID() {
				bad = append(bad, fmt.Sprintf("conn %d %v: UserData %#v", c.ID(), ev, c.UserData))
				return
			}
			s.events++
			if ev == meerkat.EvClose {
				closed++
			}
		}
		_, addr := e.listen(h)
		c1 := e.connect(addr, h)
		c2 := e.connect(addr, h)
		e.pollUntil(5*time.Second, "two accepts", func() bool { return e.chk.count(meerkat.EvAccept) == 2 })
		c1.Close()
		c2.Close()
		e.pollUntil(5*time.Second, "four closes", func() bool { return closed == 4 })
		if len(bad) > 0 {
			t.Fatal(bad)
		}
		if s := c1.UserData.(*session); s.events < 2 { // EvConnect ... EvClose
			t.Fatalf("client session saw %d events after EvOpen", s.events)
		}
	})
}

// TestHexdumpWritesToOutput: a connection with Hexdump set dumps the
// plaintext it receives and sends to Manager.HexdumpOutput; a connection
// without it dumps nothing.
func TestHexdumpWritesToOutput(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		var out bytes.Buffer
		e.m.HexdumpOutput = &out
		var server *meerkat.Conn
		_, addr := e.listen(func(c *meerkat.Conn, ev meerkat.Event, data any) {
			if ev == meerkat.EvAccept {
				server = c
				c.Hexdump = true
			}
			echo(c, ev, data)
		})
		got := ""
		client := e.connect(addr, func(c *meerkat.Conn, ev meerkat.Event, _ any) {
			switch ev {
			case meerkat.EvConnect:
				c.Printf("hello hexdump")
			case meerkat.EvRead:
				got += string(c.Recv().Bytes())
				c.Recv().Consume(c.Recv().Len())
			}
		})
		e.pollUntil(5*time.Second, "the echo", func() bool { return got == "hello hexdump" })
		dump := out.String()
		t.Logf("hexdump:\n%s", dump)
		for _, want := range []string{
			fmt.Sprintf("conn %d <- 13 bytes", server.ID()),
			fmt.Sprintf("conn %d -> 13 bytes", server.ID()),
			"68 65 6c 6c 6f 20 68 65", // "hello he"
			"|hello hexdump|",
		} {
			if !strings.Contains(dump, want) {
				t.Errorf("hexdump lacks %q", want)
			}
		}
		if strings.Contains(dump, fmt.Sprintf("conn %d ", client.ID())) {
			t.Error("the client, without Hexdump, was dumped")
		}
	})
}

// TestShutdownDrainsThenCloses: Shutdown stops accepting (the listener
// closes first), lets queued output reach the peer whole, closes the
// Manager and returns nil once every connection has finished.
func TestShutdownDrainsThenCloses(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		payload := bytes.Repeat([]byte("shutdown"), 1<<20/8)
		var server *meerkat.Conn
		var closeOrder []string
		l, addr := e.listen(func(c *meerkat.Conn, ev meerkat.Event, _ any) {
			switch ev {
			case meerkat.EvRead:
				if server == nil {
					server = c
					c.Recv().Consume(c.Recv().Len())
					c.Send(payload)
				}
			case meerkat.EvClose:
				if c.IsListening() {
					closeOrder = append(closeOrder, "listener")
				} else {
					closeOrder = append(closeOrder, "conn")
				}
			}
		})
		got := make(chan int, 1)
		go func() {
			peer := e.dialPeer(addr)
			defer peer.Close()
			if _, err := peer.Write([]byte("request")); err != nil {
				t.Errorf("peer write: %v", err)
			}
			b, err := io.ReadAll(peer)
			if err != nil || !bytes.Equal(b, payload) {
				t.Errorf("peer got %d bytes (%v), want %d intact", len(b), err, len(payload))
			}
			got <- len(b)
		}()
		e.pollUntil(5*time.Second, "the request", func() bool { return server != nil })
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		start := time.Now()
		if err := e.m.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		t.Logf("Shutdown took %v", time.Since(start))
		select {
		case <-got:
		case <-time.After(5 * time.Second):
			t.Fatal("the peer did not finish")
		}
		if !e.chk.closed(l) || !e.chk.closed(server) {
			t.Fatal("Shutdown returned before every connection had its EvClose")
		}
		if fmt.Sprint(closeOrder) != "[listener conn]" {
			t.Errorf("close order %v, want the listener first", closeOrder)
		}
		if errs := e.chk.errorsOf(server); len(errs) != 0 {
			t.Errorf("the drained connection reported %v", errs)
		}
		if _, err := e.m.Listen("tcp://127.0.0.1:0", nil); !errors.Is(err, meerkat.ErrClosed) {
			t.Errorf("Listen after Shutdown: %v, want ErrClosed", err)
		}
		if nc, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			nc.Close()
			t.Error("the listener still accepts after Shutdown")
		}
	})
}

// TestShutdownGivesUpAtContextEnd: with a peer that neither reads nor
// closes, Shutdown returns ctx's error when ctx ends, with every connection
// closed and the Manager closed.
func TestShutdownGivesUpAtContextEnd(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		e.m.DrainTimeout = time.Minute
		var server *meerkat.Conn
		ready := false
		l, addr := e.listen(func(c *meerkat.Conn, ev meerkat.Event, _ any) {
			switch ev {
			case meerkat.EvAccept:
				server = c
				c.Send(bytes.Repeat([]byte("z"), 8<<20)) // more than the socket buffers take
				ready = !useTLS
			case meerkat.EvTLSHandshake:
				ready = true
			}
		})
		peer := e.dialPeer(addr)
		defer peer.Close()
		if tc, ok := peer.(*tls.Conn); ok {
			go tc.Handshake()
		}
		e.pollUntil(5*time.Second, "the accept", func() bool { return ready })
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := e.m.Shutdown(ctx)
		elapsed := time.Since(start)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown = %v, want context.DeadlineExceeded", err)
		}
		if elapsed < 200*time.Millisecond || elapsed > 2*time.Second {
			t.Fatalf("Shutdown with a 200 ms context took %v", elapsed)
		}
		if !e.chk.closed(l) || !e.chk.closed(server) {
			t.Fatal("connections left open after Shutdown gave up")
		}
		if _, err := e.m.Connect("tcp://"+addr, nil); !errors.Is(err, meerkat.ErrClosed) {
			t.Fatalf("Connect after Shutdown: %v, want ErrClosed", err)
		}
	})
}

// TestRunReturnsWhenContextCancelled: Run, blocked in Poll, returns soon
// after its context is cancelled from another goroutine (not a Poll timeout
// later), having shut the Manager down.
func TestRunReturnsWhenContextCancelled(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		polling := make(chan struct{})
		var once sync.Once
		l, _ := e.listen(func(c *meerkat.Conn, ev meerkat.Event, _ any) {
			if ev == meerkat.EvPoll {
				once.Do(func() { close(polling) })
			}
		})
		e.m.Wakeup(l.ID(), nil) // so that the first Poll does not wait
		cancelled := make(chan time.Time, 1)
		go func() {
			<-polling
			time.Sleep(50 * time.Millisecond) // let Run block in its Poll(1s)
			cancelled <- time.Now()
			cancel()
		}()
		err := e.m.Run(ctx)
		returned := time.Now()
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		var at time.Time
		select {
		case at = <-cancelled:
		default:
			t.Fatal("Run returned before its context was cancelled")
		}
		if d := returned.Sub(at); d > 700*time.Millisecond {
			t.Fatalf("Run returned %v after the cancel; the cancel should end the wait", d)
		}
		if !e.chk.closed(l) {
			t.Fatal("Run returned with the listener open")
		}
		if _, err := e.m.Listen("tcp://127.0.0.1:0", nil); !errors.Is(err, meerkat.ErrClosed) {
			t.Fatalf("Listen after Run: %v, want ErrClosed", err)
		}
	})
}

// TestCallsBetweenPollsTakeEffectAtOnce: Conn methods may be called between
// Polls (the Poll goroutine's own code, outside handlers). What they ask
// for is pending work, so the next Poll must not sleep its whole timeout
// first: Send is written, Close and Drain close, Consume of a full receive
// buffer resumes reading, and a Close in EvOpen of Connect ends the
// connection, all within a fraction of a Poll(1s).
func TestCallsBetweenPollsTakeEffectAtOnce(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		const limit = 1024
		e.m.RecvLimit = limit
		received := 0
		consume := true
		var servers []*meerkat.Conn
		_, addr := e.listen(func(c *meerkat.Conn, ev meerkat.Event, _ any) {
			switch ev {
			case meerkat.EvAccept:
				servers = append(servers, c)
			case meerkat.EvRead:
				if consume {
					received += c.Recv().Len()
					c.Recv().Consume(c.Recv().Len())
				}
			}
		})
		ready := map[*meerkat.Conn]bool{}
		onReady := func(c *meerkat.Conn, ev meerkat.Event, _ any) {
			if ev == meerkat.EvConnect && !useTLS || ev == meerkat.EvTLSHandshake {
				ready[c] = true
			}
		}
		newClient := func() *meerkat.Conn {
			c := e.connect(addr, onReady)
			e.pollUntil(5*time.Second, "the connection", func() bool { return ready[c] && len(servers) == len(ready) })
			for range 3 { // let the loop settle: nothing pending
				e.m.Poll(10 * time.Millisecond)
			}
			return c
		}
		// within polls with Poll(1s) until cond holds, and fails if that
		// took anything like a Poll timeout.
		within := func(what string, cond func() bool) {
			t.Helper()
			start := time.Now()
			for !cond() {
				if time.Since(start) > 5*time.Second {
					t.Fatalf("%s: not done after 5 s", what)
				}
				e.m.Poll(time.Second)
			}
			if d := time.Since(start); d > 300*time.Millisecond {
				t.Errorf("%s took %v: Poll slept its timeout with work pending", what, d)
			}
		}

		c := newClient()
		c.Send([]byte("ping"))
		within("Send between Polls", func() bool { return received == 4 })

		c.Close()
		within("Close between Polls", func() bool { return e.chk.closed(c) })

		c = newClient()
		c.Drain()
		within("Drain between Polls", func() bool { return e.chk.closed(c) })

		c = newClient()
		server := servers[len(servers)-1]
		consume = false
		c.Send(bytes.Repeat([]byte("f"), 4*limit))
		e.pollUntil(5*time.Second, "a full receive buffer", server.IsFull)
		for range 3 {
			e.m.Poll(10 * time.Millisecond)
		}
		received = 4
		for range 4 {
			received += server.Recv().Len()
			server.Recv().Consume(server.Recv().Len())
			within("Consume of a full buffer between Polls", func() bool { return server.Recv().Len() > 0 || received == 4+4*limit })
		}
		if received != 4+4*limit {
			t.Fatalf("received %d bytes, want %d", received, 4+4*limit)
		}

		c, err := e.m.Connect(e.scheme()+"://"+addr, e.chk.wrap(func(c *meerkat.Conn, ev meerkat.Event, _ any) {
			if ev == meerkat.EvOpen {
				c.Close()
			}
		}))
		if err != nil {
			t.Fatal(err)
		}
		within("Close in Connect's EvOpen", func() bool { return e.chk.closed(c) })
		if ev := e.chk.events(c); fmt.Sprint(ev) != fmt.Sprint([]meerkat.Event{meerkat.EvOpen, meerkat.EvClose}) {
			t.Fatalf("events %v, want EvOpen EvClose", summarize(ev))
		}
	})
}

// TestPollAndShutdownFromHandler: Poll called from a handler (or timer)
// returns at once without running anything, and Shutdown called there is
// refused with an error: neither may re-enter the loop.
func TestPollAndShutdownFromHandler(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		inner, evPolls, nested := 0, 0, 0
		var pollTook time.Duration
		var shutdownErr error
		l, _ := e.listen(func(c *meerkat.Conn, ev meerkat.Event, _ any) {
			if ev == meerkat.EvPoll {
				evPolls++
			}
		})
		e.m.AddTimer(0, 0, func() {
			before := evPolls
			start := time.Now()
			e.m.Poll(time.Second)
			pollTook = time.Since(start)
			nested = evPolls - before
			shutdownErr = e.m.Shutdown(context.Background())
			inner++
		})
		e.pollUntil(5*time.Second, "the timer", func() bool { return inner == 1 })
		if pollTook > 100*time.Millisecond || nested != 0 {
			t.Errorf("Poll from a timer took %v and delivered %d EvPoll; want an immediate return doing nothing", pollTook, nested)
		}
		if shutdownErr == nil {
			t.Error("Shutdown from a timer returned nil")
		}
		e.m.Poll(0)
		if e.chk.closed(l) {
			t.Error("Shutdown from a timer closed the listener")
		}
	})
}

// TestManagerCloseLeavesNothingOpen: a handler that reconnects on EvClose
// (a common pattern) must not outlive Manager.Close: either Connect and
// Listen refuse with ErrClosed while the Manager is closing, or what they
// create gets its EvClose too. Afterwards every connection has had its
// EvClose and the goroutines and descriptors are back to their baseline.
func TestManagerCloseLeavesNothingOpen(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		base := snapshot()
		e := newEnv(t, drv, false)
		_, addr := e.listen(nil)
		var made []*meerkat.Conn
		var refusals []error
		var h meerkat.Handler
		h = e.chk.wrap(func(c *meerkat.Conn, ev meerkat.Event, _ any) {
			if ev != meerkat.EvClose || len(made)+len(refusals) >= 6 {
				return
			}
			for _, open := range []func() (*meerkat.Conn, error){
				func() (*meerkat.Conn, error) { return e.m.Connect("tcp://"+addr, h) },
				func() (*meerkat.Conn, error) { return e.m.Listen("tcp://127.0.0.1:0", h) },
			} {
				if nc, err := open(); err != nil {
					refusals = append(refusals, err)
				} else {
					made = append(made, nc)
				}
			}
		})
		c, err := e.m.Connect("tcp://"+addr, h)
		if err != nil {
			t.Fatal(err)
		}
		e.pollUntil(5*time.Second, "the accept", func() bool { return e.chk.count(meerkat.EvAccept) == 1 })
		e.m.Close()
		if !e.chk.closed(c) {
			t.Fatal("the client has no EvClose after Manager.Close")
		}
		for _, err := range refusals {
			if !errors.Is(err, meerkat.ErrClosed) {
				t.Errorf("Connect/Listen during Close: %v, want ErrClosed", err)
			}
		}
		for _, nc := range made {
			if !e.chk.closed(nc) {
				t.Errorf("conn %d, made by a handler during Manager.Close, never got EvClose (events %v)", nc.ID(), summarize(e.chk.events(nc)))
			}
		}
		expectBaseline(t, base, 5*time.Second)
	})
}
