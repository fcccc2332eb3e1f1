package meerkat_test

// The WebSocket client (issue 4): the handshake request and every way a
// server can answer it wrongly, frames in both directions with fresh
// masking keys, the stream split anywhere (the 101 included), protocol
// violations by the server, the close handshake from both ends, keepalive,
// permessage-deflate against a server of the tests' own and against
// Meerkat's, and WSSend's refusals. Every test runs on every driver, plain
// and TLS, against a blocking standard-library server that writes exactly
// the bytes the test chooses; the machinery is in ws_server_test.go.

import (
	"bytes"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/meerkat-net/meerkat"
)

// TestWSClientRequest proves the client's handshake request: GET of the
// URL's path and query in HTTP/1.1, Host with the port, Upgrade,
// Connection, version 13, a key of 16 random bytes in base64 (another for
// each connection), the subprotocols offered in order, the extra headers,
// and no extension offer without compression; and that EvWSOpen carries the
// 101 response, with the subprotocol the server chose in WSSubprotocol.
func TestWSClientRequest(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		raw := wstListenRaw(e)
		opts := &meerkat.WSOptions{Headers: "X-Token: abc\r\nOrigin: http://example.com\r\n", Subprotocols: []string{"v2.chat", "chat"}}
		cl := wstConnect(e, raw.url("/chat?room=1"), opts, &wstClient{})
		p, req := raw.handshake(e, "Sec-WebSocket-Protocol: chat\r\nX-Extra: 1\r\n")
		if req.Method != "GET" || req.RequestURI != "/chat?room=1" || req.Proto != "HTTP/1.1" || req.Host != raw.addr {
			t.Errorf("request %s %s %s, Host %q", req.Method, req.RequestURI, req.Proto, req.Host)
		}
		hasToken := func(name, tok string) bool {
			for _, v := range req.Header.Values(name) {
				for f := range strings.SplitSeq(v, ",") {
					if strings.EqualFold(strings.TrimSpace(f), tok) {
						return true
					}
				}
			}
			return false
		}
		if !hasToken("Upgrade", "websocket") || !hasToken("Connection", "upgrade") || req.Header.Get("Sec-WebSocket-Version") != "13" {
			t.Errorf("Upgrade %q, Connection %q, version %q", req.Header.Get("Upgrade"), req.Header.Get("Connection"), req.Header.Get("Sec-WebSocket-Version"))
		}
		key := req.Header.Get("Sec-WebSocket-Key")
		if k, err := base64.StdEncoding.DecodeString(key); err != nil || len(k) != 16 {
			t.Errorf("Sec-WebSocket-Key %q: %d bytes, %v", key, len(k), err)
		}
		if got := strings.Join(req.Header.Values("Sec-WebSocket-Protocol"), ", "); got != "v2.chat, chat" {
			t.Errorf("Sec-WebSocket-Protocol %q, want \"v2.chat, chat\"", got)
		}
		if req.Header.Get("X-Token") != "abc" || req.Header.Get("Origin") != "http://example.com" || len(req.Header.Values("Sec-WebSocket-Extensions")) != 0 {
			t.Errorf("headers %v", req.Header)
		}
		lg := cl.lg()
		wstPollUntil(e, "EvWSOpen", func() bool { return lg.opened || lg.closed })
		if !lg.opened || lg.openStatus != 101 || lg.openHeader.Get("X-Extra") != "1" || lg.subproto != "chat" || meerkat.WSSubprotocol(cl.c) != "chat" {
			t.Errorf("EvWSOpen: opened %v, status %d, X-Extra %q, subprotocol %q; errors %v", lg.opened, lg.openStatus, lg.openHeader.Get("X-Extra"), lg.subproto, lg.errs)
		}
		meerkat.WSSend(cl.c, []byte("hi"), meerkat.WSOpText)
		if fs := p.waitFrames(1); string(fs[0].payload) != "hi" || !fs[0].masked {
			t.Errorf("frame %v", fs[0])
		}

		// Another connection, without options: another key, no offer.
		wstConnect(e, raw.url("/"), nil, &wstClient{})
		_, req2 := raw.request(e)
		if req2.Header.Get("Sec-WebSocket-Key") == key || req2.RequestURI != "/" || len(req2.Header.Values("Sec-WebSocket-Protocol")) != 0 {
			t.Errorf("second request: key %q (first %q), target %q, protocols %q", req2.Header.Get("Sec-WebSocket-Key"), key, req2.RequestURI, req2.Header.Values("Sec-WebSocket-Protocol"))
		}
	})
}

