package wsframe

import (
	"strconv"
	"strings"
)

// ExtensionName is the token of the permessage-deflate extension.
const ExtensionName = "permessage-deflate"

// Params are negotiated permessage-deflate parameters (RFC 7692 section
// 7.1), as the server's response states them.
type Params struct {
	ServerNoContextTakeover bool
	ClientNoContextTakeover bool
	ServerMaxWindowBits     int // 8..15; 0 = not stated (15)
	ClientMaxWindowBits     int // 8..15; 0 = not stated (15)
}

// Config is one side's permessage-deflate policy.
type Config struct {
	// ContextTakeover lets compression keep its context between messages:
	// a better ratio for streams of similar messages, at the price of a
	// flate.Writer kept per connection (about 1.2 MB at BestSpeed) and of
	// 32 KiB of history kept to inflate the peer's messages. When false
	// (the default), this side asks for (client) or announces (server)
	// no_context_takeover in both directions, so that compressors and
	// decompressors come from a sync.Pool for the duration of one message
	// and an idle connection holds no flate state.
	ContextTakeover bool
	// Level is the compress/flate level; 0 means flate.BestSpeed.
	Level int
}

// ServerNegotiate reads a client's Sec-WebSocket-Extensions value (all the
// header's lines, comma-joined) and accepts the first permessage-deflate
// offer it can honour. It returns the parameters and the response header
// value, or ok=false when no offer is acceptable. Offers that are malformed
// (RFC 6455 section 9.1 ABNF), that have an unknown or duplicate parameter
// or a bad value (RFC 7692 section 7) are declined, not errors.
//
// compress/flate always compresses with a 32 KiB window, so an offer that
// limits the server's window (server_max_window_bits below 15) is declined.
// client_max_window_bits is accepted with or without a value (the reader
// takes any window); a value is echoed when the client keeps its context,
// which binds the client to it and shrinks the history we keep.
func ServerNegotiate(offers string, cfg Config) (p Params, response string, ok bool) {
	for _, e := range parseExtensions(offers) {
		if e.malformed || !strings.EqualFold(e.name, ExtensionName) {
			continue
		}
		q, reason := parseDeflateParams(e.params)
		if reason != "" {
			continue
		}
		if q.serverBits != 0 && q.serverBits < maxWindowBits {
			continue // we cannot honour a smaller window
		}
		p = Params{
			// RFC 7692 7.1.1: the server may always include both.
			ServerNoContextTakeover: q.serverNoTakeover || !cfg.ContextTakeover,
			ClientNoContextTakeover: q.clientNoTakeover || !cfg.ContextTakeover,
			// RFC 7692 7.1.2.1: accepting server_max_window_bits means
			// answering it with the same or a smaller value.
			ServerMaxWindowBits: q.serverBits,
		}
		if q.clientBits > 0 && !p.ClientNoContextTakeover {
			p.ClientMaxWindowBits = q.clientBits
		}
		return p, p.header(), true
	}
	return Params{}, "", false
}

// ClientOffer returns a client's Sec-WebSocket-Extensions value for cfg. It
// never offers client_max_window_bits, since compress/flate cannot honour a
// smaller window.
func ClientOffer(cfg Config) string {
	if cfg.ContextTakeover {
		return ExtensionName
	}
	return ExtensionName + "; server_no_context_takeover; client_no_context_takeover"
}

