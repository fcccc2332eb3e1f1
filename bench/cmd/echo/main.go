// Command echo measures echo round trips per second of Meerkat's epoll and
// portable drivers and of a goroutine-per-connection net server, each in a
// child process, with the load (-c connections, each sending an -size-byte
// message and reading its echo before the next) in this process. Where
// taskset exists, the server runs on CPU 0 and the load on CPU 1.
//
//	go run ./cmd/echo -c 50 -size 32 -d 5s
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/meerkat-net/meerkat/bench/internal/harness"
)

func main() {
	harness.MaybeServe()
	conns := flag.Int("c", 50, "client connections")
	idle := flag.Int("idle", 0, "further connections held open and idle during the run")
	size := flag.Int("size", 32, "message size in bytes")
	dur := flag.Duration("d", 5*time.Second, "counted time per server")
	warm := flag.Duration("warmup", time.Second, "warm-up time per server")
	kinds := flag.String("servers", "meerkat-epoll,meerkat-portable,netecho", "comma-separated echo servers")
	pin := flag.Bool("pin", harness.Pinning(), "server on CPU 0, load on CPU 1 (needs taskset)")
	cpuprof := flag.String("cpuprofile", "", "directory for a CPU profile of each server")
	flag.Parse()
	ks, err := harness.ParseKinds(*kinds)
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(2)
	}
	cfg := harness.EchoConfig{Kinds: ks, Conns: *conns, Idle: *idle, Size: *size, Warmup: *warm, Duration: *dur, Pin: *pin, CPUProfileDir: *cpuprof, Log: os.Stderr}
	fmt.Printf("echo: %s, %d CPUs, %s\n\n", runtime.Version(), runtime.NumCPU(), time.Now().UTC().Format(time.RFC3339))
	results, err := harness.RunEcho(cfg)
	if len(results) > 0 {
		harness.WriteEchoReport(os.Stdout, cfg, results)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
}
