package wsframe

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strconv"
	"testing"
)

// codeOf returns the close code of an *Error, 0 for nil, -1 for any other
// error.
func codeOf(err error) int {
	if err == nil {
		return 0
	}
	var e *Error
	if errors.As(err, &e) {
		return int(e.Code)
	}
	return -1
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// fourGiB is 1<<32 where int has 64 bits (a variable, so that the package
// compiles where it has 32).
var fourGiB = uint64(1) << 32

// testLengths are the payload lengths at the edges of the three encodings.
func testLengths() []int {
	l := []int{0, 1, 125, 126, 65535, 65536}
	if strconv.IntSize == 64 {
		l = append(l, int(fourGiB))
	}
	return l
}

// TestParseHeader: headers decode to their fields, and every violation RFC
// 6455 section 5 lets a header alone show is refused with 1002.
func TestParseHeader(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string // hex
		want Header
		code int
	}{
		{"text fin unmasked", "8105", Header{Fin: true, Op: OpText, Length: 5, Size: 2}, 0},
		{"binary not fin", "0200", Header{Op: OpBinary, Size: 2}, 0},
		{"continuation", "0003", Header{Op: OpContinuation, Length: 3, Size: 2}, 0},
		{"masked ping", "8985a1b2c3d4", Header{Fin: true, Op: OpPing, Masked: true, Key: [4]byte{0xa1, 0xb2, 0xc3, 0xd4}, Length: 5, Size: 6}, 0},
		{"pong", "8a00", Header{Fin: true, Op: OpPong, Size: 2}, 0},
		{"close 125", "887d", Header{Fin: true, Op: OpClose, Length: 125, Size: 2}, 0},
		{"rsv bits kept", "f100", Header{Fin: true, RSV: FlagRSV1 | FlagRSV2 | FlagRSV3, Op: OpText, Size: 2}, 0},
		{"16-bit length", "827e007e", Header{Fin: true, Op: OpBinary, Length: 126, Size: 4}, 0},
		{"16-bit max", "827effff", Header{Fin: true, Op: OpBinary, Length: 65535, Size: 4}, 0},
		{"64-bit length", "827f0000000000010000", Header{Fin: true, Op: OpBinary, Length: 65536, Size: 10}, 0},
		{"64-bit largest", "827f7fffffffffffffff", Header{Fin: true, Op: OpBinary, Length: 1<<63 - 1, Size: 10}, 0},
		{"64-bit masked", "82ff000000010000000001020304", Header{Fin: true, Op: OpBinary, Masked: true, Key: [4]byte{1, 2, 3, 4}, Length: 1 << 32, Size: 14}, 0},

		{"opcode 3", "8300", Header{}, 1002},
		{"opcode 4", "8400", Header{}, 1002},
		{"opcode 5", "8500", Header{}, 1002},
		{"opcode 6", "8600", Header{}, 1002},
		{"opcode 7", "8700", Header{}, 1002},
		{"opcode B", "8b00", Header{}, 1002},
		{"opcode C", "8c00", Header{}, 1002},
		{"opcode D", "8d00", Header{}, 1002},
		{"opcode E", "8e00", Header{}, 1002},
		{"opcode F", "8f00", Header{}, 1002},
		{"ping 126 bytes", "897e007e", Header{}, 1002},
		{"close 64-bit length", "887f0000000000000010", Header{}, 1002},
		{"fragmented ping", "0900", Header{}, 1002},
		{"fragmented close", "0800", Header{}, 1002},
		{"fragmented pong", "0a00", Header{}, 1002},
		{"16-bit form for 125", "827e007d", Header{}, 1002},
		{"16-bit form for 0", "827e0000", Header{}, 1002},
		{"64-bit form for 65535", "827f000000000000ffff", Header{}, 1002},
		{"64-bit form for 0", "827f0000000000000000", Header{}, 1002},
		{"64-bit top bit", "827f8000000000000000", Header{}, 1002},
		{"64-bit all ones", "827fffffffffffffffff", Header{}, 1002},
	} {
		h, ok, err := ParseHeader(mustHex(tc.in))
		if code := codeOf(err); code != tc.code {
			t.Errorf("%s: error %v, want code %d", tc.name, err, tc.code)
			continue
		}
		if tc.code != 0 {
			if ok {
				t.Errorf("%s: ok with an error", tc.name)
			}
			continue
		}
		if !ok || h != tc.want {
			t.Errorf("%s: got %+v ok=%v, want %+v", tc.name, h, ok, tc.want)
		}
	}
}

// TestParseHeaderNeedsMore: every strict prefix of a valid header asks for
// more bytes (ok=false, nil error), and bytes after the header are not read.
func TestParseHeaderNeedsMore(t *testing.T) {
	key := [4]byte{9, 8, 7, 6}
	for _, n := range testLengths() {
		for _, k := range []*[4]byte{nil, &key} {
			full := AppendHeader(nil, true, 0, OpBinary, n, k)
			for i := 0; i < len(full); i++ {
				h, ok, err := ParseHeader(full[:i])
				if ok || err != nil {
					t.Fatalf("length %d, prefix %d of %d: %+v ok=%v err=%v", n, i, len(full), h, ok, err)
				}
			}
			h, ok, err := ParseHeader(append(full, 0xff, 0xff, 0xff))
			if !ok || err != nil || h.Size != len(full) || h.Length != uint64(n) {
				t.Fatalf("length %d with trailing bytes: %+v ok=%v err=%v", n, h, ok, err)
			}
		}
	}
}

