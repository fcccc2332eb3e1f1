package harness

import (
	"bytes"
	"encoding/binary"
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

// MQTTScenario is one MQTT benchmark of issue 5.
type MQTTScenario string

// The scenarios.
const (
	// MQTTFanIn: FanInPubs publishers → 1 subscriber, QoS 0, open loop.
	MQTTFanIn MQTTScenario = "fan-in"
	// MQTTFanOut: 1 publisher → FanOutSubs subscribers of one topic, QoS
	// 0, open loop.
	MQTTFanOut MQTTScenario = "fan-out"
	// MQTTQoS1: QoS1Pubs publishers each keeping Window QoS 1 messages
	// unacknowledged → 1 subscriber acknowledging each.
	MQTTQoS1 MQTTScenario = "qos1-window"
	// MQTTOverload: OverloadPubs publishers each send OverloadMsgs QoS 1
	// messages as fast as TCP takes them → 1 QoS 1 subscriber; what the
	// broker acknowledged against what the subscriber got.
	MQTTOverload MQTTScenario = "overload"
	// MQTTIdle: IdleClients clients connected (CONNECT, one SUBSCRIBE)
	// and idle; the broker's resident memory per client.
	MQTTIdle MQTTScenario = "idle-memory"
)

// MQTTScenarios lists every scenario, in the order they run and are shown.
var MQTTScenarios = []MQTTScenario{MQTTFanIn, MQTTFanOut, MQTTQoS1, MQTTOverload, MQTTIdle}

// ParseMQTTScenarios parses a comma-separated list ("all" for every one).
func ParseMQTTScenarios(s string) ([]MQTTScenario, error) {
	if s == "" || s == "all" {
		return MQTTScenarios, nil
	}
	var out []MQTTScenario
	for _, f := range strings.Split(s, ",") {
		v := MQTTScenario(strings.TrimSpace(f))
		found := false
		for _, k := range MQTTScenarios {
			found = found || k == v
		}
		if !found {
			return nil, fmt.Errorf("unknown scenario %q (known: %v)", v, MQTTScenarios)
		}
		out = append(out, v)
	}
	return out, nil
}

// MQTTConfig configures an MQTT benchmark run.
type MQTTConfig struct {
	Brokers   []MQTTBroker
	Scenarios []MQTTScenario
	Runs      int           // measurements of each broker in each scenario (1 when 0)
	Warmup    time.Duration // load before counting, on the same broker process
	Duration  time.Duration // counted load of the throughput scenarios (5 s when 0)
	Payload   int           // bytes per message (64 when 0; at least 12)

	FanInPubs    int // fan-in publishers (100 when 0)
	FanOutSubs   int // fan-out subscribers (1000 when 0)
	QoS1Pubs     int // qos1-window publishers (10 when 0)
	Window       int // QoS 1 messages in flight per qos1-window publisher (10 when 0)
	OverloadPubs int // overload publishers (100 when 0)
	OverloadMsgs int // messages per overload publisher (1000 when 0, at most 65535)
	IdleClients  int // idle-memory clients (1000 when 0)

	// Drain bounds the wait, once the publishers stopped, for messages
	// still on their way (10 s when 0): the subscribers' count must stay
	// the same for a second while the broker is idle, or reach what is
	// expected.
	Drain time.Duration
	// OverloadTimeout bounds the overload publishers' wait for their
	// acknowledgements (60 s when 0).
	OverloadTimeout time.Duration
	// Pin runs each broker on CPU 0 (GOMAXPROCS=1 for the Go brokers) and
	// this process, the load, on CPU 1 with GOMAXPROCS=1.
	Pin bool
	// CPUProfileDir, if set, receives a CPU profile of each Go broker
	// process: SCENARIO.BROKER.runN.cpu.pprof.
	CPUProfileDir string
	// HeapProfileDir, if set, makes each Go broker of idle-memory sample
	// every allocation (runtime.MemProfileRate = 1) and write a heap
	// profile with every client connected: idle-memory.BROKER.runN.heap.pprof.
	// The memory figures of such a run are not the ones to report.
	HeapProfileDir string
	Log            io.Writer
}

func (cfg *MQTTConfig) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&cfg.Runs, 1)
	def(&cfg.Payload, 64)
	cfg.Payload = max(cfg.Payload, mqttPayloadHeader)
	def(&cfg.FanInPubs, 100)
	def(&cfg.FanOutSubs, 1000)
	def(&cfg.QoS1Pubs, 10)
	def(&cfg.Window, 10)
	def(&cfg.OverloadPubs, 100)
	def(&cfg.OverloadMsgs, 1000)
	cfg.OverloadMsgs = min(cfg.OverloadMsgs, 65535)
	def(&cfg.IdleClients, 1000)
	if cfg.Duration <= 0 {
		cfg.Duration = 5 * time.Second
	}
	if cfg.Drain <= 0 {
		cfg.Drain = 10 * time.Second
	}
	if cfg.OverloadTimeout <= 0 {
		cfg.OverloadTimeout = time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
}

