package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"testing"
	"time"
)

func TestWorkersAnswerThroughWakeup(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, "tcp://127.0.0.1:0", 1, time.Millisecond, func(a string) { addrc <- a }) }()
	nc, err := net.Dial("tcp", <-addrc)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	const n = 50
	go func() {
		for i := range n {
			fmt.Fprintf(nc, "line %d\n", i)
		}
	}()
	r := bufio.NewReader(nc)
	for i := range n {
		got, err := r.ReadString('\n')
		if want := fmt.Sprintf("LINE %d\n", i); err != nil || got != want {
			t.Fatalf("answer %d: got %q, %v; want %q", i, got, err, want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}
