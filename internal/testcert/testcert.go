// Package testcert makes throwaway certificates for tests and benchmarks: a
// CA, and leaf certificates it signs for any set of names, valid or expired.
// Keys are ECDSA P-256, which keeps handshakes cheap under the race detector.
package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"sync/atomic"
	"time"
)

// CA is a certificate authority for tests.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	Pool *x509.CertPool // holds just this CA, for RootCAs and ClientCAs
	PEM  []byte         // the CA certificate, PEM-encoded (for openssl -CAfile)
}

var serial atomic.Int64

// NewCA creates a CA valid from an hour ago for a day.
func NewCA(name string) *CA {
	key := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial.Add(1)),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der := must(x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key))
	cert := must(x509.ParseCertificate(der))
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{Cert: cert, Key: key, Pool: pool, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// Leaf returns a server and client certificate for names (DNS names or IP
// literals), valid from an hour ago for a day.
func (ca *CA) Leaf(names ...string) tls.Certificate {
	return ca.LeafValid(time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour), names...)
}

// Expired returns a certificate for names that expired an hour ago.
func (ca *CA) Expired(names ...string) tls.Certificate {
	return ca.LeafValid(time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour), names...)
}

// LeafValid returns a certificate for names valid between from and until.
func (ca *CA) LeafValid(from, until time.Time, names ...string) tls.Certificate {
	key := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)),
		NotBefore:    from,
		NotAfter:     until,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if len(names) > 0 {
		tmpl.Subject.CommonName = names[0]
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der := must(x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key))
	leaf := must(x509.ParseCertificate(der))
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// PEM returns a certificate and its key PEM-encoded, for programs such as
// openssl that read files.
func PEM(c tls.Certificate) (certPEM, keyPEM []byte) {
	for _, der := range c.Certificate {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	keyDER := must(x509.MarshalPKCS8PrivateKey(c.PrivateKey))
	return certPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

// Default is a CA and a certificate for "localhost", "127.0.0.1" and "::1",
// made once per process.
var Default = func() struct {
	CA   *CA
	Cert tls.Certificate
} {
	ca := NewCA("Meerkat Test CA")
	return struct {
		CA   *CA
		Cert tls.Certificate
	}{ca, ca.Leaf("localhost", "127.0.0.1", "::1")}
}()

// ServerConfig returns a server configuration with the Default certificate.
func ServerConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{Default.Cert}}
}

// ClientConfig returns a client configuration that trusts the Default CA.
func ClientConfig() *tls.Config {
	return &tls.Config{RootCAs: Default.CA.Pool}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic("testcert: " + err.Error())
	}
	return v
}