// MQTTResult is one measurement: one broker, one scenario, one run.
type MQTTResult struct {
	Broker   MQTTBroker
	Scenario MQTTScenario
	Run      int
	Subs     int // subscribers
	Pubs     int // publishers

	// The counted time: the throughput scenarios' fixed duration; for
	// overload, from the first message sent to the last one delivered.
	Elapsed time.Duration
	// Messages published during the counted time: written to TCP at QoS
	// 0, acknowledged by the broker at QoS 1.
	Published int64
	// Messages the subscribers received during the counted time (each
	// subscriber's copy counts).
	Delivered int64
	BrokerCPU time.Duration // the broker process's CPU time (user+system) during the counted time
	LoadCPU   time.Duration // this process's CPU time during the counted time
	// OtherCPU is the machine's busy CPU time during the counted time
	// less the broker's and the load's; -1 if unknown.
	OtherCPU time.Duration

	// Over the whole measurement (warm-up and drain included):
	Sent     int64 // PUBLISH written by the publishers
	Acked    int64 // QoS 1: PUBACKs the publishers received
	Expected int64 // deliveries owed: Sent × subscribers at QoS 0, Acked at QoS 1
	Got      int64 // deliveries received (QoS 1: distinct messages)
	Dups     int64 // QoS 1: messages received more than once
	// Lost: QoS 0, Expected − Got; QoS 1, messages acknowledged to their
	// publisher and never delivered.
	Lost int64
	// Drained is false when deliveries were still arriving when the drain
	// time ran out (what had not arrived counts in Lost).
	Drained bool
	// CutShort: the publishers were still blocked (writing, or waiting for
	// acknowledgements) when their time ran out, and were cut off.
	CutShort bool

	Before, After mqttMemory // idle-memory: before the clients and with all of them connected
	BrokerInfo    string     // the Go broker's own counters at the end
	Profile       string     // CPU profile file, if one was written
}

// DeliveredPerSec is the delivery rate during the counted time.
func (r MQTTResult) DeliveredPerSec() float64 { return perSec(r.Delivered, r.Elapsed) }

// PublishedPerSec is the publishing rate during the counted time.
func (r MQTTResult) PublishedPerSec() float64 { return perSec(r.Published, r.Elapsed) }

// PerCPUSecond is deliveries per second of broker CPU time, 0 if unknown.
func (r MQTTResult) PerCPUSecond() float64 {
	if r.BrokerCPU <= 0 {
		return 0
	}
	return float64(r.Delivered) / r.BrokerCPU.Seconds()
}

// LossRatio is Lost / Expected.
func (r MQTTResult) LossRatio() float64 {
	if r.Expected <= 0 {
		return 0
	}
	return float64(r.Lost) / float64(r.Expected)
}

// RSSPerClientKiB is the idle-memory growth of the broker's resident set
// per client.
func (r MQTTResult) RSSPerClientKiB() float64 {
	if r.Subs <= 0 {
		return 0
	}
	return float64(r.After.RSSKiB-r.Before.RSSKiB) / float64(r.Subs)
}

// HeapPerClientKiB is the idle-memory growth of a Go broker's heap in use
// per client.
func (r MQTTResult) HeapPerClientKiB() float64 {
	if r.Subs <= 0 {
		return 0
	}
	return (float64(r.After.HeapInuse) - float64(r.Before.HeapInuse)) / 1024 / float64(r.Subs)
}

