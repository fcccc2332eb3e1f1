package meerkat

import "errors"

// Errors that Meerkat reports with EvError or returns. Test for them with
// errors.Is: the error passed to a handler may wrap one with detail.
var (
	// ErrClosed is returned by calls on a Manager that was closed, and by
	// Listen and Connect once Shutdown has begun.
	ErrClosed = errors.New("meerkat: manager closed")
	// ErrConnectTimeout ends a connection that did not connect (including
	// name resolution) within Manager.ConnectTimeout.
	ErrConnectTimeout = errors.New("meerkat: connect timeout")
	// ErrTLSHandshakeTimeout ends a connection whose TLS handshake did not
	// finish within Manager.TLSHandshakeTimeout.
	ErrTLSHandshakeTimeout = errors.New("meerkat: TLS handshake timeout")
	// ErrIdleTimeout ends a connection that neither sent nor received a byte
	// for Manager.IdleTimeout.
	ErrIdleTimeout = errors.New("meerkat: idle timeout")
	// ErrSendLimit is logged when Send refuses data because the send buffer
	// would exceed Manager.SendLimit.
	ErrSendLimit = errors.New("meerkat: send buffer limit reached")
	// ErrTLSAlreadyStarted is returned by a second TLSInit.
	ErrTLSAlreadyStarted = errors.New("meerkat: TLS already initialized on this connection")
	// ErrHTTPTruncated is reported (wrapped, with EvError) when an HTTP
	// response ends before its Content-Length or its last chunk.
	ErrHTTPTruncated = errors.New("meerkat: http response truncated")
	// ErrNoCertificate is returned when a TLS server connection has no
	// certificate to present.
	ErrNoCertificate = errors.New("meerkat: TLS server needs a certificate: set Manager.TLSConfig or call TLSInit in EvAccept")
)
