package meerkat

import (
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/meerkat-net/meerkat/internal/driver"
)

const (
	maxReadsPerService   = 8   // reads per connection per iteration, for fairness
	maxAcceptsPerService = 128 // accepts per listener per iteration
	readChunk            = 64 << 10
	acceptRetryDelay     = 100 * time.Millisecond
)

// service does one connection's I/O for this iteration: accept, finish a
// connect, read, decrypt, encrypt and write.
func (m *Manager) service(c *Conn) {
	if c.flags&(fClosing|fClosed) != 0 {
		return
	}
	if err := c.pendingErr; err != nil {
		c.pendingErr = nil
		m.fail(c, err)
		return
	}
	if c.flags&fSockFailed != 0 && c.sock != nil && c.flags&fConnecting == 0 {
		// An error the socket holds (a reset, say) ends the connection
		// even while reading is paused by a full receive buffer.
		c.flags &^= fSockFailed
		if err := c.sock.Err(); err != nil {
			c.flags |= fSockFailed // no goodbye on a broken socket
			if c.flags&fWriteShut != 0 {
				// Everything was sent and our FIN too: the peer's reset
				// only ends the wait for its close (a peer that closes
				// with our close_notify unread resets, for one).
				m.log().Debug("meerkat: reset after drain", "conn", c.id, "err", err)
				c.flags |= fClosing
				m.markActive(c)
				return
			}
			m.fail(c, err)
			return
		}
	}
	switch {
	case c.flags&(fListening|fUDP) == fListening:
		if c.flags&fReadable != 0 {
			m.acceptConns(c)
		}
		return
	case c.flags&fResolving != 0:
		return
	case c.flags&fConnecting != 0:
		if c.flags&fWritable == 0 {
			return
		}
		m.finishConnect(c)
		if c.flags&(fConnecting|fClosing) != 0 {
			return
		}
	}
	switch {
	case c.flags&fUDP != 0:
		if c.flags&fReadable != 0 {
			m.readDatagrams(c)
		}
		return
	case c.flags&fWriteShut != 0:
		m.readDiscard(c)
		return
	case c.tls != nil:
		m.readTLS(c)
	case c.flags&(fReadable|fReadEOF) == fReadable:
		m.readPlain(c)
	}
	m.write(c)
}

func (m *Manager) acceptConns(l *Conn) {
	for range maxAcceptsPerService {
		sock, remote, err := l.sock.Accept()
		if err == driver.ErrWouldBlock {
			l.flags &^= fReadable
			return
		}
		if err != nil {
			// Out of descriptors and the like: the listener stays, and
			// tries again shortly (the pending connection will not make
			// the socket ready a second time).
			m.log().Error("meerkat: accept failed", "listener", l.id, "err", err)
			l.flags &^= fReadable
			l.setDeadline(dlAcceptRetry, m.now+int64(acceptRetryDelay))
			return
		}
		flags := fAccepted | fWritable | l.flags&fAutoTLS
		c := m.newConn(sock, flags, l.fn, l.proto)
		c.remote = remote
		if err := sock.Start(c); err != nil {
			m.log().Error("meerkat: cannot register accepted connection", "err", err)
			sock.Close()
			m.unlink(c)
			continue
		}
		c.lastIO = m.now
		m.dispatch(c, EvOpen, nil)
		m.dispatch(c, EvAccept, nil)
		if c.flags&(fAutoTLS|fTLS|fClosing) == fAutoTLS {
			if err := c.TLSInit(nil); err != nil {
				m.fail(c, err)
			}
		}
	}
}

// readPlain reads into the receive buffer and delivers EvRead. When the
// buffer is empty the bytes are read into the Manager's scratch space and
// lent to the handlers, so a connection whose handler consumes everything
// never holds buffer memory of its own.
func (m *Manager) readPlain(c *Conn) {
	for range maxReadsPerService {
		if c.flags&(fReadable|fClosing|fReadEOF) != fReadable {
			return
		}
		room := m.recvLimit() - c.recv.Len()
		if room <= 0 {
			return // paused until the handler consumes
		}
		n, err := m.readInto(c, room, c.sock.Read)
		if n > 0 && err == nil && n < min(room, readChunk) && c.flags&fHangup == 0 {
			// A short read emptied the socket: the driver reports the
			// next data, so no read is spent on hearing "would block".
			// (After a hangup the EOF is already there: read on.)
			c.flags &^= fReadable
		}
		if n > 0 {
			m.delivered(c, n)
		}
		if err != nil {
			m.readFailed(c, err)
			return
		}
	}
}

