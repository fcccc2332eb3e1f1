package meerkat_test

// The MQTT client (issue 5), against two kinds of broker: a real Mosquitto
// that the tests start on loopback ports (plain, TLS, and one with a
// password file), for behaviour end to end; and a fake broker of the tests'
// own (mqcFake), a blocking standard-library server that reads and writes
// bytes encoded by hand, not by internal/mqttpkt, so that exact wire
// contents, timing and the handling of malformed input are proved
// independently of the codec. Every test runs on every driver; the
// Mosquitto ones where TLS matters also over mqtts://.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meerkat-net/meerkat"
	"github.com/meerkat-net/meerkat/internal/testcert"
)

// ---------------------------------------------------------------------------
// Mosquitto

// mqcMosq is a Mosquitto started by a test, with its listeners' addresses.
type mqcMosq struct {
	plain string // anonymous, plain TCP
	tls   string // anonymous, TLS with testcert.Default.Cert
	auth  string // plain TCP, user mqcUser / mqcPass only; "" without mosquitto_passwd
}

const mqcUser, mqcPass = "alice", "s3cret-pass"

// mqcMissing skips a test whose peer is not installed, except under CI
// (MEERKAT_CI, set by .ci/run which installs every peer), where it fails.
func mqcMissing(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("MEERKAT_CI") != "" {
		t.Fatal(why)
	}
	t.Skip(why)
}

// mqcMosquitto starts a Mosquitto for the test on free loopback ports, and
// stops it (by its PID) when the test ends.
func mqcMosquitto(t *testing.T) *mqcMosq {
	t.Helper()
	skipOnWine(t, wineNoLinuxPeers)
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		bin = "/usr/sbin/mosquitto"
		if _, err := os.Stat(bin); err != nil {
			mqcMissing(t, "mosquitto is not installed (apt mosquitto)")
		}
	}
	dir := t.TempDir()
	certPEM, keyPEM := testcert.PEM(testcert.Default.Cert)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	pwFile := ""
	if pw, err := exec.LookPath("mosquitto_passwd"); err == nil {
		pwFile = filepath.Join(dir, "passwd")
		if out, err := exec.Command(pw, "-c", "-b", pwFile, mqcUser, mqcPass).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
		}
	}
	for attempt := 1; ; attempt++ {
		ports := mqcFreePorts(t, 3)
		var conf strings.Builder
		if os.Geteuid() == 0 {
			conf.WriteString("user root\n") // else it drops to user mosquitto, who cannot read dir
		}
		fmt.Fprintf(&conf, "per_listener_settings true\npersistence false\nlog_dest stdout\n"+
			"log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"+
			"listener %d 127.0.0.1\nallow_anonymous true\n"+
			"listener %d 127.0.0.1\nallow_anonymous true\ncertfile %s\nkeyfile %s\n",
			ports[0], ports[1], certFile, keyFile)
		b := &mqcMosq{plain: fmt.Sprintf("127.0.0.1:%d", ports[0]), tls: fmt.Sprintf("127.0.0.1:%d", ports[1])}
		addrs := []string{b.plain, b.tls}
		if pwFile != "" {
			fmt.Fprintf(&conf, "listener %d 127.0.0.1\nallow_anonymous false\npassword_file %s\n", ports[2], pwFile)
			b.auth = fmt.Sprintf("127.0.0.1:%d", ports[2])
			addrs = append(addrs, b.auth)
		}
		confFile := filepath.Join(dir, "mosquitto.conf")
		if err := os.WriteFile(confFile, []byte(conf.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		log, ok := mqcStartMosquitto(t, bin, confFile, addrs)
		if ok {
			return b
		}
		if attempt == 3 {
			t.Fatalf("mosquitto did not start:\n%s", log)
		}
	}
}

// mqcFreePorts returns n loopback ports that were free a moment ago.
func mqcFreePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// mqcLog is a bounded, concurrency-safe log of a peer's output.
type mqcLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *mqcLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Len() < 1<<20 {
		l.buf.Write(p)
	}
	return len(p), nil
}

func (l *mqcLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// mqcStartMosquitto runs Mosquitto with conf and waits until every address
// accepts; false (and its log) if it exited first, as when a port was taken
// in the meantime.
func mqcStartMosquitto(t *testing.T, bin, conf string, addrs []string) (string, bool) {
	t.Helper()
	lg := &mqcLog{}
	cmd := exec.Command(bin, "-c", conf)
	cmd.Stdout, cmd.Stderr = lg, lg
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mosquitto: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		cmd.Process.Kill()
		<-exited
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, a := range addrs {
		for {
			select {
			case <-exited:
				return lg.String(), false
			default:
			}
			if nc, err := net.DialTimeout("tcp", a, time.Second); err == nil {
				nc.Close()
				break
			}
			if time.Now().After(deadline) {
				stop()
				t.Fatalf("mosquitto not listening on %s after 10 s:\n%s", a, lg)
			}
			// Another process is starting: there is no Manager to poll.
			time.Sleep(10 * time.Millisecond)
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("mosquitto's log:\n%s", lg)
		}
	})
	return "", true
}

// url is the broker's mqtt:// URL, or mqtts:// for a TLS env.
func (b *mqcMosq) url(e *env) string {
	if e.useTLS {
		return "mqtts://" + b.tls
	}
	return "mqtt://" + b.plain
}

// mqcForEach runs fn per driver (and plain/TLS when withTLS) and protocol
// version, each with its own env; TLS envs trust the test CA as clients.
func mqcForEach(t *testing.T, withTLS bool, fn func(t *testing.T, e *env, v byte)) {
	run := func(t *testing.T, drv string, useTLS bool) {
		for _, v := range []byte{4, 5} {
			t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
				e := newEnv(t, drv, useTLS)
				if useTLS {
					e.m.TLSConfig = testcert.ClientConfig()
				}
				fn(t, e, v)
			})
		}
	}
	if withTLS {
		forEachDriverTLS(t, run)
		return
	}
	forEachDriver(t, func(t *testing.T, drv string) { run(t, drv, false) })
}

var mqcSeq atomic.Int64

// mqcTopic is a topic prefix no other test uses.
func mqcTopic() string { return fmt.Sprintf("mqc/%d", mqcSeq.Add(1)) }

// mqcPayload is n bytes of a pattern that depends on seed.
func mqcPayload(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

// ---------------------------------------------------------------------------
// A client that records what it is told

// mqcMsg is a copy of an EvMQTTMsg.
type mqcMsg struct {
	topic       string
	data        []byte
	id          uint16
	qos         byte
	retain, dup bool
	props       string // mqcPropsText without the expiry, which brokers count down
	expiry      uint32
	hasExpiry   bool
	noProps     bool
}

// mqcCmd is a copy of an EvMQTTCmd.
type mqcCmd struct {
	cmd          byte
	id           uint16
	reason       byte
	codes        []byte
	sp           bool
	dup          bool
	reasonString string
}

// mqcClient records an MQTT client connection's events.
type mqcClient struct {
	c      *meerkat.Conn
	opens  []int
	cmds   []mqcCmd
	msgs   []mqcMsg
	errs   []error
	closed bool
	on     func(cl *mqcClient, ev meerkat.Event, data any) // the test's reactions, after recording
}

// mqcConnect starts a client with opts; on (may be nil) sees every event.
func mqcConnect(e *env, url string, opts *meerkat.MQTTOptions, on func(*mqcClient, meerkat.Event, any)) *mqcClient {
	e.t.Helper()
	cl := &mqcClient{on: on}
	c, err := e.m.MQTTConnect(url, opts, e.chk.wrap(cl.handle))
	if err != nil {
		e.t.Fatalf("MQTTConnect(%s): %v", url, err)
	}
	cl.c = c
	return cl
}

func (cl *mqcClient) handle(c *meerkat.Conn, ev meerkat.Event, data any) {
	if cl.c == nil {
		cl.c = c
	}
	switch ev {
	case meerkat.EvMQTTOpen:
		cl.opens = append(cl.opens, data.(int))
	case meerkat.EvMQTTCmd:
		m := data.(*meerkat.MQTTMessage)
		x := mqcCmd{cmd: m.Cmd, id: m.ID, reason: m.ReasonCode, dup: m.Dup}
		if m.Packet != nil {
			x.codes = slices.Clone(m.Packet.ReasonCodes)
			x.sp = m.Packet.SessionPresent
		}
		if m.Props != nil {
			x.reasonString = string(m.Props.ReasonString)
		}
		cl.cmds = append(cl.cmds, x)
	case meerkat.EvMQTTMsg:
		m := data.(*meerkat.MQTTMessage)
		x := mqcMsg{topic: string(m.Topic), data: bytes.Clone(m.Data), id: m.ID, qos: m.QoS, retain: m.Retain, dup: m.Dup}
		if m.Props != nil {
			x.props = mqcPropsOf(m.Props)
			x.expiry, x.hasExpiry = m.Props.MessageExpiry()
			x.noProps = m.Props.Empty()
		}
		cl.msgs = append(cl.msgs, x)
	case meerkat.EvError:
		err, _ := data.(error)
		cl.errs = append(cl.errs, err)
	case meerkat.EvClose:
		cl.closed = true
	}
	if cl.on != nil {
		cl.on(cl, ev, data)
	}
}

// waitOpen polls until the CONNACK accepted the connection.
func (cl *mqcClient) waitOpen(e *env) {
	e.t.Helper()
	e.pollUntil(10*time.Second, "EvMQTTOpen", func() bool { return len(cl.opens) > 0 || cl.closed })
	if len(cl.opens) == 0 || cl.opens[0] != 0 {
		e.t.Fatalf("not opened: EvMQTTOpen %v, errors %v, closed %v", cl.opens, cl.errs, cl.closed)
	}
}

// waitClosed polls until EvClose.
func (cl *mqcClient) waitClosed(e *env) {
	e.t.Helper()
	e.pollUntil(10*time.Second, "EvClose", func() bool { return cl.closed })
}

// cmd returns the first EvMQTTCmd of type cmd with packet ID id.
func (cl *mqcClient) cmd(cmd byte, id uint16) (mqcCmd, bool) {
	for _, x := range cl.cmds {
		if x.cmd == cmd && x.id == id {
			return x, true
		}
	}
	return mqcCmd{}, false
}

// waitCmd polls until an EvMQTTCmd of type cmd with packet ID id came.
func (cl *mqcClient) waitCmd(e *env, cmd byte, id uint16, what string) mqcCmd {
	e.t.Helper()
	e.pollUntil(10*time.Second, what, func() bool {
		_, ok := cl.cmd(cmd, id)
		if !ok && cl.closed {
			e.t.Fatalf("closed while waiting for %s; errors %v", what, cl.errs)
		}
		return ok
	})
	x, _ := cl.cmd(cmd, id)
	return x
}

// count is the number of EvMQTTCmd of type cmd.
func (cl *mqcClient) count(cmd byte) int {
	n := 0
	for _, x := range cl.cmds {
		if x.cmd == cmd {
			n++
		}
	}
	return n
}

// waitMsgs polls until n messages came.
func (cl *mqcClient) waitMsgs(e *env, n int, what string) {
	e.t.Helper()
	e.pollUntil(10*time.Second, what, func() bool {
		if len(cl.msgs) < n && cl.closed {
			e.t.Fatalf("closed while waiting for %s; errors %v", what, cl.errs)
		}
		return len(cl.msgs) >= n
	})
}

// datas lists the payloads received, as strings.
func (cl *mqcClient) datas() []string {
	var s []string
	for _, m := range cl.msgs {
		s = append(s, string(m.data))
	}
	return s
}

// mqcPropsOf is the text of a message's properties, as mqcPropsText
// writes them, except the Message Expiry Interval.
func mqcPropsOf(p *meerkat.MQTTProperties) string {
	var s []string
	if v, ok := p.PayloadFormat(); ok {
		s = append(s, fmt.Sprintf("format=%d", v))
	}
	if p.ContentType != nil {
		s = append(s, "ctype="+string(p.ContentType))
	}
	if p.ResponseTopic != nil {
		s = append(s, "resp="+string(p.ResponseTopic))
	}
	if p.CorrelationData != nil {
		s = append(s, "corr="+hex.EncodeToString(p.CorrelationData))
	}
	for _, id := range p.SubscriptionIDs {
		s = append(s, fmt.Sprintf("subid=%d", id))
	}
	for _, u := range p.User {
		s = append(s, "user="+string(u.Key)+":"+string(u.Value))
	}
	return strings.Join(s, " ")
}

// ---------------------------------------------------------------------------
// The fake broker

// mqcFake is a blocking TCP server whose connections (mqcPeer) record the
// client's packets in a goroutine each, and write what the test says.
type mqcFake struct {
	ln    net.Listener
	addr  string
	ch    chan net.Conn
	wg    sync.WaitGroup
	mu    sync.Mutex
	peers []*mqcPeer
	once  sync.Once
}

func mqcListenFake(t testing.TB) *mqcFake {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &mqcFake{ln: ln, addr: ln.Addr().String(), ch: make(chan net.Conn, 16)}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case f.ch <- nc:
			default:
				nc.Close()
			}
		}
	}()
	t.Cleanup(f.close)
	return f
}

