package wsframe

import (
	"compress/flate"
	"io"
	"sync"
)

// deflateTail is appended to a compressed message before inflating it: the
// 00 00 ff ff the sender removed (RFC 7692 section 7.2.2), then an empty
// final stored block, so that the flate reader ends with io.EOF at the end
// of the message instead of waiting for more.
const deflateTail = "\x00\x00\xff\xff\x01\x00\x00\xff\xff"

// syncMarker is what flate.Writer.Flush ends its output with, and what
// RFC 7692 section 7.2.1 removes from the end of a compressed message.
const syncMarker = "\x00\x00\xff\xff"

// maxWindowBits is the LZ77 window of compress/flate, in both directions.
const maxWindowBits = 15

// Compressor compresses whole messages for one direction of a connection.
// With context takeover it keeps its flate.Writer (about 1.2 MB at
// BestSpeed) from the first message to Release, so that each message may
// refer to earlier ones; without, it borrows a pooled writer for each
// message and holds nothing in between. A Compressor is not safe for
// concurrent use.
type Compressor struct {
	level    int
	takeover bool
	w        *pooledWriter // kept between messages only with takeover
}

// pooledWriter is a flate.Writer and the slice it appends its output to.
type pooledWriter struct {
	fw  *flate.Writer
	out []byte
}

func (w *pooledWriter) Write(p []byte) (int, error) {
	w.out = append(w.out, p...)
	return len(p), nil
}

// writerPools holds idle writers by level (flate.HuffmanOnly .. flate.BestCompression).
var writerPools [flate.BestCompression - flate.HuffmanOnly + 1]sync.Pool

func getWriter(level int) *pooledWriter {
	if x := writerPools[level-flate.HuffmanOnly].Get(); x != nil {
		w := x.(*pooledWriter)
		w.fw.Reset(w)
		return w
	}
	w := new(pooledWriter)
	w.fw, _ = flate.NewWriter(w, level) // level is valid: see NewCompressor
	return w
}

func putWriter(level int, w *pooledWriter) {
	w.out = nil
	writerPools[level-flate.HuffmanOnly].Put(w)
}

// NewCompressor returns a compressor that keeps its context between
// messages when takeover is true (RFC 7692 section 7.1.1). level is a
// compress/flate level; 0, or a level flate does not know, means
// flate.BestSpeed (flate.NoCompression is not useful here).
func NewCompressor(takeover bool, level int) *Compressor {
	if level == flate.NoCompression || level < flate.HuffmanOnly || level > flate.BestCompression {
		level = flate.BestSpeed
	}
	return &Compressor{level: level, takeover: takeover}
}

// Compress appends the compressed form of msg to dst, without the final
// 00 00 ff ff (RFC 7692 section 7.2.1): the payload of a message to be sent
// with RSV1 on its first frame. An empty msg compresses to one 0x00 byte.
func (c *Compressor) Compress(dst, msg []byte) []byte {
	w := c.w
	if w == nil {
		w = getWriter(c.level)
		if c.takeover {
			c.w = w
		}
	}
	start := len(dst)
	w.out = dst
	// pooledWriter.Write never fails, so neither do these.
	w.fw.Write(msg)
	w.fw.Flush()
	out := w.out
	w.out = nil
	if !c.takeover {
		putWriter(c.level, w)
	}
	if n := len(out); n-start >= len(syncMarker) && string(out[n-len(syncMarker):]) == syncMarker {
		out = out[:n-len(syncMarker)]
	}
	return out
}

// Release returns the compressor's writer to the pool. Call it when the
// connection closes; a later Compress starts a new context.
func (c *Compressor) Release() {
	if c.w != nil {
		putWriter(c.level, c.w)
		c.w = nil
	}
}

// Decompressor inflates whole messages for one direction of a connection.
// The flate reader (about 40 KB) is borrowed from a pool for each message;
// with context takeover, the Decompressor keeps the last window bytes of
// output (32 KiB unless the peer's window is smaller) as the dictionary of
// the next message. A Decompressor is not safe for concurrent use.
type Decompressor struct {
	takeover bool
	window   int    // bytes of history kept with takeover
	hist     []byte // the last window bytes of output, with takeover
}

// inflater is a pooled flate reader and the message it reads.
type inflater struct {
	src messageSource
	fr  io.ReadCloser // implements flate.Resetter
}

var inflaterPool = sync.Pool{New: func() any {
	inf := new(inflater)
	inf.fr = flate.NewReader(&inf.src)
	return inf
}}

// messageSource reads a compressed payload followed by deflateTail. It is an
// io.ByteReader, so that the flate reader reads no further than it needs
// (and without a bufio.Reader of its own).
type messageSource struct {
	payload []byte
	tail    string
}

func (s *messageSource) Read(b []byte) (int, error) {
	if len(s.payload) > 0 {
		n := copy(b, s.payload)
		s.payload = s.payload[n:]
		return n, nil
	}
	if len(s.tail) > 0 {
		n := copy(b, s.tail)
		s.tail = s.tail[n:]
		return n, nil
	}
	return 0, io.EOF
}

