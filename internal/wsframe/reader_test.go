package wsframe

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// testMsg is what a stream decodes to: a whole data message, or a control
// frame (for a close frame, data is the payload as received).
type testMsg struct {
	op   byte
	data string
}

// streamDecoder decodes a byte stream the way a connection does, from bytes
// arriving in pieces of any size: ParseHeader, Reader.Frame, then the
// payload unmasked and validated piece by piece as it arrives, End after
// the last frame of a message, inflation of compressed messages.
type streamDecoder struct {
	r        Reader
	dec      *Decompressor
	inflated int // the inflated size limit

	buf    []byte // received bytes not yet consumed
	inside bool   // a header was taken and its payload is arriving
	h      Header
	pos    int    // payload bytes of the current frame taken
	ctl    []byte // the current control frame's payload
	msg    []byte // the current data message's payload so far
	out    []testMsg
	frames [][]byte // every accepted frame re-encoded from its header and unmasked payload
	raw    []byte   // the current frame as received, masked
	err    error
}

func (d *streamDecoder) feed(p []byte) error {
	if d.err != nil {
		return d.err
	}
	d.buf = append(d.buf, p...)
	d.err = d.run()
	return d.err
}

func (d *streamDecoder) run() error {
	for {
		if !d.inside {
			h, ok, err := ParseHeader(d.buf)
			if err != nil || !ok {
				return err
			}
			if err := d.r.Frame(&h); err != nil {
				return err
			}
			d.h, d.inside, d.pos, d.ctl = h, true, 0, d.ctl[:0]
			d.raw = append(d.raw[:0], d.buf[:h.Size]...)
			d.buf = d.buf[h.Size:]
		}
		n := int(min(uint64(len(d.buf)), d.h.Length-uint64(d.pos)))
		piece := d.buf[:n]
		d.raw = append(d.raw, piece...)
		if d.h.Masked {
			Mask(d.h.Key, d.pos, piece)
		}
		d.pos += n
		d.buf = d.buf[n:]
		if isControl(d.h.Op) {
			d.ctl = append(d.ctl, piece...)
		} else {
			if err := d.r.Text(piece); err != nil {
				return err
			}
			d.msg = append(d.msg, piece...)
		}
		if uint64(d.pos) < d.h.Length {
			return nil // the rest of the payload has not arrived
		}
		if err := d.endFrame(); err != nil {
			return err
		}
	}
}

// endFrame handles a frame whose payload is all there.
func (d *streamDecoder) endFrame() error {
	d.inside = false
	var key *[4]byte
	if d.h.Masked {
		key = &d.h.Key
	}
	payload := d.ctl
	if !isControl(d.h.Op) {
		payload = d.msg[len(d.msg)-int(d.h.Length):]
	}
	re := AppendHeader(nil, d.h.Fin, d.h.RSV, d.h.Op, len(payload), key)
	masked := append([]byte(nil), payload...)
	if key != nil {
		Mask(*key, 0, masked)
	}
	d.frames = append(d.frames, append(re, masked...))
	if !bytes.Equal(d.frames[len(d.frames)-1], d.raw) {
		return fmt.Errorf("frame re-encoded as % x, received as % x", d.frames[len(d.frames)-1], d.raw)
	}

	if isControl(d.h.Op) {
		if d.h.Op == OpClose {
			if _, _, err := ParseClose(d.ctl); err != nil {
				return err
			}
		}
		d.out = append(d.out, testMsg{d.h.Op, string(d.ctl)})
		return nil
	}
	if !d.h.Fin {
		return nil
	}
	op, compressed := d.r.Message()
	if err := d.r.End(); err != nil {
		return err
	}
	data := d.msg
	if compressed {
		var err error
		data, err = d.dec.Decompress(nil, d.msg, d.inflated)
		if err != nil {
			return err
		}
		if op == OpText && !utf8.Valid(data) {
			return errInvalidUTF8
		}
	}
	d.out = append(d.out, testMsg{op, string(data)})
	d.msg = d.msg[:0]
	return nil
}