func (f *mqcFake) url() string { return "mqtt://" + f.addr }

// close stops the listener and every connection, and waits for their
// goroutines.
func (f *mqcFake) close() {
	f.once.Do(func() {
		f.ln.Close()
		f.wg.Wait()
		for drained := false; !drained; {
			select {
			case nc := <-f.ch:
				nc.Close()
			default:
				drained = true
			}
		}
		f.mu.Lock()
		peers := f.peers
		f.mu.Unlock()
		for _, p := range peers {
			p.nc.Close()
			<-p.done
		}
	})
}

// accept polls until the fake accepted the next connection.
func (f *mqcFake) accept(e *env) *mqcPeer {
	e.t.Helper()
	var nc net.Conn
	e.pollUntil(10*time.Second, "the fake broker's accept", func() bool {
		select {
		case nc = <-f.ch:
			return true
		default:
			return false
		}
	})
	p := &mqcPeer{t: e.t, nc: nc, done: make(chan struct{})}
	f.mu.Lock()
	f.peers = append(f.peers, p)
	f.mu.Unlock()
	go p.readLoop()
	return p
}

// mqcPkt is a packet the client sent.
type mqcPkt struct {
	typ, flags byte
	body       []byte
	at         time.Time // when the fake had read all of it
}

func (p mqcPkt) String() string {
	return fmt.Sprintf("type %d flags %#x body % x", p.typ, p.flags, p.body)
}

// mqcPeer is one connection of the fake broker.
type mqcPeer struct {
	t    testing.TB
	nc   net.Conn
	done chan struct{}
	mu   sync.Mutex
	pkts []mqcPkt
	rerr error // why reading ended
	next int   // the test's cursor in pkts
}

// readLoop records the client's packets until the connection ends, then
// closes it as a broker would.
func (p *mqcPeer) readLoop() {
	defer close(p.done)
	br := bufio.NewReader(p.nc)
	for {
		pkt, err := mqcReadPacket(br)
		p.mu.Lock()
		if err != nil {
			p.rerr = err
			p.mu.Unlock()
			p.nc.Close()
			return
		}
		p.pkts = append(p.pkts, pkt)
		p.mu.Unlock()
	}
}

// mqcReadPacket reads one packet: the fixed header's byte, the remaining
// length (at most 4 bytes) and the body. A clean EOF is io.EOF.
func mqcReadPacket(br *bufio.Reader) (mqcPkt, error) {
	b0, err := br.ReadByte()
	if err != nil {
		return mqcPkt{}, err
	}
	n, mul := 0, 1
	for i := 0; ; i++ {
		if i == 4 {
			return mqcPkt{}, errors.New("remaining length over 4 bytes")
		}
		b, err := br.ReadByte()
		if err != nil {
			return mqcPkt{}, io.ErrUnexpectedEOF
		}
		n += int(b&0x7f) * mul
		mul *= 128
		if b&0x80 == 0 {
			break
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return mqcPkt{}, io.ErrUnexpectedEOF
	}
	return mqcPkt{typ: b0 >> 4, flags: b0 & 15, body: body, at: time.Now()}, nil
}

// take returns the packets not yet looked at, without waiting.
func (p *mqcPeer) take() []mqcPkt {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := slices.Clone(p.pkts[p.next:])
	p.next = len(p.pkts)
	return s
}

// nextPkt polls until the client's next packet; the test fails if the
// connection ends first.
func (p *mqcPeer) nextPkt(e *env, what string) mqcPkt {
	e.t.Helper()
	var pkt mqcPkt
	var ended error
	e.pollUntil(10*time.Second, what, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.next < len(p.pkts) {
			pkt = p.pkts[p.next]
			p.next++
			return true
		}
		ended = p.rerr
		return ended != nil
	})
	if ended != nil {
		e.t.Fatalf("waiting for %s: the client's connection ended (%v)", what, ended)
	}
	return pkt
}

// expect is nextPkt checking the packet's type and flags.
func (p *mqcPeer) expect(e *env, typ, flags byte, what string) mqcPkt {
	e.t.Helper()
	pkt := p.nextPkt(e, what)
	if pkt.typ != typ || pkt.flags != flags {
		e.t.Fatalf("%s: got %v, want type %d flags %#x", what, pkt, typ, flags)
	}
	return pkt
}

// waitEnd polls until the client's connection ended, and returns the
// packets not looked at yet and why reading ended.
func (p *mqcPeer) waitEnd(e *env, what string) ([]mqcPkt, error) {
	e.t.Helper()
	e.pollUntil(10*time.Second, what, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.rerr != nil
	})
	p.mu.Lock()
	err := p.rerr
	p.mu.Unlock()
	return p.take(), err
}

// send writes bytes to the client.
func (p *mqcPeer) send(b ...[]byte) {
	p.t.Helper()
	p.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := p.nc.Write(bytes.Join(b, nil)); err != nil {
		p.t.Fatalf("fake broker write: %v", err)
	}
}

// ---------------------------------------------------------------------------
// Bytes by hand: what the fake broker sends

const (
	mqcPUBACK   = 0x40
	mqcPUBREC   = 0x50
	mqcPUBREL   = 0x62
	mqcPUBCOMP  = 0x70
	mqcPINGRESP = 0xd0
)

