package harness

import (
	"strings"
	"testing"
	"time"
)

// TestWSServersEcho starts every WebSocket server, plain and with
// permessage-deflate, in its child process and checks what the benchmarks
// rely on: the handshake (and the extension agreed exactly when offered),
// the echo of a 32-byte, a 4 KiB and a 4 KiB JSON message, byte for byte
// (inflated with deflate, where the JSON echo must come compressed), and
// the server's count of open WebSocket connections, up and down.
func TestWSServersEcho(t *testing.T) {
	for _, srv := range WSServers {
		for _, deflate := range []bool{false, true} {
			tg := WSTarget{Server: srv, Deflate: deflate}
			t.Run(tg.String(), func(t *testing.T) {
				c, err := startChild(wsKind(srv, deflate), childOptions{cpu: -1})
				if err != nil {
					t.Fatal(err)
				}
				defer c.stop()
				clients, err := openWSClients(c.addr, 3, 3, deflate, wsMessage(32, false))
				if err != nil {
					t.Fatal(err)
				}
				if err := c.waitConns(3, 10*time.Second); err != nil {
					t.Fatal(err)
				}
				for _, wc := range clients {
					wc.nc.SetDeadline(time.Now().Add(10 * time.Second))
					for _, m := range []struct {
						size int
						json bool
					}{{32, false}, {4096, false}, {4096, true}, {4096, true}} {
						wc.setMessage(wsMessage(m.size, m.json))
						before := wc.compressed
						if err := wc.roundTrip(); err != nil {
							t.Fatalf("%s: %v", wsSizeName(m.size), err)
						}
						if got := wc.echoLen; !deflate && got != m.size {
							t.Fatalf("echo of %d bytes, want %d", got, m.size)
						}
						if deflate && m.json {
							if wc.compressed != before+1 {
								t.Fatal("the JSON echo did not come compressed")
							}
							if wc.echoLen >= m.size/2 {
								t.Fatalf("compressed JSON echo of %d bytes for %d", wc.echoLen, m.size)
							}
						}
					}
				}
				clients[0].close()
				if err := c.waitConns(2, 10*time.Second); err != nil {
					t.Fatal(err)
				}
				closeWSClients(clients[1:])
				if err := c.waitConns(0, 10*time.Second); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// TestWSMessage checks the messages' sizes and that the JSON one is JSON
// that compresses.
func TestWSMessage(t *testing.T) {
	for _, n := range []int{32, 1000, 4096} {
		if got := len(wsMessage(n, false)); got != n {
			t.Errorf("pattern of %d bytes, want %d", got, n)
		}
		j := wsMessage(n, true)
		if len(j) != n || j[0] != '[' || j[n-1] != ']' {
			t.Errorf("JSON of %d bytes: %q...%q", len(j), j[:min(8, n)], j[max(0, n-8):])
		}
	}
	if !strings.Contains(string(wsMessage(4096, true)), `{"id":1,"user":"user-7919"`) {
		t.Errorf("JSON: %.80s", wsMessage(4096, true))
	}
}

// TestWSBenchSmall runs the whole WebSocket benchmark briefly, without
// pinning (which would move the test process): every server completes
// round trips in every case, the compression cases echo compressed
// messages, every idle-memory measurement holds exactly its connections,
// and the report has a row for each and checks the targets.
func TestWSBenchSmall(t *testing.T) {
	cfg := WSConfig{
		Servers:          WSServers,
		Conns:            []int{4},
		Sizes:            []int{32, 4096},
		Duration:         100 * time.Millisecond,
		Warmup:           20 * time.Millisecond,
		Compression:      true,
		CompressionConns: 4,
		IdleConns:        20,
		Parallel:         4,
	}
	res, err := RunWS(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if want := len(WSServers)*2 + 4; len(res.Echo) != want {
		t.Fatalf("%d throughput results, want %d", len(res.Echo), want)
	}
	for _, r := range res.Echo {
		if r.RoundTrips == 0 || r.Rate() <= 0 {
			t.Errorf("%s %s: no round trips", r.Target, r.Case)
		}
		if r.Target.Deflate && (r.Compressed == 0 || r.EchoBytes >= r.Case.Size/2) {
			t.Errorf("%s %s: %d compressed echoes, %d bytes", r.Target, r.Case, r.Compressed, r.EchoBytes)
		}
		if !r.Target.Deflate && r.EchoBytes != r.Case.Size {
			t.Errorf("%s %s: echo of %d bytes", r.Target, r.Case, r.EchoBytes)
		}
	}
	if want := len(WSServers) + 4; len(res.Idle) != want {
		t.Fatalf("%d idle results, want %d", len(res.Idle), want)
	}
	for _, r := range res.Idle {
		if r.Before.Conns != 0 || r.After.Conns != 20 || r.After.RSSKiB <= 0 {
			t.Errorf("%s: connections %d -> %d, RSS %d KiB", r.Target, r.Before.Conns, r.After.Conns, r.After.RSSKiB)
		}
	}
	var b strings.Builder
	WriteWSReport(&b, cfg, res)
	out := b.String()
	for _, want := range []string{
		"| meerkat-epoll | 3", "| nbio | ", "| gorilla | on | ", "| meerkat-epoll+deflate | 4 KiB JSON, compressed |",
		"≥ 1.3× gorilla's round trips/s", "≤ 1.5 KiB per idle plain WebSocket connection",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	t.Logf("\n%s", out)
}

// TestWSReportArithmetic checks medians, ranges, ratios run by run and the
// target verdicts on made-up results.
func TestWSReportArithmetic(t *testing.T) {
	few := WSCase{Conns: 50, Size: 32}
	many := WSCase{Conns: 10000, Size: 32}
	var res WSResults
	add := func(s WSServer, cs WSCase, run int, rts int64, cpu time.Duration) {
		res.Echo = append(res.Echo, WSEchoResult{Target: WSTarget{Server: s}, Case: cs, Run: run,
			RoundTrips: rts, Elapsed: time.Second, ServerCPU: cpu, LoadCPU: time.Second / 2})
	}
	// gorilla: 100k, 110k, 90k rt/s; meerkat-epoll: 140k, 120k, 150k:
	// ratios 1.40, 1.09, 1.67, median 1.40 (met in 2 of 3 runs).
	for i, v := range []int64{100000, 110000, 90000} {
		add(WSGorilla, few, i+1, v, time.Second)
		add(WSGorilla, many, i+1, v/2, time.Second)
	}
	for i, v := range []int64{140000, 120000, 150000} {
		add(WSMeerkatEpoll, few, i+1, v, time.Second/2)
		add(WSMeerkatEpoll, many, i+1, v/2, time.Second/2) // same ratios: below 2×
	}
	idle := func(s WSServer, run int, after int64) {
		res.Idle = append(res.Idle, WSIdleResult{Target: WSTarget{Server: s}, Size: 32, Run: run,
			IdleMemResult: IdleMemResult{Conns: 1000, Before: Stats{RSSKiB: 10000}, After: Stats{RSSKiB: after}}})
	}
	idle(WSGorilla, 1, 37000)
	idle(WSMeerkatEpoll, 1, 11200) // 1.2 KiB per connection
	var b strings.Builder
	WriteWSReport(&b, WSConfig{}, res)
	out := b.String()
	for _, want := range []string{
		"| meerkat-epoll | 140,000 (120,000 – 150,000) | 280,000 (240,000 – 300,000) | 3.6 µs (3.3 µs – 4.2 µs) | 50 % | 0.00 s | 1.40× (1.09× – 1.67×) | 2.80× (2.18× – 3.33×) |",
		"| gorilla | 100,000 (90,000 – 110,000) |",
		"PASS meerkat-epoll, 50 connections × 32 B: ≥ 1.3× gorilla's round trips/s: 1.40× (1.09× – 1.67×) (median; met in 2 of 3 runs)",
		"MISS meerkat-epoll, 10,000 connections × 32 B: ≥ 2.0× gorilla's round trips/s",
		"| meerkat-epoll | 32 B | 0 → 0 | 10.9 | 1.20 | 0.00 | 0.00 | 0.04× |",
		"PASS meerkat-epoll: ≤ 1.5 KiB per idle plain WebSocket connection: 1.20 KiB",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if s := wsSummarize([]float64{4, 1, 3, 2}); s.med != 2.5 || s.lo != 1 || s.hi != 4 {
		t.Errorf("wsSummarize = %+v", s)
	}
	if got := wsComma(-1234567); got != "-1,234,567" {
		t.Errorf("wsComma = %q", got)
	}
}

// TestWSGoroutineLoad runs the throughput cases briefly with the other
// load generator, a goroutine per connection.
func TestWSGoroutineLoad(t *testing.T) {
	res, err := RunWS(WSConfig{
		Servers:  WSServers,
		Conns:    []int{4},
		Sizes:    []int{4096},
		Duration: 100 * time.Millisecond,
		Warmup:   20 * time.Millisecond,
		Load:     WSLoadGoroutines,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Echo {
		if r.RoundTrips == 0 || r.EchoBytes != 4096 {
			t.Errorf("%s: %d round trips, echo of %d bytes", r.Target, r.RoundTrips, r.EchoBytes)
		}
	}
}
