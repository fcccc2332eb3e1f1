package interop

// Eclipse Paho's Go clients — paho.mqtt.golang (MQTT 3.1.1) and paho.golang
// (MQTT 5) — against Meerkat's broker, on both drivers, over TCP and TLS:
// publishing and subscribing at QoS 0, 1 and 2 (1,000 messages per
// publisher, each subscriber getting every publisher's messages in order),
// retained messages, and wills. The broker's Manager is polled on its own
// goroutine; the test talks to it only through mqpBroker.do.

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	paho "github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/meerkat-net/meerkat"
	"github.com/meerkat-net/meerkat/internal/testcert"
)

// mqpLimit bounds every wait of these tests.
const mqpLimit = 30 * time.Second

// mqpBroker is a Meerkat broker whose Manager a goroutine polls.
type mqpBroker struct {
	m      *meerkat.Manager
	port   string
	useTLS bool
	calls  chan func()
	stop   chan struct{}
	done   chan struct{}

	waiters []mqpWaiter // conditions checked after each Poll (the loop's own)
}

type mqpWaiter struct {
	cond func(*meerkat.Manager) bool
	ok   chan struct{}
}

// mqpStart starts a broker on drv (mqtts:// with the test certificate if
// useTLS), stopped and closed at the end of the test.
func mqpStart(t *testing.T, drv string, useTLS bool) *mqpBroker {
	t.Helper()
	m, err := meerkat.NewManagerDriver(drv)
	if err != nil {
		t.Fatal(err)
	}
	m.TLSConfig = testcert.ServerConfig()
	scheme := "mqtt"
	if useTLS {
		scheme = "mqtts"
	}
	l, err := m.MQTTListen(scheme+"://127.0.0.1:0", nil)
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	b := &mqpBroker{m: m, port: strconv.Itoa(int(l.LocalAddr().Port())), useTLS: useTLS,
		calls: make(chan func()), stop: make(chan struct{}), done: make(chan struct{})}
	go b.loop()
	t.Cleanup(func() {
		close(b.stop)
		<-b.done
		m.Close()
	})
	return b
}

func (b *mqpBroker) loop() {
	defer close(b.done)
	for {
		select {
		case <-b.stop:
			return
		case f := <-b.calls:
			f()
		default:
		}
		b.m.Poll(5 * time.Millisecond)
		b.waiters = slices.DeleteFunc(b.waiters, func(w mqpWaiter) bool {
			if w.cond(b.m) {
				close(w.ok)
				return true
			}
			return false
		})
	}
}

