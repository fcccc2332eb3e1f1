package harness

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// HTTPScenario is one HTTP benchmark of issue 3.
type HTTPScenario string

// The scenarios.
const (
	ScenarioHello    HTTPScenario = "hello"         // GET /, "Hello, World!", keep-alive
	ScenarioStatic   HTTPScenario = "static-1k"     // a 1 KiB file from each server's file server
	ScenarioBigFile  HTTPScenario = "file-100m"     // a 100 MiB file
	ScenarioTLSHello HTTPScenario = "tls-hello"     // hello world over TLS, keep-alive
	ScenarioTLSConns HTTPScenario = "tls-new-conns" // hello world over TLS with Connection: close: a handshake per request (wrk resumes sessions)
	// ScenarioTLSFull is ScenarioTLSConns against servers whose shared
	// tls.Config has SessionTicketsDisabled: no resumption, a full
	// handshake (certificate and signature) per connection.
	ScenarioTLSFull HTTPScenario = "tls-full-conns"
)

// HTTPScenarios lists every scenario, in the order they run and are shown.
var HTTPScenarios = []HTTPScenario{ScenarioHello, ScenarioStatic, ScenarioBigFile, ScenarioTLSHello, ScenarioTLSConns, ScenarioTLSFull}

// ParseHTTPScenarios parses a comma-separated list ("all" for every one).
func ParseHTTPScenarios(s string) ([]HTTPScenario, error) {
	if s == "" || s == "all" {
		return HTTPScenarios, nil
	}
	var out []HTTPScenario
	for _, f := range strings.Split(s, ",") {
		v := HTTPScenario(strings.TrimSpace(f))
		found := false
		for _, k := range HTTPScenarios {
			found = found || k == v
		}
		if !found {
			return nil, fmt.Errorf("unknown scenario %q (known: %v)", v, HTTPScenarios)
		}
		out = append(out, v)
	}
	return out, nil
}

// TLS reports whether the scenario runs over https.
func (s HTTPScenario) TLS() bool {
	return s == ScenarioTLSHello || s == ScenarioTLSConns || s == ScenarioTLSFull
}

// newConns reports whether each request is a new connection.
func (s HTTPScenario) newConns() bool { return s == ScenarioTLSConns || s == ScenarioTLSFull }

// The files in the served directory.
const (
	smallFile = "1k.txt"
	bigFile   = "big.bin"
)

// HTTPConfig configures an HTTP benchmark run.
type HTTPConfig struct {
	Servers   []HTTPServer
	Scenarios []HTTPScenario
	Runs      int           // measurements of each server in each scenario (1 when 0)
	Conns     int           // load connections (50 when 0)
	BigConns  int           // load connections for the big file (1 when 0)
	Duration  time.Duration // counted load per measurement
	Warmup    time.Duration // load before counting, on the same server process (none when 0)
	SmallSize int           // the static file's size (1024 when 0)
	BigSize   int64         // the big file's size (100 MiB when 0)
	// Pin runs each server on CPU 0 with GOMAXPROCS=1 (taskset); the load
	// pins itself (Wrk.CPU).
	Pin  bool
	Load Load   // the load generator (a Wrk, or GoLoad in tests)
	Dir  string // the served directory; a temporary one when empty
	// CPUProfileDir, if set, receives a CPU profile of each server
	// process: SCENARIO.SERVER.runN.cpu.pprof.
	CPUProfileDir string
	// QuietWait, if positive, makes each measurement first wait, up to
	// this long, until the machine is idle (less than 5% of its CPU time
	// busy over a second): on a shared machine, other work must not be
	// measured with the servers.
	QuietWait time.Duration
	// MaxOtherCPU, if positive, repeats a measurement (up to Retries more
	// times, keeping the least disturbed) during which the machine's CPU
	// time outside the server and the load exceeded it (see
	// HTTPResult.OtherCPU).
	MaxOtherCPU time.Duration
	Retries     int
	Log         io.Writer
}

