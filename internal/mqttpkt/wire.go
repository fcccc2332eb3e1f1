package mqttpkt

import (
	"bytes"
	"encoding/binary"
	"unicode/utf8"
)

// The violations that need no detail, as values: failing does not allocate.
var (
	errVarintLong       = malformed("variable byte integer longer than 4 bytes")
	errVarintNonMinimal = malformed("variable byte integer not in its minimal encoding")
	errVarintPastEnd    = malformed("variable byte integer past the end of the packet")
	errTooLarge         = &Error{PacketTooLarge, "packet over the maximum packet size"}
	errPropsPastEnd     = malformed("property length past the end of the packet")
	errPropPastEnd      = malformed("property value past the end of the properties")
	errPropsIn311       = malformed("properties in MQTT 3.1.1")
	errTopicAliasZero   = &Error{TopicAliasInvalid, "Topic Alias of 0"}
	errTrailing         = malformed("bytes left over at the end of the packet")
	errVersion          = &Error{UnsupportedProtocolVersion, "protocol version other than 4 and 5"}
)

// varint decodes the variable byte integer at the start of b (MQTT 5
// section 1.5.5). n is the number of bytes it takes; n == 0 with a nil
// error means b ends inside it. At most 4 bytes, and the minimal encoding
// [MQTT-1.5.5-1] (also asked of 3.1.1 peers: nobody sends another).
func varint(b []byte) (v, n int, err *Error) {
	for i := 0; i < 4; i++ {
		if i >= len(b) {
			return 0, 0, nil
		}
		c := b[i]
		v |= int(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			if c == 0 && i > 0 {
				return 0, 0, errVarintNonMinimal
			}
			return v, i + 1, nil
		}
	}
	return 0, 0, errVarintLong
}

func varintLen(v int) int {
	switch {
	case v < 1<<7:
		return 1
	case v < 1<<14:
		return 2
	case v < 1<<21:
		return 3
	}
	return 4
}

func appendVarint(dst []byte, v int) []byte {
	for v >= 0x80 {
		dst = append(dst, byte(v)|0x80)
		v >>= 7
	}
	return append(dst, byte(v))
}

// appendPrefixed appends b with its 2-byte length (checked beforehand).
func appendPrefixed(dst, b []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(b)))
	return append(dst, b...)
}

// validUTF8 reports whether b is a well-formed UTF-8 string as MQTT
// defines it (section 1.5.4): valid UTF-8 (which excludes surrogates and
// overlong forms) without U+0000.
func validUTF8(b []byte) bool {
	return bytes.IndexByte(b, 0) < 0 && utf8.Valid(b)
}

// topicBytes classifies bytes for scanTopic: 1 for those a topic name
// may not hold (U+0000 and the wildcards), 2 for non-ASCII.
var topicBytes = func() (t [256]uint8) {
	t[0], t['+'], t['#'] = 1, 1, 1
	for c := 0x80; c < 0x100; c++ {
		t[c] = 2
	}
	return t
}()

// Results of scanTopic.
const (
	topicOK = iota
	topicWildcard
	topicBadUTF8 // invalid UTF-8 or U+0000
)

// scanTopic judges a topic name's bytes in one pass (the length and
// emptiness are the caller's): no U+0000, no wildcard, valid UTF-8 (only
// checked when a non-ASCII byte is seen: multi-byte sequences hold no
// ASCII byte, so the pass over them stays valid).
func scanTopic(t []byte) int {
	var seen uint8
	for _, c := range t {
		k := topicBytes[c]
		if k == 1 {
			if c == 0 {
				return topicBadUTF8
			}
			return topicWildcard
		}
		seen |= k
	}
	if seen != 0 && !utf8.Valid(t) {
		return topicBadUTF8
	}
	return topicOK
}

// checkString judges a string (isString) or binary data field: it must
// fit its 2-byte length, and a string must be valid UTF-8. what names the
// field in the error.
func checkString(b []byte, what string, isString bool) *Error {
	if len(b) > MaxStringLength {
		return malformed(what + " longer than 65535 bytes")
	}
	if isString && !validUTF8(b) {
		return malformed(what + " not valid UTF-8 or contains U+0000")
	}
	return nil
}

// reader reads the body of one packet (variable header and payload); b
// ends where the packet ends, so that nothing is read past it.
type reader struct {
	b    []byte
	i    int
	mask uint64 // the properties of the packet (not of its will), as Properties.mask
}

func (r *reader) left() int { return len(r.b) - r.i }

func (r *reader) u8() (byte, bool) {
	if r.i >= len(r.b) {
		return 0, false
	}
	r.i++
	return r.b[r.i-1], true
}

func (r *reader) u16() (uint16, bool) {
	if r.left() < 2 {
		return 0, false
	}
	r.i += 2
	return binary.BigEndian.Uint16(r.b[r.i-2:]), true
}

func (r *reader) u32() (uint32, bool) {
	if r.left() < 4 {
		return 0, false
	}
	r.i += 4
	return binary.BigEndian.Uint32(r.b[r.i-4:]), true
}

// varint reads a variable byte integer; its end must lie inside the packet.
func (r *reader) varint() (int, *Error) {
	v, n, err := varint(r.b[r.i:])
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, errVarintPastEnd
	}
	r.i += n
	return v, nil
}

// prefixed reads a string or binary data: a 2-byte length and that many
// bytes. The result is a view of the input, non-nil even when empty.
func (r *reader) prefixed() ([]byte, bool) {
	n, ok := r.u16()
	if !ok || int(n) > r.left() {
		return nil, false
	}
	r.i += int(n)
	return r.b[r.i-int(n) : r.i : r.i], true
}

// rest is what is left of the packet, a view (non-nil).
func (r *reader) rest() []byte {
	b := r.b[r.i:len(r.b):len(r.b)]
	r.i = len(r.b)
	return b
}
