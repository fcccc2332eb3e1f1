package meerkat_test

// Tests of the MQTT broker (MQTTListen, issue 5) against three kinds of
// peer: mosquitto_pub and mosquitto_sub (real MQTT 3.1.1 and 5 clients,
// started and stopped by the tests), Meerkat's own MQTT client on the same
// Manager, and raw TCP clients whose every byte is written by hand here
// (never by internal/mqttpkt), for exact wire checks and malformed input.
// What a raw client receives is compared byte for byte where the encoding
// is fixed, and decoded with internal/mqttpkt where properties are involved.
//
// Everything waits for events by polling the Manager; the only waits for
// time itself are where a test proves that something does NOT happen
// before (or at all within) a protocol deadline.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meerkat-net/meerkat"
	"github.com/meerkat-net/meerkat/internal/mqttpkt"
	"github.com/meerkat-net/meerkat/internal/testcert"
)

// ---------------------------------------------------------------------
// Hand-written wire encoding, for what raw clients send.

// mqbVarint is a variable byte integer (MQTT 1.5.5).
func mqbVarint(n int) []byte {
	var b []byte
	for {
		d := byte(n & 0x7f)
		n >>= 7
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

// mqbPkt is a packet: the first byte, the remaining length, the body.
func mqbPkt(first byte, parts ...[]byte) []byte {
	body := bytes.Join(parts, nil)
	return append(append([]byte{first}, mqbVarint(len(body))...), body...)
}

func mqbStr(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
func mqbU16(v uint16) []byte { return []byte{byte(v >> 8), byte(v)} }
func mqbU32(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }
func mqbProps(ps ...[]byte) []byte {
	body := bytes.Join(ps, nil)
	return append(mqbVarint(len(body)), body...)
}

// MQTT 5 property identifiers the raw clients use.
const (
	mqbPropMessageExpiry = 0x02
	mqbPropSubID         = 0x0B
	mqbPropSessionExpiry = 0x11
	mqbPropWillDelay     = 0x18
	mqbPropReceiveMax    = 0x21
	mqbPropMaxPacket     = 0x27
)

func mqbPropU32(id byte, v uint32) []byte { return append([]byte{id}, mqbU32(v)...) }
func mqbPropU16(id byte, v uint16) []byte { return append([]byte{id}, mqbU16(v)...) }

// Packets without a variable part.
var (
	mqbPingReq    = []byte{0xC0, 0x00}
	mqbPingResp   = []byte{0xD0, 0x00}
	mqbDisconnect = []byte{0xE0, 0x00}
)

// mqbConnOpts describe a raw client's CONNECT.
type mqbConnOpts struct {
	v          byte // protocol level: 4 (3.1.1) or 5
	id         string
	clean      bool
	keepalive  uint16
	props      [][]byte // MQTT 5 CONNECT properties
	will       *mqbWillOpts
	user, pass *string
}

type mqbWillOpts struct {
	topic, payload string
	qos            byte
	retain         bool
	props          [][]byte // MQTT 5 will properties
}

func mqbConnectPkt(o mqbConnOpts) []byte {
	flags := byte(0)
	if o.clean {
		flags |= 0x02
	}
	tail := [][]byte{mqbStr(o.id)}
	if w := o.will; w != nil {
		flags |= 0x04 | w.qos<<3
		if w.retain {
			flags |= 0x20
		}
		if o.v == 5 {
			tail = append(tail, mqbProps(w.props...))
		}
		tail = append(tail, mqbStr(w.topic), mqbStr(w.payload))
	}
	if o.user != nil {
		flags |= 0x80
		tail = append(tail, mqbStr(*o.user))
	}
	if o.pass != nil {
		flags |= 0x40
		tail = append(tail, mqbStr(*o.pass))
	}
	head := [][]byte{mqbStr("MQTT"), {o.v, flags}, mqbU16(o.keepalive)}
	if o.v == 5 {
		head = append(head, mqbProps(o.props...))
	}
	return mqbPkt(0x10, append(head, tail...)...)
}

// mqbPublishPkt is a PUBLISH; props are MQTT 5's (an empty block in 5).
func mqbPublishPkt(v byte, topic string, qos byte, id uint16, dup, retain bool, payload string, props ...[]byte) []byte {
	first := byte(0x30) | qos<<1
	if dup {
		first |= 0x08
	}
	if retain {
		first |= 0x01
	}
	parts := [][]byte{mqbStr(topic)}
	if qos > 0 {
		parts = append(parts, mqbU16(id))
	}
	if v == 5 {
		parts = append(parts, mqbProps(props...))
	}
	return mqbPkt(first, append(parts, []byte(payload))...)
}

// mqbFilter is a SUBSCRIBE's topic filter with its options byte.
type mqbFilter struct {
	filter string
	opts   byte
}

func mqbSubscribePkt(v byte, id uint16, props [][]byte, filters ...mqbFilter) []byte {
	parts := [][]byte{mqbU16(id)}
	if v == 5 {
		parts = append(parts, mqbProps(props...))
	}
	for _, f := range filters {
		parts = append(parts, mqbStr(f.filter), []byte{f.opts})
	}
	return mqbPkt(0x82, parts...)
}

// mqbAck is PUBACK (0x40), PUBREC (0x50), PUBREL (0x62) or PUBCOMP (0x70)
// in its short form (success, no properties: the same in both versions).
func mqbAck(first byte, id uint16) []byte { return mqbPkt(first, mqbU16(id)) }

// mqbDecode decodes a packet a raw client received (the broker's side of
// the wire, so the codec is a fair judge of it).
func mqbDecode(t testing.TB, v byte, pkt []byte) *mqttpkt.Packet {
	t.Helper()
	var p mqttpkt.Packet
	n, err := mqttpkt.Decode(pkt, v, 0, &p)
	if err != nil || n != len(pkt) {
		t.Fatalf("the broker sent % x: decode: n=%d err=%v", pkt, n, err)
	}
	return &p
}

// ---------------------------------------------------------------------
// The broker under test.

// mqbBroker is a broker listener on a test's Manager, with a record of
// what its connections raised.
type mqbBroker struct {
	e    *env
	l    *meerkat.Conn
	host string // for raw clients and mosquitto
	port string
	addr string // host:port
	url  string // for MQTTConnect
	ca   string // the test CA's PEM file, for mosquitto over TLS

	ids        map[*meerkat.Conn]string // client ID of each connection (its CONNECT)
	live       map[string]int           // open connections per client ID
	subscribes map[string]int           // SUBSCRIBE packets per client ID
	msgs       []mqbSrvMsg              // EvMQTTMsg, in order
}

type mqbSrvMsg struct {
	conn     *meerkat.Conn
	clientID string
	topic    string
	data     string
	qos      byte
	dup      bool
}

// mqbStart opens a broker listener (mqtts:// for TLS tests).
func mqbStart(e *env) *mqbBroker {
	e.t.Helper()
	b := &mqbBroker{e: e, ids: map[*meerkat.Conn]string{}, live: map[string]int{}, subscribes: map[string]int{}}
	scheme := "mqtt"
	if e.useTLS {
		scheme = "mqtts"
	}
	l, err := e.m.MQTTListen(scheme+"://127.0.0.1:0", e.chk.wrap(b.handle))
	if err != nil {
		e.t.Fatalf("MQTTListen: %v", err)
	}
	b.l = l
	b.host = "127.0.0.1"
	b.port = fmt.Sprint(l.LocalAddr().Port())
	b.addr = net.JoinHostPort(b.host, b.port)
	b.url = scheme + "://" + b.addr
	return b
}

func (b *mqbBroker) handle(c *meerkat.Conn, ev meerkat.Event, data any) {
	switch ev {
	case meerkat.EvMQTTCmd:
		mm := data.(*meerkat.MQTTMessage)
		switch mm.Cmd {
		case meerkat.MQTTCmdConnect:
			b.ids[c] = string(mm.Packet.ClientID)
			b.live[b.ids[c]]++
		case meerkat.MQTTCmdSubscribe:
			b.subscribes[b.ids[c]]++
		}
	case meerkat.EvClose:
		if id, ok := b.ids[c]; ok {
			b.live[id]--
		}
	case meerkat.EvMQTTMsg:
		mm := data.(*meerkat.MQTTMessage)
		b.msgs = append(b.msgs, mqbSrvMsg{conn: c, clientID: b.ids[c], topic: string(mm.Topic), data: string(mm.Data), qos: mm.QoS, dup: mm.Dup})
	}
}

// msgsOn are the EvMQTTMsg raised for PUBLISHes whose topic starts with
// prefix.
func (b *mqbBroker) msgsOn(prefix string) []mqbSrvMsg {
	var out []mqbSrvMsg
	for _, m := range b.msgs {
		if strings.HasPrefix(m.topic, prefix) {
			out = append(out, m)
		}
	}
	return out
}

// waitConnected waits until the broker counts n clients connected.
func (b *mqbBroker) waitConnected(n int) {
	b.e.t.Helper()
	b.e.pollUntil(5*time.Second, fmt.Sprintf("%d clients connected", n), func() bool { return b.e.m.MQTTStats().Connected == n })
}

// waitGone waits until the broker has closed every connection of client
// id (its session's fate is settled then).
func (b *mqbBroker) waitGone(id string) {
	b.e.t.Helper()
	b.e.pollUntil(5*time.Second, id+"'s connections closed", func() bool { return b.live[id] == 0 })
}

// waitSubscribed waits until client id has sent n SUBSCRIBEs (the broker
// handles one in the iteration that raises its EvMQTTCmd, so the
// subscription exists when this returns). A process that exits meanwhile
// fails the test.
func (b *mqbBroker) waitSubscribed(id string, n int, p *mqbProc) {
	b.e.t.Helper()
	b.e.pollUntil(10*time.Second, id+" subscribed", func() bool {
		if p != nil && p.exited() {
			b.e.t.Fatalf("%s exited before subscribing: %v\n%s", p.name, p.err, p.output())
		}
		return b.subscribes[id] >= n
	})
}

// ---------------------------------------------------------------------
// Raw clients.

// mqbRaw is a raw MQTT client over TCP (or TLS): bytes written by the test,
// packets read by a goroutine, EOF noted with its time. The reader closes
// the socket at EOF, as a client whose broker went away would.
type mqbRaw struct {
	t  testing.TB
	e  *env
	v  byte
	nc net.Conn

	wq      chan []byte
	pending atomic.Int64
	once    sync.Once

	mu    sync.Mutex
	pkts  [][]byte
	eof   bool
	eofAt time.Time
	rerr  error
	read  int // packets the test has consumed

	rdone, wdone chan struct{}
}

// raw connects a raw client of protocol level v to the broker.
func (b *mqbBroker) raw(v byte) *mqbRaw {
	b.e.t.Helper()
	r := &mqbRaw{t: b.e.t, e: b.e, v: v, nc: b.e.dialPeer(b.addr), wq: make(chan []byte, 64),
		rdone: make(chan struct{}), wdone: make(chan struct{})}
	go r.reader()
	go r.writer()
	b.e.t.Cleanup(r.finish)
	return r
}

func (r *mqbRaw) stopWriter() { r.once.Do(func() { close(r.wq) }) }

func (r *mqbRaw) writer() {
	defer close(r.wdone)
	for p := range r.wq {
		r.nc.Write(p) // an error shows as EOF on the reading side
		r.pending.Add(-1)
	}
}

func (r *mqbRaw) reader() {
	defer close(r.rdone)
	br := bufio.NewReader(r.nc)
	for {
		pkt, err := mqbReadPacket(br)
		r.mu.Lock()
		if err != nil {
			r.eof, r.eofAt, r.rerr = true, time.Now(), err
			r.mu.Unlock()
			r.nc.Close()
			return
		}
		r.pkts = append(r.pkts, pkt)
		r.mu.Unlock()
	}
}

// mqbReadPacket reads one whole packet: first byte, remaining length, body.
func mqbReadPacket(br *bufio.Reader) ([]byte, error) {
	first, err := br.ReadByte()
	if err != nil {
		return nil, err
	}
	pkt := []byte{first}
	n, shift := 0, 0
	for i := 0; ; i++ {
		c, err := br.ReadByte()
		if err != nil {
			return nil, err
		}
		pkt = append(pkt, c)
		n |= int(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			break
		}
		if i == 3 {
			return nil, errors.New("the broker sent a remaining length of five bytes")
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return nil, err
	}
	return append(pkt, body...), nil
}

// send writes the packets and waits (polling the Manager, which a TLS
// handshake needs) until they are written.
func (r *mqbRaw) send(pkts ...[]byte) {
	r.t.Helper()
	for _, p := range pkts {
		r.pending.Add(1)
		r.wq <- p
	}
	r.e.pollUntil(5*time.Second, "a raw client's write", func() bool { return r.pending.Load() == 0 })
}

// next waits for the next packet from the broker.
func (r *mqbRaw) next(what string) []byte {
	r.t.Helper()
	var p []byte
	closed := false
	r.e.pollUntil(5*time.Second, what, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.read < len(r.pkts) {
			p = r.pkts[r.read]
			r.read++
			return true
		}
		closed = r.eof
		return closed
	})
	if p == nil {
		r.t.Fatalf("%s: the broker closed the connection instead (%v)", what, r.rerr)
	}
	return p
}

// expect waits for the next packet and requires it to be want, byte for
// byte.
func (r *mqbRaw) expect(what string, want []byte) {
	r.t.Helper()
	if got := r.next(what); !bytes.Equal(got, want) {
		r.t.Fatalf("%s: got % x, want % x", what, got, want)
	}
}

// connect sends CONNECT and returns the broker's first packet.
func (r *mqbRaw) connect(o mqbConnOpts) []byte {
	r.t.Helper()
	o.v = r.v
	r.send(mqbConnectPkt(o))
	return r.next("CONNACK for " + o.id)
}

// connectOK connects and requires a CONNACK that accepts, without a
// session present.
func (r *mqbRaw) connectOK(o mqbConnOpts) {
	r.t.Helper()
	ack := r.connect(o)
	p := mqbDecode(r.t, r.v, ack)
	if p.Type != mqttpkt.CONNACK || p.ReasonCode != 0 || p.SessionPresent {
		r.t.Fatalf("CONNACK for %q: % x, want an acceptance without session", o.id, ack)
	}
}

// waitEOF waits for the broker to close the connection and returns the
// packets it sent before that which the test had not read.
func (r *mqbRaw) waitEOF(timeout time.Duration, what string) (rest [][]byte, at time.Time) {
	r.t.Helper()
	r.e.pollUntil(timeout, what, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.eof
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	rest = slices.Clone(r.pkts[r.read:])
	r.read = len(r.pkts)
	return rest, r.eofAt
}

// isClosed reports whether the broker closed the connection.
func (r *mqbRaw) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.eof
}

// barrier sends PINGREQ and waits for PINGRESP: everything the broker sent
// before it (returned) has arrived.
func (r *mqbRaw) barrier() [][]byte {
	r.t.Helper()
	r.send(mqbPingReq)
	var before [][]byte
	r.e.pollUntil(5*time.Second, "PINGRESP", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		for i := r.read; i < len(r.pkts); i++ {
			if bytes.Equal(r.pkts[i], mqbPingResp) {
				before = slices.Clone(r.pkts[r.read:i])
				r.read = i + 1
				return true
			}
		}
		if r.eof {
			r.t.Fatalf("closed while waiting for PINGRESP (%v)", r.rerr)
		}
		return false
	})
	return before
}

// finish closes the connection and waits for its goroutines to end.
func (r *mqbRaw) finish() {
	r.stopWriter()
	r.nc.Close()
	<-r.rdone
	<-r.wdone
}

// reset closes with a RST, once everything written is written.
func (r *mqbRaw) reset() { resetPeer(r.t, r.nc) }

// close closes the socket (FIN) without DISCONNECT.
func (r *mqbRaw) close() { r.nc.Close() }

// ---------------------------------------------------------------------
// Meerkat's own client as a peer.

// mqbCli is a Meerkat MQTT client on the test's Manager, recording what it
// receives.
type mqbCli struct {
	e       *env
	c       *meerkat.Conn
	code    int // EvMQTTOpen's, -1 before
	present bool
	msgs    []mqbMsg
	done    map[uint16]byte   // QoS 1 and 2 publishes finished: their reason code
	subacks map[uint16][]byte // SUBACK reason codes
	disc    []byte            // DISCONNECT reason codes from the broker
	errs    []error
	closed  bool
}

type mqbMsg struct {
	topic, data string
	qos         byte
	retain, dup bool
	subIDs      []uint32
	expiry      uint32
	hasExpiry   bool
	at          time.Time
}

func mqbClient(e *env, url string, o meerkat.MQTTOptions) *mqbCli {
	e.t.Helper()
	k := &mqbCli{e: e, code: -1, done: map[uint16]byte{}, subacks: map[uint16][]byte{}}
	c, err := e.m.MQTTConnect(url, &o, e.chk.wrap(k.handle))
	if err != nil {
		e.t.Fatalf("MQTTConnect: %v", err)
	}
	k.c = c
	return k
}

// mqbOpen connects a client and waits for its CONNACK to accept.
func mqbOpen(e *env, url string, o meerkat.MQTTOptions) *mqbCli {
	e.t.Helper()
	k := mqbClient(e, url, o)
	k.waitOpen(0)
	return k
}

func (k *mqbCli) handle(c *meerkat.Conn, ev meerkat.Event, data any) {
	switch ev {
	case meerkat.EvMQTTOpen:
		k.code = data.(int)
	case meerkat.EvMQTTCmd:
		mm := data.(*meerkat.MQTTMessage)
		switch mm.Cmd {
		case meerkat.MQTTCmdConnAck:
			k.present = mm.Packet.SessionPresent
		case meerkat.MQTTCmdPubAck, meerkat.MQTTCmdPubComp:
			k.done[mm.ID] = mm.ReasonCode
		case meerkat.MQTTCmdPubRec:
			if mm.ReasonCode >= 0x80 {
				k.done[mm.ID] = mm.ReasonCode
			}
		case meerkat.MQTTCmdSubAck:
			k.subacks[mm.ID] = slices.Clone(mm.Packet.ReasonCodes)
		case meerkat.MQTTCmdDisconnect:
			k.disc = append(k.disc, mm.ReasonCode)
		}
	case meerkat.EvMQTTMsg:
		mm := data.(*meerkat.MQTTMessage)
		msg := mqbMsg{topic: string(mm.Topic), data: string(mm.Data), qos: mm.QoS, retain: mm.Retain, dup: mm.Dup,
			subIDs: slices.Clone(mm.Props.SubscriptionIDs), at: time.Now()}
		msg.expiry, msg.hasExpiry = mm.Props.MessageExpiry()
		k.msgs = append(k.msgs, msg)
	case meerkat.EvError:
		k.errs = append(k.errs, data.(error))
	case meerkat.EvClose:
		k.closed = true
	}
}

func (k *mqbCli) waitOpen(want int) {
	k.e.t.Helper()
	k.e.pollUntil(5*time.Second, "CONNACK", func() bool { return k.code != -1 || k.closed })
	if k.code != want {
		k.e.t.Fatalf("EvMQTTOpen %d (errors %v), want %d", k.code, k.errs, want)
	}
}

// sub subscribes and returns the SUBACK's reason codes.
func (k *mqbCli) sub(o meerkat.MQTTOptions) []byte {
	k.e.t.Helper()
	id := meerkat.MQTTSub(k.c, &o)
	if id == 0 {
		k.e.t.Fatalf("MQTTSub %q refused", o.Topic)
	}
	k.e.pollUntil(5*time.Second, "SUBACK", func() bool { return k.subacks[id] != nil || k.closed })
	codes := k.subacks[id]
	if codes == nil {
		k.e.t.Fatalf("closed before the SUBACK for %q (%v)", o.Topic, k.errs)
	}
	delete(k.subacks, id)
	return codes
}

// subOK subscribes and requires every filter to be granted its QoS.
func (k *mqbCli) subOK(o meerkat.MQTTOptions) {
	k.e.t.Helper()
	codes := k.sub(o)
	for _, c := range codes {
		if c != o.QoS {
			k.e.t.Fatalf("SUBACK % x for %q QoS %d", codes, o.Topic, o.QoS)
		}
	}
}

// pub publishes; for QoS 1 and 2 it waits for the end of the exchange and
// returns its reason code.
func (k *mqbCli) pub(o meerkat.MQTTOptions) byte {
	k.e.t.Helper()
	id := meerkat.MQTTPub(k.c, &o)
	if o.QoS == 0 {
		return 0
	}
	if id == 0 {
		k.e.t.Fatalf("MQTTPub %q refused", o.Topic)
	}
	k.e.pollUntil(5*time.Second, "the publish acknowledged", func() bool {
		_, ok := k.done[id]
		return ok || k.closed
	})
	code, ok := k.done[id]
	if !ok {
		k.e.t.Fatalf("closed before the publish of %q was acknowledged (%v)", o.Topic, k.errs)
	}
	delete(k.done, id)
	return code
}

// pubMsg publishes a message of QoS qos (waiting for its acknowledgement).
func (k *mqbCli) pubMsg(topic, data string, qos byte, retain bool) {
	k.e.t.Helper()
	if code := k.pub(meerkat.MQTTOptions{Topic: topic, Message: []byte(data), QoS: qos, Retain: retain}); code != 0 {
		k.e.t.Fatalf("publish %q: reason code 0x%02x", topic, code)
	}
}

// waitMsgs waits until n messages have arrived, and returns them all.
func (k *mqbCli) waitMsgs(n int, what string) []mqbMsg {
	k.e.t.Helper()
	k.e.pollUntil(5*time.Second, what, func() bool { return len(k.msgs) >= n || k.closed })
	if len(k.msgs) < n {
		k.e.t.Fatalf("%s: closed with %d messages (%v): %+v", what, len(k.msgs), k.errs, k.msgs)
	}
	return k.msgs
}

// payloads are the payloads received, in order.
func (k *mqbCli) payloads() []string {
	var out []string
	for _, m := range k.msgs {
		out = append(out, m.data)
	}
	return out
}

// disconnect sends DISCONNECT (o for its MQTT 5 reason and properties) and
// waits for the close.
func (k *mqbCli) disconnect(o *meerkat.MQTTOptions) {
	k.e.t.Helper()
	meerkat.MQTTDisconnect(k.c, o)
	k.e.pollUntil(5*time.Second, "the client closed", func() bool { return k.closed })
}

// mqbPollFor polls the Manager for d: only for proving that something does
// not happen within a protocol deadline.
func mqbPollFor(e *env, d time.Duration) {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		e.m.Poll(10 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------
// mosquitto_pub and mosquitto_sub.

// mqbTool finds a program: missing, it fails the test under MEERKAT_CI
// (whose setup installs it) and skips it otherwise.
func mqbTool(t testing.TB, name string) string {
	t.Helper()
	skipOnWine(t, wineNoLinuxPeers)
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("MEERKAT_CI") != "" {
			t.Fatalf("%s is not installed (apt mosquitto-clients): %v", name, err)
		}
		t.Skipf("%s is not installed (apt mosquitto-clients)", name)
	}
	return p
}

// mqbProc is a program the test started; it is killed (by PID) at cleanup
// if still running.
type mqbProc struct {
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
	err  error
}

type mqbProcOut struct{ p *mqbProc }

func (w mqbProcOut) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.out.Write(b)
}

func mqbRun(e *env, name string, args ...string) *mqbProc {
	e.t.Helper()
	p := &mqbProc{name: name, cmd: exec.Command(mqbTool(e.t, name), args...), done: make(chan struct{})}
	p.cmd.Stdout = mqbProcOut{p}
	p.cmd.Stderr = mqbProcOut{p}
	if err := p.cmd.Start(); err != nil {
		e.t.Fatalf("%s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	e.t.Cleanup(p.kill)
	return p
}

func (p *mqbProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func (p *mqbProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill kills the process (if still running) and waits for it.
func (p *mqbProc) kill() {
	if !p.exited() {
		p.cmd.Process.Kill()
	}
	<-p.done
}

// wait polls the Manager until the process exits, and requires success.
func (p *mqbProc) wait(e *env, timeout time.Duration) string {
	e.t.Helper()
	e.pollUntil(timeout, p.name+" to exit", p.exited)
	if p.err != nil {
		e.t.Fatalf("%s %s: %v\n%s", p.name, strings.Join(p.cmd.Args[1:], " "), p.err, p.output())
	}
	return p.output()
}

// mosq are the arguments that point a mosquitto client at the broker, with
// protocol version v ("mqttv311" or "mqttv5") and client ID id.
func (b *mqbBroker) mosq(v, id string, args ...string) []string {
	a := []string{"-p", b.port, "-V", v, "-i", id}
	if b.e.useTLS {
		if b.ca == "" {
			b.ca = filepath.Join(b.e.t.TempDir(), "ca.pem")
			if err := os.WriteFile(b.ca, testcert.Default.CA.PEM, 0o600); err != nil {
				b.e.t.Fatal(err)
			}
		}
		a = append(a, "-h", "localhost", "--cafile", b.ca)
	} else {
		a = append(a, "-h", b.host)
	}
	return append(a, args...)
}

// mqbVersions are the protocol levels, with mosquitto's names for them.
var mqbVersions = []struct {
	v    byte
	name string
}{{4, "mqttv311"}, {5, "mqttv5"}}

// ---------------------------------------------------------------------
// mosquitto_pub → Meerkat → mosquitto_sub.

// TestMQTTBrokerMosquittoPubSub: messages from mosquitto_pub reach
// mosquitto_sub through the broker in both protocol versions at every QoS,
// each delivered at the lower of the publication's and the subscription's
// QoS, a retained publication to an existing subscriber without the retain
// flag; the broker raises one EvMQTTMsg per publication, at its QoS.
func TestMQTTBrokerMosquittoPubSub(t *testing.T) {
	mqbTool(t, "mosquitto_sub")
	mqbTool(t, "mosquitto_pub")
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		b := mqbStart(e)
		for _, v := range mqbVersions {
			for _, q := range []struct{ sub, pub byte }{{0, 0}, {1, 1}, {2, 2}, {2, 1}, {1, 2}, {0, 2}} {
				name := fmt.Sprintf("%s-s%d-p%d", v.name, q.sub, q.pub)
				want := min(q.sub, q.pub)
				sub := mqbRun(e, "mosquitto_sub", b.mosq(v.name, "sub-"+name, "-t", "ps/"+name+"/#",
					"-q", fmt.Sprint(q.sub), "-C", "2", "-W", "10", "-F", "%t|%q|%r|%p")...)
				b.waitSubscribed("sub-"+name, 1, sub)
				mqbRun(e, "mosquitto_pub", b.mosq(v.name, "pub-"+name, "-t", "ps/"+name+"/a", "-m", "hello "+name,
					"-q", fmt.Sprint(q.pub))...).wait(e, 10*time.Second)
				mqbRun(e, "mosquitto_pub", b.mosq(v.name, "pub-"+name, "-t", "ps/"+name+"/b", "-m", "world",
					"-q", fmt.Sprint(q.pub), "-r")...).wait(e, 10*time.Second)
				out := sub.wait(e, 10*time.Second)
				wantOut := fmt.Sprintf("ps/%[1]s/a|%[2]d|0|hello %[1]s\nps/%[1]s/b|%[2]d|0|world\n", name, want)
				if out != wantOut {
					t.Errorf("%s: mosquitto_sub printed %q, want %q", name, out, wantOut)
				}
				got := b.msgsOn("ps/" + name + "/")
				if len(got) != 2 || got[0].qos != q.pub || got[1].qos != q.pub || got[0].data != "hello "+name {
					t.Errorf("%s: broker events %+v, want the two publications at QoS %d", name, got, q.pub)
				}
			}
		}
	})
}

// TestMQTTBrokerMosquittoTLS: mosquitto_pub and mosquitto_sub (verifying
// the test CA) and Meerkat's client reach each other through an mqtts://
// listener, in both versions.
func TestMQTTBrokerMosquittoTLS(t *testing.T) {
	mqbTool(t, "mosquitto_sub")
	mqbTool(t, "mosquitto_pub")
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, true)
		b := mqbStart(e)
		for _, v := range mqbVersions {
			k := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: v.v, Clean: true})
			k.subOK(meerkat.MQTTOptions{Topic: "tls/" + v.name + "/#", QoS: 2})
			sub := mqbRun(e, "mosquitto_sub", b.mosq(v.name, "tls-sub-"+v.name, "-t", "tls/"+v.name+"/#",
				"-q", "1", "-C", "2", "-W", "10", "-F", "%t|%q|%p")...)
			b.waitSubscribed("tls-sub-"+v.name, 1, sub)
			mqbRun(e, "mosquitto_pub", b.mosq(v.name, "tls-pub-"+v.name, "-t", "tls/"+v.name+"/x", "-m", "over tls",
				"-q", "2")...).wait(e, 10*time.Second)
			k.pubMsg("tls/"+v.name+"/y", "from meerkat", 1, false)
			out := sub.wait(e, 10*time.Second)
			want := fmt.Sprintf("tls/%[1]s/x|1|over tls\ntls/%[1]s/y|1|from meerkat\n", v.name)
			if out != want {
				t.Errorf("%s: mosquitto_sub printed %q, want %q", v.name, out, want)
			}
			got := k.waitMsgs(2, "both messages at the Meerkat client")
			if got[0].data != "over tls" || got[0].qos != 2 || got[1].data != "from meerkat" || got[1].qos != 1 {
				t.Errorf("%s: Meerkat client got %+v", v.name, got)
			}
			if !k.c.IsTLS() {
				t.Errorf("the Meerkat client is not on TLS")
			}
			k.disconnect(nil)
		}
	})
}