func mqcVarint(n int) []byte {
	var b []byte
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

// mqcPacket is a packet: first byte, remaining length, the parts.
func mqcPacket(first byte, parts ...[]byte) []byte {
	body := bytes.Join(parts, nil)
	return append(append([]byte{first}, mqcVarint(len(body))...), body...)
}

func mqcStr(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
func mqcU16(v uint16) []byte { return []byte{byte(v >> 8), byte(v)} }

// mqcProps is an MQTT 5 property block: its length, then the properties.
func mqcProps(props ...[]byte) []byte {
	body := bytes.Join(props, nil)
	return append(mqcVarint(len(body)), body...)
}

// mqcConnAck is a CONNACK (MQTT 5 with props).
func mqcConnAck(v5, sessionPresent bool, code byte, props ...[]byte) []byte {
	sp := byte(0)
	if sessionPresent {
		sp = 1
	}
	if !v5 {
		return mqcPacket(0x20, []byte{sp, code})
	}
	return mqcPacket(0x20, []byte{sp, code}, mqcProps(props...))
}

// mqcPublish is a PUBLISH (MQTT 5 with props).
func mqcPublish(v5 bool, qos byte, dup, retain bool, topic string, id uint16, payload string, props ...[]byte) []byte {
	first := 0x30 | qos<<1
	if dup {
		first |= 8
	}
	if retain {
		first |= 1
	}
	parts := [][]byte{mqcStr(topic)}
	if qos > 0 {
		parts = append(parts, mqcU16(id))
	}
	if v5 {
		parts = append(parts, mqcProps(props...))
	}
	return mqcPacket(first, append(parts, []byte(payload))...)
}

// mqcAck is a PUBACK, PUBREC, PUBREL or PUBCOMP (first byte) for id, in
// the short form both versions accept.
func mqcAck(first byte, id uint16) []byte { return mqcPacket(first, mqcU16(id)) }

// ---------------------------------------------------------------------------
// Bytes by hand: reading what the client sent

type mqcReader struct {
	b   []byte
	i   int
	bad string
}

func (r *mqcReader) need(n int, what string) bool {
	if r.bad != "" {
		return false
	}
	if len(r.b)-r.i < n {
		r.bad = "short " + what
		return false
	}
	return true
}

func (r *mqcReader) u8() byte {
	if !r.need(1, "byte") {
		return 0
	}
	r.i++
	return r.b[r.i-1]
}

func (r *mqcReader) u16() uint16 {
	if !r.need(2, "uint16") {
		return 0
	}
	r.i += 2
	return uint16(r.b[r.i-2])<<8 | uint16(r.b[r.i-1])
}

func (r *mqcReader) u32() uint32 {
	return uint32(r.u16())<<16 | uint32(r.u16())
}

func (r *mqcReader) varint() int {
	n, mul := 0, 1
	for i := 0; i < 4; i++ {
		b := r.u8()
		n += int(b&0x7f) * mul
		mul *= 128
		if b&0x80 == 0 {
			return n
		}
	}
	if r.bad == "" {
		r.bad = "varint over 4 bytes"
	}
	return 0
}

func (r *mqcReader) bytes(n int) []byte {
	if !r.need(n, "data") {
		return nil
	}
	r.i += n
	return r.b[r.i-n : r.i]
}

func (r *mqcReader) str() string { return string(r.bytes(int(r.u16()))) }

// mqcPropInfo names the MQTT 5 properties and says how each is encoded:
// b byte, h two bytes, i four bytes, v variable byte integer, s string,
// x binary (written in hex), p string pair.
var mqcPropInfo = map[byte]struct {
	name string
	kind byte
}{
	0x01: {"format", 'b'}, 0x02: {"expiry", 'i'}, 0x03: {"ctype", 's'}, 0x08: {"resp", 's'},
	0x09: {"corr", 'x'}, 0x0B: {"subid", 'v'}, 0x11: {"sessexp", 'i'}, 0x12: {"assigned", 's'},
	0x13: {"srvka", 'h'}, 0x15: {"authm", 's'}, 0x16: {"authd", 'x'}, 0x17: {"reqprob", 'b'},
	0x18: {"willdelay", 'i'}, 0x19: {"reqresp", 'b'}, 0x1A: {"respinfo", 's'}, 0x1C: {"srvref", 's'},
	0x1F: {"reason", 's'}, 0x21: {"recvmax", 'h'}, 0x22: {"aliasmax", 'h'}, 0x23: {"alias", 'h'},
	0x24: {"maxqos", 'b'}, 0x25: {"retain", 'b'}, 0x26: {"user", 'p'}, 0x27: {"maxpkt", 'i'},
	0x28: {"wildcard", 'b'}, 0x29: {"subidavail", 'b'}, 0x2A: {"shared", 'b'},
}

// props reads an MQTT 5 property block and writes it as text: "name=value"
// in the order of the identifiers (User Properties in their wire order).
func (r *mqcReader) props() string {
	n := r.varint()
	block := &mqcReader{b: r.bytes(n)}
	if r.bad != "" {
		return ""
	}
	type prop struct {
		id   byte
		text string
	}
	var ps []prop
	for block.i < len(block.b) && block.bad == "" {
		id := byte(block.varint())
		info, ok := mqcPropInfo[id]
		if !ok {
			r.bad = fmt.Sprintf("unknown property %#x", id)
			return ""
		}
		var v string
		switch info.kind {
		case 'b':
			v = fmt.Sprint(block.u8())
		case 'h':
			v = fmt.Sprint(block.u16())
		case 'i':
			v = fmt.Sprint(block.u32())
		case 'v':
			v = fmt.Sprint(block.varint())
		case 's':
			v = block.str()
		case 'x':
			v = hex.EncodeToString(block.bytes(int(block.u16())))
		case 'p':
			k := block.str()
			v = k + ":" + block.str()
		}
		ps = append(ps, prop{id, info.name + "=" + v})
	}
	if block.bad != "" {
		r.bad = "properties: " + block.bad
		return ""
	}
	slices.SortStableFunc(ps, func(a, b prop) int { return int(a.id) - int(b.id) })
	var s []string
	for _, p := range ps {
		s = append(s, p.text)
	}
	return strings.Join(s, " ")
}

// mqcConnectPkt is a CONNECT as read from the wire.
type mqcConnectPkt struct {
	proto       string
	level       byte
	flags       byte
	keepalive   uint16
	props       string
	clientID    string
	willProps   string
	willTopic   string
	willPayload string
	user, pass  string
}

func mqcParseConnect(t testing.TB, pkt mqcPkt) mqcConnectPkt {
	t.Helper()
	if pkt.typ != 1 || pkt.flags != 0 {
		t.Fatalf("not a CONNECT: %v", pkt)
	}
	r := &mqcReader{b: pkt.body}
	var c mqcConnectPkt
	c.proto = r.str()
	c.level = r.u8()
	c.flags = r.u8()
	c.keepalive = r.u16()
	v5 := c.level == 5
	if v5 {
		c.props = r.props()
	}
	c.clientID = r.str()
	if c.flags&0x04 != 0 {
		if v5 {
			c.willProps = r.props()
		}
		c.willTopic = r.str()
		c.willPayload = r.str()
	}
	if c.flags&0x80 != 0 {
		c.user = r.str()
	}
	if c.flags&0x40 != 0 {
		c.pass = r.str()
	}
	if r.bad != "" || r.i != len(r.b) {
		t.Fatalf("CONNECT %v: %s, %d of %d bytes read", pkt, r.bad, r.i, len(r.b))
	}
	return c
}

// mqcPub is a PUBLISH as read from the wire.
type mqcPub struct {
	topic       string
	id          uint16
	qos         byte
	dup, retain bool
	props       string
	payload     []byte
}

func mqcParsePublish(t testing.TB, pkt mqcPkt, v5 bool) mqcPub {
	t.Helper()
	if pkt.typ != 3 {
		t.Fatalf("not a PUBLISH: %v", pkt)
	}
	r := &mqcReader{b: pkt.body}
	p := mqcPub{qos: pkt.flags >> 1 & 3, dup: pkt.flags&8 != 0, retain: pkt.flags&1 != 0}
	p.topic = r.str()
	if p.qos > 0 {
		p.id = r.u16()
	}
	if v5 {
		p.props = r.props()
	}
	if r.bad != "" {
		t.Fatalf("PUBLISH %v: %s", pkt, r.bad)
	}
	p.payload = r.b[r.i:]
	return p
}

// mqcAckID is the packet ID of an acknowledgement (and checks that what
// follows it is a well-formed MQTT 5 reason code and property block).
func mqcAckID(t testing.TB, pkt mqcPkt) (uint16, byte) {
	t.Helper()
	r := &mqcReader{b: pkt.body}
	id := r.u16()
	var rc byte
	if len(pkt.body) > 2 {
		rc = r.u8()
	}
	if len(pkt.body) > 3 {
		r.props()
	}
	if r.bad != "" || r.i != len(r.b) || id == 0 {
		t.Fatalf("acknowledgement %v: %s", pkt, r.bad)
	}
	return id, rc
}

// mqcDisconnectCode is a DISCONNECT's reason code (0 when omitted).
func mqcDisconnectCode(t testing.TB, pkt mqcPkt) byte {
	t.Helper()
	if pkt.typ != 14 || pkt.flags != 0 {
		t.Fatalf("not a DISCONNECT: %v", pkt)
	}
	if len(pkt.body) == 0 {
		return 0
	}
	r := &mqcReader{b: pkt.body}
	rc := r.u8()
	if len(pkt.body) > 1 {
		r.props()
	}
	if r.bad != "" || r.i != len(r.b) {
		t.Fatalf("DISCONNECT %v: %s", pkt, r.bad)
	}
	return rc
}

// mqcOpen connects a client to the fake broker, reads its CONNECT,
// answers with connack (which must accept) and polls until EvMQTTOpen.
func mqcOpen(e *env, f *mqcFake, opts *meerkat.MQTTOptions, connack []byte, on func(*mqcClient, meerkat.Event, any)) (*mqcClient, *mqcPeer, mqcConnectPkt) {
	e.t.Helper()
	cl := mqcConnect(e, f.url(), opts, on)
	p := f.accept(e)
	con := mqcParseConnect(e.t, p.nextPkt(e, "CONNECT"))
	p.send(connack)
	cl.waitOpen(e)
	return cl, p, con
}

// ---------------------------------------------------------------------------
// CONNECT and CONNACK

// TestMQTTConnectErrors proves that MQTTConnect refuses at once, creating
// no connection and calling no handler, a URL that is not mqtt:// or
// mqtts://, a protocol version other than 4 and 5, a keepalive over 65535
// s, and will or identity options that would make a CONNECT the codec
// refuses (a will topic with a wildcard or U+0000, will QoS 3, a 3.1.1
// password without user name, a client ID that is not UTF-8).
func TestMQTTConnectErrors(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		called := 0
		for _, tc := range []struct {
			name, url string
			opts      *meerkat.MQTTOptions
		}{
			{"http scheme", "http://127.0.0.1:1883", nil},
			{"tcp scheme", "tcp://127.0.0.1:1883", nil},
			{"https scheme", "https://127.0.0.1:8883", nil},
			{"not a URL", "mqtt://[::1", nil},
			{"version 3", "mqtt://127.0.0.1:1883", &meerkat.MQTTOptions{Version: 3}},
			{"version 6", "mqtt://127.0.0.1:1883", &meerkat.MQTTOptions{Version: 6}},
			{"keepalive over 65535 s", "mqtt://127.0.0.1:1883", &meerkat.MQTTOptions{Keepalive: 65536 * time.Second}},
			{"will topic with +", "mqtt://127.0.0.1:1883", &meerkat.MQTTOptions{Topic: "a/+/c", Message: []byte("x")}},
			{"will topic with #", "mqtt://127.0.0.1:1883", &meerkat.MQTTOptions{Version: 5, Topic: "a/#", Message: []byte("x")}},
			{"will topic with U+0000", "mqtt://127.0.0.1:1883", &meerkat.MQTTOptions{Topic: "a\x00b"}},
			{"will QoS 3", "mqtt://127.0.0.1:1883", &meerkat.MQTTOptions{Topic: "a", QoS: 3}},
			{"3.1.1 password without user", "mqtt://127.0.0.1:1883", &meerkat.MQTTOptions{Pass: "x"}},
			{"client ID not UTF-8", "mqtt://127.0.0.1:1883", &meerkat.MQTTOptions{ClientID: "a\xffb"}},
		} {
			c, err := e.m.MQTTConnect(tc.url, tc.opts, e.chk.wrap(func(*meerkat.Conn, meerkat.Event, any) { called++ }))
			if err == nil || c != nil {
				t.Errorf("%s: MQTTConnect(%q, %+v) = %v, %v; want an error and no connection", tc.name, tc.url, tc.opts, c, err)
			}
		}
		e.m.Poll(0)
		e.m.Poll(0)
		for c := range e.m.Conns() {
			t.Errorf("connection %v exists", c)
		}
		if called != 0 {
			t.Errorf("a refused MQTTConnect's handler was called %d times", called)
		}
	})
}

// TestMQTTConnectPacket proves the CONNECT on the wire, read by hand, for
// both versions: "MQTT" and the level, a generated client ID
// ("meerkat-" and 16 hex digits, another per connection) when none is
// given, the clean flag, the keepalive (60 s by default, whole seconds,
// 0 for none), user name and password flags and fields, the will flag with
// its QoS and retain bits, topic and payload, and in MQTT 5 the CONNECT and
// will properties exactly as given; and that 3.1.1 sends no properties.
func TestMQTTConnectPacket(t *testing.T) {
	mqcForEach(t, false, func(t *testing.T, e *env, v byte) {
		v5 := v == 5
		f := mqcListenFake(t)
		connect := func(opts *meerkat.MQTTOptions) (mqcConnectPkt, *mqcClient) {
			t.Helper()
			cl := mqcConnect(e, f.url(), opts, nil)
			p := f.accept(e)
			con := mqcParseConnect(t, p.nextPkt(e, "CONNECT"))
			if con.proto != "MQTT" || con.level != v {
				t.Errorf("protocol %q level %d, want MQTT %d", con.proto, con.level, v)
			}
			if con.flags&1 != 0 {
				t.Errorf("reserved flag set: %#x", con.flags)
			}
			p.send(mqcConnAck(v5, false, 0))
			cl.waitOpen(e)
			meerkat.MQTTDisconnect(cl.c, nil)
			if d := p.expect(e, 14, 0, "DISCONNECT"); mqcDisconnectCode(t, d) != 0 {
				t.Errorf("MQTTDisconnect(nil) sent reason %#x", d.body[0])
			}
			if rest, err := p.waitEnd(e, "the client's close"); len(rest) != 0 || err != io.EOF {
				t.Errorf("after DISCONNECT: packets %v, end %v; want a clean EOF", rest, err)
			}
			cl.waitClosed(e)
			if len(cl.errs) != 0 {
				t.Errorf("errors %v", cl.errs)
			}
			return con, cl
		}

		// Defaults: a generated ID, keepalive 60 s, nothing optional.
		idRE := regexp.MustCompile(`^meerkat-[0-9a-f]{16}$`)
		c1, _ := connect(&meerkat.MQTTOptions{Version: v})
		c2, _ := connect(&meerkat.MQTTOptions{Version: v})
		if !idRE.MatchString(c1.clientID) || !idRE.MatchString(c2.clientID) || c1.clientID == c2.clientID {
			t.Errorf("generated client IDs %q, %q", c1.clientID, c2.clientID)
		}
		if c1.flags != 0 || c1.keepalive != 60 || c1.props != "" {
			t.Errorf("defaults: flags %#x keepalive %d props %q; want 0, 60, none", c1.flags, c1.keepalive, c1.props)
		}

		// Clean, whole-second keepalive, credentials.
		c, _ := connect(&meerkat.MQTTOptions{Version: v, ClientID: "mqc-id", Clean: true, Keepalive: 1500 * time.Millisecond, User: "alice", Pass: "pa\x00ss"})
		if c.clientID != "mqc-id" || c.flags != 0xC2 || c.keepalive != 1 || c.user != "alice" || c.pass != "pa\x00ss" {
			t.Errorf("clean+credentials: %+v; want ID mqc-id, flags 0xc2, keepalive 1, alice/pa\\0ss", c)
		}
		c, _ = connect(&meerkat.MQTTOptions{Version: v, Keepalive: -1, User: "bob"})
		if c.flags != 0x80 || c.keepalive != 0 || c.user != "bob" {
			t.Errorf("user only, no keepalive: flags %#x keepalive %d user %q; want 0x80, 0, bob", c.flags, c.keepalive, c.user)
		}
		if v5 { // a password alone is allowed in MQTT 5
			c, _ = connect(&meerkat.MQTTOptions{Version: v, Pass: "only"})
			if c.flags != 0x40 || c.pass != "only" {
				t.Errorf("password only: flags %#x pass %q", c.flags, c.pass)
			}
		}

		// The will, with MQTT 5 will and CONNECT properties.
		o := &meerkat.MQTTOptions{Version: v, Topic: "mqc/will", Message: []byte("gone\x00away"), QoS: 2, Retain: true}
		o.WillProps.SetWillDelay(5)
		o.WillProps.SetMessageExpiry(60)
		o.WillProps.SetPayloadFormat(1)
		o.WillProps.ContentType = []byte("text/plain")
		o.WillProps.ResponseTopic = []byte("mqc/resp")
		o.WillProps.CorrelationData = []byte{0, 1, 0xfe}
		o.WillProps.User = []meerkat.MQTTUserProperty{{Key: []byte("k"), Value: []byte("v1")}, {Key: []byte("k"), Value: []byte("v2")}}
		o.Props.SetSessionExpiry(120)
		o.Props.SetReceiveMaximum(10)
		o.Props.User = []meerkat.MQTTUserProperty{{Key: []byte("a"), Value: []byte("b")}}
		c, _ = connect(o)
		if c.flags != 0x34 || c.willTopic != "mqc/will" || c.willPayload != "gone\x00away" {
			t.Errorf("will: flags %#x topic %q payload %q; want 0x34 (will, QoS 2, retain)", c.flags, c.willTopic, c.willPayload)
		}
		wantWill, wantProps := "", ""
		if v5 {
			wantWill = "format=1 expiry=60 ctype=text/plain resp=mqc/resp corr=0001fe willdelay=5 user=k:v1 user=k:v2"
			wantProps = "sessexp=120 recvmax=10 user=a:b"
		}
		if c.willProps != wantWill || c.props != wantProps {
			t.Errorf("properties: will %q, connect %q; want %q, %q", c.willProps, c.props, wantWill, wantProps)
		}
		c, _ = connect(&meerkat.MQTTOptions{Version: v, Topic: "mqc/w1", QoS: 1})
		if c.flags != 0x0C || c.willPayload != "" {
			t.Errorf("will QoS 1, empty: flags %#x payload %q; want 0x0c", c.flags, c.willPayload)
		}
	})
}