func (cfg *HTTPConfig) defaults() {
	if cfg.Runs <= 0 {
		cfg.Runs = 1
	}
	if cfg.Conns <= 0 {
		cfg.Conns = 50
	}
	if cfg.BigConns <= 0 {
		cfg.BigConns = 1
	}
	if cfg.SmallSize <= 0 {
		cfg.SmallSize = 1024
	}
	if cfg.BigSize <= 0 {
		cfg.BigSize = 100 << 20
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.Load == nil {
		cfg.Load = GoLoad{}
	}
}

// HTTPResult is one measurement: one server, one scenario, one run.
type HTTPResult struct {
	Server    HTTPServer
	Scenario  HTTPScenario
	Run       int // 1, 2, ...
	Load      LoadResult
	ServerCPU time.Duration // the server process's CPU time (user+system) during the counted load
	Mallocs   uint64        // heap objects the server allocated during the counted load
	BodySize  int64         // bytes of each response body
	Conns     int           // the load's connections (opened during the counted load)
	// TLS handshakes the server completed during the counted load, full
	// and resumed (wrk keeps each connection's session for the next one).
	FullHandshakes, ResumedHandshakes int64
	// OtherCPU is the machine's busy CPU time during the counted load
	// (/proc/stat) less the server's and the load's: other processes,
	// and kernel work charged to no process (part of the loopback
	// network's softirq time). -1 if unknown.
	OtherCPU time.Duration
	Attempts int    // measurements made to get this one (see MaxOtherCPU)
	Profile  string // CPU profile file, if one was written
}

// PerCPUSecond is the number of requests answered per second of server CPU
// time (connections for ScenarioTLSConns and ScenarioTLSFull), 0 if
// unknown.
func (r HTTPResult) PerCPUSecond() float64 {
	if r.ServerCPU <= 0 {
		return 0
	}
	return float64(r.Load.Requests) / r.ServerCPU.Seconds()
}

// BytesPerSec is the response body bytes per second.
func (r HTTPResult) BytesPerSec() float64 {
	if r.Load.Duration <= 0 {
		return 0
	}
	return float64(r.Load.Requests) * float64(r.BodySize) / r.Load.Duration.Seconds()
}

// BytesPerCPUSecond is the response body bytes per second of server CPU.
func (r HTTPResult) BytesPerCPUSecond() float64 {
	return r.PerCPUSecond() * float64(r.BodySize)
}

// AllocsPerRequest is the server's heap allocations per request.
func (r HTTPResult) AllocsPerRequest() float64 {
	if r.Load.Requests == 0 {
		return 0
	}
	return float64(r.Mallocs) / float64(r.Load.Requests)
}

// RunHTTP measures every server in every scenario, cfg.Runs times, each
// measurement with a fresh server process: run by run, scenario by
// scenario, server after server, so that a drift of the machine touches
// every server alike.
func RunHTTP(cfg HTTPConfig) ([]HTTPResult, error) {
	cfg.defaults()
	if cfg.Pin && !Pinning() {
		return nil, errors.New("pinning needs taskset and two CPUs")
	}
	dir := cfg.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "meerkat-httpbench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	small, err := writeServedFiles(dir, cfg)
	if err != nil {
		return nil, err
	}
	if cfg.CPUProfileDir != "" {
		if err := os.MkdirAll(cfg.CPUProfileDir, 0o755); err != nil {
			return nil, err
		}
	}
	var results []HTTPResult
	for run := 1; run <= cfg.Runs; run++ {
		for _, sc := range cfg.Scenarios {
			for _, srv := range cfg.Servers {
				r, err := measureQuietly(srv, sc, run, dir, small, cfg)
				if err != nil {
					return results, fmt.Errorf("run %d, %s, %s: %w", run, sc, srv, err)
				}
				hs := ""
				if sc.TLS() {
					hs = fmt.Sprintf("  handshakes %d full, %d resumed", r.FullHandshakes, r.ResumedHandshakes)
				}
				fmt.Fprintf(cfg.Log, "run %d %-14s %-17s %10.0f req/s  p50 %-9v p99 %-9v CPU %5.2fs  %9.0f per CPU-s  %.4f allocs/req  load CPU %.2fs  other CPU %.2fs%s  %s\n",
					run, sc, srv, r.Load.Rate, r.Load.P50.Round(time.Microsecond), r.Load.P99.Round(time.Microsecond),
					r.ServerCPU.Seconds(), r.PerCPUSecond(), r.AllocsPerRequest(), r.Load.CPU.Seconds(), r.OtherCPU.Seconds(),
					hs, r.Load.Errors())
				results = append(results, r)
			}
		}
	}
	return results, nil
}

// measureQuietly measures srv in sc, waiting for an idle machine first and
// measuring again when other work disturbed the measurement, as cfg says.
func measureQuietly(srv HTTPServer, sc HTTPScenario, run int, dir string, small []byte, cfg HTTPConfig) (HTTPResult, error) {
	var best HTTPResult
	for attempt := 1; ; attempt++ {
		if cfg.QuietWait > 0 && !waitQuiet(cfg.QuietWait) {
			fmt.Fprintf(cfg.Log, "run %d %s %s: the machine was not idle within %v; measuring anyway\n", run, sc, srv, cfg.QuietWait)
		}
		r, err := measureHTTP(srv, sc, run, dir, small, cfg)
		if err != nil {
			return r, err
		}
		if attempt == 1 || r.OtherCPU < best.OtherCPU {
			best = r
		}
		best.Attempts = attempt
		if cfg.MaxOtherCPU <= 0 || r.OtherCPU <= cfg.MaxOtherCPU || attempt > cfg.Retries {
			return best, nil
		}
		fmt.Fprintf(cfg.Log, "run %d %s %s: %.2f CPU-s of other work during the run (%.0f req/s); again\n",
			run, sc, srv, r.OtherCPU.Seconds(), r.Load.Rate)
	}
}

// quietBusy is the share of the machine's CPU time that may be busy for it
// to count as idle.
const quietBusy = 0.05

// waitQuiet waits until the machine's CPUs were less than quietBusy busy
// over a second, for up to max; it reports whether they were.
func waitQuiet(max time.Duration) bool {
	deadline := time.Now().Add(max)
	b0, t0 := machineTicks()
	for {
		time.Sleep(time.Second)
		b1, t1 := machineTicks()
		if b0 < 0 || b1 < 0 {
			return false
		}
		if t1 > t0 && float64(b1-b0) < quietBusy*float64(t1-t0) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		b0, t0 = b1, t1
	}
}

// writeServedFiles writes the small and (if a scenario needs it) the big
// file into dir, and returns the small file's contents.
func writeServedFiles(dir string, cfg HTTPConfig) ([]byte, error) {
	line := []byte("Meerkat static file benchmark: 1 KiB of text, served again and again.\n")
	small := bytes.Repeat(line, cfg.SmallSize/len(line)+1)[:cfg.SmallSize]
	if err := os.WriteFile(filepath.Join(dir, smallFile), small, 0o644); err != nil {
		return nil, err
	}
	for _, sc := range cfg.Scenarios {
		if sc != ScenarioBigFile {
			continue
		}
		path := filepath.Join(dir, bigFile)
		if fi, err := os.Stat(path); err == nil && fi.Size() == cfg.BigSize {
			break
		}
		f, err := os.Create(path)
		if err != nil {
			return nil, err
		}
		block := bytes.Repeat([]byte("0123456789abcdef"), 64<<10/16)
		for left := cfg.BigSize; left > 0; left -= int64(len(block)) {
			if _, err := f.Write(block[:min(left, int64(len(block)))]); err != nil {
				f.Close()
				return nil, err
			}
		}
		if err := f.Close(); err != nil {
			return nil, err
		}
		break
	}
	return small, nil
}

// spec is the load of scenario sc against a server at addr.
func (sc HTTPScenario) spec(addr string, cfg HTTPConfig) LoadSpec {
	s := LoadSpec{URL: "http://" + addr + "/", Conns: cfg.Conns, Duration: cfg.Duration}
	switch sc {
	case ScenarioStatic:
		s.URL += smallFile
	case ScenarioBigFile:
		s.URL += bigFile
		s.Conns = cfg.BigConns
	case ScenarioTLSHello:
		s.URL = "https://" + addr + "/"
	case ScenarioTLSConns, ScenarioTLSFull:
		s.URL = "https://" + addr + "/"
		s.Close = true
	}
	return s
}

func measureHTTP(srv HTTPServer, sc HTTPScenario, run int, dir string, small []byte, cfg HTTPConfig) (r HTTPResult, err error) {
	r = HTTPResult{Server: srv, Scenario: sc, Run: run, BodySize: int64(len(HelloBody))}
	opt := childOptions{cpu: -1, env: []string{envRoot + "=" + dir}}
	if cfg.Pin {
		opt.cpu, opt.gomaxprocs = 0, 1
	}
	if cfg.CPUProfileDir != "" {
		r.Profile = filepath.Join(cfg.CPUProfileDir, fmt.Sprintf("%s.%s.run%d.cpu.pprof", sc, srv, run))
		opt.cpuProfile = r.Profile
	}
	kind := httpKind(srv, sc.TLS())
	if sc == ScenarioTLSFull {
		kind += tlsNoTickets
	}
	c, err := startChild(kind, opt)
	if err != nil {
		return r, err
	}
	defer func() {
		if serr := c.stop(); err == nil && serr != nil {
			err = serr
		}
	}()
	spec := sc.spec(c.addr, cfg)
	r.Conns = spec.Conns

	// Check the answer before measuring it.
	switch sc {
	case ScenarioStatic:
		r.BodySize = int64(len(small))
		_, err = probeHTTP(spec.URL, false, small, r.BodySize, "text/plain")
	case ScenarioBigFile:
		r.BodySize = cfg.BigSize
		_, err = probeHTTP(spec.URL, false, nil, r.BodySize, "")
	default:
		_, err = probeHTTP(spec.URL, spec.Close, helloBytes, r.BodySize, "text/plain")
	}
	if err != nil {
		return r, fmt.Errorf("probe: %w", err)
	}

	if cfg.Warmup > 0 {
		w := spec
		w.Duration = cfg.Warmup
		if _, err := cfg.Load.Run(w); err != nil {
			return r, fmt.Errorf("warm-up: %w", err)
		}
	}
	full0, res0, err := c.handshakes()
	if err != nil {
		return r, err
	}
	m0, err := c.mallocs()
	if err != nil {
		return r, err
	}
	t0 := cpuTicks(c.pid())
	busy0, _ := machineTicks()
	r.Load, err = cfg.Load.Run(spec)
	busy1, _ := machineTicks()
	t1 := cpuTicks(c.pid())
	if err != nil {
		return r, err
	}
	m1, err := c.mallocs()
	if err != nil {
		return r, err
	}
	full1, res1, err := c.handshakes()
	if err != nil {
		return r, err
	}
	r.ServerCPU, r.Mallocs = ticksBetween(t0, t1), m1-m0
	r.OtherCPU = -1
	if busy := ticksBetween(busy0, busy1); busy >= 0 && r.ServerCPU >= 0 && r.Load.CPU >= 0 {
		r.OtherCPU = busy - r.ServerCPU - r.Load.CPU
	}
	r.FullHandshakes, r.ResumedHandshakes = full1-full0, res1-res0
	if r.Load.Requests == 0 {
		return r, errors.New("no request completed")
	}
	return r, nil
}
