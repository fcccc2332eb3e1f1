// Package httpwire parses and writes HTTP/1.x messages (RFC 9110, RFC 9112).
// It does no I/O: parsers take the bytes received so far and return views
// into them, so a parsed message is valid only while those bytes are.
//
// The parsers are strict where leniency has let requests be smuggled or
// misread: one framing per message (Content-Length or chunked, never both,
// never ambiguous), no obsolete line folding, no bare CR or LF, no whitespace
// before a header's colon, and limits on every length.
package httpwire

import (
	"bytes"
	"strconv"
)

// Error is a malformed or unacceptable message, with the status a server
// answers it with (400, 413, 414, 431, 501, 505).
type Error struct {
	Status int
	Reason string
}

func (e *Error) Error() string { return "http: " + e.Reason }

func bad(reason string) *Error { return &Error{400, reason} }

// Header is one header field, as views of the message.
type Header struct {
	Name, Value []byte
}

// Limits bound what a parser accepts. Zero fields take the defaults below.
type Limits struct {
	MaxRequestLine int // request or status line, without CRLF (414 beyond)
	MaxHeaderBytes int // the whole head, request line included (431 beyond)
	MaxHeaders     int // header fields (431 beyond)
}

const (
	DefaultMaxRequestLine = 8 << 10
	DefaultMaxHeaderBytes = 64 << 10
	DefaultMaxHeaders     = 100
)