// TestWSClientConnectErrors proves that WSConnect refuses, without creating
// a connection, a URL that is not ws:// or wss:// and options that would
// break the request.
func TestWSClientConnectErrors(t *testing.T) {
	forEachDriver(t, func(t *testing.T, drv string) {
		e := newEnv(t, drv, false)
		for _, tc := range []struct {
			url  string
			opts *meerkat.WSOptions
		}{
			{"http://127.0.0.1:1/", nil},
			{"tcp://127.0.0.1:1", nil},
			{"ws://127.0.0.1:1/", &meerkat.WSOptions{Headers: "X-A: 1"}},
			{"ws://127.0.0.1:1/", &meerkat.WSOptions{Headers: "X-A: 1\r\n\r\nGET / HTTP/1.1\r\n"}},
			{"ws://127.0.0.1:1/", &meerkat.WSOptions{Subprotocols: []string{"a b"}}},
			{"ws://127.0.0.1:1/", &meerkat.WSOptions{Subprotocols: []string{""}}},
			{"ws://127.0.0.1:1/", &meerkat.WSOptions{Subprotocols: []string{"a,b"}}},
		} {
			c, err := e.m.WSConnectOpts(tc.url, tc.opts, e.chk.wrap(nil))
			if err == nil || c != nil {
				t.Errorf("WSConnectOpts(%q, %+v): %v, %v; want an error", tc.url, tc.opts, c, err)
			}
		}
		for c := range e.m.Conns() {
			t.Errorf("connection %v exists", c)
		}
	})
}

// wstBadAnswer is a wrong answer to a client's handshake request.
type wstBadAnswer struct {
	name     string
	answer   func(key string) string // "" sends nothing
	hangUp   bool                    // the server closes after its answer
	opts     *meerkat.WSOptions
	comp     bool
	takeover bool
}

// wstHandshakeHeaders are a 101's Upgrade and Connection; wstAcceptLine is
// its Sec-WebSocket-Accept for key.
const wstHandshakeHeaders = "Upgrade: websocket\r\nConnection: Upgrade\r\n"

func wstAcceptLine(key string) string { return "Sec-WebSocket-Accept: " + wstAccept(key) + "\r\n" }

// wstRunHandshakeFailures answers a client's request with each case, and
// checks that the client fails: EvError matching ErrWSHandshake, then
// EvClose, no EvWSOpen.
func wstRunHandshakeFailures(t *testing.T, cases []wstBadAnswer) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		raw := wstListenRaw(e)
		for _, tc := range cases {
			wstSub(t, e, tc.name, func(e *env) {
				e.m.WS.Compression, e.m.WS.CompressionContextTakeover = tc.comp, tc.takeover
				cl := wstConnect(e, raw.url("/"), tc.opts, &wstClient{})
				p, req := raw.request(e)
				if a := tc.answer(req.Header.Get("Sec-WebSocket-Key")); a != "" {
					p.write([]byte(a))
				}
				if tc.hangUp {
					p.nc.Close()
				}
				lg := cl.lg()
				wstPollUntil(e, "the client's close", func() bool { return lg.closed })
				if len(lg.errs) != 1 || !errors.Is(lg.errs[0], meerkat.ErrWSHandshake) {
					e.t.Errorf("errors %v, want one matching ErrWSHandshake", lg.errs)
				}
				if lg.opened || len(lg.msgs) != 0 {
					e.t.Errorf("EvWSOpen delivered")
				}
				if after := wstAfterError(e, cl.c); !slices.Equal(after, []meerkat.Event{meerkat.EvClose}) {
					e.t.Errorf("events after EvError: %v", after)
				}
			})
		}
	})
}

