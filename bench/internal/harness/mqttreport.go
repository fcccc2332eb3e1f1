package harness

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Issue 5's targets.
const (
	mqttTargetIdleKiB = 1.0 // at most 1 KiB of broker memory per idle client
)

// mqttStat is the median and range of one figure over the runs.
type mqttStat struct {
	med, lo, hi float64
	n           int
}

func mqttStatOf(v []float64) mqttStat {
	if len(v) == 0 {
		return mqttStat{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return mqttStat{med: med, lo: s[0], hi: s[len(s)-1], n: len(s)}
}

// format writes the median, and the range when there were several runs,
// each value with f.
func (s mqttStat) format(f func(float64) string) string {
	if s.n == 0 {
		return "—"
	}
	if s.n == 1 || s.lo == s.hi {
		return f(s.med)
	}
	return fmt.Sprintf("%s (%s – %s)", f(s.med), f(s.lo), f(s.hi))
}

// mqttCommas formats a count with thousands separators.
func mqttCommas(v float64) string {
	n := int64(v + 0.5)
	if v < 0 {
		n = int64(v - 0.5)
	}
	s := strconv.FormatInt(max(n, -n), 10)
	var b strings.Builder
	if n < 0 {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func mqttFixed(prec int) func(float64) string {
	return func(v float64) string { return strconv.FormatFloat(v, 'f', prec, 64) }
}

func mqttPercent(v float64) string {
	if v == 0 {
		return "0%"
	}
	if v < 0.001 {
		return fmt.Sprintf("%.3f%%", 100*v)
	}
	return fmt.Sprintf("%.1f%%", 100*v)
}

// mqttSelect returns the results of one broker in one scenario, in run
// order.
func mqttSelect(results []MQTTResult, sc MQTTScenario, b MQTTBroker) []MQTTResult {
	var out []MQTTResult
	for _, r := range results {
		if r.Scenario == sc && r.Broker == b {
			out = append(out, r)
		}
	}
	return out
}

func mqttFigure(rs []MQTTResult, f func(MQTTResult) float64) mqttStat {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	return mqttStatOf(v)
}

// mqttScenarioTitle says what a scenario's load is.
func mqttScenarioTitle(sc MQTTScenario, cfg MQTTConfig) string {
	switch sc {
	case MQTTFanIn:
		return fmt.Sprintf("fan-in: %d publishers → 1 subscriber, QoS 0, %d-byte payloads, open loop", cfg.FanInPubs, cfg.Payload)
	case MQTTFanOut:
		return fmt.Sprintf("fan-out: 1 publisher → %s subscribers of one topic, QoS 0, %d-byte payloads, open loop", mqttCommas(float64(cfg.FanOutSubs)), cfg.Payload)
	case MQTTQoS1:
		return fmt.Sprintf("qos1-window: %d publishers, each with %d QoS 1 messages unacknowledged → 1 QoS 1 subscriber acknowledging each, %d-byte payloads", cfg.QoS1Pubs, cfg.Window, cfg.Payload)
	case MQTTOverload:
		return fmt.Sprintf("overload: %d publishers each send %s QoS 1 messages as fast as TCP takes them → 1 QoS 1 subscriber acknowledging each", cfg.OverloadPubs, mqttCommas(float64(cfg.OverloadMsgs)))
	case MQTTIdle:
		return fmt.Sprintf("idle-memory: %s clients, each CONNECT (clean session) + one SUBSCRIBE to a topic of its own, then idle", mqttCommas(float64(cfg.IdleClients)))
	}
	return string(sc)
}

// WriteMQTTReport writes the results as Markdown tables, one per scenario,
// with the median of the runs and their range, the ratios to Mosquitto and
// issue 5's targets, checked on the medians and run by run.
func WriteMQTTReport(w io.Writer, cfg MQTTConfig, results []MQTTResult) {
	cfg.defaults()
	runs := 0
	for _, r := range results {
		runs = max(runs, r.Run)
	}
	var checks []string
	for _, sc := range cfg.Scenarios {
		var rows []MQTTBroker
		for _, b := range cfg.Brokers {
			if len(mqttSelect(results, sc, b)) > 0 {
				rows = append(rows, b)
			}
		}
		if len(rows) == 0 {
			continue
		}
		fmt.Fprintf(w, "### %s\n\n", mqttScenarioTitle(sc, cfg))
		switch sc {
		case MQTTIdle:
			checks = append(checks, writeMQTTIdle(w, results, rows)...)
		case MQTTOverload:
			checks = append(checks, writeMQTTOverload(w, results, rows)...)
		default:
			checks = append(checks, writeMQTTFlow(w, cfg, results, sc, rows)...)
		}
		fmt.Fprintln(w)
	}
	if len(checks) > 0 {
		fmt.Fprintf(w, "Issue 5's targets (on the median of %d run(s), with the runs in parentheses):\n\n", runs)
		for _, c := range checks {
			fmt.Fprintln(w, "- "+c)
		}
	}
}

func writeMQTTFlow(w io.Writer, cfg MQTTConfig, results []MQTTResult, sc MQTTScenario, rows []MQTTBroker) []string {
	fmt.Fprintf(w, "%v counted after %v warm-up. Loss: %s.\n\n", cfg.Duration, cfg.Warmup, map[bool]string{
		true:  "messages acknowledged to their publisher (PUBACK) and never delivered, once the publishers stopped and deliveries ended",
		false: "deliveries owed (messages written × subscribers) and not received once the publishers stopped and deliveries ended",
	}[sc == MQTTQoS1])
	fmt.Fprintln(w, "| broker | delivered/s | published/s | broker CPU s | delivered per broker CPU-s | lost | load CPU s | other CPU s | vs mosquitto (rate) | vs mosquitto (per CPU-s) |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	ref := mqttSelect(results, sc, MQTTMosquitto)
	refRate := mqttFigure(ref, MQTTResult.DeliveredPerSec)
	refCPU := mqttFigure(ref, MQTTResult.PerCPUSecond)
	for _, b := range rows {
		rs := mqttSelect(results, sc, b)
		rate := mqttFigure(rs, MQTTResult.DeliveredPerSec)
		perCPU := mqttFigure(rs, MQTTResult.PerCPUSecond)
		vsRate, vsCPU := "—", "—"
		if len(ref) > 0 && b != MQTTMosquitto && refRate.med > 0 && refCPU.med > 0 {
			vsRate = fmt.Sprintf("%.2f×", rate.med/refRate.med)
			vsCPU = fmt.Sprintf("%.2f×", perCPU.med/refCPU.med)
		}
		lost := mqttFigure(rs, MQTTResult.LossRatio).format(mqttPercent)
		for _, r := range rs {
			if !r.Drained {
				lost += " (still delivering at the end)"
				break
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", b,
			rate.format(mqttCommas),
			mqttFigure(rs, MQTTResult.PublishedPerSec).format(mqttCommas),
			mqttFigure(rs, func(r MQTTResult) float64 { return r.BrokerCPU.Seconds() }).format(mqttFixed(2)),
			perCPU.format(mqttCommas),
			lost,
			mqttFigure(rs, func(r MQTTResult) float64 { return r.LoadCPU.Seconds() }).format(mqttFixed(2)),
			mqttFigure(rs, func(r MQTTResult) float64 { return r.OtherCPU.Seconds() }).format(mqttFixed(2)),
			vsRate, vsCPU)
	}
	if len(ref) == 0 {
		return nil
	}
	var checks []string
	for _, b := range []MQTTBroker{MQTTMeerkatEpoll, MQTTMeerkatPortable} {
		rs := mqttSelect(results, sc, b)
		if len(rs) == 0 {
			continue
		}
		rate := mqttFigure(rs, MQTTResult.DeliveredPerSec)
		checks = append(checks, verdict(rate.med >= refRate.med,
			fmt.Sprintf("%s, %s: ≥ Mosquitto in deliveries/s (%s vs %s, %.2f×; runs at or above Mosquitto's same run: %s)",
				b, sc, mqttCommas(rate.med), mqttCommas(refRate.med), rate.med/refRate.med, mqttRunByRun(rs, ref))))
	}
	return checks
}

// mqttRunByRun counts the runs in which rs's rate is at least ref's in the
// same run.
func mqttRunByRun(rs, ref []MQTTResult) string {
	byRun := make(map[int]float64)
	for _, r := range ref {
		byRun[r.Run] = r.DeliveredPerSec()
	}
	ok, n := 0, 0
	for _, r := range rs {
		if v, found := byRun[r.Run]; found {
			n++
			if r.DeliveredPerSec() >= v {
				ok++
			}
		}
	}
	return fmt.Sprintf("%d of %d", ok, n)
}

func writeMQTTOverload(w io.Writer, results []MQTTResult, rows []MQTTBroker) []string {
	fmt.Fprintln(w, "Lost: messages the broker acknowledged to their publisher (PUBACK) that the subscriber never received, once deliveries ended (a second without any).")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| broker | sent | acknowledged | delivered (distinct) | duplicates | lost | lost % | lost per run | time to last delivery (s) | delivered/s | broker CPU s |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|")
	var checks []string
	for _, b := range rows {
		rs := mqttSelect(results, MQTTOverload, b)
		var perRun []string
		maxLost := int64(0)
		for _, r := range rs {
			s := mqttCommas(float64(r.Lost))
			if r.CutShort {
				s += " (cut short)"
			}
			perRun = append(perRun, s)
			maxLost = max(maxLost, r.Lost)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", b,
			mqttFigure(rs, func(r MQTTResult) float64 { return float64(r.Sent) }).format(mqttCommas),
			mqttFigure(rs, func(r MQTTResult) float64 { return float64(r.Acked) }).format(mqttCommas),
			mqttFigure(rs, func(r MQTTResult) float64 { return float64(r.Got) }).format(mqttCommas),
			mqttFigure(rs, func(r MQTTResult) float64 { return float64(r.Dups) }).format(mqttCommas),
			mqttFigure(rs, func(r MQTTResult) float64 { return float64(r.Lost) }).format(mqttCommas),
			mqttFigure(rs, MQTTResult.LossRatio).format(mqttPercent),
			strings.Join(perRun, ", "),
			mqttFigure(rs, func(r MQTTResult) float64 { return r.Elapsed.Seconds() }).format(mqttFixed(2)),
			mqttFigure(rs, MQTTResult.DeliveredPerSec).format(mqttCommas),
			mqttFigure(rs, func(r MQTTResult) float64 { return r.BrokerCPU.Seconds() }).format(mqttFixed(2)))
		if b == MQTTMeerkatEpoll || b == MQTTMeerkatPortable {
			checks = append(checks, verdict(maxLost == 0 && len(rs) > 0,
				fmt.Sprintf("%s: 0 QoS 1 messages lost under overload (lost per run: %s)", b, strings.Join(perRun, ", "))))
		}
	}
	return checks
}

func writeMQTTIdle(w io.Writer, results []MQTTResult, rows []MQTTBroker) []string {
	fmt.Fprintln(w, "VmRSS of the broker process (Go brokers: after `runtime.GC()` + `debug.FreeOSMemory()`), before the clients and with all of them connected; the growth divided by the clients.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| broker | RSS before → after (KiB) | RSS KiB/client | bytes/client | heap KiB/client | vs mosquitto |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|")
	ref := mqttFigure(mqttSelect(results, MQTTIdle, MQTTMosquitto), MQTTResult.RSSPerClientKiB)
	var checks []string
	for _, b := range rows {
		rs := mqttSelect(results, MQTTIdle, b)
		per := mqttFigure(rs, MQTTResult.RSSPerClientKiB)
		vs := "—"
		if b != MQTTMosquitto && ref.n > 0 && ref.med > 0 {
			vs = fmt.Sprintf("%.2f×", per.med/ref.med)
		}
		heap := "—"
		if b.goBroker() {
			heap = mqttFigure(rs, MQTTResult.HeapPerClientKiB).format(mqttFixed(2))
		}
		fmt.Fprintf(w, "| %s | %s → %s | %s | %s | %s | %s |\n", b,
			mqttFigure(rs, func(r MQTTResult) float64 { return float64(r.Before.RSSKiB) }).format(mqttCommas),
			mqttFigure(rs, func(r MQTTResult) float64 { return float64(r.After.RSSKiB) }).format(mqttCommas),
			per.format(mqttFixed(2)),
			mqttFigure(rs, func(r MQTTResult) float64 { return r.RSSPerClientKiB() * 1024 }).format(mqttCommas),
			heap, vs)
		if b == MQTTMeerkatEpoll || b == MQTTMeerkatPortable {
			var perRun []string
			for _, r := range rs {
				perRun = append(perRun, fmt.Sprintf("%.2f", r.RSSPerClientKiB()))
			}
			checks = append(checks, verdict(per.hi <= mqttTargetIdleKiB,
				fmt.Sprintf("%s: ≤ %.0f KiB per idle client (median %.2f KiB; runs: %s)", b, mqttTargetIdleKiB,
					per.med, strings.Join(perRun, ", "))))
		}
	}
	return checks
}