// frame encodes one frame, masked when key is not nil.
func frame(fin bool, rsv, op byte, payload string, key *[4]byte) []byte {
	b := AppendHeader(nil, fin, rsv, op, len(payload), key)
	p := []byte(payload)
	if key != nil {
		Mask(*key, 0, p)
	}
	return append(b, p...)
}

var testKey = &[4]byte{0x11, 0x22, 0x33, 0x44}

// clientFrame is a frame as a client sends it (masked), serverFrame as a
// server sends it.
func clientFrame(fin bool, op byte, payload string) []byte {
	return frame(fin, 0, op, payload, testKey)
}
func serverFrame(fin bool, op byte, payload string) []byte { return frame(fin, 0, op, payload, nil) }

func cat(frames ...[]byte) []byte { return bytes.Join(frames, nil) }

// decodeAll decodes in, fed in pieces of step bytes, with a Reader set up
// by setup.
func decodeAll(in []byte, step int, setup func(*streamDecoder)) ([]testMsg, error) {
	d := &streamDecoder{dec: NewDecompressor(false)}
	d.r.Server = true
	if setup != nil {
		setup(d)
	}
	in = append([]byte(nil), in...)
	for len(in) > 0 {
		n := min(step, len(in))
		if err := d.feed(in[:n]); err != nil {
			return d.out, err
		}
		in = in[n:]
	}
	return d.out, nil
}

func client(d *streamDecoder) { d.r.Server = false }