// TestWSClientHandshakeFailures proves that every wrong answer to the
// handshake — a bad or missing accept, no Upgrade or Connection, a status
// other than 101, an unoffered subprotocol or extension, an extension
// response RFC 7692 forbids, the connection closed before or inside the
// answer — ends in EvError matching ErrWSHandshake, then EvClose, with no
// EvWSOpen. The server does not close after a wrong 101: the client must
// fail by itself.
func TestWSClientHandshakeFailures(t *testing.T) {
	const up = wstHandshakeHeaders
	accept := wstAcceptLine
	wstRunHandshakeFailures(t, []wstBadAnswer{
		{name: "accept of another key", answer: func(key string) string {
			return "HTTP/1.1 101 Switching Protocols\r\n" + up + accept(wstExampleKey) + "\r\n"
		}},
		{name: "no accept", answer: func(key string) string { return "HTTP/1.1 101 Switching Protocols\r\n" + up + "\r\n" }},
		{name: "no Upgrade", answer: func(key string) string {
			return "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n" + accept(key) + "\r\n"
		}},
		{name: "Upgrade h2c", answer: func(key string) string {
			return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n" + accept(key) + "\r\n"
		}},
		{name: "no Connection", answer: func(key string) string {
			return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" + accept(key) + "\r\n"
		}},
		{name: "200", answer: func(key string) string { return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" }},
		{name: "404", answer: func(key string) string { return "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n" }},
		{name: "200 with the handshake headers", answer: func(key string) string {
			return "HTTP/1.1 200 OK\r\n" + up + accept(key) + "Content-Length: 0\r\n\r\n"
		}},
		{name: "unoffered subprotocol", opts: &meerkat.WSOptions{Subprotocols: []string{"a"}}, answer: func(key string) string {
			return "HTTP/1.1 101 Switching Protocols\r\n" + up + accept(key) + "Sec-WebSocket-Protocol: b\r\n\r\n"
		}},
		{name: "subprotocol without an offer", answer: func(key string) string {
			return "HTTP/1.1 101 Switching Protocols\r\n" + up + accept(key) + "Sec-WebSocket-Protocol: a\r\n\r\n"
		}},
		{name: "unoffered extension", answer: func(key string) string {
			return "HTTP/1.1 101 Switching Protocols\r\n" + up + accept(key) +
				"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n\r\n"
		}},
		{name: "unknown extension", comp: true, answer: func(key string) string {
			return "HTTP/1.1 101 Switching Protocols\r\n" + up + accept(key) + "Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\n\r\n"
		}},
		{name: "server_no_context_takeover not granted", comp: true, answer: func(key string) string {
			return "HTTP/1.1 101 Switching Protocols\r\n" + up + accept(key) + "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n\r\n"
		}},
		{name: "client_max_window_bits not offered", comp: true, takeover: true, answer: func(key string) string {
			return "HTTP/1.1 101 Switching Protocols\r\n" + up + accept(key) + "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=10\r\n\r\n"
		}},
		{name: "closed before answering", hangUp: true, answer: func(key string) string { return "" }},
		{name: "closed inside the 101", hangUp: true, answer: func(key string) string { return "HTTP/1.1 101 Switching Protocols\r\nUpgr" }},
	})
}

// TestWSClientMalformedAnswer proves that an answer that is not HTTP, or
// whose status line is malformed, is a handshake failure too (ErrWSHandshake
// says: "the server's answer was not a valid 101").
func TestWSClientMalformedAnswer(t *testing.T) {
	const up = wstHandshakeHeaders
	wstRunHandshakeFailures(t, []wstBadAnswer{
		{name: "malformed status line", answer: func(key string) string {
			return "HTTP/1.1 1O1 Switching Protocols\r\n" + up + wstAcceptLine(key) + "\r\n"
		}},
		{name: "not HTTP", answer: func(key string) string { return "SSH-2.0-OpenSSH_9.6\r\n\r\n" }},
	})
}

// TestWSClientMessageSizes proves that messages of 0, 125, 126, 65535,
// 65536 bytes, 1 MiB and 4 MiB, text and binary, go out in one frame each
// with the minimal length encoding, masked with a fresh key per frame (no
// two frames alike, control frames included), and come back whole and
// intact.
func TestWSClientMessageSizes(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		type msg struct {
			op   byte
			data []byte
		}
		var want []msg
		for i, n := range wstSizes {
			for _, op := range []byte{wstOpText, wstOpBinary} {
				want = append(want, msg{op, wstPayload(op, n, i)})
			}
		}
		raw := wstListenRaw(e)
		cl := wstConnect(e, raw.url("/"), nil, &wstClient{hook: func(c *meerkat.Conn, ev meerkat.Event, data any) bool {
			if ev == meerkat.EvWSOpen {
				for _, m := range want {
					if n := meerkat.WSSend(c, m.data, meerkat.WSOp(m.op)); n != wstMinimalHeader(len(m.data), true)+len(m.data) {
						t.Errorf("WSSend of %d bytes returned %d", len(m.data), n)
					}
				}
				meerkat.WSSend(c, []byte("k1"), meerkat.WSOpPing)
				meerkat.WSSend(c, []byte("k2"), meerkat.WSOpPong)
			}
			return false
		}})
		p, _ := raw.handshake(e, "")
		fs := p.waitFrames(len(want) + 2)
		keys := map[[4]byte]bool{}
		for i, f := range fs {
			if !f.masked || keys[f.key] {
				t.Errorf("frame %d: masked %v, key %x (seen before: %v)", i, f.masked, f.key, keys[f.key])
			}
			keys[f.key] = true
			if i >= len(want) {
				continue
			}
			w := want[i]
			if f.b0 != wstFin|w.op || f.hdrLen != wstMinimalHeader(len(w.data), true) || !bytes.Equal(f.payload, w.data) {
				t.Errorf("frame %d (%d bytes): %v, header %d bytes", i, len(w.data), f, f.hdrLen)
			}
		}
		if fs[len(want)].b0 != wstFin|wstOpPing || string(fs[len(want)].payload) != "k1" || string(fs[len(want)+1].payload) != "k2" {
			t.Errorf("control frames %v", fs[len(want):])
		}

		var back [][]byte
		for _, m := range want {
			back = append(back, p.frame(wstFin|m.op, m.data))
		}
		p.write(back...)
		lg := cl.lg()
		wstPollUntil(e, "every message back", func() bool { return len(lg.msgs) >= len(want) || lg.closed })
		for i, w := range want {
			if m := lg.msgs[i]; m.flags != wstFin|w.op || !bytes.Equal(m.data, w.data) {
				t.Errorf("message %d (%d bytes): flags %#x, %d bytes", i, len(w.data), m.flags, len(m.data))
			}
		}
		if len(lg.errs) != 0 {
			t.Errorf("errors %v", lg.errs)
		}
	})
}

