package meerkat_test

// The WebSocket server (issue 4): the handshake, frames of every size in
// both directions, fragmentation and control frames, the byte stream split
// anywhere, every protocol violation and its close code, the close
// handshake, keepalive, permessage-deflate, WSSend's refusals, Shutdown and
// resource baselines. Every test runs on every driver, plain and TLS,
// against blocking standard-library peers that write exactly the bytes the
// test chooses and check every byte they get with a frame codec of the
// tests' own (below), not internal/wsframe, so that the codec is checked
// independently. ws_client_test.go does the same for the client and shares
// this machinery.

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
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
// A frame codec of the tests' own (RFC 6455 section 5.2), independent of
// internal/wsframe: it encodes whatever it is told, valid or not, and
// decodes without judging, so that the tests see the wire as it is.

const (
	wstFin  = 0x80
	wstRSV1 = 0x40
	wstRSV2 = 0x20
	wstRSV3 = 0x10

	wstOpCont   = 0x0
	wstOpText   = 0x1
	wstOpBinary = 0x2
	wstOpClose  = 0x8
	wstOpPing   = 0x9
	wstOpPong   = 0xA
)

// RFC 6455 section 1.3's example: this key is answered with this accept.
const (
	wstExampleKey    = "dGhlIHNhbXBsZSBub25jZQ=="
	wstExampleAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
)

// wstAccept computes Sec-WebSocket-Accept for a key (RFC 6455 section 4.2.2).
func wstAccept(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// wstMask XORs p with key, starting at key position 0.
func wstMask(key [4]byte, p []byte) {
	for i := range p {
		p[i] ^= key[i&3]
	}
}

// wstHeader encodes a frame header: b0 is the first byte (FIN, RSV bits,
// opcode), n the payload length in its minimal encoding, key the masking
// key or nil.
func wstHeader(b0 byte, n int, key *[4]byte) []byte {
	var mb byte
	if key != nil {
		mb = 0x80
	}
	var h []byte
	switch {
	case n <= 125:
		h = append(h, b0, mb|byte(n))
	case n <= 0xffff:
		h = append(h, b0, mb|126, byte(n>>8), byte(n))
	default:
		h = append(h, b0, mb|127)
		h = binary.BigEndian.AppendUint64(h, uint64(n))
	}
	if key != nil {
		h = append(h, key[:]...)
	}
	return h
}

// wstFrameBytes encodes a whole frame, masked with a random key when mask.
func wstFrameBytes(b0 byte, payload []byte, mask bool) []byte {
	var key *[4]byte
	if mask {
		var k [4]byte
		binary.LittleEndian.PutUint32(k[:], rand.Uint32()|1) // never all zero
		key = &k
	}
	b := wstHeader(b0, len(payload), key)
	start := len(b)
	b = append(b, payload...)
	if key != nil {
		wstMask(*key, b[start:])
	}
	return b
}

// wstClosePayload is a close frame's payload: the code (none when 0) and
// the reason.
func wstClosePayload(code int, reason string) []byte {
	if code == 0 {
		return nil
	}
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

// wstFrame is a frame as it was on the wire.
type wstFrame struct {
	b0      byte
	masked  bool
	key     [4]byte
	hdrLen  int
	payload []byte // unmasked
}

func (f wstFrame) op() byte      { return f.b0 & 0x0f }
func (f wstFrame) fin() bool     { return f.b0&wstFin != 0 }
func (f wstFrame) rsv() byte     { return f.b0 & 0x70 }
func (f wstFrame) isClose() bool { return f.op() == wstOpClose }

// closeCode is a close frame's code, 1005 when it has none, -1 for a
// 1-byte payload.
func (f wstFrame) closeCode() int {
	switch len(f.payload) {
	case 0:
		return 1005
	case 1:
		return -1
	}
	return int(binary.BigEndian.Uint16(f.payload))
}

func (f wstFrame) String() string {
	p := f.payload
	s := ""
	if len(p) > 16 {
		s = fmt.Sprintf("...(%d bytes)", len(p))
		p = p[:16]
	}
	return fmt.Sprintf("[b0=%#02x masked=%v %q%s]", f.b0, f.masked, p, s)
}

// wstDecode decodes the frame at the start of b, whatever it holds; ok is
// false while b holds less than a whole frame.
func wstDecode(b []byte) (f wstFrame, n int, ok bool) {
	if len(b) < 2 {
		return f, 0, false
	}
	f.b0 = b[0]
	f.masked = b[1]&0x80 != 0
	n = 2
	length := uint64(b[1] & 0x7f)
	switch length {
	case 126:
		if len(b) < 4 {
			return f, 0, false
		}
		length, n = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return f, 0, false
		}
		length, n = binary.BigEndian.Uint64(b[2:]), 10
	}
	if f.masked {
		if len(b) < n+4 {
			return f, 0, false
		}
		copy(f.key[:], b[n:n+4])
		n += 4
	}
	f.hdrLen = n
	if uint64(len(b)-n) < length {
		return f, 0, false
	}
	end := n + int(length)
	f.payload = b[n:end:end]
	if f.masked {
		f.payload = append([]byte{}, f.payload...)
		wstMask(f.key, f.payload)
	}
	return f, end, true
}

// wstMinimalHeader is the header length a frame of n payload bytes must
// have (RFC 6455 section 5.2: the minimal length encoding).
func wstMinimalHeader(n int, masked bool) int {
	h := 2
	switch {
	case n > 0xffff:
		h = 10
	case n > 125:
		h = 4
	}
	if masked {
		h += 4
	}
	return h
}

// wstDeflater compresses messages as a permessage-deflate sender does (RFC
// 7692 section 7.2.1): deflate, a sync flush, the final 00 00 ff ff removed;
// with context takeover one stream runs through all messages.
type wstDeflater struct {
	takeover bool
	buf      bytes.Buffer
	w        *flate.Writer
}

func (d *wstDeflater) deflate(t testing.TB, msg []byte) []byte {
	t.Helper()
	if d.w == nil || !d.takeover {
		d.buf.Reset()
		d.w, _ = flate.NewWriter(&d.buf, flate.BestSpeed)
	}
	d.buf.Reset()
	d.w.Write(msg)
	d.w.Flush()
	out := bytes.Clone(d.buf.Bytes())
	if !bytes.HasSuffix(out, []byte{0, 0, 0xff, 0xff}) {
		t.Fatalf("deflate output does not end in 00 00 ff ff: % x", out)
	}
	return out[:len(out)-4]
}

// wstInflater inflates permessage-deflate messages (RFC 7692 section
// 7.2.2); with context takeover the last 32 KiB of output are the next
// message's dictionary.
type wstInflater struct {
	takeover bool
	hist     []byte
}

func (z *wstInflater) inflate(p []byte) ([]byte, error) {
	src := append(bytes.Clone(p), 0, 0, 0xff, 0xff, 0x01, 0, 0, 0xff, 0xff)
	var dict []byte
	if z.takeover {
		dict = z.hist
	}
	out, err := io.ReadAll(flate.NewReaderDict(bytes.NewReader(src), dict))
	if err != nil {
		return nil, err
	}
	if z.takeover {
		z.hist = append(z.hist, out...)
		if len(z.hist) > 32<<10 {
			z.hist = bytes.Clone(z.hist[len(z.hist)-32<<10:])
		}
	}
	return out, nil
}

// wstPayload is n deterministic bytes: for text, valid UTF-8 with
// sequences of 1 to 4 bytes throughout (so that they straddle reads and
// frames), for binary any byte.
func wstPayload(op byte, n int, seed int) []byte {
	if op == wstOpText {
		const pattern = "a\u00e9\u20ac\U0001F600" // 1, 2, 3 and 4 bytes
		b := make([]byte, 0, n)
		for len(b)+len(pattern) <= n {
			b = append(b, pattern...)
		}
		for len(b) < n {
			b = append(b, 'a'+byte((len(b)+seed)%26))
		}
		return b
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + seed*13 + i>>8)
	}
	return b
}

// wstRandom is n bytes that do not compress.
func wstRandom(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 42))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// ---------------------------------------------------------------------------
// Raw peers: a blocking connection the test writes to, and a goroutine that
// collects everything arriving until EOF (then closes the connection). The bytes begin with an HTTP head
// (a 101 response for a client peer, the request for a server peer); the
// frames after a WebSocket head are decoded as they come, and pings and
// close frames can be answered from the collecting goroutine.

type wstPeer struct {
	e      *env
	nc     net.Conn
	client bool // the peer is a WebSocket client: its frames are masked

	autoPong   atomic.Bool // answer every ping with a pong
	autoClose  atomic.Bool // answer the first close frame with one close frame (same code)
	done       chan struct{}
	mu         sync.Mutex
	buf        []byte
	headEnd    int  // where the first head ends, -1 until it arrived
	ws         bool // the head began a WebSocket stream
	parsed     int  // frames are decoded up to here
	frames     []wstFrame
	ended      bool
	endErr     error // nil for EOF
	closeReply bool  // autoClose answered
}

// wstStart starts collecting what arrives on nc.
func wstStart(e *env, nc net.Conn, client bool) *wstPeer {
	p := &wstPeer{e: e, nc: nc, client: client, headEnd: -1, done: make(chan struct{})}
	go p.run()
	return p
}

func (p *wstPeer) run() {
	defer close(p.done)
	b := make([]byte, 256<<10)
	for {
		n, err := p.nc.Read(b)
		p.mu.Lock()
		p.buf = append(p.buf, b[:n]...)
		answers := p.scan()
		if err != nil {
			p.ended = true
			if err != io.EOF {
				p.endErr = err
			}
		}
		p.mu.Unlock()
		for _, a := range answers {
			p.nc.Write(a) // the other side may be gone: nothing to do then
		}
		if err != nil {
			p.nc.Close() // our side's close answers the Manager's FIN
			return
		}
	}
}

// scan finds the head and decodes the frames that arrived; it returns the
// automatic answers to send.
func (p *wstPeer) scan() (answers [][]byte) {
	if p.headEnd < 0 {
		i := bytes.Index(p.buf, []byte("\r\n\r\n"))
		if i < 0 {
			return nil
		}
		p.headEnd, p.parsed = i+4, i+4
		p.ws = bytes.HasPrefix(p.buf, []byte("HTTP/1.1 101 ")) || bytes.HasPrefix(p.buf, []byte("GET "))
	}
	if !p.ws {
		return nil
	}
	for {
		f, n, ok := wstDecode(p.buf[p.parsed:])
		if !ok {
			return answers
		}
		p.parsed += n
		p.frames = append(p.frames, f)
		switch f.op() {
		case wstOpPing:
			if p.autoPong.Load() {
				answers = append(answers, p.frame(wstFin|wstOpPong, f.payload))
			}
		case wstOpClose:
			if p.autoClose.Load() && !p.closeReply {
				p.closeReply = true
				var code []byte
				if len(f.payload) >= 2 {
					code = f.payload[:2]
				}
				answers = append(answers, p.frame(wstFin|wstOpClose, code))
			}
		}
	}
}

// frame encodes a frame as this peer sends it (masked for a client).
func (p *wstPeer) frame(b0 byte, payload []byte) []byte {
	return wstFrameBytes(b0, payload, p.client)
}

// text, binary, ping and closeFrame are whole frames from this peer.
func (p *wstPeer) text(s string) []byte   { return p.frame(wstFin|wstOpText, []byte(s)) }
func (p *wstPeer) binary(b []byte) []byte { return p.frame(wstFin|wstOpBinary, b) }
func (p *wstPeer) ping(s string) []byte   { return p.frame(wstFin|wstOpPing, []byte(s)) }
func (p *wstPeer) closeFrame(code int, reason string) []byte {
	return p.frame(wstFin|wstOpClose, wstClosePayload(code, reason))
}

// write writes b in one Write, from a goroutine while the Manager is polled.
func (p *wstPeer) write(b ...[]byte) {
	p.e.t.Helper()
	all := bytes.Join(b, nil)
	wstAwait(p.e, "the peer's write", func() error {
		_, err := p.nc.Write(all)
		return err
	})
}