// TestReaderViolations: each protocol violation of issue 4 fails the
// connection with the right close code, and the messages before it are
// delivered, whether the stream comes whole or one byte at a time.
func TestReaderViolations(t *testing.T) {
	ping := clientFrame(true, OpPing, "p")
	for _, tc := range []struct {
		name  string
		in    []byte
		setup func(*streamDecoder)
		msgs  int // messages and control frames decoded before the error
		code  int
	}{
		{"continuation with no message", clientFrame(true, OpContinuation, "x"), nil, 0, 1002},
		{"continuation after a whole message", cat(clientFrame(true, OpText, "a"), clientFrame(true, OpContinuation, "x")), nil, 1, 1002},
		{"text inside a fragmented message", cat(clientFrame(false, OpText, "a"), clientFrame(true, OpText, "b")), nil, 0, 1002},
		{"binary inside a fragmented text", cat(clientFrame(false, OpText, "a"), ping, clientFrame(false, OpBinary, "b")), nil, 1, 1002},
		{"opcode 3", clientFrame(true, 3, "x"), nil, 0, 1002},
		{"opcode 7", clientFrame(true, 7, ""), nil, 0, 1002},
		{"opcode 0xB", clientFrame(true, 0xB, ""), nil, 0, 1002},
		{"opcode 0xF inside a message", cat(clientFrame(false, OpText, "a"), clientFrame(true, 0xF, "")), nil, 0, 1002},
		{"64-bit length top bit", mustHex("82ff8000000000000000" + "11223344"), nil, 0, 1002},
		{"16-bit length for 5 bytes", append(mustHex("81fe0005"+"11223344"), "hello"...), nil, 0, 1002},
		{"64-bit length for 300 bytes", mustHex("82ff000000000000012c" + "11223344"), nil, 0, 1002},
		{"ping of 126 bytes", clientFrame(true, OpPing, strings.Repeat("p", 126)), nil, 0, 1002},
		{"fragmented ping", clientFrame(false, OpPing, "p"), nil, 0, 1002},
		{"fragmented close", clientFrame(false, OpClose, "\x03\xe8"), nil, 0, 1002},
		{"close with 1-byte payload", clientFrame(true, OpClose, "\x03"), nil, 0, 1002},
		{"close code 1005", clientFrame(true, OpClose, "\x03\xed"), nil, 0, 1002},
		{"close code 1006", clientFrame(true, OpClose, "\x03\xee"), nil, 0, 1002},
		{"close code 1015", clientFrame(true, OpClose, "\x03\xf7"), nil, 0, 1002},
		{"close code 999", clientFrame(true, OpClose, "\x03\xe7"), nil, 0, 1002},
		{"close code 5000", clientFrame(true, OpClose, "\x13\x88"), nil, 0, 1002},
		{"close code 2999", clientFrame(true, OpClose, "\x0b\xb7"), nil, 0, 1002},
		{"close reason not utf-8", clientFrame(true, OpClose, "\x03\xe8\xc3\x28"), nil, 0, 1007},
		{"RSV1 without extension", frame(true, FlagRSV1, OpText, "x", testKey), nil, 0, 1002},
		{"RSV2", frame(true, FlagRSV2, OpBinary, "x", testKey), nil, 0, 1002},
		{"RSV3", frame(true, FlagRSV3, OpBinary, "x", testKey), nil, 0, 1002},
		{"RSV2 with compression", frame(true, FlagRSV2, OpBinary, "x", testKey), compressed, 0, 1002},
		{"RSV1 on a ping", frame(true, FlagRSV1, OpPing, "", testKey), compressed, 0, 1002},
		{"RSV1 on a continuation", cat(frame(false, FlagRSV1, OpText, "", testKey), frame(true, FlagRSV1, OpContinuation, "", testKey)), compressed, 0, 1002},
		{"unmasked frame to a server", serverFrame(true, OpText, "x"), nil, 0, 1002},
		{"unmasked ping to a server", serverFrame(true, OpPing, ""), nil, 0, 1002},
		{"masked frame to a client", clientFrame(true, OpText, "x"), client, 0, 1002},
		{"masked close to a client", clientFrame(true, OpClose, ""), client, 0, 1002},
		{"invalid utf-8", clientFrame(true, OpText, "ok\xff"), nil, 0, 1007},
		{"surrogate", clientFrame(true, OpText, "\xed\xa0\x80"), nil, 0, 1007},
		{"text ends inside a sequence", clientFrame(true, OpText, "a\xe2\x82"), nil, 0, 1007},
		{"fragment ends inside a sequence", cat(clientFrame(false, OpText, "a\xe2"), clientFrame(true, OpContinuation, "")), nil, 0, 1007},
		{"sequence broken across fragments", cat(clientFrame(false, OpText, "a\xe2"), ping, clientFrame(true, OpContinuation, "a")), nil, 1, 1007},
		{"over MaxMessage in one frame", clientFrame(true, OpBinary, "123456789"), limit8, 0, 1009},
		{"over MaxMessage in fragments", cat(clientFrame(false, OpBinary, "1234"), clientFrame(false, OpContinuation, "5678"), ping, clientFrame(true, OpContinuation, "9")), limit8, 1, 1009},
	} {
		for _, step := range []int{1, 3, 1 << 20} {
			msgs, err := decodeAll(tc.in, step, tc.setup)
			if codeOf(err) != tc.code || len(msgs) != tc.msgs {
				t.Errorf("%s, step %d: %d messages, error %v; want %d, code %d", tc.name, step, len(msgs), err, tc.msgs, tc.code)
			}
		}
	}
}

func compressed(d *streamDecoder) { d.r.Compression = true }
func limit8(d *streamDecoder)     { d.r.MaxMessage = 8 }

