package meerkat

import (
	"fmt"
	"net/netip"

	"github.com/meerkat-net/meerkat/internal/driver"
)

// Conn is one connection or listener of a Manager. Its methods must be called
// on the Poll goroutine (from handlers, timers, or between Polls).
type Conn struct {
	// UserData is free for the application's use.
	UserData any
	// Hexdump, when set, dumps every byte received and sent (the plaintext,
	// for TLS) to Manager.HexdumpOutput.
	Hexdump bool

	m      *Manager
	id     uint64
	flags  connFlags
	sock   driver.Socket
	fn     Handler // the user's handler
	proto  Handler // the protocol handler, run before fn
	recv   IOBuf
	send   IOBuf
	file   *fileSegment // a file queued behind part of send (sendfile)
	tls    *tlsFilter
	local  netip.AddrPort
	remote netip.AddrPort

	serverName string           // clients: the URL's host, for SNI and verification
	addrs      []netip.AddrPort // clients: addresses still to try
	resolving  *resolveJob
	pendingErr error // an error to report at the next service

	deadline     int64 // connect, handshake or drain deadline (Manager clock), 0 if none
	deadlineKind deadlineKind
	// wakeAt is when the protocol handler has a timeout to check (Manager
	// clock), 0 if none: the connection is made active then, and its
	// EvPoll of that iteration checks. See wakeProtoAt.
	wakeAt int64
	lastIO int64 // for IdleTimeout
	queued int64 // bytes accepted by Send, ever

	// onShutdown, when a protocol sets it, is Shutdown's way to ask the
	// connection to finish gracefully (instead of Drain).
	onShutdown func(*Conn)
	// hold, when a protocol sets it, keeps a draining connection open while
	// it reports true (a reply still to come).
	hold func(*Conn) bool
	// pstate is the protocol handler's state for this connection.
	pstate any

	prev, next *Conn
}

type connFlags uint32

const (
	fClient     connFlags = 1 << iota // made by Connect
	fAccepted                         // made by a listener
	fListening                        // a listener (TCP) or bound UDP socket
	fUDP                              // datagrams
	fTLS                              // TLS initialized
	fAutoTLS                          // the scheme asks for TLS; start it if the handler did not
	fResolving                        // waiting for the resolver
	fConnecting                       // waiting for the connect to finish
	fReadable                         // the socket may have input
	fWritable                         // the socket may take output
	fSockFailed                       // the driver saw an error on the socket
	fHangup                           // the peer closed or reset: read on to EOF
	fReadEOF                          // the peer's orderly close was read (and decrypted)
	fRawEOF                           // TLS: the socket's EOF was read; records may remain
	fTLSPending                       // TLS: decryption may progress without new input
	fDraining                         // close once everything is sent
	fWriteShut                        // FIN sent; waiting for the peer's EOF
	fClosing                          // close at the end of this iteration
	fFailed                           // closing because of an error: no goodbye
	fClosed                           // EvClose delivered
	fActive                           // on the Manager's active list
	fSwallow                          // the protocol handler consumed this event: the user's handler does not see it
)

type deadlineKind uint8

const (
	dlNone deadlineKind = iota
	dlConnect
	dlHandshake
	dlDrain
	dlAcceptRetry
)

// ID is the connection's number, unique within its Manager, for Wakeup.
func (c *Conn) ID() uint64 { return c.id }

// Manager returns the connection's Manager.
func (c *Conn) Manager() *Manager { return c.m }

// LocalAddr is the connection's own address; a listener on port 0 reports
// the port it got.
func (c *Conn) LocalAddr() netip.AddrPort {
	if !c.local.IsValid() && c.sock != nil {
		c.local = c.sock.LocalAddr()
	}
	return c.local
}

// RemoteAddr is the peer's address. For a UDP listener it is the sender of
// the datagram being handled, and the destination of Send.
func (c *Conn) RemoteAddr() netip.AddrPort { return c.remote }

// Recv returns the received bytes not yet consumed. Handlers consume what
// they used with Recv().Consume; reading pauses while the buffer is full.
func (c *Conn) Recv() *IOBuf { return &c.recv }

// SendLen is the number of bytes queued by Send and not yet written.
func (c *Conn) SendLen() int { return c.send.Len() }

// IsClient reports whether the connection was made by Connect.
func (c *Conn) IsClient() bool { return c.flags&fClient != 0 }

// IsAccepted reports whether the connection was accepted by a listener.
func (c *Conn) IsAccepted() bool { return c.flags&fAccepted != 0 }

// IsListening reports whether the connection is a listener (or a bound UDP
// socket).
func (c *Conn) IsListening() bool { return c.flags&fListening != 0 }

// IsUDP reports whether the connection carries datagrams.
func (c *Conn) IsUDP() bool { return c.flags&fUDP != 0 }

// IsTLS reports whether TLS was initialized on the connection.
func (c *Conn) IsTLS() bool { return c.flags&fTLS != 0 }

// IsClosing reports whether the connection will close at the end of this
// Poll iteration.
func (c *Conn) IsClosing() bool { return c.flags&(fClosing|fClosed) != 0 }

// IsDraining reports whether Drain was called (or the peer closed its side):
// the connection closes once its output is sent.
func (c *Conn) IsDraining() bool { return c.flags&fDraining != 0 }

// IsFull reports whether the receive buffer is at Manager.RecvLimit, so
// reading is paused until the handler consumes.
func (c *Conn) IsFull() bool { return c.recv.Len() >= c.m.recvLimit() }

// String describes the connection for logs.
func (c *Conn) String() string {
	return fmt.Sprintf("conn %d %v->%v", c.id, c.LocalAddr(), c.remote)
}