// head is the first head, once it arrived ("" before).
func (p *wstPeer) head() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.headEnd < 0 {
		return ""
	}
	return string(p.buf[:p.headEnd])
}

// waitHead polls until the first head arrived.
func (p *wstPeer) waitHead() string {
	p.e.t.Helper()
	wstPollUntil(p.e, "a head at the peer", func() bool { return p.head() != "" || p.isEnded() })
	h := p.head()
	if h == "" {
		p.mu.Lock()
		got := p.buf
		p.mu.Unlock()
		p.e.t.Fatalf("the connection ended before a whole head; got %q", got)
	}
	return h
}

// framesNow returns the frames decoded so far.
func (p *wstPeer) framesNow() []wstFrame {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.frames)
}

// waitFrames polls until n frames arrived and returns them all.
func (p *wstPeer) waitFrames(n int) []wstFrame {
	p.e.t.Helper()
	wstPollUntil(p.e, fmt.Sprintf("%d frames at the peer", n), func() bool {
		return len(p.framesNow()) >= n || p.isEnded()
	})
	fs := p.framesNow()
	if len(fs) < n {
		p.e.t.Fatalf("the connection ended after %d frames, want %d: %v", len(fs), n, fs)
	}
	return fs
}

func (p *wstPeer) isEnded() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ended
}

// waitEnd polls until the reading ended and returns the error (nil for EOF).
func (p *wstPeer) waitEnd() error {
	p.e.t.Helper()
	wstPollUntil(p.e, "the end of the peer's input", p.isEnded)
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.endErr
}

// waitEOF polls until the peer read EOF, and fails on any other end.
func (p *wstPeer) waitEOF() {
	p.e.t.Helper()
	if err := p.waitEnd(); err != nil {
		p.e.t.Fatalf("the peer's input ended with %v, want EOF", err)
	}
}

// trailing returns the bytes after the decoded frames (an incomplete frame).
func (p *wstPeer) trailing() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.headEnd < 0 {
		return p.buf
	}
	return bytes.Clone(p.buf[p.parsed:])
}

// wstResp is an HTTP response as the peer parsed it.
type wstResp struct {
	status int
	header http.Header
	body   []byte
}

// responses parses the complete HTTP responses received so far.
func (p *wstPeer) responses() []*wstResp {
	p.mu.Lock()
	buf := bytes.Clone(p.buf)
	p.mu.Unlock()
	br := bufio.NewReader(bytes.NewReader(buf))
	var out []*wstResp
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return out
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return out
		}
		out = append(out, &wstResp{status: resp.StatusCode, header: resp.Header, body: body})
		if resp.StatusCode == 101 {
			return out // frames follow
		}
	}
}

// waitResponses polls until n responses arrived.
func (p *wstPeer) waitResponses(n int) []*wstResp {
	p.e.t.Helper()
	wstPollUntil(p.e, fmt.Sprintf("%d responses", n), func() bool { return len(p.responses()) >= n || p.isEnded() })
	rs := p.responses()
	if len(rs) < n {
		p.mu.Lock()
		got := p.buf
		p.mu.Unlock()
		p.e.t.Fatalf("got %d responses, want %d; received %q", len(rs), n, got)
	}
	return rs
}

// wstAwait runs fn (a blocking peer operation) in a goroutine and polls the
// Manager until it returns; an error fails the test.
func wstAwait(e *env, what string, fn func() error) {
	e.t.Helper()
	ch := make(chan error, 1)
	go func() { ch <- fn() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-ch:
			if err != nil {
				e.t.Fatalf("%s: %v", what, err)
			}
			return
		default:
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		e.m.Poll(time.Millisecond)
	}
}

// wstPollUntil polls the Manager until cond holds (20 s at most).
func wstPollUntil(e *env, what string, cond func() bool) {
	e.t.Helper()
	e.pollUntil(20*time.Second, what, cond)
}

// wstDial connects a raw client peer to addr (TLS for TLS tests, its
// handshake done while the Manager is polled).
func wstDial(e *env, addr string) *wstPeer {
	e.t.Helper()
	nc := e.dialPeer(addr)
	e.t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(60 * time.Second))
	if tc, ok := nc.(*tls.Conn); ok {
		wstAwait(e, "the TLS handshake", tc.Handshake)
	}
	return wstStart(e, nc, true)
}

// wstRequest is a valid handshake request with RFC 6455's example key and
// extra header lines.
func wstRequest(host, target, extra string) []byte {
	return []byte("GET " + target + " HTTP/1.1\r\nHost: " + host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + wstExampleKey +
		"\r\nSec-WebSocket-Version: 13\r\n" + extra + "\r\n")
}

// ---------------------------------------------------------------------------
// What the Manager's handlers saw, per connection. Touched only on the Poll
// goroutine (the test's own).

type wstMsg struct {
	flags  byte
	data   []byte
	code   int    // close frames: CloseCode()
	reason string // close frames: CloseReason()
}

func (m wstMsg) op() byte { return m.flags & 0x0f }

type wstLog struct {
	reads      int      // bytes delivered by EvRead
	http       []string // "METHOD URI" per EvHTTPMsg
	opened     bool
	openURI    string
	openQuery  string
	openStatus int
	openHeader http.Header // the request (server) or response (client) of EvWSOpen
	subproto   string      // WSSubprotocol at EvWSOpen
	msgs       []wstMsg
	ctls       []wstMsg
	seq        []string // "open", "msg", "ctl:<op>", "error", "close", in order
	errs       []error
	closed     bool
	closedAt   time.Time
}

// msgData returns the messages' payloads.
func (lg *wstLog) msgData() []string {
	var s []string
	for _, m := range lg.msgs {
		s = append(s, string(m.data))
	}
	return s
}

type wstRec struct {
	conns []*meerkat.Conn // in order of their first event
	logs  map[*meerkat.Conn]*wstLog
}

func (r *wstRec) log(c *meerkat.Conn) *wstLog {
	if r.logs == nil {
		r.logs = map[*meerkat.Conn]*wstLog{}
	}
	lg := r.logs[c]
	if lg == nil {
		lg = &wstLog{}
		r.logs[c] = lg
		r.conns = append(r.conns, c)
	}
	return lg
}

func (r *wstRec) record(c *meerkat.Conn, ev meerkat.Event, data any) {
	if c.IsListening() || ev == meerkat.EvPoll {
		return
	}
	lg := r.log(c)
	switch ev {
	case meerkat.EvRead:
		lg.reads += data.(int)
	case meerkat.EvHTTPMsg:
		hm := data.(*meerkat.HTTPMessage)
		lg.http = append(lg.http, string(hm.Method)+" "+string(hm.URI))
	case meerkat.EvWSOpen:
		hm := data.(*meerkat.HTTPMessage)
		lg.opened = true
		lg.openURI, lg.openQuery, lg.openStatus = string(hm.URI), string(hm.Query), hm.Status
		lg.openHeader = http.Header{}
		for _, h := range hm.Headers {
			lg.openHeader.Add(string(h.Name), string(h.Value))
		}
		lg.subproto = meerkat.WSSubprotocol(c)
		lg.seq = append(lg.seq, "open")
	case meerkat.EvWSMsg:
		wm := data.(*meerkat.WSMessage)
		lg.msgs = append(lg.msgs, wstMsg{flags: wm.Flags, data: bytes.Clone(wm.Data)})
		lg.seq = append(lg.seq, "msg")
	case meerkat.EvWSCtl:
		wm := data.(*meerkat.WSMessage)
		lg.ctls = append(lg.ctls, wstMsg{flags: wm.Flags, data: bytes.Clone(wm.Data), code: wm.CloseCode(), reason: string(wm.CloseReason())})
		lg.seq = append(lg.seq, fmt.Sprintf("ctl:%x", wm.Op()))
	case meerkat.EvError:
		lg.errs = append(lg.errs, data.(error))
		lg.seq = append(lg.seq, "error")
	case meerkat.EvClose:
		lg.closed, lg.closedAt = true, time.Now()
		lg.seq = append(lg.seq, "close")
	}
}

// wstServer is a checked WebSocket server: every request is upgraded
// (except /plain, answered 200 "plain"), and messages are echoed if asked.
type wstServer struct {
	wstRec
	tls   bool
	addr  string
	extra string // WSUpgrade's extraHeaders
	echo  bool   // send every message back as it came
	// hook runs first on every event; returning true skips the default
	// handling.
	hook func(c *meerkat.Conn, ev meerkat.Event, data any) bool
}

func wstListen(e *env, s *wstServer) *wstServer {
	e.t.Helper()
	s.tls = e.useTLS
	scheme := "http"
	if e.useTLS {
		scheme = "https"
	}
	l, err := e.m.HTTPListen(scheme+"://127.0.0.1:0", e.chk.wrap(s.handle))
	if err != nil {
		e.t.Fatalf("HTTPListen: %v", err)
	}
	s.addr = l.LocalAddr().String()
	return s
}

func (s *wstServer) handle(c *meerkat.Conn, ev meerkat.Event, data any) {
	s.record(c, ev, data)
	if s.hook != nil && s.hook(c, ev, data) {
		return
	}
	switch ev {
	case meerkat.EvHTTPMsg:
		hm := data.(*meerkat.HTTPMessage)
		if string(hm.URI) == "/plain" {
			meerkat.HTTPReply(c, 200, "", "plain\n")
			return
		}
		meerkat.WSUpgrade(c, hm, s.extra)
	case meerkat.EvWSMsg:
		if s.echo {
			wm := data.(*meerkat.WSMessage)
			meerkat.WSSend(c, wm.Data, wm.Op())
		}
	}
}

// url is the server's ws:// or wss:// URL for path.
func (s *wstServer) url(path string) string {
	if s.tls {
		return "wss://" + s.addr + path
	}
	return "ws://" + s.addr + path
}

// open connects a raw client peer (set up by setup before it sends
// anything) and completes a handshake with extra request header lines; it
// returns the peer and the server's connection.
func (s *wstServer) open(e *env, extra string, setup ...func(*wstPeer)) (*wstPeer, *meerkat.Conn) {
	e.t.Helper()
	p := wstDial(e, s.addr)
	for _, f := range setup {
		f(p)
	}
	p.write(wstRequest(s.addr, "/ws", extra))
	if h := p.waitHead(); !strings.HasPrefix(h, "HTTP/1.1 101 ") {
		e.t.Fatalf("handshake answered %q", h)
	}
	c := s.connOf(p)
	if c == nil || !s.log(c).opened {
		e.t.Fatalf("no EvWSOpen on the server")
	}
	return p, c
}

// connOf is the server's connection to peer p.
func (s *wstServer) connOf(p *wstPeer) *meerkat.Conn {
	want := p.nc.LocalAddr().String()
	for _, c := range s.conns {
		if c.RemoteAddr().String() == want {
			return c
		}
	}
	return nil
}

// wstSub runs fn as a subtest with an env that reports to it (the Manager
// and the checker are shared).
func wstSub(t *testing.T, e *env, name string, fn func(e *env)) {
	t.Run(name, func(t *testing.T) {
		ce := *e
		ce.t = t
		fn(&ce)
	})
}

// wstClient is a checked WebSocket client.
type wstClient struct {
	wstRec
	c    *meerkat.Conn
	echo bool
	hook func(c *meerkat.Conn, ev meerkat.Event, data any) bool
}

func wstConnect(e *env, url string, opts *meerkat.WSOptions, cl *wstClient) *wstClient {
	e.t.Helper()
	c, err := e.m.WSConnectOpts(url, opts, e.chk.wrap(cl.handle))
	if err != nil {
		e.t.Fatalf("WSConnect %s: %v", url, err)
	}
	cl.c = c
	return cl
}

func (cl *wstClient) handle(c *meerkat.Conn, ev meerkat.Event, data any) {
	cl.record(c, ev, data)
	if cl.hook != nil && cl.hook(c, ev, data) {
		return
	}
	if ev == meerkat.EvWSMsg && cl.echo {
		wm := data.(*meerkat.WSMessage)
		meerkat.WSSend(c, wm.Data, wm.Op())
	}
}

func (cl *wstClient) lg() *wstLog { return cl.log(cl.c) }