func perSec(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// RunMQTT measures every broker in every scenario, cfg.Runs times, each
// measurement with a fresh broker process: run by run, scenario by
// scenario, broker after broker, so that a drift of the machine touches
// every broker alike.
func RunMQTT(cfg MQTTConfig) ([]MQTTResult, error) {
	cfg.defaults()
	if cfg.Pin {
		if !Pinning() {
			return nil, errors.New("pinning needs taskset and two CPUs")
		}
		if err := pinSelf(1); err != nil {
			return nil, err
		}
	}
	for _, dir := range []string{cfg.CPUProfileDir, cfg.HeapProfileDir} {
		if dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, err
			}
		}
	}
	var results []MQTTResult
	for run := 1; run <= cfg.Runs; run++ {
		for _, sc := range cfg.Scenarios {
			for _, b := range cfg.Brokers {
				r, err := measureMQTT(b, sc, run, cfg)
				if err != nil {
					return results, fmt.Errorf("run %d, %s, %s: %w", run, sc, b, err)
				}
				logMQTTResult(cfg.Log, r)
				results = append(results, r)
			}
		}
	}
	return results, nil
}

func logMQTTResult(w io.Writer, r MQTTResult) {
	info := ""
	if r.BrokerInfo != "" {
		info = "  [" + r.BrokerInfo + "]"
	}
	switch {
	case r.Scenario == MQTTIdle:
		fmt.Fprintf(w, "run %d %-12s %-17s %d clients  RSS %d -> %d KiB  %.3f KiB/client  heap %.3f KiB/client%s\n",
			r.Run, r.Scenario, r.Broker, r.Subs, r.Before.RSSKiB, r.After.RSSKiB, r.RSSPerClientKiB(), r.HeapPerClientKiB(), info)
	default:
		fmt.Fprintf(w, "run %d %-12s %-17s %9.0f delivered/s  %9.0f published/s  CPU %5.2fs  %9.0f per CPU-s  load CPU %.2fs  other %.2fs  sent %d acked %d expected %d got %d dups %d lost %d (%.2f%%)%s%s\n",
			r.Run, r.Scenario, r.Broker, r.DeliveredPerSec(), r.PublishedPerSec(), r.BrokerCPU.Seconds(), r.PerCPUSecond(),
			r.LoadCPU.Seconds(), r.OtherCPU.Seconds(), r.Sent, r.Acked, r.Expected, r.Got, r.Dups, r.Lost, 100*r.LossRatio(),
			map[bool]string{true: "", false: "  (still draining)"}[r.Drained], info)
	}
}

func measureMQTT(b MQTTBroker, sc MQTTScenario, run int, cfg MQTTConfig) (r MQTTResult, err error) {
	r = MQTTResult{Broker: b, Scenario: sc, Run: run}
	opt := mqttStartOptions{pin: cfg.Pin}
	if cfg.CPUProfileDir != "" && b.goBroker() {
		r.Profile = filepath.Join(cfg.CPUProfileDir, fmt.Sprintf("%s.%s.run%d.cpu.pprof", sc, b, run))
		opt.cpuProfile = r.Profile
	}
	if cfg.HeapProfileDir != "" && b.goBroker() && sc == MQTTIdle {
		opt.profileRate = 1
	}
	br, err := startMQTTBroker(b, opt)
	if err != nil {
		return r, err
	}
	defer func() {
		if err == nil {
			err = br.alive()
		}
		if err == nil {
			r.BrokerInfo = br.info()
		}
		if serr := br.stop(); err == nil && serr != nil {
			err = serr
		}
	}()
	switch sc {
	case MQTTIdle:
		err = mqttIdle(br, &r, cfg)
	case MQTTOverload:
		err = mqttOverload(br, &r, cfg)
	default:
		err = mqttFlow(br, &r, cfg)
	}
	return r, err
}

// mqttSubscriber receives and counts; at QoS 1 it acknowledges each
// message and records which it got.
type mqttSubscriber struct {
	c     *mqttConn
	qos   byte
	count atomic.Int64 // PUBLISH received
	last  atomic.Int64 // when the last one came (Unix ns)
	recv  []mqttBits   // QoS 1: per publisher, the sequence numbers received
	dups  int64        // QoS 1: messages received again
	err   error
}