// withDefaults returns the limits to apply: l's, defaults for zero fields.
func (l *Limits) withDefaults() Limits {
	var e Limits
	if l != nil {
		e = *l
	}
	if e.MaxRequestLine <= 0 {
		e.MaxRequestLine = DefaultMaxRequestLine
	}
	if e.MaxHeaderBytes <= 0 {
		e.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if e.MaxHeaders <= 0 {
		e.MaxHeaders = DefaultMaxHeaders
	}
	return e
}

// Framing says how a message's body is delimited.
type Framing uint8

const (
	NoBody     Framing = iota // no body at all
	Length                    // Content-Length bytes
	Chunked                   // chunked transfer coding
	UntilClose                // responses only: everything until EOF
)

// Message is a parsed request or response head. All byte slices are views
// of the parsed buffer.
type Message struct {
	// Request line (requests) or status line (responses).
	Method []byte // requests
	Target []byte // requests: the request-target as sent
	Path   []byte // requests: Target before '?'
	Query  []byte // requests: Target after '?', without it
	Proto  []byte // "HTTP/1.1" or "HTTP/1.0"
	Status int    // responses
	Reason []byte // responses

	Headers []Header
	HeadLen int // bytes of the head, final CRLF included

	Framing       Framing
	ContentLength int64 // with Framing == Length; also a body-less response's declared length
	Minor         int   // 0 for HTTP/1.0, 1 for HTTP/1.1
	KeepAlive     bool  // the connection may carry another message after this one
	Expect100     bool  // requests: "Expect: 100-continue"
	Upgrade       bool  // "Connection: upgrade" with an Upgrade header
}

// Header returns the value of the first field called name (case-insensitive),
// or nil.
func (m *Message) Header(name string) []byte {
	for i := range m.Headers {
		if equalFold(m.Headers[i].Name, name) {
			return m.Headers[i].Value
		}
	}
	return nil
}

// HasToken reports whether any field called name holds token as one of its
// comma-separated items (both compared case-insensitively), as Connection
// and Upgrade fields list theirs.
func (m *Message) HasToken(name, token string) bool {
	for i := range m.Headers {
		if !equalFold(m.Headers[i].Name, name) {
			continue
		}
		found := false
		eachItem(m.Headers[i].Value, func(item []byte) error {
			if equalFold(item, token) {
				found = true
			}
			return nil
		})
		if found {
			return true
		}
	}
	return false
}

// reset empties m for reuse, keeping its Headers array.
func (m *Message) reset() {
	h := m.Headers[:0]
	*m = Message{Headers: h}
}

// ParseRequest parses a request head at the start of buf. It returns the
// head's length once the head is complete, 0 and no error while more bytes
// are needed, or an *Error. Empty lines before the request line are skipped
// (RFC 9112 section 2.2) and counted in the length.
func ParseRequest(buf []byte, m *Message, limits *Limits) (int, error) {
	m.reset()
	lim := limits.withDefaults()
	skip := 0
	for skip < len(buf) && skip < 8 && (buf[skip] == '\r' || buf[skip] == '\n') {
		if buf[skip] == '\r' {
			if skip+1 >= len(buf) {
				return 0, nil
			}
			if buf[skip+1] != '\n' {
				return 0, bad("bare CR before the request line")
			}
			skip += 2
			continue
		}
		return 0, bad("bare LF before the request line")
	}
	p := buf[skip:]
	line, rest, ok, err := cutLine(p, lim.MaxRequestLine)
	if err != nil {
		if err == errLineTooLong {
			return 0, &Error{414, "request line too long"}
		}
		return 0, err
	}
	if !ok {
		return 0, nil
	}
	if err := parseRequestLine(line, m); err != nil {
		return 0, err
	}
	n, err := parseHeaders(rest, m, &lim, len(line)+2)
	if n == 0 || err != nil {
		return 0, err
	}
	m.HeadLen = skip + len(line) + 2 + n
	if err := requestFraming(m); err != nil {
		return 0, err
	}
	return m.HeadLen, nil
}

// ParseResponse parses a response head at the start of buf, like
// ParseRequest. method is the request's method: a response to HEAD has no
// body whatever its headers say, nor do 1xx, 204 and 304 responses.
func ParseResponse(buf []byte, m *Message, limits *Limits, method []byte) (int, error) {
	m.reset()
	lim := limits.withDefaults()
	line, rest, ok, err := cutLine(buf, lim.MaxRequestLine)
	if err != nil {
		if err == errLineTooLong {
			return 0, bad("status line too long")
		}
		return 0, err
	}
	if !ok {
		return 0, nil
	}
	if err := parseStatusLine(line, m); err != nil {
		return 0, err
	}
	n, err := parseHeaders(rest, m, &lim, len(line)+2)
	if n == 0 || err != nil {
		return 0, err
	}
	m.HeadLen = len(line) + 2 + n
	if err := responseFraming(m, method); err != nil {
		return 0, err
	}
	return m.HeadLen, nil
}

var errLineTooLong = bad("line too long")

// cutLine splits buf at its first CRLF. ok is false while no CRLF has
// arrived; a bare CR or LF is an error.
func cutLine(buf []byte, max int) (line, rest []byte, ok bool, err error) {
	i := bytes.IndexByte(buf, '\n')
	if i < 0 {
		if j := bytes.IndexByte(buf, '\r'); j >= 0 && j+1 < len(buf) {
			return nil, nil, false, bad("bare CR")
		}
		if len(buf) > max+1 {
			return nil, nil, false, errLineTooLong
		}
		return nil, nil, false, nil
	}
	if i == 0 || buf[i-1] != '\r' {
		return nil, nil, false, bad("bare LF")
	}
	line = buf[:i-1]
	if len(line) > max {
		return nil, nil, false, errLineTooLong
	}
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, nil, false, bad("bare CR")
	}
	return line, buf[i+1:], true, nil
}

func parseRequestLine(line []byte, m *Message) error {
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return bad("malformed request line")
	}
	m.Method = line[:sp1]
	if !isToken(m.Method) {
		return bad("malformed method")
	}
	rest := line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 <= 0 {
		return bad("malformed request line")
	}
	m.Target = rest[:sp2]
	m.Proto = rest[sp2+1:]
	for _, c := range m.Target {
		if c <= ' ' || c == 0x7f {
			return bad("malformed request target")
		}
	}
	minor, err := parseVersion(m.Proto)
	if err != nil {
		return err
	}
	m.Minor = minor
	m.Path = m.Target
	if i := bytes.IndexByte(m.Target, '?'); i >= 0 {
		m.Path, m.Query = m.Target[:i], m.Target[i+1:]
	}
	return nil
}