// ClientAccept checks the server's Sec-WebSocket-Extensions response against
// what ClientOffer(cfg) offered. An empty response means no compression
// (ok=false, nil error). Anything RFC 7692 does not allow in answer to our
// offer is an *Error (code 1002) and the client must fail the connection:
// another extension or more than one, a malformed value, an unknown or
// duplicate parameter, a bad value, client_max_window_bits (which we never
// offer), and, when we asked for it, a missing server_no_context_takeover.
func ClientAccept(response string, cfg Config) (p Params, ok bool, err error) {
	list := parseExtensions(response)
	if len(list) == 0 {
		return Params{}, false, nil
	}
	if len(list) > 1 {
		return Params{}, false, extensionError("more than one extension in the response")
	}
	e := list[0]
	if e.malformed {
		return Params{}, false, extensionError("malformed Sec-WebSocket-Extensions response")
	}
	if !strings.EqualFold(e.name, ExtensionName) {
		return Params{}, false, extensionError("extension " + strconv.Quote(e.name) + " was not offered")
	}
	q, reason := parseDeflateParams(e.params)
	if reason != "" {
		return Params{}, false, extensionError(reason)
	}
	if q.clientBits != 0 {
		// RFC 7692 7.1.2.2: not in the response unless in the offer.
		return Params{}, false, extensionError("client_max_window_bits was not offered")
	}
	if !cfg.ContextTakeover && !q.serverNoTakeover {
		return Params{}, false, extensionError("server_no_context_takeover was asked for and not granted")
	}
	return Params{
		ServerNoContextTakeover: q.serverNoTakeover,
		// We announced it: we keep to it whatever the response says.
		ClientNoContextTakeover: q.clientNoTakeover || !cfg.ContextTakeover,
		ServerMaxWindowBits:     q.serverBits,
	}, true, nil
}

func extensionError(reason string) *Error {
	return &Error{CloseProtocolError, "permessage-deflate: " + reason}
}

// NewCompressor returns the compressor for the messages this side sends
// (server tells the side), at level (see NewCompressor).
func (p Params) NewCompressor(server bool, level int) *Compressor {
	noTakeover := p.ClientNoContextTakeover
	if server {
		noTakeover = p.ServerNoContextTakeover
	}
	return NewCompressor(!noTakeover, level)
}

// NewDecompressor returns the decompressor for the messages the peer sends
// (server tells this side), its history sized by the peer's window.
func (p Params) NewDecompressor(server bool) *Decompressor {
	if server {
		return NewDecompressorWindow(!p.ClientNoContextTakeover, p.ClientMaxWindowBits)
	}
	return NewDecompressorWindow(!p.ServerNoContextTakeover, p.ServerMaxWindowBits)
}

// header formats p as a Sec-WebSocket-Extensions value.
func (p Params) header() string {
	s := ExtensionName
	if p.ServerNoContextTakeover {
		s += "; server_no_context_takeover"
	}
	if p.ClientNoContextTakeover {
		s += "; client_no_context_takeover"
	}
	if p.ServerMaxWindowBits != 0 {
		s += "; server_max_window_bits=" + strconv.Itoa(p.ServerMaxWindowBits)
	}
	if p.ClientMaxWindowBits != 0 {
		s += "; client_max_window_bits=" + strconv.Itoa(p.ClientMaxWindowBits)
	}
	return s
}

// deflateParams are the parameters of one permessage-deflate element.
type deflateParams struct {
	serverNoTakeover, clientNoTakeover bool
	serverBits                         int // 0: absent
	clientBits                         int // 0: absent, -1: present without a value
}

// parseDeflateParams reads the parameters of a permessage-deflate offer or
// response, and returns why they are unacceptable (RFC 7692 section 7), or
// "". client_max_window_bits may lack a value (in an offer).
func parseDeflateParams(params []extParam) (q deflateParams, reason string) {
	var seen [4]bool
	for _, x := range params {
		var i int
		switch strings.ToLower(x.name) {
		case "server_no_context_takeover":
			i = 0
			q.serverNoTakeover = true
		case "client_no_context_takeover":
			i = 1
			q.clientNoTakeover = true
		case "server_max_window_bits":
			i = 2
			bits, ok := parseWindowBits(x.value)
			if !x.hasValue || !ok {
				return q, "bad server_max_window_bits value"
			}
			q.serverBits = bits
		case "client_max_window_bits":
			i = 3
			q.clientBits = -1
			if x.hasValue {
				bits, ok := parseWindowBits(x.value)
				if !ok {
					return q, "bad client_max_window_bits value"
				}
				q.clientBits = bits
			}
		default:
			return q, "unknown parameter " + strconv.Quote(x.name)
		}
		if seen[i] {
			return q, "duplicate parameter " + strconv.Quote(x.name)
		}
		seen[i] = true
		if i < 2 && x.hasValue {
			return q, strconv.Quote(x.name) + " takes no value"
		}
	}
	return q, ""
}

