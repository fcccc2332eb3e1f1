package harness

import (
	"crypto/tls"

	"github.com/meerkat-net/meerkat/internal/testcert"
)

// The servers present Meerkat's test certificate (ECDSA P-256: cheap
// handshakes, for localhost, 127.0.0.1 and ::1). Load clients skip
// verification: the benchmarks measure the servers, not certificate checks.

// ServerTLSConfig returns a server configuration with the test certificate.
func ServerTLSConfig() (*tls.Config, error) {
	return testcert.ServerConfig(), nil
}

// ClientTLSConfig returns the load clients' configuration: no verification,
// no ALPN (so net/http speaks HTTP/1.1).
func ClientTLSConfig() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true}
}