// wstAfterError returns the events delivered to c after its EvError.
func wstAfterError(e *env, c *meerkat.Conn) []meerkat.Event {
	ev := e.chk.events(c)
	i := slices.Index(ev, meerkat.EvError)
	if i < 0 {
		return nil
	}
	return ev[i+1:]
}

// wstExpectViolation checks the end of a connection that received a
// protocol violation after one good message "ok": EvError with a *WSError
// of code and nothing but EvClose after it, no other message or control
// frame delivered, exactly one frame on the wire (our close with code,
// masked when we are the client), then EOF.
func wstExpectViolation(e *env, p *wstPeer, c *meerkat.Conn, lg *wstLog, code int, weClient bool) {
	e.t.Helper()
	wstPollUntil(e, "the close after the violation", func() bool { return lg.closed && p.isEnded() })
	if len(lg.errs) != 1 {
		e.t.Fatalf("errors %v, want one *WSError", lg.errs)
	}
	var we *meerkat.WSError
	if !errors.As(lg.errs[0], &we) || we.Code != code || !errors.Is(lg.errs[0], meerkat.ErrWSProtocol) {
		e.t.Fatalf("error %v (%T), want a *WSError with code %d matching ErrWSProtocol", lg.errs[0], lg.errs[0], code)
	}
	if after := wstAfterError(e, c); !slices.Equal(after, []meerkat.Event{meerkat.EvClose}) {
		e.t.Errorf("events after EvError: %v, want only EvClose", after)
	}
	if got := lg.msgData(); !slices.Equal(got, []string{"ok"}) || len(lg.ctls) != 0 {
		e.t.Errorf("messages %q and control frames %d delivered, want only \"ok\"", got, len(lg.ctls))
	}
	fs := p.framesNow()
	if len(fs) != 1 || !fs[0].isClose() || fs[0].closeCode() != code || fs[0].masked != weClient || !fs[0].fin() {
		e.t.Fatalf("frames on the wire %v, want one close frame with code %d (masked %v)", fs, code, weClient)
	}
	if err := p.waitEnd(); err != nil {
		e.t.Errorf("after the close frame: %v, want EOF", err)
	}
	if tr := p.trailing(); len(tr) != 0 {
		e.t.Errorf("%d bytes after the close frame", len(tr))
	}
}

// ---------------------------------------------------------------------------
// Handshake

// TestWSServerHandshake proves that a valid handshake request is answered
// 101 with Upgrade, Connection and the Sec-WebSocket-Accept of RFC 6455's
// example key (and of a random key), without a subprotocol or extension
// nobody asked for; that EvWSOpen carries the request; and that the
// connection then speaks WebSocket.
func TestWSServerHandshake(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		e.m.WS.Compression = true // no offer: no extension
		e.m.WS.Subprotocols = []string{"chat"}
		s := wstListen(e, &wstServer{echo: true})

		p := wstDial(e, s.addr)
		p.write(wstRequest(s.addr, "/chat?room=1", "Origin: http://example.com\r\n"))
		rs := p.waitResponses(1)
		r := rs[0]
		if r.status != 101 {
			t.Fatalf("status %d, want 101", r.status)
		}
		if got := r.header.Get("Sec-WebSocket-Accept"); got != wstExampleAccept {
			t.Errorf("Sec-WebSocket-Accept %q, want %q", got, wstExampleAccept)
		}
		if !strings.EqualFold(r.header.Get("Upgrade"), "websocket") || !strings.EqualFold(r.header.Get("Connection"), "upgrade") {
			t.Errorf("Upgrade %q, Connection %q", r.header.Get("Upgrade"), r.header.Get("Connection"))
		}
		for _, h := range []string{"Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions", "Content-Length", "Transfer-Encoding"} {
			if v := r.header.Values(h); len(v) != 0 {
				t.Errorf("unexpected %s: %q", h, v)
			}
		}
		c := s.connOf(p)
		lg := s.log(c)
		if !lg.opened || lg.openURI != "/chat" || lg.openQuery != "room=1" || lg.openHeader.Get("Origin") != "http://example.com" {
			t.Errorf("EvWSOpen: opened %v, URI %q, query %q, Origin %q", lg.opened, lg.openURI, lg.openQuery, lg.openHeader.Get("Origin"))
		}
		if lg.subproto != "" || meerkat.WSSubprotocol(c) != "" {
			t.Errorf("subprotocol %q without an offer", lg.subproto)
		}
		if !slices.Equal(lg.http, []string{"GET /chat"}) || !slices.Equal(lg.seq, []string{"open"}) {
			t.Errorf("HTTP messages %q, sequence %q", lg.http, lg.seq)
		}
		p.write(p.text("hi"))
		fs := p.waitFrames(1)
		if fs[0].b0 != wstFin|wstOpText || fs[0].masked || string(fs[0].payload) != "hi" {
			t.Errorf("echo %v, want an unmasked text frame \"hi\"", fs[0])
		}

		// A random key gets its own accept.
		key := base64.StdEncoding.EncodeToString(wstRandom(16, 7))
		p2 := wstDial(e, s.addr)
		p2.write([]byte("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n\r\n"))
		r2 := p2.waitResponses(1)[0]
		if r2.status != 101 || r2.header.Get("Sec-WebSocket-Accept") != wstAccept(key) {
			t.Errorf("status %d, accept %q, want 101 and %q", r2.status, r2.header.Get("Sec-WebSocket-Accept"), wstAccept(key))
		}
	})
}

// TestWSServerRejectsBadHandshakes proves that a request that is not a valid
// handshake is answered 400 (426 with "Sec-WebSocket-Version: 13" for
// another version), that no EvWSOpen follows, and that the connection stays
// HTTP: a plain request on it is answered normally (HTTP/1.0 closes, as
// HTTP/1.0 does).
func TestWSServerRejectsBadHandshakes(t *testing.T) {
	const (
		up   = "Upgrade: websocket\r\n"
		conn = "Connection: Upgrade\r\n"
		key  = "Sec-WebSocket-Key: " + wstExampleKey + "\r\n"
		ver  = "Sec-WebSocket-Version: 13\r\n"
	)
	b64 := func(n int) string {
		return "Sec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(make([]byte, n)) + "\r\n"
	}
	cases := []struct {
		name   string
		req    string // after the request line and Host
		method string
		proto  string
		status int
	}{
		{"no Upgrade", conn + key + ver, "GET", "HTTP/1.1", 400},
		{"Upgrade h2c", "Upgrade: h2c\r\n" + conn + key + ver, "GET", "HTTP/1.1", 400},
		{"no Connection", up + key + ver, "GET", "HTTP/1.1", 400},
		{"Connection keep-alive", up + "Connection: keep-alive\r\n" + key + ver, "GET", "HTTP/1.1", 400},
		{"no key", up + conn + ver, "GET", "HTTP/1.1", 400},
		{"key of 15 bytes", up + conn + b64(15) + ver, "GET", "HTTP/1.1", 400},
		{"key of 17 bytes", up + conn + b64(17) + ver, "GET", "HTTP/1.1", 400},
		{"key not base64", up + conn + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j!Q==\r\n" + ver, "GET", "HTTP/1.1", 400},
		{"empty key", up + conn + "Sec-WebSocket-Key: \r\n" + ver, "GET", "HTTP/1.1", 400},
		{"POST", up + conn + key + ver + "Content-Length: 0\r\n", "POST", "HTTP/1.1", 400},
		{"HTTP/1.0", up + conn + key + ver, "GET", "HTTP/1.0", 400},
		{"version 8", up + conn + key + "Sec-WebSocket-Version: 8\r\n", "GET", "HTTP/1.1", 426},
	}
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		s := wstListen(e, &wstServer{})
		for _, tc := range cases {
			p := wstDial(e, s.addr)
			p.write([]byte(tc.method + " /ws " + tc.proto + "\r\nHost: " + s.addr + "\r\n" + tc.req + "\r\n"))
			r := p.waitResponses(1)[0]
			if r.status != tc.status {
				t.Errorf("%s: status %d, want %d", tc.name, r.status, tc.status)
			}
			if tc.status == 426 && r.header.Get("Sec-WebSocket-Version") != "13" {
				t.Errorf("%s: Sec-WebSocket-Version %q, want 13", tc.name, r.header.Get("Sec-WebSocket-Version"))
			}
			if r.header.Get("Sec-WebSocket-Accept") != "" || r.header.Get("Upgrade") != "" {
				t.Errorf("%s: a rejection with Upgrade %q, Sec-WebSocket-Accept %q", tc.name, r.header.Get("Upgrade"), r.header.Get("Sec-WebSocket-Accept"))
			}
			c := s.connOf(p)
			if tc.proto == "HTTP/1.0" {
				if err := p.waitEnd(); err != nil {
					t.Errorf("%s: %v, want EOF after the answer to HTTP/1.0", tc.name, err)
				}
			} else {
				p.write([]byte("GET /plain HTTP/1.1\r\nHost: x\r\n\r\n"))
				rs := p.waitResponses(2)
				if rs[1].status != 200 || string(rs[1].body) != "plain\n" {
					t.Errorf("%s: the next request got %d %q, want 200 \"plain\\n\"", tc.name, rs[1].status, rs[1].body)
				}
				if got := s.log(c).http; !slices.Equal(got, []string{tc.method + " /ws", "GET /plain"}) {
					t.Errorf("%s: HTTP messages %q", tc.name, got)
				}
			}
			if s.log(c).opened {
				t.Errorf("%s: EvWSOpen after a rejected handshake", tc.name)
			}
			p.nc.Close()
			wstPollUntil(e, tc.name+": the close", func() bool { return s.log(c).closed })
		}
	})
}

// TestWSServerSubprotocols proves subprotocol negotiation: the server's
// preference order wins over the client's, an offer in several header
// lines counts, no match means no Sec-WebSocket-Protocol (and
// WSSubprotocol ""), and extraHeaders naming Sec-WebSocket-Protocol decide
// alone (exactly one such header in the 101).
func TestWSServerSubprotocols(t *testing.T) {
	cases := []struct {
		name, offer, extra, want string
	}{
		{"server preference", "Sec-WebSocket-Protocol: chat, chat.v2\r\n", "", "chat.v2"},
		{"one match", "Sec-WebSocket-Protocol: other, chat\r\n", "", "chat"},
		{"several lines", "Sec-WebSocket-Protocol: other\r\nSec-WebSocket-Protocol: chat\r\n", "", "chat"},
		{"no match", "Sec-WebSocket-Protocol: chat.v3, mqtt\r\n", "", ""},
		{"no offer", "", "", ""},
		{"extraHeaders decide", "Sec-WebSocket-Protocol: chat.v2\r\n", "Sec-WebSocket-Protocol: custom\r\n", "custom"},
	}
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		e.m.WS.Subprotocols = []string{"chat.v2", "chat"}
		s := wstListen(e, &wstServer{})
		for _, tc := range cases {
			s.extra = tc.extra
			p, c := s.open(e, tc.offer)
			r := p.responses()[0]
			got := r.header.Values("Sec-WebSocket-Protocol")
			if tc.want == "" && len(got) != 0 || tc.want != "" && !slices.Equal(got, []string{tc.want}) {
				t.Errorf("%s: Sec-WebSocket-Protocol %q, want %q", tc.name, got, tc.want)
			}
			if sp := s.log(c).subproto; sp != tc.want {
				t.Errorf("%s: WSSubprotocol %q, want %q", tc.name, sp, tc.want)
			}
		}
	})
}

// TestWSServerExtraResponseHeaders proves that WSUpgrade's extraHeaders go
// into the 101 as given, repeated fields included.
func TestWSServerExtraResponseHeaders(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		s := wstListen(e, &wstServer{extra: "X-Served-By: meerkat-test\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n", echo: true})
		p, _ := s.open(e, "")
		r := p.responses()[0]
		if r.header.Get("X-Served-By") != "meerkat-test" || !slices.Equal(r.header.Values("Set-Cookie"), []string{"a=1", "b=2"}) {
			t.Errorf("101 headers %v", r.header)
		}
		if r.header.Get("Sec-WebSocket-Accept") != wstExampleAccept {
			t.Errorf("Sec-WebSocket-Accept %q", r.header.Get("Sec-WebSocket-Accept"))
		}
		p.write(p.text("x"))
		if fs := p.waitFrames(1); string(fs[0].payload) != "x" {
			t.Errorf("echo %v", fs[0])
		}
	})
}