// await waits until cond, checked on the Manager's goroutine after each
// Poll, holds.
func (b *mqpBroker) await(t *testing.T, what string, cond func(*meerkat.Manager) bool) {
	t.Helper()
	ok := make(chan struct{})
	b.do(func() { b.waiters = append(b.waiters, mqpWaiter{cond, ok}) })
	select {
	case <-ok:
	case <-time.After(mqpLimit):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// do runs f on the Manager's goroutine, between two Polls.
func (b *mqpBroker) do(f func()) {
	ran := make(chan struct{})
	b.calls <- func() { f(); close(ran) }
	<-ran
}

func (b *mqpBroker) stats() (st meerkat.MQTTBrokerStats) {
	b.do(func() { st = b.m.MQTTStats() })
	return st
}

// dial opens the network connection a client uses: TLS (verifying the
// test certificate for "localhost") when the broker is on TLS.
func (b *mqpBroker) dial() (net.Conn, error) {
	nc, err := net.DialTimeout("tcp", "127.0.0.1:"+b.port, 10*time.Second)
	if err != nil || !b.useTLS {
		return nc, err
	}
	tc := tls.Client(nc, &tls.Config{RootCAs: testcert.Default.CA.Pool, ServerName: "localhost"})
	if err := tc.Handshake(); err != nil {
		nc.Close()
		return nil, err
	}
	return tc, nil
}

// mqpMsg is a message a Paho client received.
type mqpMsg struct {
	topic, payload string
	qos            byte
	retained       bool
}

// mqpInbox collects a client's messages; waiting is on a channel signalled
// by each arrival.
type mqpInbox struct {
	mu      sync.Mutex
	msgs    []mqpMsg
	changed chan struct{}
}

func newInbox() *mqpInbox { return &mqpInbox{changed: make(chan struct{}, 1)} }

func (in *mqpInbox) add(m mqpMsg) {
	in.mu.Lock()
	in.msgs = append(in.msgs, m)
	in.mu.Unlock()
	select {
	case in.changed <- struct{}{}:
	default:
	}
}

func (in *mqpInbox) snapshot() []mqpMsg {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.msgs)
}

// wait waits until cond holds for the messages received, or mqpLimit.
func (in *mqpInbox) wait(t *testing.T, what string, cond func([]mqpMsg) bool) []mqpMsg {
	t.Helper()
	deadline := time.NewTimer(mqpLimit)
	defer deadline.Stop()
	for {
		msgs := in.snapshot()
		if cond(msgs) {
			return msgs
		}
		select {
		case <-in.changed:
		case <-deadline.C:
			t.Fatalf("%s: timed out with %d messages", what, len(msgs))
		}
	}
}

// waitN waits for n messages.
func (in *mqpInbox) waitN(t *testing.T, what string, n int) []mqpMsg {
	t.Helper()
	return in.wait(t, what, func(m []mqpMsg) bool { return len(m) >= n })
}

// mqpWill is a will for a client.
type mqpWill struct {
	topic, payload string
	qos            byte
	retain         bool
}

// mqpV3 is a paho.mqtt.golang client (MQTT 3.1.1) whose network
// connection the test can cut.
type mqpV3 struct {
	c     mqtt.Client
	inbox *mqpInbox
	mu    sync.Mutex
	conn  net.Conn
}

func mqpConnectV3(t *testing.T, b *mqpBroker, id string, will *mqpWill) *mqpV3 {
	t.Helper()
	k := &mqpV3{inbox: newInbox()}
	scheme := "tcp"
	if b.useTLS {
		scheme = "ssl"
	}
	o := mqtt.NewClientOptions().AddBroker(scheme + "://localhost:" + b.port).SetClientID(id).
		SetCleanSession(true).SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).
		SetOrderMatters(true).SetKeepAlive(60 * time.Second).SetConnectTimeout(10 * time.Second).
		SetWriteTimeout(10 * time.Second).SetMessageChannelDepth(4000).
		SetCustomOpenConnectionFn(func(*url.URL, mqtt.ClientOptions) (net.Conn, error) {
			nc, err := b.dial()
			k.mu.Lock()
			k.conn = nc
			k.mu.Unlock()
			return nc, err
		})
	if will != nil {
		o.SetWill(will.topic, will.payload, will.qos, will.retain)
	}
	k.c = mqtt.NewClient(o)
	if tok := k.c.Connect(); !tok.WaitTimeout(mqpLimit) || tok.Error() != nil {
		t.Fatalf("paho v3 %s: connect: %v", id, tok.Error())
	}
	t.Cleanup(func() {
		k.c.Disconnect(0)
		k.cut()
	})
	return k
}

func (k *mqpV3) sub(t *testing.T, filter string, qos byte) {
	t.Helper()
	tok := k.c.Subscribe(filter, qos, func(_ mqtt.Client, m mqtt.Message) {
		k.inbox.add(mqpMsg{m.Topic(), string(m.Payload()), m.Qos(), m.Retained()})
	})
	if !tok.WaitTimeout(mqpLimit) || tok.Error() != nil {
		t.Fatalf("paho v3: subscribe %s: %v", filter, tok.Error())
	}
	if got := tok.(*mqtt.SubscribeToken).Result()[filter]; got != qos {
		t.Fatalf("paho v3: subscribe %s: granted %d, want %d", filter, got, qos)
	}
}

// pub publishes payloads in order, all sent before any is waited for.
func (k *mqpV3) pub(topic string, qos byte, retain bool, payloads ...string) error {
	toks := make([]mqtt.Token, 0, len(payloads))
	for _, p := range payloads {
		toks = append(toks, k.c.Publish(topic, qos, retain, p))
	}
	for i, tok := range toks {
		if !tok.WaitTimeout(mqpLimit) {
			return fmt.Errorf("paho v3: publish %d on %s: no acknowledgement", i, topic)
		}
		if err := tok.Error(); err != nil {
			return fmt.Errorf("paho v3: publish %d on %s: %w", i, topic, err)
		}
	}
	return nil
}

