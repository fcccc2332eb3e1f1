package wsframe

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// adversarialUTF8 are inputs at the edges of UTF-8: every boundary of every
// sequence length, overlongs, surrogates, code points over U+10FFFF, stray
// and missing continuation bytes, bytes that never appear.
var adversarialUTF8 = []string{
	"", "a", "hello", "\x7f", "\u0080", "\u07ff", "\u0800", "\uffff", "\U00010000", "\U0010ffff",
	"\ud7ff", "\ue000", "\ufffd", "κόσμε", "€uro", "日本語テキスト", "😀😃😄",
	"\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xe0\x9f\xbf", "\xf0\x80\x80\x80", "\xf0\x8f\xbf\xbf",
	"\xed\xa0\x80", "\xed\xbf\xbf", "\xed\x9f\xbf",
	"\xf4\x90\x80\x80", "\xf4\x8f\xbf\xbf", "\xf5\x80\x80\x80", "\xf8\x88\x80\x80\x80", "\xfc\x84\x80\x80\x80\x80",
	"\xfe", "\xff", "\x80", "\xbf", "\x80\x80", "a\x80b",
	"\xc2", "\xe2\x82", "\xf0\x9f\x98", "abc\xe2", "\xc2a", "\xe2\x82a", "\xf0\x9f\x98a",
	"\xc2\xc2\xa9", "\xe2\x28\xa1", "\xe2\x82\x28", "\xf0\x28\x8c\xbc", "\xf0\x90\x28\xbc", "\xf0\x28\x8c\x28",
	"ascii then bad 12345678\xff", "12345678\xe2\x82\xac12345678", strings.Repeat("x", 64) + "\xed\xa0\x80",
	"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64",
}

// writeSplit feeds in to a fresh validator in the pieces cut at the given
// offsets and returns Complete.
func writeSplit(in []byte, cuts ...int) bool {
	var v UTF8
	prev := 0
	for _, c := range cuts {
		v.Write(in[prev:c])
		prev = c
	}
	v.Write(in[prev:])
	return v.Complete()
}

// TestUTF8SplitAnywhere: the validator agrees with utf8.Valid on the whole,
// for the input cut in two and in three at every pair of offsets, so that
// every sequence is split at every one of its byte boundaries.
func TestUTF8SplitAnywhere(t *testing.T) {
	for _, s := range adversarialUTF8 {
		in := []byte(s)
		want := utf8.Valid(in)
		if got := writeSplit(in); got != want {
			t.Errorf("%q whole: %v, want %v", s, got, want)
		}
		for i := 0; i <= len(in); i++ {
			if got := writeSplit(in, i); got != want {
				t.Errorf("%q cut at %d: %v, want %v", s, i, got, want)
			}
			for j := i; j <= len(in); j++ {
				if got := writeSplit(in, i, j); got != want {
					t.Errorf("%q cut at %d and %d: %v, want %v", s, i, j, got, want)
				}
			}
		}
	}
}

// TestUTF8ByteByByte: fed one byte at a time, every prefix of every
// adversarial input pairs with every other, the validator agrees with
// utf8.Valid; and a sequence split across Writes that is then broken fails.
func TestUTF8ByteByByte(t *testing.T) {
	for _, a := range adversarialUTF8 {
		for _, b := range adversarialUTF8 {
			in := []byte(a + b)
			var v UTF8
			for i := range in {
				v.Write(in[i : i+1])
			}
			if v.Complete() != utf8.Valid(in) {
				t.Errorf("%q byte by byte: %v, want %v", in, v.Complete(), utf8.Valid(in))
			}
		}
	}
}