// TestMQTTConnectNilOptions proves MQTTConnect's documented defaults for
// nil options: MQTT 3.1.1, a generated client ID and a clean session (a
// random ID's session could never be resumed, so keeping it would only
// burden the broker).
func TestMQTTConnectNilOptions(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		f := mqcListenFake(t)
		cl := mqcConnect(e, f.url(), nil, nil)
		p := f.accept(e)
		con := mqcParseConnect(t, p.nextPkt(e, "CONNECT"))
		if con.level != 4 || !strings.HasPrefix(con.clientID, "meerkat-") || con.keepalive != 60 {
			t.Errorf("nil options: level %d, client ID %q, keepalive %d", con.level, con.clientID, con.keepalive)
		}
		if con.flags&0x02 == 0 {
		}
		cl.c.Close()
	})
}

// TestMQTTConnAckRefused proves that a CONNACK refusing the connection —
// each 3.1.1 return code, and MQTT 5 reason codes — is EvMQTTCmd, then
// EvMQTTOpen with the code as on the wire, then EvError matching
// ErrMQTTRefused with that code, then EvClose, and that the client sends
// nothing more.
func TestMQTTConnAckRefused(t *testing.T) {
	mqcForEach(t, false, func(t *testing.T, e *env, v byte) {
		v5 := v == 5
		f := mqcListenFake(t)
		codes := []byte{1, 2, 3, 4, 5}
		if v5 {
			codes = []byte{0x80, 0x81, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x9C, 0x9F}
		}
		for _, code := range codes {
			cl := mqcConnect(e, f.url(), &meerkat.MQTTOptions{Version: v}, nil)
			p := f.accept(e)
			p.expect(e, 1, 0, "CONNECT")
			p.send(mqcConnAck(v5, false, code))
			cl.waitClosed(e)
			var me *meerkat.MQTTError
			if len(cl.errs) != 1 || !errors.Is(cl.errs[0], meerkat.ErrMQTTRefused) || !errors.As(cl.errs[0], &me) || me.Code != code {
				t.Errorf("code %#x: errors %v; want one ErrMQTTRefused with that code", code, cl.errs)
			}
			if !slices.Equal(cl.opens, []int{int(code)}) {
				t.Errorf("code %#x: EvMQTTOpen %v", code, cl.opens)
			}
			ev := e.chk.events(cl.c)
			want := []meerkat.Event{meerkat.EvMQTTCmd, meerkat.EvMQTTOpen, meerkat.EvError, meerkat.EvClose}
			if len(ev) < 4 || !slices.Equal(ev[len(ev)-4:], want) {
				t.Errorf("code %#x: events %v; want them to end with %v", code, summarize(ev), want)
			}
			if len(cl.cmds) != 1 || cl.cmds[0].cmd != meerkat.MQTTCmdConnAck || cl.cmds[0].reason != code && v5 {
				t.Errorf("code %#x: EvMQTTCmd %+v", code, cl.cmds)
			}
			if rest, _ := p.waitEnd(e, "the refused client's close"); len(rest) != 0 {
				t.Errorf("code %#x: the client sent %v after the refusal", code, rest)
			}
		}
	})
}

// TestMQTTAuthMosquitto proves user name and password against Mosquitto's
// password file: the right ones open the connection (code 0), a wrong
// password and none at all are refused with the broker's code (3.1.1:
// 4 or 5; MQTT 5: 0x86 or 0x87) as EvMQTTOpen and ErrMQTTRefused.
func TestMQTTAuthMosquitto(t *testing.T) {
	b := mqcMosquitto(t)
	if b.auth == "" {
		mqcMissing(t, "mosquitto_passwd is not installed (apt mosquitto)")
	}
	mqcForEach(t, false, func(t *testing.T, e *env, v byte) {
		url := "mqtt://" + b.auth
		ok := mqcConnect(e, url, &meerkat.MQTTOptions{Version: v, Clean: true, User: mqcUser, Pass: mqcPass}, nil)
		ok.waitOpen(e)
		meerkat.MQTTDisconnect(ok.c, nil)
		ok.waitClosed(e)
		if len(ok.errs) != 0 {
			t.Errorf("right credentials: errors %v", ok.errs)
		}
		for _, o := range []*meerkat.MQTTOptions{
			{Version: v, Clean: true, User: mqcUser, Pass: "wrong"},
			{Version: v, Clean: true},
		} {
			cl := mqcConnect(e, url, o, nil)
			cl.waitClosed(e)
			want := []int{4, 5}
			if v == 5 {
				want = []int{0x86, 0x87}
			}
			var me *meerkat.MQTTError
			if len(cl.opens) != 1 || !slices.Contains(want, cl.opens[0]) || len(cl.errs) != 1 ||
				!errors.Is(cl.errs[0], meerkat.ErrMQTTRefused) || !errors.As(cl.errs[0], &me) || int(me.Code) != cl.opens[0] {
				t.Errorf("user %q pass %q: EvMQTTOpen %v, errors %v; want one of %v and ErrMQTTRefused", o.User, o.Pass, cl.opens, cl.errs, want)
			}
		}
	})
}

// ---------------------------------------------------------------------------
// Publish and subscribe through Mosquitto

// TestMQTTPubSubMosquitto proves publish and subscribe end to end through
// Mosquitto, plain and TLS, for both versions: payloads of 0 B, 1 KiB and
// 256 KiB at QoS 0, 1 and 2 arrive intact with their QoS; the publisher's
// QoS 1 and 2 exchanges complete (PUBACK, PUBREC/PUBCOMP with the IDs
// MQTTPub returned; nothing left in the session); the subscriber's QoS 2
// deliveries go through PUBREL (so its PUBREC went out); the SUBACK came
// as EvMQTTCmd with MQTTSub's packet ID.
func TestMQTTPubSubMosquitto(t *testing.T) {
	b := mqcMosquitto(t)
	mqcForEach(t, true, func(t *testing.T, e *env, v byte) {
		prefix := mqcTopic()
		sub := mqcConnect(e, b.url(e), &meerkat.MQTTOptions{Version: v, Clean: true}, nil)
		sub.waitOpen(e)
		sid := meerkat.MQTTSub(sub.c, &meerkat.MQTTOptions{Topic: prefix + "/#", QoS: 2})
		if sid == 0 {
			t.Fatal("MQTTSub returned 0")
		}
		if x := sub.waitCmd(e, meerkat.MQTTCmdSubAck, sid, "SUBACK"); !slices.Equal(x.codes, []byte{2}) || x.reason != 2 {
			t.Fatalf("SUBACK codes %v reason %d; want [2]", x.codes, x.reason)
		}
		sess := &meerkat.MQTTSession{}
		pub := mqcConnect(e, b.url(e), &meerkat.MQTTOptions{Version: v, Clean: true, Session: sess}, nil)
		pub.waitOpen(e)

		type sent struct {
			qos  byte
			data []byte
			id   uint16
		}
		want := map[string]sent{}
		for qos := byte(0); qos < 3; qos++ {
			for _, size := range []int{0, 1024, 256 << 10} {
				topic := fmt.Sprintf("%s/q%d/s%d", prefix, qos, size)
				data := mqcPayload(size, qos)
				id := meerkat.MQTTPub(pub.c, &meerkat.MQTTOptions{Topic: topic, Message: data, QoS: qos})
				if (id != 0) != (qos > 0) {
					t.Fatalf("MQTTPub QoS %d returned ID %d", qos, id)
				}
				want[topic] = sent{qos, data, id}
			}
		}
		e.pollUntil(30*time.Second, "every message and acknowledgement", func() bool {
			return len(sub.msgs) >= len(want) && pub.count(meerkat.MQTTCmdPubAck) >= 3 && pub.count(meerkat.MQTTCmdPubComp) >= 3 || sub.closed || pub.closed
		})
		if len(sub.msgs) != len(want) {
			t.Fatalf("received %d messages, want %d; errors %v %v", len(sub.msgs), len(want), sub.errs, pub.errs)
		}
		for _, m := range sub.msgs {
			w, ok := want[m.topic]
			if !ok || !bytes.Equal(m.data, w.data) || m.qos != w.qos || m.retain || m.dup || (m.qos > 0) != (m.id != 0) {
				t.Errorf("message %s: %d bytes QoS %d retain %v dup %v id %d; want %d bytes QoS %d", m.topic, len(m.data), m.qos, m.retain, m.dup, m.id, len(w.data), w.qos)
			}
			delete(want, m.topic)
			if w.qos == 1 {
				if _, ok := pub.cmd(meerkat.MQTTCmdPubAck, w.id); !ok {
					t.Errorf("no PUBACK for ID %d", w.id)
				}
			}
			if w.qos == 2 {
				_, rec := pub.cmd(meerkat.MQTTCmdPubRec, w.id)
				_, comp := pub.cmd(meerkat.MQTTCmdPubComp, w.id)
				if !rec || !comp {
					t.Errorf("ID %d: PUBREC %v PUBCOMP %v", w.id, rec, comp)
				}
			}
		}
		e.pollUntil(10*time.Second, "the subscriber's QoS 2 exchanges", func() bool { return sub.count(meerkat.MQTTCmdPubRel) >= 3 })
		if n := sess.Inflight(); n != 0 {
			t.Errorf("%d messages still in flight", n)
		}
		meerkat.MQTTDisconnect(pub.c, nil)
		meerkat.MQTTDisconnect(sub.c, nil)
		pub.waitClosed(e)
		sub.waitClosed(e)
		if len(pub.errs)+len(sub.errs) != 0 {
			t.Errorf("errors: %v %v", pub.errs, sub.errs)
		}
	})
}

