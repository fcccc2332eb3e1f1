package harness

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
)

// The harness runs each server in a child process: the same executable,
// started with the server's kind in envServe. The child listens on a free
// loopback port, prints "addr HOST:PORT", then answers commands read from
// its standard input, one per line, each with one line on standard output:
//
//	conns            -> "conns N" (connections open now)
//	stats            -> "stats {JSON Stats}" after a forced garbage collection
//	profile PATH     -> "ok" after writing a heap profile to PATH
//	mallocs          -> "mallocs N" (runtime.MemStats.Mallocs: heap objects allocated so far)
//	handshakes       -> "handshakes FULL RESUMED" (TLS handshakes of an HTTP benchmark server)
//	info             -> "info TEXT" (an MQTT benchmark broker's own counters; "-" for other servers)
//	quit (or EOF)    -> the server stops and the process exits
const (
	envServe       = "MEERKAT_BENCH_SERVE"
	envProfileRate = "MEERKAT_BENCH_MEMPROFILERATE"
	envCPUProfile  = "MEERKAT_BENCH_CPUPROFILE" // file for a CPU profile of the whole run
)

// Stats is a server process's memory, measured after a forced collection
// with unused memory returned to the OS.
type Stats struct {
	RSSKiB      int64  `json:"rss_kib"`      // VmRSS of /proc/self/status
	HeapInuse   uint64 `json:"heap_inuse"`   // runtime.MemStats.HeapInuse
	StackInuse  uint64 `json:"stack_inuse"`  // runtime.MemStats.StackInuse
	HeapObjects uint64 `json:"heap_objects"` // live heap objects
	Sys         uint64 `json:"sys"`          // runtime.MemStats.Sys
	Goroutines  int    `json:"goroutines"`
	Conns       int64  `json:"conns"` // connections the server has open
}

// MaybeServe turns the process into a benchmark server when the harness
// started it as one, and never returns then. Programs and tests that use the
// harness call it first thing in main or TestMain.
func MaybeServe() {
	kind := os.Getenv(envServe)
	if kind == "" {
		return
	}
	if err := serveChild(Kind(kind)); err != nil {
		fmt.Fprintf(os.Stderr, "bench server %s: %v\n", kind, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func serveChild(k Kind) error {
	if r := os.Getenv(envProfileRate); r != "" {
		n, err := strconv.Atoi(r)
		if err != nil {
			return fmt.Errorf("%s: %v", envProfileRate, err)
		}
		runtime.MemProfileRate = n
	}
	if path := os.Getenv(envCPUProfile); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	srv, err := startServer(k)
	if err != nil {
		return err
	}
	defer srv.Stop()
	out := bufio.NewWriter(os.Stdout)
	reply := func(format string, args ...any) {
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
	}
	reply("addr %s", srv.Addr())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(strings.TrimSpace(in.Text()), " ")
		switch cmd {
		case "conns":
			reply("conns %d", srv.Conns())
		case "stats":
			b, _ := json.Marshal(measure(srv))
			reply("stats %s", b)
		case "profile":
			if err := writeHeapProfile(arg); err != nil {
				reply("error %v", err)
			} else {
				reply("ok")
			}
		case "mallocs":
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			reply("mallocs %d", ms.Mallocs)
		case "handshakes":
			reply("handshakes %d %d", tlsFull.Load(), tlsResumed.Load())
		case "info":
			if in, ok := srv.(interface{ Info() string }); ok {
				reply("info %s", in.Info())
			} else {
				reply("info -")
			}
		case "quit":
			return nil
		default:
			reply("error unknown command %q", cmd)
		}
	}
	return in.Err()
}

// measure collects garbage, returns free memory to the OS and reports what
// the process holds.
func measure(srv server) Stats {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return Stats{
		RSSKiB:      vmRSS(),
		HeapInuse:   ms.HeapInuse,
		StackInuse:  ms.StackInuse,
		HeapObjects: ms.HeapObjects,
		Sys:         ms.Sys,
		Goroutines:  runtime.NumGoroutine(),
		Conns:       srv.Conns(),
	}
}

// vmRSS is the process's resident set in KiB, -1 where /proc is missing.
func vmRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := strings.Fields(string(v))
			if len(f) > 0 {
				n, err := strconv.ParseInt(f[0], 10, 64)
				if err == nil {
					return n
				}
			}
		}
	}
	return -1
}

func writeHeapProfile(path string) error {
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
