package meerkat

import (
	"fmt"
	"strconv"
	"time"

	"github.com/meerkat-net/meerkat/internal/httpwire"
)

// HTTPSettings configure the HTTP server and client of a Manager. Zero
// values select the defaults.
type HTTPSettings struct {
	// MaxRequestLine bounds a request or status line (8 KiB; 414 beyond).
	MaxRequestLine int
	// MaxHeaderBytes bounds a message head (64 KiB; 431 beyond).
	MaxHeaderBytes int
	// MaxHeaders bounds the number of header fields (100; 431 beyond).
	MaxHeaders int
	// HeaderTimeout bounds how long a server waits for a complete request
	// head once its first byte arrived, or for the first request of a new
	// connection (30 s; 408 and close beyond; negative: no limit).
	HeaderTimeout time.Duration
	// AccessLog, when set, is called once per answered request, when its
	// response is complete (queued).
	AccessLog func(*HTTPAccess)
}

// HTTPAccess describes an answered request, for AccessLog.
type HTTPAccess struct {
	Conn     *Conn
	Method   string
	URI      string // path and query, as sent
	Proto    string
	Status   int   // the reply's status; 0 if it was not recognized
	Bytes    int64 // response bytes queued, head included
	Duration time.Duration
}

// DefaultHTTPHeaderTimeout is HTTPSettings.HeaderTimeout's default.
const DefaultHTTPHeaderTimeout = 30 * time.Second

func (s *HTTPSettings) limits() *httpwire.Limits {
	return &httpwire.Limits{MaxRequestLine: s.MaxRequestLine, MaxHeaderBytes: s.MaxHeaderBytes, MaxHeaders: s.MaxHeaders}
}

// HTTPHeader is one header field of an HTTPMessage.
type HTTPHeader = httpwire.Header

// HTTPMessage is an HTTP request (server side) or response (client side).
// Its byte slices are views of the connection's receive buffer: valid only
// during the handler call that receives the message. Copy what you keep.
type HTTPMessage struct {
	Method  []byte       // requests: "GET", "POST", ...
	URI     []byte       // requests: the path, as sent (percent-encoded), without the query
	Query   []byte       // requests: what follows '?', without it
	Proto   []byte       // "HTTP/1.1" or "HTTP/1.0"
	Status  int          // responses: the status code
	Reason  []byte       // responses: the reason phrase
	Headers []HTTPHeader // in order of arrival
	// Head is the start line and the header fields, final CRLF included.
	Head []byte
	// Body is the whole body (decoded if it was chunked) with EvHTTPMsg, a
	// piece of it with EvHTTPChunk, and nil with EvHTTPHeaders or at the
	// end of a streamed body.
	Body []byte
	// Message is Head and Body as they lie in the receive buffer (for a
	// chunked body, the decoded body follows the head).
	Message []byte
	// ContentLength is the declared body length, -1 without one (chunked,
	// or a response that ends at the close). For a response to HEAD (or a
	// 204 or 304) it is the declared length of the body it does not have.
	ContentLength int64

	wire httpwire.Message
}

// Header returns the value of the first header field called name (ASCII
// case-insensitive), or nil.
func (hm *HTTPMessage) Header(name string) []byte {
	for i := range hm.Headers {
		if httpwire.EqualFold(hm.Headers[i].Name, name) {
			return hm.Headers[i].Value
		}
	}
	return nil
}

// fill copies the parsed head's views into hm.
func (hm *HTTPMessage) fill(buf []byte, n int) {
	w := &hm.wire
	hm.Method, hm.URI, hm.Query, hm.Proto = w.Method, w.Path, w.Query, w.Proto
	hm.Status, hm.Reason, hm.Headers = w.Status, w.Reason, w.Headers
	hm.Head, hm.Body, hm.Message = buf[:n], nil, buf[:n]
	hm.ContentLength = -1
	if w.Framing == httpwire.Length || w.Framing == httpwire.NoBody {
		hm.ContentLength = w.ContentLength
	}
}