func (s *mqttSubscriber) run(closing *atomic.Bool) {
	acks := make([]byte, 0, 4<<10)
	for {
		var n int64
		for {
			h, body, ok, err := s.c.packet()
			if err != nil {
				s.err = err
				return
			}
			if !ok {
				break
			}
			if h&0xf0 != mqttPUBLISH {
				continue
			}
			n++
			if s.qos == 0 {
				continue
			}
			id, payload, err := mqttPublishFields(h, body)
			if err != nil {
				s.err = err
				return
			}
			if h&0x06 != 0 {
				acks = mqttAppendPuback(acks, id)
			}
			if len(payload) >= mqttPayloadHeader {
				pub := binary.BigEndian.Uint32(payload)
				if int(pub) < len(s.recv) && s.recv[pub].set(binary.BigEndian.Uint64(payload[4:])) {
					s.dups++
				}
			}
		}
		if n > 0 {
			s.count.Add(n)
			s.last.Store(time.Now().UnixNano())
		}
		if len(acks) > 0 {
			if _, err := s.c.nc.Write(acks); err != nil {
				if !closing.Load() {
					s.err = err
				}
				return
			}
			acks = acks[:0]
		}
		if err := s.c.fill(); err != nil {
			if !closing.Load() {
				s.err = fmt.Errorf("subscriber: %w", err)
			}
			return
		}
	}
}

// mqttPublisher is one publishing client of the load.
type mqttPublisher struct {
	c     *mqttConn
	idx   int
	sent  atomic.Int64 // PUBLISH written
	acked atomic.Int64 // PUBACK received for distinct messages (QoS 1)
	ack   mqttBits     // QoS 1: sequence numbers acknowledged
	err   error
}

// mqttFloodBatch is how many PUBLISH an open-loop publisher writes at once.
const mqttFloodBatch = 64

// flood0 writes QoS 0 messages as fast as TCP takes them until stop.
func (p *mqttPublisher) flood0(topic string, payload []byte, stop *atomic.Bool) {
	one := mqttAppendPublish(nil, topic, 0, 0, payload)
	batch := bytes.Repeat(one, mqttFloodBatch)
	for !stop.Load() {
		n, err := p.c.nc.Write(batch)
		p.sent.Add(int64(n / len(one)))
		if err != nil {
			if !stop.Load() {
				p.err = err
			}
			return
		}
	}
}

// window1 keeps window QoS 1 messages unacknowledged until stop, then
// waits for the last acknowledgements.
func (p *mqttPublisher) window1(topic string, payload []byte, window int, stop *atomic.Bool) {
	pl := bytes.Clone(payload)
	var next uint64
	out := make([]byte, 0, window*(len(payload)+len(topic)+8))
	send := func(k int) error {
		out = out[:0]
		for range k {
			mqttPutPayload(pl, p.idx, next)
			out = mqttAppendPublish(out, topic, 1, mqttPacketID(next), pl)
			next++
		}
		_, err := p.c.nc.Write(out)
		if err == nil {
			p.sent.Add(int64(k))
		}
		return err
	}
	if err := send(window); err != nil {
		p.err = err
		return
	}
	for inflight := window; inflight > 0; {
		if err := p.c.fill(); err != nil {
			p.err = fmt.Errorf("publisher %d, %d in flight: %w", p.idx, inflight, err)
			return
		}
		acked := 0
		for {
			h, body, ok, err := p.c.packet()
			if err != nil {
				p.err = err
				return
			}
			if !ok {
				break
			}
			if h != mqttPUBACK || len(body) != 2 {
				continue
			}
			if seq := mqttSeqOf(binary.BigEndian.Uint16(body), next); seq >= 0 && !p.ack.set(uint64(seq)) {
				acked++
			}
		}
		inflight -= acked
		p.acked.Add(int64(acked))
		if acked > 0 && !stop.Load() {
			if err := send(acked); err != nil {
				p.err = err
				return
			}
			inflight += acked
		}
	}
}