// TestMQTTRetainedMosquitto proves retained messages through Mosquitto: a
// message published with Retain reaches a later subscriber with Retain
// set; an empty retained message clears it, so that the next subscriber's
// first message is a live one.
func TestMQTTRetainedMosquitto(t *testing.T) {
	b := mqcMosquitto(t)
	mqcForEach(t, false, func(t *testing.T, e *env, v byte) {
		topic := mqcTopic() + "/state"
		pub := mqcConnect(e, b.url(e), &meerkat.MQTTOptions{Version: v, Clean: true}, nil)
		pub.waitOpen(e)
		id := meerkat.MQTTPub(pub.c, &meerkat.MQTTOptions{Topic: topic, Message: []byte("on"), QoS: 1, Retain: true})
		pub.waitCmd(e, meerkat.MQTTCmdPubAck, id, "PUBACK of the retained message")

		sub1 := mqcConnect(e, b.url(e), &meerkat.MQTTOptions{Version: v, Clean: true}, nil)
		sub1.waitOpen(e)
		meerkat.MQTTSub(sub1.c, &meerkat.MQTTOptions{Topic: topic, QoS: 1})
		sub1.waitMsgs(e, 1, "the retained message")
		if m := sub1.msgs[0]; string(m.data) != "on" || !m.retain || m.qos != 1 || m.topic != topic {
			t.Errorf("retained message: %q retain %v QoS %d topic %q", m.data, m.retain, m.qos, m.topic)
		}

		id = meerkat.MQTTPub(pub.c, &meerkat.MQTTOptions{Topic: topic, QoS: 1, Retain: true})
		pub.waitCmd(e, meerkat.MQTTCmdPubAck, id, "PUBACK of the clearing message")

		sub2 := mqcConnect(e, b.url(e), &meerkat.MQTTOptions{Version: v, Clean: true}, nil)
		sub2.waitOpen(e)
		sid := meerkat.MQTTSub(sub2.c, &meerkat.MQTTOptions{Topic: topic, QoS: 1})
		sub2.waitCmd(e, meerkat.MQTTCmdSubAck, sid, "SUBACK")
		meerkat.MQTTPub(pub.c, &meerkat.MQTTOptions{Topic: topic, Message: []byte("live"), QoS: 1})
		sub2.waitMsgs(e, 1, "the live message")
		if m := sub2.msgs[0]; string(m.data) != "live" || m.retain {
			t.Errorf("after clearing, the first message is %q retain %v; want the live one", m.data, m.retain)
		}
		for _, cl := range []*mqcClient{pub, sub1, sub2} {
			meerkat.MQTTDisconnect(cl.c, nil)
			cl.waitClosed(e)
		}
	})
}

// TestMQTTWillMosquitto proves the will through Mosquitto, plain and TLS:
// a client that vanishes (c.Close: no DISCONNECT) has its will published
// with its QoS, retain flag and (MQTT 5) will properties; a client that
// says MQTTDisconnect has not; and in MQTT 5, a DISCONNECT with reason
// 0x04 (Disconnect with Will Message) has it published.
func TestMQTTWillMosquitto(t *testing.T) {
	b := mqcMosquitto(t)
	mqcForEach(t, true, func(t *testing.T, e *env, v byte) {
		topic := mqcTopic() + "/will"
		watcher := mqcConnect(e, b.url(e), &meerkat.MQTTOptions{Version: v, Clean: true}, nil)
		watcher.waitOpen(e)
		sid := meerkat.MQTTSub(watcher.c, &meerkat.MQTTOptions{Topic: topic, QoS: 2})
		watcher.waitCmd(e, meerkat.MQTTCmdSubAck, sid, "SUBACK")

		withWill := func(msg string, qos byte, retain bool) *mqcClient {
			o := &meerkat.MQTTOptions{Version: v, Clean: true, Topic: topic, Message: []byte(msg), QoS: qos, Retain: retain}
			o.WillProps.ContentType = []byte("text/plain")
			o.WillProps.User = []meerkat.MQTTUserProperty{{Key: []byte("why"), Value: []byte("vanished")}}
			cl := mqcConnect(e, b.url(e), o, nil)
			cl.waitOpen(e)
			return cl
		}
		a := withWill("a-gone", 1, false)
		a.c.Close()
		a.waitClosed(e)
		watcher.waitMsgs(e, 1, "a's will")
		m := watcher.msgs[0]
		wantProps := ""
		if v == 5 {
			wantProps = "ctype=text/plain user=why:vanished"
		}
		if string(m.data) != "a-gone" || m.qos != 1 || m.retain || m.props != wantProps {
			t.Errorf("will: %q QoS %d retain %v props %q; want a-gone QoS 1, props %q", m.data, m.qos, m.retain, m.props, wantProps)
		}

		// A goodbye discards the will: the watcher gets d's will next,
		// d having connected after b's connection was gone.
		bc := withWill("b-gone", 1, false)
		meerkat.MQTTDisconnect(bc.c, nil)
		bc.waitClosed(e)
		d := withWill("d-gone", 0, true)
		d.c.Close()
		d.waitClosed(e)
		watcher.waitMsgs(e, 2, "d's will")
		if got := watcher.datas(); !slices.Equal(got, []string{"a-gone", "d-gone"}) {
			t.Errorf("wills received %q; want a-gone, d-gone (b said goodbye)", got)
		}
		if m := watcher.msgs[1]; m.qos != 0 {
			t.Errorf("d's will QoS %d, want 0", m.qos)
		}

		// d's will was retained.
		late := mqcConnect(e, b.url(e), &meerkat.MQTTOptions{Version: v, Clean: true}, nil)
		late.waitOpen(e)
		meerkat.MQTTSub(late.c, &meerkat.MQTTOptions{Topic: topic, QoS: 1})
		late.waitMsgs(e, 1, "the retained will")
		if m := late.msgs[0]; string(m.data) != "d-gone" || !m.retain {
			t.Errorf("retained will %q retain %v", m.data, m.retain)
		}

		if v == 5 {
			f5 := withWill("f-gone", 1, false)
			meerkat.MQTTDisconnect(f5.c, &meerkat.MQTTOptions{ReasonCode: 0x04})
			f5.waitClosed(e)
			watcher.waitMsgs(e, 3, "the will of a DISCONNECT 0x04")
			if got := watcher.msgs[2]; string(got.data) != "f-gone" {
				t.Errorf("after DISCONNECT 0x04: %q", got.data)
			}
		}
		for _, cl := range []*mqcClient{watcher, late} {
			meerkat.MQTTDisconnect(cl.c, nil)
			cl.waitClosed(e)
		}
	})
}

// TestMQTTPropertiesMosquitto proves MQTT 5 properties end to end through
// Mosquitto: user properties (in order, a repeated key kept), content
// type, response topic, correlation data (binary), payload format and
// message expiry reach an MQTT 5 subscriber (the expiry counted down by
// at most a few seconds) and not a 3.1.1 one; and a request/response in
// which the responder publishes to the received Response Topic with the
// received Correlation Data from inside its handler.
func TestMQTTPropertiesMosquitto(t *testing.T) {
	b := mqcMosquitto(t)
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		prefix := mqcTopic()
		url := b.url(e)
		// The responder answers each request on its Response Topic.
		responder := mqcConnect(e, url, &meerkat.MQTTOptions{Version: 5, Clean: true}, func(cl *mqcClient, ev meerkat.Event, data any) {
			if ev != meerkat.EvMQTTMsg {
				return
			}
			m := data.(*meerkat.MQTTMessage)
			o := &meerkat.MQTTOptions{Topic: string(m.Props.ResponseTopic), Message: append([]byte("re:"), m.Data...), QoS: 1}
			o.Props.CorrelationData = m.Props.CorrelationData
			meerkat.MQTTPub(cl.c, o)
		})
		old := mqcConnect(e, url, &meerkat.MQTTOptions{Version: 4, Clean: true}, nil)
		requester := mqcConnect(e, url, &meerkat.MQTTOptions{Version: 5, Clean: true}, nil)
		for _, s := range []struct {
			cl     *mqcClient
			filter string
		}{{responder, prefix + "/req"}, {old, prefix + "/req"}, {requester, prefix + "/reply"}} {
			s.cl.waitOpen(e)
			id := meerkat.MQTTSub(s.cl.c, &meerkat.MQTTOptions{Topic: s.filter, QoS: 1})
			s.cl.waitCmd(e, meerkat.MQTTCmdSubAck, id, "SUBACK")
		}
		o := &meerkat.MQTTOptions{Topic: prefix + "/req", Message: []byte(`{"q":1}`), QoS: 1}
		o.Props.User = []meerkat.MQTTUserProperty{{Key: []byte("k1"), Value: []byte("v1")}, {Key: []byte("k2"), Value: []byte("")}, {Key: []byte("k1"), Value: []byte("v2")}}
		o.Props.ContentType = []byte("application/json")
		o.Props.ResponseTopic = []byte(prefix + "/reply")
		o.Props.CorrelationData = []byte{0, 1, 2, 0xff}
		o.Props.SetMessageExpiry(3600)
		o.Props.SetPayloadFormat(1)
		meerkat.MQTTPub(requester.c, o)
		requester.waitMsgs(e, 1, "the response")
		old.waitMsgs(e, 1, "the request (3.1.1)")

		want := "format=1 ctype=application/json resp=" + prefix + "/reply corr=000102ff user=k1:v1 user=k2: user=k1:v2"
		m := responder.msgs[0]
		if m.props != want || !m.hasExpiry || m.expiry > 3600 || m.expiry < 3590 || string(m.data) != `{"q":1}` {
			t.Errorf("request properties %q expiry %d (%v); want %q, 3590..3600", m.props, m.expiry, m.hasExpiry, want)
		}
		if m := old.msgs[0]; !m.noProps || string(m.data) != `{"q":1}` {
			t.Errorf("3.1.1 subscriber: properties %q, data %q", m.props, m.data)
		}
		if r := requester.msgs[0]; string(r.data) != `re:{"q":1}` || r.props != "corr=000102ff" {
			t.Errorf("response %q properties %q; want the correlation data back", r.data, r.props)
		}
		for _, cl := range []*mqcClient{responder, old, requester} {
			meerkat.MQTTDisconnect(cl.c, nil)
			cl.waitClosed(e)
			if len(cl.errs) != 0 {
				t.Errorf("errors %v", cl.errs)
			}
		}
	})
}

