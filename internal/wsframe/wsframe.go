// Package wsframe is the WebSocket wire codec: frames (RFC 6455) and the
// permessage-deflate extension (RFC 7692). It does no I/O and holds no
// payload: the caller owns the bytes and feeds them in as they arrive.
//
// Receiving is ParseHeader, then Reader.Frame to judge the header in the
// context of the connection (side, extensions, fragmentation, size limit),
// then Mask to unmask the payload (in as many pieces as it arrives in),
// Reader.Text to validate text as UTF-8 across fragments, and Reader.End
// after the last byte of a message. Each protocol violation is an *Error
// that carries the close code to answer it with (1002, 1007 or 1009).
// Sending is AppendHeader, Mask and AppendClose.
//
// # Memory of permessage-deflate
//
// Go's compress/flate allocates about 1.2 MB for a flate.Writer at
// flate.BestSpeed (about 800 KB at levels 2 to 9) and about 40 KB for a
// flate reader, whatever window the peer uses. Measured by
// TestCompressorMemory (Go 1.26, amd64), what one connection holds between
// messages:
//
//	                        Compressor           Decompressor
//	no context takeover     0 (struct only)      0 (struct only)
//	context takeover        1,207,000 (level 1)  32,800 (32 KiB history)
//	                          814,000 (level 6)
//
// Without context takeover (the default, Config.ContextTakeover false),
// writers and readers are taken from a sync.Pool for the duration of one
// Compress or Decompress call: an idle connection holds no flate state. A
// Compressor with context takeover keeps its flate.Writer until Release. A
// Decompressor with context takeover keeps only the last 32 KiB of output
// (less when the peer's window is limited, see NewDecompressorWindow) as
// the dictionary of a pooled reader.
//
// Very short messages can come out longer than they went in (at BestSpeed,
// 19 bytes of "Hello, Hello, Hello" take 25); a sender may send any message
// uncompressed, RSV1 clear, which leaves both contexts alone.
package wsframe

import "strconv"

// Opcodes (RFC 6455 section 5.2).
const (
	OpContinuation byte = 0x0
	OpText         byte = 0x1
	OpBinary       byte = 0x2
	OpClose        byte = 0x8
	OpPing         byte = 0x9
	OpPong         byte = 0xA
)

// Bits of a frame's first byte.
const (
	FlagFin  byte = 0x80
	FlagRSV1 byte = 0x40
	FlagRSV2 byte = 0x20
	FlagRSV3 byte = 0x10
)

// Close codes (RFC 6455 section 7.4.1). CloseNoStatus, CloseAbnormal and
// 1015 are reported locally and never sent in a close frame.
const (
	CloseNormal             uint16 = 1000
	CloseGoingAway          uint16 = 1001
	CloseProtocolError      uint16 = 1002
	CloseUnsupportedData    uint16 = 1003
	CloseNoStatus           uint16 = 1005
	CloseAbnormal           uint16 = 1006
	CloseInvalidData        uint16 = 1007
	ClosePolicyViolation    uint16 = 1008
	CloseTooBig             uint16 = 1009
	CloseMandatoryExtension uint16 = 1010
	CloseInternalError      uint16 = 1011
)

// MaxControlPayload is the largest payload of a control frame.
const MaxControlPayload = 125

// Error is a protocol violation: the close code to answer it with and why.
// The errors this package returns may be shared values: do not modify them.
type Error struct {
	Code   uint16
	Reason string
}

func (e *Error) Error() string {
	return "websocket: " + e.Reason + " (close code " + strconv.Itoa(int(e.Code)) + ")"
}

// The violations, as values: the hot paths do not allocate to fail.
var (
	errReservedOpcode     = &Error{CloseProtocolError, "reserved opcode"}
	errControlTooLong     = &Error{CloseProtocolError, "control frame longer than 125 bytes"}
	errControlFragmented  = &Error{CloseProtocolError, "fragmented control frame"}
	errNonMinimalLength   = &Error{CloseProtocolError, "payload length not in its minimal encoding"}
	errLengthTopBit       = &Error{CloseProtocolError, "64-bit payload length with the most significant bit set"}
	errReservedBits       = &Error{CloseProtocolError, "reserved bits set without an extension that defines them"}
	errRSV1NotFirst       = &Error{CloseProtocolError, "RSV1 set on a control or continuation frame"}
	errUnmasked           = &Error{CloseProtocolError, "unmasked frame from a client"}
	errMasked             = &Error{CloseProtocolError, "masked frame from a server"}
	errNoMessage          = &Error{CloseProtocolError, "continuation frame with no message started"}
	errMessageUnfinished  = &Error{CloseProtocolError, "new data frame inside a fragmented message"}
	errTooBig             = &Error{CloseTooBig, "message over the size limit"}
	errInvalidUTF8        = &Error{CloseInvalidData, "invalid UTF-8 in a text message"}
	errCloseOneByte       = &Error{CloseProtocolError, "close frame with a 1-byte payload"}
	errCloseCode          = &Error{CloseProtocolError, "close code that may not be sent"}
	errCloseReasonUTF8    = &Error{CloseInvalidData, "close reason is not valid UTF-8"}
	errInflatedTooBig     = &Error{CloseTooBig, "inflated message over the size limit"}
	errCorruptCompression = &Error{CloseInvalidData, "corrupt compressed message"}
	errTooManyStreams     = &Error{CloseInvalidData, "too many final deflate blocks in one message"}
)

// isControl reports whether op is a control opcode (ping, pong, close, or
// one of the reserved 0xB-0xF).
func isControl(op byte) bool { return op&0x8 != 0 }

// knownOpcode reports whether op is one RFC 6455 defines.
func knownOpcode(op byte) bool {
	return op <= OpBinary || (op >= OpClose && op <= OpPong)
}
