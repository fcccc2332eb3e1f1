package wsframe

// Reader is the receive state machine of one connection: it judges each
// frame header in the context of the connection and tracks the message that
// frames belong to. It holds no payload. Set the exported fields before the
// first frame; the zero value is a client without limit or extension.
type Reader struct {
	// Server is the side of this end: a server requires masked frames and a
	// client refuses them (RFC 6455 section 5.1), both with 1002.
	Server bool
	// MaxMessage limits one message's total payload as it is on the wire
	// (compressed, for a compressed message; the inflated size is limited by
	// Decompressor.Decompress). 0 means no limit. A frame that would take its
	// message over the limit is refused with 1009 from its header, before
	// any byte of its payload is buffered. Control frames are not counted.
	MaxMessage uint64
	// Compression reports that permessage-deflate was negotiated: RSV1 is
	// then allowed on the first frame of a data message, and marks it
	// compressed (RFC 7692 section 6).
	Compression bool

	op         byte   // the current message's opcode: OpText, OpBinary, or 0 for none
	compressed bool   // the current message has RSV1
	open       bool   // the current message awaits more frames (no FIN yet)
	total      uint64 // payload bytes of the current message so far, this frame included
	utf8       UTF8
}

// Frame judges h, a header just parsed, before its payload is taken. It
// refuses, as an *Error: RSV bits no negotiated extension defines (1002;
// RSV1 on a control or continuation frame is 1002 too), a masking violation
// (1002), a continuation frame with no message started (1002), a new data
// frame while a fragmented message is unfinished (1002), a message over
// MaxMessage (1009, counting its frames so far plus h.Length). Control
// frames may come between fragments: they leave the message state alone.
// After Frame accepts a data frame, Message tells its message's opcode and
// whether it is compressed; the message ends with the frame whose Fin is
// set, after whose payload the caller calls End.
func (r *Reader) Frame(h *Header) error {
	if h.Masked != r.Server {
		if r.Server {
			return errUnmasked
		}
		return errMasked
	}
	// Repeated from ParseHeader, for headers made by other means.
	if !knownOpcode(h.Op) {
		return errReservedOpcode
	}
	if isControl(h.Op) {
		if h.RSV == FlagRSV1 && r.Compression {
			return errRSV1NotFirst
		}
		if h.RSV != 0 {
			return errReservedBits
		}
		if h.Length > MaxControlPayload {
			return errControlTooLong
		}
		if !h.Fin {
			return errControlFragmented
		}
		return nil
	}

	if h.RSV&(FlagRSV2|FlagRSV3) != 0 || h.RSV&FlagRSV1 != 0 && !r.Compression {
		return errReservedBits
	}
	first := h.Op != OpContinuation
	if first {
		if r.open {
			return errMessageUnfinished
		}
		r.op = h.Op
		r.compressed = h.RSV&FlagRSV1 != 0
		r.total = 0
		r.utf8.Reset()
	} else {
		if !r.open {
			return errNoMessage
		}
		// RFC 7692 section 6.1: RSV1 is set on the first frame only.
		if h.RSV&FlagRSV1 != 0 {
			return errRSV1NotFirst
		}
	}
	if r.MaxMessage > 0 && (r.total > r.MaxMessage || h.Length > r.MaxMessage-r.total) {
		return errTooBig
	}
	r.total += h.Length
	r.open = !h.Fin
	return nil
}

// Message returns the opcode of the data message the last accepted data
// frame belongs to (OpText or OpBinary, also for continuation frames), and
// whether that message is compressed. It returns 0 when no message is
// under way.
func (r *Reader) Message() (op byte, compressed bool) { return r.op, r.compressed }

// Text validates the next unmasked payload bytes of the current message as
// UTF-8, fragment boundaries and pieces notwithstanding, and returns a 1007
// *Error at the first invalid byte. It ignores binary and compressed
// messages: a compressed text message is validated after inflation (with a
// UTF8 or utf8.Valid), not here.
func (r *Reader) Text(p []byte) error {
	if r.op != OpText || r.compressed {
		return nil
	}
	if !r.utf8.Write(p) {
		return errInvalidUTF8
	}
	return nil
}

// End is called after the last payload byte of a message (the frame with
// Fin). It returns a 1007 *Error when an uncompressed text message ends
// inside a UTF-8 sequence, and resets the message state for the next one.
func (r *Reader) End() error {
	text := r.op == OpText && !r.compressed
	ok := r.utf8.Complete()
	r.op, r.compressed, r.open, r.total = 0, false, false, 0
	r.utf8.Reset()
	if text && !ok {
		return errInvalidUTF8
	}
	return nil
}
