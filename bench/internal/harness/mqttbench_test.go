package harness

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"
)

// mqttTestBrokers are the brokers the tests start: Mosquitto only where it
// is installed.
func mqttTestBrokers(t *testing.T) []MQTTBroker {
	var out []MQTTBroker
	for _, b := range MQTTBrokers {
		if b == MQTTMosquitto && !MosquittoAvailable() {
			t.Logf("%s not installed: Mosquitto left out", MosquittoPath)
			continue
		}
		out = append(out, b)
	}
	return out
}

// TestMQTTBrokersPass starts every broker and checks, with the load's own
// MQTT code, that a QoS 0 and a QoS 1 message pass from a publisher to a
// subscriber intact, that the QoS 1 one is acknowledged to the publisher,
// and that the broker stops cleanly.
func TestMQTTBrokersPass(t *testing.T) {
	for _, b := range mqttTestBrokers(t) {
		t.Run(string(b), func(t *testing.T) {
			br, err := startMQTTBroker(b, mqttStartOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := br.stop(); err != nil {
					t.Error(err)
				}
			}()
			sub, err := mqttDial(br.addr, mqttDialOptions{clientID: "test-sub", filter: "test/+", qos: 1}, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.close()
			pub, err := mqttDial(br.addr, mqttDialOptions{clientID: "test-pub", sndBuf: mqttPubSndBuf}, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer pub.close()
			payload := mqttPayload(64)
			mqttPutPayload(payload, 7, 42)
			msgs := mqttAppendPublish(nil, "test/a", 0, 0, payload)
			msgs = mqttAppendPublish(msgs, "test/b", 1, mqttPacketID(42), payload)
			if _, err := pub.nc.Write(msgs); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(5 * time.Second)
			pub.nc.SetDeadline(deadline)
			sub.nc.SetDeadline(deadline)
			h, body, err := pub.next()
			if err != nil {
				t.Fatalf("publisher: %v", err)
			}
			if h != mqttPUBACK || !bytes.Equal(body, []byte{0, 43}) {
				t.Fatalf("publisher got %#x %x, want PUBACK for packet ID 43", h, body)
			}
			for i, wantQoS := range []byte{0, 1} {
				h, body, err := sub.next()
				if err != nil {
					t.Fatalf("subscriber, message %d: %v", i, err)
				}
				if h&0xf0 != mqttPUBLISH || (h>>1)&3 != wantQoS {
					t.Fatalf("subscriber, message %d: got %#x, want PUBLISH at QoS %d", i, h, wantQoS)
				}
				id, got, err := mqttPublishFields(h, body)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, payload) {
					t.Fatalf("message %d: payload %q, want %q", i, got, payload)
				}
				if wantQoS == 1 {
					if _, err := sub.nc.Write(mqttAppendPuback(nil, id)); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := br.alive(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestMQTTRunSmall runs every scenario in a small configuration against
// Meerkat (epoll) and Mosquitto: each yields figures, Meerkat loses nothing
// it acknowledged, and the report has every row and checks the targets.
func TestMQTTRunSmall(t *testing.T) {
	brokers := []MQTTBroker{MQTTMeerkatEpoll}
	if MosquittoAvailable() {
		brokers = append(brokers, MQTTMosquitto)
	}
	var log strings.Builder
	cfg := MQTTConfig{
		Brokers: brokers, Scenarios: MQTTScenarios, Runs: 1,
		Warmup: 100 * time.Millisecond, Duration: 300 * time.Millisecond,
		FanInPubs: 4, FanOutSubs: 20, QoS1Pubs: 2, Window: 4,
		OverloadPubs: 4, OverloadMsgs: 300, IdleClients: 50,
		Drain: 5 * time.Second, Log: &log,
	}
	results, err := RunMQTT(cfg)
	t.Logf("\n%s", log.String())
	if err != nil {
		t.Fatal(err)
	}
	if want := len(brokers) * len(MQTTScenarios); len(results) != want {
		t.Fatalf("%d results, want %d", len(results), want)
	}
	for _, r := range results {
		switch r.Scenario {
		case MQTTIdle:
			if r.Subs != 50 || r.Before.RSSKiB <= 0 || r.After.RSSKiB <= 0 {
				t.Errorf("%s %s: clients %d, RSS %d -> %d KiB", r.Broker, r.Scenario, r.Subs, r.Before.RSSKiB, r.After.RSSKiB)
			}
		default:
			if r.Delivered <= 0 || r.Got <= 0 || r.Sent <= 0 {
				t.Errorf("%s %s: delivered %d, got %d, sent %d", r.Broker, r.Scenario, r.Delivered, r.Got, r.Sent)
			}
			if r.Got > r.Expected && r.Scenario != MQTTOverload {
				t.Errorf("%s %s: got %d of %d expected", r.Broker, r.Scenario, r.Got, r.Expected)
			}
		}
		if r.Broker == MQTTMeerkatEpoll && (r.Scenario == MQTTQoS1 || r.Scenario == MQTTOverload) {
			if r.Lost != 0 || r.Acked == 0 || r.Got != r.Acked {
				t.Errorf("meerkat-epoll %s: acknowledged %d, delivered %d, lost %d", r.Scenario, r.Acked, r.Got, r.Lost)
			}
		}
		if r.Broker == MQTTMeerkatEpoll && r.Scenario == MQTTOverload && r.Acked != int64(4*300) {
			t.Errorf("overload: %d acknowledged, want %d", r.Acked, 4*300)
		}
	}
	var b strings.Builder
	WriteMQTTReport(&b, cfg, results)
	rep := b.String()
	for _, br := range brokers {
		if n := strings.Count(rep, "| "+string(br)+" |"); n != len(MQTTScenarios) {
			t.Errorf("report has %d rows for %s, want %d", n, br, len(MQTTScenarios))
		}
	}
	for _, want := range []string{"0 QoS 1 messages lost under overload", "KiB per idle client"} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if MosquittoAvailable() && !strings.Contains(rep, "≥ Mosquitto in deliveries/s") {
		t.Error("report does not compare with Mosquitto")
	}
	t.Logf("\n%s", rep)
}

// TestMQTTCodec checks the load's hand-made encoding against byte fixtures
// of MQTT 3.1.1, the splitter on partial and malformed input, and the
// mapping of packet IDs back to sequence numbers across the wrap-around.
func TestMQTTCodec(t *testing.T) {
	if got, want := mqttAppendConnect(nil, "ab", 60), []byte{0x10, 14, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, 2, 'a', 'b'}; !bytes.Equal(got, want) {
		t.Errorf("CONNECT % x, want % x", got, want)
	}
	if got, want := mqttAppendSubscribe(nil, 1, "t/#", 1), []byte{0x82, 8, 0, 1, 0, 3, 't', '/', '#', 1}; !bytes.Equal(got, want) {
		t.Errorf("SUBSCRIBE % x, want % x", got, want)
	}
	if got, want := mqttAppendPublish(nil, "t", 1, 0x0102, []byte("x")), []byte{0x32, 6, 0, 1, 't', 1, 2, 'x'}; !bytes.Equal(got, want) {
		t.Errorf("PUBLISH % x, want % x", got, want)
	}
	big := mqttAppendPublish(nil, "t", 0, 0, make([]byte, 200))
	if !bytes.Equal(big[:3], []byte{0x30, 0xcb, 0x01}) { // 203 = 0x4b + 1×128
		t.Errorf("remaining length % x, want 30 cb 01", big[:3])
	}
	for cut := range len(big) {
		if _, _, n, err := mqttSplit(big[:cut]); n != 0 || err != nil {
			t.Fatalf("split of %d of %d bytes: n %d, err %v", cut, len(big), n, err)
		}
	}
	h, body, n, err := mqttSplit(append(big, 0x40))
	if err != nil || h != 0x30 || n != len(big) || len(body) != 203 {
		t.Errorf("split: %#x, %d-byte body, n %d, %v", h, len(body), n, err)
	}
	if _, _, _, err := mqttSplit([]byte{0x30, 0xff, 0xff, 0xff, 0xff, 1}); err == nil {
		t.Error("a five-byte remaining length was accepted")
	}
	id, payload, err := mqttPublishFields(0x32, []byte{0, 1, 't', 1, 2, 'x'})
	if err != nil || id != 0x0102 || string(payload) != "x" {
		t.Errorf("publish fields: %#x %q %v", id, payload, err)
	}
	for _, seq := range []uint64{0, 1, 65534, 65535, 65536, 200000} {
		for _, ahead := range []uint64{1, 10, 1000} {
			if got := mqttSeqOf(mqttPacketID(seq), seq+ahead); got != int64(seq) {
				t.Errorf("seq %d with %d sent after: mapped back to %d", seq, ahead-1, got)
			}
		}
	}
	if got := mqttSeqOf(5, 3); got != -1 {
		t.Errorf("an ID never sent mapped to %d", got)
	}
	var a, b mqttBits
	for _, i := range []uint64{0, 63, 64, 1000} {
		if a.set(i) {
			t.Errorf("bit %d set twice", i)
		}
	}
	if !a.set(64) || !a.has(1000) || a.has(999) {
		t.Error("bit set state wrong")
	}
	b.set(63)
	b.set(1000)
	if a.count() != 4 || a.missing(b) != 2 || b.missing(a) != 0 {
		t.Errorf("count %d, missing %d / %d", a.count(), a.missing(b), b.missing(a))
	}
	p := make([]byte, 16)
	mqttPutPayload(p, 3, 1<<40)
	if binary.BigEndian.Uint32(p) != 3 || binary.BigEndian.Uint64(p[4:]) != 1<<40 {
		t.Errorf("payload header % x", p[:12])
	}
}

// TestMQTTReportFigures checks the report's arithmetic: medians of odd and
// even counts, ranges, rates, losses and the per-client memory.
func TestMQTTReportFigures(t *testing.T) {
	if s := mqttStatOf([]float64{3, 1, 2}); s.med != 2 || s.lo != 1 || s.hi != 3 {
		t.Errorf("odd: %+v", s)
	}
	if s := mqttStatOf([]float64{4, 1, 2, 3}); s.med != 2.5 {
		t.Errorf("even: %+v", s)
	}
	if got := mqttStatOf([]float64{1500, 1000, 2000}).format(mqttCommas); got != "1,500 (1,000 – 2,000)" {
		t.Errorf("format: %q", got)
	}
	if got := mqttCommas(1234567.4); got != "1,234,567" {
		t.Errorf("commas: %q", got)
	}
	r := MQTTResult{Delivered: 500_000, Published: 250_000, Elapsed: 2 * time.Second, BrokerCPU: time.Second,
		Expected: 1000, Lost: 10, Subs: 1000,
		Before: mqttMemory{RSSKiB: 10_000}, After: mqttMemory{RSSKiB: 11_000, HeapInuse: 500 << 10}}
	if r.DeliveredPerSec() != 250_000 || r.PublishedPerSec() != 125_000 || r.PerCPUSecond() != 500_000 {
		t.Errorf("rates %v %v %v", r.DeliveredPerSec(), r.PublishedPerSec(), r.PerCPUSecond())
	}
	if r.LossRatio() != 0.01 || r.RSSPerClientKiB() != 1 || r.HeapPerClientKiB() != 0.5 {
		t.Errorf("loss %v, RSS/client %v, heap/client %v", r.LossRatio(), r.RSSPerClientKiB(), r.HeapPerClientKiB())
	}
	if _, err := ParseMQTTBrokers("meerkat-epoll,nope"); err == nil {
		t.Error("unknown broker accepted")
	}
	if s, err := ParseMQTTScenarios("fan-in,overload"); err != nil || len(s) != 2 {
		t.Errorf("scenarios: %v %v", s, err)
	}
}
