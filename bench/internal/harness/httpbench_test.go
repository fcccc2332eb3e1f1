package harness

import (
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestHTTPServersAnswer starts every HTTP server, plain and over TLS, in a
// child process and checks each answer the benchmarks measure: hello world
// (13 bytes of text/plain), the 1 KiB static file byte for byte, a big file
// whole (2 MiB here), and, with Connection: close, the answer followed by
// the server's close, so that wrk's figures count correct responses only.
func TestHTTPServersAnswer(t *testing.T) {
	dir := t.TempDir()
	cfg := HTTPConfig{Scenarios: []HTTPScenario{ScenarioBigFile}, BigSize: 2 << 20}
	cfg.defaults()
	small, err := writeServedFiles(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, srv := range HTTPServers {
		for _, useTLS := range []bool{false, true} {
			name := string(srv)
			scheme := "http"
			if useTLS {
				name, scheme = name+"+tls", "https"
			}
			t.Run(name, func(t *testing.T) {
				c, err := startChild(httpKind(srv, useTLS), childOptions{cpu: -1, env: []string{envRoot + "=" + dir}})
				if err != nil {
					t.Fatal(err)
				}
				defer func() {
					if err := c.stop(); err != nil {
						t.Error(err)
					}
				}()
				base := scheme + "://" + c.addr + "/"
				h, err := probeHTTP(base, false, helloBytes, int64(len(HelloBody)), "text/plain")
				if err != nil {
					t.Fatal("hello:", err)
				}
				if h.Get("Content-Length") != "13" {
					t.Errorf("hello: Content-Length %q, want 13", h.Get("Content-Length"))
				}
				if _, err := probeHTTP(base, true, helloBytes, int64(len(HelloBody)), "text/plain"); err != nil {
					t.Error("hello with Connection: close:", err)
				}
				if _, err := probeHTTP(base+smallFile, false, small, int64(len(small)), "text/plain"); err != nil {
					t.Error("static file:", err)
				}
				if _, err := probeHTTP(base+bigFile, false, nil, cfg.BigSize, ""); err != nil {
					t.Error("big file:", err)
				}
				if _, err := probeHTTP(base+"missing.txt", false, nil, 0, ""); err == nil || !strings.Contains(err.Error(), "404") {
					t.Errorf("missing file: %v, want a 404", err)
				}
			})
		}
	}
}

// TestHTTPSessionTickets checks what the two TLS connection scenarios
// measure: a client that keeps its session (as wrk does) resumes it on
// its next connection to a server of tls-new-conns, and cannot resume with
// a server of tls-full-conns (session tickets disabled), whose every
// handshake is full. The server's handshake counts must say so.
func TestHTTPSessionTickets(t *testing.T) {
	dir := t.TempDir()
	for _, srv := range HTTPServers {
		for _, noTickets := range []bool{false, true} {
			kind := httpKind(srv, true)
			if noTickets {
				kind += tlsNoTickets
			}
			t.Run(string(kind), func(t *testing.T) {
				c, err := startChild(kind, childOptions{cpu: -1, env: []string{envRoot + "=" + dir}})
				if err != nil {
					t.Fatal(err)
				}
				defer c.stop()
				cfg := ClientTLSConfig()
				cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
				var resumed []bool
				for range 3 {
					tc, err := tls.Dial("tcp", c.addr, cfg)
					if err != nil {
						t.Fatal(err)
					}
					tc.SetDeadline(time.Now().Add(exchangeTimeout))
					// A request and its whole answer: the TLS 1.3 session
					// ticket comes after the handshake.
					io.WriteString(tc, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
					b, err := io.ReadAll(tc)
					tc.Close()
					if err != nil || !strings.HasSuffix(string(b), HelloBody) {
						t.Fatalf("response %q, %v", b, err)
					}
					resumed = append(resumed, tc.ConnectionState().DidResume)
				}
				full, res, err := c.handshakes()
				if err != nil {
					t.Fatal(err)
				}
				want := []bool{false, true, true}
				if noTickets {
					want = []bool{false, false, false}
				}
				if !slices.Equal(resumed, want) {
					t.Errorf("client resumed %v, want %v", resumed, want)
				}
				if wantRes := int64(strings.Count(fmt.Sprint(want), "true")); res != wantRes || full != 3-wantRes {
					t.Errorf("server counted %d full and %d resumed handshakes, want %d and %d", full, res, 3-wantRes, wantRes)
				}
			})
		}
	}
}

// TestHTTPRunSmall runs the whole HTTP benchmark pipeline briefly with the
// Go load instead of wrk (no pinning, which would move the test process):
// every scenario on Meerkat's epoll server and net/http must complete
// requests, measure the server's CPU time and allocations, and yield a
// report with every table and every target checked.
func TestHTTPRunSmall(t *testing.T) {
	cfg := HTTPConfig{
		Servers:   []HTTPServer{HTTPMeerkatEpoll, HTTPNetHTTP, HTTPFastHTTP},
		Scenarios: HTTPScenarios,
		Runs:      1,
		Conns:     4,
		Duration:  200 * time.Millisecond,
		BigSize:   1 << 20,
		Load:      GoLoad{},
	}
	results, err := RunHTTP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != len(cfg.Servers)*len(cfg.Scenarios) {
		t.Fatalf("%d results, want %d", len(results), len(cfg.Servers)*len(cfg.Scenarios))
	}
	for _, r := range results {
		if r.Load.Requests == 0 || r.Load.P50 <= 0 || r.Load.P99 < r.Load.P50 {
			t.Errorf("%s %s: %d requests, p50 %v, p99 %v", r.Scenario, r.Server, r.Load.Requests, r.Load.P50, r.Load.P99)
		}
		if r.ServerCPU < 0 || r.Load.CPU <= 0 || r.OtherCPU == -1 || r.Mallocs == 0 && r.Server == HTTPNetHTTP {
			t.Errorf("%s %s: server CPU %v, load CPU %v, other CPU %v, %d allocations",
				r.Scenario, r.Server, r.ServerCPU, r.Load.CPU, r.OtherCPU, r.Mallocs)
		}
		if e := r.Load.Errors(); e != "" {
			t.Errorf("%s %s: %s", r.Scenario, r.Server, e)
		}
		// The Go load resumes no TLS session: a full handshake per
		// connection.
		switch hs := r.FullHandshakes + r.ResumedHandshakes; {
		case !r.Scenario.TLS() && hs != 0:
			t.Errorf("%s %s: %d TLS handshakes counted", r.Scenario, r.Server, hs)
		case r.Scenario == ScenarioTLSHello && (r.FullHandshakes != int64(cfg.Conns) || r.ResumedHandshakes != 0):
			t.Errorf("%s %s: %d full and %d resumed handshakes, want %d full", r.Scenario, r.Server, r.FullHandshakes, r.ResumedHandshakes, cfg.Conns)
		case r.Scenario.newConns() && (r.FullHandshakes < r.Load.Requests || r.ResumedHandshakes != 0):
			t.Errorf("%s %s: %d full and %d resumed handshakes for %d requests", r.Scenario, r.Server, r.FullHandshakes, r.ResumedHandshakes, r.Load.Requests)
		}
	}
	var b strings.Builder
	WriteHTTPReport(&b, cfg, results)
	report := b.String()
	for _, sc := range HTTPScenarios {
		if !strings.Contains(report, "### "+string(sc)+":") {
			t.Errorf("report has no table for %s", sc)
		}
	}
	for _, want := range []string{"| meerkat-epoll |", "| nethttp |", "| fasthttp |", "File of 1 MiB",
		"meerkat-epoll hello: ≥ 1.8× nethttp", "meerkat-epoll hello: ≥ 1.1× fasthttp", "meerkat-epoll static-1k: ≥ 2.0×",
		"meerkat-epoll file-100m: ≥ 0.9×", "meerkat-epoll tls-hello: ≥ 1.2×", "meerkat-epoll tls-new-conns: ≥ 0.9×", "meerkat-epoll tls-full-conns: ≥ 0.9×",
		"meerkat-epoll hello: no allocation per request", "handshakes resumed"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	t.Logf("\n%s", report)
}

// TestHTTPCPUProfile checks that a server process writes its CPU profile.
func TestHTTPCPUProfile(t *testing.T) {
	dir := t.TempDir()
	results, err := RunHTTP(HTTPConfig{
		Servers: []HTTPServer{HTTPMeerkatEpoll}, Scenarios: []HTTPScenario{ScenarioHello},
		Conns: 2, Duration: 100 * time.Millisecond, CPUProfileDir: dir,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(dir, "hello.meerkat-epoll.run1.cpu.pprof")
	if results[0].Profile != want {
		t.Errorf("profile %q, want %q", results[0].Profile, want)
	}
	if fi, err := os.Stat(want); err != nil || fi.Size() == 0 {
		t.Fatalf("CPU profile: %v (%v)", err, fi)
	}
}

const wrkSample = `Running 10s test @ http://127.0.0.1:33803/
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   318.30us  594.47us   7.95ms   92.40%
    Req/Sec    50.35k     6.06k   59.60k    63.64%
  Latency Distribution
     50%  165.00us
     75%  210.00us
     90%  638.00us
     99%    3.30ms
  550310 requests in 10.01s, 92.40MB read
  Socket errors: connect 0, read 12, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:  54976.02
Transfer/sec:      9.23MB
`

// TestParseWrk checks the reading of wrk's report: counts, duration, rate,
// the 50% and 99% latencies in their units, bytes, and the errors.
func TestParseWrk(t *testing.T) {
	r, err := ParseWrk(wrkSample)
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 550310 || r.Duration != 10010*time.Millisecond || r.Rate != 54976.02 {
		t.Errorf("requests %d in %v at %v/s", r.Requests, r.Duration, r.Rate)
	}
	if r.P50 != 165*time.Microsecond || r.P99 != 3300*time.Microsecond {
		t.Errorf("p50 %v, p99 %v", r.P50, r.P99)
	}
	if want := 92.40 * (1 << 20); r.BytesRead != int64(want) {
		t.Errorf("bytes read %d", r.BytesRead)
	}
	if r.SocketErrors != [4]int64{0, 12, 0, 3} || r.Non2xx != 7 {
		t.Errorf("errors %v, non-2xx %d", r.SocketErrors, r.Non2xx)
	}
	if e := r.Errors(); e != "socket errors: read 12, timeout 3, non-2xx/3xx 7" {
		t.Errorf("Errors() = %q", e)
	}
	noLatency := strings.Replace(wrkSample, "     99%    3.30ms\n", "", 1)
	if _, err := ParseWrk(noLatency); err == nil {
		t.Error("a report without the 99% latency was accepted")
	}
	if _, err := ParseWrk("unable to connect to 127.0.0.1:1 Connection refused\n"); err == nil {
		t.Error("a failed run was accepted")
	}
}

// TestWrkArgs checks the wrk command line: pinned with taskset, one thread,
// whole seconds, --latency, and the Connection: close header when asked.
func TestWrkArgs(t *testing.T) {
	got := strings.Join(Wrk{CPU: 1}.Args(LoadSpec{URL: "https://h/", Conns: 50, Duration: 10 * time.Second, Close: true}), " ")
	want := "taskset -c 1 wrk -t1 -c50 -d10s --latency -H Connection: close https://h/"
	if got != want {
		t.Errorf("args %q, want %q", got, want)
	}
	got = strings.Join(Wrk{Path: "/usr/bin/wrk", CPU: -1}.Args(LoadSpec{URL: "http://h/x", Conns: 1, Duration: 1500 * time.Millisecond}), " ")
	if want := "/usr/bin/wrk -t1 -c1 -d2s --latency http://h/x"; got != want {
		t.Errorf("args %q, want %q", got, want)
	}
}

// TestHTTPReportFigures checks the report's arithmetic on made-up results:
// medians and ranges, ratios per CPU-second, thousands separators, the
// allocation check, and verdicts computed run by run.
func TestHTTPReportFigures(t *testing.T) {
	mk := func(s HTTPServer, run int, reqs int64, cpu time.Duration, mallocs uint64) HTTPResult {
		return HTTPResult{Server: s, Scenario: ScenarioHello, Run: run, BodySize: 13, ServerCPU: cpu, Mallocs: mallocs, Conns: 50,
			Load: LoadResult{Requests: reqs, Duration: 10 * time.Second, Rate: float64(reqs) / 10, P50: time.Millisecond, P99: 2 * time.Millisecond}}
	}
	results := []HTTPResult{
		mk(HTTPMeerkatEpoll, 1, 1_000_000, 5*time.Second, 100),    // 200,000 per CPU-s
		mk(HTTPNetHTTP, 1, 900_000, 10*time.Second, 18*900_000),   // 90,000
		mk(HTTPMeerkatEpoll, 2, 1_100_000, 5*time.Second, 100),    // 220,000
		mk(HTTPNetHTTP, 2, 1_000_000, 10*time.Second, 18_000_000), // 100,000
		mk(HTTPMeerkatEpoll, 3, 800_000, 5*time.Second, 5000),     // 160,000; 5,000 allocations: 100 per connection
		mk(HTTPNetHTTP, 3, 800_000, 10*time.Second, 18*800_000),   // 80,000
	}
	var b strings.Builder
	WriteHTTPReport(&b, HTTPConfig{Duration: 10 * time.Second}, results)
	report := b.String()
	for _, want := range []string{
		"| meerkat-epoll | 100,000 (80,000 – 110,000) | 1.00 ms (1.00 ms – 1.00 ms) | 2.00 ms (2.00 ms – 2.00 ms) | 5.00 (5.00 – 5.00) | 200,000 (160,000 – 220,000) | 2.22× | 1.11× | — | — |",
		"| nethttp | 90,000 (80,000 – 100,000) |",
		"PASS meerkat-epoll hello: ≥ 1.8× nethttp per server CPU-second: 2.22× (runs 2.22×, 2.20×, 2.00×; held in 3 of 3)",
		"MISS meerkat-epoll hello: no allocation per request",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	results[4].Mallocs = 100
	b.Reset()
	WriteHTTPReport(&b, HTTPConfig{Duration: 10 * time.Second}, results)
	if !strings.Contains(b.String(), "PASS meerkat-epoll hello: no allocation per request") {
		t.Errorf("100 allocations for 50 connections not accepted:\n%s", b.String())
	}
	if got := strings.Join([]string{commas(1234567), commas(-1000), commas(12), commas(999)}, " "); got != "1,234,567 -1,000 12 999" {
		t.Errorf("commas: %s", got)
	}
}

// TestMachineTicks checks the machine-wide CPU accounting that finds
// other work during a measurement: busy time is part of the total, and
// burning CPU here makes it grow.
func TestMachineTicks(t *testing.T) {
	b0, t0 := machineTicks()
	if b0 < 0 || t0 <= b0 {
		t.Fatalf("busy %d of %d ticks", b0, t0)
	}
	for start := time.Now(); time.Since(start) < 100*time.Millisecond; {
	}
	b1, t1 := machineTicks()
	if b1 <= b0 || t1 <= t0 {
		t.Errorf("after 100 ms of work: busy %d -> %d, total %d -> %d ticks", b0, b1, t0, t1)
	}
}

// TestParseHTTPLists checks the server and scenario list syntax.
func TestParseHTTPLists(t *testing.T) {
	s, err := ParseHTTPServers("meerkat-epoll, nbio")
	if err != nil || len(s) != 2 || s[1] != HTTPNbio {
		t.Fatalf("ParseHTTPServers = %v, %v", s, err)
	}
	if _, err := ParseHTTPServers("nginx"); err == nil {
		t.Error("unknown server accepted")
	}
	sc, err := ParseHTTPScenarios("all")
	if err != nil || len(sc) != len(HTTPScenarios) {
		t.Fatalf("ParseHTTPScenarios(all) = %v, %v", sc, err)
	}
	if _, err := ParseHTTPScenarios("hello,tls"); err == nil {
		t.Error("unknown scenario accepted")
	}
}
