package main

import (
	"bufio"
	"context"
	"net"
	"testing"
)

func TestEchoServer(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, "tcp://127.0.0.1:0", func(a string) { addrc <- a }) }()
	nc, err := net.Dial("tcp", <-addrc)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	r := bufio.NewReader(nc)
	for _, line := range []string{"hello\n", "meerkat\n"} {
		if _, err := nc.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
		got, err := r.ReadString('\n')
		if err != nil || got != line {
			t.Fatalf("echo of %q: got %q, %v", line, got, err)
		}
	}
	nc.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}