// parseVersion accepts HTTP/1.0 and HTTP/1.1; other HTTP versions are 505.
func parseVersion(p []byte) (int, error) {
	if len(p) != 8 || string(p[:5]) != "HTTP/" || p[6] != '.' || !isDigit(p[5]) || !isDigit(p[7]) {
		return 0, bad("malformed HTTP version")
	}
	if p[5] != '1' || p[7] > '1' {
		return 0, &Error{505, "HTTP version not supported"}
	}
	return int(p[7] - '0'), nil
}

func parseStatusLine(line []byte, m *Message) error {
	if len(line) < 12 || line[8] != ' ' {
		return bad("malformed status line")
	}
	minor, err := parseVersion(line[:8])
	if err != nil {
		return err
	}
	m.Proto, m.Minor = line[:8], minor
	code := line[9:12]
	if !isDigit(code[0]) || !isDigit(code[1]) || !isDigit(code[2]) || code[0] == '0' {
		return bad("malformed status code")
	}
	m.Status = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	switch {
	case len(line) == 12:
	case line[12] == ' ':
		m.Reason = line[13:]
	default:
		return bad("malformed status line")
	}
	return nil
}

// parseHeaders parses header lines up to the empty line. used is the size of
// the start line, counted against MaxHeaderBytes. It returns the bytes used
// including the final CRLF, or 0 while incomplete.
func parseHeaders(buf []byte, m *Message, lim *Limits, used int) (int, error) {
	maxBytes, maxCount := lim.MaxHeaderBytes, lim.MaxHeaders
	n := 0
	for {
		line, rest, ok, err := cutLine(buf[n:], maxBytes)
		if err != nil {
			if err == errLineTooLong {
				return 0, &Error{431, "header too large"}
			}
			return 0, err
		}
		if !ok {
			if used+len(buf) > maxBytes {
				return 0, &Error{431, "header section too large"}
			}
			return 0, nil
		}
		n = len(buf) - len(rest)
		if used+n > maxBytes {
			return 0, &Error{431, "header section too large"}
		}
		if len(line) == 0 {
			return n, nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			return 0, bad("obsolete line folding")
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			return 0, bad("header line without a colon")
		}
		name := line[:colon]
		if len(name) == 0 {
			return 0, bad("empty header name")
		}
		if !isToken(name) {
			return 0, bad("malformed header name") // includes space before the colon
		}
		value := trimOWS(line[colon+1:])
		for _, c := range value {
			if c < ' ' && c != '\t' || c == 0x7f {
				return 0, bad("control character in a header value")
			}
		}
		if len(m.Headers) >= maxCount {
			return 0, &Error{431, "too many header fields"}
		}
		m.Headers = append(m.Headers, Header{name, value})
	}
}

// requestFraming decides a request's body framing (RFC 9112 section 6).
func requestFraming(m *Message) error {
	te, cl, err := framingHeaders(m)
	if err != nil {
		return err
	}
	connection(m)
	switch {
	case te != nil && m.Minor == 0:
		return bad("Transfer-Encoding in an HTTP/1.0 request")
	case te != nil:
		if err := checkChunked(te); err != nil {
			return err
		}
		m.Framing = Chunked
	case cl >= 0:
		m.ContentLength = cl
		m.Framing = Length
		if cl == 0 {
			m.Framing = NoBody
		}
	default:
		m.Framing = NoBody // a request without length has no body
	}
	if v := m.Header("Expect"); v != nil && equalFold(v, "100-continue") {
		m.Expect100 = true
	}
	return nil
}

// responseFraming decides a response's body framing (RFC 9112 section 6.3).
func responseFraming(m *Message, method []byte) error {
	te, cl, err := framingHeaders(m)
	if err != nil {
		return err
	}
	connection(m)
	switch {
	case string(method) == "HEAD", m.Status < 200, m.Status == 204, m.Status == 304:
		m.Framing = NoBody
		if cl > 0 {
			m.ContentLength = cl // the size the resource would have: HEAD's answer
		}
	case string(method) == "CONNECT" && m.Status < 300:
		m.Framing = UntilClose
	case te != nil:
		if err := checkChunked(te); err != nil {
			// Not chunked last: the body ends at the close.
			m.Framing = UntilClose
			m.KeepAlive = false
			return nil
		}
		m.Framing = Chunked
	case cl >= 0:
		m.ContentLength = cl
		m.Framing = Length
	default:
		m.Framing = UntilClose
		m.KeepAlive = false
	}
	return nil
}

