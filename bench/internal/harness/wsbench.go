package harness

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// WSCase is one echo load of the WebSocket benchmarks: Conns connections,
// each sending a Size-byte binary message and waiting for its echo before
// the next (a closed loop).
type WSCase struct {
	Conns int
	Size  int
	JSON  bool // a compressible JSON-like message instead of a byte pattern
}

func (c WSCase) String() string {
	s := fmt.Sprintf("%s connections × %s", wsComma(int64(c.Conns)), wsSizeName(c.Size))
	if c.JSON {
		s += " JSON"
	}
	return s
}

// file is the case's part of a profile's file name.
func (c WSCase) file() string {
	s := fmt.Sprintf("%dx%d", c.Conns, c.Size)
	if c.JSON {
		s += "json"
	}
	return s
}

// WSTarget is a server with or without permessage-deflate.
type WSTarget struct {
	Server  WSServer
	Deflate bool
}

func (t WSTarget) String() string {
	if t.Deflate {
		return string(t.Server) + wsDeflateSfx
	}
	return string(t.Server)
}

// WSConfig configures a WebSocket benchmark run.
type WSConfig struct {
	Servers  []WSServer
	Runs     int           // measurements of everything (1 when 0)
	Conns    []int         // connection counts of the throughput cases (50 and 10,000 when nil)
	Sizes    []int         // message sizes of the throughput cases (32 and 4096 when nil)
	Duration time.Duration // counted time per measurement (5 s when 0)
	Warmup   time.Duration // load before counting, same connections (1 s when 0)
	// Compression adds the compression cases: Meerkat (epoll) and gorilla,
	// each with permessage-deflate off and on, CompressionConns
	// connections echoing a CompressionSize-byte JSON-like message; and,
	// with IdleConns, their idle memory after one such message.
	Compression      bool
	CompressionConns int // 50 when 0
	CompressionSize  int // 4096 when 0
	// IdleConns connections are opened for the idle-memory measurement of
	// each server (none when 0).
	IdleConns int
	Parallel  int // connections being set up at a time (32 when 0)
	// Load is the load generator of the throughput cases: WSLoadEpoll
	// (the default where it exists: one goroutine, every socket in one
	// epoll set) or WSLoadGoroutines (a goroutine per connection doing
	// blocking Write and Read).
	Load string
	// Pin runs each server on CPU 0 with GOMAXPROCS=1 (taskset) and this
	// process, the load, on CPU 1 with GOMAXPROCS=1.
	Pin bool
	// CPUProfileDir, if set, receives a CPU profile of each throughput
	// server process: SERVER.CASE.runN.cpu.pprof (warm-up included).
	CPUProfileDir string
	Log           io.Writer
}

