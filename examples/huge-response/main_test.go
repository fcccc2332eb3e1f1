package main

import (
	"context"
	"hash/crc32"
	"io"
	"net/http"
	"runtime"
	"testing"
	"time"
)

// heapWatcher is the body reader of the test: it hashes what it reads and
// samples the heap in use every few MiB.
type heapWatcher struct {
	r       io.Reader
	n, next int64
	maxHeap uint64
}

func (w *heapWatcher) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	w.n += int64(n)
	if w.n >= w.next {
		w.next += 4 << 20
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		w.maxHeap = max(w.maxHeap, ms.HeapInuse)
	}
	return n, err
}

// expectedCRC is the CRC-32 of the body the example generates.
func expectedCRC(size int64) uint32 {
	h := crc32.NewIEEE()
	buf := make([]byte, piece)
	for off := int64(0); off < size; off += piece {
		fill(buf, off)
		h.Write(buf[:min(piece, size-off)])
	}
	return h.Sum32()
}

func TestHugeResponse(t *testing.T) {
	const size = 64<<20 + 123 // not a multiple of a piece or a line
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, "http://127.0.0.1:0", size, func(a string) { addrc <- a }) }()
	base := "http://" + <-addrc
	client := &http.Client{Timeout: 30 * time.Second}
	want := expectedCRC(size)

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	baseline := ms.HeapInuse

	for _, path := range []string{"/", "/?chunked"} {
		resp, err := client.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		wantLength := int64(size)
		if path != "/" {
			wantLength = -1 // chunked
		}
		if resp.StatusCode != 200 || resp.ContentLength != wantLength {
			t.Fatalf("GET %s: %d, length %d, want %d", path, resp.StatusCode, resp.ContentLength, wantLength)
		}
		w := &heapWatcher{r: resp.Body}
		h := crc32.NewIEEE()
		n, err := io.Copy(h, w)
		resp.Body.Close()
		if err != nil || n != size || h.Sum32() != want {
			t.Fatalf("GET %s: %d bytes, %v, CRC %08x; want %d bytes, CRC %08x", path, n, err, h.Sum32(), size, want)
		}
		// Server and client share this process: together they must stay
		// far below the body's size (GC slack included).
		if grew := int64(w.maxHeap) - int64(baseline); grew > 16<<20 {
			t.Errorf("GET %s: heap in use grew by %d MiB while streaming %d MiB", path, grew>>20, size>>20)
		}
	}

	// A client that leaves mid-body: the pump stops, the server goes on.
	resp, err := client.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(io.Discard, resp.Body, 1<<20); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close() // closes the connection: the body was not read to its end
	resp, err = client.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != size {
		t.Fatalf("after an abandoned download: %d bytes, %v", n, err)
	}

	client.CloseIdleConnections()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}

func TestStopLetsDownloadsFinish(t *testing.T) {
	const size = 32 << 20 // more than the socket buffers hold, so the pump still runs after the stop
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, "http://127.0.0.1:0", size, func(a string) { addrc <- a }) }()
	resp, err := http.Get("http://" + <-addrc + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h := crc32.NewIEEE()
	if _, err := io.CopyN(h, resp.Body, 1<<20); err != nil {
		t.Fatal(err)
	}
	cancel() // as Ctrl-C does: the listener closes, the response in progress goes on
	n, err := io.Copy(h, resp.Body)
	if err != nil || n != size-1<<20 || h.Sum32() != expectedCRC(size) {
		t.Fatalf("after the stop: %d more bytes, %v, CRC %08x; want %d, CRC %08x", n, err, h.Sum32(), size-1<<20, expectedCRC(size))
	}
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}