// flood1 writes n QoS 1 messages as fast as TCP takes them while reading
// the acknowledgements, until all are acknowledged or the connection ends.
func (p *mqttPublisher) flood1(topic string, payload []byte, n int) {
	var werr error
	var wg sync.WaitGroup
	wg.Go(func() {
		pl := bytes.Clone(payload)
		out := make([]byte, 0, mqttFloodBatch*(len(payload)+len(topic)+8))
		for seq := 0; seq < n; {
			out = out[:0]
			for k := 0; k < mqttFloodBatch && seq < n; k++ {
				mqttPutPayload(pl, p.idx, uint64(seq))
				out = mqttAppendPublish(out, topic, 1, mqttPacketID(uint64(seq)), pl)
				seq++
			}
			if _, err := p.c.nc.Write(out); err != nil {
				werr = err
				return
			}
			p.sent.Store(int64(seq))
		}
	})
	defer wg.Wait()
	for p.acked.Load() < int64(n) {
		if err := p.c.fill(); err != nil {
			p.err = fmt.Errorf("publisher %d: %d of %d acknowledged: %w", p.idx, p.acked.Load(), n, err)
			return
		}
		var acked int64
		for {
			h, body, ok, err := p.c.packet()
			if err != nil {
				p.err = err
				return
			}
			if !ok {
				break
			}
			if h != mqttPUBACK || len(body) != 2 {
				continue
			}
			if seq := mqttSeqOf(binary.BigEndian.Uint16(body), uint64(n)); seq >= 0 && !p.ack.set(uint64(seq)) {
				acked++
			}
		}
		p.acked.Add(acked)
	}
	wg.Wait()
	if werr != nil && p.err == nil {
		p.err = werr
	}
}

// mqttPubSndBuf is the publishers' socket send buffer (SO_SNDBUF; Linux
// doubles it). Open-loop publishers write as fast as TCP takes their
// messages: with the kernel's autotuning (up to 4 MiB for sending and 32
// MiB for receiving per socket here), a hundred of them would park
// hundreds of megabytes in socket buffers within the warm-up, and the
// publishing rate and losses would measure those buffers instead of the
// broker.
const mqttPubSndBuf = 16 << 10

// mqttLoad is the clients of one measurement.
type mqttLoad struct {
	subs    []*mqttSubscriber
	pubs    []*mqttPublisher
	closing atomic.Bool
	cut     bool // the publishers' connections were cut short (their errors do not count)
	subWG   sync.WaitGroup
	pubWG   sync.WaitGroup
}

// open connects the subscribers (each subscribed to topic at qos) and the
// publishers, and starts the subscribers.
func (l *mqttLoad) open(addr, topic string, nsubs, npubs int, qos byte, subBuf int) error {
	subs, err := mqttDialMany(addr, nsubs, 32, func(i int) mqttDialOptions {
		return mqttDialOptions{clientID: mqttClientID("sub", i), filter: topic, qos: qos, bufSize: subBuf}
	})
	if err != nil {
		return fmt.Errorf("subscribers: %w", err)
	}
	for _, c := range subs {
		s := &mqttSubscriber{c: c, qos: qos}
		if qos > 0 {
			s.recv = make([]mqttBits, npubs)
		}
		l.subs = append(l.subs, s)
	}
	pubs, err := mqttDialMany(addr, npubs, 32, func(i int) mqttDialOptions {
		return mqttDialOptions{clientID: mqttClientID("pub", i), sndBuf: mqttPubSndBuf}
	})
	if err != nil {
		l.close()
		return fmt.Errorf("publishers: %w", err)
	}
	for i, c := range pubs {
		l.pubs = append(l.pubs, &mqttPublisher{c: c, idx: i})
	}
	for _, s := range l.subs {
		l.subWG.Go(func() { s.run(&l.closing) })
	}
	return nil
}

// close ends every connection and waits for the subscribers.
func (l *mqttLoad) close() {
	l.closing.Store(true)
	for _, p := range l.pubs {
		p.c.close()
	}
	for _, s := range l.subs {
		s.c.close()
	}
	l.subWG.Wait()
	l.pubWG.Wait()
}

func (l *mqttLoad) sent() (n int64) {
	for _, p := range l.pubs {
		n += p.sent.Load()
	}
	return n
}

func (l *mqttLoad) acked() (n int64) {
	for _, p := range l.pubs {
		n += p.acked.Load()
	}
	return n
}

func (l *mqttLoad) received() (n int64) {
	for _, s := range l.subs {
		n += s.count.Load()
	}
	return n
}

// waitPublishers waits up to d for the publishers' goroutines, then cuts
// their connections short and waits again.
func (l *mqttLoad) waitPublishers(d time.Duration) bool {
	done := make(chan struct{})
	go func() { l.pubWG.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
	}
	l.cut = true
	for _, p := range l.pubs {
		p.c.nc.SetDeadline(time.Now())
	}
	<-done
	return false
}

