//go:build linux

package driver

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The epoll driver: non-blocking descriptors, edge-triggered epoll, an
// eventfd for Wake, and no goroutine per connection. Every read, write,
// accept and connect is a direct system call on the Poll goroutine.

var available = []string{"epoll", "portable"}

func newDefault() (Driver, error) { return newEpoll() }

const maxEvents = 512

type epollDriver struct {
	epfd    int
	epf     *os.File           // epfd, registered with the Go runtime's poller
	eprc    syscall.RawConn    // epf's, to wait for events without holding a thread
	waitFn  func(uintptr) bool // d.pollReady, bound once: Wait allocates nothing
	n       int                // pollReady's results
	err     error
	evfd    int
	events  []unix.EpollEvent
	socks   []*esock // indexed by descriptor
	waking  atomic.Bool
	backlog int
}

type esockKind uint8

const (
	kindListener esockKind = iota
	kindStream
	kindDgram
)

type esock struct {
	d          *epollDriver
	fd         int
	kind       esockKind
	family     int
	connecting bool
	tok        any
	local      netip.AddrPort
}

func newEpoll() (Driver, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, os.NewSyscallError("eventfd", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		unix.Close(evfd)
		unix.Close(epfd)
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	// Waiting is done by the Go runtime's poller, on which the epoll
	// descriptor itself is readable when events are ready: the Poll
	// goroutine parks like any goroutine blocked on the network instead of
	// sitting in epoll_wait on a thread that keeps its P, so that other
	// goroutines (TLS handshakes, the application's) run at once, even with
	// GOMAXPROCS=1, instead of after sysmon takes the P back (20 us to
	// 10 ms).
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(evfd)
		unix.Close(epfd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	epf := os.NewFile(uintptr(epfd), "epoll")
	rc, err := epf.SyscallConn()
	if err != nil {
		unix.Close(evfd)
		epf.Close()
		return nil, err
	}
	d := &epollDriver{
		epfd:    epfd,
		epf:     epf,
		eprc:    rc,
		evfd:    evfd,
		events:  make([]unix.EpollEvent, maxEvents),
		backlog: listenBacklog(),
	}
	d.waitFn = d.pollReady
	return d, nil
}

// listenBacklog is the kernel's limit, as the net package uses.
func listenBacklog() int {
	b, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n > 0 {
			return min(n, 1<<16-1)
		}
	}
	return unix.SOMAXCONN
}

func (d *epollDriver) Name() string { return "epoll" }

func (d *epollDriver) socket(family, typ int) (int, error) {
	fd, err := unix.Socket(family, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	return fd, nil
}

func (d *epollDriver) Listen(network string, addr netip.AddrPort) (Socket, error) {
	typ, kind := unix.SOCK_STREAM, kindListener
	if network == "udp" {
		typ, kind = unix.SOCK_DGRAM, kindDgram
	}
	sa, family := toSockaddr(addr)
	fd, err := d.socket(family, typ)
	if err != nil {
		return nil, err
	}
	fail := func(op string, err error) (Socket, error) {
		unix.Close(fd)
		return nil, os.NewSyscallError(op, err)
	}
	if kind == kindListener {
		// As the net package does: let a restarted server bind at once
		// while old connections sit in TIME_WAIT.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return fail("setsockopt", err)
		}
	}
	if family == unix.AF_INET6 && addr.Addr().IsUnspecified() {
		// "[::]" accepts IPv4 too, as the net package's wildcard does.
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
			return fail("setsockopt", err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fail("bind", err)
	}
	if kind == kindListener {
		if err := unix.Listen(fd, d.backlog); err != nil {
			return fail("listen", err)
		}
	}
	s := &esock{d: d, fd: fd, kind: kind, family: family}
	if lsa, err := unix.Getsockname(fd); err == nil {
		s.local = fromSockaddr(lsa)
	}
	return s, nil
}

func (d *epollDriver) Dial(network string, addr netip.AddrPort) (Socket, error) {
	typ, kind := unix.SOCK_STREAM, kindStream
	if network == "udp" {
		typ, kind = unix.SOCK_DGRAM, kindDgram
	}
	sa, family := toSockaddr(addr)
	fd, err := d.socket(family, typ)
	if err != nil {
		return nil, err
	}
	if kind == kindStream {
		// Small writes go out at once, as with the net package's default.
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	}
	s := &esock{d: d, fd: fd, kind: kind, family: family}
	for {
		err = unix.Connect(fd, sa)
		if err != unix.EINTR {
			break
		}
	}
	switch err {
	case nil:
	case unix.EINPROGRESS:
		s.connecting = true
	default:
		unix.Close(fd)
		return nil, os.NewSyscallError("connect", err)
	}
	return s, nil
}

func (d *epollDriver) Wait(timeout time.Duration, ready func(tok any, r Readiness)) error {
	n, err := d.poll()
	if err == nil && n == 0 && timeout > 0 {
		// Nothing ready: park until the epoll descriptor is readable or
		// the timeout passes. Read calls the function again whenever the
		// runtime's poller says so; false means "wait again".
		d.epf.SetReadDeadline(time.Now().Add(timeout))
		rerr := d.eprc.Read(d.waitFn)
		if rerr != nil && !errors.Is(rerr, os.ErrDeadlineExceeded) {
			return rerr
		}
		n, err = d.n, d.err
	}
	if err != nil {
		return os.NewSyscallError("epoll_wait", err)
	}
	for i := range n {
		ev := &d.events[i]
		fd := int(ev.Fd)
		if fd == d.evfd {
			var buf [8]byte
			unix.Read(d.evfd, buf[:])
			// Cleared before the caller looks at its queue, so a Wake that
			// races with this Wait is never lost (see Wake).
			d.waking.Store(false)
			continue
		}
		if fd >= len(d.socks) || d.socks[fd] == nil {
			continue
		}
		var r Readiness
		e := ev.Events
		if e&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			r |= Readable
		}
		if e&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			r |= Writable
		}
		if e&unix.EPOLLERR != 0 {
			r |= Failed
		}
		if e&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			r |= Hangup
		}
		ready(d.socks[fd].tok, r)
	}
	return nil
}