// Send queues p to be sent (datagram sockets send it at once, as one
// datagram). It reports false, and logs why, when the connection is closing
// or the send buffer would exceed Manager.SendLimit.
func (c *Conn) Send(p []byte) bool {
	m := c.m
	if c.flags&(fClosing|fClosed|fWriteShut) != 0 || (c.flags&fListening != 0 && c.flags&fUDP == 0) {
		return false
	}
	if c.flags&fUDP != 0 {
		return m.sendDatagram(c, p)
	}
	if c.send.Len()+len(p) > m.sendLimit() {
		m.log().Warn("meerkat: send refused", "conn", c.id, "err", ErrSendLimit,
			"queued", c.send.Len(), "adding", len(p), "limit", m.sendLimit())
		return false
	}
	c.send.append(p)
	c.queued += int64(len(p))
	m.markActive(c)
	return true
}

// Printf formats like fmt.Printf and sends the result; it returns the number
// of bytes queued, 0 if Send refused them.
func (c *Conn) Printf(format string, args ...any) int {
	m := c.m
	m.fmtBuf = fmt.Appendf(m.fmtBuf[:0], format, args...)
	n := len(m.fmtBuf)
	ok := c.Send(m.fmtBuf)
	if cap(m.fmtBuf) > 64<<10 {
		m.fmtBuf = nil
	}
	if !ok {
		return 0
	}
	return n
}

// Close closes the connection at the end of this Poll iteration, discarding
// unsent data (TLS connections still send close_notify). It is idempotent.
func (c *Conn) Close() {
	if c.flags&fClosed == 0 {
		c.flags |= fClosing
		c.m.markActive(c)
	}
}

// Drain closes the connection once everything queued is sent (for TLS, then
// close_notify), after the peer closed its side too or Manager.DrainTimeout
// passed. Input that arrives meanwhile is discarded, and a reset after
// everything was sent ends the wait quietly. It is idempotent.
func (c *Conn) Drain() {
	if c.flags&(fClosing|fClosed) == 0 {
		c.flags |= fDraining
		c.m.markActive(c)
	}
}

// newConn creates a connection, links it into the Manager and sends EvOpen.
func (m *Manager) newConn(sock driver.Socket, flags connFlags, fn, proto Handler) *Conn {
	m.nextID++
	c := &Conn{m: m, id: m.nextID, sock: sock, flags: flags, fn: fn, proto: proto, lastIO: m.clock()}
	m.byID[c.id] = c
	if idle := int64(m.IdleTimeout); idle > 0 {
		m.deadlineAt(c.lastIO + idle)
	}
	c.next = m.head
	if m.head != nil {
		m.head.prev = c
	}
	m.head = c
	return c
}

func (m *Manager) unlink(c *Conn) {
	if c.prev != nil {
		c.prev.next = c.next
	} else if m.head == c {
		m.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	}
	c.prev, c.next = nil, nil
	delete(m.byID, c.id)
}

// dispatch runs the protocol handler, then the user's, for one event.
// Nothing is delivered after EvClose.
func (m *Manager) dispatch(c *Conn, ev Event, data any) {
	if c.flags&fClosed != 0 {
		return
	}
	if c.proto != nil {
		c.proto(c, ev, data)
		if c.flags&fSwallow != 0 {
			c.flags &^= fSwallow
			return
		}
		if c.flags&fFailed != 0 && ev != EvError && ev != EvClose {
			return // the protocol failed the connection: only EvClose follows
		}
	}
	if c.fn != nil {
		c.fn(c, ev, data)
	}
}

// fail reports err with EvError and closes the connection at the end of the
// iteration. Only the first failure is reported.
func (m *Manager) fail(c *Conn, err error) {
	if c.flags&(fClosing|fClosed) != 0 {
		return
	}
	c.flags |= fClosing | fFailed
	m.markActive(c)
	m.log().Debug("meerkat: connection error", "conn", c.id, "err", err)
	m.dispatch(c, EvError, err)
}

// failLater records err to be reported by the next Poll, for failures found
// outside Poll (inside Connect).
func (m *Manager) failLater(c *Conn, err error) {
	c.pendingErr = err
	m.markActive(c)
	m.busy = true
}

// wakeProtoAt asks for the connection to be looked at (EvPoll delivered in
// an iteration that does not wait past at) when its protocol has a timeout
// to check then. The earliest request wins; the handler checks its own
// clocks on EvPoll and asks again for the next one.
func (c *Conn) wakeProtoAt(at int64) {
	if c.wakeAt == 0 || at < c.wakeAt {
		c.wakeAt = at
	}
	c.m.deadlineAt(at)
}

// finishClose releases everything the connection holds and sends EvClose.
func (m *Manager) finishClose(c *Conn) {
	if c.flags&fClosed != 0 {
		return
	}
	c.flags |= fClosing
	if c.resolving != nil {
		c.resolving.cancel()
		c.resolving = nil
	}
	if f := c.tls; f != nil {
		if c.sock != nil && c.flags&fSockFailed == 0 && c.flags&fConnecting == 0 {
			// Goodbye: close_notify after a good handshake, or the alert
			// crypto/tls queued for a failed one. One try, never a wait.
			if f.established && c.flags&fFailed == 0 {
				f.closeNotify()
			}
			f.flush(c.sock.Write)
		}
		f.close()
	}
	if c.sock != nil {
		c.sock.Close()
	}
	m.dispatch(c, EvClose, nil)
	c.flags |= fClosed
	m.unlink(c)
	c.recv.reset()
	c.send.reset()
	c.sock, c.tls, c.addrs, c.file = nil, nil, nil, nil
}