// readInto reads with rd into the receive buffer (or lent scratch space when
// it is empty), at most room bytes, and makes them live.
func (m *Manager) readInto(c *Conn, room int, rd func([]byte) (int, error)) (int, error) {
	want := min(room, readChunk)
	if c.recv.Len() == 0 {
		buf := m.scratch[:want]
		n, err := rd(buf)
		if n > 0 {
			c.recv.lend(buf[:n])
		}
		return n, err
	}
	n, err := rd(c.recv.spare(want)[:want])
	c.recv.commit(n)
	return n, err
}

// delivered announces n new bytes in the receive buffer.
func (m *Manager) delivered(c *Conn, n int) {
	c.lastIO = m.now
	if c.Hexdump {
		b := c.recv.Bytes()
		m.hexdump(c, "<-", b[len(b)-n:])
	}
	m.dispatch(c, EvRead, n)
	c.recv.own()
}

func (m *Manager) readFailed(c *Conn, err error) {
	switch {
	case err == driver.ErrWouldBlock:
		c.flags &^= fReadable
	case err == io.EOF:
		c.flags &^= fReadable
		c.flags |= fReadEOF
		m.peerClosed(c)
	default:
		m.fail(c, err)
	}
}

// peerClosed handles the peer's orderly close, after every byte it sent was
// delivered: what we queued is still sent, then the connection closes.
func (m *Manager) peerClosed(c *Conn) {
	if c.flags&fWriteShut != 0 {
		c.flags |= fClosing
		return
	}
	c.flags |= fDraining
}

// readDiscard reads and drops input after our FIN, until the peer's EOF.
func (m *Manager) readDiscard(c *Conn) {
	for range maxReadsPerService {
		if c.flags&(fReadable|fClosing) != fReadable {
			return
		}
		_, err := c.sock.Read(m.scratch)
		if err == driver.ErrWouldBlock {
			c.flags &^= fReadable
			return
		}
		if err != nil { // EOF or an error: either way we are done
			c.flags |= fClosing
			return
		}
	}
}

// readDatagrams delivers each datagram as one EvRead, with RemoteAddr set to
// its sender on listeners. What the handler leaves unconsumed is dropped:
// datagrams do not run together.
func (m *Manager) readDatagrams(c *Conn) {
	listener := c.flags&fListening != 0
	for range maxAcceptsPerService {
		if c.flags&(fReadable|fClosing) != fReadable {
			return
		}
		c.recv.reset()
		var n int
		var err error
		if listener {
			n, c.remote, err = c.sock.ReadFrom(m.scratch)
		} else {
			n, err = c.sock.Read(m.scratch)
		}
		if err == driver.ErrWouldBlock {
			c.flags &^= fReadable
			return
		}
		if err != nil {
			m.fail(c, err)
			return
		}
		c.recv.lend(m.scratch[:n])
		c.lastIO = m.now
		if c.Hexdump {
			m.hexdump(c, "<-", m.scratch[:n])
		}
		m.dispatch(c, EvRead, n)
		c.recv = IOBuf{}
	}
}

// sendDatagram sends p as one datagram, to RemoteAddr on a listener.
func (m *Manager) sendDatagram(c *Conn, p []byte) bool {
	var err error
	if c.flags&fListening != 0 {
		if !c.remote.IsValid() {
			m.log().Warn("meerkat: send on a UDP listener before any datagram arrived", "conn", c.id)
			return false
		}
		_, err = c.sock.WriteTo(p, c.remote)
	} else {
		_, err = c.sock.Write(p)
	}
	if err != nil {
		if err == driver.ErrWouldBlock {
			m.log().Debug("meerkat: datagram dropped: socket buffer full", "conn", c.id)
			return false
		}
		if c.flags&fListening == 0 {
			m.fail(c, err)
		} else {
			m.log().Debug("meerkat: datagram not sent", "conn", c.id, "err", err)
		}
		return false
	}
	c.lastIO = m.now
	if c.Hexdump {
		m.hexdump(c, "->", p)
	}
	return true
}

