// Command httpbench runs issue 3's HTTP benchmarks: Meerkat (epoll and
// portable drivers), net/http, fasthttp and nbio, each in a child process
// pinned to CPU 0 with GOMAXPROCS=1, under wrk pinned to CPU 1
// (`wrk -t1 -c50 -d10s --latency`), in five scenarios: hello world, a 1 KiB
// static file, a 100 MiB file, hello world over TLS, and new TLS
// connections per second. It reports requests per second, p50/p99 latency,
// the server's CPU time and requests per server CPU-second, its heap
// allocations per request, the ratios to net/http (and to fasthttp for
// hello world) and issue 3's targets.
//
//	go run ./cmd/httpbench -runs 3
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/meerkat-net/meerkat/bench/internal/harness"
)

func main() {
	harness.MaybeServe()
	servers := flag.String("servers", "all", "comma-separated servers: "+joinServers())
	scenarios := flag.String("scenarios", "all", "comma-separated scenarios: "+joinScenarios())
	runs := flag.Int("runs", 3, "measurements of each server in each scenario (median and range reported)")
	conns := flag.Int("c", 50, "wrk connections")
	bigConns := flag.Int("bigc", 1, "wrk connections for the big file")
	dur := flag.Duration("d", 10*time.Second, "wrk duration per measurement (whole seconds)")
	warm := flag.Duration("warmup", time.Second, "wrk run before each measurement, on the same server process (0: none)")
	bigSize := flag.Int64("bigsize", 100<<20, "size of the big file in bytes")
	wrkPath := flag.String("wrk", "wrk", "wrk executable")
	pin := flag.Bool("pin", harness.Pinning(), "server on CPU 0 with GOMAXPROCS=1, wrk on CPU 1 (needs taskset)")
	dir := flag.String("dir", "", "directory for the served files (a temporary one by default)")
	cpuprof := flag.String("cpuprofile", "", "directory for a CPU profile of each server process")
	quiet := flag.Duration("quiet", 5*time.Minute, "before each measurement, wait up to this long for the machine to be idle (0: do not wait)")
	maxOther := flag.Duration("maxother", 500*time.Millisecond, "measure again when other work took more CPU time than this during a run (0: never)")
	retries := flag.Int("retries", 3, "measurements made again at most, each, with -maxother")
	flag.Parse()
	srvs, err := harness.ParseHTTPServers(*servers)
	if err == nil {
		var scs []harness.HTTPScenario
		if scs, err = harness.ParseHTTPScenarios(*scenarios); err == nil {
			run(harness.HTTPConfig{
				Servers: srvs, Scenarios: scs, Runs: *runs, Conns: *conns, BigConns: *bigConns,
				Duration: *dur, Warmup: *warm, BigSize: *bigSize, Pin: *pin, Dir: *dir,
				CPUProfileDir: *cpuprof, QuietWait: *quiet, MaxOtherCPU: *maxOther, Retries: *retries, Log: os.Stderr,
			}, *wrkPath)
			return
		}
	}
	fmt.Fprintln(os.Stderr, "httpbench:", err)
	os.Exit(2)
}

func run(cfg harness.HTTPConfig, wrkPath string) {
	if _, err := exec.LookPath(wrkPath); err != nil {
		fmt.Fprintln(os.Stderr, "httpbench: wrk is needed (Debian package wrk):", err)
		os.Exit(2)
	}
	w := harness.Wrk{Path: wrkPath, Threads: 1, CPU: -1}
	if cfg.Pin {
		w.CPU = 1
	}
	cfg.Load = w
	example := w.Args(harness.LoadSpec{URL: "http://127.0.0.1:PORT/", Conns: cfg.Conns, Duration: cfg.Duration})
	fmt.Printf("httpbench: %s, %d CPUs, %s\n", runtime.Version(), runtime.NumCPU(), time.Now().UTC().Format(time.RFC3339))
	fmt.Printf("load: %s\n", strings.Join(example, " "))
	if cfg.Pin {
		fmt.Printf("servers: taskset -c 0, GOMAXPROCS=1\n")
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Printf("load average before: %s", b)
	}
	fmt.Println()
	results, err := harness.RunHTTP(cfg)
	if len(results) > 0 {
		harness.WriteHTTPReport(os.Stdout, cfg, results)
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Printf("\nload average after: %s", b)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "httpbench:", err)
		os.Exit(1)
	}
}

func joinServers() string {
	var s []string
	for _, k := range harness.HTTPServers {
		s = append(s, string(k))
	}
	return strings.Join(s, ",")
}

func joinScenarios() string {
	var s []string
	for _, k := range harness.HTTPScenarios {
		s = append(s, string(k))
	}
	return strings.Join(s, ",")
}
