// Package driver moves raw bytes between the operating system and Meerkat's
// connections, and reports readiness to the event loop.
//
// Every method of a Driver and a Socket is called from the one goroutine that
// runs the event loop, except Driver.Wake, which is safe from any goroutine.
// No method blocks: a read, write, accept or connect that cannot make progress
// returns ErrWouldBlock, and the socket's next readiness is reported by Wait.
//
// Readiness is edge-like: after an operation returned ErrWouldBlock, Wait
// reports the socket again once that operation can make progress (data, EOF
// or an error for reads; room or an error for writes; a finished connect).
// A stream read that returned fewer bytes than asked for has emptied the
// socket, and the next data is reported too — unless Hangup was reported:
// then the peer's EOF or error is already there (its edge came with the
// data), and reading must go on until it is seen.
// A socket may be reported when nothing changed; the caller then sees
// ErrWouldBlock again, which is harmless. Only ErrWouldBlock means "try later":
// every other error is final for the socket.
package driver

import (
	"errors"
	"net/netip"
	"os"
	"time"
)

// ErrWouldBlock is returned by non-blocking operations that cannot proceed
// now. It is never returned for a failed connection.
var ErrWouldBlock = errors.New("operation would block")

// Readiness tells what Wait observed for a socket.
type Readiness uint8

const (
	Readable Readiness = 1 << iota // read/accept may make progress
	Writable                       // write may make progress; a connect finished
	Failed                         // the socket holds an error (see Socket.Err)
	Hangup                         // the peer closed or reset: EOF or an error waits behind the data
)

// Socket is one OS socket (listening, stream or datagram) owned by a Driver.
type Socket interface {
	// Start registers the socket: from now on Wait reports its readiness
	// together with tok.
	Start(tok any) error
	// Accept returns a pending connection of a listening socket, not yet
	// started, and the peer's address.
	Accept() (Socket, netip.AddrPort, error)
	// ConnectDone reports the outcome of a Dial: ErrWouldBlock while it is in
	// progress, nil once connected, or the reason it failed.
	ConnectDone() error
	// Read reads received bytes; io.EOF after the peer's orderly close.
	Read(p []byte) (int, error)
	// ReadFrom reads one datagram of a datagram socket and its sender.
	ReadFrom(p []byte) (int, netip.AddrPort, error)
	// Write writes bytes; it may write fewer than len(p) and then return
	// ErrWouldBlock.
	Write(p []byte) (int, error)
	// WriteTo sends one datagram of a datagram socket.
	WriteTo(p []byte, to netip.AddrPort) (int, error)
	// Buffered is how many bytes Write accepted that have not yet been handed
	// to the operating system (always 0 for drivers that write directly).
	Buffered() int
	// Err returns the socket's pending error, if any, without consuming data.
	Err() error
	// CloseWrite shuts down the sending side once Buffered bytes are out.
	CloseWrite() error
	// Close releases the socket and everything the driver holds for it. Once
	// it returns, no goroutine of the driver works for this socket any more.
	Close() error
	// LocalAddr is the socket's own address (a listener on port 0 reports
	// the port it got).
	LocalAddr() netip.AddrPort
}

// Driver creates sockets and waits for their readiness.
type Driver interface {
	// Name is "epoll" or "portable".
	Name() string
	// Listen opens a listening TCP socket ("tcp") or a bound UDP socket
	// ("udp"). Errors such as an address in use are returned at once.
	Listen(network string, addr netip.AddrPort) (Socket, error)
	// Dial starts connecting to addr; the socket reports Writable once
	// ConnectDone can tell the outcome. UDP sockets are connected at once.
	Dial(network string, addr netip.AddrPort) (Socket, error)
	// Wait blocks up to timeout (0: do not block) until a socket is ready or
	// Wake is called, then calls ready for each ready socket.
	Wait(timeout time.Duration, ready func(tok any, r Readiness)) error
	// Wake makes a current or the next Wait return early. Safe from any
	// goroutine.
	Wake()
	// Close releases the driver. Sockets must be closed first.
	Close() error
}

// New returns the driver named name ("epoll" or "portable"), or the
// platform's default for "".
func New(name string) (Driver, error) {
	switch name {
	case "":
		return newDefault()
	case "portable":
		return NewPortable(), nil
	case "epoll":
		return newEpoll()
	}
	return nil, errors.New("driver: unknown driver " + `"` + name + `"` + ` (want "epoll" or "portable")`)
}

// Names lists the drivers available on this platform, the default first.
func Names() []string { return available }

// FileSender is implemented by sockets that can send a file's bytes without
// copying them through user space (the epoll driver, with sendfile(2)).
type FileSender interface {
	// SendFile sends up to n bytes of f from offset off; it returns the
	// bytes sent, and ErrWouldBlock when the socket is full.
	SendFile(f *os.File, off int64, n int) (int, error)
}