// TestMQTTSubUnsubMosquitto proves several filters in one MQTTSub and one
// MQTTUnsub through Mosquitto: one SUBACK with a code per filter; messages
// matching any filter arrive and others do not; after unsubscribing from
// two of the three, only the third's messages arrive.
func TestMQTTSubUnsubMosquitto(t *testing.T) {
	b := mqcMosquitto(t)
	mqcForEach(t, false, func(t *testing.T, e *env, v byte) {
		p := mqcTopic()
		sub := mqcConnect(e, b.url(e), &meerkat.MQTTOptions{Version: v, Clean: true}, nil)
		pub := mqcConnect(e, b.url(e), &meerkat.MQTTOptions{Version: v, Clean: true}, nil)
		sub.waitOpen(e)
		pub.waitOpen(e)
		sid := meerkat.MQTTSub(sub.c, &meerkat.MQTTOptions{Topic: p + "/a/+", Topics: []string{p + "/b/#", p + "/c"}, QoS: 1})
		if x := sub.waitCmd(e, meerkat.MQTTCmdSubAck, sid, "SUBACK"); !slices.Equal(x.codes, []byte{1, 1, 1}) {
			t.Fatalf("SUBACK codes %v, want [1 1 1]", x.codes)
		}
		publish := func(pairs ...string) {
			for i := 0; i < len(pairs); i += 2 {
				meerkat.MQTTPub(pub.c, &meerkat.MQTTOptions{Topic: p + "/" + pairs[i], Message: []byte(pairs[i+1]), QoS: 1})
			}
		}
		// Mosquitto keeps one publisher's order: "no" would come before "3".
		publish("a/x", "1", "d", "no", "a/x/y", "no", "b/y/z", "2", "c", "3")
		sub.waitMsgs(e, 3, "three messages")
		uid := meerkat.MQTTUnsub(sub.c, &meerkat.MQTTOptions{Topic: p + "/a/+", Topics: []string{p + "/c"}})
		if uid == 0 || uid == sid {
			t.Fatalf("MQTTUnsub returned %d (MQTTSub %d)", uid, sid)
		}
		x := sub.waitCmd(e, meerkat.MQTTCmdUnsubAck, uid, "UNSUBACK")
		if v == 5 && !slices.Equal(x.codes, []byte{0, 0}) {
			t.Errorf("UNSUBACK codes %v, want [0 0]", x.codes)
		}
		publish("a/x", "4", "c", "5", "b/q", "6")
		sub.waitMsgs(e, 4, "the fourth message")
		if got := sub.datas(); !slices.Equal(got, []string{"1", "2", "3", "6"}) {
			t.Errorf("received %q; want 1 2 3 6", got)
		}
		for _, cl := range []*mqcClient{sub, pub} {
			meerkat.MQTTDisconnect(cl.c, nil)
			cl.waitClosed(e)
		}
	})
}

// TestMQTTSubUnsubPacket proves SUBSCRIBE and UNSUBSCRIBE on the wire:
// fixed header flags 2, a fresh packet ID each, every filter in order
// with its options byte (QoS; MQTT 5: No Local, Retain As Published,
// Retain Handling) and the MQTT 5 properties; the SUBACK and UNSUBACK as
// EvMQTTCmd with their codes; and that MQTTSub or MQTTUnsub without a
// filter sends nothing and returns 0.
func TestMQTTSubUnsubPacket(t *testing.T) {
	mqcForEach(t, false, func(t *testing.T, e *env, v byte) {
		v5 := v == 5
		f := mqcListenFake(t)
		cl, p, _ := mqcOpen(e, f, &meerkat.MQTTOptions{Version: v, Keepalive: -1}, mqcConnAck(v5, false, 0), nil)
		so := &meerkat.MQTTOptions{Topic: "a/+", Topics: []string{"b/#", "c"}, QoS: 1}
		wantOpt := byte(0x01)
		if v5 {
			so.NoLocal, so.RetainAsPublished, so.RetainHandling = true, true, 2
			so.Props.User = []meerkat.MQTTUserProperty{{Key: []byte("x"), Value: []byte("y")}}
			wantOpt = 0x01 | 0x04 | 0x08 | 2<<4
		}
		sid := meerkat.MQTTSub(cl.c, so)
		pkt := p.expect(e, 8, 2, "SUBSCRIBE")
		r := &mqcReader{b: pkt.body}
		if id := r.u16(); id != sid || id == 0 {
			t.Errorf("SUBSCRIBE ID %d, MQTTSub returned %d", id, sid)
		}
		if v5 {
			if props := r.props(); props != "user=x:y" {
				t.Errorf("SUBSCRIBE properties %q", props)
			}
		}
		var got []string
		for r.i < len(r.b) && r.bad == "" {
			got = append(got, fmt.Sprintf("%s/%#x", r.str(), r.u8()))
		}
		want := []string{fmt.Sprintf("a/+/%#x", wantOpt), fmt.Sprintf("b/#/%#x", wantOpt), fmt.Sprintf("c/%#x", wantOpt)}
		if r.bad != "" || !slices.Equal(got, want) {
			t.Errorf("SUBSCRIBE filters %q (%s); want %q", got, r.bad, want)
		}
		if v5 {
			p.send(mqcPacket(0x90, mqcU16(sid), []byte{0, 1, 1, 0x80}))
		} else {
			p.send(mqcPacket(0x90, mqcU16(sid), []byte{1, 1, 0x80}))
		}
		if x := cl.waitCmd(e, meerkat.MQTTCmdSubAck, sid, "SUBACK"); !slices.Equal(x.codes, []byte{1, 1, 0x80}) || x.reason != 1 {
			t.Errorf("SUBACK codes %v reason %d", x.codes, x.reason)
		}

		uid := meerkat.MQTTUnsub(cl.c, &meerkat.MQTTOptions{Topic: "a/+", Topics: []string{"c"}})
		pkt = p.expect(e, 10, 2, "UNSUBSCRIBE")
		r = &mqcReader{b: pkt.body}
		if id := r.u16(); id != uid || id == 0 || id == sid {
			t.Errorf("UNSUBSCRIBE ID %d, MQTTUnsub returned %d (SUBSCRIBE had %d)", id, uid, sid)
		}
		if v5 {
			if props := r.props(); props != "" {
				t.Errorf("UNSUBSCRIBE properties %q", props)
			}
		}
		got = nil
		for r.i < len(r.b) && r.bad == "" {
			got = append(got, r.str())
		}
		if r.bad != "" || !slices.Equal(got, []string{"a/+", "c"}) {
			t.Errorf("UNSUBSCRIBE filters %q (%s)", got, r.bad)
		}
		if v5 {
			p.send(mqcPacket(0xb0, mqcU16(uid), []byte{0, 0, 0x11}))
		} else {
			p.send(mqcPacket(0xb0, mqcU16(uid)))
		}
		x := cl.waitCmd(e, meerkat.MQTTCmdUnsubAck, uid, "UNSUBACK")
		if v5 && !slices.Equal(x.codes, []byte{0, 0x11}) {
			t.Errorf("UNSUBACK codes %v", x.codes)
		}

		if id := meerkat.MQTTSub(cl.c, &meerkat.MQTTOptions{QoS: 1}); id != 0 {
			t.Errorf("MQTTSub without filters returned %d", id)
		}
		if id := meerkat.MQTTUnsub(cl.c, &meerkat.MQTTOptions{}); id != 0 {
			t.Errorf("MQTTUnsub without filters returned %d", id)
		}
		meerkat.MQTTPub(cl.c, &meerkat.MQTTOptions{Topic: "marker"})
		if m := mqcParsePublish(t, p.nextPkt(e, "the marker"), v5); m.topic != "marker" {
			t.Errorf("next packet %+v; want the marker", m)
		}
		if len(cl.errs) != 0 {
			t.Errorf("errors %v", cl.errs)
		}
	})
}

// ---------------------------------------------------------------------------
// Exact behaviour against the fake broker

// TestMQTTNothingBeforeConnect proves that CONNECT is the first packet on
// the wire even when the application publishes and subscribes right after
// MQTTConnect, before the connection is established, and that a QoS 1
// message published then goes out once the CONNACK came.
func TestMQTTNothingBeforeConnect(t *testing.T) {
	mqcForEach(t, false, func(t *testing.T, e *env, v byte) {
		v5 := v == 5
		f := mqcListenFake(t)
		cl := mqcConnect(e, f.url(), &meerkat.MQTTOptions{Version: v, Keepalive: -1}, nil)
		meerkat.MQTTPub(cl.c, &meerkat.MQTTOptions{Topic: "early/0", Message: []byte("q0")})
		id1 := meerkat.MQTTPub(cl.c, &meerkat.MQTTOptions{Topic: "early/1", Message: []byte("q1"), QoS: 1})
		meerkat.MQTTSub(cl.c, &meerkat.MQTTOptions{Topic: "early/#"})
		p := f.accept(e)
		if first := p.nextPkt(e, "the first packet"); first.typ != 1 {
			t.Fatalf("MQTTPub/MQTTSub before EvConnect put %v on the wire before CONNECT", first)
		}
		p.send(mqcConnAck(v5, false, 0))
		cl.waitOpen(e)
		for range 4 {
			pkt := p.nextPkt(e, "the early QoS 1 message")
			if pkt.typ == 3 && pkt.flags == 2 {
				if m := mqcParsePublish(t, pkt, v5); m.id != id1 || string(m.payload) != "q1" {
					t.Errorf("early QoS 1 message %+v; MQTTPub returned %d", m, id1)
				}
				return
			}
		}
		t.Errorf("the QoS 1 message published before the CONNACK never came")
	})
}

// TestMQTTKeepalive proves the keepalive against a broker that answers
// the first PINGREQ only: with Keepalive 1 s, the CONNECT says 1, a
// PINGREQ goes out about 1 s after the client last sent, the next about
// 1 s after the answered one, and the unanswered one ends the connection
// with ErrMQTTKeepalive about 1 s later, then EvClose. Both versions run
// at once, on one Manager.
func TestMQTTKeepalive(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		f := mqcListenFake(t)
		type ka struct {
			v        byte
			cl       *mqcClient
			p        *mqcPeer
			con      mqcPkt
			pings    []time.Time
			failedAt time.Time
		}
		var cs []*ka
		for _, v := range []byte{4, 5} {
			k := &ka{v: v}
			k.cl = mqcConnect(e, f.url(), &meerkat.MQTTOptions{Version: v, Keepalive: time.Second}, func(cl *mqcClient, ev meerkat.Event, _ any) {
				if ev == meerkat.EvError {
					k.failedAt = time.Now()
				}
			})
			k.p = f.accept(e)
			k.con = k.p.nextPkt(e, "CONNECT")
			if c := mqcParseConnect(t, k.con); c.keepalive != 1 {
				t.Errorf("v%d: CONNECT keepalive %d, want 1", v, c.keepalive)
			}
			k.p.send(mqcConnAck(v == 5, false, 0))
			cs = append(cs, k)
		}
		e.pollUntil(15*time.Second, "both keepalive failures", func() bool {
			done := true
			for _, k := range cs {
				for _, pkt := range k.p.take() {
					if pkt.typ != 12 || pkt.flags != 0 || len(pkt.body) != 0 {
						t.Errorf("v%d: %v; want only PINGREQ", k.v, pkt)
						continue
					}
					k.pings = append(k.pings, pkt.at)
					if len(k.pings) == 1 {
						k.p.send([]byte{mqcPINGRESP, 0})
					}
				}
				done = done && k.cl.closed
			}
			return done
		})
		within := func(what string, d time.Duration) {
			if d < 900*time.Millisecond || d > 3*time.Second {
				t.Errorf("%s after %v; want about 1 s", what, d)
			}
		}
		for _, k := range cs {
			if len(k.pings) != 2 {
				t.Errorf("v%d: %d PINGREQs, want 2", k.v, len(k.pings))
				continue
			}
			within(fmt.Sprintf("v%d: first PINGREQ", k.v), k.pings[0].Sub(k.con.at))
			within(fmt.Sprintf("v%d: second PINGREQ", k.v), k.pings[1].Sub(k.pings[0]))
			within(fmt.Sprintf("v%d: keepalive failure", k.v), k.failedAt.Sub(k.pings[1]))
			if len(k.cl.errs) != 1 || !errors.Is(k.cl.errs[0], meerkat.ErrMQTTKeepalive) {
				t.Errorf("v%d: errors %v; want ErrMQTTKeepalive", k.v, k.cl.errs)
			}
			if k.cl.count(meerkat.MQTTCmdPingResp) != 1 {
				t.Errorf("v%d: %d PINGRESP events", k.v, k.cl.count(meerkat.MQTTCmdPingResp))
			}
		}
	})
}