// TestWSClientStreamSplitAnywhere proves that the same byte stream — the 101
// and then frames of every kind, fragments with UTF-8 split across them,
// pings and a pong between fragments, a 64-bit length — gives the same
// EvWSOpen, messages, control frames and masked pongs (in order) whether
// the 101 and the frames arrive in one write or one byte per read.
func TestWSClientStreamSplitAnywhere(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		raw := wstListenRaw(e)
		for _, mode := range []string{"one write", "byte by byte"} {
			sp := wstStream(false)
			cl := wstConnect(e, raw.url("/"), nil, &wstClient{})
			p, req := raw.request(e)
			head := wstSwitching(req.Header.Get("Sec-WebSocket-Key"), "")
			lg := cl.lg()
			if mode == "one write" {
				p.write(head, sp.all())
			} else {
				wstLockstep(e, p.nc, append([]wstPiece{{head, 1}}, sp.pieces...), lg)
			}
			wstPollUntil(e, mode+": every message", func() bool { return len(lg.msgs) >= len(sp.msgs) || lg.closed })
			fs := p.waitFrames(len(sp.pongs))
			if !lg.opened || lg.seq[0] != "open" {
				t.Errorf("%s: sequence %q", mode, lg.seq)
			}
			wstCheckStream(t, sp, lg, fs, true)
		}
	})
}

