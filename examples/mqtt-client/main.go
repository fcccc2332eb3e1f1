// Command mqtt-client connects to an MQTT broker, subscribes to a topic,
// publishes a message on it, prints what comes back, and disconnects. On
// connection loss it reconnects after a pause with the same MQTTSession,
// so that QoS 1 and 2 messages not yet acknowledged are sent again.
//
// Try it with:
//
//	go run ./examples/mqtt-client -url mqtt://test.mosquitto.org:1883
//	go run ./examples/mqtt-server &  go run ./examples/mqtt-client -u user -P pass
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/meerkat-net/meerkat"
)

// client is one run: connect, subscribe, publish, print the echo.
type client struct {
	mgr     *meerkat.Manager
	url     string
	opts    meerkat.MQTTOptions
	topic   string
	message string
	out     io.Writer
	done    bool
	err     error
}

func (cl *client) connect() {
	if _, err := cl.mgr.MQTTConnect(cl.url, &cl.opts, cl.handle); err != nil {
		cl.err, cl.done = err, true
	}
}

func (cl *client) handle(c *meerkat.Conn, ev meerkat.Event, data any) {
	switch ev {
	case meerkat.EvMQTTOpen:
		fmt.Fprintf(cl.out, "connected (CONNACK %d)\n", data.(int))
		meerkat.MQTTSub(c, &meerkat.MQTTOptions{Topic: cl.topic, QoS: 1})
	case meerkat.EvMQTTCmd:
		if mm := data.(*meerkat.MQTTMessage); mm.Cmd == meerkat.MQTTCmdSubAck {
			meerkat.MQTTPub(c, &meerkat.MQTTOptions{Topic: cl.topic, Message: []byte(cl.message), QoS: 1})
		}
	case meerkat.EvMQTTMsg:
		mm := data.(*meerkat.MQTTMessage)
		fmt.Fprintf(cl.out, "received %s: %s\n", mm.Topic, mm.Data)
		cl.done = true
		meerkat.MQTTDisconnect(c, nil)
	case meerkat.EvError:
		log.Printf("error: %v", data)
		if cl.err == nil {
			cl.err = data.(error)
		}
	case meerkat.EvClose:
		if !cl.done { // lost: try again in a second, with the same session
			cl.mgr.AddTimer(time.Second, 0, cl.connect)
		}
	}
}

// talk runs one client until its message came back or timeout passed.
func talk(url, user, pass, topic, message string, timeout time.Duration, out io.Writer) error {
	mgr := meerkat.NewManager()
	defer mgr.Close()
	cl := &client{mgr: mgr, url: url, topic: topic, message: message, out: out,
		opts: meerkat.MQTTOptions{User: user, Pass: pass, Session: &meerkat.MQTTSession{}}}
	cl.connect()
	for start := time.Now(); !cl.done && time.Since(start) < timeout; {
		mgr.Poll(100 * time.Millisecond)
	}
	if !cl.done {
		if cl.err != nil {
			return cl.err
		}
		return fmt.Errorf("no message within %v", timeout)
	}
	return nil
}

func main() {
	url := flag.String("url", "mqtt://localhost:1883", "broker URL (mqtt:// or mqtts://)")
	user := flag.String("u", "", "user name")
	pass := flag.String("P", "", "password")
	topic := flag.String("t", "meerkat/example", "topic")
	msg := flag.String("m", "hello from meerkat", "message")
	flag.Parse()
	if err := talk(*url, *user, *pass, *topic, *msg, 30*time.Second, os.Stdout); err != nil {
		log.Fatal(err)
	}
}