// TestMQTTBrokerMosquittoRetained: a retained message is set, replaced, and
// cleared by an empty retained publication (mosquitto_pub -r -n); a new
// mosquitto_sub gets the current one with the retain flag, and nothing
// once it is cleared (its first message is then a later live one).
func TestMQTTBrokerMosquittoRetained(t *testing.T) {
	mqbTool(t, "mosquitto_sub")
	mqbTool(t, "mosquitto_pub")
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		b := mqbStart(e)
		for _, v := range mqbVersions {
			topic := "ret/" + v.name
			pub := func(args ...string) {
				mqbRun(e, "mosquitto_pub", b.mosq(v.name, "ret-pub-"+v.name, append([]string{"-t", topic, "-q", "1"}, args...)...)...).wait(e, 10*time.Second)
			}
			firstAfterSubscribe := func(n int, live string) string {
				id := fmt.Sprintf("ret-sub-%s-%d", v.name, n)
				sub := mqbRun(e, "mosquitto_sub", b.mosq(v.name, id, "-t", topic, "-q", "1", "-C", "1", "-W", "10", "-F", "%r|%p")...)
				b.waitSubscribed(id, 1, sub)
				if live != "" {
					pub("-m", live)
				}
				return sub.wait(e, 10*time.Second)
			}
			pub("-r", "-m", "one")
			if out := firstAfterSubscribe(1, "live-1"); out != "1|one\n" {
				t.Errorf("%s: after setting, a subscriber got %q, want the retained \"one\"", v.name, out)
			}
			pub("-r", "-m", "two")
			if out := firstAfterSubscribe(2, "live-2"); out != "1|two\n" {
				t.Errorf("%s: after replacing, a subscriber got %q, want the retained \"two\"", v.name, out)
			}
			if n := e.m.MQTTStats().Retained; n != 1 {
				t.Errorf("%s: %d retained messages, want 1", v.name, n)
			}
			pub("-r", "-n")
			if n := e.m.MQTTStats().Retained; n != 0 {
				t.Errorf("%s: %d retained messages after clearing, want 0", v.name, n)
			}
			if out := firstAfterSubscribe(3, "live-3"); out != "0|live-3\n" {
				t.Errorf("%s: after clearing, a subscriber got %q first, want the live message", v.name, out)
			}
		}
	})
}

