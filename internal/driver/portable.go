package driver

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// The portable driver: the standard net package, with goroutines per socket
// doing the blocking I/O into bounded buffers and reporting readiness. It runs
// wherever Go runs. Errors from the net package are passed on unchanged, so a
// reset (ECONNRESET, or WSAECONNRESET on Windows) is a read or write error,
// never "would block": only an empty inbound buffer or a full outbound buffer
// is.

const (
	chunkSize         = 16 << 10 // one blocking read while data keeps coming
	smallChunkSize    = 1 << 10  // one blocking read on a quiet connection
	smallOutSize      = 2 << 10  // output buffer for small writes
	inLimit           = 64 << 10 // received bytes held per socket before reading pauses
	outLimit          = 64 << 10 // bytes accepted by Write before it reports ErrWouldBlock
	writeChunk        = 32 << 10 // one blocking write (Wine blocks on huge writes to a reset peer)
	acceptQueueLen    = 128      // accepted connections held before accepting pauses
	dgramQueueLen     = 256      // datagrams held before new ones are dropped
	dgramMax          = 64 << 10 // largest datagram
	acceptBackoff     = time.Second
	closeFlushTimeout = 100 * time.Millisecond // Close's last write, at most
)

// Buffers come in two sizes, small and large, from pools, so that an idle
// connection holds none and a small message costs a small buffer: a quiet
// connection's reader waits in Read with a small one and takes a large one
// only after a read filled the small one (more is likely waiting); output
// starts small and moves to a large buffer when it outgrows it. Buffers
// travel as *[]byte so that returning one allocates nothing.
type bufPool struct {
	small, large         sync.Pool
	smallSize, largeSize int
}

var (
	readBufs = newBufPool(smallChunkSize, chunkSize)
	outBufs  = newBufPool(smallOutSize, outLimit)
)

func newBufPool(small, large int) *bufPool {
	p := &bufPool{smallSize: small, largeSize: large}
	p.small.New = func() any { b := make([]byte, small); return &b }
	p.large.New = func() any { b := make([]byte, large); return &b }
	return p
}

// get returns a buffer of the small size, or the large one if need exceeds
// it, with its length equal to its capacity.
func (p *bufPool) get(need int) *[]byte {
	if need > p.smallSize {
		return p.large.Get().(*[]byte)
	}
	return p.small.Get().(*[]byte)
}

// put returns a buffer got from p, whatever its length.
func (p *bufPool) put(b *[]byte) {
	*b = (*b)[:cap(*b)]
	switch cap(*b) {
	case p.largeSize:
		p.large.Put(b)
	case p.smallSize:
		p.small.Put(b)
	}
}

type portable struct {
	mu     sync.Mutex
	ready  []*psock // sockets with readiness not yet reported, guarded by mu
	notify chan struct{}
	timer  *time.Timer
	batch  []*psock // Wait's own copies, reused between calls
	rs     []Readiness
}

// NewPortable returns the portable driver.
func NewPortable() Driver {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &portable{notify: make(chan struct{}, 1), timer: t}
}

func (d *portable) Name() string { return "portable" }

type psock struct {
	d   *portable
	tok any

	// Guarded by d.mu: readiness not yet reported by Wait.
	pending Readiness
	started bool

	mu       sync.Mutex
	rcond    sync.Cond // reader waits for room
	wcond    sync.Cond // writer waits for data
	acond    sync.Cond // acceptor waits for room
	closed   bool
	wg       sync.WaitGroup
	local    netip.AddrPort
	remote   netip.AddrPort
	udpPeer  bool // a connected UDP socket
	dialing  bool
	dialErr  error
	cancel   context.CancelFunc
	network  string
	nc       net.Conn
	ln       net.Listener
	pc       *net.UDPConn
	in       []*[]byte  // received chunks, in order (from readBufs)
	inSlots  [4]*[]byte // in's usual backing array: no allocation per message
	inOff    int        // consumed bytes of in[0]
	inBytes  int
	rerr     error   // sticky: io.EOF or the read error, after the data
	out      []byte  // queued output: (*outp)[:len(out)]
	outp     *[]byte // out's buffer, from outBufs
	inflight int     // bytes the writer took and is writing
	werr     error   // sticky write error
	shutdown bool    // CloseWrite requested
	accepted []acceptedConn
	aerr     error
	done     chan struct{} // listeners: closed by Close
	dgrams   []datagram
}