// parseWindowBits parses a max_window_bits value: a decimal integer from 8
// to 15 without leading zeros (RFC 7692 section 7.1.2).
func parseWindowBits(v string) (int, bool) {
	switch {
	case len(v) == 1 && (v[0] == '8' || v[0] == '9'):
		return int(v[0] - '0'), true
	case len(v) == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5':
		return 10 + int(v[1]-'0'), true
	}
	return 0, false
}

// extension is one element of a Sec-WebSocket-Extensions list.
type extension struct {
	name      string
	params    []extParam
	malformed bool // not per the ABNF; name and params may be incomplete
}

type extParam struct {
	name, value string
	hasValue    bool
}

// parseExtensions splits a Sec-WebSocket-Extensions value into its elements
// (RFC 6455 section 9.1):
//
//	extension-list = 1#extension
//	extension      = extension-token *( ";" extension-param )
//	extension-param = token [ "=" (token | quoted-string) ]
//
// with optional whitespace between items. Empty list elements are skipped
// (RFC 9110 section 5.6.1). An element that breaks the grammar is marked
// malformed and parsing resumes after the next comma outside a quoted
// string. A quoted value is unescaped, and must then be a token.
func parseExtensions(s string) []extension {
	var list []extension
	i := 0
	for {
		i = skipSpace(s, i)
		if i == len(s) {
			return list
		}
		if s[i] == ',' {
			i++
			continue
		}
		e, next, ok := parseExtension(s, i)
		if !ok {
			e.malformed = true
			next = skipElement(s, next)
		}
		list = append(list, e)
		i = next
		if i < len(s) {
			i++ // the comma
		}
	}
}

// parseExtension parses the element at s[i:], up to a comma or the end.
func parseExtension(s string, i int) (e extension, next int, ok bool) {
	e.name, i = token(s, i)
	if e.name == "" {
		return e, i, false
	}
	for {
		i = skipSpace(s, i)
		if i == len(s) || s[i] == ',' {
			return e, i, true
		}
		if s[i] != ';' {
			return e, i, false
		}
		var p extParam
		p.name, i = token(s, skipSpace(s, i+1))
		if p.name == "" {
			return e, i, false
		}
		i = skipSpace(s, i)
		if i < len(s) && s[i] == '=' {
			p.hasValue = true
			i = skipSpace(s, i+1)
			if i < len(s) && s[i] == '"' {
				p.value, i, ok = quotedString(s, i)
				if !ok || !isToken(p.value) {
					return e, i, false
				}
			} else if p.value, i = token(s, i); p.value == "" {
				return e, i, false
			}
		}
		e.params = append(e.params, p)
	}
}

// skipElement returns the index of the next comma outside a quoted string
// from i, or len(s).
func skipElement(s string, i int) int {
	quoted := false
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && c == ',':
			return i
		}
	}
	return len(s)
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

// token returns the token at s[i:] ("" if none) and the index after it.
func token(s string, i int) (string, int) {
	j := i
	for j < len(s) && isTokenChar(s[j]) {
		j++
	}
	return s[i:j], j
}

// quotedString parses the quoted-string at s[i:] (s[i] is '"') and returns
// its unescaped content and the index after the closing quote. When it is
// malformed it returns i, for skipElement to find its end.
func quotedString(s string, i int) (string, int, bool) {
	var b []byte
	for j := i + 1; j < len(s); j++ {
		switch c := s[j]; {
		case c == '"':
			return string(b), j + 1, true
		case c == '\\':
			j++
			if j == len(s) || !isQuotedChar(s[j]) {
				return "", i, false
			}
			b = append(b, s[j])
		case isQuotedChar(c):
			b = append(b, c)
		default:
			return "", i, false
		}
	}
	return "", i, false
}

// isQuotedChar reports whether c may appear in a quoted string, alone or
// escaped: HTAB, SP, visible ASCII and obs-text.
func isQuotedChar(c byte) bool { return c == '\t' || c >= ' ' && c != 0x7f }

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

// isTokenChar reports whether c is a tchar (RFC 9110 section 5.6.2).
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