// TestMQTTBrokerMosquittoWill: a mosquitto_sub with a will that is killed
// (its socket closed by the kernel, no DISCONNECT) has its will published;
// one that exits normally (DISCONNECT) has not.
func TestMQTTBrokerMosquittoWill(t *testing.T) {
	mqbTool(t, "mosquitto_sub")
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		b := mqbStart(e)
		for _, v := range mqbVersions {
			k := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: 5, Clean: true})
			k.subOK(meerkat.MQTTOptions{Topic: "mwill/" + v.name + "/#", QoS: 1})

			killed := mqbRun(e, "mosquitto_sub", b.mosq(v.name, "will-killed-"+v.name, "-t", "idle/x", "-W", "20",
				"--will-topic", "mwill/"+v.name+"/killed", "--will-payload", "gone", "--will-qos", "1")...)
			b.waitSubscribed("will-killed-"+v.name, 1, killed)
			killed.kill()
			got := k.waitMsgs(1, "the will of the killed client")
			if got[0].topic != "mwill/"+v.name+"/killed" || got[0].data != "gone" || got[0].qos != 1 {
				t.Errorf("%s: will %+v", v.name, got[0])
			}

			clean := mqbRun(e, "mosquitto_sub", b.mosq(v.name, "will-clean-"+v.name, "-t", "trigger/"+v.name, "-C", "1", "-W", "10",
				"--will-topic", "mwill/"+v.name+"/clean", "--will-payload", "must not")...)
			b.waitSubscribed("will-clean-"+v.name, 1, clean)
			k.pubMsg("trigger/"+v.name, "exit", 0, false)
			clean.wait(e, 10*time.Second)
			b.waitConnected(1)
			k.pubMsg("mwill/"+v.name+"/clean", "marker", 1, false)
			got = k.waitMsgs(2, "the marker")
			if got[1].data != "marker" {
				t.Errorf("%s: after a normal exit the subscriber got %+v, want the marker (no will)", v.name, got[1])
			}
			k.disconnect(nil)
		}
	})
}

// TestMQTTBrokerMosquittoSession: a persistent mosquitto_sub (-c; MQTT 5
// with a session expiry) that disconnects gets the QoS 1 messages published
// while it was away when it comes back, in order.
func TestMQTTBrokerMosquittoSession(t *testing.T) {
	mqbTool(t, "mosquitto_sub")
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		b := mqbStart(e)
		k := mqbOpen(e, b.url, meerkat.MQTTOptions{Clean: true})
		for _, v := range mqbVersions {
			id := "persist-" + v.name
			args := []string{"-c", "-q", "1", "-t", "sess/" + v.name + "/#"}
			if v.v == 5 {
				args = append(args, "-x", "60")
			}
			first := mqbRun(e, "mosquitto_sub", b.mosq(v.name, id, append(args, "-E")...)...)
			first.wait(e, 10*time.Second)
			b.waitConnected(1)
			for i := range 3 {
				k.pubMsg("sess/"+v.name+"/m", fmt.Sprint("offline-", i), 1, false)
			}
			again := mqbRun(e, "mosquitto_sub", b.mosq(v.name, id, append(args, "-C", "3", "-W", "10", "-F", "%p")...)...)
			if out := again.wait(e, 10*time.Second); out != "offline-0\noffline-1\noffline-2\n" {
				t.Errorf("%s: the returning subscriber printed %q", v.name, out)
			}
		}
	})
}

// ---------------------------------------------------------------------
// Wills.

// TestMQTTBrokerWillOnUngracefulLoss: a client's will is published when its
// connection is reset or closed without DISCONNECT (at the will's QoS), not
// after DISCONNECT, and (MQTT 5) after DISCONNECT with reason 0x04
// (Disconnect with Will Message); a retained will is kept as retained.
func TestMQTTBrokerWillOnUngracefulLoss(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		b := mqbStart(e)
		for _, v := range []byte{4, 5} {
			pre := fmt.Sprintf("will%d/", v)
			sub := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: v, Clean: true})
			sub.subOK(meerkat.MQTTOptions{Topic: pre + "#", QoS: 2})
			pub := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: v, Clean: true})
			withWill := func(name string, qos byte, retain bool) *mqbRaw {
				r := b.raw(v)
				r.connectOK(mqbConnOpts{id: pre + name, clean: true, keepalive: 60,
					will: &mqbWillOpts{topic: pre + name, payload: "will of " + name, qos: qos, retain: retain}})
				return r
			}
			expectWill := func(n int, name string, qos byte) {
				t.Helper()
				got := sub.waitMsgs(n, "the will of "+name)[n-1]
				if got.topic != pre+name || got.data != "will of "+name || got.qos != qos || got.retain {
					t.Errorf("v%d %s: got %+v, want its will at QoS %d", v, name, got, qos)
				}
			}

			withWill("reset", 1, false).reset()
			expectWill(1, "reset", 1)

			withWill("closed", 2, false).close()
			expectWill(2, "closed", 2)

			r := withWill("disconnected", 1, false)
			r.send(mqbDisconnect)
			r.waitEOF(5*time.Second, "the close after DISCONNECT")
			b.waitConnected(2)
			pub.pubMsg(pre+"disconnected", "marker", 1, false)
			if got := sub.waitMsgs(3, "the marker")[2]; got.data != "marker" {
				t.Errorf("v%d: after DISCONNECT the subscriber got %+v, want the marker (no will)", v, got)
			}
			n := 3
			if v == 5 {
				r := withWill("with-will", 0, false)
				r.send([]byte{0xE0, 0x01, 0x04})
				n++
				expectWill(n, "with-will", 0)
			}

			withWill("retained", 1, true).reset()
			n++
			expectWill(n, "retained", 1)
			late := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: v, Clean: true})
			late.subOK(meerkat.MQTTOptions{Topic: pre + "retained", QoS: 1})
			if got := late.waitMsgs(1, "the retained will")[0]; got.data != "will of retained" || !got.retain {
				t.Errorf("v%d: a later subscriber got %+v, want the will as retained", v, got)
			}
			pub.pubMsg(pre+"retained", "", 0, true) // clear it
			for _, k := range []*mqbCli{sub, pub, late} {
				k.disconnect(nil)
			}
		}
	})
}

// TestMQTTBrokerWillDelay: an MQTT 5 will with a Will Delay Interval of 1 s
// is published no sooner than 1 s after the connection is lost; not at all
// if the client comes back (same client ID, session kept) within the
// delay; at once when the session ends with the connection (no session
// expiry), whatever the delay.
func TestMQTTBrokerWillDelay(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		b := mqbStart(e)
		sub := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: 5, Clean: true})
		sub.subOK(meerkat.MQTTOptions{Topic: "wd/#", QoS: 1})
		client := func(name string, expiry uint32) *mqbRaw {
			r := b.raw(5)
			r.connectOK(mqbConnOpts{id: "wd-" + name, clean: true, keepalive: 60,
				props: [][]byte{mqbPropU32(mqbPropSessionExpiry, expiry)},
				will:  &mqbWillOpts{topic: "wd/" + name, payload: name, qos: 1, props: [][]byte{mqbPropU32(mqbPropWillDelay, 1)}}})
			return r
		}
		delayed, back, ended := client("delayed", 10), client("back", 10), client("ended", 0)
		lost := time.Now()
		delayed.reset()
		back.reset()
		ended.reset()
		r := b.raw(5)
		ack := r.connect(mqbConnOpts{id: "wd-back", keepalive: 60, props: [][]byte{mqbPropU32(mqbPropSessionExpiry, 10)}})
		if p := mqbDecode(t, 5, ack); p.ReasonCode != 0 || !p.SessionPresent {
			t.Fatalf("the returning client's CONNACK % x, want its session present", ack)
		}
		got := sub.waitMsgs(2, "the wills of \"ended\" and \"delayed\"")
		if got[0].data != "ended" || got[0].at.Sub(lost) > 900*time.Millisecond {
			t.Errorf("first will %q after %v, want \"ended\" at once (its session ended)", got[0].data, got[0].at.Sub(lost))
		}
		if got[1].data != "delayed" || got[1].at.Sub(lost) < time.Second {
			t.Errorf("second will %q after %v, want \"delayed\" no sooner than 1 s", got[1].data, got[1].at.Sub(lost))
		}
		mqbPollFor(e, time.Until(lost.Add(1500*time.Millisecond)))
		pub := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: 5, Clean: true})
		pub.pubMsg("wd/back", "marker", 1, false)
		if got := sub.waitMsgs(3, "the marker")[2]; got.data != "marker" {
			t.Errorf("got %+v, want the marker: the client that came back within the delay must have no will published", got)
		}
	})
}

// TestMQTTBrokerWillDelayLongerThanSession: a will whose delay (30 s) is
// longer than its session's expiry (1 s) is published when the session
// ends (MQTT 5 3.1.3.2.2: "until the Will Delay Interval has passed or the
// Session ends, whichever happens first"), not at once and not after 30 s.
func TestMQTTBrokerWillDelayLongerThanSession(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		b := mqbStart(e)
		sub := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: 5, Clean: true})
		sub.subOK(meerkat.MQTTOptions{Topic: "wl/#", QoS: 1})
		r := b.raw(5)
		r.connectOK(mqbConnOpts{id: "wl", clean: true, keepalive: 60,
			props: [][]byte{mqbPropU32(mqbPropSessionExpiry, 1)},
			will:  &mqbWillOpts{topic: "wl/x", payload: "late", qos: 1, props: [][]byte{mqbPropU32(mqbPropWillDelay, 30)}}})
		lost := time.Now()
		r.reset()
		got := sub.waitMsgs(1, "the will at the session's end")
		if d := got[0].at.Sub(lost); d < 950*time.Millisecond {
			t.Errorf("the will came %v after the loss, want at the session's end (1 s)", d)
		}
	})
}