type acceptedConn struct {
	nc     net.Conn
	remote netip.AddrPort
}

type datagram struct {
	data []byte
	from netip.AddrPort
}

func (d *portable) newSock() *psock {
	s := &psock{d: d}
	s.rcond.L = &s.mu
	s.wcond.L = &s.mu
	s.acond.L = &s.mu
	return s
}

// signal records readiness for the next Wait and wakes it.
func (s *psock) signal(r Readiness) {
	d := s.d
	d.mu.Lock()
	if s.started {
		if s.pending == 0 {
			d.ready = append(d.ready, s)
		}
		s.pending |= r
	}
	d.mu.Unlock()
	d.Wake()
}

func (d *portable) Listen(network string, addr netip.AddrPort) (Socket, error) {
	s := d.newSock()
	s.network = network
	if network == "udp" {
		pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		if err != nil {
			return nil, unwrapOp(err)
		}
		s.pc = pc
		s.local = addrPortOf(pc.LocalAddr())
		return s, nil
	}
	ln, err := net.Listen("tcp", addr.String())
	if err != nil {
		return nil, unwrapOp(err)
	}
	s.ln = ln
	s.done = make(chan struct{})
	s.local = addrPortOf(ln.Addr())
	return s, nil
}

func (d *portable) Dial(network string, addr netip.AddrPort) (Socket, error) {
	s := d.newSock()
	s.network = network
	s.remote = addr
	if network == "udp" {
		pc, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
		if err != nil {
			return nil, unwrapOp(err)
		}
		s.pc = pc
		s.udpPeer = true
		s.local = addrPortOf(pc.LocalAddr())
		return s, nil
	}
	s.dialing = true
	return s, nil
}

func (d *portable) Wait(timeout time.Duration, ready func(tok any, r Readiness)) error {
	d.mu.Lock()
	if len(d.ready) == 0 && timeout > 0 {
		d.mu.Unlock()
		d.timer.Reset(timeout)
		select {
		case <-d.notify:
		case <-d.timer.C:
		}
		d.timer.Stop()
		d.mu.Lock()
	}
	batch, rs := d.batch[:0], d.rs[:0]
	for _, s := range d.ready {
		batch = append(batch, s)
		rs = append(rs, s.pending)
		s.pending = 0
	}
	clear(d.ready)
	d.ready = d.ready[:0]
	d.mu.Unlock()
	select { // the readiness taken above is what the notification was for
	case <-d.notify:
	default:
	}
	for i, s := range batch {
		ready(s.tok, rs[i])
	}
	clear(batch)
	d.batch, d.rs = batch[:0], rs[:0]
	return nil
}

func (d *portable) Wake() {
	select {
	case d.notify <- struct{}{}:
	default:
	}
}

func (d *portable) Close() error { return nil }

func (s *psock) Start(tok any) error {
	d := s.d
	d.mu.Lock()
	s.tok = tok
	s.started = true
	d.mu.Unlock()
	switch {
	case s.ln != nil:
		s.wg.Add(1)
		go s.acceptLoop()
	case s.pc != nil:
		s.wg.Add(1)
		go s.datagramLoop()
		s.signal(Writable)
	case s.dialing:
		ctx, cancel := context.WithCancel(context.Background())
		s.cancel = cancel
		s.wg.Add(1)
		go s.dialLoop(ctx)
	default:
		s.startStream()
	}
	return nil
}

func (s *psock) startStream() {
	s.wg.Add(2)
	go s.readLoop()
	go s.writeLoop()
}

