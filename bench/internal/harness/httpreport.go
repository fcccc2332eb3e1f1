package harness

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// httpTarget is one of issue 3's targets: a Meerkat server's figure at
// least min times ref's in scenario sc.
type httpTarget struct {
	sc  HTTPScenario
	ref HTTPServer
	min float64
	// rateToo checks the rate (requests, bytes or connections per second)
	// as well as the figure per server CPU-second: the issue names the
	// CPU-second for hello world only.
	rateToo bool
}

// httpTargets are issue 3's targets.
var httpTargets = []httpTarget{
	{ScenarioHello, HTTPNetHTTP, 1.8, false},
	{ScenarioHello, HTTPFastHTTP, 1.1, false},
	{ScenarioStatic, HTTPNetHTTP, 2, true},
	{ScenarioBigFile, HTTPNetHTTP, 0.9, true},
	{ScenarioTLSHello, HTTPNetHTTP, 1.2, true},
	{ScenarioTLSConns, HTTPNetHTTP, 0.9, true},
	{ScenarioTLSFull, HTTPNetHTTP, 0.9, true},
}

// rateName names a scenario's rate.
func rateName(sc HTTPScenario) string {
	switch sc {
	case ScenarioBigFile:
		return "GB/s"
	case ScenarioTLSConns, ScenarioTLSFull:
		return "connections/s"
	}
	return "requests/s"
}

// maxAllocsPerConn is what "no allocation per request in steady state"
// allows: the counted load opens its connections afresh, so the server's
// allocations for accepting them (and the harness's own few, to answer its
// questions) are counted too; with hundreds of thousands of requests on 50
// connections, one allocation per request, or even per hundred requests,
// would exceed it by far.
const maxAllocsPerConn = 32

// spread is the median and range of one figure over the runs.
type spread struct{ med, lo, hi float64 }

