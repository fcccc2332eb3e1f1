package meerkat

import (
	"bytes"
	"testing"
)

// TestIOBufAppendConsume: appended bytes come out in order; Consume drops
// from the front (all of it past Len, nothing for n <= 0); an emptied
// buffer holds no memory.
func TestIOBufAppendConsume(t *testing.T) {
	var b IOBuf
	if b.Len() != 0 || len(b.Bytes()) != 0 {
		t.Fatal("zero IOBuf is not empty")
	}
	b.append([]byte("hello, "))
	b.append([]byte("world"))
	if got := string(b.Bytes()); got != "hello, world" || b.Len() != 12 {
		t.Fatalf("Bytes %q Len %d", got, b.Len())
	}
	if b.pool == nil || cap(b.b) != 512 {
		t.Fatalf("small buffer: pool %v cap %d, want pooled memory of the 512-byte class", b.pool, cap(b.b))
	}
	b.Consume(0)
	b.Consume(-3)
	if b.Len() != 12 {
		t.Fatalf("Consume(0) and Consume(-3) changed Len to %d", b.Len())
	}
	b.Consume(7)
	if got := string(b.Bytes()); got != "world" {
		t.Fatalf("after Consume(7): %q", got)
	}
	b.append([]byte("!"))
	if got := string(b.Bytes()); got != "world!" {
		t.Fatalf("append after Consume: %q", got)
	}
	b.Consume(100)
	if b.Len() != 0 || b.b != nil || b.pool != nil || b.r != 0 {
		t.Fatalf("emptied buffer still holds memory: %+v", b)
	}
	b.append(nil)
	b.Consume(1)
	if b.b != nil || b.pool != nil {
		t.Fatalf("empty append left memory: %+v", b)
	}
}

// TestIOBufGrowsAcrossClasses: a buffer grows into larger pool classes
// keeping its content, and past the largest class uses unpooled memory.
func TestIOBufGrowsAcrossClasses(t *testing.T) {
	var b IOBuf
	var want []byte
	for i := range 300 {
		chunk := bytes.Repeat([]byte{byte(i)}, 97)
		b.append(chunk)
		want = append(want, chunk...)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Fatal("content changed while growing")
	}
	if c := cap(b.b); c != 32<<10 {
		t.Fatalf("29100 bytes in a buffer of cap %d, want the 32 KiB class", c)
	}
	b.reset()
	big := make([]byte, 5<<20)
	big[len(big)-1] = 1
	b.append(big)
	if b.Len() != len(big) || !bytes.Equal(b.Bytes(), big) {
		t.Fatal("5 MiB append lost data")
	}
	b.reset()
	if b.b != nil {
		t.Fatal("reset kept memory")
	}
}

// TestIOBufSpareCommit: spare gives room for at least n bytes after the
// live ones; only committed bytes become live; when few live bytes remain
// behind a consumed front, spare slides them down instead of growing.
func TestIOBufSpareCommit(t *testing.T) {
	var b IOBuf
	sp := b.spare(10)
	if len(sp) < 10 {
		t.Fatalf("spare(10) gave %d bytes", len(sp))
	}
	copy(sp, "0123456789")
	if b.Len() != 0 {
		t.Fatal("spare made bytes live before commit")
	}
	b.commit(4)
	if got := string(b.Bytes()); got != "0123" {
		t.Fatalf("after commit(4): %q", got)
	}

	// Slide: 400 bytes in a 512-byte buffer, 300 consumed, room for 300 wanted.
	b.reset()
	b.append(bytes.Repeat([]byte("a"), 300))
	b.append(bytes.Repeat([]byte("b"), 100))
	first := &b.b[0]
	b.Consume(300)
	sp = b.spare(300)
	if len(sp) < 300 {
		t.Fatalf("spare(300) gave %d bytes", len(sp))
	}
	if &b.b[0] != first || cap(b.b) != 512 || b.r != 0 {
		t.Fatalf("spare grew (cap %d, r %d) instead of sliding the 100 live bytes down", cap(b.b), b.r)
	}
	if !bytes.Equal(b.Bytes(), bytes.Repeat([]byte("b"), 100)) {
		t.Fatal("sliding changed the live bytes")
	}
	copy(sp, "tail")
	b.commit(4)
	if got := string(b.Bytes()[100:]); got != "tail" {
		t.Fatalf("committed after slide: %q", got)
	}
}