// TestWSServerFramesBehindRequest proves that frames sent right behind the
// handshake request, in the same write, are not lost: messages, a ping
// (answered) and a close (answered, then the connection ends).
func TestWSServerFramesBehindRequest(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		s := wstListen(e, &wstServer{})
		p := wstDial(e, s.addr)
		p.write(wstRequest(s.addr, "/", ""),
			p.text("one"),
			p.ping("p"),
			p.binary([]byte{1, 2, 3}),
			p.frame(wstOpText, []byte("tw")), p.frame(wstFin|wstOpCont, []byte("o")),
			p.closeFrame(1000, "done"))
		if h := p.waitHead(); !strings.HasPrefix(h, "HTTP/1.1 101 ") {
			t.Fatalf("answer %q", h)
		}
		fs := p.waitFrames(2)
		p.waitEOF()
		c := s.connOf(p)
		lg := s.log(c)
		wstPollUntil(e, "the server's close", func() bool { return lg.closed })
		if got := lg.msgData(); !slices.Equal(got, []string{"one", "\x01\x02\x03", "two"}) {
			t.Errorf("messages %q", got)
		}
		if !slices.Equal(lg.seq, []string{"open", "msg", "ctl:9", "msg", "msg", "ctl:8", "close"}) {
			t.Errorf("sequence %q", lg.seq)
		}
		if len(fs) != 2 || fs[0].b0 != wstFin|wstOpPong || string(fs[0].payload) != "p" || !fs[1].isClose() || fs[1].closeCode() != 1000 {
			t.Errorf("frames %v, want the pong \"p\" and a close 1000", fs)
		}
		if len(lg.errs) != 0 {
			t.Errorf("errors %v", lg.errs)
		}
	})
}

// TestWSServerUpgradeFromHeaders proves that WSUpgrade called on
// EvHTTPHeaders (before EvHTTPMsg) upgrades the connection, with no
// EvHTTPMsg after it, and that frames behind the request are read as
// frames.
func TestWSServerUpgradeFromHeaders(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		s := wstListen(e, &wstServer{echo: true})
		s.hook = func(c *meerkat.Conn, ev meerkat.Event, data any) bool {
			if ev == meerkat.EvHTTPHeaders {
				meerkat.WSUpgrade(c, data.(*meerkat.HTTPMessage), "")
				return true
			}
			return false
		}
		p := wstDial(e, s.addr)
		p.write(wstRequest(s.addr, "/", ""), p.text("behind"))
		fs := p.waitFrames(1)
		r := p.responses()[0]
		lg := s.log(s.connOf(p))
		if r.status != 101 || r.header.Get("Sec-WebSocket-Accept") != wstExampleAccept {
			t.Errorf("answer %d, accept %q", r.status, r.header.Get("Sec-WebSocket-Accept"))
		}
		if string(fs[0].payload) != "behind" || len(lg.http) != 0 || !slices.Equal(lg.msgData(), []string{"behind"}) {
			t.Errorf("echo %v, HTTP messages %q, messages %q", fs[0], lg.http, lg.msgData())
		}
	})
}

// TestWSServerDeferredUpgrade proves that WSUpgrade may answer a handshake
// later than EvHTTPMsg (from EvWakeup, as its documentation allows), with
// the right Sec-WebSocket-Accept even when the receive buffer the request
// arrived in has been reused meanwhile, and that frames sent behind the
// request wait for it.
func TestWSServerDeferredUpgrade(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		var held *meerkat.HTTPMessage
		s := wstListen(e, &wstServer{echo: true})
		s.hook = func(c *meerkat.Conn, ev meerkat.Event, data any) bool {
			switch ev {
			case meerkat.EvHTTPMsg:
				hm := data.(*meerkat.HTTPMessage)
				if string(hm.URI) == "/later" {
					held = hm // answered from EvWakeup
					return true
				}
			case meerkat.EvWakeup:
				meerkat.WSUpgrade(c, held, "X-Deferred: yes\r\n")
				return true
			}
			return false
		}
		for _, behind := range []bool{false, true} {
			held = nil
			p := wstDial(e, s.addr)
			req := wstRequest(s.addr, "/later", "")
			if behind {
				req = append(req, p.text("behind")...)
			}
			p.write(req)
			wstPollUntil(e, "the deferred request", func() bool { return held != nil })
			c := s.connOf(p)
			// Other traffic meanwhile: plain requests on another connection.
			q := wstDial(e, s.addr)
			q.write([]byte("GET /plain HTTP/1.1\r\nHost: x\r\nX-Filler: " + strings.Repeat("f", 3000) + "\r\n\r\n"))
			q.waitResponses(1)
			if !e.m.Wakeup(c.ID(), nil) {
				t.Fatalf("Wakeup refused")
			}
			r := p.waitResponses(1)[0]
			if r.status != 101 || r.header.Get("Sec-WebSocket-Accept") != wstExampleAccept || r.header.Get("X-Deferred") != "yes" {
				t.Errorf("behind %v: deferred answer %d %q, accept %q (want %q), X-Deferred %q", behind, r.status, r.body, r.header.Get("Sec-WebSocket-Accept"), wstExampleAccept, r.header.Get("X-Deferred"))
				continue
			}
			p.write(p.text("after"))
			want := []string{"after"}
			if behind {
				want = []string{"behind", "after"}
			}
			fs := p.waitFrames(len(want))
			var got []string
			for _, f := range fs {
				got = append(got, string(f.payload))
			}
			if !slices.Equal(got, want) || !slices.Equal(s.log(c).msgData(), want) {
				t.Errorf("behind %v: echoes %q, messages %q, want %q", behind, got, s.log(c).msgData(), want)
			}
		}
	})
}

// ---------------------------------------------------------------------------
// Frames

var wstSizes = []int{0, 125, 126, 65535, 65536, 1 << 20, 4 << 20}

// TestWSServerMessageSizes proves that messages of 0, 125, 126, 65535,
// 65536 bytes, 1 MiB and 4 MiB, text and binary, then 5000 small ones in
// the same write, are received whole and intact (EvWSMsg with FIN and the
// opcode in Flags), and sent back in one unmasked frame each with the
// minimal length encoding.
func TestWSServerMessageSizes(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		s := wstListen(e, &wstServer{echo: true})
		p, c := s.open(e, "")
		type msg struct {
			op   byte
			data []byte
		}
		var want []msg
		var out [][]byte
		for i, n := range wstSizes {
			for _, op := range []byte{wstOpText, wstOpBinary} {
				d := wstPayload(op, n, i)
				want = append(want, msg{op, d})
				out = append(out, p.frame(wstFin|op, d))
			}
		}
		// Many small frames in one write, in one read or a few.
		for i := range 5000 {
			d := []byte(fmt.Sprint(i))
			want = append(want, msg{wstOpText, d})
			out = append(out, p.frame(wstFin|wstOpText, d))
		}
		p.write(out...)
		fs := p.waitFrames(len(want))
		lg := s.log(c)
		if len(lg.msgs) != len(want) {
			t.Fatalf("%d messages delivered, want %d", len(lg.msgs), len(want))
		}
		for i, w := range want {
			if m := lg.msgs[i]; m.flags != wstFin|w.op || !bytes.Equal(m.data, w.data) {
				t.Errorf("message %d (%d bytes, op %d): delivered flags %#x, %d bytes", i, len(w.data), w.op, m.flags, len(m.data))
			}
			f := fs[i]
			if f.b0 != wstFin|w.op || f.masked || f.hdrLen != wstMinimalHeader(len(w.data), false) || !bytes.Equal(f.payload, w.data) {
				t.Errorf("echo %d (%d bytes): %v, header %d bytes", i, len(w.data), f, f.hdrLen)
			}
		}
		if len(fs) != len(want) || len(lg.errs) != 0 {
			t.Errorf("%d frames, errors %v", len(fs), lg.errs)
		}
	})
}

// TestWSServerFragments proves that fragmented messages (one of 1000
// one-byte fragments) are reassembled into one EvWSMsg with the first
// frame's opcode, that control frames between
// fragments are delivered (EvWSCtl) at their place and pings answered by
// pongs in order, and that WSSendFrame sends fragments as given, with a
// ping between them.
func TestWSServerFragments(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		s := wstListen(e, &wstServer{})
		s.hook = func(c *meerkat.Conn, ev meerkat.Event, data any) bool {
			if ev == meerkat.EvWSMsg && string(data.(*meerkat.WSMessage).Data) == "send fragments" {
				n := meerkat.WSSendFrame(c, []byte("ab"), meerkat.WSOpText, false)
				n2 := meerkat.WSSend(c, []byte("x"), meerkat.WSOpPing)
				n3 := meerkat.WSSendFrame(c, []byte("cd"), meerkat.WSOpContinuation, false)
				n4 := meerkat.WSSendFrame(c, []byte("e"), meerkat.WSOpContinuation, true)
				if n != 4 || n2 != 3 || n3 != 4 || n4 != 3 {
					t.Errorf("WSSendFrame/WSSend returned %d %d %d %d, want 4 3 4 3", n, n2, n3, n4)
				}
			}
			return false
		}
		p, c := s.open(e, "")
		// A text of 1000 one-byte fragments (a 4-byte character among them).
		long := append([]byte(strings.Repeat("x", 500)+"\U0001F600"), strings.Repeat("y", 496)...)
		var thousand []byte
		for i, b := range long {
			op := byte(wstOpCont)
			if i == 0 {
				op = wstOpText
			}
			if i == len(long)-1 {
				op |= wstFin
			}
			thousand = append(thousand, p.frame(op, []byte{b})...)
		}
		p.write(
			p.frame(wstOpText, []byte("Hel")), p.ping("1"),
			p.frame(wstOpCont, []byte("lo, ")), p.ping("2"), p.frame(wstFin|wstOpPong, []byte("unsolicited")),
			p.frame(wstFin|wstOpCont, []byte("world")),
			p.frame(wstOpBinary, []byte{0, 1}), p.ping("3"),
			p.frame(wstOpCont, nil),
			p.frame(wstFin|wstOpCont, []byte{2}),
			p.text("send fragments"),
			thousand)
		fs := p.waitFrames(7)
		lg := s.log(c)
		wstPollUntil(e, "the message of 1000 fragments", func() bool { return len(lg.msgs) >= 4 || lg.closed })
		want := []wstMsg{{flags: 0x81, data: []byte("Hello, world")}, {flags: 0x82, data: []byte{0, 1, 2}}, {flags: 0x81, data: []byte("send fragments")}, {flags: 0x81, data: long}}
		if len(lg.msgs) != len(want) {
			t.Fatalf("messages %q", lg.msgData())
		}
		for i, w := range want {
			if lg.msgs[i].flags != w.flags || !bytes.Equal(lg.msgs[i].data, w.data) {
				t.Errorf("message %d: flags %#x %q, want %#x %q", i, lg.msgs[i].flags, lg.msgs[i].data, w.flags, w.data)
			}
		}
		if !slices.Equal(lg.seq, []string{"open", "ctl:9", "ctl:9", "ctl:a", "msg", "ctl:9", "msg", "msg", "msg"}) {
			t.Errorf("sequence %q", lg.seq)
		}
		var ctl []string
		for _, m := range lg.ctls {
			ctl = append(ctl, string(m.data))
		}
		if !slices.Equal(ctl, []string{"1", "2", "unsolicited", "3"}) {
			t.Errorf("control payloads %q", ctl)
		}
		type fr struct {
			b0 byte
			p  string
		}
		wantFrames := []fr{{0x8a, "1"}, {0x8a, "2"}, {0x8a, "3"}, {0x01, "ab"}, {0x89, "x"}, {0x00, "cd"}, {0x80, "e"}}
		for i, w := range wantFrames {
			if fs[i].b0 != w.b0 || string(fs[i].payload) != w.p || fs[i].masked {
				t.Errorf("frame %d: %v, want b0 %#x %q", i, fs[i], w.b0, w.p)
			}
		}
		if len(fs) != len(wantFrames) {
			t.Errorf("frames %v", fs)
		}
	})
}

