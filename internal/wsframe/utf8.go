package wsframe

import "encoding/binary"

// UTF8 validates UTF-8 incrementally: the text may come in pieces split
// anywhere, even inside a sequence, as a fragmented message does. It
// accepts exactly what utf8.Valid accepts of the whole (no overlong forms,
// no surrogates, nothing above U+10FFFF) and fails at the first byte that no
// valid text can continue with, so an invalid message is refused before it
// ends (RFC 6455 section 8.1 asks for "fail fast"). The zero value is ready.
type UTF8 struct {
	need   uint8 // continuation bytes the current sequence still needs
	lo, hi uint8 // the range of the next continuation byte
	bad    bool
}

// leadByte describes the sequence a leading byte starts: its length and the
// range of its second byte, which is where overlongs (E0, F0), surrogates
// (ED) and code points over U+10FFFF (F4) are excluded.
type leadByte struct {
	size   uint8 // 0: the byte cannot start a sequence
	lo, hi uint8
}

var leadBytes = func() (t [256]leadByte) {
	for c := 0xC2; c <= 0xF4; c++ {
		l := leadByte{lo: 0x80, hi: 0xBF}
		switch {
		case c <= 0xDF:
			l.size = 2
		case c <= 0xEF:
			l.size = 3
		default:
			l.size = 4
		}
		switch c {
		case 0xE0:
			l.lo = 0xA0
		case 0xED:
			l.hi = 0x9F
		case 0xF0:
			l.lo = 0x90
		case 0xF4:
			l.hi = 0x8F
		}
		t[c] = l
	}
	return t
}()

const asciiMask = 0x8080808080808080

// Write validates the next piece of text. It returns false once the text so
// far cannot be the start of valid UTF-8, and from then on until Reset.
func (v *UTF8) Write(p []byte) bool {
	if v.bad {
		return false
	}
	p = p[:len(p):len(p)]
	// The end of a sequence begun by an earlier piece.
	for v.need > 0 {
		if len(p) == 0 {
			return true
		}
		if c := p[0]; c < v.lo || c > v.hi {
			v.bad = true
			return false
		}
		v.need--
		v.lo, v.hi = 0x80, 0xBF
		p = p[1:]
	}
	for len(p) > 0 {
		c := p[0]
		if c < 0x80 {
			// ASCII comes in runs: when the next 8 bytes are ASCII too,
			// skip 32, then 8 bytes at a time.
			p = p[1:]
			if len(p) >= 8 && word(p)&asciiMask == 0 {
				p = p[8:]
				for len(p) >= 32 && (word(p)|word(p[8:])|word(p[16:])|word(p[24:]))&asciiMask == 0 {
					p = p[32:]
				}
				for len(p) >= 8 && word(p)&asciiMask == 0 {
					p = p[8:]
				}
			}
			continue
		}
		l := leadBytes[c]
		size := int(l.size)
		if size == 0 {
			v.bad = true
			return false
		}
		// When the whole sequence is here, check it at once.
		switch {
		case size == 2 && len(p) >= 2:
			if p[1] < l.lo || p[1] > l.hi {
				v.bad = true
				return false
			}
			p = p[2:]
			continue
		case size == 3 && len(p) >= 3:
			if p[1] < l.lo || p[1] > l.hi || p[2]&0xC0 != 0x80 {
				v.bad = true
				return false
			}
			p = p[3:]
			continue
		case size == 4 && len(p) >= 4:
			if p[1] < l.lo || p[1] > l.hi || p[2]&0xC0 != 0x80 || p[3]&0xC0 != 0x80 {
				v.bad = true
				return false
			}
			p = p[4:]
			continue
		}
		// The sequence goes on in the next piece: check what is here and
		// remember what the rest must be.
		v.need = l.size - 1
		v.lo, v.hi = l.lo, l.hi
		for _, c := range p[1:] {
			if c < v.lo || c > v.hi {
				v.bad = true
				return false
			}
			v.need--
			v.lo, v.hi = 0x80, 0xBF
		}
		return true
	}
	return true
}

func word(p []byte) uint64 { return binary.LittleEndian.Uint64(p) }

// Complete reports whether the text so far is valid UTF-8 with no sequence
// left unfinished: call it after the last piece.
func (v *UTF8) Complete() bool { return !v.bad && v.need == 0 }

// Reset makes v ready for a new text.
func (v *UTF8) Reset() { *v = UTF8{} }