// TestReaderMessages: valid streams decode to the same messages whether
// they arrive whole, byte by byte or in random pieces: fragments are
// reassembled around interleaved control frames, text split inside a UTF-8
// sequence across fragments is valid, and messages at the size limit pass.
func TestReaderMessages(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    []byte
		setup func(*streamDecoder)
		want  []testMsg
	}{
		{"one text", clientFrame(true, OpText, "hello"), nil, []testMsg{{OpText, "hello"}}},
		{"empty binary", clientFrame(true, OpBinary, ""), nil, []testMsg{{OpBinary, ""}}},
		{"fragments", cat(clientFrame(false, OpText, "Hel"), clientFrame(false, OpContinuation, ""), clientFrame(true, OpContinuation, "lo")), nil,
			[]testMsg{{OpText, "Hello"}}},
		{"control frames between fragments", cat(
			clientFrame(false, OpBinary, "a"), clientFrame(true, OpPing, "1"), clientFrame(false, OpContinuation, "b"),
			clientFrame(true, OpPong, "2"), clientFrame(true, OpContinuation, "c"), clientFrame(true, OpText, "d")), nil,
			[]testMsg{{OpPing, "1"}, {OpPong, "2"}, {OpBinary, "abc"}, {OpText, "d"}}},
		{"utf-8 split across fragments", cat(
			clientFrame(false, OpText, "\xf0"), clientFrame(false, OpContinuation, "\x9f\x98"), clientFrame(true, OpPing, ""),
			clientFrame(true, OpContinuation, "\x80!")), nil,
			[]testMsg{{OpPing, ""}, {OpText, "😀!"}}},
		{"invalid utf-8 in binary is fine", clientFrame(true, OpBinary, "\xff\xfe"), nil, []testMsg{{OpBinary, "\xff\xfe"}}},
		{"server frames to a client", cat(serverFrame(true, OpText, "hi"), serverFrame(true, OpClose, "\x03\xe8bye")), client,
			[]testMsg{{OpText, "hi"}, {OpClose, "\x03\xe8bye"}}},
		{"at MaxMessage", cat(clientFrame(false, OpBinary, "1234"), clientFrame(true, OpContinuation, "5678"), clientFrame(true, OpText, "12345678")), limit8,
			[]testMsg{{OpBinary, "12345678"}, {OpText, "12345678"}}},
		{"close without status", clientFrame(true, OpClose, ""), nil, []testMsg{{OpClose, ""}}},
		{"large frames", cat(clientFrame(false, OpBinary, strings.Repeat("a", 70000)), clientFrame(true, OpContinuation, strings.Repeat("b", 200))), nil,
			[]testMsg{{OpBinary, strings.Repeat("a", 70000) + strings.Repeat("b", 200)}}},
	} {
		rng := rand.New(rand.NewPCG(7, 8))
		for _, step := range []int{1, 2, 5, 1 << 20, -1} {
			var msgs []testMsg
			var err error
			if step > 0 {
				msgs, err = decodeAll(tc.in, step, tc.setup)
			} else {
				msgs, err = decodeRandom(rng, tc.in, tc.setup)
			}
			if err != nil || fmt.Sprint(msgs) != fmt.Sprint(tc.want) {
				t.Errorf("%s, step %d: %q, %v; want %q", tc.name, step, msgs, err, tc.want)
			}
		}
	}
}

// decodeRandom decodes in fed in random pieces.
func decodeRandom(rng *rand.Rand, in []byte, setup func(*streamDecoder)) ([]testMsg, error) {
	d := &streamDecoder{dec: NewDecompressor(false)}
	d.r.Server = true
	if setup != nil {
		setup(d)
	}
	in = append([]byte(nil), in...)
	for len(in) > 0 {
		n := min(1+rng.IntN(40), len(in))
		if err := d.feed(in[:n]); err != nil {
			return d.out, err
		}
		in = in[n:]
	}
	return d.out, nil
}

// TestReaderLimitFromHeader: a frame over MaxMessage is refused from its
// header alone, before any payload byte arrives, even when the length is
// the largest the protocol allows; a continuation that would take the
// message over the limit, likewise.
func TestReaderLimitFromHeader(t *testing.T) {
	r := Reader{Server: true, MaxMessage: 1 << 20}
	for _, n := range []uint64{1<<20 + 1, 1 << 40, 1<<63 - 1} {
		h := Header{Fin: true, Op: OpBinary, Masked: true, Length: n}
		if err := r.Frame(&h); codeOf(err) != 1009 {
			t.Errorf("length %d: %v, want 1009", n, err)
		}
		r = Reader{Server: true, MaxMessage: 1 << 20}
	}
	first := Header{Op: OpBinary, Masked: true, Length: 1 << 19}
	next := Header{Op: OpContinuation, Masked: true, Length: 1 << 19}
	if err := r.Frame(&first); err != nil {
		t.Fatal(err)
	}
	if err := r.Frame(&next); err != nil {
		t.Fatal(err)
	}
	last := Header{Fin: true, Op: OpContinuation, Masked: true, Length: 1}
	if err := r.Frame(&last); codeOf(err) != 1009 {
		t.Errorf("continuation over the limit: %v, want 1009", err)
	}
	// With no limit, the largest length passes the Reader.
	r = Reader{Server: true}
	huge := Header{Fin: true, Op: OpBinary, Masked: true, Length: 1<<63 - 1}
	if err := r.Frame(&huge); err != nil {
		t.Errorf("no limit: %v", err)
	}
}