func (s *psock) dialLoop(ctx context.Context) {
	defer s.wg.Done()
	var dialer net.Dialer
	nc, err := dialer.DialContext(ctx, s.network, s.remote.String())
	s.mu.Lock()
	s.dialing = false
	switch {
	case s.closed:
		if nc != nil {
			nc.Close()
		}
		s.mu.Unlock()
		return
	case err != nil:
		s.dialErr = unwrapOp(err)
	default:
		s.nc = nc
		s.local = addrPortOf(nc.LocalAddr())
		s.startStream()
	}
	s.mu.Unlock()
	s.signal(Writable)
}

func (s *psock) acceptLoop() {
	defer s.wg.Done()
	var delay time.Duration
	aborted := 0
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return
			}
			err = unwrapOp(err)
			if abortedBeforeAccept(err) && aborted < 8 {
				aborted++ // that connection is gone; take the next one
				continue
			}
			if !abortedBeforeAccept(err) {
				// EMFILE and the like: the Manager logs it.
				s.mu.Lock()
				s.aerr = err
				s.mu.Unlock()
				s.signal(Readable)
			}
			// Pause before trying again instead of spinning, growing from
			// 5 ms to 1 s while errors persist, as the net/http server does.
			delay = min(max(2*delay, 5*time.Millisecond), acceptBackoff)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-s.done:
				t.Stop()
				return
			}
			continue
		}
		delay, aborted = 0, 0
		s.mu.Lock()
		for len(s.accepted) >= acceptQueueLen && !s.closed {
			s.acond.Wait()
		}
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.accepted = append(s.accepted, acceptedConn{nc, addrPortOf(nc.RemoteAddr())})
		s.mu.Unlock()
		s.signal(Readable)
	}
}

func (s *psock) readLoop() {
	defer s.wg.Done()
	large := false
	for {
		s.mu.Lock()
		for s.inBytes >= inLimit && !s.closed {
			s.rcond.Wait()
		}
		closed := s.closed
		s.mu.Unlock()
		if closed {
			return
		}
		want := 1
		if large {
			want = chunkSize
		}
		bp := readBufs.get(want)
		n, err := s.nc.Read(*bp)
		large = n == len(*bp)
		s.mu.Lock()
		if n > 0 && !s.closed {
			*bp = (*bp)[:n]
			s.in = append(s.in, bp)
			s.inBytes += n
		} else {
			readBufs.put(bp)
		}
		if err != nil && s.rerr == nil {
			s.rerr = unwrapOp(err)
		}
		s.mu.Unlock()
		switch {
		case err != nil:
			s.signal(Readable | Hangup)
			return
		case n > 0:
			s.signal(Readable)
		}
	}
}

func (s *psock) writeLoop() {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		for len(s.out) == 0 && !s.shutdown && !s.closed {
			s.wcond.Wait()
		}
		if s.closed {
			s.mu.Unlock()
			return
		}
		if len(s.out) == 0 { // shutdown requested and everything is out
			s.mu.Unlock()
			var err error
			if cw, ok := s.nc.(interface{ CloseWrite() error }); ok {
				err = cw.CloseWrite()
			}
			if err != nil {
				s.fail(err)
			}
			return
		}
		buf, bufp := s.out, s.outp
		s.out, s.outp = nil, nil
		s.inflight = len(buf)
		s.mu.Unlock()

		var err error
		for off := 0; off < len(buf) && err == nil; {
			var n int
			n, err = s.nc.Write(buf[off:min(len(buf), off+writeChunk)])
			off += n
		}
		s.mu.Lock()
		s.inflight = 0
		s.mu.Unlock()
		outBufs.put(bufp)
		if err != nil {
			s.fail(err)
			return
		}
		s.signal(Writable)
	}
}

func (s *psock) fail(err error) {
	s.mu.Lock()
	if s.werr == nil {
		s.werr = unwrapOp(err)
	}
	s.mu.Unlock()
	s.signal(Writable | Failed)
}