// wstStreamSpec is a byte stream of frames in pieces, and what a receiver
// must make of it.
type wstStreamSpec struct {
	pieces []wstPiece
	msgs   []wstMsg // messages, in order
	ctls   []string // control frames "<op>:<payload>", in order
	pongs  []string // the pongs that answer the pings, in order
}

// wstPiece is part of the stream; written piece by piece, it goes out in
// writes of step bytes.
type wstPiece struct {
	b    []byte
	step int
}

func (sp *wstStreamSpec) all() []byte {
	var b []byte
	for _, pc := range sp.pieces {
		b = append(b, pc.b...)
	}
	return b
}

// wstStream builds a stream of every kind of frame: messages of 0 to 1000
// bytes and one with a 64-bit length, fragments (empty ones too) with UTF-8
// sequences split across them, pings and an unsolicited pong between
// fragments. Frames are masked when mask (a client's stream).
func wstStream(mask bool) *wstStreamSpec {
	sp := &wstStreamSpec{}
	add := func(b0 byte, p []byte) {
		sp.pieces = append(sp.pieces, wstPiece{wstFrameBytes(b0, p, mask), 1})
	}
	ping := func(s string) {
		add(wstFin|wstOpPing, []byte(s))
		sp.ctls = append(sp.ctls, "9:"+s)
		sp.pongs = append(sp.pongs, s)
	}
	msg := func(op byte, p []byte) {
		add(wstFin|op, p)
		sp.msgs = append(sp.msgs, wstMsg{flags: wstFin | op, data: p})
	}
	msg(wstOpText, []byte("hello"))
	msg(wstOpBinary, []byte{})
	ping("p1")
	msg(wstOpText, wstPayload(wstOpText, 125, 1))
	msg(wstOpBinary, wstPayload(wstOpBinary, 126, 2))
	msg(wstOpText, wstPayload(wstOpText, 1000, 3))

	// "héllo wörld €😀!" cut inside its multi-byte sequences.
	s := []byte("h\u00e9llo w\u00f6rld \u20ac\U0001F600!")
	cuts := []int{0, 2, 9, 16, 16, 18, 19, 20, len(s)}
	for i := 0; i+1 < len(cuts); i++ {
		op := byte(wstOpCont)
		if i == 0 {
			op = wstOpText
		}
		if i == len(cuts)-2 {
			op |= wstFin
		}
		add(op, s[cuts[i]:cuts[i+1]])
		switch i {
		case 1:
			ping("p2")
		case 3:
			add(wstFin|wstOpPong, []byte("unsolicited"))
			sp.ctls = append(sp.ctls, "a:unsolicited")
		}
	}
	sp.msgs = append(sp.msgs, wstMsg{flags: 0x81, data: s})

	bin := wstPayload(wstOpBinary, 300, 4)
	add(wstOpBinary, bin[:100])
	ping("p3")
	add(wstOpCont, nil)
	add(wstFin|wstOpCont, bin[100:])
	sp.msgs = append(sp.msgs, wstMsg{flags: 0x82, data: bin})

	// A 64-bit length: header byte by byte, payload in larger steps.
	big := wstPayload(wstOpBinary, 70000, 5)
	f := wstFrameBytes(wstFin|wstOpBinary, big, mask)
	hl := wstMinimalHeader(len(big), mask)
	sp.pieces = append(sp.pieces, wstPiece{f[:hl], 1}, wstPiece{f[hl:], 7000})
	sp.msgs = append(sp.msgs, wstMsg{flags: 0x82, data: big})
	msg(wstOpText, []byte("end"))
	return sp
}

// wstCheckStream checks what a receiver made of a stream, and the pongs it
// sent back.
func wstCheckStream(t testing.TB, sp *wstStreamSpec, lg *wstLog, fs []wstFrame, masked bool) {
	t.Helper()
	if len(lg.msgs) != len(sp.msgs) {
		t.Fatalf("%d messages, want %d: %q", len(lg.msgs), len(sp.msgs), lg.msgData())
	}
	for i, w := range sp.msgs {
		if lg.msgs[i].flags != w.flags || !bytes.Equal(lg.msgs[i].data, w.data) {
			t.Errorf("message %d: flags %#x, %d bytes %.40q; want %#x, %d bytes %.40q", i, lg.msgs[i].flags, len(lg.msgs[i].data), lg.msgs[i].data, w.flags, len(w.data), w.data)
		}
	}
	var ctl []string
	for _, m := range lg.ctls {
		ctl = append(ctl, fmt.Sprintf("%x:%s", m.op(), m.data))
	}
	if !slices.Equal(ctl, sp.ctls) {
		t.Errorf("control frames %q, want %q", ctl, sp.ctls)
	}
	var pongs []string
	for _, f := range fs {
		if f.b0 != wstFin|wstOpPong || f.masked != masked {
			t.Errorf("unexpected frame %v", f)
		}
		pongs = append(pongs, string(f.payload))
	}
	if !slices.Equal(pongs, sp.pongs) {
		t.Errorf("pongs %q, want %q", pongs, sp.pongs)
	}
	if len(lg.errs) != 0 {
		t.Errorf("errors %v", lg.errs)
	}
}

// wstLockstep writes the pieces in writes of their step size, each only
// after the receiver's EvRead took the one before, so that every write is
// a read of its own.
func wstLockstep(e *env, nc net.Conn, pieces []wstPiece, lg *wstLog) {
	e.t.Helper()
	for _, pc := range pieces {
		for b := pc.b; len(b) > 0; {
			n := min(pc.step, len(b))
			want := lg.reads + n
			if _, err := nc.Write(b[:n]); err != nil {
				e.t.Fatalf("peer write: %v", err)
			}
			b = b[n:]
			wstPollUntil(e, "the receiver's read", func() bool { return lg.reads >= want || lg.closed })
			if lg.reads != want {
				e.t.Fatalf("receiver read %d bytes, want %d", lg.reads, want)
			}
		}
	}
}

// TestWSServerStreamSplitAnywhere proves that the same byte stream gives the
// same messages, control frames and pongs whether it arrives in one write
// or one byte per read (larger steps inside a 70000-byte payload), headers
// of every length and UTF-8 sequences split across fragments included.
func TestWSServerStreamSplitAnywhere(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		s := wstListen(e, &wstServer{})
		for _, mode := range []string{"one write", "byte by byte"} {
			sp := wstStream(true)
			p, c := s.open(e, "")
			lg := s.log(c)
			if mode == "one write" {
				p.write(sp.all())
			} else {
				wstLockstep(e, p.nc, sp.pieces, lg)
			}
			wstPollUntil(e, mode+": every message", func() bool { return len(lg.msgs) >= len(sp.msgs) || lg.closed })
			fs := p.waitFrames(len(sp.pongs))
			wstCheckStream(t, sp, lg, fs, false)
		}
	})
}

// TestWSServerViolations proves, for every protocol violation a client can
// commit, that the server reports EvError with a *WSError of the right
// code (1002, 1007, 1009) and delivers nothing more but EvClose, sends one
// close frame with that code, then closes the TCP connection; that the bad
// frame and whatever follows it are not delivered; and that a message over
// Manager.WS.MaxMessage is refused from its header alone.
func TestWSServerViolations(t *testing.T) {
	type tcase struct {
		name     string
		bad      func(t testing.TB, p *wstPeer) [][]byte
		code     int
		max      int    // Manager.WS.MaxMessage, 0 for the default
		comp     bool   // Manager.WS.Compression
		offer    string // the request's extra header lines
		noFollow bool   // send nothing after the bad bytes
	}
	masked := func(hdr []byte) []byte { return append(hdr, 1, 2, 3, 4) } // a masking key
	def := &wstDeflater{}
	compressed := func(t testing.TB, s string) []byte { return def.deflate(t, []byte(s)) }
	cases := []tcase{
		{name: "invalid UTF-8", code: 1007, bad: func(t testing.TB, p *wstPeer) [][]byte { return [][]byte{p.text("a\xffb")} }},
		{name: "invalid UTF-8 split across fragments", code: 1007, bad: func(t testing.TB, p *wstPeer) [][]byte {
			return [][]byte{p.frame(wstOpText, []byte("ab\xe2\x82")), p.frame(wstFin|wstOpCont, []byte("\x28"))}
		}},
		{name: "text ending inside a UTF-8 sequence", code: 1007, bad: func(t testing.TB, p *wstPeer) [][]byte {
			return [][]byte{p.frame(wstOpText, []byte("a")), p.frame(wstFin|wstOpCont, []byte("\xe2\x82"))}
		}},
		{name: "single frame ending inside a UTF-8 sequence", code: 1007, bad: func(t testing.TB, p *wstPeer) [][]byte { return [][]byte{p.text("a\xf0\x9f\x98")} }},
		{name: "invalid UTF-8 at the end of a 300 KiB text", code: 1007, bad: func(t testing.TB, p *wstPeer) [][]byte {
			return [][]byte{p.text(string(wstPayload(wstOpText, 300<<10, 0)) + "\xc0\xaf")}
		}},
		{name: "UTF-16 surrogate", code: 1007, bad: func(t testing.TB, p *wstPeer) [][]byte { return [][]byte{p.text("\xed\xa0\x80")} }},
		{name: "unmasked frame", code: 1002, bad: func(t testing.TB, p *wstPeer) [][]byte {
			return [][]byte{wstFrameBytes(wstFin|wstOpText, []byte("x"), false)}
		}},
		{name: "RSV1 without an extension", code: 1002, bad: func(t testing.TB, p *wstPeer) [][]byte {
			return [][]byte{p.frame(wstFin|wstRSV1|wstOpText, []byte("x"))}
		}},
		{name: "RSV2", code: 1002, bad: func(t testing.TB, p *wstPeer) [][]byte {
			return [][]byte{p.frame(wstFin|wstRSV2|wstOpBinary, []byte("x"))}
		}},
		{name: "RSV3", code: 1002, bad: func(t testing.TB, p *wstPeer) [][]byte { return [][]byte{p.frame(wstFin|wstRSV3|wstOpPing, nil)} }},
		{name: "opcode 3", code: 1002, bad: func(t testing.TB, p *wstPeer) [][]byte { return [][]byte{p.frame(wstFin|0x3, []byte("x"))} }},
		{name: "opcode 0xB", code: 1002, bad: func(t testing.TB, p *wstPeer) [][]byte { return [][]byte{p.frame(wstFin|0xB, nil)} }},
		{name: "continuation without a message", code: 1002, bad: func(t testing.TB, p *wstPeer) [][]byte { return [][]byte{p.frame(wstFin|wstOpCont, []byte("x"))} }},
		{name: "new data frame inside a fragmented message", code: 1002, bad: func(t testing.TB, p *wstPeer) [][]byte {
			return [][]byte{p.frame(wstOpText, []byte("a")), p.frame(wstFin|wstOpText, []byte("b"))}
		}},
		{name: "ping of 126 bytes", code: 1002, bad: func(t testing.TB, p *wstPeer) [][]byte { return [][]byte{p.frame(wstFin|wstOpPing, make([]byte, 126))} }},
		{name: "fragmented ping", code: 1002, bad: func(t testing.TB, p *wstPeer) [][]byte { return [][]byte{p.frame(wstOpPing, []byte("x"))} }},
		{name: "fragmented close", code: 1002, bad: func(t testing.TB, p *wstPeer) [][]byte {
			return [][]byte{p.frame(wstOpClose, wstClosePayload(1000, ""))}
		}},
		{name: "close with a 1-byte payload", code: 1002, bad: func(t testing.TB, p *wstPeer) [][]byte { return [][]byte{p.frame(wstFin|wstOpClose, []byte{3})} }},
		{name: "close code 1005", code: 1002, bad: func(t testing.TB, p *wstPeer) [][]byte { return [][]byte{p.closeFrame(1005, "")} }},
		{name: "close code 1006", code: 1002, bad: func(t testing.TB, p *wstPeer) [][]byte { return [][]byte{p.closeFrame(1006, "")} }},
		{name: "close code 999", code: 1002, bad: func(t testing.TB, p *wstPeer) [][]byte { return [][]byte{p.closeFrame(999, "")} }},
		{name: "close code 5000", code: 1002, bad: func(t testing.TB, p *wstPeer) [][]byte { return [][]byte{p.closeFrame(5000, "")} }},
		{name: "close code 1015", code: 1002, bad: func(t testing.TB, p *wstPeer) [][]byte { return [][]byte{p.closeFrame(1015, "")} }},
		{name: "close reason not UTF-8", code: 1007, bad: func(t testing.TB, p *wstPeer) [][]byte { return [][]byte{p.closeFrame(1000, "\xff")} }},
		{name: "1 GiB frame header over the default MaxMessage", code: 1009, noFollow: true, bad: func(t testing.TB, p *wstPeer) [][]byte {
			return [][]byte{masked(binary.BigEndian.AppendUint64([]byte{wstFin | wstOpBinary, 0x80 | 127}, 1<<30))}
		}},
		{name: "one byte over MaxMessage", code: 1009, max: 1000, noFollow: true, bad: func(t testing.TB, p *wstPeer) [][]byte {
			return [][]byte{p.frame(wstFin|wstOpBinary, make([]byte, 1001))[:8]} // the header only
		}},
		{name: "fragments over MaxMessage", code: 1009, max: 1000, noFollow: true, bad: func(t testing.TB, p *wstPeer) [][]byte {
			return [][]byte{p.frame(wstOpText, wstPayload(wstOpText, 600, 0)), p.frame(wstFin|wstOpCont, wstPayload(wstOpText, 600, 0))[:8]}
		}},
		{name: "64-bit length with the top bit set", code: 1002, noFollow: true, bad: func(t testing.TB, p *wstPeer) [][]byte {
			return [][]byte{masked(binary.BigEndian.AppendUint64([]byte{wstFin | wstOpBinary, 0x80 | 127}, 1<<63|5))}
		}},
		{name: "16-bit length not minimal", code: 1002, bad: func(t testing.TB, p *wstPeer) [][]byte {
			return [][]byte{append(masked([]byte{wstFin | wstOpText, 0x80 | 126, 0, 5}), 'h'^1, 'e'^2, 'l'^3, 'l'^4, 'o'^1)}
		}},
		{name: "compressed message without negotiation", code: 1002, comp: true, bad: func(t testing.TB, p *wstPeer) [][]byte {
			return [][]byte{p.frame(wstFin|wstRSV1|wstOpText, compressed(t, strings.Repeat("hello ", 50)))}
		}},
		{name: "RSV1 on a continuation frame", code: 1002, comp: true, offer: "Sec-WebSocket-Extensions: permessage-deflate\r\n", bad: func(t testing.TB, p *wstPeer) [][]byte {
			return [][]byte{p.frame(wstRSV1|wstOpText, compressed(t, "abc")), p.frame(wstFin|wstRSV1|wstOpCont, nil)}
		}},
		{name: "RSV1 on a ping", code: 1002, comp: true, offer: "Sec-WebSocket-Extensions: permessage-deflate\r\n", bad: func(t testing.TB, p *wstPeer) [][]byte {
			return [][]byte{p.frame(wstFin|wstRSV1|wstOpPing, nil)}
		}},
		{name: "inflated message over MaxMessage", code: 1009, max: 1000, comp: true, offer: "Sec-WebSocket-Extensions: permessage-deflate\r\n", bad: func(t testing.TB, p *wstPeer) [][]byte {
			return [][]byte{p.frame(wstFin|wstRSV1|wstOpBinary, compressed(t, strings.Repeat("z", 10000)))}
		}},
		{name: "corrupt compressed data", code: 1007, comp: true, offer: "Sec-WebSocket-Extensions: permessage-deflate\r\n", bad: func(t testing.TB, p *wstPeer) [][]byte {
			return [][]byte{p.frame(wstFin|wstRSV1|wstOpBinary, []byte{0xff, 0xff, 0xff, 0xff})}
		}},
	}
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		s := wstListen(e, &wstServer{})
		for _, tc := range cases {
			wstSub(t, e, tc.name, func(e *env) {
				e.m.WS.MaxMessage, e.m.WS.Compression = tc.max, tc.comp
				p, c := s.open(e, tc.offer)
				out := append([][]byte{p.text("ok")}, tc.bad(e.t, p)...)
				if !tc.noFollow {
					out = append(out, p.text("after"), p.ping("after"))
				}
				p.write(out...)
				wstExpectViolation(e, p, c, s.log(c), tc.code, false)
			})
		}
	})
}