func (cfg *WSConfig) defaults() {
	if cfg.Runs <= 0 {
		cfg.Runs = 1
	}
	if cfg.Conns == nil {
		cfg.Conns = []int{50, 10000}
	}
	if cfg.Sizes == nil {
		cfg.Sizes = []int{32, 4096}
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 5 * time.Second
	}
	if cfg.Warmup <= 0 {
		cfg.Warmup = time.Second
	}
	if cfg.CompressionConns <= 0 {
		cfg.CompressionConns = 50
	}
	if cfg.CompressionSize <= 0 {
		cfg.CompressionSize = 4096
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 32
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.Load == "" {
		cfg.Load = WSLoadGoroutines
		if wsEpollAvailable {
			cfg.Load = WSLoadEpoll
		}
	}
}

// The load generators of the throughput cases.
const (
	WSLoadEpoll      = "epoll"
	WSLoadGoroutines = "goroutines"
)

// compressionServers are the servers of the compression cases, in cfg's
// order: Meerkat on the epoll driver and gorilla, where cfg has them.
func (cfg *WSConfig) compressionServers() []WSServer {
	var out []WSServer
	for _, s := range cfg.Servers {
		if s == WSMeerkatEpoll || s == WSGorilla {
			out = append(out, s)
		}
	}
	return out
}

// WSEchoResult is one throughput measurement.
type WSEchoResult struct {
	Target     WSTarget
	Case       WSCase
	Run        int
	RoundTrips int64         // counted round trips
	Elapsed    time.Duration // counted time
	ServerCPU  time.Duration // the server process's utime+stime while counting; -1 if unknown
	LoadCPU    time.Duration // this process's, while counting; -1 if unknown
	OtherCPU   time.Duration // the machine's busy time besides both, while counting; -1 if unknown
	Compressed int64         // echoes that came compressed (whole run)
	EchoBytes  int           // payload bytes of one echoed message (compressed size with deflate)
	Profile    string        // the server's CPU profile, if asked for
}

// Rate is the round trips per second.
func (r WSEchoResult) Rate() float64 { return float64(r.RoundTrips) / r.Elapsed.Seconds() }

// PerServerCPUSecond is the round trips per second of server CPU time, 0
// if unknown.
func (r WSEchoResult) PerServerCPUSecond() float64 {
	if r.ServerCPU <= 0 {
		return 0
	}
	return float64(r.RoundTrips) / r.ServerCPU.Seconds()
}

// ServerMicrosPerRT is the server's CPU time per round trip in µs, 0 if
// unknown.
func (r WSEchoResult) ServerMicrosPerRT() float64 {
	if r.ServerCPU < 0 || r.RoundTrips == 0 {
		return 0
	}
	return float64(r.ServerCPU) / float64(time.Microsecond) / float64(r.RoundTrips)
}

// LoadBusy is the share of its CPU the load used while counting (near 1:
// the load, not the server, set the rate); -1 if unknown.
func (r WSEchoResult) LoadBusy() float64 {
	if r.LoadCPU < 0 {
		return -1
	}
	return r.LoadCPU.Seconds() / r.Elapsed.Seconds()
}

// WSIdleResult is one idle-memory measurement: IdleMemResult's figures for
// a WebSocket server whose connections each echoed one message.
type WSIdleResult struct {
	Target WSTarget
	Size   int  // the message each connection echoed
	JSON   bool // a JSON-like message (compressed both ways with deflate)
	Run    int
	IdleMemResult
}

// WSResults are a whole run's measurements.
type WSResults struct {
	Echo    []WSEchoResult
	Idle    []WSIdleResult
	LoadAvg []string // /proc/loadavg before each run and after the last
}

// RunWS runs the WebSocket benchmarks: run after run, and in each the
// throughput cases (case by case, server after server), the compression
// cases and the idle-memory measurements, so that a drift of the machine
// touches every server alike. Each measurement has a fresh server process.
func RunWS(cfg WSConfig) (res WSResults, err error) {
	cfg.defaults()
	if cfg.Pin {
		if !Pinning() {
			return res, errors.New("pinning needs taskset and two CPUs")
		}
		if err := pinSelf(1); err != nil {
			return res, err
		}
	}
	defer func() { res.LoadAvg = append(res.LoadAvg, loadAvg()) }()
	for run := 1; run <= cfg.Runs; run++ {
		res.LoadAvg = append(res.LoadAvg, loadAvg())
		fmt.Fprintf(cfg.Log, "run %d, load average %s\n", run, res.LoadAvg[len(res.LoadAvg)-1])
		for _, conns := range cfg.Conns {
			for _, size := range cfg.Sizes {
				cs := WSCase{Conns: conns, Size: size}
				for _, srv := range cfg.Servers {
					if err := wsEcho(&res, WSTarget{Server: srv}, cs, run, cfg); err != nil {
						return res, err
					}
				}
			}
		}
		if cfg.Compression {
			cs := WSCase{Conns: cfg.CompressionConns, Size: cfg.CompressionSize, JSON: true}
			for _, srv := range cfg.compressionServers() {
				for _, deflate := range []bool{false, true} {
					if err := wsEcho(&res, WSTarget{Server: srv, Deflate: deflate}, cs, run, cfg); err != nil {
						return res, err
					}
				}
			}
		}
		if cfg.IdleConns > 0 {
			for _, srv := range cfg.Servers {
				if err := wsIdle(&res, WSTarget{Server: srv}, 32, false, run, cfg); err != nil {
					return res, err
				}
			}
			if cfg.Compression {
				for _, srv := range cfg.compressionServers() {
					for _, deflate := range []bool{false, true} {
						if err := wsIdle(&res, WSTarget{Server: srv, Deflate: deflate}, cfg.CompressionSize, true, run, cfg); err != nil {
							return res, err
						}
					}
				}
			}
		}
	}
	return res, nil
}

func wsEcho(res *WSResults, t WSTarget, cs WSCase, run int, cfg WSConfig) error {
	r, err := wsEchoOne(t, cs, run, cfg)
	if err != nil {
		return fmt.Errorf("run %d, %s, %s: %w", run, cs, t, err)
	}
	fmt.Fprintf(cfg.Log, "run %d %-28s %-22s %9.0f rt/s  %9.0f rt/server-CPU-s  load CPU %3.0f%%  other CPU %.2fs\n",
		run, cs, t, r.Rate(), r.PerServerCPUSecond(), 100*r.LoadBusy(), r.OtherCPU.Seconds())
	res.Echo = append(res.Echo, r)
	return nil
}

func wsIdle(res *WSResults, t WSTarget, size int, json bool, run int, cfg WSConfig) error {
	start := time.Now()
	r, err := wsIdleOne(t, size, json, run, cfg)
	if err != nil {
		return fmt.Errorf("run %d, idle memory, %s: %w", run, t, err)
	}
	fmt.Fprintf(cfg.Log, "run %d idle %-22s %s  %6d conns  RSS %7d -> %7d KiB  %6.2f KiB/conn  goroutines %d -> %d  (%v)\n",
		run, t, wsSizeName(size), r.Conns, r.Before.RSSKiB, r.After.RSSKiB, r.RSSPerConnKiB(),
		r.Before.Goroutines, r.After.Goroutines, time.Since(start).Round(time.Millisecond))
	res.Idle = append(res.Idle, r)
	return nil
}

func (cfg *WSConfig) childOptions() childOptions {
	opt := childOptions{cpu: -1}
	if cfg.Pin {
		opt.cpu, opt.gomaxprocs = 0, 1
	}
	return opt
}

func wsEchoOne(t WSTarget, cs WSCase, run int, cfg WSConfig) (r WSEchoResult, err error) {
	r = WSEchoResult{Target: t, Case: cs, Run: run}
	opt := cfg.childOptions()
	if cfg.CPUProfileDir != "" {
		if err := os.MkdirAll(cfg.CPUProfileDir, 0o755); err != nil {
			return r, err
		}
		r.Profile = filepath.Join(cfg.CPUProfileDir, fmt.Sprintf("%s.%s.run%d.cpu.pprof", t, cs.file(), run))
		opt.cpuProfile = r.Profile
	}
	c, err := startChild(wsKind(t.Server, t.Deflate), opt)
	if err != nil {
		return r, err
	}
	var clients []*wsClient
	defer func() {
		// The server goes first: its sockets, not the clients' ephemeral
		// ports, keep the TIME_WAIT entries.
		if serr := c.stop(); err == nil && serr != nil {
			err = serr
		}
		closeWSClients(clients)
	}()
	msg := wsMessage(cs.Size, cs.JSON)
	if clients, err = openWSClients(c.addr, cs.Conns, cfg.Parallel, t.Deflate, msg); err != nil {
		return r, err
	}
	if err := c.waitConns(int64(cs.Conns), 30*time.Second); err != nil {
		return r, err
	}

	var counting, stop atomic.Bool
	deadline := time.Now().Add(cfg.Warmup + cfg.Duration + exchangeTimeout)
	var wait func() (int64, error)
	switch cfg.Load {
	case WSLoadEpoll:
		wait = wsEpollLoad(clients, &counting, &stop, deadline)
	case WSLoadGoroutines:
		wait = wsGoroutineLoad(clients, &counting, &stop, deadline)
	default:
		return r, fmt.Errorf("unknown load %q", cfg.Load)
	}
	time.Sleep(cfg.Warmup)
	cpu0, load0 := cpuTicks(c.pid()), cpuTicks(os.Getpid())
	busy0, _ := machineTicks()
	start := time.Now()
	counting.Store(true)
	time.Sleep(cfg.Duration)
	counting.Store(false)
	r.Elapsed = time.Since(start)
	cpu1, load1 := cpuTicks(c.pid()), cpuTicks(os.Getpid())
	busy1, _ := machineTicks()
	stop.Store(true)
	if r.RoundTrips, err = wait(); err != nil {
		return r, err
	}
	for _, wc := range clients {
		r.Compressed += wc.compressed
	}
	r.EchoBytes = clients[0].echoLen
	r.ServerCPU, r.LoadCPU = ticksBetween(cpu0, cpu1), ticksBetween(load0, load1)
	r.OtherCPU = -1
	if busy := ticksBetween(busy0, busy1); busy >= 0 && r.ServerCPU >= 0 && r.LoadCPU >= 0 {
		r.OtherCPU = max(busy-r.ServerCPU-r.LoadCPU, 0)
	}
	switch {
	case r.RoundTrips == 0:
		return r, errors.New("no round trip counted")
	case t.Deflate && r.Compressed == 0:
		return r, errors.New("no echo came compressed")
	}
	return r, nil
}

// wsGoroutineLoad starts the closed loop with a goroutine per client and
// returns the function that waits for its end (after stop) and returns the
// round trips counted.
func wsGoroutineLoad(clients []*wsClient, counting, stop *atomic.Bool, deadline time.Time) func() (int64, error) {
	counts := make([]atomic.Int64, len(clients))
	var wg sync.WaitGroup
	var once sync.Once
	var loadErr error
	for i, wc := range clients {
		wc.nc.SetDeadline(deadline)
		wg.Go(func() {
			for !stop.Load() {
				if err := wc.roundTrip(); err != nil {
					once.Do(func() { loadErr = err })
					return
				}
				if counting.Load() {
					counts[i].Add(1)
				}
			}
		})
	}
	return func() (int64, error) {
		wg.Wait()
		var n int64
		for i := range counts {
			n += counts[i].Load()
		}
		return n, loadErr
	}
}

// wsEpollLoad is wsGoroutineLoad with the epoll load: one goroutine.
func wsEpollLoad(clients []*wsClient, counting, stop *atomic.Bool, deadline time.Time) func() (int64, error) {
	type result struct {
		n   int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := wsRunEpoll(clients, counting, stop, deadline)
		done <- result{n, err}
	}()
	return func() (int64, error) {
		r := <-done
		return r.n, r.err
	}
}

func wsIdleOne(t WSTarget, size int, json bool, run int, cfg WSConfig) (r WSIdleResult, err error) {
	r = WSIdleResult{Target: t, Size: size, JSON: json, Run: run}
	kind := wsKind(t.Server, t.Deflate)
	r.IdleMemResult = IdleMemResult{Kind: kind, Conns: cfg.IdleConns}
	c, err := startChild(kind, cfg.childOptions())
	if err != nil {
		return r, err
	}
	var clients []*wsClient
	defer func() {
		if serr := c.stop(); err == nil && serr != nil {
			err = serr
		}
		closeWSClients(clients)
	}()
	if r.Before, err = c.stats(); err != nil {
		return r, err
	}
	if clients, err = openWSClients(c.addr, cfg.IdleConns, cfg.Parallel, t.Deflate, wsMessage(size, json)); err != nil {
		return r, err
	}
	if err := c.waitConns(int64(cfg.IdleConns), time.Minute); err != nil {
		return r, err
	}
	// As idlemem: measure until two readings agree on the goroutine count.
	for range 20 {
		if r.After, err = c.stats(); err != nil {
			return r, err
		}
		time.Sleep(100 * time.Millisecond)
		again, err := c.stats()
		if err != nil {
			return r, err
		}
		if again.Goroutines == r.After.Goroutines {
			r.After = again
			break
		}
	}
	if r.After.Conns != int64(cfg.IdleConns) {
		return r, fmt.Errorf("%d connections open at the measurement, want %d", r.After.Conns, cfg.IdleConns)
	}
	return r, nil
}

// loadAvg is the first three fields of /proc/loadavg ("?" without it).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// wsSizeName writes a message size as "32 B" or "4 KiB".
func wsSizeName(n int) string {
	if n >= 1024 && n%1024 == 0 {
		return fmt.Sprintf("%d KiB", n/1024)
	}
	return fmt.Sprintf("%d B", n)
}

// wsComma writes n with thousands separators.
func wsComma(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