func (s *psock) datagramLoop() {
	defer s.wg.Done()
	buf := make([]byte, dgramMax)
	for {
		n, from, err := s.pc.ReadFromUDPAddrPort(buf)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return
		}
		if err != nil {
			if !s.udpPeer {
				// An unconnected socket has no peer to fail: Windows
				// reports an earlier datagram's ICMP "port unreachable"
				// here (WSAECONNRESET), which must not end a server.
				s.mu.Unlock()
				continue
			}
			// A connected socket's peer is unreachable: that is final.
			s.rerr = err
			s.mu.Unlock()
			s.signal(Readable)
			return
		} else if len(s.dgrams) < dgramQueueLen {
			s.dgrams = append(s.dgrams, datagram{append([]byte(nil), buf[:n]...), netip.AddrPortFrom(from.Addr().Unmap(), from.Port())})
		}
		s.mu.Unlock()
		s.signal(Readable)
	}
}

func (s *psock) Accept() (Socket, netip.AddrPort, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.accepted) == 0 {
		if err := s.aerr; err != nil {
			s.aerr = nil
			return nil, netip.AddrPort{}, err
		}
		return nil, netip.AddrPort{}, ErrWouldBlock
	}
	a := s.accepted[0]
	s.accepted[0] = acceptedConn{}
	s.accepted = s.accepted[1:]
	if len(s.accepted) == 0 {
		s.accepted = nil
	}
	s.acond.Signal()
	c := s.d.newSock()
	c.network = "tcp"
	c.nc = a.nc
	c.local = addrPortOf(a.nc.LocalAddr())
	c.remote = a.remote
	return c, a.remote, nil
}

func (s *psock) ConnectDone() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.dialing:
		return ErrWouldBlock
	case s.dialErr != nil:
		return s.dialErr
	}
	return nil
}

func (s *psock) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pc != nil {
		if len(s.dgrams) > 0 {
			n, _ := s.popDatagram(p)
			return n, nil
		}
		if err := s.rerr; err != nil {
			s.rerr = nil
			return 0, err
		}
		return 0, ErrWouldBlock
	}
	if s.inBytes == 0 {
		// A reset is reported to one system call only: if the writer got
		// it, the reader sees a plain EOF, which must not pass for an
		// orderly close.
		if s.werr != nil && (s.rerr == nil || s.rerr == io.EOF) {
			return 0, s.werr
		}
		if s.rerr != nil {
			return 0, s.rerr
		}
		return 0, ErrWouldBlock
	}
	n := 0
	for n < len(p) && len(s.in) > 0 {
		c := copy(p[n:], (*s.in[0])[s.inOff:])
		n += c
		s.inOff += c
		if s.inOff == len(*s.in[0]) {
			readBufs.put(s.in[0])
			s.in[0] = nil
			s.in = s.in[1:]
			s.inOff = 0
		}
	}
	if len(s.in) == 0 {
		s.in = s.inSlots[:0]
	}
	wasFull := s.inBytes >= inLimit
	s.inBytes -= n
	if wasFull && s.inBytes < inLimit {
		s.rcond.Signal()
	}
	return n, nil
}

func (s *psock) popDatagram(p []byte) (int, netip.AddrPort) {
	g := s.dgrams[0]
	s.dgrams[0] = datagram{}
	s.dgrams = s.dgrams[1:]
	if len(s.dgrams) == 0 {
		s.dgrams = nil
	}
	return copy(p, g.data), g.from
}

func (s *psock) ReadFrom(p []byte) (int, netip.AddrPort, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.dgrams) > 0 {
		n, from := s.popDatagram(p)
		return n, from, nil
	}
	if err := s.rerr; err != nil {
		return 0, netip.AddrPort{}, err
	}
	return 0, netip.AddrPort{}, ErrWouldBlock
}