// ---------------------------------------------------------------------------
// Close handshake

// TestWSServerPeerClose proves that the peer's close frame is delivered
// (EvWSCtl with its code and reason), answered by exactly one close frame
// with the same code (an empty one for none), followed by our FIN; that
// data and pings the peer sends after its close are not delivered nor
// answered; and that the connection then closes without error.
func TestWSServerPeerClose(t *testing.T) {
	cases := []struct {
		name   string
		code   int
		reason string
	}{
		{"code and reason", 1000, "bye"},
		{"no status", 0, ""},
		{"application code", 4321, "x"},
		{"going away", 1001, ""},
	}
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		s := wstListen(e, &wstServer{echo: true})
		for _, tc := range cases {
			p, c := s.open(e, "")
			lg := s.log(c)
			p.write(p.closeFrame(tc.code, tc.reason), p.text("late"), p.ping("late"))
			p.waitEOF()
			wstPollUntil(e, tc.name+": the server's close", func() bool { return lg.closed })
			wantCode := tc.code
			if wantCode == 0 {
				wantCode = 1005
			}
			if len(lg.ctls) != 1 || lg.ctls[0].code != wantCode || lg.ctls[0].reason != tc.reason {
				t.Errorf("%s: control frames %+v, want the close %d %q", tc.name, lg.ctls, wantCode, tc.reason)
			}
			fs := p.framesNow()
			if len(fs) != 1 || !fs[0].isClose() || fs[0].closeCode() != wantCode || fs[0].masked {
				t.Errorf("%s: frames %v, want one close frame with code %d", tc.name, fs, wantCode)
			}
			if len(lg.msgs) != 0 || len(lg.errs) != 0 {
				t.Errorf("%s: messages %q, errors %v", tc.name, lg.msgData(), lg.errs)
			}
		}
	})
}

// TestWSServerCloseHandshake proves our side of the close handshake: after
// WSClose the peer gets our close frame (code and reason) and nothing more;
// WSSend is refused; the peer's answer is delivered (EvWSCtl) and the
// connection closes without error: exactly two close frames on the wire.
func TestWSServerCloseHandshake(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		var after []int
		s := wstListen(e, &wstServer{})
		s.hook = func(c *meerkat.Conn, ev meerkat.Event, data any) bool {
			if ev == meerkat.EvWSMsg {
				if !meerkat.WSClose(c, 1000, "done") {
					t.Errorf("WSClose refused")
				}
				after = append(after, meerkat.WSSend(c, []byte("more"), meerkat.WSOpText), meerkat.WSSend(c, nil, meerkat.WSOpPing))
				if meerkat.WSClose(c, 1000, "again") {
					t.Errorf("a second WSClose was accepted")
				}
			}
			return ev == meerkat.EvWSMsg
		}
		p, c := s.open(e, "")
		lg := s.log(c)
		p.write(p.text("close please"))
		fs := p.waitFrames(1)
		if !fs[0].isClose() || fs[0].closeCode() != 1000 || string(fs[0].payload[2:]) != "done" {
			t.Fatalf("frame %v, want close 1000 \"done\"", fs[0])
		}
		if lg.closed || p.isEnded() {
			t.Fatalf("closed before the peer answered")
		}
		p.write(p.closeFrame(1000, ""))
		p.waitEOF()
		wstPollUntil(e, "the close", func() bool { return lg.closed })
		if !slices.Equal(after, []int{0, 0}) {
			t.Errorf("WSSend after WSClose returned %v, want 0 0", after)
		}
		if len(lg.ctls) != 1 || lg.ctls[0].code != 1000 || len(lg.errs) != 0 {
			t.Errorf("control frames %+v, errors %v", lg.ctls, lg.errs)
		}
		if fs := p.framesNow(); len(fs) != 1 {
			t.Errorf("frames %v, want our close only", fs)
		}
	})
}

// TestWSServerCloseTimeout proves that a peer that never answers our close
// frame is cut after Manager.WS.CloseTimeout: EvError ErrWSCloseTimeout,
// then EvClose, not before the timeout and not long after.
func TestWSServerCloseTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		e.m.WS.CloseTimeout = timeout
		var closedAt time.Time
		s := wstListen(e, &wstServer{})
		s.hook = func(c *meerkat.Conn, ev meerkat.Event, data any) bool {
			if ev == meerkat.EvWSMsg {
				closedAt = time.Now()
				meerkat.WSClose(c, 1001, "")
			}
			return ev == meerkat.EvWSMsg
		}
		p, c := s.open(e, "")
		lg := s.log(c)
		p.write(p.text("x"))
		wstPollUntil(e, "the close timeout", func() bool { return lg.closed })
		took := lg.closedAt.Sub(closedAt)
		if len(lg.errs) != 1 || !errors.Is(lg.errs[0], meerkat.ErrWSCloseTimeout) {
			t.Errorf("errors %v, want ErrWSCloseTimeout", lg.errs)
		}
		if took < timeout || took > timeout+3*time.Second {
			t.Errorf("closed %v after WSClose, want %v", took, timeout)
		}
		if after := wstAfterError(e, c); !slices.Equal(after, []meerkat.Event{meerkat.EvClose}) {
			t.Errorf("events after EvError: %v", after)
		}
		fs := p.waitFrames(1)
		p.waitEnd()
		if len(fs) != 1 || fs[0].closeCode() != 1001 {
			t.Errorf("frames %v, want a close 1001", fs)
		}
	})
}

// TestWSServerPeerVanishes proves that a peer that goes away without a close
// frame — closing, resetting, or in the middle of a frame or of a
// fragmented message — ends in EvClose with nothing partial delivered, and
// that nothing is left behind (goroutines, descriptors).
func TestWSServerPeerVanishes(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		s := wstListen(e, &wstServer{echo: true})
		// One connection first, so the baseline has what the first one
		// starts for good.
		p0, c0 := s.open(e, "")
		p0.nc.Close()
		wstPollUntil(e, "the first close", func() bool { return s.log(c0).closed })
		base := snapshot()
		for _, how := range []string{"close", "reset", "close mid-frame", "close mid-message", "reset mid-frame"} {
			p, c := s.open(e, "")
			lg := s.log(c)
			p.write(p.text("ok"))
			p.waitFrames(1)
			before := lg.reads
			switch how {
			case "close mid-frame", "reset mid-frame":
				p.write(p.frame(wstFin|wstOpBinary, make([]byte, 1000))[:500])
			case "close mid-message":
				p.write(p.frame(wstOpText, []byte("part")))
			}
			if before != lg.reads || how == "close mid-message" || strings.HasSuffix(how, "mid-frame") {
				wstPollUntil(e, how+": the partial frame read", func() bool { return lg.reads > before })
			}
			if strings.HasPrefix(how, "reset") {
				resetPeer(t, p.nc)
			} else {
				p.nc.Close()
			}
			wstPollUntil(e, how+": EvClose", func() bool { return lg.closed })
			if !slices.Equal(lg.msgData(), []string{"ok"}) {
				t.Errorf("%s: messages %q", how, lg.msgData())
			}
			if len(lg.ctls) != 0 {
				t.Errorf("%s: control frames %+v", how, lg.ctls)
			}
			t.Logf("%s: errors %v", how, lg.errs)
			<-p.done
		}
		expectBaseline(t, base, 5*time.Second)
	})
}

// ---------------------------------------------------------------------------
// Keepalive