// TestWSClientViolations proves, for protocol violations a server can
// commit (a masked frame among them), that the client reports EvError with
// a *WSError of the right code and nothing more but EvClose, sends one
// masked close frame with that code, then closes the TCP connection, and
// delivers nothing of the bad frame or after it.
func TestWSClientViolations(t *testing.T) {
	type tcase struct {
		name     string
		bad      func(p *wstPeer) [][]byte
		code     int
		max      int
		noFollow bool
	}
	hdr64 := func(n uint64) []byte {
		b := []byte{wstFin | wstOpBinary, 127}
		for i := 7; i >= 0; i-- {
			b = append(b, byte(n>>(8*i)))
		}
		return b
	}
	cases := []tcase{
		{name: "masked frame from the server", code: 1002, bad: func(p *wstPeer) [][]byte {
			return [][]byte{wstFrameBytes(wstFin|wstOpText, []byte("x"), true)}
		}},
		{name: "invalid UTF-8", code: 1007, bad: func(p *wstPeer) [][]byte { return [][]byte{p.text("\xc3\x28")} }},
		{name: "invalid UTF-8 split across fragments", code: 1007, bad: func(p *wstPeer) [][]byte {
			return [][]byte{p.frame(wstOpText, []byte("\xf0\x9f")), p.ping("between"), p.frame(wstFin|wstOpCont, []byte("\x98x"))}
		}},
		{name: "RSV1 without an extension", code: 1002, bad: func(p *wstPeer) [][]byte { return [][]byte{p.frame(wstFin|wstRSV1|wstOpText, []byte("x"))} }},
		{name: "opcode 0xC", code: 1002, bad: func(p *wstPeer) [][]byte { return [][]byte{p.frame(wstFin|0xC, nil)} }},
		{name: "continuation without a message", code: 1002, bad: func(p *wstPeer) [][]byte { return [][]byte{p.frame(wstFin|wstOpCont, nil)} }},
		{name: "new data frame inside a fragmented message", code: 1002, bad: func(p *wstPeer) [][]byte {
			return [][]byte{p.frame(wstOpBinary, []byte("a")), p.frame(wstOpBinary, []byte("b"))}
		}},
		{name: "ping of 126 bytes", code: 1002, bad: func(p *wstPeer) [][]byte { return [][]byte{p.frame(wstFin|wstOpPing, make([]byte, 126))} }},
		{name: "fragmented pong", code: 1002, bad: func(p *wstPeer) [][]byte { return [][]byte{p.frame(wstOpPong, nil)} }},
		{name: "close with a 1-byte payload", code: 1002, bad: func(p *wstPeer) [][]byte { return [][]byte{p.frame(wstFin|wstOpClose, []byte{3})} }},
		{name: "close code 1006", code: 1002, bad: func(p *wstPeer) [][]byte { return [][]byte{p.closeFrame(1006, "")} }},
		{name: "close code 2999", code: 1002, bad: func(p *wstPeer) [][]byte { return [][]byte{p.closeFrame(2999, "")} }},
		{name: "1 GiB frame header over the default MaxMessage", code: 1009, noFollow: true, bad: func(p *wstPeer) [][]byte { return [][]byte{hdr64(1 << 30)} }},
		{name: "fragments over MaxMessage", code: 1009, max: 100, noFollow: true, bad: func(p *wstPeer) [][]byte {
			return [][]byte{p.frame(wstOpBinary, make([]byte, 60)), p.frame(wstFin|wstOpCont, make([]byte, 60))[:2]}
		}},
		{name: "64-bit length with the top bit set", code: 1002, noFollow: true, bad: func(p *wstPeer) [][]byte { return [][]byte{hdr64(1<<63 | 1<<20)} }},
	}
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		raw := wstListenRaw(e)
		for _, tc := range cases {
			wstSub(t, e, tc.name, func(e *env) {
				e.m.WS.MaxMessage = tc.max
				cl := wstConnect(e, raw.url("/"), nil, &wstClient{})
				p, _ := raw.handshake(e, "")
				wstPollUntil(e, "EvWSOpen", func() bool { return cl.lg().opened || cl.lg().closed })
				out := append([][]byte{p.text("ok")}, tc.bad(p)...)
				if !tc.noFollow {
					out = append(out, p.text("after"), p.ping("after"))
				}
				p.write(out...)
				lg := cl.lg()
				if strings.Contains(tc.name, "split") {
					// The ping between the fragments is answered before the
					// violation: drop it from what the check sees.
					wstPollUntil(e, "the close", func() bool { return lg.closed && p.isEnded() })
					fs := p.framesNow()
					if len(fs) != 2 || fs[0].op() != wstOpPong || string(fs[0].payload) != "between" {
						e.t.Fatalf("frames %v, want the pong, then the close", fs)
					}
					p.mu.Lock()
					p.frames = p.frames[1:]
					p.mu.Unlock()
					lg.ctls = slices.DeleteFunc(lg.ctls, func(m wstMsg) bool { return string(m.data) == "between" })
				}
				wstExpectViolation(e, p, cl.c, lg, tc.code, true)
			})
		}
	})
}

