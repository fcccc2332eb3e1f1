package interop

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meerkat-net/meerkat"
	"github.com/meerkat-net/meerkat/internal/testcert"
)

// drivers are the Meerkat drivers of this platform.
var drivers = []string{"epoll", "portable"}

// writePEM writes the test CA and the localhost certificate and key into a
// temporary directory for programs that read files.
func writePEM(t *testing.T) (caFile, certFile, keyFile string) {
	dir := t.TempDir()
	certPEM, keyPEM := testcert.PEM(testcert.Default.Cert)
	caFile = filepath.Join(dir, "ca.pem")
	certFile = filepath.Join(dir, "cert.pem")
	keyFile = filepath.Join(dir, "key.pem")
	for name, b := range map[string][]byte{caFile: testcert.Default.CA.PEM, certFile: certPEM, keyFile: keyPEM} {
		if err := os.WriteFile(name, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return
}

func need(t *testing.T, prog string) {
	t.Helper()
	if _, err := exec.LookPath(prog); err != nil {
		t.Fatalf("%s is not installed (.ci/run installs it): %v", prog, err)
	}
}

// lineServer answers the first line it receives with "echo: LINE" and then
// drains: the reply, close_notify and the close must reach the peer.
func lineServer(c *meerkat.Conn, ev meerkat.Event, data any) {
	if ev != meerkat.EvRead {
		return
	}
	b := c.Recv().Bytes()
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		c.Printf("echo: %s", b[:i+1])
		c.Recv().Consume(i + 1)
		c.Drain()
	}
}

// runPeer starts cmd, polls m until it exits, and returns its output.
func runPeer(t *testing.T, m *meerkat.Manager, cmd *exec.Cmd) string {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: %v\n%s", cmd.Path, err, out.String())
			}
			return out.String()
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("%s did not finish:\n%s", cmd.Path, out.String())
		}
		m.Poll(10 * time.Millisecond)
	}
}

// TestOpenSSLClientAgainstMeerkatServer: openssl s_client, TLS 1.2 and 1.3,
// gets the reply and the orderly close from a Meerkat https listener.
func TestOpenSSLClientAgainstMeerkatServer(t *testing.T) {
	need(t, "openssl")
	caFile, _, _ := writePEM(t)
	for _, drv := range drivers {
		for _, ver := range []string{"-tls1_2", "-tls1_3"} {
			t.Run(drv+ver, func(t *testing.T) {
				m, err := meerkat.NewManagerDriver(drv)
				if err != nil {
					t.Fatal(err)
				}
				defer m.Close()
				m.TLSConfig = testcert.ServerConfig()
				l, err := m.Listen("https://127.0.0.1:0", lineServer)
				if err != nil {
					t.Fatal(err)
				}
				port := strconv.Itoa(int(l.LocalAddr().Port()))
				cmd := exec.Command("openssl", "s_client", "-connect", "127.0.0.1:"+port,
					"-servername", "localhost", "-CAfile", caFile, "-verify_return_error",
					ver, "-quiet", "-ign_eof")
				cmd.Stdin = strings.NewReader("hello meerkat\n")
				out := runPeer(t, m, cmd)
				if !strings.Contains(out, "echo: hello meerkat") {
					t.Fatalf("openssl output lacks the reply:\n%s", out)
				}
			})
		}
	}
}

// TestGnuTLSClientAgainstMeerkatServer: a second, independent TLS stack.
func TestGnuTLSClientAgainstMeerkatServer(t *testing.T) {
	need(t, "gnutls-cli")
	caFile, _, _ := writePEM(t)
	for _, drv := range drivers {
		for _, prio := range []string{"NORMAL:-VERS-ALL:+VERS-TLS1.2", "NORMAL:-VERS-ALL:+VERS-TLS1.3"} {
			t.Run(drv+"/"+prio[len(prio)-6:], func(t *testing.T) {
				m, err := meerkat.NewManagerDriver(drv)
				if err != nil {
					t.Fatal(err)
				}
				defer m.Close()
				m.TLSConfig = testcert.ServerConfig()
				l, err := m.Listen("https://127.0.0.1:0", lineServer)
				if err != nil {
					t.Fatal(err)
				}
				cmd := exec.Command("gnutls-cli", "--x509cafile", caFile, "--priority", prio,
					"-p", strconv.Itoa(int(l.LocalAddr().Port())), "localhost")
				cmd.Stdin = strings.NewReader("hello gnutls\n")
				out := runPeer(t, m, cmd)
				if !strings.Contains(out, "echo: hello gnutls") {
					t.Fatalf("gnutls-cli output lacks the reply:\n%s", out)
				}
			})
		}
	}
}

// TestMeerkatClientAgainstOpenSSLServer: a Meerkat https client reads an
// openssl s_server response to the end — every byte before EvClose, though
// the server closes right after writing.
func TestMeerkatClientAgainstOpenSSLServer(t *testing.T) {
	need(t, "openssl")
	_, certFile, keyFile := writePEM(t)
	for _, drv := range drivers {
		for _, ver := range []string{"-tls1_2", "-tls1_3"} {
			t.Run(drv+ver, func(t *testing.T) {
				port := freePort(t)
				srv := exec.Command("openssl", "s_server", "-accept", "127.0.0.1:"+port,
					"-cert", certFile, "-key", keyFile, ver, "-www")
				var srvOut bytes.Buffer
				srv.Stdout, srv.Stderr = &srvOut, &srvOut
				if err := srv.Start(); err != nil {
					t.Fatal(err)
				}
				defer func() {
					srv.Process.Kill()
					srv.Wait()
				}()
				waitListening(t, "127.0.0.1:"+port)

				m, err := meerkat.NewManagerDriver(drv)
				if err != nil {
					t.Fatal(err)
				}
				defer m.Close()
				m.TLSConfig = testcert.ClientConfig()
				var body []byte
				var errs []error
				closed := false
				_, err = m.Connect("https://localhost:"+port, func(c *meerkat.Conn, ev meerkat.Event, data any) {
					switch ev {
					case meerkat.EvTLSHandshake:
						c.Printf("GET / HTTP/1.0\r\n\r\n")
					case meerkat.EvRead:
						body = append(body, c.Recv().Bytes()...)
						c.Recv().Consume(c.Recv().Len())
					case meerkat.EvError:
						errs = append(errs, data.(error))
					case meerkat.EvClose:
						closed = true
					}
				})
				if err != nil {
					t.Fatal(err)
				}
				for deadline := time.Now().Add(20 * time.Second); !closed; {
					if time.Now().After(deadline) {
						t.Fatalf("no EvClose; got %q\nserver: %s", body, srvOut.String())
					}
					m.Poll(10 * time.Millisecond)
				}
				if len(errs) > 0 {
					t.Fatalf("errors %v; got %q", errs, body)
				}
				s := string(body)
				if !strings.HasPrefix(s, "HTTP/1.0 200 ok") || !strings.Contains(s, "</BODY></HTML>") {
					t.Fatalf("incomplete response (%d bytes):\n%s", len(body), s)
				}
			})
		}
	}
}