// TestUTF8Random: random inputs mixing ASCII runs, valid runes of every
// length and random bytes, cut at random, agree with utf8.Valid.
func TestUTF8Random(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	runes := []rune{'a', 'é', 'ß', '€', '日', 0xffff, 0x10000, '😀', 0x10ffff}
	valid := 0
	for trial := 0; trial < 20000; trial++ {
		var in []byte
		for n := rng.IntN(40); n > 0; n-- {
			switch rng.IntN(10) {
			case 0:
				in = append(in, byte(rng.Uint32()))
			case 1, 2:
				in = append(in, strings.Repeat("x", rng.IntN(20))...)
			default:
				in = utf8.AppendRune(in, runes[rng.IntN(len(runes))])
			}
		}
		want := utf8.Valid(in)
		if want {
			valid++
		}
		var cuts []int
		for c := 0; c < len(in); c += 1 + rng.IntN(9) {
			cuts = append(cuts, c)
		}
		if got := writeSplit(in, cuts...); got != want {
			t.Fatalf("%q cut at %v: %v, want %v", in, cuts, got, want)
		}
	}
	if valid < 2000 || valid > 18000 {
		t.Fatalf("%d of 20000 random inputs valid: the generator is off", valid)
	}
}

// validPrefix reports whether some text starting with b is valid UTF-8.
// Every range a byte must fall in starts or ends at one of these bytes, so
// trying them as continuations finds a completion if there is one.
func validPrefix(b []byte) bool {
	if utf8.Valid(b) {
		return true
	}
	var try func(b []byte, more int) bool
	try = func(b []byte, more int) bool {
		if utf8.Valid(b) {
			return true
		}
		if more == 0 {
			return false
		}
		for _, c := range []byte{0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf} {
			if try(append(b[:len(b):len(b)], c), more-1) {
				return true
			}
		}
		return false
	}
	return try(b, 3)
}

// TestUTF8FailsFast: fed byte by byte, the validator fails at the first
// byte no valid text can continue with (RFC 6455 8.1), not at the end.
func TestUTF8FailsFast(t *testing.T) {
	for _, a := range adversarialUTF8 {
		for _, b := range []string{"", "x", "\xe2", "\x80\x80\x80"} {
			in := []byte(a + b)
			var v UTF8
			failed := -1
			for i := range in {
				if !v.Write(in[i:i+1]) && failed < 0 {
					failed = i
				}
			}
			want := -1
			for i := range in {
				if !validPrefix(in[:i+1]) {
					want = i
					break
				}
			}
			if failed != want {
				t.Errorf("%q: failed at byte %d, want %d", in, failed, want)
			}
			if failed >= 0 && (v.Write([]byte("ok")) || v.Complete()) {
				t.Errorf("%q: recovered after failing", in)
			}
		}
	}
}

// TestUTF8Reset: Reset clears both a failure and an unfinished sequence.
func TestUTF8Reset(t *testing.T) {
	var v UTF8
	v.Write([]byte{0xff})
	v.Reset()
	if !v.Write([]byte("ok")) || !v.Complete() {
		t.Error("failure survived Reset")
	}
	v.Write([]byte{0xe2})
	if v.Complete() {
		t.Error("unfinished sequence is complete")
	}
	v.Reset()
	if !v.Write([]byte("a")) || !v.Complete() {
		t.Error("unfinished sequence survived Reset")
	}
}

func benchUTF8(b *testing.B, in []byte) {
	if !utf8.Valid(in) {
		b.Fatal("invalid input")
	}
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		var v UTF8
		if !v.Write(in) || !v.Complete() {
			b.Fatal("rejected")
		}
	}
}

func BenchmarkUTF8(b *testing.B) {
	ascii := []byte(strings.Repeat("The quick brown fox jumps over the lazy dog. ", 100)[:4096])
	mixed := []byte(strings.Repeat("Hello, κόσμε! 日本語 😀 ok. ", 200))
	for !utf8.Valid(mixed[:4096]) {
		mixed = mixed[1:]
	}
	mixed = mixed[:4096]
	b.Run("ascii", func(b *testing.B) { benchUTF8(b, ascii) })
	b.Run("mixed", func(b *testing.B) { benchUTF8(b, mixed) })
	b.Run("stdlib-ascii", func(b *testing.B) {
		b.SetBytes(int64(len(ascii)))
		for b.Loop() {
			utf8.Valid(ascii)
		}
	})
	b.Run("stdlib-mixed", func(b *testing.B) {
		b.SetBytes(int64(len(mixed)))
		for b.Loop() {
			utf8.Valid(mixed)
		}
	})
}
