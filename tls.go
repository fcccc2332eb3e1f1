package meerkat

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/meerkat-net/meerkat/internal/driver"
)

// The TLS filter runs the standard crypto/tls over an in-memory transport:
// raw bytes read from the socket are fed in, records to send are taken out.
// The same code serves every driver.
//
// crypto/tls cannot resume a handshake interrupted by "would block", so the
// handshake runs on a short-lived goroutine, for which the transport's Read
// blocks until bytes arrive. Once the handshake is done the goroutine ends,
// and records are decrypted and encrypted on the Poll goroutine; the
// transport's Read then returns an error whose Temporary() is true when it
// has no bytes, which crypto/tls treats as "try again later" without losing
// state (see readRecordOrCCS in crypto/tls/conn.go). Tests pin that contract.

const (
	tlsRawInLimit = 64 << 10 // raw bytes held before reading the socket pauses
	tlsOutLow     = 64 << 10 // encrypt more plaintext only while less is queued
	tlsWriteChunk = 64 << 10
)

// tlsFilter is one connection's TLS state.
type tlsFilter struct {
	conn *tls.Conn
	tr   *transport
	done chan struct{} // closed when the handshake goroutine returns

	// Owned by the Poll goroutine.
	handshaking     bool
	established     bool
	closeNotifySent bool
}

// errWouldBlock is what the transport returns when it has no bytes after the
// handshake: a net.Error whose Temporary() is true leaves crypto/tls's
// state intact.
var errWouldBlock error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "tls transport: no data yet" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

// transport is the in-memory net.Conn under crypto/tls.
type transport struct {
	mu       sync.Mutex
	cond     sync.Cond
	in       IOBuf // raw bytes from the peer
	out      IOBuf // records for the peer
	eof      bool  // the peer closed; in holds the last bytes
	closed   bool  // the connection is gone: fail everything
	blocking bool  // Read waits for bytes (during the handshake)
	wake     func()
	local    net.Addr
	remote   net.Addr
}

func (t *transport) Read(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for t.blocking && t.in.Len() == 0 && !t.eof && !t.closed {
		t.cond.Wait()
	}
	switch {
	case t.closed:
		return 0, net.ErrClosed
	case t.in.Len() > 0:
		wasFull := t.in.Len() >= tlsRawInLimit
		n := copy(p, t.in.Bytes())
		t.in.Consume(n)
		if wasFull && t.blocking && t.wake != nil {
			t.wake() // the Poll loop paused reading for us: resume it
		}
		return n, nil
	case t.eof:
		return 0, io.EOF
	}
	return 0, errWouldBlock
}

func (t *transport) Write(p []byte) (int, error) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return 0, net.ErrClosed
	}
	t.out.append(p)
	wake := t.blocking && t.wake != nil
	t.mu.Unlock()
	if wake {
		t.wake() // handshake output: let the Poll loop send it
	}
	return len(p), nil
}

func (t *transport) Close() error                     { return nil }
func (t *transport) LocalAddr() net.Addr              { return t.local }
func (t *transport) RemoteAddr() net.Addr             { return t.remote }
func (t *transport) SetDeadline(time.Time) error      { return nil }
func (t *transport) SetReadDeadline(time.Time) error  { return nil }
func (t *transport) SetWriteDeadline(time.Time) error { return nil }

func newTLSFilter(cfg *tls.Config, client bool, local, remote netip.AddrPort, wake func()) *tlsFilter {
	tr := &transport{
		blocking: true,
		wake:     wake,
		local:    net.TCPAddrFromAddrPort(local),
		remote:   net.TCPAddrFromAddrPort(remote),
	}
	tr.cond.L = &tr.mu
	f := &tlsFilter{tr: tr, done: make(chan struct{})}
	if client {
		f.conn = tls.Client(tr, cfg)
	} else {
		f.conn = tls.Server(tr, cfg)
	}
	return f
}

// startHandshake runs the handshake on its own goroutine and calls done with
// its outcome from there.
func (f *tlsFilter) startHandshake(done func(error)) {
	f.handshaking = true
	go func() {
		defer close(f.done)
		err := f.conn.Handshake()
		f.tr.mu.Lock()
		f.tr.blocking = false
		f.tr.mu.Unlock()
		done(err)
	}()
}