// TestWSClientCloseHandshake proves the close handshake from the client:
// our WSClose sends one masked close frame (a long reason cut at a UTF-8
// boundary to fit) and waits for the answer, which is delivered, then the
// connection closes without error — two close frames in all; the server's
// close is delivered and answered by one close frame with its code, data
// after it is ignored; a server that vanishes without a close frame ends in
// EvClose; one that never answers is cut after Manager.WS.CloseTimeout.
func TestWSClientCloseHandshake(t *testing.T) {
	longReason := strings.Repeat("é", 100)
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		e.m.WS.CloseTimeout = 300 * time.Millisecond
		raw := wstListenRaw(e)
		open := func(onOpen func(c *meerkat.Conn)) (*wstClient, *wstPeer) {
			cl := wstConnect(e, raw.url("/"), nil, &wstClient{hook: func(c *meerkat.Conn, ev meerkat.Event, data any) bool {
				if ev == meerkat.EvWSOpen && onOpen != nil {
					onOpen(c)
				}
				return false
			}})
			p, _ := raw.handshake(e, "")
			wstPollUntil(e, "EvWSOpen", func() bool { return cl.lg().opened || cl.lg().closed })
			return cl, p
		}

		// Ours, answered.
		var sent time.Time
		cl, p := open(func(c *meerkat.Conn) {
			sent = time.Now()
			if !meerkat.WSClose(c, 1000, longReason) {
				t.Errorf("WSClose refused")
			}
		})
		fs := p.waitFrames(1)
		reason := fs[0].payload[min(2, len(fs[0].payload)):]
		if !fs[0].isClose() || !fs[0].masked || fs[0].closeCode() != 1000 || len(fs[0].payload) != 124 || !utf8.Valid(reason) || !strings.HasPrefix(longReason, string(reason)) {
			t.Errorf("close frame %v (%d bytes), want masked 1000 with 61 \"é\"", fs[0], len(fs[0].payload))
		}
		if cl.lg().closed || p.isEnded() {
			t.Fatalf("closed before the answer")
		}
		p.write(p.closeFrame(1000, ""))
		p.waitEOF()
		lg := cl.lg()
		wstPollUntil(e, "the close", func() bool { return lg.closed })
		if len(lg.ctls) != 1 || lg.ctls[0].code != 1000 || len(lg.errs) != 0 || len(p.framesNow()) != 1 {
			t.Errorf("ours: control frames %+v, errors %v, frames %v", lg.ctls, lg.errs, p.framesNow())
		}

		// The server's.
		cl, p = open(nil)
		p.write(p.closeFrame(1001, "going"), p.text("late"))
		p.waitEOF()
		lg = cl.lg()
		wstPollUntil(e, "the close", func() bool { return lg.closed })
		fs = p.framesNow()
		if len(fs) != 1 || !fs[0].masked || fs[0].closeCode() != 1001 {
			t.Errorf("the server's: frames %v, want one masked close 1001", fs)
		}
		if len(lg.ctls) != 1 || lg.ctls[0].code != 1001 || lg.ctls[0].reason != "going" || len(lg.msgs) != 0 || len(lg.errs) != 0 {
			t.Errorf("the server's: control frames %+v, messages %q, errors %v", lg.ctls, lg.msgData(), lg.errs)
		}

		// Vanishing servers.
		for _, how := range []string{"close", "reset"} {
			cl, p = open(nil)
			if how == "reset" {
				resetPeer(t, p.nc)
			} else {
				p.nc.Close()
			}
			lg = cl.lg()
			wstPollUntil(e, how+": EvClose", func() bool { return lg.closed })
			if len(lg.ctls) != 0 || len(lg.msgs) != 0 {
				t.Errorf("%s: control frames %+v, messages %q", how, lg.ctls, lg.msgData())
			}
			t.Logf("%s: errors %v", how, lg.errs)
		}

		// Never answered.
		cl, p = open(func(c *meerkat.Conn) {
			sent = time.Now()
			meerkat.WSClose(c, 1000, "")
		})
		lg = cl.lg()
		wstPollUntil(e, "the close timeout", func() bool { return lg.closed })
		took := lg.closedAt.Sub(sent)
		if len(lg.errs) != 1 || !errors.Is(lg.errs[0], meerkat.ErrWSCloseTimeout) || took < e.m.WS.CloseTimeout || took > e.m.WS.CloseTimeout+3*time.Second {
			t.Errorf("never answered: errors %v after %v", lg.errs, took)
		}
		if fs := p.waitFrames(1); len(fs) != 1 || fs[0].closeCode() != 1000 {
			t.Errorf("never answered: frames %v", fs)
		}
	})
}

// TestWSClientKeepalive proves Manager.WS.PingInterval on a client: masked
// pings with fresh keys on an idle connection that stays open while the
// server answers; a server that does not answer is cut with
// ErrWSPingTimeout.
func TestWSClientKeepalive(t *testing.T) {
	const iv = 100 * time.Millisecond
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		e.m.WS.PingInterval = iv
		raw := wstListenRaw(e)

		start := time.Now()
		cl := wstConnect(e, raw.url("/"), nil, &wstClient{})
		p, req := raw.request(e)
		p.autoPong.Store(true)
		p.write(wstSwitching(req.Header.Get("Sec-WebSocket-Key"), ""))
		fs := p.waitFrames(4)
		if took := time.Since(start); took < 4*iv {
			t.Errorf("4 pings in %v", took)
		}
		keys := map[[4]byte]bool{}
		for _, f := range fs {
			if f.b0 != wstFin|wstOpPing || !f.masked || keys[f.key] {
				t.Errorf("frame %v", f)
			}
			keys[f.key] = true
		}
		if lg := cl.lg(); lg.closed || len(lg.errs) != 0 {
			t.Errorf("answered: closed %v, errors %v", lg.closed, lg.errs)
		}

		start = time.Now()
		cl2 := wstConnect(e, raw.url("/"), nil, &wstClient{})
		p2, _ := raw.handshake(e, "")
		lg2 := cl2.lg()
		wstPollUntil(e, "the ping timeout", func() bool { return lg2.closed })
		if len(lg2.errs) != 1 || !errors.Is(lg2.errs[0], meerkat.ErrWSPingTimeout) {
			t.Errorf("errors %v, want ErrWSPingTimeout", lg2.errs)
		}
		if took := lg2.closedAt.Sub(start); took < 2*iv || took > 2*iv+3*time.Second {
			t.Errorf("cut after %v", took)
		}
		p2.waitEnd()
		if fs := p2.framesNow(); len(fs) != 1 || fs[0].op() != wstOpPing {
			t.Errorf("frames %v, want one ping", fs)
		}
	})
}

