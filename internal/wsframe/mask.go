package wsframe

import "encoding/binary"

// Mask XORs b in place with key (RFC 6455 section 5.3), b being the payload
// bytes from offset pos on, and returns pos+len(b): a payload can be masked
// or unmasked in pieces by passing each call's result to the next. It works
// 32 and 8 bytes at a time.
func Mask(key [4]byte, pos int, b []byte) int {
	end := pos + len(b)
	if len(b) == 0 {
		return end
	}
	// The key as it lines up with b[0], repeated over a 64-bit word. 8 is a
	// multiple of 4, so the word lines up again at every 8th byte.
	var k [4]byte
	for j := range k {
		k[j] = key[(pos+j)&3]
	}
	k32 := uint64(binary.LittleEndian.Uint32(k[:]))
	kw := k32 | k32<<32
	i := 0
	for ; i+32 <= len(b); i += 32 {
		s := b[i : i+32 : i+32]
		binary.LittleEndian.PutUint64(s[0:], binary.LittleEndian.Uint64(s[0:])^kw)
		binary.LittleEndian.PutUint64(s[8:], binary.LittleEndian.Uint64(s[8:])^kw)
		binary.LittleEndian.PutUint64(s[16:], binary.LittleEndian.Uint64(s[16:])^kw)
		binary.LittleEndian.PutUint64(s[24:], binary.LittleEndian.Uint64(s[24:])^kw)
	}
	for ; i+8 <= len(b); i += 8 {
		s := b[i : i+8 : i+8]
		binary.LittleEndian.PutUint64(s, binary.LittleEndian.Uint64(s)^kw)
	}
	for ; i < len(b); i++ {
		b[i] ^= k[i&3]
	}
	return end
}