// TestIOBufLendOwn: lend shows borrowed memory without copying and never
// treats it as its own (no pool, no writes into it); own copies what is
// left into pooled memory so the lender can reuse its buffer.
func TestIOBufLendOwn(t *testing.T) {
	scratch := []byte("borrowed bytes, plus room after them")
	lent := scratch[:14]
	var b IOBuf
	b.lend(lent)
	if &b.Bytes()[0] != &scratch[0] || b.Len() != 14 || b.pool != nil {
		t.Fatalf("lend copied or claimed the memory: pool %v", b.pool)
	}
	// Appending to lent memory must not write into the lender's buffer.
	b.append([]byte("!"))
	if string(scratch) != "borrowed bytes, plus room after them" {
		t.Fatalf("append wrote into lent memory: %q", scratch)
	}
	if got := string(b.Bytes()); got != "borrowed bytes!" || b.pool == nil {
		t.Fatalf("append to lent: %q pool %v", got, b.pool)
	}

	b.reset()
	b.lend(lent)
	b.Consume(9)
	b.own()
	copy(scratch, "XXXXXXXXXXXXXXXXXXXXXXXX") // the lender reuses its buffer
	if got := string(b.Bytes()); got != "bytes" || b.pool == nil {
		t.Fatalf("after own: %q pool %v, want a pooled copy of %q", got, b.pool, "bytes")
	}
	own := &b.b[0]
	b.own() // owned already: nothing to do
	if &b.b[0] != own {
		t.Fatal("own copied a buffer it already owned")
	}

	b.reset()
	b.lend(lent)
	b.Consume(14)
	b.own()
	if b.b != nil || b.pool != nil {
		t.Fatalf("own of a consumed loan kept memory: %+v", b)
	}
	b.lend(lent)
	b.own()
	b.lend([]byte{})
	b.own()
	if b.b != nil || b.pool != nil {
		t.Fatalf("own of an empty loan kept memory: %+v", b)
	}
}

// TestIOBufPoolClasses: sizes map to power-of-two classes from 512 bytes
// to 4 MiB; getBuf gives an empty buffer of its class's exact capacity,
// larger requests get unpooled memory, and putBuf ignores buffers of a
// foreign size.
func TestIOBufPoolClasses(t *testing.T) {
	for _, tc := range []struct{ n, class int }{
		{0, 0}, {1, 0}, {512, 0}, {513, 1}, {1024, 1}, {1025, 2},
		{64 << 10, 7}, {64<<10 + 1, 8}, {4 << 20, 13}, {4<<20 + 1, 14},
	} {
		if got := class(tc.n); got != tc.class {
			t.Errorf("class(%d) = %d, want %d", tc.n, got, tc.class)
		}
	}
	if len(pools) != 14 {
		t.Fatalf("%d pool classes, want 14 (512 B .. 4 MiB)", len(pools))
	}
	for _, n := range []int{1, 500, 512, 513, 3000, 1 << 20, 4 << 20} {
		p, buf := getBuf(n)
		want := 1 << (class(n) + minClassShift)
		if p == nil || len(buf) != 0 || cap(buf) != want {
			t.Errorf("getBuf(%d): handle %v len %d cap %d, want an empty buffer of cap %d", n, p != nil, len(buf), cap(buf), want)
		}
		putBuf(p, buf)
	}
	p, buf := getBuf(5 << 20)
	if p == nil || len(buf) != 0 || cap(buf) < 5<<20 {
		t.Fatalf("getBuf(5 MiB): len %d cap %d", len(buf), cap(buf))
	}
	putBuf(p, buf)              // too big for a class: dropped
	odd := make([]byte, 0, 700) // not a class size: dropped
	putBuf(&odd, odd)
	for range 20 {
		if _, b := getBuf(700); cap(b) != 1024 {
			t.Fatalf("getBuf(700) returned cap %d: a foreign buffer entered the pool", cap(b))
		}
	}
}
