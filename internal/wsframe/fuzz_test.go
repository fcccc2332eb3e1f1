package wsframe

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"testing"
	"unicode/utf8"
)

// FuzzParseHeader: no input panics; an accepted header lies within the
// input, re-encodes to the same bytes, and every shorter prefix asks for
// more; a refused one is a 1002 *Error; "need more" is only said of inputs
// shorter than a header can be.
func FuzzParseHeader(f *testing.F) {
	for _, s := range []string{"8105", "827e0100", "827f0000000000010000", "8985a1b2c3d4", "8300", "827f8000000000000000", "0900", "82", ""} {
		f.Add(mustHex(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, ok, err := ParseHeader(b)
		switch {
		case err != nil:
			if ok || codeOf(err) != 1002 {
				t.Fatalf("% x: ok=%v err=%v", b, ok, err)
			}
		case !ok:
			if len(b) >= MaxHeaderSize {
				t.Fatalf("% x: needs more after %d bytes", b, len(b))
			}
			padded := append(append([]byte(nil), b...), make([]byte, MaxHeaderSize)...)
			if _, ok, err := ParseHeader(padded); !ok && err == nil {
				t.Fatalf("% x: still needs more when padded", b)
			}
		default:
			if h.Size < 2 || h.Size > MaxHeaderSize || h.Size > len(b) {
				t.Fatalf("% x: size %d", b, h.Size)
			}
			var key *[4]byte
			if h.Masked {
				key = &h.Key
			}
			re := AppendHeader(nil, h.Fin, h.RSV, h.Op, int(h.Length), key)
			if !bytes.Equal(re, b[:h.Size]) {
				t.Fatalf("% x: re-encoded as % x", b[:h.Size], re)
			}
			for i := 0; i < h.Size; i++ {
				if _, ok, err := ParseHeader(b[:i]); ok || err != nil {
					t.Fatalf("% x: prefix %d: ok=%v err=%v", b, i, ok, err)
				}
			}
		}
	})
}

// FuzzReader: a byte stream decoded frame by frame through ParseHeader,
// Reader, Mask, Text and Decompress never panics, fails only with 1002,
// 1007 or 1009, re-encodes every accepted frame to its bytes (checked by
// the decoder), and gives the same messages and error whether it arrives
// whole, byte by byte or in pieces.
func FuzzReader(f *testing.F) {
	comp := NewCompressor(false, 0)
	deflated := string(comp.Compress(nil, []byte("hello hello hello")))
	for _, seed := range []struct {
		flags byte
		in    []byte
	}{
		{1, clientFrame(true, OpText, "hello")},
		{0, serverFrame(true, OpBinary, "\x00\x01")},
		{1, cat(clientFrame(false, OpText, "Hel\xe2"), clientFrame(true, OpPing, "p"), clientFrame(true, OpContinuation, "\x82\xaclo"))},
		{3, cat(frame(false, FlagRSV1, OpText, deflated[:3], testKey), frame(true, 0, OpContinuation, deflated[3:], testKey))},
		{2, frame(true, FlagRSV1, OpBinary, deflated, nil)},
		{5, cat(clientFrame(false, OpBinary, "0123456789"), clientFrame(true, OpContinuation, "x"))},
		{1, clientFrame(true, OpClose, "\x03\xe8bye")},
		{1, clientFrame(true, OpClose, "\x03")},
		{0x39, cat(clientFrame(true, OpText, "κόσμε"), clientFrame(true, OpPong, ""), clientFrame(true, 3, ""))},
	} {
		f.Add(append([]byte{seed.flags}, seed.in...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		flags, in := data[0], data[1:]
		setup := func(d *streamDecoder) {
			d.r.Server = flags&1 != 0
			d.r.Compression = flags&2 != 0
			if flags&4 != 0 {
				d.r.MaxMessage = 64
			}
			d.inflated = 1 << 16
		}
		type result struct {
			msgs []testMsg
			err  error
		}
		decode := func(step int) result {
			msgs, err := decodeAll(in, step, setup)
			return result{msgs, err}
		}
		whole := decode(len(in) + 1)
		if code := codeOf(whole.err); code != 0 && code != 1002 && code != 1007 && code != 1009 {
			t.Fatalf("error %v", whole.err)
		}
		for _, step := range []int{1, 2 + int(flags>>3)} {
			got := decode(step)
			if codeOf(got.err) != codeOf(whole.err) || fmt.Sprint(got.msgs) != fmt.Sprint(whole.msgs) {
				t.Fatalf("step %d: %q %v; whole: %q %v", step, got.msgs, got.err, whole.msgs, whole.err)
			}
		}
	})
}

// FuzzUTF8: for any input cut anywhere, the validator agrees with
// utf8.Valid, and fed byte by byte it fails exactly at the first byte no
// valid text can continue with.
func FuzzUTF8(f *testing.F) {
	for _, s := range adversarialUTF8 {
		f.Add([]byte(s), []byte{1, 2, 3})
	}
	f.Fuzz(func(t *testing.T, in, cuts []byte) {
		var offs []int
		pos := 0
		for _, c := range cuts {
			pos += int(c % 16)
			if pos > len(in) {
				break
			}
			offs = append(offs, pos)
		}
		if got, want := writeSplit(in, offs...), utf8.Valid(in); got != want {
			t.Fatalf("%q cut at %v: %v, want %v", in, offs, got, want)
		}
		var v UTF8
		failed := -1
		for i := range in {
			if !v.Write(in[i : i+1]) {
				failed = i
				break
			}
		}
		switch {
		case failed < 0 && !validPrefix(in):
			t.Fatalf("%q: never failed", in)
		case failed >= 0 && (!validPrefix(in[:failed]) || validPrefix(in[:failed+1])):
			t.Fatalf("%q: failed at byte %d", in, failed)
		}
	})
}

// FuzzDecompress: any payload inflates without panic, to a 1007 or 1009
// error or to output within the limit that starts with what a plain flate
// reader makes of it; on error the output buffer never grew past the limit.
func FuzzDecompress(f *testing.F) {
	c := NewCompressor(false, 0)
	f.Add(c.Compress(nil, []byte("hello hello hello hello")), uint16(0), false)
	f.Add(c.Compress(nil, make([]byte, 10000)), uint16(100), false)
	f.Add(mustHex("f348cdc9c9070000"), uint16(5), true)
	f.Add(mustHex("f24805000000ffffcac9c90700"), uint16(0), true)
	f.Add([]byte{0x03, 0x00, 0x03, 0x00}, uint16(1), false)
	f.Fuzz(func(t *testing.T, payload []byte, limit uint16, takeover bool) {
		d := NewDecompressor(takeover)
		lim := int(limit % 8192)
		for round := 0; round < 2; round++ {
			out, err := d.Decompress(nil, payload, lim)
			if err != nil {
				if code := codeOf(err); code != 1007 && code != 1009 {
					t.Fatalf("error %v", err)
				}
				if len(out) != 0 || lim > 0 && cap(out) > lim+1 {
					t.Fatalf("error %v with %d bytes, capacity %d", err, len(out), cap(out))
				}
				return
			}
			if lim > 0 && len(out) > lim {
				t.Fatalf("%d bytes over the limit %d", len(out), lim)
			}
			if round == 0 && len(payload) > 0 {
				in := append(append([]byte(nil), payload...), 0, 0, 0xff, 0xff)
				ref, rerr := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(in)), int64(len(out))+1))
				if (rerr == nil || rerr == io.ErrUnexpectedEOF) && !bytes.HasPrefix(out, ref) {
					t.Fatalf("inflated %q, flate reads %q", out, ref)
				}
			}
		}
	})
}

