package meerkat

import (
	"errors"
	"fmt"
	"os"

	"github.com/meerkat-net/meerkat/internal/driver"
)

// fileSegment is part of a file queued on a connection, sent by the kernel
// (sendfile) after the first at bytes of the send buffer and before the
// rest: file serving's large bodies never pass through user space.
type fileSegment struct {
	f   *os.File
	off int64
	n   int64
	at  int // bytes of the send buffer that go before the segment
}

// queueFile queues n bytes of f from off to go out after what is queued
// now. It reports false when the connection cannot send files this way
// (TLS, the portable driver, a datagram socket, a segment already queued);
// the caller then sends the bytes itself. f must stay open until
// fileQueued reports false or the connection closes.
func (c *Conn) queueFile(f *os.File, off, n int64) bool {
	if c.file != nil || c.tls != nil || c.flags&(fUDP|fListening|fClosing|fClosed|fWriteShut) != 0 || n <= 0 {
		return false
	}
	if _, ok := c.sock.(driver.FileSender); !ok {
		return false
	}
	c.file = &fileSegment{f: f, off: off, n: n, at: c.send.Len()}
	c.queued += n
	c.m.markActive(c)
	return true
}

// fileQueued reports whether a queued file segment is still being sent.
func (c *Conn) fileQueued() bool { return c.file != nil }

var errFileShrank = errors.New("file ended before the bytes queued from it")

// writeFile sends from the queued segment; it reports whether the socket
// took bytes and may take more.
func (m *Manager) writeFile(c *Conn) bool {
	seg := c.file
	n, err := c.sock.(driver.FileSender).SendFile(seg.f, seg.off, int(min(seg.n, 1<<30)))
	if n > 0 {
		seg.off += int64(n)
		seg.n -= int64(n)
		c.lastIO = m.now
		if seg.n == 0 {
			c.file = nil
		}
		m.dispatch(c, EvWrite, n)
	}
	switch {
	case err == driver.ErrWouldBlock:
		c.flags &^= fWritable
		return false
	case err != nil:
		m.writeFailed(c, err)
		return false
	case n == 0:
		m.fail(c, fmt.Errorf("sendfile %s: %w", seg.f.Name(), errFileShrank))
		return false
	}
	return true
}