// TestWSClientCompression proves permessage-deflate on the client against a
// server of the tests' own: the offer for each setting (none without
// compression), each acceptable answer (context takeover both ways, one
// way, none, declined), the client's messages compressed (RSV1, masked)
// exactly when 128 bytes or more in the agreed context mode, and the
// server's compressed messages — fragmented, empty, many in a row —
// delivered intact with 0x40 in Flags.
func TestWSClientCompression(t *testing.T) {
	cases := []struct {
		name           string
		comp, takeover bool // the client's settings
		offer          string
		answer         string
		cliTake        bool // the client keeps its context
		srvTake        bool // the server may keep its context
	}{
		{"no context takeover", true, false, "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover", false, false},
		{"context takeover", true, true, "permessage-deflate", "permessage-deflate", true, true},
		{"server keeps, client does not", true, true, "permessage-deflate", "permessage-deflate; client_no_context_takeover", false, true},
		{"client keeps, server does not", true, true, "permessage-deflate", "permessage-deflate; server_no_context_takeover", true, false},
		{"declined", true, false, "permessage-deflate; server_no_context_takeover; client_no_context_takeover", "", false, false},
		{"off", false, false, "", "", false, false},
	}
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		raw := wstListenRaw(e)
		for _, tc := range cases {
			wstSub(t, e, tc.name, func(e *env) {
				t := e.t
				e.m.WS.Compression, e.m.WS.CompressionContextTakeover = tc.comp, tc.takeover
				agreed := tc.answer != ""
				ms := wstCompMessages(agreed)
				cl := wstConnect(e, raw.url("/"), nil, &wstClient{hook: func(c *meerkat.Conn, ev meerkat.Event, data any) bool {
					if ev == meerkat.EvWSOpen {
						for _, m := range ms {
							meerkat.WSSend(c, m.data, meerkat.WSOp(m.op))
						}
					}
					return false
				}})
				p, req := raw.request(e)
				if got := strings.Join(req.Header.Values("Sec-WebSocket-Extensions"), ", "); got != tc.offer {
					t.Errorf("offer %q, want %q", got, tc.offer)
				}
				ext := ""
				if agreed {
					ext = "Sec-WebSocket-Extensions: " + tc.answer + "\r\n"
				}
				p.write(wstSwitching(req.Header.Get("Sec-WebSocket-Key"), ext))
				fs := p.waitFrames(len(ms))
				wstCheckCompressed(t, fs, ms, agreed, tc.cliTake, true)

				p.write(wstCompFrames(t, p, ms, &wstDeflater{takeover: tc.srvTake})...)
				lg := cl.lg()
				wstPollUntil(e, "the server's messages", func() bool { return len(lg.msgs) >= len(ms) || lg.closed })
				wstCheckDelivered(t, lg, ms)
				p.nc.Close()
				wstPollUntil(e, "the close", func() bool { return lg.closed })
			})
		}
	})
}