// TestParseHeaderFailsEarly: a reserved opcode or a bad control frame is
// refused from the first two bytes, before the rest of the header arrives.
func TestParseHeaderFailsEarly(t *testing.T) {
	for _, in := range []string{"83ff", "8b7f", "89fe", "09ff", "887e"} {
		if _, _, err := ParseHeader(mustHex(in)); codeOf(err) != 1002 {
			t.Errorf("%s: err %v, want 1002 from two bytes", in, err)
		}
	}
}

// TestHeaderRoundTrip: AppendHeader writes each length in its minimal form
// and ParseHeader reads back every field, masked or not.
func TestHeaderRoundTrip(t *testing.T) {
	key := [4]byte{0xde, 0xad, 0xbe, 0xef}
	for _, n := range testLengths() {
		size := 10
		if n <= 125 {
			size = 2
		} else if n <= 65535 {
			size = 4
		}
		for _, k := range []*[4]byte{nil, &key} {
			for _, op := range []byte{OpContinuation, OpText, OpBinary} {
				for _, fin := range []bool{false, true} {
					for _, rsv := range []byte{0, FlagRSV1, FlagRSV1 | FlagRSV2 | FlagRSV3} {
						b := AppendHeader([]byte("x"), fin, rsv, op, n, k)
						if b[0] != 'x' {
							t.Fatal("AppendHeader overwrote dst")
						}
						h, ok, err := ParseHeader(b[1:])
						want := Header{Fin: fin, RSV: rsv, Op: op, Masked: k != nil, Length: uint64(n), Size: size}
						if k != nil {
							want.Key = key
							want.Size += 4
						}
						if !ok || err != nil || h != want {
							t.Fatalf("n=%d: got %+v ok=%v err=%v, want %+v", n, h, ok, err, want)
						}
						if len(b)-1 != want.Size {
							t.Fatalf("n=%d: %d header bytes, want %d", n, len(b)-1, want.Size)
						}
					}
				}
			}
		}
	}
	// Control frames with the payloads they may have.
	for _, op := range []byte{OpClose, OpPing, OpPong} {
		for _, n := range []int{0, 1, 125} {
			b := AppendHeader(nil, true, 0, op, n, &key)
			h, ok, err := ParseHeader(b)
			if !ok || err != nil || h.Op != op || h.Length != uint64(n) || !h.Fin {
				t.Fatalf("op %x n=%d: %+v ok=%v err=%v", op, n, h, ok, err)
			}
		}
	}
}

// TestAppendHeaderBytes pins the exact encoding against RFC 6455 section
// 5.7's examples.
func TestAppendHeaderBytes(t *testing.T) {
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	hello := []byte("Hello")
	// A single-frame masked text message: 0x81 0x85 0x37 0xfa 0x21 0x3d 0x7f 0x9f 0x4d 0x51 0x58.
	b := AppendHeader(nil, true, 0, OpText, len(hello), &key)
	payload := append([]byte(nil), hello...)
	Mask(key, 0, payload)
	b = append(b, payload...)
	if want := mustHex("818537fa213d7f9f4d5158"); !bytes.Equal(b, want) {
		t.Errorf("masked Hello: % x, want % x", b, want)
	}
	// 256 bytes binary in a single unmasked frame: 0x82 0x7E 0x0100.
	if b, want := AppendHeader(nil, true, 0, OpBinary, 256, nil), mustHex("827e0100"); !bytes.Equal(b, want) {
		t.Errorf("256 bytes: % x, want % x", b, want)
	}
	// 64 KiB: 0x82 0x7F 0x0000000000010000.
	if b, want := AppendHeader(nil, true, 0, OpBinary, 65536, nil), mustHex("827f0000000000010000"); !bytes.Equal(b, want) {
		t.Errorf("64 KiB: % x, want % x", b, want)
	}
	// Fragmented unmasked text: 0x01 0x03 "Hel", 0x80 0x02 "lo".
	if b, want := AppendHeader(nil, false, 0, OpText, 3, nil), mustHex("0103"); !bytes.Equal(b, want) {
		t.Errorf("first fragment: % x, want % x", b, want)
	}
	if b, want := AppendHeader(nil, true, 0, OpContinuation, 2, nil), mustHex("8002"); !bytes.Equal(b, want) {
		t.Errorf("last fragment: % x, want % x", b, want)
	}
}

func BenchmarkParseHeader(b *testing.B) {
	key := [4]byte{1, 2, 3, 4}
	frames := [][]byte{
		AppendHeader(nil, true, 0, OpText, 32, &key),
		AppendHeader(nil, true, 0, OpBinary, 4096, &key),
		AppendHeader(nil, true, 0, OpBinary, 1<<20, nil),
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, ok, err := ParseHeader(frames[i%len(frames)]); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
