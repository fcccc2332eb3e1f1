package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestRESTAPI(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, "http://127.0.0.1:0", func(a string) { addrc <- a }) }()
	base := "http://" + <-addrc
	client := &http.Client{Timeout: 5 * time.Second}

	// call sends a request and checks the status; it decodes a JSON body
	// into out when out is not nil.
	call := func(method, path, body string, wantStatus int, out any) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s %s: body: %v", method, path, err)
		}
		if resp.StatusCode != wantStatus {
			t.Fatalf("%s %s: status %d (%s), want %d", method, path, resp.StatusCode, data, wantStatus)
		}
		if out != nil {
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("%s %s: Content-Type %q", method, path, ct)
			}
			if err := json.Unmarshal(data, out); err != nil {
				t.Fatalf("%s %s: %v in %q", method, path, err, data)
			}
		}
		return resp
	}

	var list []Item
	call("GET", "/api/items", "", 200, &list)
	if len(list) != 0 {
		t.Fatalf("initial list: %v", list)
	}
	var milk, eggs Item
	resp := call("POST", "/api/items", `{"name":"milk"}`, 201, &milk)
	if milk != (Item{ID: 1, Name: "milk"}) || resp.Header.Get("Location") != "/api/items/1" {
		t.Fatalf("created %+v at %q", milk, resp.Header.Get("Location"))
	}
	call("POST", "/api/items", `{"name":"eggs","done":true}`, 201, &eggs)
	if eggs != (Item{ID: 2, Name: "eggs", Done: true}) {
		t.Fatalf("created %+v", eggs)
	}

	var got Item
	call("GET", "/api/items/1", "", 200, &got)
	if got != milk {
		t.Fatalf("GET /api/items/1: %+v", got)
	}
	call("PUT", "/api/items/1", `{"name":"oat milk","done":true}`, 200, &got)
	if got != (Item{ID: 1, Name: "oat milk", Done: true}) {
		t.Fatalf("PUT: %+v", got)
	}
	call("GET", "/api/items", "", 200, &list)
	if len(list) != 2 || list[0] != got || list[1] != eggs {
		t.Fatalf("list: %+v", list)
	}

	// Errors, each a JSON object with an "error" member.
	var e map[string]string
	for _, tc := range []struct {
		method, path, body string
		status             int
	}{
		{"POST", "/api/items", `{"name":`, 400},
		{"POST", "/api/items", `{"name":42}`, 400},
		{"POST", "/api/items", `{}`, 400},
		{"PUT", "/api/items/2", `not json`, 400},
		{"GET", "/api/items/9", "", 404},
		{"GET", "/api/items/x", "", 404},
		{"PUT", "/api/items/9", `{"name":"x"}`, 404},
		{"DELETE", "/api/items", "", 405},
		{"PATCH", "/api/items/2", `{}`, 405},
		{"GET", "/api/other", "", 404},
	} {
		e = nil
		resp := call(tc.method, tc.path, tc.body, tc.status, &e)
		if e["error"] == "" {
			t.Errorf("%s %s: no error message", tc.method, tc.path)
		}
		if tc.status == 405 && resp.Header.Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow", tc.method, tc.path)
		}
	}

	call("DELETE", "/api/items/1", "", 204, nil)
	call("GET", "/api/items/1", "", 404, nil)
	call("DELETE", "/api/items/1", "", 404, nil)
	call("GET", "/api/items", "", 200, &list)
	if len(list) != 1 || list[0] != eggs {
		t.Fatalf("list after DELETE: %+v", list)
	}

	client.CloseIdleConnections()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}
