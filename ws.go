package meerkat

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/meerkat-net/meerkat/internal/httpwire"
	"github.com/meerkat-net/meerkat/internal/wsframe"
)

// WSOp is a WebSocket frame opcode.
type WSOp byte

// WebSocket opcodes (RFC 6455 section 5.2).
const (
	WSOpContinuation WSOp = 0x0 // a later fragment of a message (WSSendFrame)
	WSOpText         WSOp = 0x1
	WSOpBinary       WSOp = 0x2
	WSOpClose        WSOp = 0x8
	WSOpPing         WSOp = 0x9
	WSOpPong         WSOp = 0xA
)

// WebSocket close codes (RFC 6455 section 7.4.1).
const (
	WSCloseNormal          = 1000
	WSCloseGoingAway       = 1001
	WSCloseProtocolError   = 1002
	WSCloseUnsupported     = 1003
	WSCloseNoStatus        = 1005 // received only: the close frame had no code
	WSCloseInvalidData     = 1007
	WSClosePolicyViolation = 1008
	WSCloseTooBig          = 1009
	WSCloseInternalError   = 1011
)

// WSMessage is a WebSocket message (EvWSMsg) or control frame (EvWSCtl).
type WSMessage struct {
	// Data is the payload: a whole message, reassembled from its fragments
	// and decompressed. It may be a view of the receive buffer, valid only
	// during the handler call: copy what you keep.
	Data []byte
	// Flags is the first byte of the frame as sent: FIN (0x80) and, for a
	// message that came compressed, RSV1 (0x40), and the opcode in the low
	// four bits (for a fragmented message, its first frame's).
	Flags byte
}

// Op is the message's opcode: WSOpText, WSOpBinary, WSOpClose, WSOpPing or
// WSOpPong.
func (wm *WSMessage) Op() WSOp { return WSOp(wm.Flags & 0x0f) }

// CloseCode is a close frame's status code, WSCloseNoStatus (1005) when it
// had none; 0 for other frames.
func (wm *WSMessage) CloseCode() int {
	if wm.Op() != WSOpClose {
		return 0
	}
	if len(wm.Data) < 2 {
		return WSCloseNoStatus
	}
	return int(binary.BigEndian.Uint16(wm.Data))
}

// CloseReason is a close frame's reason text (a view of Data).
func (wm *WSMessage) CloseReason() []byte {
	if wm.Op() != WSOpClose || len(wm.Data) < 2 {
		return nil
	}
	return wm.Data[2:]
}

// WebSocket errors, delivered with EvError.
var (
	// ErrWSHandshake: a WebSocket client's handshake failed (the server's
	// answer was not a valid 101, or the connection ended before it).
	ErrWSHandshake = errors.New("meerkat: websocket handshake failed")
	// ErrWSProtocol matches every *WSError.
	ErrWSProtocol = errors.New("meerkat: websocket protocol violation")
	// ErrWSCloseTimeout: the peer did not answer our close frame in time.
	ErrWSCloseTimeout = errors.New("meerkat: websocket peer did not answer the close frame in time")
	// ErrWSPingTimeout: the peer stopped answering keepalive pings.
	ErrWSPingTimeout = errors.New("meerkat: websocket peer stopped answering pings")
)

// WSError is a protocol violation by the peer: the connection sent a close
// frame with Code and closed. errors.Is(err, ErrWSProtocol) holds.
type WSError struct {
	Code   int
	Reason string
}

func (e *WSError) Error() string {
	return fmt.Sprintf("meerkat: websocket: %s (close code %d)", e.Reason, e.Code)
}

// Is makes WSError match ErrWSProtocol.
func (e *WSError) Is(target error) bool { return target == ErrWSProtocol }

// WSOptions are a WebSocket client's handshake options.
type WSOptions struct {
	// Headers are extra request header lines, each ending in "\r\n".
	Headers string
	// Subprotocols are offered in Sec-WebSocket-Protocol, most preferred
	// first; the server's choice is WSSubprotocol's.
	Subprotocols []string
}

// wsWaitWhole is the size up to which a single-frame message still
// arriving is left in the receive buffer until it is whole, so that it is
// delivered in place; larger ones are gathered into a message buffer as
// they arrive.
const wsWaitWhole = 256 << 10

