package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

func TestEmbeddedUI(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, "http://127.0.0.1:0", func(a string) { addrc <- a }) }()
	base := "http://" + <-addrc
	client := &http.Client{Timeout: 5 * time.Second}

	get := func(path string, header ...string) (*http.Response, []byte) {
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
		return resp, body
	}

	// Each file comes from the embedded copy, byte for byte, with its type.
	for path, file := range map[string]struct{ name, ctype string }{
		"/":           {"web/index.html", "text/html"},
		"/index.html": {"web/index.html", "text/html"},
		"/style.css":  {"web/style.css", "text/css"},
		"/app.js":     {"web/app.js", "javascript"},
	} {
		want, err := os.ReadFile(file.name)
		if err != nil {
			t.Fatal(err)
		}
		resp, body := get(path)
		if resp.StatusCode != 200 || string(body) != string(want) || !strings.Contains(resp.Header.Get("Content-Type"), file.ctype) ||
			resp.Header.Get("Cache-Control") != "no-cache" {
			t.Errorf("GET %s: %d %q %q, %d bytes; want %s (%d bytes)", path, resp.StatusCode,
				resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"), len(body), file.name, len(want))
		}
		// A revalidation with the ETag costs a 304 and no body.
		etag := resp.Header.Get("ETag")
		if resp, body := get(path, "If-None-Match", etag); etag == "" || resp.StatusCode != 304 || len(body) != 0 {
			t.Errorf("GET %s with If-None-Match %q: %d, %d bytes; want 304", path, etag, resp.StatusCode, len(body))
		}
	}

	var status struct {
		Uptime   string
		Requests int
	}
	resp, body := get("/api/status")
	if err := json.Unmarshal(body, &status); err != nil || resp.StatusCode != 200 || status.Requests != 9 || status.Uptime == "" {
		t.Errorf("GET /api/status: %d %s (%v); want 9 requests", resp.StatusCode, body, err)
	}

	// Only what web/ holds is served: not the program's other files, nor
	// web/ under its own name.
	for _, path := range []string{"/main.go", "/web/index.html", "/missing.png", "/../main.go"} {
		if resp, _ := get(path); resp.StatusCode != 404 && resp.StatusCode != 400 {
			t.Errorf("GET %s: %d, want 404 or 400", path, resp.StatusCode)
		}
	}

	client.CloseIdleConnections()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}