// TestMQTTSessionResend proves the session kept across connections with
// MQTTOptions.Session and Clean false: QoS 1 and 2 messages the broker
// never acknowledged are sent again, in order, with DUP and their IDs
// when the CONNACK says session present, and a QoS 2 message whose PUBREC
// came is continued with PUBREL; a CONNACK without session present drops
// them (nothing resent, nothing in flight); Clean true empties the
// session at once.
func TestMQTTSessionResend(t *testing.T) {
	mqcForEach(t, false, func(t *testing.T, e *env, v byte) {
		v5 := v == 5
		f := mqcListenFake(t)
		sess := &meerkat.MQTTSession{}
		opts := &meerkat.MQTTOptions{Version: v, ClientID: "mqc-session", Session: sess, Keepalive: -1}
		checkPub := func(pkt mqcPkt, id uint16, qos byte, dup bool, data string) {
			t.Helper()
			m := mqcParsePublish(t, pkt, v5)
			if m.id != id || m.qos != qos || m.dup != dup || string(m.payload) != data || m.topic != "mqc/s" {
				t.Errorf("PUBLISH %+v; want ID %d QoS %d dup %v %q", m, id, qos, dup, data)
			}
		}

		cl1, p1, con := mqcOpen(e, f, opts, mqcConnAck(v5, false, 0), nil)
		if con.flags&2 != 0 {
			t.Errorf("Clean false sent the clean flag")
		}
		idA := meerkat.MQTTPub(cl1.c, &meerkat.MQTTOptions{Topic: "mqc/s", Message: []byte("one"), QoS: 1})
		idB := meerkat.MQTTPub(cl1.c, &meerkat.MQTTOptions{Topic: "mqc/s", Message: []byte("two"), QoS: 2})
		idC := meerkat.MQTTPub(cl1.c, &meerkat.MQTTOptions{Topic: "mqc/s", Message: []byte("three"), QoS: 2})
		if idA == 0 || idB == 0 || idC == 0 || idA == idB || idB == idC || idA == idC {
			t.Fatalf("packet IDs %d %d %d", idA, idB, idC)
		}
		checkPub(p1.expect(e, 3, 0x2, "QoS 1 PUBLISH"), idA, 1, false, "one")
		checkPub(p1.expect(e, 3, 0x4, "QoS 2 PUBLISH"), idB, 2, false, "two")
		checkPub(p1.expect(e, 3, 0x4, "QoS 2 PUBLISH"), idC, 2, false, "three")
		p1.send(mqcAck(mqcPUBREC, idC))
		if id, _ := mqcAckID(t, p1.expect(e, 6, 2, "PUBREL")); id != idC {
			t.Errorf("PUBREL for %d, want %d", id, idC)
		}
		if n := sess.Inflight(); n != 3 {
			t.Errorf("in flight %d, want 3", n)
		}
		p1.nc.Close() // the broker goes away
		cl1.waitClosed(e)

		// Session present: everything again, in order, with DUP.
		cl2, p2, con := mqcOpen(e, f, opts, mqcConnAck(v5, true, 0), nil)
		if con.flags&2 != 0 || con.clientID != "mqc-session" {
			t.Errorf("reconnect: flags %#x client ID %q", con.flags, con.clientID)
		}
		checkPub(p2.expect(e, 3, 0xA, "QoS 1 PUBLISH again"), idA, 1, true, "one")
		checkPub(p2.expect(e, 3, 0xC, "QoS 2 PUBLISH again"), idB, 2, true, "two")
		if id, _ := mqcAckID(t, p2.expect(e, 6, 2, "PUBREL again")); id != idC {
			t.Errorf("PUBREL for %d, want %d", id, idC)
		}
		if n := sess.Inflight(); n != 3 {
			t.Errorf("in flight %d, want 3", n)
		}
		cl2.c.Close()
		if rest, _ := p2.waitEnd(e, "the client's close"); len(rest) != 0 {
			t.Errorf("more packets: %v", rest)
		}
		cl2.waitClosed(e)

		// No session: nothing again.
		cl3, p3, _ := mqcOpen(e, f, opts, mqcConnAck(v5, false, 0), nil)
		if n := sess.Inflight(); n != 0 {
			t.Errorf("in flight %d after a CONNACK without session, want 0", n)
		}
		meerkat.MQTTPub(cl3.c, &meerkat.MQTTOptions{Topic: "mqc/s", Message: []byte("marker")})
		checkPub(p3.nextPkt(e, "the marker"), 0, 0, false, "marker")
		idD := meerkat.MQTTPub(cl3.c, &meerkat.MQTTOptions{Topic: "mqc/s", Message: []byte("four"), QoS: 1})
		checkPub(p3.expect(e, 3, 0x2, "a new QoS 1 PUBLISH"), idD, 1, false, "four")
		cl3.c.Close()
		cl3.waitClosed(e)

		// Clean: the session is emptied by MQTTConnect itself.
		if sess.Inflight() != 1 {
			t.Fatalf("in flight %d, want 1", sess.Inflight())
		}
		clean := *opts
		clean.Clean = true
		cl4 := mqcConnect(e, f.url(), &clean, nil)
		if n := sess.Inflight(); n != 0 {
			t.Errorf("in flight %d after MQTTConnect with Clean, want 0", n)
		}
		p4 := f.accept(e)
		if c := mqcParseConnect(t, p4.nextPkt(e, "CONNECT")); c.flags&2 == 0 {
			t.Errorf("Clean true: flags %#x", c.flags)
		}
		p4.send(mqcConnAck(v5, true, 0))
		cl4.waitOpen(e)
		meerkat.MQTTPub(cl4.c, &meerkat.MQTTOptions{Topic: "mqc/s", Message: []byte("marker")})
		checkPub(p4.nextPkt(e, "the marker"), 0, 0, false, "marker")
		meerkat.MQTTDisconnect(cl4.c, nil)
		cl4.waitClosed(e)
	})
}

// TestMQTTReceiveMaximum proves that the client honours the broker's
// Receive Maximum (MQTT 5 CONNACK property, here 2): a third QoS 1
// message is held (a later QoS 0 message overtakes it) until a PUBACK
// frees a slot; a QoS 2 message occupies its slot until PUBCOMP, not
// PUBREC.
func TestMQTTReceiveMaximum(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		f := mqcListenFake(t)
		sess := &meerkat.MQTTSession{}
		cl, p, _ := mqcOpen(e, f, &meerkat.MQTTOptions{Version: 5, Keepalive: -1, Session: sess}, mqcConnAck(true, false, 0, []byte{0x21, 0, 2}), nil)
		pub := func(data string, qos byte) uint16 {
			return meerkat.MQTTPub(cl.c, &meerkat.MQTTOptions{Topic: "rm", Message: []byte(data), QoS: qos})
		}
		next := func(want string, id uint16) {
			t.Helper()
			m := mqcParsePublish(t, p.nextPkt(e, want), true)
			if string(m.payload) != want || m.id != id {
				t.Fatalf("got PUBLISH %q ID %d, want %q ID %d", m.payload, m.id, want, id)
			}
		}
		id1, id2, id3 := pub("m1", 1), pub("m2", 1), pub("m3", 1)
		pub("marker1", 0)
		next("m1", id1)
		next("m2", id2)
		next("marker1", 0)
		p.send(mqcAck(mqcPUBACK, id1))
		next("m3", id3)

		id4 := pub("m4", 2)
		pub("marker2", 0)
		next("marker2", 0)
		p.send(mqcAck(mqcPUBACK, id2))
		next("m4", id4)
		p.send(mqcAck(mqcPUBREC, id4))
		if id, _ := mqcAckID(t, p.expect(e, 6, 2, "PUBREL")); id != id4 {
			t.Fatalf("PUBREL %d, want %d", id, id4)
		}
		id5 := pub("m5", 1)
		pub("marker3", 0)
		next("marker3", 0)
		p.send(mqcAck(mqcPUBCOMP, id4))
		next("m5", id5)
		p.send(mqcAck(mqcPUBACK, id3), mqcAck(mqcPUBACK, id5))
		e.pollUntil(5*time.Second, "every message acknowledged", func() bool { return sess.Inflight() == 0 })
		if len(cl.errs) != 0 {
			t.Errorf("errors %v", cl.errs)
		}
	})
}

// TestMQTTMaximumPacketSize proves that a message too large for the
// broker's Maximum Packet Size (MQTT 5 CONNACK property, here 64 bytes)
// never goes on the wire and does not hold back the QoS 1 messages
// published after it, nor stay in the session.
func TestMQTTMaximumPacketSize(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		f := mqcListenFake(t)
		sess := &meerkat.MQTTSession{}
		cl, p, _ := mqcOpen(e, f, &meerkat.MQTTOptions{Version: 5, Keepalive: -1, Session: sess}, mqcConnAck(true, false, 0, []byte{0x27, 0, 0, 0, 64}), nil)
		big := meerkat.MQTTPub(cl.c, &meerkat.MQTTOptions{Topic: "mps", Message: mqcPayload(100, 1), QoS: 1})
		small := meerkat.MQTTPub(cl.c, &meerkat.MQTTOptions{Topic: "mps", Message: []byte("small"), QoS: 1})
		meerkat.MQTTPub(cl.c, &meerkat.MQTTOptions{Topic: "mps", Message: []byte("marker")})
		var got []string
		for range 4 {
			pkt := p.nextPkt(e, "the marker")
			if len(pkt.body)+2 > 64 {
				t.Errorf("a packet of %d bytes went out", len(pkt.body)+2)
			}
			m := mqcParsePublish(t, pkt, true)
			got = append(got, string(m.payload))
			if string(m.payload) == "marker" {
				break
			}
		}
		if !slices.Equal(got, []string{"small", "marker"}) {
			t.Fatalf("an over-size QoS 1 message (MQTTPub returned %d) holds back the next one (%d): sent %q, want small, marker", big, small, got)
		}
		p.send(mqcAck(mqcPUBACK, small))
		e.pollUntil(5*time.Second, "the small message acknowledged", func() bool { return cl.count(meerkat.MQTTCmdPubAck) == 1 })
		if n := sess.Inflight(); n != 0 {
			t.Errorf("in flight %d (MQTTPub of the over-size message returned %d); want 0", n, big)
		}
	})
}

