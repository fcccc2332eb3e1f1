package main

import (
	"strings"
	"testing"
	"time"

	"github.com/meerkat-net/meerkat"
)

// broker runs a Meerkat MQTT broker on its own goroutine until the test
// ends.
func broker(t *testing.T) string {
	m := meerkat.NewManager()
	l, err := m.MQTTListen("mqtt://127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				m.Close()
				return
			default:
				m.Poll(10 * time.Millisecond)
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return "mqtt://" + l.LocalAddr().String()
}

// TestTalk: the message published comes back through the broker.
func TestTalk(t *testing.T) {
	var out strings.Builder
	if err := talk(broker(t), "", "", "t/1", "hi", 10*time.Second, &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != "connected (CONNACK 0)\nreceived t/1: hi\n" {
		t.Fatalf("output %q", out.String())
	}
}

// TestTalkNoBroker: nothing listening is an error after the timeout, not
// a hang (the client keeps retrying meanwhile).
func TestTalkNoBroker(t *testing.T) {
	if err := talk("mqtt://127.0.0.1:1", "", "", "t", "x", 1500*time.Millisecond, &strings.Builder{}); err == nil {
		t.Fatal("no error without a broker")
	}
}