// wsState is one WebSocket connection's protocol state.
type wsState struct {
	rd      wsframe.Reader
	client  bool
	hdr     wsframe.Header // the frame being taken
	have    bool           // hdr is accepted and still at the front of Recv
	inFrame bool           // hdr's payload is being gathered into msg
	remain  uint64         // inFrame: payload bytes still to come
	pos     int            // inFrame: masking position
	msg     IOBuf          // a message being gathered
	wm      WSMessage

	closeSent bool  // our close frame is queued
	closeRecv bool  // the peer's close frame arrived
	ignore    bool  // input is discarded (after the peer's close, or a violation)
	closeBy   int64 // when our close frame must be answered by (Manager clock)
	closeEnd  int64 // c.queued just after our close frame
	resume    bool  // bytes that followed the upgrade request wait in Recv

	lastRecv int64 // when the last frame arrived (Manager clock)
	pingSent int64 // when an unanswered keepalive ping went out, 0 if none

	subprotocol string
	comp        *wsframe.Compressor
	decomp      *wsframe.Decompressor

	// inner is the state of a protocol carried in the messages (MQTT).
	inner any

	// Client handshake, until the 101 arrives.
	hs   *httpState
	key  string
	opts *WSOptions
}

func wsOf(c *Conn) *wsState {
	ws, _ := c.pstate.(*wsState)
	return ws
}

// WSSubprotocol is the subprotocol the handshake agreed on, "" if none.
func WSSubprotocol(c *Conn) string {
	if ws := wsOf(c); ws != nil {
		return ws.subprotocol
	}
	return ""
}

func (m *Manager) wsMaxMessage() int { return orDefault(m.WS.MaxMessage, DefaultWSMaxMessage) }

func (m *Manager) wsDeflateConfig() wsframe.Config {
	return wsframe.Config{ContextTakeover: m.WS.CompressionContextTakeover, Level: m.WS.CompressionLevel}
}