func (s *messageSource) ReadByte() (byte, error) {
	if len(s.payload) > 0 {
		c := s.payload[0]
		s.payload = s.payload[1:]
		return c, nil
	}
	if len(s.tail) > 0 {
		c := s.tail[0]
		s.tail = s.tail[1:]
		return c, nil
	}
	return 0, io.EOF
}

// NewDecompressor returns a decompressor for a peer that keeps its context
// between messages when takeover is true, with a window of up to 32 KiB.
func NewDecompressor(takeover bool) *Decompressor {
	return NewDecompressorWindow(takeover, maxWindowBits)
}

// NewDecompressorWindow is NewDecompressor for a peer whose window was
// limited to 2^bits bytes by negotiation (its max_window_bits parameter,
// 8..15; anything else means 15). Only the history kept with takeover
// shrinks. zlib cannot compress with a 256-byte window and silently uses 512
// bytes instead, so 8 keeps 512 bytes of history.
func NewDecompressorWindow(takeover bool, bits int) *Decompressor {
	if bits < 8 || bits > maxWindowBits {
		bits = maxWindowBits
	}
	if bits == 8 {
		bits = 9
	}
	return &Decompressor{takeover: takeover, window: 1 << bits}
}

// maxStreams bounds the deflate streams in one message: a sender may end a
// message's data with a final block (RFC 7692 section 7.2.3.4) and some
// send more blocks after it, but each new stream costs a copy of the
// window, so a message made of thousands of tiny final blocks is refused.
const maxStreams = 16

// Decompress appends the inflated message to dst. payload is the
// concatenated payloads of one compressed message's frames, without the
// 00 00 ff ff tail; it must not overlap dst's spare capacity. Output over
// limit bytes (when limit > 0) stops inflation at once with a 1009 *Error,
// having allocated at most limit+1 bytes beyond len(dst): a decompression
// bomb costs no more than the limit. Corrupt data is a 1007 *Error. On
// error dst is returned unchanged in length, and the Decompressor must not
// be used again (the connection is failing). An empty payload is an empty
// message. Data after a final deflate block (BFINAL set) is inflated as a
// new stream over the same window, as RFC 7692 section 7.2.3.4 implies.
func (d *Decompressor) Decompress(dst, payload []byte, limit int) ([]byte, error) {
	if len(payload) == 0 {
		return dst, nil
	}
	inf := inflaterPool.Get().(*inflater)
	inf.src = messageSource{payload: payload, tail: deflateTail}
	var dict []byte
	if d.takeover {
		dict = d.hist
	}
	inf.fr.(flate.Resetter).Reset(&inf.src, dict)

	start := len(dst)
	streams := 1
	var err error
	for {
		end := cap(dst)
		if limit > 0 && end-start > limit {
			end = start + limit + 1 // one byte over the limit is enough to know
		}
		if len(dst) == end {
			dst = growOutput(dst, start, limit)
			continue
		}
		n, rerr := inf.fr.Read(dst[len(dst):end])
		dst = dst[:len(dst)+n]
		if limit > 0 && len(dst)-start > limit {
			err = errInflatedTooBig
			break
		}
		if rerr == io.EOF {
			// The reader stops at the first final block: the one in
			// deflateTail once the payload is all read, or the sender's.
			if len(inf.src.payload) == 0 {
				break
			}
			if streams++; streams > maxStreams {
				err = errTooManyStreams
				break
			}
			inf.fr.(flate.Resetter).Reset(&inf.src, d.streamDict(dst[start:]))
			continue
		}
		if rerr != nil {
			err = errCorruptCompression
			break
		}
	}
	inf.src = messageSource{}
	inflaterPool.Put(inf)
	if err != nil {
		return dst[:start], err
	}
	if d.takeover {
		d.remember(dst[start:])
	}
	return dst, nil
}

// streamDict returns the last 32 KiB of the output so far, out being this
// message's: the dictionary of a stream that starts inside a message.
func (d *Decompressor) streamDict(out []byte) []byte {
	const w = 1 << maxWindowBits
	if len(out) >= w {
		return out[len(out)-w:]
	}
	var prev []byte
	if d.takeover {
		prev = d.hist[max(0, len(d.hist)-(w-len(out))):]
	}
	return append(append(make([]byte, 0, len(prev)+len(out)), prev...), out...)
}

// growOutput returns dst with more spare capacity: as much again as the
// output so far (at least 4 KiB), but never past one byte over the limit.
func growOutput(dst []byte, start, limit int) []byte {
	more := max(len(dst)-start, 4<<10)
	if limit > 0 {
		more = min(more, start+limit+1-len(dst))
	}
	grown := make([]byte, len(dst), len(dst)+more)
	copy(grown, dst)
	return grown
}

// remember keeps the last d.window bytes of the output so far, out being
// the latest message.
func (d *Decompressor) remember(out []byte) {
	w := d.window
	if d.hist == nil {
		d.hist = make([]byte, 0, w)
	}
	if len(out) >= w {
		d.hist = append(d.hist[:0], out[len(out)-w:]...)
		return
	}
	if over := len(d.hist) + len(out) - w; over > 0 {
		d.hist = d.hist[:copy(d.hist, d.hist[over:])]
	}
	d.hist = append(d.hist, out...)
}

// Release drops the decompressor's history. Call it when the connection
// closes; a later Decompress starts with no context.
func (d *Decompressor) Release() { d.hist = nil }