// framingHeaders finds Transfer-Encoding (one field only) and
// Content-Length (identical values only); both together are refused, as a
// request smuggling vector.
func framingHeaders(m *Message) (te []byte, cl int64, err error) {
	cl = -1
	for i := range m.Headers {
		h := &m.Headers[i]
		switch {
		case equalFold(h.Name, "Transfer-Encoding"):
			if te != nil {
				return nil, 0, bad("more than one Transfer-Encoding field")
			}
			te = h.Value
		case equalFold(h.Name, "Content-Length"):
			n, err := parseContentLength(h.Value)
			if err != nil {
				return nil, 0, err
			}
			if cl >= 0 && n != cl {
				return nil, 0, bad("conflicting Content-Length values")
			}
			cl = n
		}
	}
	if te != nil && cl >= 0 {
		return nil, 0, bad("both Transfer-Encoding and Content-Length")
	}
	return te, cl, nil
}

// parseContentLength accepts 1*DIGIT, or a list of identical such values
// ("5, 5"); no sign, no spaces inside, no other base, no empty element, no
// overflow.
func parseContentLength(v []byte) (int64, error) {
	n := int64(-1)
	err := eachItem(v, func(item []byte) error {
		if len(item) == 0 || len(item) > 18 {
			return bad("malformed Content-Length")
		}
		var x int64
		for _, c := range item {
			if !isDigit(c) {
				return bad("malformed Content-Length")
			}
			x = x*10 + int64(c-'0')
		}
		if n >= 0 && x != n {
			return bad("conflicting Content-Length values")
		}
		n = x
		return nil
	})
	return n, err
}

// eachItem calls fn for each comma-separated element of a field value,
// without surrounding whitespace (empty elements included), until fn fails.
func eachItem(v []byte, fn func(item []byte) error) error {
	for {
		i := bytes.IndexByte(v, ',')
		if i < 0 {
			return fn(trimOWS(v))
		}
		if err := fn(trimOWS(v[:i])); err != nil {
			return err
		}
		v = v[i+1:]
	}
}

// checkChunked accepts a Transfer-Encoding of exactly "chunked". Other
// codings are not implemented (501); a list, empty elements or chunked not
// last are malformed (400).
func checkChunked(te []byte) error {
	v := trimOWS(te)
	if equalFold(v, "chunked") {
		return nil
	}
	if bytes.IndexByte(v, ',') >= 0 || len(v) == 0 {
		return bad("unsupported Transfer-Encoding list " + strconv.Quote(string(v)))
	}
	return &Error{501, "unsupported Transfer-Encoding " + strconv.Quote(string(v))}
}

// connection sets KeepAlive and Upgrade from the version and the
// Connection field(s): "close" anywhere wins.
func connection(m *Message) {
	keep, closing := m.Minor >= 1, false
	for i := range m.Headers {
		if !equalFold(m.Headers[i].Name, "Connection") {
			continue
		}
		eachItem(m.Headers[i].Value, func(item []byte) error {
			switch {
			case equalFold(item, "close"):
				closing = true
			case equalFold(item, "keep-alive"):
				keep = true
			case equalFold(item, "upgrade"):
				m.Upgrade = m.Header("Upgrade") != nil
			}
			return nil
		})
	}
	m.KeepAlive = keep && !closing
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// tokenChars are tchar of RFC 9110 section 5.6.2.
var tokenChars = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return
}()

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenChars[c] {
			return false
		}
	}
	return true
}

// EqualFold reports whether b and s are equal ignoring ASCII case, without
// allocating.
func EqualFold(b []byte, s string) bool { return equalFold(b, s) }

// equalFold compares ASCII case-insensitively, without allocating.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if x == y {
			continue
		}
		if x|0x20 != y|0x20 || x|0x20 < 'a' || x|0x20 > 'z' {
			return false
		}
	}
	return true
}