// FuzzNegotiate: any header value is negotiated without panic; an accepted
// offer's response is well-formed, states the returned parameters, and
// never limits the server's window below 15; a response the client
// accepts has parameters in range.
func FuzzNegotiate(f *testing.F) {
	for _, s := range []string{
		"permessage-deflate",
		"permessage-deflate; client_max_window_bits; server_max_window_bits=10, permessage-deflate; client_max_window_bits",
		`foo; bar="a,b", permessage-deflate; client_max_window_bits="1\0"`,
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover",
		"permessage-deflate; server_max_window_bits=010",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, offers string, tk bool) {
		cfg := Config{ContextTakeover: tk}
		p, resp, ok := ServerNegotiate(offers, cfg)
		if ok {
			list := parseExtensions(resp)
			if len(list) != 1 || list[0].malformed || list[0].name != ExtensionName {
				t.Fatalf("%q: response %q", offers, resp)
			}
			q, reason := parseDeflateParams(list[0].params)
			got := Params{q.serverNoTakeover, q.clientNoTakeover, q.serverBits, q.clientBits}
			if reason != "" || got != p {
				t.Fatalf("%q: response %q states %+v (%s), returned %+v", offers, resp, got, reason, p)
			}
			if p.ServerMaxWindowBits != 0 && p.ServerMaxWindowBits != 15 || !tk && (!p.ServerNoContextTakeover || !p.ClientNoContextTakeover) {
				t.Fatalf("%q: %+v", offers, p)
			}
		} else if resp != "" || p != (Params{}) {
			t.Fatalf("%q: declined with %+v %q", offers, p, resp)
		}
		cp, ok, err := ClientAccept(offers, cfg)
		if ok && (err != nil || cp.ClientMaxWindowBits != 0 || cp.ServerMaxWindowBits != 0 && (cp.ServerMaxWindowBits < 8 || cp.ServerMaxWindowBits > 15)) {
			t.Fatalf("%q: accepted %+v %v", offers, cp, err)
		}
		if err != nil && codeOf(err) != 1002 {
			t.Fatalf("%q: %v", offers, err)
		}
	})
}