// httpState is one HTTP connection's protocol state, server or client.
type httpState struct {
	hm      HTTPMessage
	stage   httpStage
	client  bool
	headLen int                     // the current message's head, still at the front of Recv
	chunked httpwire.ChunkedDecoder // the current chunked body
	raw     int                     // chunked: encoded bytes consumed after the head
	decoded int                     // chunked: decoded bytes, moved down to follow the head
	remain  int64                   // streamed Length body: bytes still to come
	stream  bool                    // the handler asked for EvHTTPChunk
	discard bool                    // server: the body is dropped (replied early)
	head    []byte                  // streaming: a copy of the head, which hm views

	// Server side.
	keepAlive bool               // another request may follow the current one
	minor     int                // the request's HTTP minor version
	inHeaders bool               // EvHTTPHeaders is being handled
	bigBody   bool               // the body is too big to skip: a reply from the head closes
	chunking  bool               // a chunked reply is under way (HTTPWriteChunk)
	isHead    bool               // the current request is HEAD: replies carry no body
	replied   bool               // a reply helper completed the current response
	resume    bool               // a deferred reply completed: parse what is queued
	upgraded  bool               // WSUpgrade took the connection: no more HTTP
	pump      func(c *Conn) bool // produces the rest of a long body; true when done
	access    *HTTPAccess        // the request being answered, with AccessLog
	start     time.Time          // with AccessLog: when the request was complete
	mark      int64              // with AccessLog: c.queued when the request was complete
	headSince int64              // when the current head began to arrive (Manager clock), 0 if not waiting

	// Client side.
	host    string   // Host header for requests
	path    string   // the URL's path and query, the default request target
	wrapErr error    // wraps the client's failures (ErrWSHandshake during a handshake)
	methods []string // methods of requests sent and not yet answered
}

type httpStage uint8

const (
	stHead   httpStage = iota // waiting for a head
	stBody                    // collecting a whole body
	stStream                  // delivering a body as EvHTTPChunk
	stWait                    // server: the handler will reply later
	stClosed                  // nothing more is parsed on this connection
)

func httpOf(c *Conn) *httpState {
	h, _ := c.pstate.(*httpState)
	return h
}

// HTTPListen opens an HTTP server on an http:// or https:// URL. fn sees the
// connection events and, per request, EvHTTPHeaders when the head is complete
// and EvHTTPMsg with the whole message; answer with HTTPReply or any other
// writer. Requests on one connection are answered in order: if the handler
// writes nothing during EvHTTPMsg, the reply is taken to come later (from
// EvWakeup, say) and the next pipelined request waits for it. Manager.HTTP
// holds the limits and the header timeout.
func (m *Manager) HTTPListen(url string, fn Handler) (*Conn, error) {
	return m.listen(url, fn, httpServerProto)
}

// HTTPConnect opens an HTTP client connection to an http:// or https://
// URL (TLS verification on, server name from the URL). Send requests with
// HTTPSendRequest once EvConnect (or EvTLSHandshake) arrived; each response
// comes as EvHTTPHeaders and EvHTTPMsg. A response that ends at the close is
// delivered then; one cut short of its length by the close is an EvError.
func (m *Manager) HTTPConnect(url string, fn Handler) (*Conn, error) {
	c, err := m.connect(url, fn, httpClientProto)
	if err != nil {
		return nil, err
	}
	if ep, err := parseURL(url); err == nil {
		c.pstate = newHTTPClientState(c, ep)
	} else {
		c.pstate = &httpState{client: true, host: c.serverName, path: "/"}
	}
	return c, nil
}

// newHTTPClientState is a client's HTTP state: the Host header and default
// request target from its URL.
func newHTTPClientState(c *Conn, ep *endpoint) *httpState {
	h := &httpState{client: true, host: c.serverName, path: ep.path}
	if ep.port != defaultPorts[ep.scheme] {
		h.host = ep.hostPort()
	} else if ep.addr.Is6() {
		h.host = "[" + ep.host + "]"
	}
	return h
}

