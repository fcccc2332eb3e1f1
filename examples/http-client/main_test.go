package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// echoTarget answers with the method and target it got, 404 for /missing.
var echoTarget = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/missing" {
		http.NotFound(w, r)
		return
	}
	fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.RequestURI(), r.UserAgent())
})

func TestFetchHTTP(t *testing.T) {
	ts := httptest.NewServer(echoTarget)
	defer ts.Close()
	var out strings.Builder
	status, err := fetch(ts.URL+"/hello?x=1&y=%20", nil, 5*time.Second, &out)
	if err != nil || status != 200 || out.String() != "GET /hello?x=1&y=%20 meerkat-example" {
		t.Fatalf("fetch: %d %v %q", status, err, out.String())
	}
	out.Reset()
	status, err = fetch(ts.URL+"/missing", nil, 5*time.Second, &out)
	if err != nil || status != 404 || !strings.Contains(out.String(), "not found") {
		t.Fatalf("fetch /missing: %d %v %q", status, err, out.String())
	}
}

func TestFetchHTTPS(t *testing.T) {
	ts := httptest.NewUnstartedServer(echoTarget)
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
	ts.StartTLS()
	defer ts.Close()
	roots := x509.NewCertPool()
	roots.AddCert(ts.Certificate())
	var out strings.Builder
	status, err := fetch(ts.URL+"/secure", &tls.Config{RootCAs: roots}, 5*time.Second, &out)
	if err != nil || status != 200 || out.String() != "GET /secure meerkat-example" {
		t.Fatalf("fetch: %d %v %q", status, err, out.String())
	}
	// With the system's roots, httptest's certificate is refused.
	out.Reset()
	status, err = fetch(ts.URL+"/secure", nil, 5*time.Second, &out)
	var verr *tls.CertificateVerificationError
	if !errors.As(err, &verr) || status != 0 || out.Len() != 0 {
		t.Fatalf("fetch with system roots: %d %v %q, want a certificate verification error", status, err, out.String())
	}
}

func TestFetchTimeout(t *testing.T) {
	// A server that accepts and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			defer nc.Close()
		}
	}()
	start := time.Now()
	var out strings.Builder
	status, err := fetch("http://"+ln.Addr().String()+"/", nil, 200*time.Millisecond, &out)
	if elapsed := time.Since(start); err == nil || status != 0 || !strings.Contains(err.Error(), "no response within") || elapsed > 3*time.Second {
		t.Fatalf("fetch from a silent server: %d %v after %v", status, err, elapsed)
	}
}