// TestReaderMessageState: Message reports the opcode of the message a
// continuation belongs to and whether it is compressed; control frames do
// not change it; End resets it.
func TestReaderMessageState(t *testing.T) {
	r := Reader{Compression: true}
	steps := []struct {
		h          Header
		op         byte
		compressed bool
	}{
		{Header{Op: OpText, RSV: FlagRSV1}, OpText, true},
		{Header{Op: OpPing, Fin: true}, OpText, true},
		{Header{Op: OpContinuation}, OpText, true},
		{Header{Op: OpContinuation, Fin: true}, OpText, true},
	}
	for i, s := range steps {
		if err := r.Frame(&s.h); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if op, c := r.Message(); op != s.op || c != s.compressed {
			t.Fatalf("step %d: Message() = %x %v, want %x %v", i, op, c, s.op, s.compressed)
		}
	}
	if err := r.End(); err != nil {
		t.Fatal(err)
	}
	if op, c := r.Message(); op != 0 || c {
		t.Fatalf("after End: %x %v", op, c)
	}
	if err := r.Frame(&Header{Op: OpBinary, Fin: true}); err != nil {
		t.Fatal(err)
	}
	if op, c := r.Message(); op != OpBinary || c {
		t.Fatalf("uncompressed binary: %x %v", op, c)
	}
	// Text of a compressed message is not validated by Text (it is
	// compressed data); of an uncompressed one it is.
	r = Reader{Compression: true}
	r.Frame(&Header{Op: OpText, RSV: FlagRSV1, Fin: true})
	if err := r.Text([]byte{0xff}); err != nil {
		t.Errorf("Text on compressed data: %v", err)
	}
	if err := r.End(); err != nil {
		t.Errorf("End of compressed text: %v", err)
	}
	r.Frame(&Header{Op: OpText, Fin: true})
	if err := r.Text([]byte{0xff}); codeOf(err) != 1007 {
		t.Errorf("Text on invalid text: %v, want 1007", err)
	}
}

// TestReaderCompressedMessages: with permessage-deflate, compressed and
// uncompressed messages mix on one connection, fragmented or not, and
// decode to what was sent.
func TestReaderCompressedMessages(t *testing.T) {
	comp := NewCompressor(false, 0)
	var in []byte
	var want []testMsg
	for i, s := range []string{"hello hello hello", "", strings.Repeat("κόσμε ", 500), "plain"} {
		op := OpText
		if i%2 == 1 {
			op = OpBinary
		}
		want = append(want, testMsg{op, s})
		if s == "plain" {
			in = append(in, clientFrame(true, op, s)...)
			continue
		}
		c := string(comp.Compress(nil, []byte(s)))
		if len(c) > 10 {
			in = append(in, frame(false, FlagRSV1, op, c[:5], testKey)...)
			in = append(in, clientFrame(true, OpPing, "x")...)
			want = append(want[:len(want)-1], testMsg{OpPing, "x"}, testMsg{op, s})
			in = append(in, frame(true, 0, OpContinuation, c[5:], testKey)...)
		} else {
			in = append(in, frame(true, FlagRSV1, op, c, testKey)...)
		}
	}
	for _, step := range []int{1, 7, 1 << 20} {
		msgs, err := decodeAll(in, step, compressed)
		if err != nil || fmt.Sprint(msgs) != fmt.Sprint(want) {
			t.Errorf("step %d: %q %v, want %q", step, msgs, err, want)
		}
	}
	// Compressed text that inflates to invalid UTF-8 is 1007.
	bad := frame(true, FlagRSV1, OpText, string(comp.Compress(nil, []byte("a\xffb"))), testKey)
	if _, err := decodeAll(bad, 1<<20, compressed); codeOf(err) != 1007 {
		t.Errorf("compressed invalid text: %v, want 1007", err)
	}
}