// HTTPStreamBody, called on EvHTTPHeaders, asks for the body of this message
// in pieces as it arrives: EvHTTPChunk with hm.Body holding each piece, then
// EvHTTPMsg with a nil Body. Bodies of any size then pass with bounded
// memory; without it a body larger than Manager.RecvLimit is refused (413 on
// a server, EvError on a client).
func HTTPStreamBody(c *Conn) {
	if h := httpOf(c); h != nil && h.stage == stHead {
		h.stream = true
	}
}

func httpServerProto(c *Conn, ev Event, data any) {
	if c.flags&fListening != 0 {
		return
	}
	h := httpOf(c)
	switch ev {
	case EvAccept:
		h = &httpState{keepAlive: true}
		c.pstate = h
		c.onShutdown = httpServerShutdown
		c.hold = httpServerHold
		h.waitHead(c)
	case EvRead:
		c.m.httpParse(c, h)
	case EvWrite:
		if h != nil && h.pump != nil {
			h.runPump(c)
		}
	case EvClose:
		if h != nil && h.pump != nil {
			fn := h.pump
			h.pump = nil
			fn(c) // IsClosing is true: the pump releases what it holds
		}
	case EvPoll:
		if h == nil {
			return
		}
		if h.pump != nil {
			h.runPump(c)
		}
		if h.resume {
			h.resume = false
			c.m.httpParse(c, h)
		}
		if h.headSince != 0 {
			if t := timeoutNanos(c.m.HTTP.HeaderTimeout, DefaultHTTPHeaderTimeout); t > 0 && c.m.now-h.headSince >= t {
				h.headSince = 0
				httpReject(c, h, 408, "request head not received in time")
			}
		}
	}
}

// waitHead starts the header timeout.
func (h *httpState) waitHead(c *Conn) {
	if h.headSince != 0 || h.client {
		return
	}
	h.headSince = c.m.clock()
	if t := timeoutNanos(c.m.HTTP.HeaderTimeout, DefaultHTTPHeaderTimeout); t > 0 {
		c.wakeProtoAt(h.headSince + t)
	}
}

func httpClientProto(c *Conn, ev Event, data any) {
	h := httpOf(c)
	if h == nil {
		return
	}
	switch ev {
	case EvRead:
		c.m.httpParse(c, h)
	case EvClose:
		c.m.httpClientClosed(c, h)
	}
}

// httpServerHold keeps a draining connection (its client half-closed, say)
// open while a response is still to come: deferred, pumped or chunked.
func httpServerHold(c *Conn) bool {
	h := httpOf(c)
	return h != nil && (h.stage == stWait || h.pump != nil || h.chunking)
}

// httpConnectionHeader returns the Connection header a reply on c needs:
// "close" when the connection ends after it (a reply given from the head of
// a request whose body is too big to skip closes too), "keep-alive" for an
// HTTP/1.0 client that asked to keep it, else nothing.
func httpConnectionHeader(c *Conn) string {
	h := httpOf(c)
	switch {
	case h == nil || h.client:
		return ""
	case h.inHeaders && h.bigBody:
		h.keepAlive = false
		return "Connection: close\r\n"
	case !h.keepAlive:
		return "Connection: close\r\n"
	case h.minor == 0:
		return "Connection: keep-alive\r\n"
	}
	return ""
}

// httpServerShutdown lets a request in progress finish, then closes; an
// idle connection closes now.
func httpServerShutdown(c *Conn) {
	h := httpOf(c)
	if h == nil || (h.stage == stHead && c.recv.Len() == 0) {
		c.Drain()
		return
	}
	h.keepAlive = false
}

// httpParse turns received bytes into HTTP events until it needs more.
func (m *Manager) httpParse(c *Conn, h *httpState) {
	for c.flags&(fClosing|fClosed) == 0 && !h.upgraded {
		var more bool
		switch h.stage {
		case stHead:
			more = m.httpHead(c, h)
		case stBody:
			more = m.httpBody(c, h)
		case stStream:
			more = m.httpStream(c, h)
		case stWait:
			return
		case stClosed:
			c.recv.Consume(c.recv.Len())
			return
		}
		if !more {
			return
		}
	}
}