// TestWSServerKeepalive proves Manager.WS.PingInterval: an idle connection
// gets a ping each interval and stays open while the peer answers; a peer
// that does not answer is cut after PongTimeout (PingInterval by default)
// with ErrWSPingTimeout, one ping having been sent.
func TestWSServerKeepalive(t *testing.T) {
	const iv = 100 * time.Millisecond
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		e.m.WS.PingInterval = iv
		s := wstListen(e, &wstServer{})

		start := time.Now()
		p, c := s.open(e, "", func(p *wstPeer) { p.autoPong.Store(true) })
		fs := p.waitFrames(4)
		lg := s.log(c)
		if took := time.Since(start); took < 4*iv {
			t.Errorf("4 pings in %v, want at least %v", took, 4*iv)
		}
		for _, f := range fs {
			if f.b0 != wstFin|wstOpPing || f.masked {
				t.Errorf("frame %v, want a ping", f)
			}
		}
		if lg.closed || len(lg.errs) != 0 {
			t.Errorf("answered pings: closed %v, errors %v", lg.closed, lg.errs)
		}
		var pongs int
		for _, m := range lg.ctls {
			if m.op() == wstOpPong {
				pongs++
			}
		}
		if pongs < 3 {
			t.Errorf("%d pongs delivered, want at least 3", pongs)
		}

		start = time.Now()
		p2, c2 := s.open(e, "")
		lg2 := s.log(c2)
		wstPollUntil(e, "the ping timeout", func() bool { return lg2.closed })
		took := lg2.closedAt.Sub(start)
		if len(lg2.errs) != 1 || !errors.Is(lg2.errs[0], meerkat.ErrWSPingTimeout) {
			t.Errorf("errors %v, want ErrWSPingTimeout", lg2.errs)
		}
		if took < 2*iv || took > 2*iv+3*time.Second {
			t.Errorf("cut after %v, want about %v", took, 2*iv)
		}
		p2.waitEnd()
		if fs := p2.framesNow(); len(fs) != 1 || fs[0].op() != wstOpPing {
			t.Errorf("frames %v, want one ping", fs)
		}

		// A PongTimeout of its own.
		e.m.WS.PongTimeout = 3 * iv
		start = time.Now()
		_, c3 := s.open(e, "")
		lg3 := s.log(c3)
		wstPollUntil(e, "the ping timeout", func() bool { return lg3.closed })
		if took := lg3.closedAt.Sub(start); took < 4*iv || took > 4*iv+3*time.Second || len(lg3.errs) != 1 || !errors.Is(lg3.errs[0], meerkat.ErrWSPingTimeout) {
			t.Errorf("PongTimeout %v: cut after %v with %v", 3*iv, took, lg3.errs)
		}
	})
}

// TestWSServerKeepaliveSlowFrame proves that a peer busy sending one long
// frame slowly is not cut by the keepalive: it cannot answer a ping before
// its frame ends (frames do not interleave), and its bytes arriving show it
// is alive. Frames of 100 KiB (waited for whole in Recv) and 1 MiB
// (gathered) take 5 x PongTimeout each.
func TestWSServerKeepaliveSlowFrame(t *testing.T) {
	const iv = 100 * time.Millisecond
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		e.m.WS.PingInterval = iv
		s := wstListen(e, &wstServer{})
		for _, size := range []int{100 << 10, 1 << 20} {
			p3, c3 := s.open(e, "", func(p *wstPeer) { p.autoPong.Store(true) })
			lg3 := s.log(c3)
			data := wstPayload(wstOpBinary, size, 9)
			f := p3.frame(wstFin|wstOpBinary, data)
			const pieces = 20
			for i := range pieces {
				p3.write(f[len(f)*i/pieces : len(f)*(i+1)/pieces])
				wstPollFor(e, iv/4) // the pace of a slow sender: 5 x PongTimeout in all
				if lg3.closed {
					break
				}
			}
			wstPollUntil(e, "the slow message", func() bool { return len(lg3.msgs) == 1 || lg3.closed })
			if lg3.closed || len(lg3.errs) != 0 || len(lg3.msgs) != 1 || !bytes.Equal(lg3.msgs[0].data, data) {
				t.Errorf("%d bytes sent slowly: closed %v, errors %v, %d messages", size, lg3.closed, lg3.errs, len(lg3.msgs))
			}
		}
	})
}

// wstPollFor polls the Manager for d: the pace of a slow peer, or the
// chance for something that must not happen to happen.
func wstPollFor(e *env, d time.Duration) {
	for start := time.Now(); time.Since(start) < d; {
		e.m.Poll(5 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// permessage-deflate

// wstCompMsg is a message of a compression exchange.
type wstCompMsg struct {
	op       byte
	data     []byte
	compress bool // the sender compresses it
	split    bool // sent in two frames (RSV1 on the first)
}

// wstCompMessages is a run of messages: repeated compressible ones, random
// ones, short ones, a large one, an empty one, one sent uncompressed, one
// fragmented, and many more in a row.
func wstCompMessages(compress bool) []wstCompMsg {
	rep := []byte(strings.Repeat("The quick brown fox jumps over the lazy dog. ", 45))
	ms := []wstCompMsg{
		{wstOpText, rep, compress, false},
		{wstOpText, rep, compress, false},
		{wstOpText, rep, compress, false},
		{wstOpBinary, wstRandom(3000, 1), compress, false},
		{wstOpText, []byte("hi"), compress, false},
		{wstOpText, bytes.Repeat([]byte("0123456789abcdef"), 200<<10/16), compress, false},
		{wstOpBinary, []byte{}, compress, false},
		{wstOpText, []byte(strings.Repeat("uncompressed ", 40)), false, false},
		{wstOpText, []byte(strings.Repeat("fragmented ", 100)), compress, true},
	}
	for i := range 40 {
		ms = append(ms, wstCompMsg{wstOpText, []byte(fmt.Sprintf("message %d: %s", i, strings.Repeat("abc", i*10))), compress, false})
	}
	return ms
}

// wstCompFrames encodes the messages as a peer sends them.
func wstCompFrames(t testing.TB, p *wstPeer, ms []wstCompMsg, d *wstDeflater) [][]byte {
	var out [][]byte
	for _, m := range ms {
		payload, rsv := m.data, byte(0)
		if m.compress {
			payload, rsv = d.deflate(t, m.data), wstRSV1
		}
		if m.split && len(payload) > 1 {
			h := len(payload) / 2
			out = append(out, p.frame(rsv|m.op, payload[:h]), p.frame(wstFin|wstOpCont, payload[h:]))
		} else {
			out = append(out, p.frame(wstFin|rsv|m.op, payload))
		}
	}
	return out
}

// wstCheckCompressed checks messages received compressed or not: RSV1 on
// exactly those at least 128 bytes long when compression was agreed,
// decompressed with the sender's context mode; and, for three identical
// messages in a row, that their sizes show that mode (takeover: the repeats
// are much smaller; none: all the same size).
func wstCheckCompressed(t testing.TB, fs []wstFrame, ms []wstCompMsg, agreed, takeover, masked bool) {
	t.Helper()
	if len(fs) != len(ms) {
		t.Fatalf("%d frames, want %d", len(fs), len(ms))
	}
	z := &wstInflater{takeover: takeover}
	var sizes []int
	for i, m := range ms {
		f := fs[i]
		wantRSV := agreed && len(m.data) >= 128
		if f.b0&^wstRSV1 != wstFin|m.op || (f.rsv() == wstRSV1) != wantRSV || f.masked != masked {
			t.Errorf("frame %d (%d bytes): b0 %#x masked %v, want RSV1 %v", i, len(m.data), f.b0, f.masked, wantRSV)
			continue
		}
		got := f.payload
		if wantRSV {
			var err error
			if got, err = z.inflate(f.payload); err != nil {
				t.Errorf("frame %d: inflate: %v", i, err)
				continue
			}
		}
		if !bytes.Equal(got, m.data) {
			t.Errorf("frame %d: %d bytes %.40q, want %d bytes %.40q", i, len(got), got, len(m.data), m.data)
		}
		if i < 3 {
			sizes = append(sizes, len(f.payload))
		}
	}
	if agreed && len(sizes) == 3 {
		if takeover && !(sizes[1] < sizes[0]/2 && sizes[2] < sizes[0]/2) {
			t.Errorf("with context takeover, a repeated message compresses to %v bytes", sizes)
		}
		if !takeover && !(sizes[0] == sizes[1] && sizes[1] == sizes[2]) {
			t.Errorf("without context takeover, a repeated message compresses to %v bytes", sizes)
		}
	}
}

// wstCheckDelivered checks the messages a Manager delivered: intact, with
// RSV1 (0x40) in Flags exactly for those that came compressed.
func wstCheckDelivered(t testing.TB, lg *wstLog, ms []wstCompMsg) {
	t.Helper()
	if len(lg.msgs) != len(ms) {
		t.Fatalf("%d messages delivered, want %d (errors %v)", len(lg.msgs), len(ms), lg.errs)
	}
	for i, m := range ms {
		want := byte(wstFin) | m.op
		if m.compress {
			want |= wstRSV1
		}
		if got := lg.msgs[i]; got.flags != want || !bytes.Equal(got.data, m.data) {
			t.Errorf("message %d: flags %#x, %d bytes; want %#x, %d bytes", i, got.flags, len(got.data), want, len(m.data))
		}
	}
}

// TestWSServerCompression proves permessage-deflate on the server against a
// client of the tests' own: the response to each offer (with and without
// context takeover, a client asking for server_no_context_takeover, a first
// offer that cannot be honoured, no offer, compression off); compressed
// messages — repeated, random, short, large, empty, fragmented, many in a
// row — delivered intact with 0x40 in Flags; and the server's messages
// compressed (RSV1) exactly when 128 bytes or more, in the agreed context
// mode, which the sizes of repeated messages show.
func TestWSServerCompression(t *testing.T) {
	cases := []struct {
		name           string
		comp, takeover bool   // the server's settings
		offer          string // Sec-WebSocket-Extensions of the request
		want           string // of the response
		srvTake        bool   // the server keeps its context
		cliTake        bool   // the client may keep its context
	}{
		{"no context takeover", true, false, "permessage-deflate; client_max_window_bits",
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover", false, false},
		{"context takeover", true, true, "permessage-deflate; client_max_window_bits", "permessage-deflate", true, true},
		{"client asks server_no_context_takeover", true, true, "permessage-deflate; server_no_context_takeover",
			"permessage-deflate; server_no_context_takeover", false, true},
		{"first offer declined", true, true, "permessage-deflate; server_max_window_bits=10, permessage-deflate; client_no_context_takeover",
			"permessage-deflate; client_no_context_takeover", true, false},
		{"no offer", true, false, "", "", false, false},
		{"server without compression", false, false, "permessage-deflate", "", false, false},
	}
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		s := wstListen(e, &wstServer{echo: true})
		for _, tc := range cases {
			e.m.WS.Compression, e.m.WS.CompressionContextTakeover = tc.comp, tc.takeover
			offer := ""
			if tc.offer != "" {
				offer = "Sec-WebSocket-Extensions: " + tc.offer + "\r\n"
			}
			p, c := s.open(e, offer)
			r := p.responses()[0]
			if got := r.header.Values("Sec-WebSocket-Extensions"); tc.want == "" && len(got) != 0 || tc.want != "" && !slices.Equal(got, []string{tc.want}) {
				t.Errorf("%s: Sec-WebSocket-Extensions %q, want %q", tc.name, got, tc.want)
			}
			agreed := tc.want != ""
			ms := wstCompMessages(agreed)
			p.write(wstCompFrames(t, p, ms, &wstDeflater{takeover: tc.cliTake})...)
			fs := p.waitFrames(len(ms))
			t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
				wstCheckDelivered(t, s.log(c), ms)
				wstCheckCompressed(t, fs, ms, agreed, tc.srvTake, false)
			})
			p.nc.Close()
		}
	})
}