// ---------------------------------------------------------------------
// Sessions.

// TestMQTTBrokerPersistentSession: a QoS 1 subscriber with a persistent
// session (3.1.1 clean session 0; MQTT 5 session expiry) that disconnects
// gets, on reconnecting, CONNACK with session present and the QoS 1 and 2
// messages published meanwhile, in order, at its subscription's QoS, and
// not the QoS 0 ones. Without a persistent session (3.1.1 clean session 1;
// MQTT 5 without expiry, or clean start on return) nothing is kept.
func TestMQTTBrokerPersistentSession(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		b := mqbStart(e)
		pub := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: 5, Clean: true})
		for _, v := range []byte{4, 5} {
			for _, tc := range []struct {
				name         string
				first, again bool // clean session / clean start
				expiry       uint32
				kept         bool
			}{
				{"persistent", false, false, 60, true},
				{"clean-first", true, false, 60, v == 5}, // MQTT 5 clean start only affects the start
				{"clean-again", false, true, 60, false},
				{"no-expiry", false, false, 0, v == 4},
			} {
				if v == 4 && tc.name == "no-expiry" {
					continue // the same as "persistent"
				}
				name := fmt.Sprintf("v%d-%s", v, tc.name)
				topic := "sess/" + name
				opts := meerkat.MQTTOptions{Version: v, ClientID: name, Clean: tc.first}
				if v == 5 && tc.expiry > 0 {
					opts.Props.SetSessionExpiry(tc.expiry)
				}
				k := mqbOpen(e, b.url, opts)
				if k.present {
					t.Errorf("%s: session present on the first connection", name)
				}
				k.subOK(meerkat.MQTTOptions{Topic: topic, QoS: 1})
				k.disconnect(nil)
				b.waitGone(name)
				pub.pubMsg(topic, "q1", 1, false)
				pub.pubMsg(topic, "q0", 0, false)
				pub.pubMsg(topic, "q2", 2, false)
				opts.Clean = tc.again
				k = mqbOpen(e, b.url, opts)
				if k.present != tc.kept {
					t.Errorf("%s: session present %v, want %v", name, k.present, tc.kept)
				}
				if !tc.kept {
					k.subOK(meerkat.MQTTOptions{Topic: topic, QoS: 1})
				}
				pub.pubMsg(topic, "marker", 1, false)
				k.waitMsgs(1, name+": the marker")
				k.e.pollUntil(5*time.Second, "the marker", func() bool { return k.msgs[len(k.msgs)-1].data == "marker" })
				want := []string{"marker"}
				if tc.kept {
					want = []string{"q1", "q2", "marker"}
				}
				if got := k.payloads(); !slices.Equal(got, want) {
					t.Errorf("%s: got %q, want %q", name, got, want)
				}
				for _, m := range k.msgs {
					if m.qos != 1 {
						t.Errorf("%s: %q at QoS %d, want 1 (the subscription's)", name, m.data, m.qos)
					}
				}
				k.disconnect(nil)
				b.waitGone(name)
			}
		}
	})
}

// TestMQTTBrokerSessionExpiry: an MQTT 5 session ends when its expiry
// passes after the disconnection — the one from CONNECT (1 s), or the one
// DISCONNECT sets (1 s instead of CONNECT's 60) — and not before 1 s; a
// client that then comes back finds no session and none of what was
// published to it meanwhile. A 3.1.1 persistent session outlives them.
func TestMQTTBrokerSessionExpiry(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		b := mqbStart(e)
		open := func(id string, v byte, expiry uint32) *mqbCli {
			o := meerkat.MQTTOptions{Version: v, ClientID: id}
			if v == 5 {
				o.Props.SetSessionExpiry(expiry)
			}
			k := mqbOpen(e, b.url, o)
			k.subOK(meerkat.MQTTOptions{Topic: "exp/" + id, QoS: 1})
			return k
		}
		fromConnect, fromDisconnect, forever := open("from-connect", 5, 1), open("from-disconnect", 5, 60), open("forever", 4, 0)
		gone := time.Now()
		fromConnect.disconnect(nil)
		var d meerkat.MQTTOptions
		d.Props.SetSessionExpiry(1)
		fromDisconnect.disconnect(&d)
		forever.disconnect(nil)
		for _, id := range []string{"from-connect", "from-disconnect", "forever"} {
			b.waitGone(id)
		}
		pub := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: 5, Clean: true})
		for _, id := range []string{"from-connect", "from-disconnect", "forever"} {
			pub.pubMsg("exp/"+id, "while away", 1, false)
		}
		if n := e.m.MQTTStats().Sessions; n != 4 {
			t.Fatalf("%d sessions, want 4", n)
		}
		e.pollUntil(5*time.Second, "the sessions to expire", func() bool { return e.m.MQTTStats().Sessions == 2 })
		if d := time.Since(gone); d < 950*time.Millisecond {
			t.Errorf("the sessions expired %v after the disconnection, want 1 s", d)
		}
		for _, id := range []string{"from-connect", "from-disconnect"} {
			o := meerkat.MQTTOptions{Version: 5, ClientID: id}
			o.Props.SetSessionExpiry(60)
			k := mqbOpen(e, b.url, o)
			if k.present {
				t.Errorf("%s: session present after its expiry", id)
			}
			k.subOK(meerkat.MQTTOptions{Topic: "exp/" + id, QoS: 1})
			pub.pubMsg("exp/"+id, "marker", 1, false)
			if got := k.waitMsgs(1, "the marker"); got[0].data != "marker" {
				t.Errorf("%s: got %q first, want the marker", id, got[0].data)
			}
		}
		k := mqbOpen(e, b.url, meerkat.MQTTOptions{ClientID: "forever"})
		if !k.present {
			t.Errorf("the 3.1.1 persistent session is gone")
		}
		if got := k.waitMsgs(1, "the message kept"); got[0].data != "while away" {
			t.Errorf("the 3.1.1 persistent session gave %q", got[0].data)
		}
	})
}

// TestMQTTBrokerResendInOrder: a persistent session's QoS 1 messages that
// were sent and not acknowledged are sent again on reconnection, with DUP
// and their packet identifiers, in the order first sent (MQTT 4.6), before
// the messages queued while the client was away.
func TestMQTTBrokerResendInOrder(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		b := mqbStart(e)
		pub := mqbOpen(e, b.url, meerkat.MQTTOptions{Clean: true})
		for _, v := range []byte{4, 5} {
			id := fmt.Sprintf("resend%d", v)
			var props [][]byte
			if v == 5 {
				props = [][]byte{mqbPropU32(mqbPropSessionExpiry, 60)}
			}
			r := b.raw(v)
			r.connectOK(mqbConnOpts{id: id, keepalive: 60, props: props})
			r.send(mqbSubscribePkt(v, 1, nil, mqbFilter{id, 1}))
			r.next("SUBACK")
			const n = 20
			for i := range n {
				pub.pubMsg(id, fmt.Sprint("m", i), 1, false)
			}
			first := r.barrier()
			if len(first) != n {
				t.Fatalf("v%d: %d messages in flight, want %d", v, len(first), n)
			}
			r.close()
			b.waitConnected(1)
			pub.pubMsg(id, "queued", 1, false)

			r = b.raw(v)
			ack := r.connect(mqbConnOpts{id: id, keepalive: 60, props: props})
			if p := mqbDecode(t, v, ack); p.ReasonCode != 0 || !p.SessionPresent {
				t.Fatalf("v%d: CONNACK % x, want the session present", v, ack)
			}
			again := r.barrier()
			if len(again) != n+1 {
				t.Fatalf("v%d: %d packets after reconnecting, want %d resent and 1 queued", v, len(again), n)
			}
			var sent, resent []string
			for i := range n {
				orig, re := mqbDecode(t, v, first[i]), mqbDecode(t, v, again[i])
				sent = append(sent, fmt.Sprintf("%s#%d", orig.Payload, orig.PacketID))
				resent = append(resent, fmt.Sprintf("%s#%d", re.Payload, re.PacketID))
				if !re.Dup || again[i][0] != first[i][0]|0x08 {
					t.Errorf("v%d: resend %d first byte %#x, want %#x (DUP)", v, i, again[i][0], first[i][0]|0x08)
				}
			}
			if !slices.Equal(sent, resent) {
				t.Errorf("v%d: resent in the order %q, want the order first sent %q", v, resent, sent)
			}
			if q := mqbDecode(t, v, again[n]); q.Dup || string(q.Payload) != "queued" {
				t.Errorf("v%d: after the resends got %q dup %v, want the queued message without DUP", v, q.Payload, q.Dup)
			}
			r.close()
			b.waitConnected(1)
		}
	})
}

// TestMQTTBrokerTakeover: a second connection with a client ID in use takes
// it over: the older connection is closed (MQTT 5: DISCONNECT 0x8E first,
// exactly e0 01 8e), the newer one is accepted and served, and the broker
// counts one client.
func TestMQTTBrokerTakeover(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		b := mqbStart(e)
		pub := mqbOpen(e, b.url, meerkat.MQTTOptions{Clean: true})
		for _, v := range []byte{4, 5} {
			id := fmt.Sprintf("takeover%d", v)
			old := b.raw(v)
			old.connectOK(mqbConnOpts{id: id, clean: true, keepalive: 60})
			b.waitConnected(2)
			newer := b.raw(v)
			newer.connectOK(mqbConnOpts{id: id, clean: true, keepalive: 60})
			rest, _ := old.waitEOF(5*time.Second, "the older connection closed")
			var want [][]byte
			if v == 5 {
				want = [][]byte{{0xE0, 0x01, 0x8E}}
			}
			if !slices.EqualFunc(rest, want, bytes.Equal) {
				t.Errorf("v%d: the older connection got % x before its close, want % x", v, rest, want)
			}
			b.waitConnected(2)
			if n := e.m.MQTTStats().Sessions; n != 2 {
				t.Errorf("v%d: %d sessions, want 2", v, n)
			}
			newer.send(mqbSubscribePkt(v, 1, nil, mqbFilter{id, 0}))
			newer.next("SUBACK")
			pub.pubMsg(id, "to the newer", 1, false) // routed before its PUBACK
			got := newer.barrier()
			if len(got) != 1 || string(mqbDecode(t, v, got[0]).Payload) != "to the newer" {
				t.Errorf("v%d: the newer connection got % x", v, got)
			}
			newer.send(mqbDisconnect)
			newer.waitEOF(5*time.Second, "the close after DISCONNECT")
			b.waitConnected(1)
		}
	})
}

// TestMQTTBrokerKeepalive: a client with a keepalive of 1 s that stays
// silent is closed after 1.5 s (not before; MQTT 5: DISCONNECT 0x8D first),
// while one that sends PINGREQ every 0.4 s is answered and stays.
func TestMQTTBrokerKeepalive(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		b := mqbStart(e)
		silent4, silent5, pinger := b.raw(4), b.raw(5), b.raw(4)
		start := time.Now()
		silent4.connectOK(mqbConnOpts{id: "silent4", clean: true, keepalive: 1})
		silent5.connectOK(mqbConnOpts{id: "silent5", clean: true, keepalive: 1})
		pinger.connectOK(mqbConnOpts{id: "pinger", clean: true, keepalive: 1})
		lastPing, pings := time.Now(), 0
		e.pollUntil(5*time.Second, "the silent clients closed", func() bool {
			if time.Since(lastPing) >= 400*time.Millisecond {
				pinger.pending.Add(1)
				pinger.wq <- mqbPingReq
				lastPing = time.Now()
				pings++
			}
			return silent4.isClosed() && silent5.isClosed() && time.Since(start) >= 2*time.Second
		})
		for _, s := range []struct {
			r    *mqbRaw
			want [][]byte
		}{{silent4, nil}, {silent5, [][]byte{{0xE0, 0x01, 0x8D}}}} {
			rest, at := s.r.waitEOF(time.Second, "close")
			if d := at.Sub(start); d < 1500*time.Millisecond || d > 3*time.Second {
				t.Errorf("v%d silent client closed %v after CONNECT, want 1.5 s", s.r.v, d)
			}
			if !slices.EqualFunc(rest, s.want, bytes.Equal) {
				t.Errorf("v%d silent client got % x before its close, want % x", s.r.v, rest, s.want)
			}
		}
		if pinger.isClosed() {
			t.Fatalf("the client sending PINGREQ was closed")
		}
		if pings < 4 {
			t.Errorf("%d pings in 2 s", pings)
		}
		for i := range pings {
			if p := pinger.next("PINGRESP"); !bytes.Equal(p, mqbPingResp) {
				t.Errorf("the pinging client's answer %d: % x, want PINGRESP", i, p)
			}
		}
	})
}

// ---------------------------------------------------------------------
// QoS.