// write sends queued output while the socket takes it.
func (m *Manager) write(c *Conn) {
	if c.tls != nil {
		m.writeTLS(c)
		return
	}
	for c.flags&(fWritable|fClosing) == fWritable {
		limit := c.send.Len()
		if c.file != nil {
			limit = c.file.at // what was queued before the file goes first
			if limit == 0 {
				if !m.writeFile(c) {
					return
				}
				continue
			}
		}
		if limit == 0 {
			return
		}
		p := c.send.Bytes()[:limit]
		n, err := c.sock.Write(p)
		if n > 0 {
			m.wrote(c, p[:n])
			c.send.Consume(n)
			if c.file != nil {
				c.file.at -= n
			}
			m.dispatch(c, EvWrite, n)
		}
		if err != nil {
			m.writeFailed(c, err)
			return
		}
	}
}

func (m *Manager) wrote(c *Conn, p []byte) {
	c.lastIO = m.now
	if c.Hexdump {
		m.hexdump(c, "->", p)
	}
}

func (m *Manager) writeFailed(c *Conn, err error) {
	if err == driver.ErrWouldBlock {
		c.flags &^= fWritable
		return
	}
	c.flags |= fSockFailed // no goodbye on a broken socket
	m.fail(c, err)
}

// flushed reports whether everything queued has reached the OS.
func (c *Conn) flushed() bool {
	if c.send.Len() > 0 || c.file != nil || (c.tls != nil && c.tls.pending() > 0) {
		return false
	}
	return c.sock == nil || c.sock.Buffered() == 0
}

// finishIteration is the last step of Poll, for the active connections:
// output queued by timers and EvPoll goes out, drains progress, deadlines
// pass, and connections marked closing are closed. What still has work, or
// waits for its handler to consume, stays active; busy tells the next Wait
// not to block.
func (m *Manager) finishIteration() {
	if (m.nextDeadline != 0 && m.now >= m.nextDeadline) || m.IdleTimeout != m.idleScanned {
		m.scanDeadlines()
	}
	for i := 0; i < len(m.active); i++ { // EvClose handlers may add more
		c := m.active[i]
		if c.flags&fClosed != 0 {
			continue
		}
		if c.flags&fClosing == 0 && c.sock != nil && c.flags&(fListening|fConnecting|fUDP) == 0 {
			if c.flags&fWritable != 0 && (c.send.Len() > 0 || c.file != nil || (c.tls != nil && c.tls.pending() > 0)) {
				m.write(c)
			}
			if c.flags&(fDraining|fWriteShut) == fDraining {
				m.drain(c)
			}
		} else if c.flags&(fDraining|fClosing) == fDraining && c.flags&(fListening|fUDP) != 0 {
			c.flags |= fClosing // nothing is ever queued: draining is closing
		}
		if c.flags&fClosing != 0 {
			m.finishClose(c)
		}
	}
	busy := false
	keep := m.active[:0]
	for _, c := range m.active {
		if c.flags&fClosed != 0 {
			continue
		}
		work := m.hasWork(c)
		if work || m.paused(c) {
			keep = append(keep, c)
			busy = busy || work
		} else {
			c.flags &^= fActive
		}
	}
	clear(m.active[len(keep):])
	m.active = keep
	m.busy = busy
}

// scanDeadlines fails or closes every connection whose deadline or idle
// timeout has passed, and finds the next time to look.
func (m *Manager) scanDeadlines() {
	idle := int64(m.IdleTimeout)
	m.idleScanned = m.IdleTimeout
	m.nextDeadline = 0 // rebuilt below; handlers called meanwhile may add to it
	for c := m.head; c != nil; c = c.next {
		if c.flags&(fClosing|fClosed) != 0 {
			continue
		}
		if c.deadline != 0 && m.now >= c.deadline {
			m.deadlinePassed(c)
			m.markActive(c)
		} else if idle > 0 && c.flags&idleExempt == 0 && m.now-c.lastIO >= idle {
			m.fail(c, ErrIdleTimeout)
		}
		if c.flags&fClosing != 0 {
			continue
		}
		if c.deadline != 0 {
			m.deadlineAt(c.deadline)
		}
		if c.wakeAt != 0 {
			if m.now >= c.wakeAt {
				c.wakeAt = 0
				m.markActive(c)
			} else {
				m.deadlineAt(c.wakeAt)
			}
		}
		if idle > 0 && c.flags&idleExempt == 0 {
			m.deadlineAt(c.lastIO + idle)
		}
	}
}