// Wake writes to the eventfd at most once per Wait: later callers see the
// flag set and know a wakeup is already on its way.
func (d *epollDriver) Wake() {
	if d.waking.CompareAndSwap(false, true) {
		one := [8]byte{1}
		unix.Write(d.evfd, one[:])
	}
}

// pollReady is the eprc.Read callback: it polls, and reports whether to
// stop waiting.
func (d *epollDriver) pollReady(uintptr) bool {
	d.n, d.err = d.poll()
	return d.n != 0 || d.err != nil
}

// poll takes the events ready now, without waiting.
func (d *epollDriver) poll() (int, error) {
	for {
		n, err := unix.EpollWait(d.epfd, d.events, 0)
		if err != unix.EINTR {
			return max(n, 0), err
		}
	}
}

func (d *epollDriver) Close() error {
	unix.Close(d.evfd)
	return d.epf.Close()
}

func (s *esock) Start(tok any) error {
	s.tok = tok
	d := s.d
	for s.fd >= len(d.socks) {
		d.socks = append(d.socks, nil)
	}
	d.socks[s.fd] = s
	ev := unix.EpollEvent{
		Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET,
		Fd:     int32(s.fd),
	}
	if err := unix.EpollCtl(d.epfd, unix.EPOLL_CTL_ADD, s.fd, &ev); err != nil {
		d.socks[s.fd] = nil
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

func (s *esock) Accept() (Socket, netip.AddrPort, error) {
	for {
		fd, sa, err := unix.Accept4(s.fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		switch err {
		case nil:
			unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
			return &esock{d: s.d, fd: fd, kind: kindStream}, fromSockaddr(sa), nil
		case unix.EAGAIN:
			return nil, netip.AddrPort{}, ErrWouldBlock
		case unix.EINTR, unix.ECONNABORTED:
			// A connection reset while queued: take the next one.
			continue
		default:
			return nil, netip.AddrPort{}, os.NewSyscallError("accept4", err)
		}
	}
}

func (s *esock) ConnectDone() error {
	if !s.connecting {
		return nil
	}
	v, err := unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return os.NewSyscallError("getsockopt", err)
	}
	if v != 0 {
		return os.NewSyscallError("connect", unix.Errno(v))
	}
	if _, err := unix.Getpeername(s.fd); err != nil {
		if err == unix.ENOTCONN {
			return ErrWouldBlock
		}
		return os.NewSyscallError("getpeername", err)
	}
	s.connecting = false
	return nil
}

func (s *esock) Read(p []byte) (int, error) {
	for {
		n, err := unix.Read(s.fd, p)
		switch {
		case err == nil && n == 0 && len(p) > 0:
			return 0, io.EOF
		case err == nil:
			return n, nil
		case err == unix.EAGAIN:
			return 0, ErrWouldBlock
		case err == unix.EINTR:
			continue
		}
		return 0, os.NewSyscallError("read", err)
	}
}

func (s *esock) ReadFrom(p []byte) (int, netip.AddrPort, error) {
	for {
		n, sa, err := unix.Recvfrom(s.fd, p, 0)
		switch err {
		case nil:
			return n, fromSockaddr(sa), nil
		case unix.EAGAIN:
			return 0, netip.AddrPort{}, ErrWouldBlock
		case unix.EINTR:
			continue
		}
		return 0, netip.AddrPort{}, os.NewSyscallError("recvfrom", err)
	}
}

func (s *esock) Write(p []byte) (int, error) {
	for {
		n, err := unix.Write(s.fd, p)
		switch err {
		case nil:
			if n < len(p) {
				return n, ErrWouldBlock
			}
			return n, nil
		case unix.EAGAIN:
			return 0, ErrWouldBlock
		case unix.EINTR:
			continue
		}
		return 0, os.NewSyscallError("write", err)
	}
}

func (s *esock) WriteTo(p []byte, to netip.AddrPort) (int, error) {
	sa, family := toSockaddr(to)
	if family != s.family {
		if s.family == unix.AF_INET {
			return 0, errors.New("sendto: IPv6 destination on an IPv4 socket")
		}
		// A dual-stack socket reaches IPv4 peers through mapped addresses.
		sa = &unix.SockaddrInet6{Port: int(to.Port()), Addr: to.Addr().As16()}
	}
	for {
		err := unix.Sendto(s.fd, p, 0, sa)
		switch err {
		case nil:
			return len(p), nil
		case unix.EAGAIN:
			return 0, ErrWouldBlock
		case unix.EINTR:
			continue
		}
		return 0, os.NewSyscallError("sendto", err)
	}
}

func (s *esock) Buffered() int { return 0 }

func (s *esock) Err() error {
	v, err := unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return os.NewSyscallError("getsockopt", err)
	}
	if v != 0 {
		return os.NewSyscallError("socket", unix.Errno(v))
	}
	return nil
}

func (s *esock) CloseWrite() error {
	if err := unix.Shutdown(s.fd, unix.SHUT_WR); err != nil && err != unix.ENOTCONN {
		return os.NewSyscallError("shutdown", err)
	}
	return nil
}

func (s *esock) Close() error {
	if s.fd < 0 {
		return net.ErrClosed
	}
	if s.fd < len(s.d.socks) && s.d.socks[s.fd] == s {
		s.d.socks[s.fd] = nil
	}
	// close(2) also removes the descriptor from the epoll set.
	err := unix.Close(s.fd)
	s.fd = -1
	if err != nil {
		return os.NewSyscallError("close", err)
	}
	return nil
}

func (s *esock) LocalAddr() netip.AddrPort {
	if !s.local.IsValid() && s.fd >= 0 {
		if sa, err := unix.Getsockname(s.fd); err == nil {
			s.local = fromSockaddr(sa)
		}
	}
	return s.local
}

func interfaceIndex(name string) (int, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return 0, err
	}
	return ifi.Index, nil
}

func (s *esock) SendFile(f *os.File, off int64, n int) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var sent int
	var serr error
	err = rc.Control(func(fd uintptr) {
		for {
			o := off
			sent, serr = unix.Sendfile(s.fd, int(fd), &o, n)
			if serr != unix.EINTR {
				return
			}
		}
	})
	switch {
	case err != nil:
		return 0, err
	case serr == unix.EAGAIN:
		return max(sent, 0), ErrWouldBlock
	case serr != nil:
		return 0, os.NewSyscallError("sendfile", serr)
	}
	return sent, nil
}
