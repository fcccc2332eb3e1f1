package httpwire

// ChunkedDecoder decodes the chunked transfer coding (RFC 9112 section 7.1)
// incrementally: feed it bytes as they arrive, in pieces of any size. Chunk
// extensions are skipped and trailer fields discarded, both within limits.
// The zero value is ready to use.
type ChunkedDecoder struct {
	state   chunkState
	remain  int64 // data bytes left in the current chunk
	size    int64 // the size being parsed
	digits  int   // hex digits of the size so far
	lineLen int   // bytes of the current extension or trailer line
	trailer int   // bytes of the trailer section so far
	sawCR   bool  // a CR was just consumed; LF must follow
}

type chunkState uint8

const (
	stSize    chunkState = iota // hex digits of the chunk size
	stExt                       // after the size: BWS and extensions, to CRLF
	stData                      // chunk data
	stDataEnd                   // the CRLF after chunk data
	stTrailer                   // trailer lines after the last chunk, to an empty line
	stDone
)

// Limits of the chunked decoder.
const (
	maxChunkSizeDigits = 15      // up to 2^60-1 bytes per chunk
	maxChunkLine       = 4 << 10 // a size line's extensions, or one trailer line
	maxTrailerBytes    = 16 << 10
)

// Done reports whether the last chunk and the trailer section were decoded.
func (d *ChunkedDecoder) Done() bool { return d.state == stDone }

// Decode consumes bytes of in, calling data with each run of decoded body
// bytes (views of in). It returns the number of bytes consumed — all of in
// unless the body ended before — and an *Error for malformed input, after
// which the decoder must not be used again.
func (d *ChunkedDecoder) Decode(in []byte, data func([]byte)) (int, error) {
	i := 0
	for i < len(in) && d.state != stDone {
		if d.state == stData {
			n := int64(len(in) - i)
			if n > d.remain {
				n = d.remain
			}
			if n > 0 {
				data(in[i : i+int(n)])
				i += int(n)
				d.remain -= n
			}
			if d.remain == 0 {
				d.state = stDataEnd
			}
			continue
		}
		c := in[i]
		i++
		if d.sawCR {
			if c != '\n' {
				return i, bad("bare CR in chunked body")
			}
			d.sawCR = false
			if err := d.endOfLine(); err != nil {
				return i, err
			}
			continue
		}
		if c == '\r' {
			d.sawCR = true
			continue
		}
		if c == '\n' {
			return i, bad("bare LF in chunked body")
		}
		if err := d.lineByte(c); err != nil {
			return i, err
		}
	}
	return i, nil
}

// lineByte takes one byte of a size line, a data terminator or a trailer.
func (d *ChunkedDecoder) lineByte(c byte) error {
	switch d.state {
	case stSize:
		v, ok := unhex(c)
		switch {
		case ok:
			if d.digits == maxChunkSizeDigits {
				return bad("chunk size too large")
			}
			d.size = d.size<<4 | int64(v)
			d.digits++
			return nil
		case d.digits == 0:
			return bad("malformed chunk size")
		case c == ';' || c == ' ' || c == '\t':
			d.state = stExt
			d.lineLen = 1
			return nil
		}
		return bad("malformed chunk size")
	case stExt:
		if d.lineLen++; d.lineLen > maxChunkLine {
			return bad("chunk extension too long")
		}
		if c < ' ' && c != '\t' || c == 0x7f {
			return bad("control character in a chunk extension")
		}
		return nil
	case stDataEnd:
		return bad("chunk data longer than its size")
	case stTrailer:
		d.lineLen++
		d.trailer++
		if d.lineLen > maxChunkLine || d.trailer > maxTrailerBytes {
			return &Error{431, "chunked trailer too large"}
		}
		if c < ' ' && c != '\t' || c == 0x7f {
			return bad("control character in a trailer field")
		}
		return nil
	}
	return bad("chunked decoder misuse")
}

// endOfLine handles a CRLF.
func (d *ChunkedDecoder) endOfLine() error {
	switch d.state {
	case stSize, stExt:
		if d.digits == 0 {
			return bad("missing chunk size")
		}
		d.remain, d.size, d.digits, d.lineLen = d.size, 0, 0, 0
		if d.remain == 0 {
			d.state = stTrailer
		} else {
			d.state = stData
		}
	case stDataEnd:
		d.state = stSize
	case stTrailer:
		if d.lineLen == 0 {
			d.state = stDone // the empty line ends the message
		}
		d.lineLen = 0
	}
	return nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
