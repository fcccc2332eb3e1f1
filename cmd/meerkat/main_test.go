package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// binary is the meerkat command built once for the tests that run it as a
// process (as "go run ./cmd/meerkat" would).
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "meerkat-cmd-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "meerkat")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		panic("go build: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runCmd runs the command in-process and returns its exit status and
// output.
func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := run(ctx, args, stdio{in: strings.NewReader(""), out: &out, err: &errb})
	return code, out.String(), errb.String()
}

// serveProc is a "meerkat serve" process.
type serveProc struct {
	cmd  *exec.Cmd
	urls []string
	out  *bufio.Scanner
	done chan error
}

var urlRE = regexp.MustCompile(`on (https?://\S+)`)

// startServe starts the binary with args in dir and waits until every
// listener has printed its URL.
func startServe(t *testing.T, dir string, listeners int, args ...string) *serveProc {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"serve"}, args...)...)
	cmd.Dir = dir
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serveProc{cmd: cmd, out: bufio.NewScanner(stdout), done: make(chan error, 1)}
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	lines := make(chan string)
	go func() {
		for p.out.Scan() {
			lines <- p.out.Text()
		}
		close(lines)
		p.done <- cmd.Wait()
	}()
	timeout := time.After(15 * time.Second)
	for len(p.urls) < listeners {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatal("meerkat serve exited before listening")
			}
			if m := urlRE.FindStringSubmatch(line); m != nil {
				p.urls = append(p.urls, m[1])
			}
			if strings.Contains(line, "fingerprint") {
				t.Log(line)
			}
		case <-timeout:
			t.Fatal("meerkat serve printed no URL")
		}
	}
	go func() { // keep draining the access log
		for range lines {
		}
	}()
	return p
}

// stop sends SIGINT and expects exit status 0.
func (p *serveProc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("meerkat serve after SIGINT: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("meerkat serve did not exit after SIGINT")
	}
}

func get(t *testing.T, client *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func tempRoot(t *testing.T) string {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello, meerkat\n"), 0o644)
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "sub", "index.html"), []byte("<h1>sub</h1>"), 0o644)
	return dir
}

// TestServeWithoutArguments: the README's first command serves the current
// directory on http://localhost:8000 with a listing, and SIGINT ends it
// with status 0.
func TestServeWithoutArguments(t *testing.T) {
	dir := tempRoot(t)
	p := startServe(t, dir, 1)
	if p.urls[0] != "http://localhost:8000/" {
		t.Fatalf("printed %q, want http://localhost:8000/", p.urls[0])
	}
	code, body := get(t, http.DefaultClient, p.urls[0])
	if code != 200 || !strings.Contains(body, "hello.txt") || !strings.Contains(body, "sub/") {
		t.Fatalf("listing: %d\n%s", code, body)
	}
	if code, body := get(t, http.DefaultClient, p.urls[0]+"hello.txt"); code != 200 || body != "hello, meerkat\n" {
		t.Fatalf("file: %d %q", code, body)
	}
	p.stop(t)
}

// TestServeHTTPSSelfSigned: an https listener without --cert makes a
// certificate, prints its fingerprint, and serves over TLS.
func TestServeHTTPSSelfSigned(t *testing.T) {
	dir := tempRoot(t)
	p := startServe(t, dir, 2, "--listen", "http://127.0.0.1:0", "--listen", "https://127.0.0.1:0")
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for _, u := range p.urls {
		if code, body := get(t, insecure, u+"hello.txt"); code != 200 || body != "hello, meerkat\n" {
			t.Fatalf("%s: %d %q", u, code, body)
		}
	}
	// meerkat get verifies certificates unless --insecure.
	https := p.urls[1] + "hello.txt"
	if code, _, errOut := runCmd(t, "get", https); code != exitFailure || !strings.Contains(errOut, "certificate") {
		t.Fatalf("get without --insecure: status %d, %q", code, errOut)
	}
	if code, out, errOut := runCmd(t, "get", "--insecure", https); code != exitOK || out != "hello, meerkat\n" {
		t.Fatalf("get --insecure: status %d, %q, %q", code, out, errOut)
	}
	p.stop(t)
}

