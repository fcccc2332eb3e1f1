package driver

import (
	"errors"
	"syscall"
)

// Windows reports socket errors as WSA codes (WSAECONNRESET is 10054), and
// Go's syscall.ECONNRESET on Windows is an invented value that does not
// match them. So that errors.Is(err, syscall.ECONNRESET) holds for a reset
// on every platform, the portable driver's errors also match the POSIX
// names.
var wsaToPOSIX = map[syscall.Errno]syscall.Errno{
	10048: syscall.EADDRINUSE,    // WSAEADDRINUSE
	10049: syscall.EADDRNOTAVAIL, // WSAEADDRNOTAVAIL
	10053: syscall.ECONNABORTED,  // WSAECONNABORTED
	10054: syscall.ECONNRESET,    // WSAECONNRESET
	10057: syscall.ENOTCONN,      // WSAENOTCONN
	10058: syscall.EPIPE,         // WSAESHUTDOWN: sending after the socket was shut down
	10060: syscall.ETIMEDOUT,     // WSAETIMEDOUT
	10061: syscall.ECONNREFUSED,  // WSAECONNREFUSED
	10051: syscall.ENETUNREACH,   // WSAENETUNREACH
	10065: syscall.EHOSTUNREACH,  // WSAEHOSTUNREACH
	64:    syscall.ECONNRESET,    // ERROR_NETNAME_DELETED: a reset seen by overlapped I/O
}

func portableErrno(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if posix, ok := wsaToPOSIX[errno]; ok {
			return &mappedError{err, posix}
		}
	}
	return err
}

// mappedError is err, which also matches posix with errors.Is.
type mappedError struct {
	err   error
	posix syscall.Errno
}

func (e *mappedError) Error() string   { return e.err.Error() }
func (e *mappedError) Unwrap() []error { return []error{e.err, e.posix} }