func (s *psock) Write(p []byte) (int, error) {
	if s.pc != nil {
		return s.pc.Write(p)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.werr != nil {
		return 0, s.werr
	}
	if s.closed || s.shutdown {
		return 0, net.ErrClosed
	}
	room := outLimit - len(s.out) - s.inflight
	if room <= 0 {
		return 0, ErrWouldBlock
	}
	n := min(room, len(p))
	if len(s.out)+n > cap(s.out) {
		// Never more than outLimit is queued, so the large buffer
		// always has room: append does not reallocate.
		bp := outBufs.get(len(s.out) + n)
		nb := append((*bp)[:0], s.out...)
		if s.outp != nil {
			outBufs.put(s.outp)
		}
		s.out, s.outp = nb, bp
	}
	s.out = append(s.out, p[:n]...)
	s.wcond.Signal()
	if n < len(p) {
		return n, ErrWouldBlock
	}
	return n, nil
}

func (s *psock) WriteTo(p []byte, to netip.AddrPort) (int, error) {
	if s.pc == nil {
		return 0, errors.New("write to: not a datagram socket")
	}
	return s.pc.WriteToUDPAddrPort(p, to)
}

func (s *psock) Buffered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.out) + s.inflight
}

func (s *psock) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.werr != nil {
		return s.werr
	}
	if s.rerr != nil && s.rerr != io.EOF && s.inBytes == 0 {
		return s.rerr
	}
	return nil
}

func (s *psock) CloseWrite() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nc == nil {
		return nil
	}
	s.shutdown = true
	s.wcond.Signal()
	return nil
}

func (s *psock) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.closed = true
	if s.done != nil {
		close(s.done)
	}
	s.rcond.Broadcast()
	s.wcond.Broadcast()
	s.acond.Broadcast()
	nc, ln, pc, cancel := s.nc, s.ln, s.pc, s.cancel
	unsent := len(s.out)+s.inflight > 0 && s.werr == nil
	s.mu.Unlock()

	var err error
	if cancel != nil {
		cancel()
	}
	if nc != nil && unsent {
		// Bytes Write accepted are sent, as the epoll driver's are already
		// in the kernel: a TLS close_notify or alert queued just before
		// Close must reach the peer. The deadline bounds it when the peer
		// reads nothing.
		err = s.flushOnClose(nc)
	} else if nc != nil {
		err = nc.Close()
	}
	if ln != nil {
		err = ln.Close()
	}
	if pc != nil {
		err = pc.Close()
	}
	s.wg.Wait() // every goroutine of this socket has returned

	s.mu.Lock()
	for _, a := range s.accepted {
		a.nc.Close()
	}
	s.accepted = nil
	for _, b := range s.in {
		readBufs.put(b)
	}
	if s.outp != nil {
		outBufs.put(s.outp)
	}
	s.in, s.out, s.outp, s.dgrams = nil, nil, nil, nil
	s.mu.Unlock()

	d := s.d
	d.mu.Lock()
	s.started = false
	for i, r := range d.ready {
		if r == s {
			d.ready = append(d.ready[:i], d.ready[i+1:]...)
			break
		}
	}
	d.mu.Unlock()
	return err
}

// flushOnClose stops the reader, lets the writer finish within
// closeFlushTimeout, writes what is left of the output and closes nc.
func (s *psock) flushOnClose(nc net.Conn) error {
	nc.SetReadDeadline(time.Unix(1, 0)) // the reader returns at once
	nc.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
	s.wg.Wait()
	s.mu.Lock()
	out, werr := s.out, s.werr
	s.out = nil
	s.mu.Unlock()
	if werr == nil && len(out) > 0 {
		nc.Write(out)
	}
	return nc.Close()
}

func (s *psock) LocalAddr() netip.AddrPort { return s.local }

func addrPortOf(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case *net.UDPAddr:
		ap = a.AddrPort()
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// unwrapOp drops the net package's "read tcp a->b:" wrapping, leaving the
// system call's error (such as "read: connection reset by peer", or
// "wsarecv: ..." on Windows), so both drivers report errors alike; on
// Windows the error also matches the POSIX errno (see errno_windows.go).
func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		err = op.Err
	}
	return portableErrno(err)
}

// abortedBeforeAccept reports an accept error that concerns one pending
// connection only (its peer reset or gave up), not the listener.
func abortedBeforeAccept(err error) bool {
	return errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ENOTCONN) // Wine's AcceptEx reports a reset pending connection so
}