// TestMQTTBrokerQoS2ExactlyOnce: a QoS 2 PUBLISH sent again with DUP before
// PUBREL is acknowledged again (PUBREC, exact bytes) but routed, and raised
// as EvMQTTMsg, once; after PUBREL (answered by PUBCOMP) the packet
// identifier starts a new message. Over plain TCP and TLS.
func TestMQTTBrokerQoS2ExactlyOnce(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		b := mqbStart(e)
		for _, v := range []byte{4, 5} {
			topic := fmt.Sprintf("once%d", v)
			sub := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: v, Clean: true})
			sub.subOK(meerkat.MQTTOptions{Topic: topic, QoS: 2})
			r := b.raw(v)
			r.connectOK(mqbConnOpts{id: "pub-" + topic, clean: true, keepalive: 60})
			r.send(mqbPublishPkt(v, topic, 2, 10, false, false, "once"))
			r.expect("PUBREC", mqbAck(0x50, 10))
			r.send(mqbPublishPkt(v, topic, 2, 10, true, false, "once"))
			r.expect("PUBREC for the duplicate", mqbAck(0x50, 10))
			r.send(mqbPublishPkt(v, topic, 0, 0, false, false, "marker"))
			r.send(mqbAck(0x62, 10))
			r.expect("PUBCOMP", mqbAck(0x70, 10))
			r.send(mqbPublishPkt(v, topic, 2, 10, false, false, "again"))
			r.expect("PUBREC for the new message", mqbAck(0x50, 10))
			r.send(mqbAck(0x62, 10))
			r.expect("PUBCOMP", mqbAck(0x70, 10))
			sub.waitMsgs(3, "the messages")
			if got := sub.payloads(); !slices.Equal(got, []string{"once", "marker", "again"}) {
				t.Errorf("v%d: subscriber got %q, want once, marker, again", v, got)
			}
			var evs []string
			for _, m := range b.msgsOn(topic) {
				evs = append(evs, m.data)
			}
			if !slices.Equal(evs, []string{"once", "marker", "again"}) {
				t.Errorf("v%d: EvMQTTMsg for %q, want once, marker, again", v, evs)
			}
			if more := r.barrier(); len(more) != 0 {
				t.Errorf("v%d: the publisher got % x more", v, more)
			}
			sub.disconnect(nil)
		}
	})
}

// TestMQTTBrokerInflightLimit: a subscriber that does not acknowledge has
// at most min(its Receive Maximum, the broker's ReceiveMaximum) QoS 1
// messages in flight, the rest queued in order; each PUBACK releases one
// more; all arrive in the end.
func TestMQTTBrokerInflightLimit(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		e.m.MQTT.ReceiveMaximum = 4
		b := mqbStart(e)
		pub := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: 5, Clean: true})
		for _, tc := range []struct {
			v       byte
			recvMax uint16 // 0: none announced
			limit   int
		}{{4, 0, 4}, {5, 0, 4}, {5, 2, 2}, {5, 10, 4}} {
			name := fmt.Sprintf("v%d-rm%d", tc.v, tc.recvMax)
			var props [][]byte
			if tc.recvMax > 0 {
				props = [][]byte{mqbPropU16(mqbPropReceiveMax, tc.recvMax)}
			}
			r := b.raw(tc.v)
			r.connectOK(mqbConnOpts{id: name, clean: true, keepalive: 60, props: props})
			r.send(mqbSubscribePkt(tc.v, 1, nil, mqbFilter{"fl/" + name, 1}))
			r.next("SUBACK")
			const n = 12
			for i := range n {
				pub.pubMsg("fl/"+name, fmt.Sprint(i), 1, false) // PUBACK comes after routing
			}
			var got []string
			var unacked []uint16
			take := func(want int) {
				t.Helper()
				pkts := r.barrier()
				if len(pkts) != want {
					t.Fatalf("%s: %d messages arrived, want %d (%d in flight, limit %d)", name, len(pkts), want, len(unacked), tc.limit)
				}
				for _, p := range pkts {
					d := mqbDecode(t, tc.v, p)
					got = append(got, string(d.Payload))
					unacked = append(unacked, d.PacketID)
				}
			}
			take(tc.limit)
			r.send(mqbAck(0x40, unacked[0]))
			unacked = unacked[1:]
			take(1)
			for len(unacked) > 0 {
				r.send(mqbAck(0x40, unacked[0]))
				unacked = unacked[1:]
				if len(got) < n {
					take(1)
				}
			}
			if more := r.barrier(); len(more) != 0 {
				t.Errorf("%s: % x after everything", name, more)
			}
			want := make([]string, n)
			for i := range want {
				want[i] = fmt.Sprint(i)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: messages %q, want %q", name, got, want)
			}
			r.send(mqbDisconnect)
			r.waitEOF(5*time.Second, "close")
		}
	})
}

// ---------------------------------------------------------------------
// Subscriptions.

// TestMQTTBrokerOverlappingSubscriptions: a message matching several of a
// client's subscriptions is delivered once, at the highest of their QoS
// (capped by the message's), and in MQTT 5 with the Subscription
// Identifiers of all of them.
func TestMQTTBrokerOverlappingSubscriptions(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		b := mqbStart(e)
		pub := mqbOpen(e, b.url, meerkat.MQTTOptions{Clean: true})
		for _, v := range []byte{4, 5} {
			pre := fmt.Sprintf("ov%d/", v)
			k := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: v, Clean: true})
			for i, s := range []struct {
				filter string
				qos    byte
			}{{pre + "#", 0}, {pre + "+", 2}, {pre + "a", 1}} {
				o := meerkat.MQTTOptions{Topic: s.filter, QoS: s.qos}
				if v == 5 {
					o.Props.SubscriptionIDs = []uint32{uint32(i + 1)}
				}
				k.subOK(o)
			}
			pub.pubMsg(pre+"a", "a2", 2, false)   // all three: QoS 2
			pub.pubMsg(pre+"a", "a1", 1, false)   // all three: capped at 1
			pub.pubMsg(pre+"b", "b2", 2, false)   // # and +: QoS 2
			pub.pubMsg(pre+"b/c", "c2", 2, false) // # only: QoS 0
			pub.pubMsg(pre+"a", "marker", 1, false)
			got := k.waitMsgs(5, "the messages")
			k.e.pollUntil(time.Second, "the marker last", func() bool { return k.msgs[len(k.msgs)-1].data == "marker" })
			type want struct {
				data string
				qos  byte
				ids  []uint32
			}
			wants := []want{{"a2", 2, []uint32{1, 2, 3}}, {"a1", 1, []uint32{1, 2, 3}}, {"b2", 2, []uint32{1, 2}}, {"c2", 0, []uint32{1}}, {"marker", 1, []uint32{1, 2, 3}}}
			if len(got) != len(wants) {
				t.Fatalf("v%d: %d messages %+v, want %d (one per publication)", v, len(got), got, len(wants))
			}
			for i, w := range wants {
				ids := slices.Sorted(slices.Values(got[i].subIDs))
				if v == 4 {
					w.ids = nil
				}
				if got[i].data != w.data || got[i].qos != w.qos || !slices.Equal(ids, w.ids) {
					t.Errorf("v%d: message %d is %q QoS %d ids %v, want %q QoS %d ids %v", v, i, got[i].data, got[i].qos, ids, w.data, w.qos, w.ids)
				}
			}
			k.disconnect(nil)
		}
	})
}

// TestMQTTBrokerSubscriptionIdentifiers: MQTT 5 Subscription Identifiers:
// a message carries the identifier of the subscription it matched, none
// for a subscription made without one, and a retained message sent on
// subscription carries that subscription's; replacing a subscription
// replaces its identifier.
func TestMQTTBrokerSubscriptionIdentifiers(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		b := mqbStart(e)
		pub := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: 5, Clean: true})
		pub.pubMsg("sid/kept", "retained", 1, true)
		k := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: 5, Clean: true})
		o := meerkat.MQTTOptions{Topic: "sid/#", QoS: 1}
		o.Props.SubscriptionIDs = []uint32{268435455} // the largest
		k.subOK(o)
		k.subOK(meerkat.MQTTOptions{Topic: "sid/plain", QoS: 1})
		pub.pubMsg("sid/x", "x", 1, false)
		pub.pubMsg("sid/plain", "plain", 1, false)
		o = meerkat.MQTTOptions{Topic: "sid/#", QoS: 1}
		o.Props.SubscriptionIDs = []uint32{7}
		k.subOK(o) // replaces it: the retained message comes again with 7
		pub.pubMsg("sid/x", "x again", 1, false)
		got := k.waitMsgs(5, "the messages")
		wants := []struct {
			data string
			ids  []uint32
		}{{"retained", []uint32{268435455}}, {"x", []uint32{268435455}}, {"plain", []uint32{268435455}}, {"retained", []uint32{7}}, {"x again", []uint32{7}}}
		for i, w := range wants {
			if got[i].data != w.data || !slices.Equal(got[i].subIDs, w.ids) {
				t.Errorf("message %d: %q ids %v, want %q ids %v", i, got[i].data, got[i].subIDs, w.data, w.ids)
			}
		}
		if len(got) != len(wants) {
			t.Errorf("%d messages, want %d", len(got), len(wants))
		}
	})
}

// TestMQTTBrokerNoLocal: with No Local, a client's own publications are not
// sent back to it; without, they are.
func TestMQTTBrokerNoLocal(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		b := mqbStart(e)
		a := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: 5, Clean: true})
		bb := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: 5, Clean: true})
		a.subOK(meerkat.MQTTOptions{Topic: "nl/#", QoS: 1, NoLocal: true})
		bb.subOK(meerkat.MQTTOptions{Topic: "nl/#", QoS: 1})
		a.pubMsg("nl/x", "from a", 1, false)
		bb.pubMsg("nl/x", "from b", 1, false)
		a.pubMsg("nl/x", "from a again", 1, false)
		bb.waitMsgs(3, "b's messages")
		a.waitMsgs(1, "a's message")
		if got := a.payloads(); !slices.Equal(got, []string{"from b"}) {
			t.Errorf("the No Local subscriber got %q, want only b's", got)
		}
		if got := bb.payloads(); !slices.Equal(got, []string{"from a", "from b", "from a again"}) {
			t.Errorf("the other subscriber got %q, want all three", got)
		}
	})
}

// TestMQTTBrokerRetainAsPublished: a live retained publication reaches a
// subscriber with Retain As Published with the retain flag, one without it
// (and any 3.1.1 subscriber) without; a retained message sent on
// subscription always has it.
func TestMQTTBrokerRetainAsPublished(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		b := mqbStart(e)
		rap := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: 5, Clean: true})
		plain := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: 5, Clean: true})
		old := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: 4, Clean: true})
		rap.subOK(meerkat.MQTTOptions{Topic: "rap/#", QoS: 1, RetainAsPublished: true})
		plain.subOK(meerkat.MQTTOptions{Topic: "rap/#", QoS: 1})
		old.subOK(meerkat.MQTTOptions{Topic: "rap/#", QoS: 1})
		plain.pubMsg("rap/x", "retained", 1, true)
		plain.pubMsg("rap/y", "live", 1, false)
		for _, c := range []struct {
			name string
			k    *mqbCli
			want bool
		}{{"Retain As Published", rap, true}, {"MQTT 5 without it", plain, false}, {"MQTT 3.1.1", old, false}} {
			got := c.k.waitMsgs(2, c.name)
			if got[0].data != "retained" || got[0].retain != c.want || got[1].data != "live" || got[1].retain {
				t.Errorf("%s: got %+v, want the retained publication with retain %v, then live without", c.name, got, c.want)
			}
		}
		late := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: 5, Clean: true})
		late.subOK(meerkat.MQTTOptions{Topic: "rap/#", QoS: 1})
		if got := late.waitMsgs(1, "the retained message"); got[0].data != "retained" || !got[0].retain {
			t.Errorf("on subscription: %+v, want the retained message with the flag", got[0])
		}
	})
}

// TestMQTTBrokerRetainHandling: Retain Handling 0 sends the retained
// messages on every subscription, 1 only when the subscription is new, 2
// never.
func TestMQTTBrokerRetainHandling(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		b := mqbStart(e)
		pub := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: 5, Clean: true})
		pub.pubMsg("rh/t", "kept", 1, true)
		for _, tc := range []struct {
			handling byte
			want     []string
		}{{0, []string{"kept", "kept", "marker"}}, {1, []string{"kept", "marker"}}, {2, []string{"marker"}}} {
			k := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: 5, Clean: true})
			for range 2 {
				k.subOK(meerkat.MQTTOptions{Topic: "rh/t", QoS: 1, RetainHandling: tc.handling})
			}
			pub.pubMsg("rh/t", "marker", 1, false)
			k.e.pollUntil(5*time.Second, "the marker", func() bool { return slices.Contains(k.payloads(), "marker") })
			if got := k.payloads(); !slices.Equal(got, tc.want) {
				t.Errorf("Retain Handling %d, subscribed twice: got %q, want %q", tc.handling, got, tc.want)
			}
			k.disconnect(nil)
		}
	})
}

// TestMQTTBrokerRetained: retained messages with Meerkat's clients: set,
// replaced, cleared by an empty retained publication; sent on subscription
// (one per matching topic, at the lower of its QoS and the subscription's,
// with the retain flag) and counted in MQTTStats.
func TestMQTTBrokerRetained(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		b := mqbStart(e)
		for _, v := range []byte{4, 5} {
			pre := fmt.Sprintf("kept%d/", v)
			pub := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: v, Clean: true})
			firstOnSubscribe := func(qos byte) []mqbMsg {
				k := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: v, Clean: true})
				k.subOK(meerkat.MQTTOptions{Topic: pre + "#", QoS: qos})
				pub.pubMsg(pre+"marker", "marker", 1, false)
				k.e.pollUntil(5*time.Second, "the marker", func() bool { return slices.Contains(k.payloads(), "marker") })
				k.disconnect(nil)
				got := k.msgs[:len(k.msgs)-1]
				slices.SortFunc(got, func(x, y mqbMsg) int { return strings.Compare(x.topic, y.topic) })
				return got
			}
			pub.pubMsg(pre+"a", "one", 2, true)
			pub.pubMsg(pre+"b", "bee", 1, true)
			got := firstOnSubscribe(1)
			if len(got) != 2 || got[0].data != "one" || got[0].qos != 1 || !got[0].retain || got[1].data != "bee" || !got[1].retain {
				t.Errorf("v%d: on subscription %+v, want one (QoS 1) and bee, retained", v, got)
			}
			pub.pubMsg(pre+"a", "two", 0, true)
			pub.pubMsg(pre+"marker", "sync", 1, false) // the QoS 0 publication is routed by now
			got = firstOnSubscribe(2)
			if len(got) != 2 || got[0].data != "two" || got[0].qos != 0 {
				t.Errorf("v%d: after replacing, %+v, want two (QoS 0) and bee", v, got)
			}
			if n := e.m.MQTTStats().Retained; n != 2 {
				t.Errorf("v%d: %d retained, want 2", v, n)
			}
			pub.pubMsg(pre+"a", "", 1, true)
			pub.pubMsg(pre+"b", "", 1, true)
			if n := e.m.MQTTStats().Retained; n != 0 {
				t.Errorf("v%d: %d retained after clearing, want 0", v, n)
			}
			if got := firstOnSubscribe(1); len(got) != 0 {
				t.Errorf("v%d: after clearing, %+v on subscription, want nothing", v, got)
			}
			pub.disconnect(nil)
		}
	})
}