// cut closes the network connection under the client: no DISCONNECT.
func (k *mqpV3) cut() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.conn != nil {
		k.conn.Close()
	}
}

// mqpV5 is a paho.golang client (MQTT 5).
type mqpV5 struct {
	c     *paho.Client
	conn  net.Conn
	inbox *mqpInbox
}

func mqpConnectV5(t *testing.T, b *mqpBroker, id string, will *mqpWill) *mqpV5 {
	t.Helper()
	nc, err := b.dial()
	if err != nil {
		t.Fatalf("paho v5 %s: dial: %v", id, err)
	}
	k := &mqpV5{conn: nc, inbox: newInbox()}
	k.c = paho.NewClient(paho.ClientConfig{
		ClientID:      id,
		Conn:          packets.NewThreadSafeConn(nc),
		PacketTimeout: mqpLimit,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			p := pr.Packet
			k.inbox.add(mqpMsg{p.Topic, string(p.Payload), p.QoS, p.Retain})
			return true, nil
		}},
	})
	cp := &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 60}
	if will != nil {
		cp.WillMessage = &paho.WillMessage{Topic: will.topic, Payload: []byte(will.payload), QoS: will.qos, Retain: will.retain}
		cp.WillProperties = &paho.WillProperties{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), mqpLimit)
	defer cancel()
	ack, err := k.c.Connect(ctx, cp)
	if err != nil || ack.ReasonCode != 0 {
		nc.Close()
		t.Fatalf("paho v5 %s: connect: %v (%+v)", id, err, ack)
	}
	t.Cleanup(func() {
		k.c.Disconnect(&paho.Disconnect{})
		nc.Close()
		select {
		case <-k.c.Done():
		case <-time.After(mqpLimit):
			t.Errorf("paho v5 %s did not stop", id)
		}
	})
	return k
}

func (k *mqpV5) sub(t *testing.T, filter string, qos byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), mqpLimit)
	defer cancel()
	ack, err := k.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: qos}}})
	if err != nil || len(ack.Reasons) != 1 || ack.Reasons[0] != qos {
		t.Fatalf("paho v5: subscribe %s: %v %+v", filter, err, ack)
	}
}

// pub publishes payloads in order, each waited for (QoS 1 and 2: its
// acknowledgement).
func (k *mqpV5) pub(topic string, qos byte, retain bool, payloads ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), mqpLimit)
	defer cancel()
	for i, p := range payloads {
		resp, err := k.c.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Retain: retain, Payload: []byte(p)})
		if err != nil {
			return fmt.Errorf("paho v5: publish %d on %s: %w", i, topic, err)
		}
		if qos > 0 && resp.ReasonCode != 0 {
			return fmt.Errorf("paho v5: publish %d on %s: reason code 0x%02x", i, topic, resp.ReasonCode)
		}
	}
	return nil
}

// mqpForEach runs fn per driver (MEERKAT_DRIVER restricts them), over TCP
// and, with withTLS, over TLS.
func mqpForEach(t *testing.T, withTLS bool, fn func(t *testing.T, drv string, useTLS bool)) {
	drivers := []string{"epoll", "portable"}
	if d := os.Getenv("MEERKAT_DRIVER"); d != "" {
		drivers = []string{d}
	}
	for _, drv := range drivers {
		for _, useTLS := range []bool{false, true} {
			if useTLS && !withTLS {
				continue
			}
			name := drv + "/plain"
			if useTLS {
				name = drv + "/tls"
			}
			t.Run(name, func(t *testing.T) { fn(t, drv, useTLS) })
		}
	}
}

// mqpPayloads are n numbered payloads.
func mqpPayloads(prefix string, n int) []string {
	p := make([]string, n)
	for i := range p {
		p[i] = prefix + strconv.Itoa(i)
	}
	return p
}

