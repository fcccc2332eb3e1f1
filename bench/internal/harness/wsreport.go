package harness

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// Issue 4's targets for Meerkat against gorilla/websocket.
const (
	wsTargetRatioFew  = 1.3 // round trips/s at 50 connections
	wsTargetRatioMany = 2.0 // round trips/s at 10,000 connections
	wsTargetManyConns = 10000
	wsTargetIdleKiB   = 1.5 // RSS per idle plain WebSocket connection
)

// wsStat is the median and range of a figure over runs.
type wsStat struct {
	med, lo, hi float64
	n           int
}

func wsSummarize(xs []float64) wsStat {
	if len(xs) == 0 {
		return wsStat{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return wsStat{med: med, lo: s[0], hi: s[len(s)-1], n: len(s)}
}

// format writes the median, and the range when there are several runs.
func (s wsStat) format(f func(float64) string) string {
	if s.n == 0 {
		return "—"
	}
	if s.n == 1 || s.lo == s.hi {
		return f(s.med)
	}
	return fmt.Sprintf("%s (%s – %s)", f(s.med), f(s.lo), f(s.hi))
}

func wsInt(x float64) string    { return wsComma(int64(x + 0.5)) }
func wsFixed1(x float64) string { return fmt.Sprintf("%.1f", x) }
func wsFixed2(x float64) string { return fmt.Sprintf("%.2f", x) }
func wsRatio(x float64) string  { return fmt.Sprintf("%.2f×", x) }
func wsMicros(x float64) string { return fmt.Sprintf("%.1f µs", x) }

// echoOf returns the results of target t in case cs, in run order.
func (res WSResults) echoOf(t WSTarget, cs WSCase) []WSEchoResult {
	var out []WSEchoResult
	for _, r := range res.Echo {
		if r.Target == t && r.Case == cs {
			out = append(out, r)
		}
	}
	return out
}

func (res WSResults) idleOf(t WSTarget, size int, json bool) []WSIdleResult {
	var out []WSIdleResult
	for _, r := range res.Idle {
		if r.Target == t && r.Size == size && r.JSON == json {
			out = append(out, r)
		}
	}
	return out
}

func echoStat(rs []WSEchoResult, f func(WSEchoResult) float64) wsStat {
	xs := make([]float64, 0, len(rs))
	for _, r := range rs {
		xs = append(xs, f(r))
	}
	return wsSummarize(xs)
}

func idleStat(rs []WSIdleResult, f func(WSIdleResult) float64) wsStat {
	xs := make([]float64, 0, len(rs))
	for _, r := range rs {
		xs = append(xs, f(r))
	}
	return wsSummarize(xs)
}

// runRatios returns, run by run, f(a)/f(b) for the runs both have.
func runRatios(a, b []WSEchoResult, f func(WSEchoResult) float64) []float64 {
	var out []float64
	for _, x := range a {
		for _, y := range b {
			if x.Run == y.Run && f(y) > 0 {
				out = append(out, f(x)/f(y))
			}
		}
	}
	return out
}

// wsCases lists the cases of the results in the order they ran.
func (res WSResults) cases() []WSCase {
	var out []WSCase
	for _, r := range res.Echo {
		if !slices.Contains(out, r.Case) {
			out = append(out, r.Case)
		}
	}
	return out
}

func (res WSResults) targets(cs WSCase) []WSTarget {
	var out []WSTarget
	for _, r := range res.Echo {
		if r.Case == cs && !slices.Contains(out, r.Target) {
			out = append(out, r.Target)
		}
	}
	return out
}

// WriteWSReport writes the results as Markdown: a throughput table per
// case, the compression cases, idle memory, then issue 4's targets.
func WriteWSReport(w io.Writer, cfg WSConfig, res WSResults) {
	cfg.defaults()
	runs := 0
	for _, r := range res.Echo {
		runs = max(runs, r.Run)
	}
	for _, r := range res.Idle {
		runs = max(runs, r.Run)
	}
	pin := "no pinning"
	if cfg.Pin {
		pin = "server on CPU 0 (taskset, GOMAXPROCS=1), load on CPU 1 (GOMAXPROCS=1)"
	}
	load := "one goroutine per connection (blocking Write, Read)"
	if cfg.Load == WSLoadEpoll {
		load = "one goroutine, every socket in one epoll set"
	}
	fmt.Fprintf(w, "%d run(s); each figure is the median of the runs with the range; %v counted after %v warm-up per measurement; %s; load: %s.\n",
		runs, cfg.Duration, cfg.Warmup, pin, load)
	if len(res.LoadAvg) > 0 {
		fmt.Fprintf(w, "Load average (1, 5, 15 min) before each run and at the end: %s.\n", strings.Join(res.LoadAvg, "; "))
	}
	gorilla := WSTarget{Server: WSGorilla}
	for _, cs := range res.cases() {
		if cs.JSON {
			continue
		}
		ref := res.echoOf(gorilla, cs)
		fmt.Fprintf(w, "\n#### %s\n\n", cs)
		fmt.Fprintln(w, "| server | round trips/s | rt per server CPU-second | server CPU per rt | load CPU busy | other CPU (max) | vs gorilla: rt/s | vs gorilla: rt per CPU-s |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|")
		for _, t := range res.targets(cs) {
			rs := res.echoOf(t, cs)
			rate := echoStat(rs, WSEchoResult.Rate)
			per := echoStat(rs, WSEchoResult.PerServerCPUSecond)
			vsRate, vsPer := "1", "1"
			if t != gorilla {
				vsRate = wsSummarize(runRatios(rs, ref, WSEchoResult.Rate)).format(wsRatio)
				vsPer = wsSummarize(runRatios(rs, ref, WSEchoResult.PerServerCPUSecond)).format(wsRatio)
			}
			other := 0.0
			for _, r := range rs {
				other = max(other, r.OtherCPU.Seconds())
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s %% | %.2f s | %s | %s |\n", t,
				rate.format(wsInt), per.format(wsInt),
				echoStat(rs, WSEchoResult.ServerMicrosPerRT).format(wsMicros),
				echoStat(rs, func(r WSEchoResult) float64 { return 100 * r.LoadBusy() }).format(wsInt),
				other, vsRate, vsPer)
		}
	}
	writeWSCompression(w, res)
	writeWSIdle(w, res)
	writeWSTargets(w, res)
}

func writeWSCompression(w io.Writer, res WSResults) {
	for _, cs := range res.cases() {
		if !cs.JSON {
			continue
		}
		fmt.Fprintf(w, "\n#### Compression: %s\n\n", cs)
		fmt.Fprintln(w, "| server | permessage-deflate | round trips/s | rt per server CPU-second | server CPU per rt | compression's CPU per rt | echo payload |")
		fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|")
		for _, t := range res.targets(cs) {
			rs := res.echoOf(t, cs)
			on := "off"
			cost := "—"
			if t.Deflate {
				on = "on"
				plain := res.echoOf(WSTarget{Server: t.Server}, cs)
				if len(plain) > 0 {
					d := echoStat(rs, WSEchoResult.ServerMicrosPerRT).med - echoStat(plain, WSEchoResult.ServerMicrosPerRT).med
					cost = fmt.Sprintf("+%.1f µs", d)
				}
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", t.Server, on,
				echoStat(rs, WSEchoResult.Rate).format(wsInt),
				echoStat(rs, WSEchoResult.PerServerCPUSecond).format(wsInt),
				echoStat(rs, WSEchoResult.ServerMicrosPerRT).format(wsMicros), cost,
				echoStat(rs, func(r WSEchoResult) float64 { return float64(r.EchoBytes) }).format(wsInt)+" B")
		}
	}
}

type wsIdleRow struct {
	t    WSTarget
	size int
	json bool
}

func (res WSResults) idleRows() []wsIdleRow {
	var out []wsIdleRow
	for _, r := range res.Idle {
		row := wsIdleRow{r.Target, r.Size, r.JSON}
		if !slices.Contains(out, row) {
			out = append(out, row)
		}
	}
	return out
}

func writeWSIdle(w io.Writer, res WSResults) {
	rows := res.idleRows()
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\n#### Memory per idle connection (%s connections, each after one echoed message)\n\n", wsComma(int64(res.Idle[0].Conns)))
	fmt.Fprintln(w, "| server | message | goroutines before → after | RSS after (MiB) | RSS KiB/conn | heap KiB/conn | stacks KiB/conn | vs gorilla (RSS) |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|")
	ref := idleStat(res.idleOf(WSTarget{Server: WSGorilla}, 32, false), WSIdleResult.rss).med
	for _, row := range rows {
		rs := res.idleOf(row.t, row.size, row.json)
		msg := wsSizeName(row.size)
		if row.json {
			msg += " JSON"
			if row.t.Deflate {
				msg += ", compressed"
			}
		}
		vs := "—"
		if !row.json && ref > 0 {
			vs = wsRatio(idleStat(rs, WSIdleResult.rss).med / ref)
			if row.t == (WSTarget{Server: WSGorilla}) {
				vs = "1"
			}
		}
		last := rs[len(rs)-1]
		fmt.Fprintf(w, "| %s | %s | %s → %s | %s | %s | %s | %s | %s |\n", row.t, msg,
			wsComma(int64(last.Before.Goroutines)), wsComma(int64(last.After.Goroutines)),
			idleStat(rs, func(r WSIdleResult) float64 { return float64(r.After.RSSKiB) / 1024 }).format(wsFixed1),
			idleStat(rs, WSIdleResult.rss).format(wsFixed2),
			idleStat(rs, func(r WSIdleResult) float64 { return r.HeapPerConnKiB() }).format(wsFixed2),
			idleStat(rs, func(r WSIdleResult) float64 { return r.StackPerConnKiB() }).format(wsFixed2), vs)
	}
	// Compression's cost per idle connection: the deflate row against the
	// same server's row with the same (uncompressed) message.
	var notes []string
	for _, row := range rows {
		if !row.t.Deflate {
			continue
		}
		plain := res.idleOf(WSTarget{Server: row.t.Server}, row.size, row.json)
		if len(plain) == 0 {
			continue
		}
		d := idleStat(res.idleOf(row.t, row.size, row.json), WSIdleResult.rss).med - idleStat(plain, WSIdleResult.rss).med
		notes = append(notes, fmt.Sprintf("%s: %+.2f KiB per idle connection with permessage-deflate", row.t.Server, d))
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range notes {
			fmt.Fprintln(w, "- "+n+" (RSS, against the same server and message without it)")
		}
	}
}

func (r WSIdleResult) rss() float64 { return r.RSSPerConnKiB() }

func writeWSTargets(w io.Writer, res WSResults) {
	var checks []string
	gorilla := WSTarget{Server: WSGorilla}
	for _, cs := range res.cases() {
		if cs.JSON {
			continue
		}
		want := wsTargetRatioFew
		if cs.Conns >= wsTargetManyConns {
			want = wsTargetRatioMany
		}
		ref := res.echoOf(gorilla, cs)
		for _, s := range []WSServer{WSMeerkatEpoll, WSMeerkatPortable} {
			rs := res.echoOf(WSTarget{Server: s}, cs)
			ratios := runRatios(rs, ref, WSEchoResult.Rate)
			if len(ratios) == 0 {
				continue
			}
			st := wsSummarize(ratios)
			met := 0
			for _, x := range ratios {
				if x >= want {
					met++
				}
			}
			checks = append(checks, verdict(st.med >= want, fmt.Sprintf(
				"%s, %s: ≥ %.1f× gorilla's round trips/s: %s (median; met in %d of %d runs)",
				s, cs, want, st.format(wsRatio), met, len(ratios))))
		}
	}
	for _, s := range []WSServer{WSMeerkatEpoll, WSMeerkatPortable} {
		rs := res.idleOf(WSTarget{Server: s}, 32, false)
		if len(rs) == 0 {
			continue
		}
		st := idleStat(rs, WSIdleResult.rss)
		checks = append(checks, verdict(st.med <= wsTargetIdleKiB, fmt.Sprintf(
			"%s: ≤ %.1f KiB per idle plain WebSocket connection: %s KiB", s, wsTargetIdleKiB, st.format(wsFixed2))))
	}
	if len(checks) > 0 {
		fmt.Fprintln(w, "\n#### Issue 4's targets")
		fmt.Fprintln(w)
		for _, c := range checks {
			fmt.Fprintln(w, "- "+c)
		}
	}
}