// TestMQTTBrokerMessageExpiry: MQTT 5 Message Expiry: forwarded as set to
// a subscriber online; for a message that waited in an offline session,
// forwarded reduced by the time waited, or the message dropped (and
// counted) if it expired meanwhile; an expired retained message is not
// sent on subscription.
func TestMQTTBrokerMessageExpiry(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		b := mqbStart(e)
		pub := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: 5, Clean: true})
		pubExp := func(topic, data string, expiry uint32, retain bool) {
			o := meerkat.MQTTOptions{Topic: topic, Message: []byte(data), QoS: 1, Retain: retain}
			o.Props.SetMessageExpiry(expiry)
			if code := pub.pub(o); code != 0 {
				t.Fatalf("publish: 0x%02x", code)
			}
		}
		online := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: 5, Clean: true})
		online.subOK(meerkat.MQTTOptions{Topic: "mx/live", QoS: 1})
		pubExp("mx/live", "live", 60, false)
		if got := online.waitMsgs(1, "the live message")[0]; !got.hasExpiry || got.expiry != 60 {
			t.Errorf("online: expiry %d (%v), want 60", got.expiry, got.hasExpiry)
		}

		o := meerkat.MQTTOptions{Version: 5, ClientID: "mx-away"}
		o.Props.SetSessionExpiry(60)
		away := mqbOpen(e, b.url, o)
		away.subOK(meerkat.MQTTOptions{Topic: "mx/q/#", QoS: 1})
		away.disconnect(nil)
		b.waitGone("mx-away")
		start := time.Now()
		pubExp("mx/q/short", "short", 1, false)
		pubExp("mx/q/long", "long", 60, false)
		pubExp("mx/ret", "retained", 1, true)
		dropped := e.m.MQTTStats().DroppedExpired
		mqbPollFor(e, time.Until(start.Add(1100*time.Millisecond)))
		away = mqbOpen(e, b.url, o)
		got := away.waitMsgs(1, "the message that did not expire")
		if got[0].data != "long" || !got[0].hasExpiry || got[0].expiry < 55 || got[0].expiry > 59 {
			t.Errorf("after waiting: %q expiry %d, want \"long\" with 59 or less", got[0].data, got[0].expiry)
		}
		if d := e.m.MQTTStats().DroppedExpired - dropped; d != 1 {
			t.Errorf("%d messages counted as expired, want 1", d)
		}
		late := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: 5, Clean: true})
		late.subOK(meerkat.MQTTOptions{Topic: "mx/ret", QoS: 1})
		pubExp("mx/ret", "marker", 60, false)
		if got := late.waitMsgs(1, "the marker"); got[0].data != "marker" {
			t.Errorf("a subscriber to an expired retained message got %q first, want the marker", got[0].data)
		}
		if len(away.msgs) != 1 {
			t.Errorf("the returning client got %d messages, want 1", len(away.msgs))
		}
	})
}

// TestMQTTBrokerMaximumPacketSize: a client that announced a Maximum Packet
// Size of 64 bytes gets no packet bigger than that: a larger message for it
// is dropped, and (with a Receive Maximum of 1) it does not hold up the
// next one.
func TestMQTTBrokerMaximumPacketSize(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		b := mqbStart(e)
		pub := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: 5, Clean: true})
		r := b.raw(5)
		r.connectOK(mqbConnOpts{id: "small", clean: true, keepalive: 60,
			props: [][]byte{mqbPropU32(mqbPropMaxPacket, 64), mqbPropU16(mqbPropReceiveMax, 1)}})
		r.send(mqbSubscribePkt(5, 1, nil, mqbFilter{"mp/#", 1}))
		r.next("SUBACK")
		var got []string
		for _, size := range []int{10, 200, 40, 50, 1000, 5} {
			pub.pubMsg("mp/x", strings.Repeat("x", size), 1, false)
			for _, p := range r.barrier() {
				if len(p) > 64 {
					t.Errorf("a %d-byte packet for a client whose maximum is 64", len(p))
				}
				d := mqbDecode(t, 5, p)
				got = append(got, fmt.Sprint(len(d.Payload)))
				r.send(mqbAck(0x40, d.PacketID))
			}
		}
		if want := []string{"10", "40", "50", "5"}; !slices.Equal(got, want) {
			t.Errorf("payload sizes received %q, want %q", got, want)
		}
	})
}

// ---------------------------------------------------------------------
// Authentication and authorization hooks.

// TestMQTTBrokerAuthenticate: the Authenticate hook sees the client ID,
// user name and password (an empty password told from none) and the
// connection; a refusal is a CONNACK with its code (3.1.1: the return code
// it maps to, exact bytes) and the close, with no EvMQTTCmd for the CONNECT
// and no session.
func TestMQTTBrokerAuthenticate(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		type call struct {
			id, user, pass string
			hasPass        bool
			remote         bool
		}
		var calls []call
		e.m.MQTT.Authenticate = func(c *meerkat.Conn, clientID, user string, pass []byte, hasPass bool) byte {
			calls = append(calls, call{clientID, user, string(pass), hasPass, c.RemoteAddr().IsValid()})
			switch {
			case user == "bad":
				return 0x86
			case clientID == "banned":
				return 0x8A
			case user == "good" && string(pass) == "secret":
				return 0
			}
			return 0x87
		}
		b := mqbStart(e)
		str := func(s string) *string { return &s }
		for _, tc := range []struct {
			v          byte
			id         string
			user, pass *string
			want       []byte
			call       call
		}{
			{4, "a", str("good"), str("secret"), []byte{0x20, 0x02, 0x00, 0x00}, call{"a", "good", "secret", true, true}},
			{4, "b", str("bad"), str("x"), []byte{0x20, 0x02, 0x00, 0x04}, call{"b", "bad", "x", true, true}},
			{4, "c", str("good"), nil, []byte{0x20, 0x02, 0x00, 0x05}, call{"c", "good", "", false, true}},
			{4, "banned", str("good"), str("secret"), []byte{0x20, 0x02, 0x00, 0x03}, call{"banned", "good", "secret", true, true}},
			{5, "d", str("good"), str("secret"), nil, call{"d", "good", "secret", true, true}},
			{5, "e", str("bad"), str(""), []byte{0x20, 0x03, 0x00, 0x86, 0x00}, call{"e", "bad", "", true, true}},
			{5, "f", nil, str("secret"), []byte{0x20, 0x03, 0x00, 0x87, 0x00}, call{"f", "", "secret", true, true}},
			{5, "banned", str("good"), str("secret"), []byte{0x20, 0x03, 0x00, 0x8A, 0x00}, call{"banned", "good", "secret", true, true}},
		} {
			name := fmt.Sprintf("v%d %s", tc.v, tc.id)
			r := b.raw(tc.v)
			ack := r.connect(mqbConnOpts{id: tc.id, clean: true, keepalive: 60, user: tc.user, pass: tc.pass})
			if tc.want == nil {
				if p := mqbDecode(t, 5, ack); p.Type != mqttpkt.CONNACK || p.ReasonCode != 0 {
					t.Errorf("%s: CONNACK % x, want acceptance", name, ack)
				}
			} else {
				if !bytes.Equal(ack, tc.want) {
					t.Errorf("%s: CONNACK % x, want % x", name, ack, tc.want)
				}
				if !bytes.Equal(tc.want[2:4], []byte{0, 0}) {
					if rest, _ := r.waitEOF(5*time.Second, name+" closed"); len(rest) != 0 {
						t.Errorf("%s: % x after the refusal", name, rest)
					}
				}
			}
			if len(calls) == 0 || calls[len(calls)-1] != tc.call {
				t.Errorf("%s: hook calls %+v, want last %+v", name, calls, tc.call)
			}
		}
		if len(calls) != 8 {
			t.Errorf("%d hook calls, want 8", len(calls))
		}
		connects := 0
		for _, id := range b.ids {
			connects++
			if id != "a" && id != "d" {
				t.Errorf("EvMQTTCmd for the refused CONNECT of %q", id)
			}
		}
		if connects != 2 || e.m.MQTTStats().Sessions != 2 {
			t.Errorf("%d CONNECT events and %d sessions, want 2 (the accepted ones)", connects, e.m.MQTTStats().Sessions)
		}
		if code := mqbClient(e, b.url, meerkat.MQTTOptions{Version: 5, User: "bad", Pass: "x"}); true {
			code.waitOpen(0x86)
			e.pollUntil(5*time.Second, "the refused client closed", func() bool { return code.closed })
			if len(code.errs) != 1 || !errors.Is(code.errs[0], meerkat.ErrMQTTRefused) {
				t.Errorf("the refused Meerkat client got errors %v, want ErrMQTTRefused", code.errs)
			}
		}
	})
}

// TestMQTTBrokerAuthorize: the Authorize hook (here: no publishing to
// deny/..., no subscribing to secret/...) refuses a PUBLISH (MQTT 5:
// PUBACK 0x87, exact bytes; 3.1.1: acknowledged and dropped) and a
// SUBSCRIBE filter (SUBACK 0x87 in 5, 0x80 in 3.1.1, beside the granted
// filters); refused messages reach nobody, refused filters get nothing.
func TestMQTTBrokerAuthorize(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		type call struct {
			id, topic string
			publish   bool
		}
		var calls []call
		e.m.MQTT.Authorize = func(c *meerkat.Conn, clientID string, topic []byte, publish bool) bool {
			calls = append(calls, call{clientID, string(topic), publish})
			if publish {
				return !strings.HasPrefix(string(topic), "deny/")
			}
			return !strings.HasPrefix(string(topic), "secret/")
		}
		b := mqbStart(e)
		watch := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: 5, ClientID: "watch", Clean: true})
		watch.subOK(meerkat.MQTTOptions{Topic: "ok/#", QoS: 1})
		if codes := watch.sub(meerkat.MQTTOptions{Topic: "deny/#", QoS: 1}); !bytes.Equal(codes, []byte{0x01}) {
			t.Fatalf("watch: SUBACK % x", codes)
		}
		for _, v := range []byte{4, 5} {
			id := fmt.Sprintf("authz%d", v)
			r := b.raw(v)
			r.connectOK(mqbConnOpts{id: id, clean: true, keepalive: 60})
			calls = nil
			r.send(mqbPublishPkt(v, "deny/x", 1, 1, false, false, "refused"))
			if v == 5 {
				r.expect("PUBACK refusing", []byte{0x40, 0x03, 0x00, 0x01, 0x87})
			} else {
				r.expect("PUBACK", []byte{0x40, 0x02, 0x00, 0x01})
			}
			r.send(mqbPublishPkt(v, "ok/x", 1, 2, false, false, "allowed"))
			r.expect("PUBACK", []byte{0x40, 0x02, 0x00, 0x02})
			r.send(mqbSubscribePkt(v, 3, nil, mqbFilter{"ok/#", 1}, mqbFilter{"secret/#", 1}))
			if v == 5 {
				r.expect("SUBACK", []byte{0x90, 0x05, 0x00, 0x03, 0x00, 0x01, 0x87})
			} else {
				r.expect("SUBACK", []byte{0x90, 0x04, 0x00, 0x03, 0x01, 0x80})
			}
			want := []call{{id, "deny/x", true}, {id, "ok/x", true}, {id, "ok/#", false}, {id, "secret/#", false}}
			if !slices.Equal(calls, want) {
				t.Errorf("v%d: hook calls %+v, want %+v", v, calls, want)
			}
			watch.pubMsg("secret/x", "hidden", 1, false) // allowed, but nobody may subscribe
			watch.pubMsg("ok/y", "shown", 1, false)
			got := r.barrier()
			if len(got) != 1 || string(mqbDecode(t, v, got[0]).Payload) != "shown" {
				t.Errorf("v%d: the subscriber got % x, want only \"shown\"", v, got)
			} else {
				r.send(mqbAck(0x40, mqbDecode(t, v, got[0]).PacketID))
			}
			r.send(mqbDisconnect)
			r.waitEOF(5*time.Second, "close")
		}
		watch.pubMsg("ok/end", "end", 1, false)
		watch.waitMsgs(5, "the watcher's messages")
		if got := watch.payloads(); !slices.Equal(got, []string{"allowed", "shown", "allowed", "shown", "end"}) {
			t.Errorf("the watcher got %q: a refused publication went through", got)
		}
	})
}

// ---------------------------------------------------------------------
// Bad input.