// wsAcceptKey is Sec-WebSocket-Accept for a Sec-WebSocket-Key.
func wsAcceptKey(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// wsKeyValid reports whether a Sec-WebSocket-Key is the base64 form of 16
// bytes.
func wsKeyValid(key []byte) bool {
	if len(key) != 24 {
		return false
	}
	var out [18]byte
	n, err := base64.StdEncoding.Decode(out[:], key)
	return err == nil && n == 16
}

// WSUpgrade answers a WebSocket handshake request (call it on EvHTTPMsg, or
// later for a deferred reply): it checks the request (GET, HTTP/1.1,
// "Upgrade: websocket", "Connection: upgrade", a Sec-WebSocket-Key of 16
// bytes, version 13), negotiates a subprotocol (Manager.WS.Subprotocols;
// extraHeaders naming Sec-WebSocket-Protocol decide instead) and
// permessage-deflate (Manager.WS.Compression), sends 101 with extraHeaders
// (each line ending in "\r\n"), and delivers EvWSOpen with the request. From
// then on the connection speaks WebSocket: EvWSMsg, EvWSCtl, WSSend. A
// request that is not a valid handshake is answered 400 (426 with
// "Sec-WebSocket-Version: 13" for another version) and the connection stays
// HTTP.
func WSUpgrade(c *Conn, hm *HTTPMessage, extraHeaders string) {
	wsUpgrade(c, hm, extraHeaders, wsProto, nil)
}

// wsUpgrade is WSUpgrade for a protocol carried over WebSocket (MQTT): proto
// becomes the connection's protocol handler (it calls wsProto itself) and
// inner its state, beside the WebSocket state. It reports whether the
// connection was upgraded.
func wsUpgrade(c *Conn, hm *HTTPMessage, extraHeaders string, proto Handler, inner any) bool {
	h := httpOf(c)
	if h == nil || h.client || c.IsClosing() || h.stage == stClosed {
		return false
	}
	w := &hm.wire
	key := hm.Header("Sec-WebSocket-Key")
	bad := ""
	switch {
	case string(hm.Method) != "GET":
		bad = "websocket: the handshake must be a GET"
	case w.Minor < 1:
		bad = "websocket: the handshake needs HTTP/1.1"
	case !w.HasToken("Upgrade", "websocket"):
		bad = "websocket: no \"Upgrade: websocket\""
	case !w.HasToken("Connection", "upgrade"):
		bad = "websocket: no \"Connection: upgrade\""
	case string(hm.Header("Sec-WebSocket-Version")) != "13":
		HTTPReply(c, 426, "Sec-WebSocket-Version: 13\r\n", "websocket: unsupported version %q; this server speaks 13\n", hm.Header("Sec-WebSocket-Version"))
		return false
	case !wsKeyValid(key):
		bad = "websocket: Sec-WebSocket-Key is not 16 bytes in base64"
	}
	if bad != "" {
		HTTPReply(c, 400, "", "%s\n", bad)
		return false
	}
	m := c.m
	ws := &wsState{inner: inner}
	ws.rd.Server = true
	ws.rd.MaxMessage = uint64(m.wsMaxMessage())

	b := append(m.headBuf[:0], "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	b = append(b, wsAcceptKey(string(key))...)
	b = append(b, "\r\n"...)
	if p, named := wsHeaderValue(extraHeaders, "Sec-WebSocket-Protocol"); named {
		ws.subprotocol = p
	} else if p := wsPickSubprotocol(w, m.WS.Subprotocols); p != "" {
		ws.subprotocol = p
		b = append(b, "Sec-WebSocket-Protocol: "...)
		b = append(b, p...)
		b = append(b, "\r\n"...)
	}
	if m.WS.Compression {
		if p, resp, ok := wsframe.ServerNegotiate(wsJoinFields(w, "Sec-WebSocket-Extensions"), m.wsDeflateConfig()); ok {
			ws.startDeflate(m, p)
			b = append(b, "Sec-WebSocket-Extensions: "...)
			b = append(b, resp...)
			b = append(b, "\r\n"...)
		}
	}
	b = append(b, extraHeaders...)
	b = append(b, "\r\n"...)
	m.headBuf = b
	if !c.Send(b) {
		ws.release()
		return false
	}

	// The connection leaves HTTP: nothing more is parsed as a request, and
	// whatever followed the request is read as frames at EvPoll.
	if a := h.access; a != nil {
		h.access = nil
		a.Status, a.Bytes, a.Duration = 101, c.queued-h.mark, time.Since(h.start)
		if f := m.HTTP.AccessLog; f != nil {
			f(a)
		}
	}
	h.stage, h.upgraded, h.headSince, h.pump, h.keepAlive = stClosed, true, 0, nil, false
	c.pstate, c.proto, c.hold, c.onShutdown = ws, proto, nil, wsShutdown
	ws.resume = true
	ws.open(c)
	m.markActive(c)
	m.dispatch(c, EvWSOpen, hm)
	return true
}

// wsHeaderValue finds the field called name in header lines (each ending
// in "\r\n"): its value, and whether it is there.
func wsHeaderValue(lines, name string) (string, bool) {
	for _, l := range strings.Split(lines, "\r\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// wsJoinFields joins every field called name with commas.
func wsJoinFields(w *httpwire.Message, name string) string {
	var s []string
	for i := range w.Headers {
		if httpwire.EqualFold(w.Headers[i].Name, name) {
			s = append(s, string(w.Headers[i].Value))
		}
	}
	return strings.Join(s, ", ")
}

// wsPickSubprotocol picks the first of ours that the client offers.
func wsPickSubprotocol(w *httpwire.Message, ours []string) string {
	for _, p := range ours {
		if w.HasToken("Sec-WebSocket-Protocol", p) {
			return p
		}
	}
	return ""
}

func (ws *wsState) startDeflate(m *Manager, p wsframe.Params) {
	ws.rd.Compression = true
	ws.comp = p.NewCompressor(!ws.client, m.WS.CompressionLevel)
	ws.decomp = p.NewDecompressor(!ws.client)
}

func (ws *wsState) release() {
	if ws.comp != nil {
		ws.comp.Release()
		ws.comp = nil
	}
	if ws.decomp != nil {
		ws.decomp.Release()
		ws.decomp = nil
	}
	ws.msg.reset()
}

// open starts the WebSocket phase of a connection.
func (ws *wsState) open(c *Conn) {
	ws.lastRecv = c.m.clock()
	ws.schedule(c)
}

// WSConnect opens a WebSocket client connection to a ws:// or wss:// URL
// (TLS verification on, server name from the URL). EvWSOpen comes with the
// server's 101 response once the handshake succeeded; a failed handshake is
// an EvError matching ErrWSHandshake, then EvClose.
func (m *Manager) WSConnect(url string, fn Handler) (*Conn, error) {
	return m.WSConnectOpts(url, nil, fn)
}

// WSConnectOpts is WSConnect with extra request headers and subprotocols.
func (m *Manager) WSConnectOpts(url string, opts *WSOptions, fn Handler) (*Conn, error) {
	ep, err := parseURL(url)
	if err != nil {
		return nil, err
	}
	if ep.scheme != "ws" && ep.scheme != "wss" {
		return nil, fmt.Errorf("%w %q: WSConnect needs ws:// or wss://", ErrBadURL, url)
	}
	if opts != nil {
		if opts.Headers != "" && (!strings.HasSuffix(opts.Headers, "\r\n") || strings.Contains(opts.Headers, "\r\n\r\n")) {
			return nil, fmt.Errorf("meerkat: WSOptions.Headers must be header lines, each ending in \"\\r\\n\"")
		}
		for _, p := range opts.Subprotocols {
			if p == "" || strings.ContainsAny(p, " ,;\t\r\n\"") {
				return nil, fmt.Errorf("meerkat: invalid WebSocket subprotocol %q", p)
			}
		}
	}
	c, err := m.connect(url, fn, wsClientProto)
	if err != nil {
		return nil, err
	}
	var k [16]byte
	rand.Read(k[:])
	ws := &wsState{client: true, hs: newHTTPClientState(c, ep), key: base64.StdEncoding.EncodeToString(k[:]), opts: opts}
	ws.hs.wrapErr = ErrWSHandshake
	ws.rd.MaxMessage = uint64(m.wsMaxMessage())
	c.pstate = ws
	c.onShutdown = wsShutdown
	return c, nil
}

func wsClientProto(c *Conn, ev Event, data any) {
	ws := wsOf(c)
	if ws == nil {
		return
	}
	if ws.hs == nil {
		wsProto(c, ev, data)
		return
	}
	switch ev {
	case EvConnect:
		ws.sendRequest(c)
	case EvRead:
		c.m.httpParse(c, ws.hs)
		if ws.hs == nil { // upgraded: frames may have come with the 101
			ws.lastRecv = c.m.now
			ws.parse(c)
		}
	case EvHTTPHeaders:
		hm := data.(*HTTPMessage)
		if hm.Status != 101 {
			c.m.fail(c, fmt.Errorf("%w: the server answered %d %s instead of 101", ErrWSHandshake, hm.Status, hm.Reason))
			return
		}
		c.flags |= fSwallow
	case EvHTTPMsg:
		if err := ws.checkResponse(c, data.(*HTTPMessage)); err != nil {
			c.m.fail(c, err)
			return
		}
		ws.hs = nil
		ws.open(c)
		c.m.dispatch(c, EvWSOpen, data)
		c.flags |= fSwallow
	case EvClose:
		if c.flags&fFailed == 0 {
			c.m.dispatch(c, EvError, fmt.Errorf("%w: the connection closed before the server's answer", ErrWSHandshake))
		}
		ws.release()
	}
}

// sendRequest sends the client's handshake request.
func (ws *wsState) sendRequest(c *Conn) {
	m := c.m
	var b strings.Builder
	b.WriteString("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ")
	b.WriteString(ws.key)
	b.WriteString("\r\nSec-WebSocket-Version: 13\r\n")
	if ws.opts != nil && len(ws.opts.Subprotocols) > 0 {
		b.WriteString("Sec-WebSocket-Protocol: ")
		b.WriteString(strings.Join(ws.opts.Subprotocols, ", "))
		b.WriteString("\r\n")
	}
	if m.WS.Compression {
		b.WriteString("Sec-WebSocket-Extensions: ")
		b.WriteString(wsframe.ClientOffer(m.wsDeflateConfig()))
		b.WriteString("\r\n")
	}
	if ws.opts != nil {
		b.WriteString(ws.opts.Headers)
	}
	if !httpSendRequest(c, ws.hs, "GET", "", b.String(), nil) {
		m.fail(c, fmt.Errorf("%w: the request could not be queued", ErrWSHandshake))
	}
}

// checkResponse checks the server's 101 and sets up what it agreed to.
func (ws *wsState) checkResponse(c *Conn, hm *HTTPMessage) error {
	w := &hm.wire
	switch {
	case !w.HasToken("Upgrade", "websocket"):
		return fmt.Errorf("%w: the 101 response lacks \"Upgrade: websocket\"", ErrWSHandshake)
	case !w.HasToken("Connection", "upgrade"):
		return fmt.Errorf("%w: the 101 response lacks \"Connection: upgrade\"", ErrWSHandshake)
	case string(hm.Header("Sec-WebSocket-Accept")) != wsAcceptKey(ws.key):
		return fmt.Errorf("%w: Sec-WebSocket-Accept %q does not match the key sent", ErrWSHandshake, hm.Header("Sec-WebSocket-Accept"))
	}
	if p := hm.Header("Sec-WebSocket-Protocol"); p != nil {
		ok := false
		if ws.opts != nil {
			for _, o := range ws.opts.Subprotocols {
				ok = ok || o == string(p)
			}
		}
		if !ok {
			return fmt.Errorf("%w: the server chose subprotocol %q, which was not offered", ErrWSHandshake, p)
		}
		ws.subprotocol = string(p)
	}
	ext := wsJoinFields(w, "Sec-WebSocket-Extensions")
	switch {
	case ext == "":
	case !c.m.WS.Compression:
		return fmt.Errorf("%w: the server accepted extensions %q, which were not offered", ErrWSHandshake, ext)
	default:
		p, ok, err := wsframe.ClientAccept(ext, c.m.wsDeflateConfig())
		if err != nil {
			return fmt.Errorf("%w: %v", ErrWSHandshake, err)
		}
		if ok {
			ws.startDeflate(c.m, p)
		}
	}
	return nil
}

// wsProto runs a connection in its WebSocket phase.
func wsProto(c *Conn, ev Event, _ any) {
	ws := wsOf(c)
	if ws == nil {
		return
	}
	switch ev {
	case EvRead:
		// Any byte shows the peer alive, also in the middle of a long
		// frame, which no pong can interrupt.
		ws.lastRecv = c.m.now
		ws.parse(c)
	case EvPoll:
		if ws.resume {
			ws.resume = false
			ws.parse(c)
		}
		ws.timers(c)
	case EvClose:
		ws.release()
	}
}

// wsShutdown is Shutdown's way out: a close frame (1001), then the close
// handshake as usual.
func wsShutdown(c *Conn) {
	ws := wsOf(c)
	if ws == nil || ws.hs != nil {
		c.Close()
		return
	}
	if !ws.closeSent {
		ws.sendClose(c, WSCloseGoingAway, "going away")
	}
	if ws.closeRecv {
		c.Drain()
	}
}

// parse turns received bytes into WebSocket events until it needs more.
func (ws *wsState) parse(c *Conn) {
	m := c.m
	for c.flags&(fClosing|fClosed) == 0 {
		buf := c.recv.Bytes()
		if ws.ignore {
			c.recv.Consume(len(buf))
			return
		}
		if len(buf) == 0 && !(ws.inFrame && ws.remain == 0) {
			return
		}
		if ws.inFrame {
			if !ws.gather(c, buf) {
				return
			}
			continue
		}
		if !ws.have {
			h, ok, err := wsframe.ParseHeader(buf)
			if err != nil {
				ws.violation(c, err)
				return
			}
			if !ok {
				return
			}
			if err := ws.rd.Frame(&h); err != nil {
				ws.violation(c, err)
				return
			}
			ws.hdr, ws.have = h, true
			ws.lastRecv = m.now
		}
		h := &ws.hdr
		total := uint64(h.Size) + h.Length
		whole := uint64(len(buf)) >= total
		if h.Op >= wsframe.OpClose {
			if !whole {
				return // at most 139 bytes
			}
			ws.have = false
			p := buf[h.Size:total]
			if h.Masked {
				wsframe.Mask(h.Key, 0, p)
			}
			ws.control(c, h.Op, p)
			c.recv.Consume(int(total))
			continue
		}
		single := h.Fin && h.Op != wsframe.OpContinuation
		if single && whole {
			// A whole message in one frame, all here: delivered in place.
			ws.have = false
			p := buf[h.Size:total]
			if h.Masked {
				wsframe.Mask(h.Key, 0, p)
			}
			op, compressed := ws.rd.Message()
			if op == wsframe.OpText && !compressed {
				if err := ws.rd.Text(p); err != nil {
					ws.violation(c, err)
					return
				}
			}
			if err := ws.rd.End(); err != nil {
				ws.violation(c, err)
				return
			}
			ws.deliver(c, op, compressed, p)
			c.recv.Consume(int(total))
			continue
		}
		if single && total <= wsWaitWhole && int(total) <= m.recvLimit() {
			return // small enough to wait for whole
		}
		c.recv.Consume(h.Size)
		ws.have, ws.inFrame, ws.remain, ws.pos = false, true, h.Length, 0
	}
}

// gather takes the current frame's payload into msg as it arrives; it
// reports whether the frame is complete.
func (ws *wsState) gather(c *Conn, buf []byte) bool {
	h := &ws.hdr
	n := int(min(uint64(len(buf)), ws.remain))
	p := buf[:n]
	if h.Masked {
		ws.pos = wsframe.Mask(h.Key, ws.pos, p)
	}
	op, compressed := ws.rd.Message()
	if op == wsframe.OpText && !compressed {
		if err := ws.rd.Text(p); err != nil {
			ws.violation(c, err)
			return false
		}
	}
	ws.msg.append(p)
	c.recv.Consume(n)
	ws.remain -= uint64(n)
	if ws.remain > 0 {
		return false
	}
	ws.inFrame = false
	if !h.Fin {
		return true
	}
	if err := ws.rd.End(); err != nil {
		ws.violation(c, err)
		return false
	}
	ws.deliver(c, op, compressed, ws.msg.Bytes())
	ws.msg.reset()
	return true
}

// deliver sends EvWSMsg for a complete message.
func (ws *wsState) deliver(c *Conn, op byte, compressed bool, p []byte) {
	m := c.m
	flags := 0x80 | op
	if compressed {
		if ws.decomp == nil {
			ws.violation(c, &wsframe.Error{Code: wsframe.CloseProtocolError, Reason: "compressed message without permessage-deflate"})
			return
		}
		out, err := ws.decomp.Decompress(m.wsOut[:0], p, m.wsMaxMessage())
		if err != nil {
			ws.violation(c, err)
			return
		}
		if op == wsframe.OpText && !utf8.Valid(out) {
			ws.violation(c, &wsframe.Error{Code: wsframe.CloseInvalidData, Reason: "text message is not valid UTF-8"})
			return
		}
		m.wsOut = out
		p = out
		flags |= 0x40
	}
	if ws.closeRecv {
		return
	}
	ws.wm = WSMessage{Data: p, Flags: flags}
	m.dispatch(c, EvWSMsg, &ws.wm)
	ws.wm.Data = nil
	if cap(m.wsOut) > 1<<20 {
		m.wsOut = nil
	}
}

// control handles a control frame (payload unmasked).
func (ws *wsState) control(c *Conn, op byte, p []byte) {
	m := c.m
	switch op {
	case wsframe.OpPing:
		if !ws.closeSent && !ws.closeRecv {
			ws.writeFrame(c, true, 0, wsframe.OpPong, p)
		}
	case wsframe.OpPong:
		ws.pingSent = 0
	case wsframe.OpClose:
		code, _, err := wsframe.ParseClose(p)
		if err != nil {
			ws.violation(c, err)
			return
		}
		ws.closeRecv, ws.ignore = true, true
		ws.closeBy = 0
		ws.wm = WSMessage{Data: p, Flags: 0x80 | op}
		m.dispatch(c, EvWSCtl, &ws.wm)
		ws.wm.Data = nil
		if !ws.closeSent { // answer with the same code (none for none)
			if code == wsframe.CloseNoStatus {
				code = 0
			}
			ws.sendClose(c, code, "")
		}
		c.Drain()
		return
	}
	if ws.closeRecv {
		return
	}
	ws.wm = WSMessage{Data: p, Flags: 0x80 | op}
	m.dispatch(c, EvWSCtl, &ws.wm)
	ws.wm.Data = nil
}

// violation answers a protocol violation by the peer: EvError, a close
// frame with the code for it, and the end of the connection. Nothing more
// it sent is read.
func (ws *wsState) violation(c *Conn, err error) {
	e := &WSError{Code: WSCloseProtocolError, Reason: err.Error()}
	var fe *wsframe.Error
	if errors.As(err, &fe) {
		e.Code, e.Reason = int(fe.Code), fe.Reason
	}
	ws.ignore = true
	c.recv.Consume(c.recv.Len())
	c.m.dispatch(c, EvError, e)
	c.flags |= fFailed // no event for the user but EvClose from now on
	if !ws.closeSent {
		ws.sendClose(c, uint16(e.Code), "")
	}
	c.Drain()
}

// sendClose queues our close frame and starts waiting for the answer.
func (ws *wsState) sendClose(c *Conn, code uint16, reason string) bool {
	var b [125]byte
	p := wsframe.AppendClose(b[:0], code, reason)
	return ws.writeClose(c, p)
}

func (ws *wsState) writeClose(c *Conn, p []byte) bool {
	if ws.closeSent || ws.writeFrame(c, true, 0, wsframe.OpClose, p) == 0 {
		return false
	}
	ws.closeSent = true
	ws.closeEnd = c.queued
	if !ws.closeRecv {
		ws.closeBy = c.m.clock() + timeoutNanos(c.m.WS.CloseTimeout, DefaultWSCloseTimeout)
		c.wakeProtoAt(ws.closeBy)
	}
	return true
}

// timers checks the close timeout and the keepalive.
func (ws *wsState) timers(c *Conn) {
	m := c.m
	if ws.hs != nil || c.flags&(fClosing|fClosed) != 0 {
		return
	}
	if ws.closeBy != 0 {
		if m.now >= ws.closeBy {
			if c.queued-int64(c.send.Len()) < ws.closeEnd {
				// Our close frame still waits behind data the peer is slow
				// to take: the wait for its answer starts once it is sent.
				ws.closeBy = m.now + timeoutNanos(m.WS.CloseTimeout, DefaultWSCloseTimeout)
				c.wakeProtoAt(ws.closeBy)
				return
			}
			ws.closeBy = 0
			m.fail(c, ErrWSCloseTimeout)
		}
		return
	}
	iv := int64(m.WS.PingInterval)
	if iv <= 0 || ws.closeSent || ws.closeRecv {
		return
	}
	if ws.pingSent != 0 && ws.lastRecv > ws.pingSent {
		ws.pingSent = 0 // anything from the peer shows it is alive
	}
	if ws.pingSent != 0 {
		if m.now-ws.pingSent >= ws.pongTimeout(m) {
			m.fail(c, ErrWSPingTimeout)
			return
		}
	} else if m.now-ws.lastRecv >= iv {
		ws.writeFrame(c, true, 0, wsframe.OpPing, nil)
		ws.pingSent = m.now
	}
	ws.schedule(c)
}

func (ws *wsState) pongTimeout(m *Manager) int64 {
	return int64(orDefault(m.WS.PongTimeout, m.WS.PingInterval))
}

// schedule asks for the next keepalive check.
func (ws *wsState) schedule(c *Conn) {
	m := c.m
	iv := int64(m.WS.PingInterval)
	if iv <= 0 {
		return
	}
	if ws.pingSent != 0 {
		c.wakeProtoAt(ws.pingSent + ws.pongTimeout(m))
	} else {
		c.wakeProtoAt(ws.lastRecv + iv)
	}
}

// writeFrame queues one frame (masked with a fresh key on a client) and
// returns its size on the wire, 0 if the connection refused it.
func (ws *wsState) writeFrame(c *Conn, fin bool, rsv, op byte, p []byte) int {
	m := c.m
	var hb [14]byte
	var key *[4]byte
	var k [4]byte
	if ws.client {
		if m.wsRand == nil {
			var seed [32]byte
			rand.Read(seed[:])
			m.wsRand = mrand.NewChaCha8(seed)
		}
		binary.LittleEndian.PutUint32(k[:], uint32(m.wsRand.Uint64()))
		key = &k
	}
	hdr := wsframe.AppendHeader(hb[:0], fin, rsv, op, len(p), key)
	n := len(hdr) + len(p)
	if c.flags&(fClosing|fClosed|fWriteShut) != 0 {
		return 0
	}
	if c.send.Len()+n > m.sendLimit() {
		m.log().Warn("meerkat: send refused", "conn", c.id, "err", ErrSendLimit,
			"queued", c.send.Len(), "adding", n, "limit", m.sendLimit())
		return 0
	}
	c.send.append(hdr)
	if ws.client {
		dst := c.send.spare(len(p))[:len(p)]
		copy(dst, p)
		wsframe.Mask(k, 0, dst)
		c.send.commit(len(p))
	} else {
		c.send.append(p)
	}
	c.queued += int64(n)
	m.markActive(c)
	return n
}

// WSSend sends data as one message (WSOpText, WSOpBinary) or control frame
// (WSOpPing, WSOpPong, WSOpClose with a close payload: see WSClose), masked
// on a client, compressed when permessage-deflate was agreed and the
// message is long enough (Manager.WS.CompressionThreshold). It returns the
// bytes queued, 0 if nothing was: before the handshake, after our close
// frame, data after the peer's, a control payload over 125 bytes, or a
// full send buffer.
func WSSend(c *Conn, data []byte, op WSOp) int {
	ws := wsOf(c)
	if ws == nil || ws.hs != nil || ws.closeSent {
		return 0
	}
	switch op {
	case WSOpText, WSOpBinary:
		if ws.closeRecv {
			return 0
		}
		m := c.m
		th := orDefault(m.WS.CompressionThreshold, DefaultWSCompressionThreshold)
		if ws.comp != nil && len(data) >= th {
			m.wsComp = ws.comp.Compress(m.wsComp[:0], data)
			n := ws.writeFrame(c, true, wsframe.FlagRSV1, byte(op), m.wsComp)
			if cap(m.wsComp) > 1<<20 {
				m.wsComp = nil
			}
			return n
		}
		return ws.writeFrame(c, true, 0, byte(op), data)
	case WSOpPing, WSOpPong:
		if len(data) > 125 || ws.closeRecv {
			return 0
		}
		return ws.writeFrame(c, true, 0, byte(op), data)
	case WSOpClose:
		if _, _, err := wsframe.ParseClose(data); err != nil {
			return 0
		}
		before := c.send.Len()
		if !ws.writeClose(c, data) {
			return 0
		}
		if ws.closeRecv {
			c.Drain()
		}
		return c.send.Len() - before
	}
	return 0
}

// WSClose starts the close handshake: a close frame with code (0 for none)
// and reason (cut to fit 123 bytes); the connection closes when the peer
// answers, or after Manager.WS.CloseTimeout. It reports whether the frame
// was queued.
func WSClose(c *Conn, code int, reason string) bool {
	if code != 0 && !wsframe.ValidCloseCode(uint16(code)) {
		return false
	}
	var b [125]byte
	return WSSend(c, wsframe.AppendClose(b[:0], uint16(code), reason), WSOpClose) > 0
}

// WSPrintf formats like fmt.Printf and sends the result as one message of
// type op; it returns the bytes queued.
func WSPrintf(c *Conn, op WSOp, format string, args ...any) int {
	m := c.m
	m.fmtBuf = fmt.Appendf(m.fmtBuf[:0], format, args...)
	n := WSSend(c, m.fmtBuf, op)
	if cap(m.fmtBuf) > 64<<10 {
		m.fmtBuf = nil
	}
	return n
}

// WSSendFrame sends one frame as it is, for a message sent in fragments:
// the first with WSOpText or WSOpBinary, the others with WSOpContinuation,
// fin set on the last. Fragments are never compressed. Control frames may
// go between fragments (with WSSend). It returns the bytes queued.
func WSSendFrame(c *Conn, data []byte, op WSOp, fin bool) int {
	ws := wsOf(c)
	if ws == nil || ws.hs != nil || ws.closeSent || ws.closeRecv {
		return 0
	}
	if op != WSOpText && op != WSOpBinary && op != WSOpContinuation {
		return 0
	}
	return ws.writeFrame(c, fin, 0, byte(op), data)
}
