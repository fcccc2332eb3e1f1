package harness

import (
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// The epoll load: every client's socket in one epoll set, served by one
// goroutine with non-blocking read and write system calls, level-triggered.
// Per round trip it costs one write and (mostly) one read, and an
// epoll_wait shared by every socket ready at once: about half of what a
// goroutine per connection costs in the Go scheduler and netpoller, so that
// the load, on its one CPU, can keep up with a fast server.

const wsEpollAvailable = true

// wsEpollConn is one client in the epoll loop.
type wsEpollConn struct {
	c       *wsClient
	fd      int
	in      []byte // bytes received of the current echo
	out     []byte // the part of the frame still to write
	waitOut bool   // registered for EPOLLOUT
}

// wsRunEpoll runs the closed loop on clients (each has done its first
// round trip through its net.Conn, which stays idle meanwhile) until stop,
// and returns the round trips completed while counting.
func wsRunEpoll(clients []*wsClient, counting, stop *atomic.Bool, deadline time.Time) (n int64, err error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return 0, fmt.Errorf("epoll_create1: %w", err)
	}
	defer syscall.Close(epfd)
	conns := make([]wsEpollConn, len(clients))
	for i, c := range clients {
		if c.br.Buffered() > 0 {
			return 0, errors.New("unread bytes before the epoll loop")
		}
		fd, err := wsRawFD(c.nc)
		if err != nil {
			return 0, err
		}
		ec := &conns[i]
		ec.c, ec.fd = c, fd
		ec.in = make([]byte, 0, len(c.msg)+64)
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(i)}
		if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return 0, fmt.Errorf("epoll_ctl: %w", err)
		}
	}
	for i := range conns {
		conns[i].out = conns[i].c.frame
		if err := conns[i].send(epfd, int32(i)); err != nil {
			return 0, err
		}
	}
	events := make([]syscall.EpollEvent, 512)
	for !stop.Load() {
		k, err := syscall.EpollWait(epfd, events, 100)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			return n, fmt.Errorf("epoll_wait: %w", err)
		}
		if k == 0 && time.Now().After(deadline) {
			return n, errors.New("no echo before the deadline")
		}
		for _, ev := range events[:k] {
			ec := &conns[ev.Fd]
			if ev.Events&syscall.EPOLLOUT != 0 && len(ec.out) > 0 {
				if err := ec.send(epfd, ev.Fd); err != nil {
					return n, err
				}
			}
			if ev.Events&(syscall.EPOLLIN|syscall.EPOLLERR|syscall.EPOLLHUP) == 0 {
				continue
			}
			done, err := ec.receive()
			if err != nil {
				return n, err
			}
			if !done {
				continue
			}
			if counting.Load() {
				n++
			}
			if stop.Load() {
				break
			}
			ec.out = ec.c.frame
			if err := ec.send(epfd, ev.Fd); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// send writes what is left of the frame (ec.out); what the socket does not
// take waits for EPOLLOUT.
func (ec *wsEpollConn) send(epfd int, idx int32) error {
	for len(ec.out) > 0 {
		n, err := syscall.Write(ec.fd, ec.out)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			if !ec.waitOut {
				ec.waitOut = true
				ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLOUT, Fd: idx}
				return syscall.EpollCtl(epfd, syscall.EPOLL_CTL_MOD, ec.fd, &ev)
			}
			return nil
		case err != nil:
			return fmt.Errorf("write: %w", err)
		}
		ec.out = ec.out[n:]
	}
	if ec.waitOut {
		ec.waitOut = false
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: idx}
		return syscall.EpollCtl(epfd, syscall.EPOLL_CTL_MOD, ec.fd, &ev)
	}
	return nil
}

// receive reads what the socket has and reports whether the whole echo
// is in, checked. Echoes must come in one frame.
func (ec *wsEpollConn) receive() (bool, error) {
	for {
		if len(ec.in) == cap(ec.in) {
			ec.in = append(ec.in, 0)[:len(ec.in)]
		}
		n, err := syscall.Read(ec.fd, ec.in[len(ec.in):cap(ec.in)])
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("read: %w", err)
		}
		if n == 0 {
			return false, errors.New("server closed the connection")
		}
		ec.in = ec.in[:len(ec.in)+n]
		break
	}
	b0, hl, plen, ok, err := wsFrameHeader(ec.in)
	if err != nil || !ok || uint64(len(ec.in)) < uint64(hl)+plen {
		return false, err
	}
	if uint64(len(ec.in)) > uint64(hl)+plen {
		return false, errors.New("more than one frame for one message")
	}
	if b0&0x80 == 0 {
		return false, errors.New("fragmented echo (the epoll load takes whole frames only)")
	}
	ec.c.echoLen = int(plen)
	err = ec.c.checkEcho(b0&0x0f, b0&0x40 != 0, ec.in[hl:])
	ec.in = ec.in[:0]
	return err == nil, err
}

// wsRawFD returns the socket of a net.TCPConn; the net.Conn keeps it open
// (and non-blocking) and must not be used while the fd is.
func wsRawFD(nc net.Conn) (int, error) {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return 0, fmt.Errorf("%T is not a TCP connection", nc)
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return 0, err
	}
	fd := -1
	if err := rc.Control(func(s uintptr) { fd = int(s) }); err != nil {
		return 0, err
	}
	return fd, nil
}