// TestMQTTBrokerBadInput: each malformed or forbidden input from a raw
// client — the codec's cases of issue 5 and a few more — closes that
// client at once (MQTT 5, once connected: after exactly one DISCONNECT
// with the right reason code; 3.1.1 and before CONNECT: nothing), raises
// no EvMQTTMsg, and leaves the other clients served: a subscriber keeps
// receiving a publisher's messages throughout, and gets nothing else.
func TestMQTTBrokerBadInput(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		b := mqbStart(e)
		sub := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: 5, ClientID: "good-sub", Clean: true})
		sub.subOK(meerkat.MQTTOptions{Topic: "#", QoS: 1})
		pub := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: 4, ClientID: "good-pub", Clean: true})
		v5only := []byte{5}
		both := []byte{4, 5}
		mqtt := []byte{0x81, 0x82}
		for _, tc := range []struct {
			name      string
			versions  []byte
			connected bool // CONNECT first
			input     func(v byte) []byte
			codes     []byte // MQTT 5 DISCONNECT reason codes accepted
		}{
			{"remaining length of five bytes", both, true, func(byte) []byte { return []byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 0x00, 0x01, 'b'} }, mqtt},
			{"remaining length over the receive limit", both, true, func(byte) []byte { return []byte{0x30, 0xFF, 0xFF, 0xFF, 0x7F} }, []byte{0x95}},
			{"topic length past the end", both, true, func(byte) []byte { return []byte{0x30, 0x04, 0x00, 0x0A, 'b', 'a'} }, mqtt},
			{"QoS 1 publish without packet ID", both, true, func(byte) []byte { return []byte{0x32, 0x03, 0x00, 0x01, 'b'} }, mqtt},
			{"QoS 3", both, true, func(byte) []byte { return []byte{0x36, 0x06, 0x00, 0x01, 'b', 0x00, 0x01, 'x'} }, mqtt},
			{"DUP on QoS 0", both, true, func(byte) []byte { return []byte{0x38, 0x04, 0x00, 0x01, 'b', 'x'} }, mqtt},
			{"wildcard in a topic name", both, true, func(v byte) []byte { return mqbPublishPkt(v, "b/#", 0, 0, false, false, "x") }, []byte{0x90}},
			{"SUBSCRIBE without filters", both, true, func(v byte) []byte {
				if v == 5 {
					return []byte{0x82, 0x03, 0x00, 0x01, 0x00}
				}
				return []byte{0x82, 0x02, 0x00, 0x01}
			}, mqtt},
			{"filter length past the end", both, true, func(v byte) []byte {
				if v == 5 {
					return []byte{0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x09, 'b', 0x00}
				}
				return []byte{0x82, 0x06, 0x00, 0x01, 0x00, 0x09, 'b', 0x00}
			}, mqtt},
			{"property length past the end", v5only, true, func(byte) []byte { return []byte{0x30, 0x06, 0x00, 0x01, 'b', 0x0A, 'x', 'y'} }, mqtt},
			{"property value past the end", v5only, true, func(byte) []byte { return []byte{0x30, 0x08, 0x00, 0x01, 'b', 0x03, 0x03, 0x00, 0x05, 'x'} }, mqtt},
			{"a second CONNECT", both, true, func(v byte) []byte { return mqbConnectPkt(mqbConnOpts{v: v, id: "again", clean: true}) }, []byte{0x82}},
			{"a packet only a broker sends", both, true, func(byte) []byte { return []byte{0x20, 0x02, 0x00, 0x00} }, mqtt},
			{"reserved packet type 0", both, true, func(byte) []byte { return []byte{0x00, 0x00} }, mqtt},
			{"CONNECT property length past the end", v5only, false, func(byte) []byte {
				return []byte{0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x3C, 0x1E, 0x00, 0x00}
			}, nil},
			{"first packet not CONNECT", both, false, func(byte) []byte { return mqbPingReq }, nil},
			{"first packet a PUBLISH", both, false, func(v byte) []byte { return mqbPublishPkt(v, "b", 0, 0, false, false, "x") }, nil},
			{"not MQTT at all", both, false, func(byte) []byte { return []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n") }, nil},
		} {
			for _, v := range tc.versions {
				name := fmt.Sprintf("v%d %s", v, tc.name)
				id := fmt.Sprintf("bad-%d-%s", v, strings.ReplaceAll(tc.name, " ", "-"))
				r := b.raw(v)
				if tc.connected {
					r.connectOK(mqbConnOpts{id: id, clean: true, keepalive: 60})
				}
				sent := time.Now()
				r.send(tc.input(v))
				rest, at := r.waitEOF(5*time.Second, name+": the close")
				if d := at.Sub(sent); d > 900*time.Millisecond {
					t.Errorf("%s: closed %v after the bad input, want at once", name, d)
				}
				if v == 5 && tc.connected {
					if len(rest) != 1 || len(rest[0]) != 3 || rest[0][0] != 0xE0 || rest[0][1] != 0x01 || !slices.Contains(tc.codes, rest[0][2]) {
						t.Errorf("%s: got % x before the close, want one DISCONNECT with a reason code in % x", name, rest, tc.codes)
					}
				} else if len(rest) != 0 {
					t.Errorf("%s: got % x before the close, want nothing", name, rest)
				}
				n := len(sub.msgs)
				pub.pubMsg("ok", name, 1, false)
				got := sub.waitMsgs(n+1, name+": the next message of the good publisher")
				if last := got[len(got)-1]; last.topic != "ok" || last.data != name {
					t.Errorf("%s: the good subscriber got %+v", name, last)
				}
			}
		}
		for _, m := range b.msgs {
			if strings.HasPrefix(m.clientID, "bad-") || m.conn == nil {
				t.Errorf("EvMQTTMsg for bad input: %+v", m)
			}
		}
		for _, m := range sub.msgs {
			if m.topic != "ok" {
				t.Errorf("the good subscriber got %+v", m)
			}
		}
		if st := e.m.MQTTStats(); st.Connected != 2 {
			t.Errorf("%d clients connected at the end, want the good two", st.Connected)
		}
	})
}

// TestMQTTBrokerClientSubscriptionID: a PUBLISH from a client must not
// carry a Subscription Identifier (MQTT 5 [MQTT-3.3.4-6]; the codec leaves
// this direction rule to the broker): it is a protocol error, DISCONNECT
// 0x82 and the close, and the message is not routed.
func TestMQTTBrokerClientSubscriptionID(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		b := mqbStart(e)
		sub := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: 5, Clean: true})
		sub.subOK(meerkat.MQTTOptions{Topic: "#", QoS: 1})
		r := b.raw(5)
		r.connectOK(mqbConnOpts{id: "subid-publisher", clean: true, keepalive: 60})
		r.send(mqbPublishPkt(5, "subid", 1, 1, false, false, "x", []byte{mqbPropSubID, 0x01}))
		if rest, _ := r.waitEOF(2*time.Second, "the close"); len(rest) != 1 || !bytes.Equal(rest[0], []byte{0xE0, 0x01, 0x82}) {
			t.Errorf("got % x before the close, want DISCONNECT 0x82", rest)
		}
		if len(b.msgsOn("subid")) != 0 || len(sub.msgs) != 0 {
			t.Errorf("the forbidden PUBLISH was raised (%d) or routed (%d)", len(b.msgsOn("subid")), len(sub.msgs))
		}
	})
}

// TestMQTTBrokerUnsupportedProtocol: a CONNECT for MQTT 3.1 ("MQIsdp",
// level 3) or an unknown level is answered by a 3.1.1-format CONNACK with
// return code 1 (exact bytes 20 02 00 01), then the close.
func TestMQTTBrokerUnsupportedProtocol(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		b := mqbStart(e)
		for _, tc := range []struct {
			name  string
			level byte
		}{{"MQIsdp", 3}, {"MQTT", 3}, {"MQTT", 6}, {"MQTT", 0}} {
			r := b.raw(4)
			r.send(mqbPkt(0x10, mqbStr(tc.name), []byte{tc.level, 0x02}, mqbU16(60), mqbStr("old")))
			r.expect(fmt.Sprintf("CONNACK for %s level %d", tc.name, tc.level), []byte{0x20, 0x02, 0x00, 0x01})
			if rest, _ := r.waitEOF(5*time.Second, "the close"); len(rest) != 0 {
				t.Errorf("%s %d: % x after the CONNACK", tc.name, tc.level, rest)
			}
		}
		if n := e.m.MQTTStats().Sessions; n != 0 {
			t.Errorf("%d sessions, want 0", n)
		}
	})
}

// TestMQTTBrokerEmptyClientID: an empty client ID is refused in 3.1.1 with
// clean session 0 (CONNACK 20 02 00 02, then the close); otherwise a
// unique one is assigned (MQTT 5: in Assigned Client Identifier), and the
// client is served.
func TestMQTTBrokerEmptyClientID(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		b := mqbStart(e)
		r := b.raw(4)
		r.expect("CONNACK", func() []byte {
			r.send(mqbConnectPkt(mqbConnOpts{v: 4, keepalive: 60}))
			return []byte{0x20, 0x02, 0x00, 0x02}
		}())
		if rest, _ := r.waitEOF(5*time.Second, "the close"); len(rest) != 0 {
			t.Errorf("% x after the refusal", rest)
		}
		r4 := b.raw(4)
		r4.expect("CONNACK", func() []byte {
			r4.send(mqbConnectPkt(mqbConnOpts{v: 4, clean: true, keepalive: 60}))
			return []byte{0x20, 0x02, 0x00, 0x00}
		}())
		seen := map[string]bool{}
		for _, clean := range []bool{true, true, false} {
			r5 := b.raw(5)
			p := mqbDecode(t, 5, r5.connect(mqbConnOpts{clean: clean, keepalive: 60}))
			id := string(p.Props.AssignedClientID)
			if p.ReasonCode != 0 || id == "" || seen[id] {
				t.Errorf("clean %v: CONNACK code 0x%02x assigned %q (seen before: %v)", clean, p.ReasonCode, id, seen[id])
			}
			seen[id] = true
			r5.send(mqbSubscribePkt(5, 1, nil, mqbFilter{"eid/" + id, 0}))
			r5.next("SUBACK")
		}
		if st := e.m.MQTTStats(); st.Sessions != 4 || st.Connected != 4 {
			t.Errorf("%d sessions, %d connected, want 4 and 4", st.Sessions, st.Connected)
		}
		k := mqbOpen(e, b.url, meerkat.MQTTOptions{Clean: true})
		for id := range seen {
			k.pubMsg("eid/"+id, "to "+id, 1, false)
		}
		if st := e.m.MQTTStats(); st.Delivered != 3 {
			t.Errorf("%d delivered, want 3: one per assigned client ID", st.Delivered)
		}
	})
}

// TestMQTTBrokerConnectTimeout: a connection that sends no CONNECT, or only
// part of one, within MQTT.ConnectTimeout is closed then, not before;
// one that connects in time is not.
func TestMQTTBrokerConnectTimeout(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		e.m.MQTT.ConnectTimeout = 300 * time.Millisecond
		b := mqbStart(e)
		start := time.Now()
		silent, partial, ok := b.raw(4), b.raw(4), b.raw(4)
		partial.send(mqbConnectPkt(mqbConnOpts{v: 4, id: "partial", clean: true})[:5])
		ok.connectOK(mqbConnOpts{id: "in-time", clean: true})
		for _, r := range []*mqbRaw{silent, partial} {
			rest, at := r.waitEOF(5*time.Second, "the close at the timeout")
			if d := at.Sub(start); d < 300*time.Millisecond || d > 2*time.Second {
				t.Errorf("closed %v after connecting, want 300 ms", d)
			}
			if len(rest) != 0 {
				t.Errorf("% x before the close", rest)
			}
		}
		mqbPollFor(e, 200*time.Millisecond)
		if ok.isClosed() {
			t.Errorf("the client that connected in time was closed")
		}
		ok.barrier()
	})
}

// TestMQTTBrokerTopicAlias: an MQTT 5 client's Topic Alias is set by a
// PUBLISH with topic and alias and used by one with the alias alone; an
// alias over the Topic Alias Maximum announced in CONNACK, or one never
// set, closes the client (DISCONNECT 0x94 / 0x82).
func TestMQTTBrokerTopicAlias(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		b := mqbStart(e)
		sub := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: 5, Clean: true})
		sub.subOK(meerkat.MQTTOptions{Topic: "alias/#", QoS: 1})
		r := b.raw(5)
		p := mqbDecode(t, 5, r.connect(mqbConnOpts{id: "alias", clean: true, keepalive: 60}))
		max, ok := p.Props.TopicAliasMaximum()
		if !ok || max == 0 {
			t.Fatalf("CONNACK announces Topic Alias Maximum %d (%v)", max, ok)
		}
		alias := func(a uint16) []byte { return append([]byte{0x23}, mqbU16(a)...) }
		r.send(mqbPublishPkt(5, "alias/long/topic", 1, 1, false, false, "set", alias(1)))
		r.expect("PUBACK", mqbAck(0x40, 1))
		r.send(mqbPublishPkt(5, "", 1, 2, false, false, "used", alias(1)))
		r.expect("PUBACK", mqbAck(0x40, 2))
		got := sub.waitMsgs(2, "both messages")
		if got[0].topic != "alias/long/topic" || got[1].topic != "alias/long/topic" || got[1].data != "used" {
			t.Errorf("got %+v, want both on the aliased topic", got)
		}
		for _, tc := range []struct {
			name  string
			alias uint16
			topic string
			code  byte
		}{{"over the maximum", max + 1, "alias/x", 0x94}, {"zero", 0, "alias/x", 0x94}, {"never set", 2, "", 0x82}} {
			r := b.raw(5)
			r.connectOK(mqbConnOpts{id: "alias-" + tc.name, clean: true, keepalive: 60})
			r.send(mqbPublishPkt(5, tc.topic, 0, 0, false, false, "bad", alias(tc.alias)))
			if rest, _ := r.waitEOF(5*time.Second, tc.name); len(rest) != 1 || !bytes.Equal(rest[0], []byte{0xE0, 0x01, tc.code}) {
				t.Errorf("alias %s: % x before the close, want DISCONNECT 0x%02x", tc.name, rest, tc.code)
			}
		}
		if len(sub.msgs) != 2 {
			t.Errorf("%d messages, want 2: a bad alias was routed", len(sub.msgs))
		}
	})
}