// TestMQTTIncomingQoS proves the client's side of the broker's messages:
// QoS 0 delivered (retain flag kept) with no answer; QoS 1 delivered and
// PUBACKed with its ID; QoS 2 delivered once and PUBRECed, its duplicate
// (DUP, same ID) PUBRECed again but not delivered, PUBREL answered with
// PUBCOMP, after which the same ID carries a new message that is
// delivered.
func TestMQTTIncomingQoS(t *testing.T) {
	mqcForEach(t, false, func(t *testing.T, e *env, v byte) {
		v5 := v == 5
		f := mqcListenFake(t)
		cl, p, _ := mqcOpen(e, f, &meerkat.MQTTOptions{Version: v, Keepalive: -1}, mqcConnAck(v5, false, 0), nil)
		ack := func(typ, flags byte, id uint16) {
			t.Helper()
			if got, rc := mqcAckID(t, p.expect(e, typ, flags, fmt.Sprintf("acknowledgement type %d", typ))); got != id || rc != 0 {
				t.Fatalf("acknowledgement type %d: ID %d reason %#x, want %d, 0", typ, got, rc, id)
			}
		}
		p.send(mqcPublish(v5, 0, false, true, "in/0", 0, "zero"))
		p.send(mqcPublish(v5, 1, false, false, "in/1", 9, "one"))
		ack(4, 0, 9)
		if got := cl.datas(); !slices.Equal(got, []string{"zero", "one"}) {
			t.Fatalf("messages %q", got)
		}
		if m := cl.msgs[0]; !m.retain || m.qos != 0 || m.topic != "in/0" || m.id != 0 {
			t.Errorf("QoS 0 message %+v", m)
		}
		if m := cl.msgs[1]; m.qos != 1 || m.id != 9 || m.topic != "in/1" {
			t.Errorf("QoS 1 message %+v", m)
		}

		p.send(mqcPublish(v5, 2, false, false, "in/2", 7, "first"))
		ack(5, 0, 7)
		p.send(mqcPublish(v5, 2, true, false, "in/2", 7, "first"))
		ack(5, 0, 7)
		if got := cl.datas(); !slices.Equal(got, []string{"zero", "one", "first"}) {
			t.Errorf("after a QoS 2 duplicate: messages %q; want it delivered once", got)
		}
		if x, _ := cl.cmd(meerkat.MQTTCmdPublish, 7); cl.count(meerkat.MQTTCmdPublish) != 4 || x.dup {
			t.Errorf("EvMQTTCmd: %d PUBLISH, want 4 (duplicates included)", cl.count(meerkat.MQTTCmdPublish))
		}
		p.send(mqcAck(mqcPUBREL, 7))
		ack(7, 0, 7)
		p.send(mqcPublish(v5, 2, false, false, "in/2", 7, "second"))
		ack(5, 0, 7)
		if got := cl.datas(); !slices.Equal(got, []string{"zero", "one", "first", "second"}) {
			t.Errorf("after PUBREL, the ID's next message: messages %q", got)
		}
		if len(cl.errs) != 0 {
			t.Errorf("errors %v", cl.errs)
		}
	})
}

// TestMQTTMalformedFromBroker proves that a malformed or forbidden packet
// from the broker ends the connection: EvError matching ErrMQTTProtocol
// (*MQTTError with 0x81 Malformed Packet or 0x82 Protocol Error), then
// EvClose; no EvMQTTMsg for it (a good PUBLISH just before it is
// delivered); in MQTT 5 once connected, a DISCONNECT with that reason code
// first; in 3.1.1 nothing.
func TestMQTTMalformedFromBroker(t *testing.T) {
	connect4 := mqcPacket(0x10, mqcStr("MQTT"), []byte{4, 2, 0, 60}, mqcStr(""))
	connect5 := mqcPacket(0x10, mqcStr("MQTT"), []byte{5, 2, 0, 60, 0}, mqcStr(""))
	cases := []struct {
		name   string
		only   byte // 4 or 5: that version only
		before bool // sent instead of the CONNACK
		bad    func(v5 bool) []byte
		code   byte
	}{
		{"remaining length of five bytes", 0, false, func(bool) []byte { return []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x7f} }, 0x81},
		{"topic length past the end", 0, false, func(bool) []byte { return []byte{0x30, 0x05, 0x00, 0x10, 'a', 'b', 'c'} }, 0x81},
		{"QoS 1 PUBLISH without packet ID", 0, false, func(bool) []byte { return []byte{0x32, 0x03, 0x00, 0x01, 'a'} }, 0x81},
		{"QoS 3", 0, false, func(v5 bool) []byte {
			b := mqcPublish(v5, 1, false, false, "a", 1, "x")
			b[0] |= 0x06
			return b
		}, 0x81},
		{"property length past the end", 5, false, func(bool) []byte { return []byte{0x30, 0x05, 0x00, 0x01, 'a', 0x10, 0x01} }, 0x81},
		{"PUBLISH before CONNACK", 0, true, func(v5 bool) []byte { return mqcPublish(v5, 0, false, false, "a", 0, "x") }, 0x82},
		{"3.1.1 CONNACK return code 6", 4, true, func(bool) []byte { return []byte{0x20, 0x02, 0x00, 0x06} }, 0},
		{"a second CONNACK", 0, false, func(v5 bool) []byte { return mqcConnAck(v5, false, 0) }, 0x82},
		{"CONNECT from the broker", 0, false, func(v5 bool) []byte {
			if v5 {
				return connect5
			}
			return connect4
		}, 0x82},
		{"SUBSCRIBE from the broker", 4, false, func(bool) []byte { return mqcPacket(0x82, mqcU16(1), mqcStr("a"), []byte{0}) }, 0x82},
		{"PINGREQ from the broker", 0, false, func(bool) []byte { return []byte{0xc0, 0} }, 0x82},
	}
	mqcForEach(t, false, func(t *testing.T, e *env, v byte) {
		v5 := v == 5
		f := mqcListenFake(t)
		for _, tc := range cases {
			if tc.only != 0 && tc.only != v {
				continue
			}
			cl := mqcConnect(e, f.url(), &meerkat.MQTTOptions{Version: v, Keepalive: -1}, nil)
			p := f.accept(e)
			p.expect(e, 1, 0, "CONNECT")
			wantMsgs := []string(nil)
			if tc.before {
				p.send(tc.bad(v5))
			} else {
				p.send(mqcConnAck(v5, false, 0))
				cl.waitOpen(e)
				p.send(mqcPublish(v5, 0, false, false, "ok", 0, "ok"), tc.bad(v5))
				wantMsgs = []string{"ok"}
			}
			cl.waitClosed(e)
			var me *meerkat.MQTTError
			if len(cl.errs) != 1 || !errors.Is(cl.errs[0], meerkat.ErrMQTTProtocol) || !errors.As(cl.errs[0], &me) {
				t.Errorf("%s: errors %v; want one ErrMQTTProtocol", tc.name, cl.errs)
				continue
			}
			if me.Code != 0x81 && me.Code != 0x82 || tc.code != 0 && me.Code != tc.code {
				t.Errorf("%s: reason code %#x, want %#x", tc.name, me.Code, tc.code)
			}
			if got := cl.datas(); !slices.Equal(got, wantMsgs) {
				t.Errorf("%s: messages %q, want %q", tc.name, got, wantMsgs)
			}
			ev := e.chk.events(cl.c)
			if len(ev) < 2 || ev[len(ev)-2] != meerkat.EvError || ev[len(ev)-1] != meerkat.EvClose {
				t.Errorf("%s: events %v", tc.name, summarize(ev))
			}
			rest, _ := p.waitEnd(e, "the client's close")
			switch {
			case v5 && !tc.before:
				if len(rest) != 1 || mqcDisconnectCode(t, rest[0]) != me.Code {
					t.Errorf("%s: the client sent %v; want DISCONNECT %#x", tc.name, rest, me.Code)
				}
			case v5: // before CONNACK, a DISCONNECT is allowed, not required
				if len(rest) > 1 || len(rest) == 1 && mqcDisconnectCode(t, rest[0]) != me.Code {
					t.Errorf("%s: the client sent %v", tc.name, rest)
				}
			default:
				if len(rest) != 0 {
					t.Errorf("%s: the 3.1.1 client sent %v", tc.name, rest)
				}
			}
		}
	})
}

// TestMQTTBrokerClosesMidPacket proves that a broker closing (FIN) or
// resetting the connection in the middle of a packet ends the client's
// connection with EvClose (after EvError for the reset), delivers nothing
// of the half packet, and leaves no goroutine or descriptor behind.
func TestMQTTBrokerClosesMidPacket(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		base := snapshot()
		f := mqcListenFake(t)
		for _, how := range []string{"close", "reset"} {
			for _, v := range []byte{4, 5} {
				cl, p, _ := mqcOpen(e, f, &meerkat.MQTTOptions{Version: v, Keepalive: -1}, mqcConnAck(v == 5, false, 0), nil)
				half := mqcPublish(v == 5, 1, false, false, "half", 3, "payload")[:7]
				p.send(half)
				e.pollUntil(5*time.Second, "the half packet received", func() bool { return cl.c.Recv().Len() == len(half) })
				if how == "reset" {
					resetPeer(t, p.nc)
				} else {
					p.nc.Close()
				}
				cl.waitClosed(e)
				if len(cl.msgs) != 0 || cl.count(meerkat.MQTTCmdPublish) != 0 {
					t.Errorf("%s v%d: the half packet was delivered", how, v)
				}
				if how == "reset" && len(cl.errs) != 1 {
					t.Errorf("reset v%d: errors %v; want one", v, cl.errs)
				}
				t.Logf("%s v%d: errors %v", how, v, cl.errs)
			}
		}
		f.close()
		e.m.Poll(0)
		expectBaseline(t, base, 5*time.Second)
	})
}

// TestMQTTBrokerDisconnect proves an MQTT 5 broker's DISCONNECT: with an
// error reason code (0x8B Server shutting down) it is EvMQTTCmd and then
// EvError matching ErrMQTTDisconnected with the code and the Reason
// String, and EvClose; with 0x00 the connection just closes, without
// error, and the client answers nothing.
func TestMQTTBrokerDisconnect(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		f := mqcListenFake(t)
		cl, p, _ := mqcOpen(e, f, &meerkat.MQTTOptions{Version: 5, Keepalive: -1}, mqcConnAck(true, false, 0), nil)
		p.send(mqcPacket(0xe0, []byte{0x8b}, mqcProps(append([]byte{0x1f}, mqcStr("going down")...))))
		cl.waitClosed(e)
		var me *meerkat.MQTTError
		if len(cl.errs) != 1 || !errors.Is(cl.errs[0], meerkat.ErrMQTTDisconnected) || !errors.As(cl.errs[0], &me) || me.Code != 0x8b || me.Reason != "going down" {
			t.Errorf("errors %v; want ErrMQTTDisconnected 0x8b \"going down\"", cl.errs)
		}
		if x, ok := cl.cmd(meerkat.MQTTCmdDisconnect, 0); !ok || x.reason != 0x8b || x.reasonString != "going down" {
			t.Errorf("EvMQTTCmd DISCONNECT %+v %v", x, ok)
		}
		if rest, _ := p.waitEnd(e, "the close"); len(rest) != 0 {
			t.Errorf("the client answered %v", rest)
		}

		cl, p, _ = mqcOpen(e, f, &meerkat.MQTTOptions{Version: 5, Keepalive: -1}, mqcConnAck(true, false, 0), nil)
		p.send([]byte{0xe0, 0x00})
		cl.waitClosed(e)
		if len(cl.errs) != 0 {
			t.Errorf("normal DISCONNECT: errors %v", cl.errs)
		}
		if rest, _ := p.waitEnd(e, "the close"); len(rest) != 0 {
			t.Errorf("the client answered %v", rest)
		}
	})
}

// TestMQTTShutdown proves Manager.Shutdown's goodbye for an MQTT client:
// a DISCONNECT (reason 0), then the close, without error, and Shutdown
// returns nil once the connection is gone.
func TestMQTTShutdown(t *testing.T) {
	mqcForEach(t, false, func(t *testing.T, e *env, v byte) {
		f := mqcListenFake(t)
		cl, p, _ := mqcOpen(e, f, &meerkat.MQTTOptions{Version: v, Keepalive: -1}, mqcConnAck(v == 5, false, 0), nil)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.m.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			t.Fatal("the fake broker's connection did not end")
		}
		rest := p.take()
		if len(rest) != 1 || mqcDisconnectCode(t, rest[0]) != 0 {
			t.Errorf("on Shutdown the client sent %v; want DISCONNECT", rest)
		}
		if !cl.closed || len(cl.errs) != 0 {
			t.Errorf("closed %v errors %v", cl.closed, cl.errs)
		}
	})
}