// mqpCheckStream checks that msgs hold, for each publisher's topic, exactly
// want's payloads in order, at QoS qos.
func mqpCheckStream(msgs []mqpMsg, qos byte, want map[string][]string) error {
	got := map[string][]string{}
	for _, m := range msgs {
		if m.qos != qos || m.retained {
			return fmt.Errorf("%s %q at QoS %d retained %v, want QoS %d not retained", m.topic, m.payload, m.qos, m.retained, qos)
		}
		got[m.topic] = append(got[m.topic], m.payload)
	}
	for topic, w := range want {
		g := got[topic]
		if !slices.Equal(g, w) {
			i := 0
			for i < len(g) && i < len(w) && g[i] == w[i] {
				i++
			}
			return fmt.Errorf("%s: %d messages, want %d; first difference at %d", topic, len(g), len(w), i)
		}
	}
	if len(got) != len(want) {
		return fmt.Errorf("messages on %d topics, want %d", len(got), len(want))
	}
	return nil
}

// TestMQTTPahoPubSub: a paho v3 and a paho v5 publisher each publish 1,000
// messages at once through the broker, at QoS 0, 1 and 2; a paho v3 and a
// paho v5 subscriber each receive all 2,000, every publisher's in order,
// at the QoS published, none twice; the broker counts them and drops
// none.
func TestMQTTPahoPubSub(t *testing.T) {
	const n = 1000
	mqpForEach(t, true, func(t *testing.T, drv string, useTLS bool) {
		b := mqpStart(t, drv, useTLS)
		for qos := byte(0); qos <= 2; qos++ {
			pre := fmt.Sprintf("mqp/q%d/", qos)
			start := time.Now()
			s3 := mqpConnectV3(t, b, fmt.Sprintf("sub3-q%d", qos), nil)
			s5 := mqpConnectV5(t, b, fmt.Sprintf("sub5-q%d", qos), nil)
			s3.sub(t, pre+"#", qos)
			s5.sub(t, pre+"#", qos)
			p3 := mqpConnectV3(t, b, fmt.Sprintf("pub3-q%d", qos), nil)
			p5 := mqpConnectV5(t, b, fmt.Sprintf("pub5-q%d", qos), nil)
			want := map[string][]string{pre + "v3": mqpPayloads("v3-", n), pre + "v5": mqpPayloads("v5-", n)}
			before := b.stats()
			errs := make(chan error, 2)
			go func() { errs <- p3.pub(pre+"v3", qos, false, want[pre+"v3"]...) }()
			go func() { errs <- p5.pub(pre+"v5", qos, false, want[pre+"v5"]...) }()
			for range 2 {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			for name, in := range map[string]*mqpInbox{"paho v3": s3.inbox, "paho v5": s5.inbox} {
				msgs := in.waitN(t, name+" subscriber", 2*n)
				if err := mqpCheckStream(msgs, qos, want); err != nil {
					t.Errorf("QoS %d, %s subscriber: %v", qos, name, err)
				}
			}
			st := b.stats()
			if r, d := st.Received-before.Received, st.Delivered-before.Delivered; r != 2*n || d != 4*n {
				t.Errorf("QoS %d: broker received %d and delivered %d, want %d and %d", qos, r, d, 2*n, 4*n)
			}
			if st.DroppedQoS0 != 0 || st.DroppedQueueful != 0 {
				t.Errorf("QoS %d: broker dropped messages: %+v", qos, st)
			}
			t.Logf("QoS %d: %d messages through in %v", qos, 4*n, time.Since(start).Round(time.Millisecond))
		}
	})
}

// TestMQTTPahoRetained: a retained message published by either client is
// sent to a later subscriber of the other version with the retain flag, a
// replaced one only in its latest version, and a cleared one not at all.
func TestMQTTPahoRetained(t *testing.T) {
	mqpForEach(t, false, func(t *testing.T, drv string, useTLS bool) { // TLS: as over TCP
		b := mqpStart(t, drv, useTLS)
		p3 := mqpConnectV3(t, b, "ret-pub3", nil)
		p5 := mqpConnectV5(t, b, "ret-pub5", nil)
		for _, err := range []error{
			p3.pub("mqp/ret/v3", 1, true, "old three"),
			p3.pub("mqp/ret/v3", 2, true, "three"),
			p5.pub("mqp/ret/v5", 2, true, "old five"),
			p5.pub("mqp/ret/v5", 1, true, "five"),
			p5.pub("mqp/ret/gone", 1, true, "cleared"),
			p3.pub("mqp/ret/gone", 1, true, ""),
		} {
			if err != nil {
				t.Fatal(err)
			}
		}
		if n := b.stats().Retained; n != 2 {
			t.Errorf("%d retained messages, want 2", n)
		}
		s3 := mqpConnectV3(t, b, "ret-sub3", nil)
		s3.sub(t, "mqp/ret/#", 2)
		s5 := mqpConnectV5(t, b, "ret-sub5", nil)
		s5.sub(t, "mqp/ret/#", 2)
		for name, in := range map[string]*mqpInbox{"paho v3": s3.inbox, "paho v5": s5.inbox} {
			msgs := in.waitN(t, name, 2)
			slices.SortFunc(msgs, func(x, y mqpMsg) int { return strings.Compare(x.topic, y.topic) })
			want := []mqpMsg{{"mqp/ret/v3", "three", 2, true}, {"mqp/ret/v5", "five", 1, true}}
			if !slices.Equal(msgs, want) {
				t.Errorf("%s subscriber got %+v, want %+v", name, msgs, want)
			}
		}
		if err := p3.pub("mqp/ret/live", 1, false, "end"); err != nil {
			t.Fatal(err)
		}
		for name, in := range map[string]*mqpInbox{"paho v3": s3.inbox, "paho v5": s5.inbox} {
			if msgs := in.waitN(t, name, 3); len(msgs) != 3 || msgs[2].payload != "end" {
				t.Errorf("%s subscriber: %+v, want the retained two then the live one", name, msgs)
			}
		}
	})
}

// TestMQTTPahoWill: a paho client of either version whose connection is
// cut (no DISCONNECT) has its will published, at its QoS, to the other
// version's subscriber; one that disconnects has not.
func TestMQTTPahoWill(t *testing.T) {
	mqpForEach(t, true, func(t *testing.T, drv string, useTLS bool) {
		b := mqpStart(t, drv, useTLS)
		s3 := mqpConnectV3(t, b, "will-sub3", nil)
		s3.sub(t, "mqp/will/#", 2)
		s5 := mqpConnectV5(t, b, "will-sub5", nil)
		s5.sub(t, "mqp/will/#", 2)

		w3 := mqpConnectV3(t, b, "will-v3", &mqpWill{"mqp/will/v3", "v3 gone", 1, false})
		w3.cut()
		s5.inbox.wait(t, "paho v3's will", func(m []mqpMsg) bool { return len(m) >= 1 })
		w5 := mqpConnectV5(t, b, "will-v5", &mqpWill{"mqp/will/v5", "v5 gone", 2, false})
		w5.conn.Close()
		s3.inbox.wait(t, "paho v5's will", func(m []mqpMsg) bool { return len(m) >= 2 })

		g3 := mqpConnectV3(t, b, "will-graceful3", &mqpWill{"mqp/will/graceful", "must not", 1, false})
		g3.c.Disconnect(100)
		g5 := mqpConnectV5(t, b, "will-graceful5", &mqpWill{"mqp/will/graceful", "must not", 1, false})
		if err := g5.c.Disconnect(&paho.Disconnect{}); err != nil {
			t.Fatal(err)
		}
		<-g5.c.Done()
		b.await(t, "the disconnected clients gone", func(m *meerkat.Manager) bool { return m.MQTTStats().Connected == 2 })
		p := mqpConnectV5(t, b, "will-marker", nil)
		if err := p.pub("mqp/will/marker", 1, false, "marker"); err != nil {
			t.Fatal(err)
		}
		want := []mqpMsg{{"mqp/will/v3", "v3 gone", 1, false}, {"mqp/will/v5", "v5 gone", 2, false}, {"mqp/will/marker", "marker", 1, false}}
		for name, in := range map[string]*mqpInbox{"paho v3": s3.inbox, "paho v5": s5.inbox} {
			msgs := in.waitN(t, name, 3)
			if !slices.Equal(msgs, want) {
				t.Errorf("%s subscriber got %+v, want %+v", name, msgs, want)
			}
		}
	})
}
