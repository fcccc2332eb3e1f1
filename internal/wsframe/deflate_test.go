package wsframe

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
)

// testMessages returns n messages like a chat or JSON stream: repetitive
// within and across messages, of sizes from 0 to tens of KiB, with some
// random (incompressible) ones.
func testMessages(n int) [][]byte {
	rng := rand.New(rand.NewPCG(9, 10))
	words := []string{"meerkat", "event", `{"id":`, `"name":"x"}`, "websocket", "deflate", "κόσμε", " ", "\n"}
	msgs := [][]byte{{}, []byte("a"), bytes.Repeat([]byte("z"), 70000)}
	for len(msgs) < n {
		var m []byte
		switch rng.IntN(8) {
		case 0:
			m = make([]byte, rng.IntN(5000))
			for i := range m {
				m[i] = byte(rng.Uint32())
			}
		default:
			for k := rng.IntN(2000); k > 0; k-- {
				m = append(m, words[rng.IntN(len(words))]...)
			}
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// referenceInflate inflates a message with a fresh compress/flate reader fed
// payload + 00 00 ff ff (RFC 7692 7.2.2), with dict as the window so far.
func referenceInflate(payload, dict []byte) ([]byte, error) {
	in := append(append([]byte(nil), payload...), 0, 0, 0xff, 0xff)
	fr := flate.NewReaderDict(bytes.NewReader(in), dict)
	out, err := io.ReadAll(fr)
	if err == io.ErrUnexpectedEOF {
		err = nil // the stream stops after the sync block, as it should
	}
	return out, err
}

// TestCompressRoundTrip: many messages compressed by a Compressor and
// inflated by a Decompressor come back intact, with and without context
// takeover, at several levels; with takeover, later messages compress
// better (they refer to earlier ones).
func TestCompressRoundTrip(t *testing.T) {
	msgs := testMessages(150)
	for _, takeover := range []bool{false, true} {
		for _, level := range []int{0, flate.HuffmanOnly, flate.BestCompression} {
			c := NewCompressor(takeover, level)
			d := NewDecompressor(takeover)
			var wire int
			var out []byte
			for i, m := range msgs {
				p := c.Compress([]byte("hdr"), m)
				if string(p[:3]) != "hdr" {
					t.Fatal("Compress overwrote dst")
				}
				wire += len(p) - 3
				var err error
				out, err = d.Decompress(out[:0], p[3:], 0)
				if err != nil || !bytes.Equal(out, m) {
					t.Fatalf("takeover %v level %d message %d (%d bytes): got %d bytes, %v", takeover, level, i, len(m), len(out), err)
				}
			}
			c.Release()
			d.Release()
			t.Logf("takeover %v level %d: %d messages on %d bytes of wire", takeover, level, len(msgs), wire)
		}
	}
	// Context takeover pays on a stream of the same message.
	same := []byte(strings.Repeat(`{"event":"tick","value":12345} `, 10))
	sizes := map[bool]int{}
	for _, takeover := range []bool{false, true} {
		c := NewCompressor(takeover, 0)
		for i := 0; i < 10; i++ {
			sizes[takeover] = len(c.Compress(nil, same))
		}
		c.Release()
	}
	if sizes[true] >= sizes[false] {
		t.Errorf("takeover: %d bytes for a repeated message, without: %d", sizes[true], sizes[false])
	}
}

// TestCompressInteropWithFlate: our Compressor's output is what RFC 7692
// describes, since a plain compress/flate reader fed payload + 00 00 ff ff
// inflates it (with the previous messages as its window, with takeover);
// and our Decompressor inflates what a plain flate.Writer produces with the
// sync marker removed, with and without takeover.
func TestCompressInteropWithFlate(t *testing.T) {
	msgs := testMessages(80)
	for _, takeover := range []bool{false, true} {
		c := NewCompressor(takeover, 0)
		var history []byte
		for i, m := range msgs {
			p := c.Compress(nil, m)
			var dict []byte
			if takeover {
				dict = history[max(0, len(history)-32768):]
			}
			out, err := referenceInflate(p, dict)
			if err != nil || !bytes.Equal(out, m) {
				t.Fatalf("ours to flate, takeover %v, message %d: %d bytes, %v", takeover, i, len(out), err)
			}
			history = append(history, m...)
		}
		c.Release()
	}

	// The other way: a plain flate.Writer, flushed per message, marker removed.
	for _, takeover := range []bool{false, true} {
		d := NewDecompressor(takeover)
		var buf bytes.Buffer
		fw, _ := flate.NewWriter(&buf, flate.BestCompression)
		for i, m := range msgs {
			if !takeover {
				fw.Reset(&buf)
			}
			buf.Reset()
			fw.Write(m)
			fw.Flush()
			p := buf.Bytes()
			if !bytes.HasSuffix(p, []byte(syncMarker)) {
				t.Fatalf("flate.Writer.Flush did not end with the sync marker")
			}
			out, err := d.Decompress(nil, p[:len(p)-4], 0)
			if err != nil || !bytes.Equal(out, m) {
				t.Fatalf("flate to ours, takeover %v, message %d: %d bytes, %v", takeover, i, len(out), err)
			}
		}
	}
}

// TestDecompressFinalBlock: a sender may end a message with a final block
// (BFINAL set, as zlib's Z_FINISH does) instead of a sync flush, and may
// even send blocks after it; the message inflates to all its data, and with
// takeover the next message still sees the window. A message of many tiny
// final blocks is refused (1007), each costing a window copy.
func TestDecompressFinalBlock(t *testing.T) {
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.BestSpeed)
	fw.Write([]byte("hello hello hello"))
	fw.Close()
	final := append([]byte(nil), buf.Bytes()...)
	d := NewDecompressor(true)
	out, err := d.Decompress(nil, final, 0)
	if err != nil || string(out) != "hello hello hello" {
		t.Fatalf("final block: %q %v", out, err)
	}
	// The next message refers to the first through the window.
	buf.Reset()
	fw, _ = flate.NewWriterDict(&buf, flate.BestSpeed, []byte("hello hello hello"))
	fw.Write([]byte("hello hello hello!"))
	fw.Flush()
	p := buf.Bytes()
	out, err = d.Decompress(nil, p[:len(p)-4], 0)
	if err != nil || string(out) != "hello hello hello!" {
		t.Fatalf("after a final block, with takeover: %q %v", out, err)
	}
	// Blocks after a final block, referring to the data before it.
	buf.Reset()
	fw, _ = flate.NewWriterDict(&buf, flate.BestSpeed, []byte("hello hello hello"))
	fw.Write([]byte(" and hello hello hello"))
	fw.Flush()
	p = append(append([]byte(nil), final...), buf.Bytes()[:buf.Len()-4]...)
	for _, takeover := range []bool{false, true} {
		out, err = NewDecompressor(takeover).Decompress(nil, p, 0)
		if err != nil || string(out) != "hello hello hello and hello hello hello" {
			t.Fatalf("blocks after a final block, takeover %v: %q %v", takeover, out, err)
		}
	}
	// 16 final blocks pass, 17 do not.
	empty := []byte{0x03, 0x00} // a final fixed-Huffman block with no data
	if _, err := NewDecompressor(false).Decompress(nil, bytes.Repeat(empty, maxStreams), 0); err != nil {
		t.Fatalf("%d final blocks: %v", maxStreams, err)
	}
	if _, err := NewDecompressor(false).Decompress(nil, bytes.Repeat(empty, maxStreams+1), 0); codeOf(err) != 1007 {
		t.Fatalf("%d final blocks: %v, want 1007", maxStreams+1, err)
	}
}

// TestDecompressRFCExamples inflates the payloads of RFC 7692 section 7.2.3.
func TestDecompressRFCExamples(t *testing.T) {
	for _, tc := range []struct {
		name     string
		payloads []string // hex, one message each, on one connection
		takeover bool
	}{
		{"7.2.3.1 one block", []string{"f248cdc9c90700"}, false},
		{"7.2.3.2 shared window", []string{"f248cdc9c90700", "f200110000"}, true},
		{"7.2.3.3 stored block", []string{"0005 00faff48656c6c6f00"}, false},
		{"7.2.3.4 BFINAL set", []string{"f348cdc9c9070000", "f348cdc9c9070000"}, false},
		{"7.2.3.4 BFINAL set, then a message using the window", []string{"f348cdc9c9070000", "f200110000"}, true},
		{"7.2.3.5 two blocks", []string{"f2480500 0000ffff cac9c90700"}, false},
	} {
		d := NewDecompressor(tc.takeover)
		for i, p := range tc.payloads {
			out, err := d.Decompress(nil, mustHex(strings.ReplaceAll(p, " ", "")), 0)
			if err != nil || string(out) != "Hello" {
				t.Errorf("%s, message %d: %q %v", tc.name, i, out, err)
			}
		}
	}
	// The 7.2.3.1 message sent in two fragments: the frames' payloads join.
	frags := cat(mustHex("f248cd"), mustHex("c9c90700"))
	if out, err := NewDecompressor(false).Decompress(nil, frags, 0); err != nil || string(out) != "Hello" {
		t.Errorf("fragments: %q %v", out, err)
	}
}

// TestDecompressCorrupt: data that is not deflate, or refers before the
// start of the window, is a 1007 error and leaves dst as it was.
func TestDecompressCorrupt(t *testing.T) {
	for _, p := range []string{
		"ffffffff",     // reserved block type
		"07",           // BTYPE 11
		"0005000000",   // stored block whose LEN and NLEN disagree
		"f200110000",   // a back-reference with no history (7.2.3.2 alone)
		"f248cdc9c907", // a block cut before its end: the tail is read as data
	} {
		d := NewDecompressor(false)
		out, err := d.Decompress([]byte("keep"), mustHex(p), 0)
		if codeOf(err) != 1007 || string(out) != "keep" {
			t.Errorf("%s: %q %v, want 1007 and dst unchanged", p, out, err)
		}
	}
	// An empty payload is an empty message (some senders skip the 0x00).
	if out, err := NewDecompressor(true).Decompress(nil, nil, 10); err != nil || len(out) != 0 {
		t.Errorf("empty payload: %q %v", out, err)
	}
	// The one-byte empty message of RFC 7692 section 7.2.3.6.
	if out, err := NewDecompressor(false).Decompress(nil, []byte{0}, 10); err != nil || len(out) != 0 {
		t.Errorf("0x00: %q %v", out, err)
	}
	if p := NewCompressor(false, 0).Compress(nil, nil); !bytes.Equal(p, []byte{0}) {
		t.Errorf("empty message compressed to % x, want 00", p)
	}
}

// TestDecompressLimit: a message that inflates past the limit stops with
// 1009 without allocating past the limit, even when it inflates 1000 to 1;
// a message of exactly the limit passes.
func TestDecompressLimit(t *testing.T) {
	c := NewCompressor(false, flate.BestCompression)
	bomb := c.Compress(nil, make([]byte, 4<<20)) // 4 MiB of zeros
	if len(bomb) > 8<<10 {
		t.Fatalf("the bomb is %d bytes", len(bomb))
	}
	for _, limit := range []int{1, 1000, 1 << 20} {
		d := NewDecompressor(false)
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		before := ms.TotalAlloc
		out, err := d.Decompress(nil, bomb, limit)
		runtime.ReadMemStats(&ms)
		if codeOf(err) != 1009 || len(out) != 0 {
			t.Fatalf("limit %d: %d bytes, %v; want 1009", limit, len(out), err)
		}
		// On error the grown buffer comes back empty: its capacity is the
		// most the output ever took.
		if cap(out) > limit+1 {
			t.Errorf("limit %d: output buffer grew to %d bytes", limit, cap(out))
		}
		// Growth by doubling allocates about twice the final buffer in all;
		// flate's Huffman tables and the pooled reader add garbage of their own.
		if alloc := ms.TotalAlloc - before; alloc > 3*uint64(limit)+512<<10 {
			t.Errorf("limit %d: %d bytes allocated", limit, alloc)
		}
	}
	msg := bytes.Repeat([]byte("abc"), 1000)
	p := c.Compress(nil, msg)
	if out, err := NewDecompressor(false).Decompress(nil, p, len(msg)); err != nil || !bytes.Equal(out, msg) {
		t.Errorf("exactly at the limit: %d bytes, %v", len(out), err)
	}
	if _, err := NewDecompressor(false).Decompress(nil, p, len(msg)-1); codeOf(err) != 1009 {
		t.Errorf("one byte over: %v, want 1009", err)
	}
	// Into a dst with room to spare beyond the limit, likewise.
	dst := make([]byte, 3, 1<<20)
	if out, err := NewDecompressor(false).Decompress(dst, p, len(msg)-1); codeOf(err) != 1009 || len(out) != 3 {
		t.Errorf("large dst, one byte over: %d %v, want 1009", len(out), err)
	}
}

// TestDecompressWindow: with takeover, a decompressor sized for a smaller
// window keeps only that much history, and a sender that keeps to the
// window inflates fine; one that refers further back is 1007.
func TestDecompressWindow(t *testing.T) {
	first := bytes.Repeat([]byte("0123456789abcdef"), 256) // 4 KiB
	for _, tc := range []struct {
		bits, hist int
	}{{8, 512}, {9, 512}, {10, 1024}, {15, 32768}, {0, 32768}, {16, 32768}} {
		d := NewDecompressorWindow(true, tc.bits)
		big := make([]byte, 40000)
		for i := range big {
			big[i] = byte(i * 7)
		}
		c := NewCompressor(false, 0)
		d.Decompress(nil, c.Compress(nil, big), 0)
		if len(d.hist) != tc.hist || cap(d.hist) != tc.hist {
			t.Errorf("bits %d: history %d (cap %d), want %d", tc.bits, len(d.hist), cap(d.hist), tc.hist)
		}
	}
	// A reference 2 KiB back, into a 1 KiB history, is refused.
	d := NewDecompressorWindow(true, 10)
	c := NewCompressor(true, 0)
	if _, err := d.Decompress(nil, c.Compress(nil, first), 0); err != nil {
		t.Fatal(err)
	}
	second := append([]byte("xyz"), first[:2048]...)
	if _, err := d.Decompress(nil, c.Compress(nil, second), 0); codeOf(err) != 1007 {
		t.Errorf("reference beyond the window: %v, want 1007", err)
	}
}

// heapInUse returns the live heap after two collections, so that pooled
// objects (which survive one) are gone.
func heapInUse() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestCompressorMemory measures what a connection holds between messages
// (the figures in the package doc): nothing beyond the structs without
// context takeover; the flate.Writer with it (about 1.2 MB at BestSpeed);
// 32 KiB of history for a Decompressor with takeover.
func TestCompressorMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("measures memory")
	}
	msg := bytes.Repeat([]byte("some message to compress "), 400)
	const n = 16
	measure := func(takeover bool, level int) (comp, decomp float64) {
		cs := make([]*Compressor, n)
		ds := make([]*Decompressor, n)
		before := heapInUse()
		for i := range cs {
			cs[i] = NewCompressor(takeover, level)
			ds[i] = NewDecompressor(takeover)
			ds[i].Decompress(nil, cs[i].Compress(nil, msg), 0)
		}
		both := heapInUse()
		for i := range cs {
			cs[i].Release()
			cs[i] = nil
		}
		onlyDecomp := heapInUse()
		runtime.KeepAlive(cs)
		runtime.KeepAlive(ds)
		return (float64(both) - float64(onlyDecomp)) / n, (float64(onlyDecomp) - float64(before)) / n
	}
	for _, tc := range []struct {
		takeover               bool
		level                  int
		maxComp, maxDecomp     float64
		minComp, minDecompress float64
	}{
		{false, 0, 1 << 10, 1 << 10, -1 << 10, -1 << 10},
		{true, 0, 1600 << 10, 34 << 10, 600 << 10, 32 << 10},
		{true, flate.DefaultCompression, 1200 << 10, 34 << 10, 400 << 10, 32 << 10},
	} {
		comp, decomp := measure(tc.takeover, tc.level)
		t.Logf("takeover %v, level %d: Compressor holds %.0f bytes, Decompressor %.0f bytes", tc.takeover, tc.level, comp, decomp)
		if comp > tc.maxComp || comp < tc.minComp || decomp > tc.maxDecomp || decomp < tc.minDecompress {
			t.Errorf("takeover %v, level %d: %.0f and %.0f bytes, outside [%.0f, %.0f] and [%.0f, %.0f]",
				tc.takeover, tc.level, comp, decomp, tc.minComp, tc.maxComp, tc.minDecompress, tc.maxDecomp)
		}
	}
}

func BenchmarkCompress(b *testing.B) {
	msg := bytes.Repeat([]byte(`{"event":"tick","value":12345} `), 128) // 4 KiB
	for _, takeover := range []bool{false, true} {
		b.Run(fmt.Sprintf("takeover=%v", takeover), func(b *testing.B) {
			c := NewCompressor(takeover, 0)
			defer c.Release()
			var out []byte
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				out = c.Compress(out[:0], msg)
			}
		})
	}
}

func BenchmarkDecompress(b *testing.B) {
	msg := bytes.Repeat([]byte(`{"event":"tick","value":12345} `), 128) // 4 KiB
	p := NewCompressor(false, 0).Compress(nil, msg)
	d := NewDecompressor(false)
	var out []byte
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if out, err = d.Decompress(out[:0], p, 0); err != nil {
			b.Fatal(err)
		}
	}
}
