package main

import (
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meerkat-net/meerkat"
)

const size = 32<<20 + 7 // far more than the default RecvLimit (2 MiB)

// content is the body the test server sends: size pseudo-random bytes.
func content() io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{42}), size)
}

func newServer(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/length", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		io.Copy(w, content())
	})
	mux.HandleFunc("/chunked", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, content()) // no length: net/http sends it chunked
	})
	mux.HandleFunc("/short", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		io.CopyN(w, content(), size/2) // then net/http closes the connection
	})
	mux.HandleFunc("/stall", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		io.CopyN(w, content(), 1000)
		w.(http.Flusher).Flush()
		<-r.Context().Done() // until the client gives up
	})
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts
}

func sum(r io.Reader) [32]byte {
	h := sha256.New()
	io.Copy(h, r)
	return [32]byte(h.Sum(nil))
}

func TestStreamingDownload(t *testing.T) {
	ts := newServer(t)
	want := sum(content())
	for _, path := range []string{"/length", "/chunked"} {
		// Written to a file, as with -o.
		name := filepath.Join(t.TempDir(), "download")
		f, err := os.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		var progress strings.Builder
		n, err := download(ts.URL+path, f, &progress, 10*time.Second)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil || n != size {
			t.Fatalf("%s: %d bytes, %v", path, n, err)
		}
		f, err = os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		got := sum(f)
		f.Close()
		if got != want {
			t.Fatalf("%s: the file differs from what was sent", path)
		}
		last := progress.String()[strings.LastIndexByte(progress.String(), '\r')+1:]
		wantLast := "33554439 of 33554439 bytes (100%)\n"
		if path == "/chunked" {
			wantLast = "33554439 bytes\n"
		}
		if last != wantLast {
			t.Errorf("%s: last progress line %q, want %q", path, last, wantLast)
		}
	}
}

func TestStreamingDownloadFailures(t *testing.T) {
	ts := newServer(t)
	n, err := download(ts.URL+"/short", io.Discard, io.Discard, 10*time.Second)
	if !errors.Is(err, meerkat.ErrHTTPTruncated) || n != size/2 {
		t.Errorf("body cut short: %d bytes, %v; want %d and ErrHTTPTruncated", n, err, size/2)
	}
	start := time.Now()
	n, err = download(ts.URL+"/stall", io.Discard, io.Discard, 300*time.Millisecond)
	if !errors.Is(err, meerkat.ErrIdleTimeout) || n != 1000 || time.Since(start) > 5*time.Second {
		t.Errorf("stalled body: %d bytes, %v after %v; want 1000 and ErrIdleTimeout", n, err, time.Since(start))
	}
	n, err = download(ts.URL+"/missing", io.Discard, io.Discard, 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "404") || n != 0 {
		t.Errorf("missing: %d bytes, %v; want a 404 error", n, err)
	}
}