// TestWSCompressionEcho proves permessage-deflate between Meerkat's client
// and server, with and without context takeover: many messages of every
// kind in a row come back intact, and each side sees 0x40 in Flags exactly
// on the messages of 128 bytes or more.
func TestWSCompressionEcho(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		for _, takeover := range []bool{false, true} {
			e := newEnv(t, drv, useTLS)
			e.m.WS.Compression, e.m.WS.CompressionContextTakeover = true, takeover
			s := wstListen(e, &wstServer{echo: true})
			var ms [][]byte
			for i := range 120 {
				switch i % 5 {
				case 0:
					ms = append(ms, []byte(strings.Repeat("compressible ", i)))
				case 1:
					ms = append(ms, wstRandom(i*50, uint64(i)))
				case 2:
					ms = append(ms, []byte("short"))
				case 3:
					ms = append(ms, bytes.Repeat([]byte{byte(i)}, 127+i%3))
				case 4:
					ms = append(ms, wstPayload(wstOpBinary, 20000+i*100, i))
				}
			}
			cl := wstConnect(e, s.url("/"), nil, &wstClient{hook: func(c *meerkat.Conn, ev meerkat.Event, data any) bool {
				if ev == meerkat.EvWSOpen {
					for _, m := range ms {
						meerkat.WSSend(c, m, meerkat.WSOpBinary)
					}
				}
				return false
			}})
			lg := cl.lg()
			wstPollUntil(e, "every echo", func() bool { return len(lg.msgs) >= len(ms) || lg.closed })
			sl := s.log(s.conns[0])
			for i, m := range ms {
				want := byte(0x82)
				if len(m) >= 128 {
					want |= 0x40
				}
				if got := lg.msgs[i]; got.flags != want || !bytes.Equal(got.data, m) {
					t.Errorf("takeover %v: echo %d (%d bytes): flags %#x, %d bytes; want %#x", takeover, i, len(m), got.flags, len(got.data), want)
				}
				if got := sl.msgs[i]; got.flags != want || !bytes.Equal(got.data, m) {
					t.Errorf("takeover %v: message %d at the server: flags %#x, %d bytes; want %#x", takeover, i, got.flags, len(got.data), want)
				}
			}
			if len(lg.errs)+len(sl.errs) != 0 {
				t.Errorf("errors %v %v", lg.errs, sl.errs)
			}
		}
	})
}

// TestWSClientSendRefusals proves that WSSend, WSSendFrame and WSClose
// refuse (0, false) before the handshake is complete (right after
// WSConnect, on EvConnect) and data after the server's close frame, and
// report the bytes queued, masking key included, once open.
func TestWSClientSendRefusals(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		raw := wstListenRaw(e)
		var got []int
		note := func(n int) { got = append(got, n) }
		try := func(c *meerkat.Conn) {
			note(meerkat.WSSend(c, []byte("x"), meerkat.WSOpText))
			note(meerkat.WSSend(c, nil, meerkat.WSOpPing))
			note(meerkat.WSSendFrame(c, []byte("x"), meerkat.WSOpBinary, true))
			if meerkat.WSClose(c, 1000, "") {
				note(1)
			} else {
				note(0)
			}
		}
		cl := wstConnect(e, raw.url("/"), nil, &wstClient{hook: func(c *meerkat.Conn, ev meerkat.Event, data any) bool {
			switch ev {
			case meerkat.EvConnect, meerkat.EvTLSHandshake:
				try(c)
			case meerkat.EvWSOpen:
				note(meerkat.WSSend(c, []byte("hello"), meerkat.WSOpText))
				note(meerkat.WSSend(c, make([]byte, 126), meerkat.WSOpPong))
				note(meerkat.WSSend(c, make([]byte, 125), meerkat.WSOpPong))
				note(meerkat.WSSendFrame(c, []byte("ab"), meerkat.WSOpText, false))
				note(meerkat.WSSendFrame(c, []byte("c"), meerkat.WSOpContinuation, true))
			case meerkat.EvWSCtl:
				note(meerkat.WSSend(c, []byte("x"), meerkat.WSOpText))
				note(meerkat.WSSendFrame(c, []byte("x"), meerkat.WSOpText, true))
			}
			return false
		}})
		try(cl.c)
		p, _ := raw.handshake(e, "")
		fs := p.waitFrames(4)
		want := []int{0, 0, 0, 0, 0, 0, 0, 0}
		if useTLS {
			want = append(want, 0, 0, 0, 0)
		}
		want = append(want, 11, 0, 131, 8, 7)
		if !slices.Equal(got, want) {
			t.Errorf("results %v, want %v", got, want)
		}
		if string(fs[0].payload) != "hello" || len(fs[1].payload) != 125 || fs[2].b0 != wstOpText || fs[3].b0 != wstFin|wstOpCont {
			t.Errorf("frames %v", fs)
		}
		got = nil
		p.write(p.closeFrame(1000, ""))
		p.waitEOF()
		wstPollUntil(e, "the close", func() bool { return cl.lg().closed })
		if !slices.Equal(got, []int{0, 0}) {
			t.Errorf("after the server's close: %v, want 0 0", got)
		}
	})
}
