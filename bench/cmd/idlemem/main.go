// Command idlemem measures the resident memory each server holds per idle
// connection: for every server (Meerkat's epoll and portable drivers, plain
// and TLS; net/http with keep-alive, plain and TLS; a goroutine-per-
// connection net echo server, plain and TLS) it starts the server in a child
// process, records its memory, opens -n connections from this process that
// each do one small exchange and then stay open and idle, and records the
// server's memory again after a forced garbage collection.
//
//	go run ./cmd/idlemem -n 10000
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
	n := flag.Int("n", 10000, "idle connections per server")
	kinds := flag.String("servers", "all", "comma-separated servers to measure, or all")
	par := flag.Int("parallel", 32, "connections being set up at a time")
	prof := flag.String("heapprofile", "", "directory for a heap profile of each server (slows them; sampling every allocation)")
	flag.Parse()
	ks, err := harness.ParseKinds(*kinds)
	if err != nil {
		fmt.Fprintln(os.Stderr, "idlemem:", err)
		os.Exit(2)
	}
	fmt.Printf("idlemem: %d connections per server, %s, %d CPUs, %s\n\n",
		*n, runtime.Version(), runtime.NumCPU(), time.Now().UTC().Format(time.RFC3339))
	results, err := harness.RunIdleMem(harness.IdleMemConfig{
		Kinds: ks, Conns: *n, Parallel: *par, ProfileDir: *prof, Log: os.Stderr,
	})
	if len(results) > 0 {
		harness.WriteIdleMemReport(os.Stdout, results)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "idlemem:", err)
		os.Exit(1)
	}
}