// httpHead parses a head at the front of Recv; it reports whether parsing
// can go on.
func (m *Manager) httpHead(c *Conn, h *httpState) bool {
	buf := c.recv.Bytes()
	if len(buf) == 0 {
		return false
	}
	if !h.client {
		h.waitHead(c)
	}
	n, err := h.parseHead(c, buf)
	if err != nil {
		m.httpBad(c, h, err)
		return false
	}
	if n == 0 {
		if c.IsFull() {
			m.httpBad(c, h, &httpwire.Error{Status: 431, Reason: "message head larger than the receive buffer"})
		}
		return false
	}
	w := &h.hm.wire
	h.hm.fill(buf, n)
	h.headLen, h.stream, h.discard = n, false, false
	if h.client {
		if w.Status >= 100 && w.Status < 200 && w.Status != 101 {
			c.recv.Consume(n) // 100 Continue and friends: the real response follows
			return true
		}
	} else {
		h.headSince = 0
		h.keepAlive = w.KeepAlive
		h.minor = w.Minor
		h.isHead = string(w.Method) == "HEAD"
		h.replied = false
		h.bigBody = w.Framing == httpwire.Chunked || w.ContentLength > 64<<10
	}
	sent := c.send.Len()
	if !h.client && m.HTTP.AccessLog != nil {
		h.beginAccess(c)
	}
	h.inHeaders = true
	m.dispatch(c, EvHTTPHeaders, &h.hm)
	h.inHeaders = false
	if h.upgraded { // WSUpgrade from the head: the connection left HTTP
		c.recv.Consume(n)
		return false
	}
	h.sniffAccess(c, sent)
	if c.flags&(fClosing|fClosed) != 0 {
		return false
	}
	if !h.client && (h.replied || c.send.Len() != sent) {
		// Answered from the head (401, 413, ...): the body is not wanted.
		// A small one is read and dropped so the next request stays in
		// step; otherwise the connection closes after the reply.
		h.discard, h.stream = true, false
		if h.bigBody {
			h.keepAlive = false // (the reply said so: see httpConnectionHeader)
		}
		if h.pump == nil { // a pumped reply ends when its pump does
			h.finishResponse(c)
		}
		if !h.keepAlive && h.pump == nil {
			return false
		}
	} else if !h.client && w.Expect100 && w.Framing != httpwire.NoBody {
		c.Send([]byte("HTTP/1.1 100 Continue\r\n\r\n"))
	}
	switch {
	case w.Framing == httpwire.NoBody, w.Framing == httpwire.Length && w.ContentLength == 0:
		m.httpDeliver(c, h, n, nil)
		return h.stage != stClosed
	case w.Framing == httpwire.Length:
		if h.stream || h.discard {
			return h.startStream(c, w.ContentLength)
		}
		if w.ContentLength > int64(m.recvLimit()-n) {
			m.httpTooLarge(c, h, w.ContentLength)
			return false
		}
	case w.Framing == httpwire.UntilClose:
		if h.stream {
			return h.startStream(c, -1)
		}
	case w.Framing == httpwire.Chunked:
		h.chunked, h.raw, h.decoded = httpwire.ChunkedDecoder{}, 0, 0
		if h.stream || h.discard {
			return h.startStream(c, -1)
		}
	}
	h.stage = stBody
	return true
}

// parseHead parses a request head (server) or a response head (client) at
// the front of buf.
func (h *httpState) parseHead(c *Conn, buf []byte) (int, error) {
	if !h.client {
		return httpwire.ParseRequest(buf, &h.hm.wire, c.m.HTTP.limits())
	}
	method := "GET"
	if len(h.methods) > 0 {
		method = h.methods[0]
	}
	return httpwire.ParseResponse(buf, &h.hm.wire, c.m.HTTP.limits(), []byte(method))
}

// reparse points hm's views at the head where it lies now: Recv's bytes may
// have moved since the head was parsed (read space lent, then copied; a
// buffer grown). buf is Recv's bytes, head first.
func (h *httpState) reparse(c *Conn, buf []byte) {
	h.parseHead(c, buf[:h.headLen])
	h.hm.fill(buf, h.headLen)
}

