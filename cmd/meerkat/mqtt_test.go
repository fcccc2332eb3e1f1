package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestMQTTCommands: "meerkat mqtt broker" as a process; "meerkat mqtt sub"
// (as a process, -C 3) receives what "meerkat mqtt pub" publishes at each
// QoS and in both versions, a retained message included; bad command lines
// exit 2.
func TestMQTTCommands(t *testing.T) {
	broker := exec.Command(binary, "mqtt", "broker", "--listen", "mqtt://127.0.0.1:0")
	out, err := broker.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	broker.Stderr = os.Stderr
	if err := broker.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := bufio.NewScanner(out)
	var url string
	if lines.Scan() {
		if m := regexp.MustCompile(`on (mqtt://\S+)`).FindStringSubmatch(lines.Text()); m != nil {
			url = m[1]
		}
	}
	go func() {
		for lines.Scan() {
		}
		exited <- broker.Wait()
	}()
	defer func() {
		broker.Process.Kill()
		<-exited
	}()
	if url == "" {
		t.Fatal("the broker printed no URL")
	}
	// A retained message before the subscriber exists.
	if code, _, errs := runCmd(t, "mqtt", "pub", url, "-t", "a/r", "-m", "kept", "-r", "-q", "1"); code != 0 {
		t.Fatalf("pub -r: exit %d: %s", code, errs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sub := exec.CommandContext(ctx, binary, "mqtt", "sub", url, "-t", "a/#", "-q", "2", "-C", "4", "-V", "5")
	var subOut syncBuffer
	sub.Stdout, sub.Stderr = &subOut, os.Stderr
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	// The retained message shows that the subscription is in place.
	for start := time.Now(); !strings.Contains(subOut.String(), "a/r kept"); {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("the subscriber got no retained message: %q", subOut.String())
		}
		time.Sleep(10 * time.Millisecond) // polling another process's output
	}
	for i, args := range [][]string{{"-q", "0"}, {"-q", "1", "-V", "5"}, {"-q", "2"}} {
		a := append([]string{"mqtt", "pub", url, "-t", "a/" + string(rune('x'+i)), "-m", "m" + string(rune('0'+i))}, args...)
		if code, _, errs := runCmd(t, a...); code != 0 {
			t.Fatalf("pub %v: exit %d: %s", args, code, errs)
		}
	}
	if err := sub.Wait(); err != nil {
		t.Fatalf("sub: %v (output %q)", err, subOut.String())
	}
	if got := subOut.String(); got != "a/r kept\na/x m0\na/y m1\na/z m2\n" {
		t.Fatalf("sub printed %q", got)
	}
	for _, args := range [][]string{{"mqtt"}, {"mqtt", "pub", url}, {"mqtt", "pub", url, "-t", "x", "-q", "3"}, {"mqtt", "nope"}} {
		if code, _, _ := runCmd(t, args...); code != 2 {
			t.Fatalf("%v: exit %d, want 2", args, code)
		}
	}
	broker.Process.Signal(syscall.SIGINT)
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("broker after SIGINT: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the broker did not exit after SIGINT")
	}
}

// syncBuffer is a bytes.Buffer a process writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
