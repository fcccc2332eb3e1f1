package wsframe

import "encoding/binary"

// MaxHeaderSize is the longest frame header: 2 bytes, a 64-bit length and a
// masking key.
const MaxHeaderSize = 14

// Header is a decoded frame header.
type Header struct {
	Fin    bool
	RSV    byte // the RSV bits as they sit in the first byte (FlagRSV1|FlagRSV2|FlagRSV3 mask)
	Op     byte
	Masked bool
	Key    [4]byte // masking key when Masked
	Length uint64  // payload length
	Size   int     // header length in bytes (2..14)
}

// ParseHeader decodes the frame header at the start of b. When b holds less
// than a whole header it returns ok=false and a nil error: call again with
// more bytes. It rejects, as an *Error with code 1002, what is wrong in the
// header alone: a reserved opcode (3-7, 0xB-0xF), a control frame longer
// than 125 bytes or without FIN, a length not in its minimal encoding, a
// 64-bit length with the top bit set. Those are detected from the first two
// bytes where they can be. It does not judge masking or RSV bits, which
// depend on the side and the extensions: see Reader.
func ParseHeader(b []byte) (h Header, ok bool, err error) {
	if len(b) < 2 {
		return h, false, nil
	}
	b0, b1 := b[0], b[1]
	h.Fin = b0&FlagFin != 0
	h.RSV = b0 & (FlagRSV1 | FlagRSV2 | FlagRSV3)
	h.Op = b0 & 0x0f
	h.Masked = b1&0x80 != 0
	len7 := b1 & 0x7f

	// RFC 6455 5.2: "If an unknown opcode is received, the receiving
	// endpoint MUST _Fail the WebSocket Connection_."
	if !knownOpcode(h.Op) {
		return Header{}, false, errReservedOpcode
	}
	// RFC 6455 5.5: "All control frames MUST have a payload length of 125
	// bytes or less and MUST NOT be fragmented."
	if isControl(h.Op) {
		if len7 > MaxControlPayload {
			return Header{}, false, errControlTooLong
		}
		if !h.Fin {
			return Header{}, false, errControlFragmented
		}
	}

	h.Size = 2
	switch len7 {
	case 126:
		h.Size += 2
	case 127:
		h.Size += 8
	}
	if h.Masked {
		h.Size += 4
	}
	if len(b) < h.Size {
		return Header{}, false, nil
	}

	// RFC 6455 5.2: "the minimal number of bytes MUST be used to encode the
	// length", and "the most significant bit MUST be 0".
	p := 2
	switch len7 {
	case 126:
		h.Length = uint64(binary.BigEndian.Uint16(b[2:]))
		if h.Length < 126 {
			return Header{}, false, errNonMinimalLength
		}
		p = 4
	case 127:
		h.Length = binary.BigEndian.Uint64(b[2:])
		if h.Length>>63 != 0 {
			return Header{}, false, errLengthTopBit
		}
		if h.Length <= 0xffff {
			return Header{}, false, errNonMinimalLength
		}
		p = 10
	default:
		h.Length = uint64(len7)
	}
	if h.Masked {
		copy(h.Key[:], b[p:p+4])
	}
	return h, true, nil
}

// AppendHeader appends a frame header to dst: rsv holds RSV bits as they sit
// in the first byte, length is the payload length (>= 0) written in its
// minimal encoding, and key nil means unmasked. The payload, masked with
// Mask(*key, 0, payload) when key is not nil, follows the header.
func AppendHeader(dst []byte, fin bool, rsv, op byte, length int, key *[4]byte) []byte {
	if length < 0 {
		panic("wsframe: negative payload length")
	}
	b0 := op&0x0f | rsv&(FlagRSV1|FlagRSV2|FlagRSV3)
	if fin {
		b0 |= FlagFin
	}
	var b1 byte
	if key != nil {
		b1 = 0x80
	}
	switch {
	case length <= 125:
		dst = append(dst, b0, b1|byte(length))
	case length <= 0xffff:
		dst = append(dst, b0, b1|126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(length))
	default:
		dst = append(dst, b0, b1|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(length))
	}
	if key != nil {
		dst = append(dst, key[:]...)
	}
	return dst
}