// feed adds raw bytes from the socket.
func (f *tlsFilter) feed(p []byte) {
	t := f.tr
	t.mu.Lock()
	t.in.append(p)
	t.cond.Signal()
	t.mu.Unlock()
}

// feedEOF records the peer's orderly close of the socket.
func (f *tlsFilter) feedEOF() {
	t := f.tr
	t.mu.Lock()
	t.eof = true
	t.cond.Signal()
	t.mu.Unlock()
}

// inLen is the number of raw bytes not yet taken by crypto/tls.
func (f *tlsFilter) inLen() int {
	t := f.tr
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.in.Len()
}

// read decrypts into p until p is full or no whole record is left. It
// returns errWouldBlock when it needs more raw bytes, io.EOF after the
// peer's close_notify or a clean EOF at a record boundary.
func (f *tlsFilter) read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k, err := f.conn.Read(p[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// write encrypts p into records queued for the peer.
func (f *tlsFilter) write(p []byte) (int, error) { return f.conn.Write(p) }

// pending is the number of raw bytes queued for the peer.
func (f *tlsFilter) pending() int {
	t := f.tr
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.out.Len()
}

// flush writes queued records with w until it would block.
func (f *tlsFilter) flush(w func([]byte) (int, error)) (int, error) {
	t := f.tr
	t.mu.Lock()
	defer t.mu.Unlock()
	total := 0
	for t.out.Len() > 0 {
		n, err := w(t.out.Bytes())
		total += n
		t.out.Consume(n)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// closeNotify queues the close_notify alert, once.
func (f *tlsFilter) closeNotify() {
	if f.established && !f.closeNotifySent {
		f.closeNotifySent = true
		f.conn.CloseWrite()
	}
}

// close stops the filter: a running handshake fails at once, and close
// returns after its goroutine has.
func (f *tlsFilter) close() {
	t := f.tr
	t.mu.Lock()
	t.closed = true
	t.cond.Broadcast()
	t.mu.Unlock()
	if f.handshaking {
		<-f.done
	}
	t.mu.Lock()
	t.in.reset()
	t.out.reset()
	t.mu.Unlock()
}

// TLSInit starts TLS on the connection with cfg, or with Manager.TLSConfig
// when cfg is nil. Call it on EvAccept (server) or EvConnect (client);
// https, wss and mqtts connections call it by themselves when the handler
// did not. A client sends the URL's host as ServerName (SNI for names, not
// for IP literals) and verifies the server's certificate for it, unless cfg
// sets ServerName or InsecureSkipVerify. EvTLSHandshake follows success;
// a failed or timed-out handshake ends in EvError with the reason, then
// EvClose.
func (c *Conn) TLSInit(cfg *tls.Config) error {
	m := c.m
	switch {
	case c.tls != nil:
		return ErrTLSAlreadyStarted
	case c.flags&(fClosing|fClosed) != 0:
		return errors.New("meerkat: TLSInit on a closing connection")
	case c.flags&(fListening|fUDP) != 0:
		return errors.New("meerkat: TLSInit needs a TCP connection, not a listener or UDP")
	case c.sock == nil || c.flags&fConnecting != 0:
		return errors.New("meerkat: TLSInit before the connection is established (call it on EvConnect)")
	}
	if cfg == nil {
		cfg = m.TLSConfig
	}
	client := c.flags&fClient != 0
	if client {
		if cfg == nil {
			cfg = &tls.Config{}
		}
		if cfg.ServerName == "" {
			cfg = cfg.Clone()
			cfg.ServerName = c.serverName
		}
	} else if cfg == nil || (len(cfg.Certificates) == 0 && cfg.GetCertificate == nil && cfg.GetConfigForClient == nil) {
		return ErrNoCertificate
	}
	f := newTLSFilter(cfg, client, c.LocalAddr(), c.remote, func() { m.postMark(c) })
	c.tls = f
	c.flags |= fTLS
	if t := timeoutNanos(m.TLSHandshakeTimeout, DefaultTLSHandshakeTimeout); t > 0 {
		c.setDeadline(dlHandshake, m.clock()+t)
	}
	f.startHandshake(func(err error) {
		m.postFn(func() { m.handshakeDone(c, f, err) })
	})
	return nil
}

func (m *Manager) handshakeDone(c *Conn, f *tlsFilter, err error) {
	if c.tls != f || c.flags&(fClosing|fClosed) != 0 {
		return
	}
	<-f.done
	f.handshaking = false
	c.clearDeadline(dlHandshake)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("peer closed the connection (%w)", io.ErrUnexpectedEOF)
		}
		m.fail(c, fmt.Errorf("tls handshake: %w", err))
		return
	}
	f.established = true
	c.flags |= fTLSPending // records that came with the handshake's last flight
	m.markActive(c)
	m.dispatch(c, EvTLSHandshake, nil)
}

// readTLS feeds raw bytes from the socket to the filter and delivers what
// decrypts. After the socket's EOF, records already received are still
// decrypted and delivered before the connection ends.
func (m *Manager) readTLS(c *Conn) {
	f := c.tls
	for range maxReadsPerService {
		// After the peer's close_notify (fReadEOF) nothing more is read:
		// a reset that follows it concerns only what we still send.
		if c.flags&(fReadable|fRawEOF|fReadEOF|fClosing) != fReadable {
			break
		}
		room := tlsRawInLimit - f.inLen()
		if room <= 0 {
			break
		}
		want := min(room, len(m.scratch))
		n, err := c.sock.Read(m.scratch[:want])
		if n > 0 {
			f.feed(m.scratch[:n])
			c.lastIO = m.now
			c.flags |= fTLSPending
			if err == nil && n < want && c.flags&fHangup == 0 {
				c.flags &^= fReadable // drained: the driver reports more (see readPlain)
			}
		}
		if err == driver.ErrWouldBlock {
			c.flags &^= fReadable
			break
		}
		if err == io.EOF {
			c.flags &^= fReadable
			c.flags |= fRawEOF | fTLSPending
			f.feedEOF()
			break
		}
		if err != nil {
			m.fail(c, err)
			return
		}
		if f.established {
			m.decrypt(c)
		}
	}
	if f.established && c.flags&fTLSPending != 0 {
		m.decrypt(c)
	}
}

// decrypt delivers decrypted bytes while the receive buffer has room.
func (m *Manager) decrypt(c *Conn) {
	f := c.tls
	for c.flags&(fClosing|fReadEOF) == 0 {
		room := m.recvLimit() - c.recv.Len()
		if room <= 0 {
			return // fTLSPending stays: resume once the handler consumes
		}
		n, err := m.readInto(c, room, f.read)
		if n > 0 {
			m.delivered(c, n)
		}
		if err == nil {
			continue
		}
		c.flags &^= fTLSPending
		switch {
		case err == errWouldBlock:
		case err == io.EOF:
			c.flags |= fReadEOF
			m.peerClosed(c)
		case errors.Is(err, io.ErrUnexpectedEOF):
			m.fail(c, fmt.Errorf("tls: peer closed the connection inside a record (%w)", err))
		default:
			m.fail(c, fmt.Errorf("tls: %w", err))
		}
		return
	}
}

// writeTLS encrypts queued plaintext (while little is waiting to go out) and
// writes the records.
func (m *Manager) writeTLS(c *Conn) {
	f := c.tls
	for c.flags&fClosing == 0 {
		if f.established && !f.closeNotifySent && c.send.Len() > 0 && f.pending() < tlsOutLow {
			p := c.send.Bytes()
			p = p[:min(len(p), tlsWriteChunk)]
			n, err := f.write(p)
			if n > 0 {
				m.wrote(c, p[:n])
				c.send.Consume(n)
				m.dispatch(c, EvWrite, n)
			}
			if err != nil {
				m.fail(c, fmt.Errorf("tls: %w", err))
				return
			}
		}
		if f.pending() == 0 || c.flags&fWritable == 0 {
			return
		}
		n, err := f.flush(c.sock.Write)
		if n > 0 {
			c.lastIO = m.now
		}
		if err != nil {
			m.writeFailed(c, err)
			return
		}
	}
}