// startStream keeps a copy of the head (hm views it) and delivers the body
// as EvHTTPChunk from now on.
func (h *httpState) startStream(c *Conn, length int64) bool {
	h.head = append(h.head[:0], c.recv.Bytes()[:h.headLen]...)
	h.parseHead(c, h.head)
	h.hm.fill(h.head, len(h.head))
	c.recv.Consume(h.headLen)
	h.headLen = 0
	h.remain = length
	h.stage = stStream
	return true
}

// httpBody waits for a whole body, decoding a chunked one in place, and
// delivers the message.
func (m *Manager) httpBody(c *Conn, h *httpState) bool {
	w := &h.hm.wire
	buf := c.recv.Bytes()
	switch w.Framing {
	case httpwire.Length:
		end := h.headLen + int(w.ContentLength)
		if len(buf) < end {
			return false
		}
		h.reparse(c, buf)
		h.hm.Message = buf[:end]
		m.httpDeliver(c, h, end, buf[h.headLen:end])
		return true
	case httpwire.Chunked:
		base := h.headLen
		n, err := h.chunked.Decode(buf[base+h.raw:], func(p []byte) {
			h.decoded += copy(buf[base+h.decoded:], p) // never ahead of the input
		})
		h.raw += n
		if err != nil {
			m.httpBad(c, h, err)
			return false
		}
		if !h.chunked.Done() {
			if c.IsFull() {
				m.httpTooLarge(c, h, -1)
			}
			return false
		}
		h.reparse(c, buf)
		h.hm.Message = buf[:base+h.decoded]
		m.httpDeliver(c, h, base+h.raw, buf[base:base+h.decoded])
		return true
	}
	// UntilClose: delivered when the connection closes, if it fits.
	if c.IsFull() {
		m.httpTooLarge(c, h, -1)
	}
	return false
}

// httpStream delivers body bytes as they arrive.
func (m *Manager) httpStream(c *Conn, h *httpState) bool {
	buf := c.recv.Bytes()
	if len(buf) == 0 {
		return false
	}
	w := &h.hm.wire
	switch w.Framing {
	case httpwire.Chunked:
		n, err := h.chunked.Decode(buf, func(p []byte) { m.httpChunk(c, h, p) })
		c.recv.Consume(n)
		if err != nil {
			m.httpBad(c, h, err)
			return false
		}
		if !h.chunked.Done() {
			return false
		}
	case httpwire.Length:
		n := int(min(int64(len(buf)), h.remain))
		m.httpChunk(c, h, buf[:n])
		c.recv.Consume(n)
		if h.remain -= int64(n); h.remain > 0 {
			return false
		}
	default: // until the close: see httpClientClosed
		m.httpChunk(c, h, buf)
		c.recv.Consume(len(buf))
		return false
	}
	if c.flags&(fClosing|fClosed) != 0 {
		return false
	}
	m.httpDeliver(c, h, 0, nil)
	return true
}

func (m *Manager) httpChunk(c *Conn, h *httpState, p []byte) {
	if h.discard || len(p) == 0 || c.flags&(fClosing|fClosed) != 0 {
		return
	}
	h.hm.Body = p
	m.dispatch(c, EvHTTPChunk, &h.hm)
}

