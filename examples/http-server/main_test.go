package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHTTPServer(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "index.html"), []byte("<h1>home</h1>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "notes.txt"), []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, "http://127.0.0.1:0", root, func(a string) { addrc <- a }) }()
	base := "http://" + <-addrc
	client := &http.Client{Timeout: 5 * time.Second}

	get := func(path string, header ...string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest("GET", base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s: body: %v", path, err)
		}
		return resp, string(body)
	}
	getJSON := func(path string, wantStatus int, v any) {
		t.Helper()
		resp, body := get(path)
		if resp.StatusCode != wantStatus || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("GET %s: %d %q, want %d application/json", path, resp.StatusCode, resp.Header.Get("Content-Type"), wantStatus)
		}
		if err := json.Unmarshal([]byte(body), v); err != nil {
			t.Fatalf("GET %s: %v in %q", path, err, body)
		}
	}

	var hello map[string]string
	getJSON("/api/hello/meerkat%20pup", 200, &hello)
	if hello["greeting"] != "Hello, meerkat pup!" {
		t.Errorf("greeting: %q", hello["greeting"])
	}
	var sum map[string]int
	getJSON("/api/sum/2/40", 200, &sum)
	if sum["a"] != 2 || sum["b"] != 40 || sum["sum"] != 42 {
		t.Errorf("sum: %v", sum)
	}
	var bad map[string]string
	getJSON("/api/sum/2/x", 400, &bad)
	if bad["error"] == "" {
		t.Errorf("sum of a non-number: %v", bad)
	}

	// Everything else comes from the directory.
	if resp, body := get("/"); resp.StatusCode != 200 || body != "<h1>home</h1>\n" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("GET /: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	resp, body := get("/notes.txt")
	if resp.StatusCode != 200 || body != "0123456789" {
		t.Errorf("GET /notes.txt: %d %q", resp.StatusCode, body)
	}
	if resp, body := get("/notes.txt", "Range", "bytes=2-4"); resp.StatusCode != 206 || body != "234" {
		t.Errorf("range: %d %q", resp.StatusCode, body)
	}
	if resp, _ := get("/notes.txt", "If-None-Match", resp.Header.Get("ETag")); resp.StatusCode != 304 {
		t.Errorf("If-None-Match with the ETag: %d, want 304", resp.StatusCode)
	}
	if resp, _ := get("/api/hello/a/b"); resp.StatusCode != 404 {
		t.Errorf("GET /api/hello/a/b ('*' stops at '/'): %d, want 404", resp.StatusCode)
	}
	if resp, _ := get("/missing.txt"); resp.StatusCode != 404 {
		t.Errorf("GET /missing.txt: %d, want 404", resp.StatusCode)
	}

	client.CloseIdleConnections()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}