// drain waits until the subscribers received want messages, or until,
// for a second, they received nothing while the broker (process pid) was
// idle too (a broker may spend a second or more of CPU on one batch before
// it writes any of it), for up to d; it reports whether the deliveries
// ended (or all arrived) in time.
func (l *mqttLoad) drain(want int64, pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	last, since, cpu := l.received(), time.Now(), cpuTicks(pid)
	for {
		time.Sleep(20 * time.Millisecond)
		n := l.received()
		if n >= want {
			return true
		}
		if n != last {
			last, since, cpu = n, time.Now(), cpuTicks(pid)
		} else if time.Since(since) >= time.Second {
			now := cpuTicks(pid)
			if now-cpu <= mqttIdleTicks {
				return true
			}
			since, cpu = time.Now(), now
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// mqttIdleTicks is the CPU time (in clock ticks) a broker may use in a
// second and count as idle: its timers.
const mqttIdleTicks = 2

// err is the first error of a client (once they all ended: close).
func (l *mqttLoad) err() error {
	for _, s := range l.subs {
		if s.err != nil {
			return s.err
		}
	}
	for _, p := range l.pubs {
		if p.err != nil && !l.cut {
			return p.err
		}
	}
	return nil
}

// qos1Totals fills r's QoS 1 totals from the publishers' and subscriber's
// records (after every client ended).
func (l *mqttLoad) qos1Totals(r *MQTTResult) {
	s := l.subs[0]
	r.Dups, r.Expected, r.Got, r.Lost = s.dups, 0, 0, 0
	for i, p := range l.pubs {
		r.Expected += p.ack.count()
		r.Got += s.recv[i].count()
		r.Lost += p.ack.missing(s.recv[i])
	}
}

func mqttPayload(size int) []byte {
	return bytes.Repeat([]byte("meerkat-mqtt-bench/"), size/19+1)[:size]
}

// mqttFlow runs a throughput scenario: fan-in, fan-out or qos1-window.
func mqttFlow(br *mqttRunning, r *MQTTResult, cfg MQTTConfig) error {
	var qos byte
	subBuf := 64 << 10
	switch r.Scenario {
	case MQTTFanIn:
		r.Subs, r.Pubs = 1, cfg.FanInPubs
	case MQTTFanOut:
		r.Subs, r.Pubs, subBuf = cfg.FanOutSubs, 1, 16<<10
	case MQTTQoS1:
		r.Subs, r.Pubs, qos = 1, cfg.QoS1Pubs, 1
	}
	topic := "bench/" + string(r.Scenario)
	var l mqttLoad
	if err := l.open(br.addr, topic, r.Subs, r.Pubs, qos, subBuf); err != nil {
		return err
	}
	defer l.close()
	payload := mqttPayload(cfg.Payload)
	var stop atomic.Bool
	for _, p := range l.pubs {
		if qos == 0 {
			l.pubWG.Go(func() { p.flood0(topic, payload, &stop) })
		} else {
			l.pubWG.Go(func() { p.window1(topic, payload, cfg.Window, &stop) })
		}
	}
	published := l.sent
	if qos > 0 {
		published = l.acked
	}
	time.Sleep(cfg.Warmup)
	pid := br.pid()
	cpu0, load0 := cpuTicks(pid), cpuTicks(os.Getpid())
	busy0, _ := machineTicks()
	pub0, got0 := published(), l.received()
	start := time.Now()
	time.Sleep(cfg.Duration)
	pub1, got1 := published(), l.received()
	r.Elapsed = time.Since(start)
	busy1, _ := machineTicks()
	cpu1, load1 := cpuTicks(pid), cpuTicks(os.Getpid())
	r.Published, r.Delivered = pub1-pub0, got1-got0
	r.BrokerCPU, r.LoadCPU = ticksBetween(cpu0, cpu1), ticksBetween(load0, load1)
	r.OtherCPU = -1
	if busy := ticksBetween(busy0, busy1); busy >= 0 && r.BrokerCPU >= 0 && r.LoadCPU >= 0 {
		r.OtherCPU = busy - r.BrokerCPU - r.LoadCPU
	}

	stop.Store(true)
	if !l.waitPublishers(cfg.Drain) {
		r.CutShort = true
		fmt.Fprintf(cfg.Log, "run %d %s %s: publishers still blocked %v after the end; cut short\n", r.Run, r.Scenario, r.Broker, cfg.Drain)
	}
	r.Sent, r.Acked = l.sent(), l.acked()
	r.Expected = r.Sent * int64(r.Subs)
	if qos > 0 {
		r.Expected = r.Acked
	}
	r.Drained = l.drain(r.Expected, pid, cfg.Drain)
	l.close()
	if err := l.err(); err != nil {
		return err
	}
	if qos > 0 {
		l.qos1Totals(r)
	} else {
		r.Got = l.received()
		r.Lost = max(r.Expected-r.Got, 0)
	}
	if r.Delivered == 0 {
		return errors.New("nothing delivered")
	}
	return nil
}

// mqttOverload runs the overload scenario: every publisher sends its
// messages at once, the subscriber acknowledges what it gets; then the
// broker's acknowledgements are compared with the deliveries.
func mqttOverload(br *mqttRunning, r *MQTTResult, cfg MQTTConfig) error {
	r.Subs, r.Pubs = 1, cfg.OverloadPubs
	topic := "bench/overload"
	var l mqttLoad
	if err := l.open(br.addr, topic, r.Subs, r.Pubs, 1, 64<<10); err != nil {
		return err
	}
	defer l.close()
	payload := mqttPayload(cfg.Payload)
	pid := br.pid()
	cpu0, load0 := cpuTicks(pid), cpuTicks(os.Getpid())
	busy0, _ := machineTicks()
	start := time.Now()
	for _, p := range l.pubs {
		l.pubWG.Go(func() { p.flood1(topic, payload, cfg.OverloadMsgs) })
	}
	if !l.waitPublishers(cfg.OverloadTimeout) {
		r.CutShort = true
		fmt.Fprintf(cfg.Log, "run %d %s %s: not every message acknowledged within %v; cut short\n", r.Run, r.Scenario, r.Broker, cfg.OverloadTimeout)
	}
	r.Sent, r.Acked = l.sent(), l.acked()
	r.Drained = l.drain(r.Acked, pid, cfg.Drain)
	r.Elapsed = time.Unix(0, l.subs[0].last.Load()).Sub(start)
	busy1, _ := machineTicks()
	cpu1, load1 := cpuTicks(pid), cpuTicks(os.Getpid())
	r.BrokerCPU, r.LoadCPU = ticksBetween(cpu0, cpu1), ticksBetween(load0, load1)
	r.OtherCPU = -1
	if busy := ticksBetween(busy0, busy1); busy >= 0 && r.BrokerCPU >= 0 && r.LoadCPU >= 0 {
		r.OtherCPU = busy - r.BrokerCPU - r.LoadCPU
	}
	l.close()
	if err := l.subs[0].err; err != nil {
		return err
	}
	l.qos1Totals(r)
	r.Published, r.Delivered = r.Acked, r.Got
	if r.Got == 0 {
		return errors.New("nothing delivered")
	}
	return nil
}

// mqttIdle measures the broker's resident memory before and with
// IdleClients clients connected, each subscribed to a topic of its own.
func mqttIdle(br *mqttRunning, r *MQTTResult, cfg MQTTConfig) error {
	r.Subs = cfg.IdleClients
	time.Sleep(200 * time.Millisecond)
	var err error
	if r.Before, err = br.memory(); err != nil {
		return err
	}
	conns, err := mqttDialMany(br.addr, r.Subs, 32, func(i int) mqttDialOptions {
		return mqttDialOptions{clientID: mqttClientID("idle", i), filter: fmt.Sprintf("bench/idle/%d", i), bufSize: 512}
	})
	if err != nil {
		return err
	}
	defer mqttCloseAll(conns)
	if br.child != nil {
		if err := br.child.waitConns(int64(r.Subs), 30*time.Second); err != nil {
			return err
		}
	}
	time.Sleep(500 * time.Millisecond)
	if r.After, err = br.memory(); err != nil {
		return err
	}
	if br.child != nil && r.After.Conns != int64(r.Subs) {
		return fmt.Errorf("%d connections open at the measurement, want %d", r.After.Conns, r.Subs)
	}
	if cfg.HeapProfileDir != "" && br.child != nil {
		r.Profile = filepath.Join(cfg.HeapProfileDir, fmt.Sprintf("%s.%s.run%d.heap.pprof", r.Scenario, r.Broker, r.Run))
		if err := br.child.profile(r.Profile); err != nil {
			return err
		}
	}
	return nil
}