// httpDeliver sends EvHTTPMsg for a message of size bytes at the front of
// Recv (0 for a streamed one; hm.Message is set), consumes it, and moves on.
func (m *Manager) httpDeliver(c *Conn, h *httpState, size int, body []byte) {
	h.hm.Body = body
	discard := h.discard
	sent := c.send.Len()
	if !discard {
		m.dispatch(c, EvHTTPMsg, &h.hm)
		if h.upgraded { // WSUpgrade: the connection left HTTP
			c.recv.Consume(size)
			return
		}
		h.sniffAccess(c, sent)
		if !h.client && h.pump == nil && !h.chunking && !h.replied && c.send.Len() == sent && size > 0 {
			// The reply comes later (see below), and may need the head
			// (WSUpgrade does): hm now views a copy, as Recv moves on.
			h.head = append(h.head[:0], c.recv.Bytes()[:h.headLen]...)
			h.parseHead(c, h.head)
			h.hm.fill(h.head, len(h.head))
			h.headLen = 0
			c.recv.Consume(size)
			h.stage, h.stream, h.discard = stWait, false, false
			return
		}
	}
	c.recv.Consume(size)
	h.stage, h.headLen, h.stream, h.discard, h.head = stHead, 0, false, false, h.head[:0]
	if h.client {
		if len(h.methods) > 0 {
			h.methods = h.methods[1:]
		}
		if h.hm.wire.Status == 101 {
			h.stage = stClosed // the connection now speaks another protocol
			return
		}
		if !h.hm.wire.KeepAlive {
			h.stage = stClosed
			c.Drain()
		}
		return
	}
	switch {
	case discard && h.pump != nil:
		h.stage = stWait // the reply from the head is still being pumped
	case discard:
		// The reply was given from the head; finishResponse ran then.
		if !h.keepAlive {
			h.stage = stClosed
		}
	case h.pump != nil, h.chunking:
		h.stage = stWait // the pump, or the last chunk, ends the response
	case h.replied || c.send.Len() != sent:
		h.finishResponse(c)
	default:
		h.stage = stWait // the reply comes later (HTTPReply from EvWakeup)
	}
}

// finishResponse ends the current exchange on a server connection: the next
// request is parsed, or the connection drains and closes.
func (h *httpState) finishResponse(c *Conn) {
	h.replied = true
	c.m.markActive(c) // a drain held for this reply may go on
	if a := h.access; a != nil {
		h.access = nil
		a.Bytes = c.queued - h.mark
		a.Duration = time.Since(h.start)
		if f := c.m.HTTP.AccessLog; f != nil {
			f(a)
		}
	}
	if !h.keepAlive {
		h.stage = stClosed
		c.Drain()
		return
	}
	if h.stage == stWait {
		h.stage = stHead
		h.resume = true // parse queued requests at the next EvPoll
		c.m.markActive(c)
	}
	if h.stage == stHead && c.recv.Len() == 0 {
		h.waitHead(c)
	}
}

// pumpLowWater is how little queued output makes a body pump produce more.
const pumpLowWater = 64 << 10

// HTTPPump makes fn produce the rest of the current response's body: it is
// called whenever less than 64 KiB of output is queued, until it returns
// true, which ends the response. If the connection closes first, fn is
// called once more with c.IsClosing() true, to release what it holds. File
// serving uses it so that a body of any size goes out with bounded memory.
func HTTPPump(c *Conn, fn func(c *Conn) (done bool)) {
	if h := httpOf(c); h != nil && !h.client {
		h.pump = fn
		h.runPump(c)
	}
}

func (h *httpState) runPump(c *Conn) {
	for h.pump != nil && c.send.Len() < pumpLowWater && c.flags&(fClosing|fClosed) == 0 {
		before := c.send.Len()
		if h.pump(c) {
			h.pump = nil
			httpResponseDone(c)
			return
		}
		if c.send.Len() == before {
			return // nothing to give now; try at the next EvPoll
		}
	}
}

// beginAccess notes the request being answered, for AccessLog.
func (h *httpState) beginAccess(c *Conn) {
	w := &h.hm.wire
	h.access = &HTTPAccess{Conn: c, Method: string(w.Method), URI: string(w.Target), Proto: string(w.Proto)}
	h.start, h.mark = time.Now(), c.queued
}

// sniffAccess records the status of a reply the handler queued (from sent
// on in the send buffer) for AccessLog.
func (h *httpState) sniffAccess(c *Conn, sent int) {
	if a := h.access; a != nil && a.Status == 0 && c.send.Len() > sent {
		a.Status = sniffStatus(c.send.Bytes()[sent:])
	}
}

// sniffStatus reads the status code at the start of a queued response.
func sniffStatus(b []byte) int {
	if len(b) >= 12 && string(b[:7]) == "HTTP/1." && b[8] == ' ' {
		if n, err := strconv.Atoi(string(b[9:12])); err == nil {
			return n
		}
	}
	return 0
}

// httpResponseDone is called by the reply helpers when a response is
// complete.
func httpResponseDone(c *Conn) {
	if h := httpOf(c); h != nil && !h.client && !h.replied {
		h.finishResponse(c)
	}
}

