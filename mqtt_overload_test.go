package meerkat_test

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meerkat-net/meerkat"
)

// mqoRawSub is a raw MQTT 3.1.1 subscriber (hand-encoded packets) that
// acknowledges every QoS 1 PUBLISH, and reads only while reading is open.
type mqoRawSub struct {
	nc      net.Conn
	open    chan struct{} // closed: read
	mu      sync.Mutex
	got     map[string]bool // payloads received
	dups    int
	packets atomic.Int64
	done    chan error
}

func mqoDialSub(t *testing.T, addr, id, filter string, readNow bool) *mqoRawSub {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	// CONNECT: MQTT level 4, clean session, keepalive 0, client ID id.
	var b []byte
	b = append(b, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 0)
	b = append(b, byte(len(id)>>8), byte(len(id)))
	b = append(b, id...)
	pkt := append([]byte{0x10, byte(len(b))}, b...)
	// SUBSCRIBE id 1, filter, QoS 1.
	sb := []byte{0, 1, byte(len(filter) >> 8), byte(len(filter))}
	sb = append(sb, filter...)
	sb = append(sb, 1)
	pkt = append(pkt, 0x82, byte(len(sb)))
	pkt = append(pkt, sb...)
	if _, err := nc.Write(pkt); err != nil {
		t.Fatal(err)
	}
	s := &mqoRawSub{nc: nc, open: make(chan struct{}), got: map[string]bool{}, done: make(chan error, 1)}
	if readNow {
		close(s.open)
	}
	go func() { s.done <- s.read() }()
	return s
}

// read decodes the broker's packets (CONNACK, SUBACK, PUBLISH) and answers
// each QoS 1 PUBLISH with PUBACK.
func (s *mqoRawSub) read() error {
	<-s.open
	var hdr [1]byte
	for {
		if _, err := io.ReadFull(s.nc, hdr[:]); err != nil {
			return err
		}
		n, mul := 0, 1
		for {
			var c [1]byte
			if _, err := io.ReadFull(s.nc, c[:]); err != nil {
				return err
			}
			n += int(c[0]&0x7f) * mul
			if c[0]&0x80 == 0 {
				break
			}
			mul *= 128
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(s.nc, body); err != nil {
			return err
		}
		s.packets.Add(1)
		if hdr[0]>>4 != 3 {
			continue
		}
		tl := int(binary.BigEndian.Uint16(body))
		rest := body[2+tl:]
		qos := hdr[0] >> 1 & 3
		payload := rest
		if qos > 0 {
			payload = rest[2:]
			if _, err := s.nc.Write([]byte{0x40, 2, rest[0], rest[1]}); err != nil {
				return err
			}
		}
		s.mu.Lock()
		if s.got[string(payload)] {
			s.dups++
		}
		s.got[string(payload)] = true
		s.mu.Unlock()
	}
}

func (s *mqoRawSub) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

// TestMQTTOverloadNoQoS1Loss: 50 publishers flood QoS 1 messages at a
// subscriber that does not read at first. Its queue fills, the broker
// stops reading from the publishers (Paused in the stats) instead of
// dropping anything; a second, fast subscriber keeps receiving meanwhile;
// once the slow one reads, every message reaches both, none twice, and
// nothing was dropped.
func TestMQTTOverloadNoQoS1Loss(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		e.m.MQTT.MaxQueued = 50
		e.m.MQTT.SendHighWater = 16 << 10
		l, err := e.m.MQTTListen("mqtt://127.0.0.1:0", nil)
		if err != nil {
			t.Fatal(err)
		}
		addr := l.LocalAddr().String()
		slow := mqoDialSub(t, addr, "slow", "load/#", false)
		fast := mqoDialSub(t, addr, "fast", "load/#", true)
		e.pollUntil(5*time.Second, "the subscribers", func() bool { return e.m.MQTTStats().Connected == 2 && fast.packets.Load() >= 2 })

		const pubs, each = 50, 100
		opened := 0
		for p := range pubs {
			_, err := e.m.MQTTConnect("mqtt://"+addr, &meerkat.MQTTOptions{Clean: true}, e.chk.wrap(func(c *meerkat.Conn, ev meerkat.Event, data any) {
				if ev == meerkat.EvMQTTOpen {
					opened++
					for i := range each {
						meerkat.MQTTPub(c, &meerkat.MQTTOptions{Topic: fmt.Sprintf("load/%d", p), Message: []byte(fmt.Sprintf("%d/%d", p, i)), QoS: 1})
					}
				}
			}))
			if err != nil {
				t.Fatal(err)
			}
		}
		e.pollUntil(20*time.Second, "back-pressure", func() bool { return e.m.MQTTStats().Paused > 0 })
		before := fast.count()
		e.pollUntil(20*time.Second, "the fast subscriber served meanwhile", func() bool { return fast.count() > before })
		close(slow.open)
		e.pollUntil(60*time.Second, "every message to both", func() bool { return slow.count() == pubs*each && fast.count() == pubs*each })
		st := e.m.MQTTStats()
		if st.DroppedQoS0+st.DroppedQueueful+st.DroppedExpired != 0 || slow.dups != 0 || fast.dups != 0 {
			t.Fatalf("stats %+v, duplicates %d/%d", st, slow.dups, fast.dups)
		}
		t.Logf("publishers %d, stats %+v", opened, st)
	})
}

// TestMQTTSlowSubscriberDisconnected: a subscriber that never reads, with
// a full queue, is disconnected after SlowTimeout (SlowDropped), and the
// publishers it held back go on for the others.
func TestMQTTSlowSubscriberDisconnected(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		e.m.MQTT.MaxQueued = 20
		e.m.MQTT.SendHighWater = 4 << 10
		e.m.MQTT.SlowTimeout = 300 * time.Millisecond
		l, err := e.m.MQTTListen("mqtt://127.0.0.1:0", nil)
		if err != nil {
			t.Fatal(err)
		}
		addr := l.LocalAddr().String()
		mqoDialSub(t, addr, "slow", "load/#", false) // never reads
		fast := mqoDialSub(t, addr, "fast", "load/#", true)
		e.pollUntil(5*time.Second, "the subscribers", func() bool { return e.m.MQTTStats().Connected == 2 && fast.packets.Load() >= 2 })
		const each = 2000
		_, err = e.m.MQTTConnect("mqtt://"+addr, nil, e.chk.wrap(func(c *meerkat.Conn, ev meerkat.Event, data any) {
			if ev == meerkat.EvMQTTOpen {
				for i := range each {
					meerkat.MQTTPub(c, &meerkat.MQTTOptions{Topic: "load/x", Message: []byte(fmt.Sprint(i)), QoS: 1})
				}
			}
		}))
		if err != nil {
			t.Fatal(err)
		}
		e.pollUntil(30*time.Second, "the fast subscriber's messages", func() bool { return fast.count() == each })
		st := e.m.MQTTStats()
		if st.SlowDropped != 1 || st.Paused != 0 {
			t.Fatalf("stats %+v, want one slow subscriber dropped and nobody paused", st)
		}
	})
}
