package harness

import (
	"fmt"
	"io"
	"time"
)

// Targets from issue 2 for the epoll driver and for TLS.
const targetPlainKiB = 1.0

// WriteIdleMemReport writes the results as a Markdown table, with each
// server's memory per connection compared with net/http's over the same
// transport, and the targets checked.
func WriteIdleMemReport(w io.Writer, results []IdleMemResult) {
	byKind := make(map[Kind]IdleMemResult)
	for _, r := range results {
		byKind[r.Kind] = r
	}
	fmt.Fprintln(w, "| server | conns | goroutines before → after | RSS before → after (KiB) | RSS KiB/conn | heap KiB/conn | stacks KiB/conn | RSS vs net/http |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range results {
		ratio := "—"
		if ref, ok := byKind[r.Kind.Reference()]; ok && ref.Kind != r.Kind {
			ratio = fmt.Sprintf("%.2f×", r.RSSPerConnKiB()/ref.RSSPerConnKiB())
		}
		fmt.Fprintf(w, "| %s | %d | %d → %d | %d → %d | %.2f | %.2f | %.2f | %s |\n",
			r.Kind, r.Conns, r.Before.Goroutines, r.After.Goroutines,
			r.Before.RSSKiB, r.After.RSSKiB, r.RSSPerConnKiB(), r.HeapPerConnKiB(), r.StackPerConnKiB(), ratio)
	}
	var checks []string
	if r, ok := byKind[MeerkatEpoll]; ok {
		checks = append(checks,
			verdict(r.GoroutinesPerConn() < 0.01, fmt.Sprintf("meerkat-epoll: no goroutine per idle connection (%+d goroutines for %d connections)",
				r.After.Goroutines-r.Before.Goroutines, r.Conns)),
			verdict(r.RSSPerConnKiB() <= targetPlainKiB, fmt.Sprintf("meerkat-epoll: at most %.0f KiB per idle plain connection (%.2f KiB)",
				targetPlainKiB, r.RSSPerConnKiB())))
	}
	if ref, ok := byKind[NetHTTPTLS]; ok {
		for _, k := range []Kind{MeerkatEpollTLS, MeerkatPortableTLS} {
			if r, ok := byKind[k]; ok {
				checks = append(checks, verdict(r.RSSPerConnKiB() <= ref.RSSPerConnKiB(),
					fmt.Sprintf("%s: no more than net/http per idle TLS connection (%.2f vs %.2f KiB)",
						k, r.RSSPerConnKiB(), ref.RSSPerConnKiB())))
			}
		}
	}
	if len(checks) > 0 {
		fmt.Fprintln(w)
		for _, c := range checks {
			fmt.Fprintln(w, "- "+c)
		}
	}
}

func verdict(ok bool, what string) string {
	if ok {
		return "PASS " + what
	}
	return "MISS " + what
}

// WriteEchoReport writes echo throughput as a Markdown table, each server
// compared with the goroutine-per-connection net server.
func WriteEchoReport(w io.Writer, cfg EchoConfig, results []EchoResult) {
	var ref float64
	for _, r := range results {
		if r.Kind == NetEcho {
			ref = r.RoundTripsPerSec()
		}
	}
	pin := "no pinning"
	if cfg.Pin {
		pin = "server on CPU 0, load on CPU 1"
	}
	idle := ""
	if cfg.Idle > 0 {
		idle = fmt.Sprintf(" (and %d idle connections open)", cfg.Idle)
	}
	fmt.Fprintf(w, "%d connections%s, %d-byte messages, %v counted after %v warm-up, %s\n\n",
		cfg.Conns, idle, cfg.Size, cfg.Duration, cfg.Warmup, pin)
	fmt.Fprintln(w, "| server | round trips/s | server CPU per round trip | load CPU per round trip | vs netecho |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|")
	for _, r := range results {
		ratio := "—"
		if ref > 0 && r.Kind != NetEcho {
			ratio = fmt.Sprintf("%.2f×", r.RoundTripsPerSec()/ref)
		}
		fmt.Fprintf(w, "| %s | %.0f | %s | %s | %s |\n", r.Kind, r.RoundTripsPerSec(),
			micros(r.ServerCPU, r.RoundTrips), micros(r.LoadCPU, r.RoundTrips), ratio)
	}
}

// micros formats CPU time per round trip in microseconds.
func micros(cpu time.Duration, n int64) string {
	if cpu < 0 || n == 0 {
		return "?"
	}
	return fmt.Sprintf("%.1f µs", float64(cpu)/float64(time.Microsecond)/float64(n))
}