// TestServeAuthCORSAndUploads: --auth, --cors and --upload.
func TestServeAuthCORSAndUploads(t *testing.T) {
	dir := tempRoot(t)
	p := startServe(t, dir, 1, "--listen", "http://127.0.0.1:0", "--auth", "ann:secret", "--cors", "--upload")
	base := p.urls[0]
	if code, _ := get(t, http.DefaultClient, base+"hello.txt"); code != 401 {
		t.Fatalf("without credentials: %d, want 401", code)
	}
	authed := strings.Replace(base, "http://", "http://ann:secret@", 1)
	resp, err := http.Get(authed + "hello.txt")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("with credentials: %d, CORS %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	// PUT, streamed.
	big := bytes.Repeat([]byte("0123456789"), 300000)
	req, _ := http.NewRequest("PUT", authed+"put.bin", bytes.NewReader(big))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 201 {
		t.Fatalf("PUT: %v %v", resp, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "put.bin")); !bytes.Equal(b, big) {
		t.Fatalf("PUT stored %d bytes, want %d", len(b), len(big))
	}
	// Multipart form into a subdirectory.
	var form bytes.Buffer
	w := multipart.NewWriter(&form)
	fw, _ := w.CreateFormFile("file", "form.txt")
	fw.Write([]byte("from a form"))
	w.Close()
	req, _ = http.NewRequest("POST", authed+"sub/", &form)
	req.Header.Set("Content-Type", w.FormDataContentType())
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if resp, err := noRedirect.Do(req); err != nil || resp.StatusCode != 303 {
		t.Fatalf("multipart POST: %v %v", resp, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "sub", "form.txt")); string(b) != "from a form" {
		t.Fatalf("multipart stored %q", b)
	}
	// Traversal in an upload is refused.
	req, _ = http.NewRequest("PUT", authed+"..%2f..%2fescape.txt", strings.NewReader("x"))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 400 {
		t.Fatalf("PUT outside the root: %v %v", resp, err)
	}
	p.stop(t)
}

// TestGetAndPost: meerkat get/post against a meerkat serve, with -o, -i, -H
// and the exit statuses.
func TestGetAndPost(t *testing.T) {
	dir := tempRoot(t)
	p := startServe(t, dir, 1, "--listen", "http://127.0.0.1:0", "--upload")
	base := p.urls[0]
	code, out, _ := runCmd(t, "get", base+"hello.txt")
	if code != exitOK || out != "hello, meerkat\n" {
		t.Fatalf("get: %d %q", code, out)
	}
	code, out, _ = runCmd(t, "get", "-i", base+"hello.txt")
	if code != exitOK || !strings.HasPrefix(out, "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(out, "\r\n\r\nhello, meerkat\n") {
		t.Fatalf("get -i: %d %q", code, out)
	}
	saved := filepath.Join(t.TempDir(), "saved.txt")
	if code, _, _ = runCmd(t, "get", base+"hello.txt", "-o", saved, "-H", "X-Test: 1"); code != exitOK {
		t.Fatalf("get -o: %d", code)
	}
	if b, _ := os.ReadFile(saved); string(b) != "hello, meerkat\n" {
		t.Fatalf("saved %q", b)
	}
	if code, _, errOut := runCmd(t, "get", base+"missing"); code != exitHTTPError {
		t.Fatalf("get of a missing file: %d %q, want %d", code, errOut, exitHTTPError)
	}
	if code, _, _ = runCmd(t, "post", base+"?file=posted.txt&offset=0", "-d", "posted data"); code != exitOK {
		t.Fatalf("post: %d", code)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "posted.txt")); string(b) != "posted data" {
		t.Fatalf("posted %q", b)
	}
	p.stop(t)
	if code, _, errOut := runCmd(t, "get", base); code != exitFailure || errOut == "" {
		t.Fatalf("get from a stopped server: %d %q", code, errOut)
	}
}

// TestUsage: help texts and bad command lines.
func TestUsage(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"--help"}, {"serve", "--help"}, {"get", "--help"}, {"help", "post"}} {
		code, out, _ := runCmd(t, args...)
		if code != exitOK || !strings.Contains(out, "Usage:") {
			t.Errorf("%v: %d %q", args, code, out)
		}
	}
	for _, args := range [][]string{{}, {"fly"}, {"get"}, {"get", "a", "b"}, {"get", "-H", "bad", "x"}, {"serve", "-v", "loud"}, {"serve", "--listen", "ftp://x"}, {"get", "ftp://x"}} {
		if code, _, _ := runCmd(t, args...); code != exitUsage {
			t.Errorf("%v: status %d, want %d", args, code, exitUsage)
		}
	}
}