// idleExempt are the connections IdleTimeout leaves alone: listeners, and
// clients not yet connected (ConnectTimeout bounds those).
const idleExempt = fListening | fResolving | fConnecting

// paused reports whether reading waits for the handler to consume: the
// connection must be looked at again without any news from the driver.
func (m *Manager) paused(c *Conn) bool {
	return c.recv.Len() >= m.recvLimit() && c.flags&(fReadable|fTLSPending) != 0
}

// hasWork reports whether the connection can make progress without waiting
// for the driver.
func (m *Manager) hasWork(c *Conn) bool {
	if c.pendingErr != nil {
		return true
	}
	if c.flags&(fListening|fConnecting|fResolving) != 0 {
		return c.flags&(fListening|fReadable) == fListening|fReadable ||
			c.flags&(fConnecting|fWritable) == fConnecting|fWritable
	}
	room := c.recv.Len() < m.recvLimit()
	switch {
	case c.flags&fUDP != 0:
		return c.flags&fReadable != 0
	case c.flags&fWriteShut != 0:
		return c.flags&fReadable != 0
	case c.tls != nil:
		if c.flags&fTLSPending != 0 && room && c.tls.established {
			return true
		}
		if c.flags&(fReadable|fRawEOF|fReadEOF) == fReadable && c.tls.inLen() < tlsRawInLimit {
			return true
		}
	case c.flags&(fReadable|fReadEOF) == fReadable && room:
		return true
	}
	return c.flags&fWritable != 0 && (c.send.Len() > 0 && (c.tls == nil || c.tls.established) ||
		c.file != nil || c.tls != nil && c.tls.pending() > 0)
}

// drain moves a draining connection towards its close: once everything is
// out, TLS says close_notify, then FIN; the close follows the peer's EOF.
func (m *Manager) drain(c *Conn) {
	if c.send.Len() > 0 || c.file != nil || (c.hold != nil && c.hold(c)) {
		return
	}
	if f := c.tls; f != nil {
		if !f.established {
			if c.flags&fTLS != 0 && f.handshaking {
				return // let the handshake finish; the timeout bounds it
			}
		} else if !f.closeNotifySent {
			f.closeNotify()
			m.write(c)
		}
	}
	if !c.flushed() {
		return
	}
	if c.flags&fReadEOF != 0 {
		c.flags |= fClosing
		return
	}
	if err := c.sock.CloseWrite(); err != nil {
		c.flags |= fClosing
		return
	}
	c.flags |= fWriteShut
	c.setDeadline(dlDrain, m.now+int64(orDefault(m.DrainTimeout, DefaultDrainTimeout)))
	if c.flags&fRawEOF != 0 {
		c.flags |= fClosing
	}
}

func (m *Manager) deadlinePassed(c *Conn) {
	kind := c.deadlineKind
	c.deadline, c.deadlineKind = 0, dlNone
	switch kind {
	case dlConnect:
		m.fail(c, fmt.Errorf("%w (%v)", ErrConnectTimeout, orDefault(m.ConnectTimeout, DefaultConnectTimeout)))
	case dlHandshake:
		m.fail(c, fmt.Errorf("%w (%v)", ErrTLSHandshakeTimeout, orDefault(m.TLSHandshakeTimeout, DefaultTLSHandshakeTimeout)))
	case dlDrain:
		c.flags |= fClosing
	case dlAcceptRetry:
		c.flags |= fReadable
	}
}

func (m *Manager) hexdump(c *Conn, dir string, p []byte) {
	w := m.HexdumpOutput
	if w == nil {
		w = os.Stderr
	}
	fmt.Fprintf(w, "conn %d %s %d bytes\n%s", c.id, dir, len(p), hex.Dump(p))
}
