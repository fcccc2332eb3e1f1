package main

import (
	"context"
	"testing"
	"time"

	"github.com/meerkat-net/meerkat"
)

// TestBroker: a good password connects, a bad one is refused (return code
// 4); "user" may not subscribe to secret/#, "admin" may; a message goes
// from one client to another.
func TestBroker(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrs := make(chan string, 1)
	go run(ctx, "mqtt://127.0.0.1:0", func(a string) { addrs <- a })
	url := "mqtt://" + <-addrs

	m := meerkat.NewManager()
	defer m.Close()
	type client struct {
		open, closed int
		acks         []byte
		got          []string
	}
	dial := func(user, pass string, filters ...string) *client {
		cl := &client{open: -1}
		m.MQTTConnect(url, &meerkat.MQTTOptions{User: user, Pass: pass}, func(c *meerkat.Conn, ev meerkat.Event, data any) {
			switch ev {
			case meerkat.EvMQTTOpen:
				cl.open = data.(int)
				if cl.open == 0 && len(filters) > 0 {
					meerkat.MQTTSub(c, &meerkat.MQTTOptions{Topics: filters, QoS: 1})
				}
			case meerkat.EvMQTTCmd:
				if mm := data.(*meerkat.MQTTMessage); mm.Cmd == meerkat.MQTTCmdSubAck {
					cl.acks = append(cl.acks, mm.Packet.ReasonCodes...)
				}
			case meerkat.EvMQTTMsg:
				mm := data.(*meerkat.MQTTMessage)
				cl.got = append(cl.got, string(mm.Topic)+"="+string(mm.Data))
			case meerkat.EvClose:
				cl.closed++
			}
		})
		return cl
	}
	until := func(what string, cond func() bool) {
		t.Helper()
		for start := time.Now(); !cond(); m.Poll(10 * time.Millisecond) {
			if time.Since(start) > 10*time.Second {
				t.Fatalf("waiting for %s", what)
			}
		}
	}
	bad := dial("user", "wrong")
	until("the refusal", func() bool { return bad.closed == 1 })
	if bad.open != 4 {
		t.Fatalf("bad password: CONNACK %d, want 4", bad.open)
	}
	u := dial("user", "pass", "demo/#", "secret/#")
	a := dial("admin", "admin-pass", "secret/#")
	until("the subscriptions", func() bool { return len(u.acks) == 2 && len(a.acks) == 1 })
	if u.acks[0] != 1 || u.acks[1] != 0x80 || a.acks[0] != 1 {
		t.Fatalf("SUBACK codes: user %v, admin %v", u.acks, a.acks)
	}
	pub := dial("admin", "admin-pass")
	until("the publisher", func() bool { return pub.open == 0 })
	var pc *meerkat.Conn
	for c := range m.Conns() {
		pc = c // the newest connection is the publisher's
		break
	}
	meerkat.MQTTPub(pc, &meerkat.MQTTOptions{Topic: "demo/x", Message: []byte("1"), QoS: 1})
	meerkat.MQTTPub(pc, &meerkat.MQTTOptions{Topic: "secret/y", Message: []byte("2"), QoS: 1})
	until("the messages", func() bool { return len(u.got) == 1 && len(a.got) == 1 })
	if u.got[0] != "demo/x=1" || a.got[0] != "secret/y=2" {
		t.Fatalf("user got %q, admin got %q", u.got, a.got)
	}
}
