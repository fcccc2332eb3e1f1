package meerkat

import (
	"math/bits"
	"sync"
)

// IOBuf is a connection's receive or send buffer: bytes appended at the end
// and consumed from the front. Its memory comes from a shared pool when data
// arrives and goes back when it empties, so an idle connection holds none.
type IOBuf struct {
	b    []byte  // live bytes are b[r:]
	r    int     // consumed bytes at the front of b
	pool *[]byte // where b came from, nil for memory the buffer does not own
}

// Bytes returns the unconsumed bytes. The slice is valid until the buffer is
// next changed; handlers must copy what they keep past the current event.
func (b *IOBuf) Bytes() []byte { return b.b[b.r:] }

// Len is the number of unconsumed bytes.
func (b *IOBuf) Len() int { return len(b.b) - b.r }

// Consume drops n bytes from the front (all of them if n > Len).
func (b *IOBuf) Consume(n int) {
	if n <= 0 {
		return
	}
	b.r += n
	if b.r >= len(b.b) {
		b.reset()
	}
}

// reset empties the buffer and returns owned memory to the pool.
func (b *IOBuf) reset() {
	if b.pool != nil {
		putBuf(b.pool, b.b)
	}
	*b = IOBuf{}
}

// append adds p at the end.
func (b *IOBuf) append(p []byte) {
	copy(b.spare(len(p)), p)
	b.b = b.b[:len(b.b)+len(p)]
}

// spare returns room for at least n more bytes after the live ones, growing
// or compacting the buffer as needed; commit makes written bytes live.
func (b *IOBuf) spare(n int) []byte {
	if cap(b.b)-len(b.b) >= n {
		return b.b[len(b.b):cap(b.b)]
	}
	live := b.Len()
	if b.pool != nil && b.r > 0 && cap(b.b)-live >= n && b.r >= live {
		// Slide down instead of growing: cheap when few bytes remain.
		copy(b.b, b.b[b.r:])
		b.b, b.r = b.b[:live], 0
		return b.b[live:cap(b.b)]
	}
	want := live + n
	if want > 1<<maxClassShift {
		want = max(want, 2*cap(b.b)) // past the pools, grow geometrically
	}
	p, nb := getBuf(want)
	nb = append(nb[:0], b.b[b.r:]...)
	old, oldPool := b.b, b.pool
	b.b, b.r, b.pool = nb, 0, p
	if oldPool != nil {
		putBuf(oldPool, old)
	}
	return b.b[live:cap(b.b)]
}

// commit makes n bytes written into spare() live.
func (b *IOBuf) commit(n int) { b.b = b.b[:len(b.b)+n] }

// lend makes p the buffer's content without copying; own must be called
// before the event in which p was lent ends.
func (b *IOBuf) lend(p []byte) { *b = IOBuf{b: p[:len(p):len(p)]} }

// own copies whatever is left of lent memory into pooled memory.
func (b *IOBuf) own() {
	if b.pool != nil {
		return
	}
	if b.Len() == 0 {
		*b = IOBuf{}
		return
	}
	live := b.b[b.r:]
	*b = IOBuf{}
	b.append(live)
}

// Buffers are pooled in power-of-two classes from 512 bytes to 4 MiB; larger
// ones are left to the garbage collector.
const (
	minClassShift = 9
	maxClassShift = 22
)

var pools [maxClassShift - minClassShift + 1]sync.Pool

func class(n int) int {
	if n <= 1<<minClassShift {
		return 0
	}
	return bits.Len(uint(n-1)) - minClassShift
}

// getBuf returns an empty buffer with room for at least n bytes and the
// pool handle it goes back to.
func getBuf(n int) (*[]byte, []byte) {
	c := class(n)
	if c >= len(pools) {
		b := make([]byte, 0, n)
		return &b, b
	}
	if v := pools[c].Get(); v != nil {
		p := v.(*[]byte)
		return p, (*p)[:0]
	}
	b := make([]byte, 0, 1<<(c+minClassShift))
	return &b, b
}

func putBuf(p *[]byte, b []byte) {
	c := class(cap(b))
	if c >= len(pools) || cap(b) != 1<<(c+minClassShift) {
		return
	}
	*p = b[:0]
	pools[c].Put(p)
}
