package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startUploader runs the example on a free port, storing into a new
// directory; it returns the base URL, the directory and a client. Cleanup
// stops it and checks that run returned cleanly.
func startUploader(t *testing.T, maxSize int64) (string, string, *http.Client) {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, "http://127.0.0.1:0", dir, maxSize, func(a string) { addrc <- a }) }()
	var base string
	select {
	case a := <-addrc:
		base = "http://" + a
	case err := <-done:
		t.Fatalf("run: %v", err)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	t.Cleanup(func() {
		client.CloseIdleConnections()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return base, dir, client
}

// post sends body and returns the status and the reply.
func post(t *testing.T, client *http.Client, url, contentType string, body []byte) (int, string) {
	t.Helper()
	resp, err := client.Post(url, contentType, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s: reply: %v", url, err)
	}
	return resp.StatusCode, string(reply)
}

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed)})
	r.Read(b)
	return b
}

func checkFile(t *testing.T, name string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(name)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes (%v), want %d", name, len(got), err, len(want))
	}
}

func TestPage(t *testing.T) {
	base, _, client := startUploader(t, 1<<20)
	resp, err := client.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(string(body), `enctype="multipart/form-data"`) || !strings.Contains(string(body), "&offset=") {
		t.Fatalf("GET /: %d %q %v\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), err, body)
	}
}

func TestMultipartUpload(t *testing.T) {
	base, dir, client := startUploader(t, 1<<20)
	files := map[string][]byte{"a.txt": []byte("hello\r\n--not a boundary\r\n"), "b.bin": randomBytes(300<<10, 1)}
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	mw.WriteField("comment", "not a file")
	for _, name := range []string{"a.txt", "b.bin"} {
		w, _ := mw.CreateFormFile("files", name)
		w.Write(files[name])
	}
	// A path as a client may send it: only its last element is used.
	w, _ := mw.CreateFormFile("files", `C:\Users\me\c.txt`)
	w.Write([]byte("third"))
	mw.Close()
	status, reply := post(t, client, base+"/upload", mw.FormDataContentType(), form.Bytes())
	if status != 200 || reply != "stored a.txt\nstored b.bin\nstored c.txt\n" {
		t.Fatalf("multipart upload: %d %q", status, reply)
	}
	checkFile(t, filepath.Join(dir, "a.txt"), files["a.txt"])
	checkFile(t, filepath.Join(dir, "b.bin"), files["b.bin"])
	checkFile(t, filepath.Join(dir, "c.txt"), []byte("third"))

	// Refusals: a name that would leave the directory, a file over the
	// limit, a body that is not a form, a form without a file.
	form.Reset()
	mw = multipart.NewWriter(&form)
	w, _ = mw.CreateFormFile("files", "..")
	w.Write([]byte("x"))
	mw.Close()
	if status, reply := post(t, client, base+"/upload", mw.FormDataContentType(), form.Bytes()); status != 400 {
		t.Errorf("file named '..': %d %q", status, reply)
	}
	form.Reset()
	mw = multipart.NewWriter(&form)
	w, _ = mw.CreateFormFile("files", "big.bin")
	w.Write(make([]byte, 1<<20+1))
	mw.Close()
	if status, reply := post(t, client, base+"/upload", mw.FormDataContentType(), form.Bytes()); status != 413 {
		t.Errorf("file over the limit: %d %q", status, reply)
	}
	if status, reply := post(t, client, base+"/upload", "text/plain", []byte("hi")); status != 400 {
		t.Errorf("not a form: %d %q", status, reply)
	}
	form.Reset()
	mw = multipart.NewWriter(&form)
	mw.WriteField("comment", "no file")
	mw.Close()
	if status, reply := post(t, client, base+"/upload", mw.FormDataContentType(), form.Bytes()); status != 400 {
		t.Errorf("form without a file: %d %q", status, reply)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("directory holds %d entries, want the 3 stored files", len(entries))
	}
}

func TestMultipartOverRecvLimit(t *testing.T) {
	base, dir, client := startUploader(t, 16<<20)
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	w, _ := mw.CreateFormFile("files", "huge.bin")
	w.Write(make([]byte, 3<<20)) // more than the default RecvLimit
	mw.Close()
	if status, reply := post(t, client, base+"/upload", mw.FormDataContentType(), form.Bytes()); status != 413 {
		t.Errorf("form over RecvLimit: %d %q, want 413", status, reply)
	}
	if _, err := os.Stat(filepath.Join(dir, "huge.bin")); err == nil {
		t.Errorf("huge.bin was stored")
	}
}

func TestPieceUpload(t *testing.T) {
	const piece = 64 << 10
	base, dir, client := startUploader(t, 1<<20)
	data := randomBytes(5*piece+1234, 2) // what the page's script would send
	for off := 0; off < len(data); off += piece {
		end := min(off+piece, len(data))
		url := fmt.Sprintf("%s/upload?file=%s&offset=%d", base, "big%20file.bin", off)
		status, reply := post(t, client, url, "application/octet-stream", data[off:end])
		if status != 200 || reply != fmt.Sprintf("%d\n", end-off) {
			t.Fatalf("piece at %d: %d %q", off, status, reply)
		}
	}
	checkFile(t, filepath.Join(dir, "big file.bin"), data)

	// An empty file is one empty piece.
	if status, reply := post(t, client, base+"/upload?file=empty&offset=0", "", nil); status != 200 || reply != "0\n" {
		t.Fatalf("empty file: %d %q", status, reply)
	}
	checkFile(t, filepath.Join(dir, "empty"), nil)

	for _, tc := range []struct {
		query  string
		body   []byte
		status int
	}{
		{"file=big%20file.bin&offset=5", []byte("x"), 400}, // not the file's size
		{"file=..%2Fevil&offset=0", []byte("x"), 400},      // leaves the directory
		{"file=&offset=0", []byte("x"), 400},               // no name
		{"file=x&offset=-1", []byte("x"), 400},             // not a number
		{"file=too-big&offset=0", make([]byte, 1<<20+1), 413},
	} {
		if status, reply := post(t, client, base+"/upload?"+tc.query, "", tc.body); status != tc.status {
			t.Errorf("?%s: %d %q, want %d", tc.query, status, reply, tc.status)
		}
	}
	checkFile(t, filepath.Join(dir, "big file.bin"), data) // untouched by the refused piece
	if _, err := os.Stat(filepath.Join(dir, "..", "evil")); err == nil {
		t.Errorf("a file was written outside the directory")
	}

	// Offset 0 starts the file again.
	if status, _ := post(t, client, base+"/upload?file=big%20file.bin&offset=0", "", []byte("new")); status != 200 {
		t.Fatalf("restart: %d", status)
	}
	checkFile(t, filepath.Join(dir, "big file.bin"), []byte("new"))
}