// httpBad handles a malformed message: a server answers with the error's
// status and closes; a client fails.
func (m *Manager) httpBad(c *Conn, h *httpState, err error) {
	if h.client {
		m.fail(c, h.clientErr(err))
		return
	}
	status, reason := 400, err.Error()
	if e, ok := err.(*httpwire.Error); ok {
		status, reason = e.Status, e.Reason
	}
	httpReject(c, h, status, reason)
}

func (m *Manager) httpTooLarge(c *Conn, h *httpState, size int64) {
	if h.client {
		what := "body without a length"
		switch {
		case size >= 0:
			what = strconv.FormatInt(size, 10) + "-byte body"
		case h.hm.wire.Framing == httpwire.Chunked:
			what = "chunked body"
		}
		m.fail(c, h.clientErr(fmt.Errorf("http: response %s exceeds RecvLimit (%d bytes); stream it with HTTPStreamBody", what, m.recvLimit())))
		return
	}
	httpReject(c, h, 413, "request body larger than the receive buffer")
}

// clientErr is err as a client reports it: wrapped in wrapErr when set (a
// WebSocket handshake's response is ErrWSHandshake's business).
func (h *httpState) clientErr(err error) error {
	if h.wrapErr != nil {
		return fmt.Errorf("%w: %w", h.wrapErr, err)
	}
	return err
}

// httpReject answers a request the server will not process, then closes:
// nothing after it is read as a request.
func httpReject(c *Conn, h *httpState, status int, reason string) {
	h.stage = stClosed
	h.keepAlive = false
	h.replied = true
	c.recv.Consume(c.recv.Len())
	c.Printf("HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s\n",
		status, HTTPStatusText(status), len(reason)+1, reason)
	c.Drain()
}

// httpClientClosed delivers a response that ends at the close, or reports a
// response cut short.
func (m *Manager) httpClientClosed(c *Conn, h *httpState) {
	if c.flags&fFailed != 0 {
		return // the error was reported already
	}
	w := &h.hm.wire
	switch {
	case h.stage == stBody && w.Framing == httpwire.UntilClose:
		buf := c.recv.Bytes()
		h.reparse(c, buf)
		h.hm.Message = buf
		m.httpDeliver(c, h, len(buf), buf[h.headLen:])
	case h.stage == stStream && w.Framing == httpwire.UntilClose:
		m.httpDeliver(c, h, 0, nil)
	case h.stage == stBody || h.stage == stStream || (h.stage == stHead && c.recv.Len() > 0):
		m.dispatch(c, EvError, fmt.Errorf("%w: the connection closed before the end of the response", ErrHTTPTruncated))
	case h.stage == stHead && len(h.methods) > 0:
		m.dispatch(c, EvError, fmt.Errorf("%w: the connection closed before any response to %s", ErrHTTPTruncated, h.methods[0]))
	}
}

// HTTPSendRequest writes a request: the method, the target (a path with its
// query; "" for the path and query of HTTPConnect's URL), the Host header, Content-Length when there is a body (or the method
// usually carries one), extra headers (each line ending in "\r\n"), and the
// body. It reports false if the connection refused the bytes.
func HTTPSendRequest(c *Conn, method, target, headers string, body []byte) bool {
	return httpSendRequest(c, httpOf(c), method, target, headers, body)
}

func httpSendRequest(c *Conn, h *httpState, method, target, headers string, body []byte) bool {
	if h == nil || !h.client {
		return false
	}
	if target == "" {
		target = h.path
	}
	m := c.m
	b := m.fmtBuf[:0]
	b = append(b, method...)
	b = append(b, ' ')
	b = append(b, target...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, h.host...)
	b = append(b, "\r\n"...)
	if body != nil || method == "POST" || method == "PUT" || method == "PATCH" {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(len(body)), 10)
		b = append(b, "\r\n"...)
	}
	b = append(b, headers...)
	b = append(b, "\r\n"...)
	m.fmtBuf = b
	if c.send.Len()+len(b)+len(body) > m.sendLimit() || !c.Send(b) || !c.Send(body) {
		return false
	}
	h.methods = append(h.methods, method)
	return true
}