// TestWSCompressionThreshold proves Manager.WS.CompressionThreshold: with
// permessage-deflate agreed, messages shorter than the threshold (128 by
// default) go uncompressed and the others compressed (RSV1, inflating to
// the message); a negative threshold compresses all, the empty message
// too; and fragments sent with WSSendFrame are never compressed.
func TestWSCompressionThreshold(t *testing.T) {
	sizes := []int{0, 10, 127, 128, 999, 1000, 5000}
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		e.m.WS.Compression = true
		s := wstListen(e, &wstServer{})
		s.hook = func(c *meerkat.Conn, ev meerkat.Event, data any) bool {
			if ev == meerkat.EvWSOpen {
				for _, n := range sizes {
					meerkat.WSSend(c, wstPayload(wstOpText, n, n), meerkat.WSOpText)
				}
				meerkat.WSSendFrame(c, bytes.Repeat([]byte("f"), 500), meerkat.WSOpBinary, false)
				meerkat.WSSendFrame(c, bytes.Repeat([]byte("f"), 500), meerkat.WSOpContinuation, true)
			}
			return false
		}
		for _, th := range []int{0, 1000, -1} {
			e.m.WS.CompressionThreshold = th
			p, _ := s.open(e, "Sec-WebSocket-Extensions: permessage-deflate\r\n")
			fs := p.waitFrames(len(sizes) + 2)
			z := &wstInflater{}
			for i, n := range sizes {
				f := fs[i]
				want := n >= 128
				if th != 0 {
					want = n >= th
				}
				if (f.rsv() == wstRSV1) != want {
					t.Errorf("threshold %d: a message of %d bytes: RSV1 %v, want %v", th, n, f.rsv() == wstRSV1, want)
					continue
				}
				got := f.payload
				if want {
					var err error
					if got, err = z.inflate(f.payload); err != nil {
						t.Errorf("threshold %d, %d bytes: %v", th, n, err)
					}
				}
				if !bytes.Equal(got, wstPayload(wstOpText, n, n)) {
					t.Errorf("threshold %d: a message of %d bytes arrived as %d bytes", th, n, len(got))
				}
			}
			if f1, f2 := fs[len(sizes)], fs[len(sizes)+1]; f1.b0 != wstOpBinary || f2.b0 != wstFin|wstOpCont || len(f1.payload)+len(f2.payload) != 1000 {
				t.Errorf("threshold %d: fragments %v %v, want uncompressed", th, f1, f2)
			}
			p.nc.Close()
		}
	})
}

// ---------------------------------------------------------------------------
// Sending, Shutdown, resources

// TestWSServerSendRefusals proves that WSSend, WSPrintf, WSSendFrame and
// WSClose refuse (0, false) on a connection still speaking HTTP, that a
// ping over 125 bytes and an invalid close code are refused, that the
// bytes queued are reported exactly, and that data is refused after the
// peer's close frame.
func TestWSServerSendRefusals(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		var got []int
		note := func(n int) { got = append(got, n) }
		noteB := func(ok bool) {
			if ok {
				note(1)
			} else {
				note(0)
			}
		}
		s := wstListen(e, &wstServer{})
		s.hook = func(c *meerkat.Conn, ev meerkat.Event, data any) bool {
			switch ev {
			case meerkat.EvHTTPHeaders, meerkat.EvHTTPMsg:
				note(meerkat.WSSend(c, []byte("x"), meerkat.WSOpText))
				note(meerkat.WSPrintf(c, meerkat.WSOpText, "%d", 1))
				note(meerkat.WSSendFrame(c, []byte("x"), meerkat.WSOpText, true))
				noteB(meerkat.WSClose(c, 1000, ""))
			case meerkat.EvWSOpen:
				note(meerkat.WSSend(c, make([]byte, 126), meerkat.WSOpPing))
				note(meerkat.WSSend(c, make([]byte, 125), meerkat.WSOpPing))
				note(meerkat.WSSend(c, []byte("hello"), meerkat.WSOpText))
				note(meerkat.WSPrintf(c, meerkat.WSOpBinary, "%05d", 42))
				note(meerkat.WSSend(c, []byte{0x03, 0xed}, meerkat.WSOpClose)) // code 1005
				noteB(meerkat.WSClose(c, 1006, ""))
				note(meerkat.WSSend(c, nil, meerkat.WSOp(3)))
			case meerkat.EvWSCtl:
				note(meerkat.WSSend(c, []byte("x"), meerkat.WSOpText))
				note(meerkat.WSSendFrame(c, []byte("x"), meerkat.WSOpText, true))
			}
			return false
		}
		p, c := s.open(e, "")
		fs := p.waitFrames(3)
		want := []int{0, 0, 0, 0, 0, 0, 0, 0, 0, 127, 7, 7, 0, 0, 0}
		if !slices.Equal(got, want) {
			t.Errorf("results %v, want %v", got, want)
		}
		if fs[0].op() != wstOpPing || len(fs[0].payload) != 125 || string(fs[1].payload) != "hello" || string(fs[2].payload) != "00042" || fs[2].op() != wstOpBinary {
			t.Errorf("frames %v", fs)
		}
		got = nil
		p.write(p.closeFrame(1000, ""))
		p.waitEOF()
		wstPollUntil(e, "the close", func() bool { return s.log(c).closed })
		if !slices.Equal(got, []int{0, 0}) {
			t.Errorf("after the peer's close: %v, want 0 0", got)
		}
		if fs := p.framesNow(); len(fs) != 4 || !fs[3].isClose() {
			t.Errorf("frames %v, want our answer last", fs)
		}
	})
}

// TestWSShutdown proves that Manager.Shutdown sends a close frame 1001 on
// every WebSocket connection, server and client (masked), waits for the
// peers' answers (delivered as EvWSCtl before EvClose), cuts a peer that
// does not answer after Manager.WS.CloseTimeout, and returns nil.
func TestWSShutdown(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		e.m.WS.CloseTimeout = 300 * time.Millisecond
		s := wstListen(e, &wstServer{})
		p1, c1 := s.open(e, "")
		p2, c2 := s.open(e, "")
		p3, c3 := s.open(e, "")
		p1.autoClose.Store(true)
		p2.autoClose.Store(true)

		raw := wstListenRaw(e)
		cl := wstConnect(e, raw.url("/"), nil, &wstClient{})
		rp, _ := raw.handshake(e, "")
		rp.autoClose.Store(true)
		wstPollUntil(e, "the client's EvWSOpen", func() bool { return cl.lg().opened })

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		if err := e.m.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("Shutdown took %v", took)
		}
		check := func(name string, p *wstPeer, lg *wstLog, masked, answered bool) {
			fs := p.waitFrames(1)
			if len(fs) != 1 || fs[0].closeCode() != 1001 || fs[0].masked != masked {
				t.Errorf("%s: frames %v, want one close 1001", name, fs)
			}
			if !lg.closed {
				t.Errorf("%s: not closed", name)
			}
			if answered {
				if len(lg.ctls) != 1 || lg.ctls[0].code != 1001 || len(lg.errs) != 0 || !slices.Equal(lg.seq[len(lg.seq)-2:], []string{"ctl:8", "close"}) {
					t.Errorf("%s: sequence %q, errors %v", name, lg.seq, lg.errs)
				}
			} else if len(lg.errs) != 1 || !errors.Is(lg.errs[0], meerkat.ErrWSCloseTimeout) {
				t.Errorf("%s: errors %v, want ErrWSCloseTimeout", name, lg.errs)
			}
		}
		check("server 1", p1, s.log(c1), false, true)
		check("server 2", p2, s.log(c2), false, true)
		check("server, silent peer", p3, s.log(c3), false, false)
		check("client", rp, cl.lg(), true, true)
	})
}

// TestWSResourceBaseline proves that after a batch of WebSocket connections
// ends in every way — our close, the peer's, a violation, a vanishing or
// resetting peer, with and without compression — goroutines and
// descriptors are back to their baseline.
func TestWSResourceBaseline(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		s := wstListen(e, &wstServer{echo: true})
		s.hook = func(c *meerkat.Conn, ev meerkat.Event, data any) bool {
			if ev == meerkat.EvWSMsg && string(data.(*meerkat.WSMessage).Data) == "close, server" {
				meerkat.WSClose(c, 1000, "")
				return true
			}
			return false
		}
		round := func() {
			var cls []*wstClient
			for i := range 4 {
				cl := &wstClient{}
				cl.hook = func(c *meerkat.Conn, ev meerkat.Event, data any) bool {
					switch ev {
					case meerkat.EvWSOpen:
						meerkat.WSSend(c, bytes.Repeat([]byte("abc"), 40000), meerkat.WSOpBinary)
						meerkat.WSSend(c, []byte("hello"), meerkat.WSOpText)
					case meerkat.EvWSMsg:
						if string(data.(*meerkat.WSMessage).Data) != "hello" {
							return true
						}
						switch i {
						case 0:
							meerkat.WSClose(c, 1000, "")
						case 1:
							meerkat.WSSend(c, []byte("close, server"), meerkat.WSOpText)
						case 2:
							c.Close()
						case 3:
							c.Drain()
						}
					}
					return true
				}
				cls = append(cls, wstConnect(e, s.url("/"), nil, cl))
			}
			var peers []*wstPeer
			for i := range 3 {
				p, _ := s.open(e, "")
				switch i {
				case 0:
					p.nc.Close()
				case 1:
					resetPeer(t, p.nc)
				case 2:
					p.write(wstFrameBytes(wstFin|wstOpText, []byte("unmasked"), false))
				}
				peers = append(peers, p)
			}
			wstPollUntil(e, "every connection closed", func() bool {
				for _, cl := range cls {
					if !cl.lg().closed {
						return false
					}
				}
				for _, c := range s.conns {
					if !s.log(c).closed {
						return false
					}
				}
				return true
			})
			for _, p := range peers {
				<-p.done
			}
		}
		round() // what the first connections start for good is in the baseline
		base := snapshot()
		for _, set := range []struct{ comp, takeover bool }{{false, false}, {true, false}, {true, true}} {
			e.m.WS.Compression, e.m.WS.CompressionContextTakeover = set.comp, set.takeover
			round()
		}
		expectBaseline(t, base, 5*time.Second)
	})
}

// ---------------------------------------------------------------------------
// A raw server peer, for the client's tests (ws_client_test.go).

type wstRawServer struct {
	tls  bool
	ln   net.Listener
	addr string
}

// wstListenRaw listens on a free loopback port (TLS with the test
// certificate for TLS tests).
func wstListenRaw(e *env) *wstRawServer {
	e.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	if e.useTLS {
		ln = tls.NewListener(ln, testcert.ServerConfig())
	}
	e.t.Cleanup(func() { ln.Close() })
	return &wstRawServer{tls: e.useTLS, ln: ln, addr: addr}
}

// url is the server's ws:// or wss:// URL for path.
func (s *wstRawServer) url(path string) string {
	if s.tls {
		return "wss://" + s.addr + path
	}
	return "ws://" + s.addr + path
}

// accept takes the next connection (its TLS handshake done) while the
// Manager is polled.
func (s *wstRawServer) accept(e *env) *wstPeer {
	e.t.Helper()
	var nc net.Conn
	wstAwait(e, "accept", func() error {
		c, err := s.ln.Accept()
		if err != nil {
			return err
		}
		c.SetDeadline(time.Now().Add(60 * time.Second))
		if tc, ok := c.(*tls.Conn); ok {
			if err := tc.Handshake(); err != nil {
				c.Close()
				return err
			}
		}
		nc = c
		return nil
	})
	e.t.Cleanup(func() { nc.Close() })
	return wstStart(e, nc, false)
}

// request accepts a connection and reads its handshake request.
func (s *wstRawServer) request(e *env) (*wstPeer, *http.Request) {
	e.t.Helper()
	p := s.accept(e)
	h := p.waitHead()
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(h)))
	if err != nil {
		e.t.Fatalf("request %q: %v", h, err)
	}
	return p, req
}

// wstSwitching is a valid 101 answer to key, with extra header lines.
func wstSwitching(key, extra string) []byte {
	return []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		wstAccept(key) + "\r\n" + extra + "\r\n")
}

// handshake accepts a client and answers its request with a valid 101 with
// extra header lines.
func (s *wstRawServer) handshake(e *env, extra string) (*wstPeer, *http.Request) {
	e.t.Helper()
	p, req := s.request(e)
	p.write(wstSwitching(req.Header.Get("Sec-WebSocket-Key"), extra))
	return p, req
}
