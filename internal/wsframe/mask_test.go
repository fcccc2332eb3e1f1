package wsframe

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

func naiveMask(key [4]byte, pos int, b []byte) {
	for i := range b {
		b[i] ^= key[(pos+i)%4]
	}
}

// TestMaskMatchesNaive: Mask equals the byte-by-byte definition of RFC 6455
// section 5.3 at every starting offset, length and alignment of the slice.
func TestMaskMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	buf := make([]byte, 200)
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	for pos := 0; pos < 9; pos++ {
		for align := 0; align < 8; align++ {
			for n := 0; n <= 80; n++ {
				got := append([]byte(nil), buf[align:align+n]...)
				want := append([]byte(nil), got...)
				if end := Mask(key, pos, got); end != pos+n {
					t.Fatalf("pos %d n %d: returned %d", pos, n, end)
				}
				naiveMask(key, pos, want)
				if !bytes.Equal(got, want) {
					t.Fatalf("pos %d align %d n %d: % x, want % x", pos, align, n, got, want)
				}
			}
		}
	}
}

// TestMaskInPieces: masking a payload in pieces of any size, chaining the
// returned offsets, equals masking it whole; and masking twice restores it.
func TestMaskInPieces(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	key := [4]byte{0xaa, 0x01, 0xf0, 0x7e}
	orig := make([]byte, 5000)
	for i := range orig {
		orig[i] = byte(rng.Uint32())
	}
	whole := append([]byte(nil), orig...)
	Mask(key, 0, whole)
	for trial := 0; trial < 200; trial++ {
		got := append([]byte(nil), orig...)
		pos := 0
		for pos < len(got) {
			n := min(rng.IntN(70), len(got)-pos)
			pos = Mask(key, pos, got[pos:pos+n])
		}
		if !bytes.Equal(got, whole) {
			t.Fatalf("trial %d: pieces differ from whole", trial)
		}
		Mask(key, 0, got)
		if !bytes.Equal(got, orig) {
			t.Fatalf("trial %d: masking twice did not restore", trial)
		}
	}
}

func BenchmarkMask(b *testing.B) {
	buf := make([]byte, 4096)
	key := [4]byte{1, 2, 3, 4}
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		Mask(key, 1, buf)
	}
}

func BenchmarkMaskNaive(b *testing.B) {
	buf := make([]byte, 4096)
	key := [4]byte{1, 2, 3, 4}
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		naiveMask(key, 1, buf)
	}
}
