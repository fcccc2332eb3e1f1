// Command mqtt-server is an MQTT broker (3.1.1 and 5) with a password
// check and a rule that keeps the "secret/" topics to user "admin":
// MQTTListen does the protocol (sessions, retained messages, QoS 0-2,
// wills, keepalive); the Manager's MQTT settings hold the two hooks.
//
// Try it with:
//
//	go run ./examples/mqtt-server &
//	mosquitto_sub -h localhost -u user -P pass -t 'demo/#' -v &
//	mosquitto_pub -h localhost -u user -P pass -t demo/hello -m world
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"
	"strings"

	"github.com/meerkat-net/meerkat"
)

// users are the accepted credentials.
var users = map[string]string{"user": "pass", "admin": "admin-pass"}

// run serves on url until ctx is done; ready receives the listening address.
func run(ctx context.Context, url string, ready func(string)) error {
	mgr := meerkat.NewManager()
	defer mgr.Close()
	who := map[*meerkat.Conn]string{} // each connection's user
	mgr.MQTT.Authenticate = func(c *meerkat.Conn, clientID, user string, pass []byte, hasPass bool) byte {
		if want, ok := users[user]; ok && hasPass && string(pass) == want {
			who[c] = user
			return 0
		}
		return 0x86 // Bad User Name or Password (3.1.1 clients see return code 4)
	}
	mgr.MQTT.Authorize = func(c *meerkat.Conn, clientID string, topic []byte, publish bool) bool {
		return !strings.HasPrefix(string(topic), "secret/") || who[c] == "admin"
	}
	l, err := mgr.MQTTListen(url, func(c *meerkat.Conn, ev meerkat.Event, data any) {
		switch ev {
		case meerkat.EvMQTTMsg:
			mm := data.(*meerkat.MQTTMessage)
			log.Printf("%s published %d bytes on %s (QoS %d)", c.RemoteAddr(), len(mm.Data), mm.Topic, mm.QoS)
		case meerkat.EvClose:
			delete(who, c)
		}
	})
	if err != nil {
		return err
	}
	ready(l.LocalAddr().String())
	return mgr.Run(ctx)
}

func main() {
	url := flag.String("listen", "mqtt://0.0.0.0:1883", "URL to listen on (mqtt:// or mqtts://)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *url, func(addr string) { log.Printf("MQTT broker on %s", addr) }); err != nil {
		log.Fatal(err)
	}
}
