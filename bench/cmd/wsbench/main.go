// Command wsbench measures WebSocket echo servers (issue 4): Meerkat on
// its epoll and portable drivers, gorilla/websocket on net/http and nbio,
// each in a child process pinned to CPU 0 with GOMAXPROCS=1, against a
// closed-loop load in this process pinned to CPU 1: round trips per second
// and per server CPU-second for 50 and 10,000 connections with 32-byte and
// 4 KiB messages, the cost of permessage-deflate (4 KiB JSON-like
// messages, on and off), and the resident memory per idle connection with
// 10,000 open.
//
//	go build -o /tmp/wsbench ./cmd/wsbench
//	/tmp/wsbench -runs 3
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/meerkat-net/meerkat/bench/internal/harness"
)

func main() {
	harness.MaybeServe()
	servers := flag.String("servers", "all", "comma-separated WebSocket servers (meerkat-epoll, meerkat-portable, gorilla, nbio), or all")
	runs := flag.Int("runs", 3, "measurements of everything, run after run")
	conns := flag.String("c", "50,10000", "comma-separated connection counts of the throughput cases")
	sizes := flag.String("size", "32,4096", "comma-separated message sizes of the throughput cases, in bytes")
	dur := flag.Duration("d", 5*time.Second, "counted time per measurement")
	warm := flag.Duration("warmup", time.Second, "load before counting")
	comp := flag.Bool("compression", true, "also measure permessage-deflate (meerkat-epoll and gorilla, 4 KiB JSON, off and on)")
	compConns := flag.Int("compression-c", 50, "connections of the compression cases")
	compSize := flag.Int("compression-size", 4096, "message size of the compression cases")
	idle := flag.Int("idle", 10000, "connections held open for the idle-memory measurement (0: none)")
	par := flag.Int("parallel", 32, "connections being set up at a time")
	load := flag.String("load", "", "load generator: epoll (one goroutine, the default on Linux) or goroutines (one per connection)")
	pin := flag.Bool("pin", harness.Pinning(), "server on CPU 0, load on CPU 1 (needs taskset)")
	cpuprof := flag.String("cpuprofile", "", "directory for a CPU profile of each throughput server process")
	flag.Parse()
	ss, err := harness.ParseWSServers(*servers)
	if err != nil {
		fail(2, err)
	}
	cs, err := ints(*conns)
	if err != nil {
		fail(2, fmt.Errorf("-c: %v", err))
	}
	zs, err := ints(*sizes)
	if err != nil {
		fail(2, fmt.Errorf("-size: %v", err))
	}
	cfg := harness.WSConfig{
		Servers: ss, Runs: *runs, Conns: cs, Sizes: zs, Duration: *dur, Warmup: *warm,
		Compression: *comp, CompressionConns: *compConns, CompressionSize: *compSize,
		IdleConns: *idle, Parallel: *par, Load: *load, Pin: *pin, CPUProfileDir: *cpuprof, Log: os.Stderr,
	}
	fmt.Printf("wsbench: %s, %d CPUs, %s\n\n", runtime.Version(), runtime.NumCPU(), time.Now().UTC().Format(time.RFC3339))
	res, err := harness.RunWS(cfg)
	if len(res.Echo) > 0 || len(res.Idle) > 0 {
		harness.WriteWSReport(os.Stdout, cfg, res)
	}
	if err != nil {
		fail(1, err)
	}
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func fail(code int, err error) {
	fmt.Fprintln(os.Stderr, "wsbench:", err)
	os.Exit(code)
}