// ---------------------------------------------------------------------
// Counters, shutdown, leaks.

// TestMQTTBrokerStats: MQTTStats counts sessions (connected or not),
// connected clients, retained messages, PUBLISH received and delivered,
// and messages dropped from an offline session's full queue (MaxQueued 2:
// the oldest go), exactly.
func TestMQTTBrokerStats(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		e.m.MQTT.MaxQueued = 2
		if st := e.m.MQTTStats(); st != (meerkat.MQTTBrokerStats{}) {
			t.Errorf("stats before any listener: %+v", st)
		}
		b := mqbStart(e)
		expect := func(what string, want meerkat.MQTTBrokerStats) {
			t.Helper()
			if st := e.m.MQTTStats(); st != want {
				t.Errorf("%s: stats %+v, want %+v", what, st, want)
			}
		}
		expect("empty", meerkat.MQTTBrokerStats{})
		subOpts := meerkat.MQTTOptions{ClientID: "st-sub"}
		sub := mqbOpen(e, b.url, subOpts)
		sub.subOK(meerkat.MQTTOptions{Topic: "st/#", QoS: 1})
		pub := mqbOpen(e, b.url, meerkat.MQTTOptions{ClientID: "st-pub", Clean: true})
		expect("two clients", meerkat.MQTTBrokerStats{Sessions: 2, Connected: 2})
		pub.pubMsg("st/a", "1", 1, true)
		pub.pubMsg("st/b", "2", 1, false)
		sub.waitMsgs(2, "two messages")
		expect("two delivered", meerkat.MQTTBrokerStats{Sessions: 2, Connected: 2, Retained: 1, Received: 2, Delivered: 2})
		sub.disconnect(nil)
		b.waitGone("st-sub")
		for i := 3; i <= 5; i++ {
			pub.pubMsg("st/c", fmt.Sprint(i), 1, false)
		}
		expect("queued for the offline session", meerkat.MQTTBrokerStats{Sessions: 2, Connected: 1, Retained: 1, Received: 5, Delivered: 2, DroppedQueueful: 1})
		sub = mqbOpen(e, b.url, subOpts)
		sub.waitMsgs(2, "the queued messages")
		if got := sub.payloads(); !slices.Equal(got, []string{"4", "5"}) {
			t.Errorf("after the queue overflowed: %q, want the newest two", got)
		}
		pub.pubMsg("elsewhere", "nobody", 0, false)
		pub.pubMsg("elsewhere", "nobody", 1, false)
		expect("back", meerkat.MQTTBrokerStats{Sessions: 2, Connected: 2, Retained: 1, Received: 7, Delivered: 4, DroppedQueueful: 1})
		pub.disconnect(nil)
		b.waitGone("st-pub")
		expect("the clean session gone", meerkat.MQTTBrokerStats{Sessions: 1, Connected: 1, Retained: 1, Received: 7, Delivered: 4, DroppedQueueful: 1})
	})
}

// TestMQTTBrokerShutdown: Manager.Shutdown tells MQTT 5 clients
// (DISCONNECT 0x8B, exact bytes e0 01 8b), closes 3.1.1 clients and
// connections not yet past CONNECT with nothing, and completes with every
// connection closed.
func TestMQTTBrokerShutdown(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		b := mqbStart(e)
		r5, r4, early := b.raw(5), b.raw(4), b.raw(4)
		r5.connectOK(mqbConnOpts{id: "sd5", clean: true, keepalive: 60})
		r4.connectOK(mqbConnOpts{id: "sd4", clean: true, keepalive: 60})
		k := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: 5, Clean: true})
		k.subOK(meerkat.MQTTOptions{Topic: "sd", QoS: 1})
		e.pollUntil(5*time.Second, "the early connection accepted", func() bool { return e.chk.count(meerkat.EvAccept) == 4 })
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		if err := e.m.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Shutdown took %v", d)
		}
		for _, c := range []struct {
			r    *mqbRaw
			name string
			want [][]byte
		}{{r5, "MQTT 5", [][]byte{{0xE0, 0x01, 0x8B}}}, {r4, "MQTT 3.1.1", nil}, {early, "before CONNECT", nil}} {
			c.r.mu.Lock()
			rest, eof := slices.Clone(c.r.pkts[c.r.read:]), c.r.eof
			c.r.mu.Unlock()
			if !eof {
				t.Errorf("%s client: not closed", c.name)
			}
			if !slices.EqualFunc(rest, c.want, bytes.Equal) {
				t.Errorf("%s client: got % x at shutdown, want % x", c.name, rest, c.want)
			}
		}
		if !k.closed {
			t.Errorf("the Meerkat client is not closed")
		}
	})
}

// TestMQTTBrokerNoLeaks: after a batch of clients of both versions
// publishing and subscribing at every QoS, some leaving with DISCONNECT,
// some with a reset, and the listener closed, the goroutines and
// descriptors are back to what they were.
func TestMQTTBrokerNoLeaks(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		base := snapshot()
		b := mqbStart(e)
		const n = 24
		var ks []*mqbCli
		for i := range n {
			k := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: byte(4 + i%2), ClientID: fmt.Sprint("leak-", i), Clean: i%3 != 0})
			k.subOK(meerkat.MQTTOptions{Topic: fmt.Sprint("leak/", i), QoS: byte(i % 3)})
			ks = append(ks, k)
		}
		for i, k := range ks {
			k.pubMsg(fmt.Sprint("leak/", (i+1)%n), fmt.Sprint("from ", i), byte(i%3), i%4 == 0)
		}
		for i, k := range ks {
			k.waitMsgs(1, fmt.Sprint("client ", i, "'s message"))
		}
		var raws []*mqbRaw
		for i := range 6 {
			r := b.raw(byte(4 + i%2))
			r.connectOK(mqbConnOpts{id: fmt.Sprint("leak-raw-", i), clean: true, keepalive: 60,
				will: &mqbWillOpts{topic: "leak/0", payload: "will", qos: 1}})
			raws = append(raws, r)
		}
		for i, r := range raws {
			if i%2 == 0 {
				r.reset()
			} else {
				r.send(mqbDisconnect)
			}
		}
		for _, k := range ks {
			k.disconnect(nil)
		}
		for _, r := range raws {
			r.waitEOF(5*time.Second, "the raw client closed")
			r.finish()
		}
		b.waitConnected(0)
		b.l.Close()
		e.pollUntil(5*time.Second, "every connection closed", func() bool {
			for range e.m.Conns() {
				return false
			}
			return true
		})
		expectBaseline(t, base, 5*time.Second)
	})
}

// TestMQTTBrokerQoS2Outbound: the broker's side of QoS 2 towards a
// subscriber: PUBLISH, PUBREC answered by PUBREL (exact bytes); a
// persistent session that loses its connection before PUBCOMP gets the
// PUBREL again on reconnection (not the PUBLISH: MQTT 4.4); PUBCOMP frees
// the in-flight slot (ReceiveMaximum 1: the next message follows).
func TestMQTTBrokerQoS2Outbound(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		e.m.MQTT.ReceiveMaximum = 1
		b := mqbStart(e)
		pub := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: 5, Clean: true})
		for _, v := range []byte{4, 5} {
			id := fmt.Sprintf("q2out%d", v)
			var props [][]byte
			if v == 5 {
				props = [][]byte{mqbPropU32(mqbPropSessionExpiry, 60)}
			}
			r := b.raw(v)
			r.connectOK(mqbConnOpts{id: id, keepalive: 60, props: props})
			r.send(mqbSubscribePkt(v, 1, nil, mqbFilter{id, 2}))
			r.next("SUBACK")
			pub.pubMsg(id, "first", 2, false)
			pub.pubMsg(id, "second", 2, false)
			p := mqbDecode(t, v, r.next("PUBLISH"))
			if p.Type != mqttpkt.PUBLISH || p.QoS != 2 || string(p.Payload) != "first" {
				t.Fatalf("v%d: got %+v, want the first message at QoS 2", v, p)
			}
			r.send(mqbAck(0x50, p.PacketID))
			r.expect("PUBREL", mqbAck(0x62, p.PacketID))
			r.close()
			b.waitGone(id)
			r = b.raw(v)
			ack := mqbDecode(t, v, r.connect(mqbConnOpts{id: id, keepalive: 60, props: props}))
			if !ack.SessionPresent {
				t.Fatalf("v%d: session not present", v)
			}
			r.expect("PUBREL again", mqbAck(0x62, p.PacketID))
			if more := r.barrier(); len(more) != 0 {
				t.Errorf("v%d: % x while the only in-flight slot is taken", v, more)
			}
			r.send(mqbAck(0x70, p.PacketID))
			q := mqbDecode(t, v, r.next("the second PUBLISH"))
			if string(q.Payload) != "second" || q.QoS != 2 {
				t.Errorf("v%d: then %q QoS %d, want the second message", v, q.Payload, q.QoS)
			}
			r.send(mqbAck(0x50, q.PacketID))
			r.expect("PUBREL", mqbAck(0x62, q.PacketID))
			r.send(mqbAck(0x70, q.PacketID))
			if more := r.barrier(); len(more) != 0 {
				t.Errorf("v%d: % x after the exchanges", v, more)
			}
		}
	})
}

// TestMQTTBrokerUnsubscribe: UNSUBSCRIBE is answered by UNSUBACK (exact
// bytes; MQTT 5 with a reason code per filter: 0x00 removed, 0x11 there was
// no such subscription) and the removed subscription gets nothing more.
func TestMQTTBrokerUnsubscribe(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		b := mqbStart(e)
		pub := mqbOpen(e, b.url, meerkat.MQTTOptions{Clean: true})
		for _, v := range []byte{4, 5} {
			pre := fmt.Sprintf("un%d/", v)
			r := b.raw(v)
			r.connectOK(mqbConnOpts{id: pre, clean: true, keepalive: 60})
			r.send(mqbSubscribePkt(v, 1, nil, mqbFilter{pre + "a", 0}, mqbFilter{pre + "b", 0}))
			r.next("SUBACK")
			parts := [][]byte{mqbU16(2)}
			if v == 5 {
				parts = append(parts, []byte{0})
			}
			r.send(mqbPkt(0xA2, append(parts, mqbStr(pre+"a"), mqbStr(pre+"never"))...))
			if v == 5 {
				r.expect("UNSUBACK", []byte{0xB0, 0x05, 0x00, 0x02, 0x00, 0x00, 0x11})
			} else {
				r.expect("UNSUBACK", []byte{0xB0, 0x02, 0x00, 0x02})
			}
			pub.pubMsg(pre+"a", "unsubscribed", 1, false)
			pub.pubMsg(pre+"b", "subscribed", 1, false)
			got := r.barrier()
			if len(got) != 1 || string(mqbDecode(t, v, got[0]).Payload) != "subscribed" {
				t.Errorf("v%d: got % x, want only the message of the remaining subscription", v, got)
			}
		}
	})
}

// TestMQTTBrokerWildcards: + matches one level (an empty one too), #
// matches the parent level and everything below, and neither matches a
// topic beginning with $ at the first level (MQTT 4.7.2), which only a
// filter beginning with $ does.
func TestMQTTBrokerWildcards(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		b := mqbStart(e)
		pub := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: 5, Clean: true})
		filters := []string{"wc/+/c", "wc/#", "+/+/c", "#", "+", "$wc/#"}
		subs := map[string]*mqbCli{}
		for _, f := range filters {
			subs[f] = mqbOpen(e, b.url, meerkat.MQTTOptions{Version: 5, Clean: true})
			subs[f].subOK(meerkat.MQTTOptions{Topic: f, QoS: 1})
		}
		topics := []string{"wc", "wc/b/c", "wc//c", "wc/b/c/d", "x/y/c", "$wc/b/c", "$wc", "top",
			"wc/end/c", "end", "$wc/end"} // the last three: each subscriber's last message
		for _, tp := range topics {
			pub.pubMsg(tp, tp, 1, false)
		}
		want := map[string][]string{
			"wc/+/c": {"wc/b/c", "wc//c", "wc/end/c"},
			"wc/#":   {"wc", "wc/b/c", "wc//c", "wc/b/c/d", "wc/end/c"},
			"+/+/c":  {"wc/b/c", "wc//c", "x/y/c", "wc/end/c"},
			"#":      {"wc", "wc/b/c", "wc//c", "wc/b/c/d", "x/y/c", "top", "wc/end/c", "end"},
			"+":      {"wc", "top", "end"},
			"$wc/#":  {"$wc/b/c", "$wc", "$wc/end"},
		}
		for _, f := range filters {
			k, w := subs[f], want[f]
			e.pollUntil(5*time.Second, "the last message for "+f, func() bool { return slices.Contains(k.payloads(), w[len(w)-1]) })
			if got := k.payloads(); !slices.Equal(got, w) {
				t.Errorf("filter %q got %q, want %q", f, got, w)
			}
		}
	})
}

// TestMQTTBrokerDisconnectSessionExpiry: an MQTT 5 client whose CONNECT
// had a Session Expiry of 0 may not set a nonzero one in DISCONNECT (a
// protocol error, MQTT 5 3.14.2.2.2): its session still ends with the
// connection.
func TestMQTTBrokerDisconnectSessionExpiry(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		b := mqbStart(e)
		k := mqbOpen(e, b.url, meerkat.MQTTOptions{Version: 5, ClientID: "zero-expiry"})
		var d meerkat.MQTTOptions
		d.Props.SetSessionExpiry(60)
		k.disconnect(&d)
		b.waitGone("zero-expiry")
		if n := e.m.MQTTStats().Sessions; n != 0 {
			t.Errorf("%d sessions after the close, want 0: the DISCONNECT's expiry was taken", n)
		}
	})
}