func spreadOf(v []float64) spread {
	if len(v) == 0 {
		return spread{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return spread{med, s[0], s[len(s)-1]}
}

// cell formats a spread with f: "median (lo – hi)", or the median alone
// for one run.
func (s spread) cell(f func(float64) string, runs int) string {
	if runs <= 1 {
		return f(s.med)
	}
	return fmt.Sprintf("%s (%s – %s)", f(s.med), f(s.lo), f(s.hi))
}

// httpGroup is one server's measurements in one scenario.
type httpGroup []HTTPResult

func (g httpGroup) figure(f func(HTTPResult) float64) spread {
	v := make([]float64, len(g))
	for i, r := range g {
		v[i] = f(r)
	}
	return spreadOf(v)
}

func groupHTTP(results []HTTPResult) map[HTTPScenario]map[HTTPServer]httpGroup {
	out := make(map[HTTPScenario]map[HTTPServer]httpGroup)
	for _, r := range results {
		if out[r.Scenario] == nil {
			out[r.Scenario] = make(map[HTTPServer]httpGroup)
		}
		out[r.Scenario][r.Server] = append(out[r.Scenario][r.Server], r)
	}
	return out
}

var httpTitles = map[HTTPScenario]string{
	ScenarioHello:    "Hello world: GET / answered with 13 bytes of text/plain, keep-alive",
	ScenarioStatic:   "Static file of 1 KiB (HTTPServeDir, http.FileServer, fasthttp.FS)",
	ScenarioBigFile:  "Big file",
	ScenarioTLSHello: "Hello world over TLS, keep-alive",
	ScenarioTLSConns: "New TLS connections: hello world over https with Connection: close, a new connection and handshake per request (wrk resumes the session)",
	ScenarioTLSFull:  "New TLS connections without resumption: the same with session tickets disabled on the server, a full handshake per request",
}

func rateF(v float64) string { return commas(int64(v + 0.5)) }
func gbF(v float64) string   { return strconv.FormatFloat(v/1e9, 'f', 2, 64) }
func secF(v float64) string  { return strconv.FormatFloat(v, 'f', 2, 64) }
func ratioF(v float64) string {
	if v == 0 {
		return "?"
	}
	return strconv.FormatFloat(v, 'f', 2, 64) + "×"
}
func allocF(v float64) string { return strconv.FormatFloat(v, 'f', 4, 64) }
func latF(v float64) string   { return fmtLatency(time.Duration(v)) }

func fmtLatency(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// commas writes n with thousands separators.
func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// ratios returns a's figure over b's, run by run (runs present in both),
// and the ratio of the medians.
func ratios(a, b httpGroup, f func(HTTPResult) float64) (med float64, perRun []float64) {
	byRun := make(map[int]HTTPResult)
	for _, r := range b {
		byRun[r.Run] = r
	}
	for _, r := range a {
		if q, ok := byRun[r.Run]; ok && f(q) > 0 {
			perRun = append(perRun, f(r)/f(q))
		}
	}
	if m := b.figure(f).med; m > 0 {
		med = a.figure(f).med / m
	}
	return med, perRun
}

func perCPU(r HTTPResult) float64   { return r.PerCPUSecond() }
func rate(r HTTPResult) float64     { return r.Load.Rate }
func bps(r HTTPResult) float64      { return r.BytesPerSec() }
func bpcpu(r HTTPResult) float64    { return r.BytesPerCPUSecond() }
func p50(r HTTPResult) float64      { return float64(r.Load.P50) }
func p99(r HTTPResult) float64      { return float64(r.Load.P99) }
func cpuSec(r HTTPResult) float64   { return r.ServerCPU.Seconds() }
func otherCPU(r HTTPResult) float64 { return r.OtherCPU.Seconds() }
func allocsPR(r HTTPResult) float64 { return r.AllocsPerRequest() }
func resumedFrac(r HTTPResult) float64 {
	if n := r.FullHandshakes + r.ResumedHandshakes; n > 0 {
		return float64(r.ResumedHandshakes) / float64(n)
	}
	return 0
}
func pctF(v float64) string { return strconv.FormatFloat(100*v, 'f', 1, 64) + "%" }

// WriteHTTPReport writes one Markdown table per scenario (median of the
// runs, with the range), each server compared with net/http (and with
// fasthttp for hello world), then issue 3's targets checked.
func WriteHTTPReport(w io.Writer, cfg HTTPConfig, results []HTTPResult) {
	cfg.defaults()
	groups := groupHTTP(results)
	runs := 0
	for _, r := range results {
		runs = max(runs, r.Run)
	}
	var servers []HTTPServer
	for _, s := range HTTPServers {
		for _, r := range results {
			if r.Server == s {
				servers = append(servers, s)
				break
			}
		}
	}
	var notes []string
	for _, sc := range HTTPScenarios {
		g := groups[sc]
		if g == nil {
			continue
		}
		spec := sc.spec("HOST", cfg)
		title := httpTitles[sc]
		if sc == ScenarioBigFile {
			title = fmt.Sprintf("File of %s", sizeName(cfg.BigSize))
		}
		fmt.Fprintf(w, "### %s: %s\n\n", sc, title)
		fmt.Fprintf(w, "%s, %v per run, %s, median of %d run(s) (range).\n\n", plural(spec.Conns, "connection"), cfg.Duration, spec.URL, runs)
		big := sc == ScenarioBigFile
		unit := "requests"
		if sc.newConns() {
			unit = "conns"
		}
		ref, fast := g[HTTPNetHTTP], g[HTTPFastHTTP]
		cols := []string{"server"}
		if big {
			cols = append(cols, "GB/s", "requests/s")
		} else {
			cols = append(cols, unit+"/s")
		}
		cols = append(cols, "p50", "p99", "server CPU s")
		if big {
			cols = append(cols, "GB per server CPU-s")
		} else {
			cols = append(cols, unit+" per server CPU-s")
		}
		cols = append(cols, "vs nethttp per CPU-s", "vs nethttp rate")
		if sc == ScenarioHello {
			cols = append(cols, "vs fasthttp per CPU-s", "vs fasthttp rate")
		}
		cols = append(cols, "allocs/request")
		if sc.newConns() {
			cols = append(cols, "handshakes resumed")
		}
		cols = append(cols, "other CPU s")
		fmt.Fprintf(w, "| %s |\n|---|%s\n", strings.Join(cols, " | "), strings.Repeat("---:|", len(cols)-1))
		for _, s := range servers {
			rs := g[s]
			if rs == nil {
				continue
			}
			row := []string{string(s)}
			if big {
				row = append(row, rs.figure(bps).cell(gbF, runs), rs.figure(rate).cell(secF, runs))
			} else {
				row = append(row, rs.figure(rate).cell(rateF, runs))
			}
			row = append(row, rs.figure(p50).cell(latF, runs), rs.figure(p99).cell(latF, runs), rs.figure(cpuSec).cell(secF, runs))
			if big {
				row = append(row, rs.figure(bpcpu).cell(gbF, runs))
			} else {
				row = append(row, rs.figure(perCPU).cell(rateF, runs))
			}
			cmp := func(ref httpGroup) {
				if ref == nil || s == ref[0].Server {
					row = append(row, "—", "—")
					return
				}
				a, _ := ratios(rs, ref, perCPU)
				b, _ := ratios(rs, ref, rate)
				row = append(row, ratioF(a), ratioF(b))
			}
			cmp(ref)
			if sc == ScenarioHello {
				cmp(fast)
			}
			row = append(row, rs.figure(allocsPR).cell(allocF, runs))
			if sc.newConns() {
				row = append(row, rs.figure(resumedFrac).cell(pctF, runs))
			}
			row = append(row, rs.figure(otherCPU).cell(secF, runs))
			fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
			for _, r := range rs {
				if e := r.Load.Errors(); e != "" {
					notes = append(notes, fmt.Sprintf("%s, %s, run %d: %s", sc, s, r.Run, e))
				}
				if cfg.MaxOtherCPU > 0 && r.OtherCPU > cfg.MaxOtherCPU {
					notes = append(notes, fmt.Sprintf("%s, %s, run %d: disturbed: %.2f CPU-s of other work after %d attempts",
						sc, s, r.Run, r.OtherCPU.Seconds(), r.Attempts))
				}
			}
		}
		fmt.Fprintln(w)
	}
	if len(notes) > 0 {
		fmt.Fprintln(w, "Errors reported by the load, and disturbed measurements:")
		fmt.Fprintln(w)
		for _, n := range notes {
			fmt.Fprintln(w, "- "+n)
		}
		fmt.Fprintln(w)
	}

	var checks []string
	for _, t := range httpTargets {
		g := groups[t.sc]
		if g == nil || g[t.ref] == nil {
			continue
		}
		for _, s := range []HTTPServer{HTTPMeerkatEpoll, HTTPMeerkatPortable} {
			if g[s] == nil {
				continue
			}
			check := func(f func(HTTPResult) float64, what string) {
				med, perRun := ratios(g[s], g[t.ref], f)
				held := 0
				var each []string
				for _, v := range perRun {
					if v >= t.min {
						held++
					}
					each = append(each, ratioF(v))
				}
				checks = append(checks, verdict(med >= t.min, fmt.Sprintf(
					"%s %s: ≥ %.1f× %s %s: %s (runs %s; held in %d of %d)",
					s, t.sc, t.min, t.ref, what, ratioF(med), strings.Join(each, ", "), held, len(perRun))))
			}
			check(perCPU, "per server CPU-second")
			if t.rateToo {
				check(rate, "in "+rateName(t.sc))
			} else {
				rmed, _ := ratios(g[s], g[t.ref], rate)
				checks[len(checks)-1] += "; rate " + ratioF(rmed)
			}
		}
	}
	if g := groups[ScenarioHello]; g != nil {
		for _, s := range []HTTPServer{HTTPMeerkatEpoll, HTTPMeerkatPortable} {
			rs := g[s]
			if rs == nil {
				continue
			}
			ok := true
			var each []string
			for _, r := range rs {
				ok = ok && r.Mallocs <= uint64(maxAllocsPerConn*max(r.Conns, 1))
				each = append(each, fmt.Sprintf("%s for %s requests on %d new connections",
					commas(int64(r.Mallocs)), commas(r.Load.Requests), r.Conns))
			}
			checks = append(checks, verdict(ok, fmt.Sprintf(
				"%s hello: no allocation per request in steady state (at most %d allocations per new connection, none per request): %s",
				s, maxAllocsPerConn, strings.Join(each, "; "))))
		}
	}
	for _, c := range checks {
		fmt.Fprintln(w, "- "+c)
	}
}

// sizeName is "100 MiB", "2 MiB", "1 KiB" or a byte count.
func sizeName(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// plural is "1 connection", "50 connections".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return commas(int64(n)) + " " + noun + "s"
}
