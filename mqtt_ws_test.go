package meerkat_test

import (
	"testing"
	"time"

	"github.com/meerkat-net/meerkat"
)

// TestMQTTOverWebSocket: Meerkat's MQTT client and broker over ws:// and wss://
// (subprotocol "mqtt", packets of 100 kB spread over binary messages), both
// versions, QoS 0 to 2, on both drivers; every connection's events in order.
func TestMQTTOverWebSocket(t *testing.T) {
	forEachDriverTLS(t, func(t *testing.T, drv string, useTLS bool) {
		e := newEnv(t, drv, useTLS)
		scheme := "ws"
		if useTLS {
			scheme = "wss"
		}
		l, err := e.m.MQTTListen(scheme+"://127.0.0.1:0/mqtt", e.chk.wrap(nil))
		if err != nil {
			t.Fatal(err)
		}
		url := scheme + "://" + l.LocalAddr().String() + "/mqtt"
		var got []string
		closed := false
		for _, v := range []byte{4, 5} {
			got, closed = nil, false
			_, err = e.m.MQTTConnect(url, &meerkat.MQTTOptions{Version: v}, e.chk.wrap(func(c *meerkat.Conn, ev meerkat.Event, data any) {
				switch ev {
				case meerkat.EvMQTTOpen:
					meerkat.MQTTSub(c, &meerkat.MQTTOptions{Topic: "a/#", QoS: 2})
				case meerkat.EvMQTTCmd:
					if data.(*meerkat.MQTTMessage).Cmd == meerkat.MQTTCmdSubAck {
						for q := byte(0); q < 3; q++ {
							meerkat.MQTTPub(c, &meerkat.MQTTOptions{Topic: "a/b", Message: make([]byte, 100000), QoS: q})
						}
					}
				case meerkat.EvMQTTMsg:
					got = append(got, string(data.(*meerkat.MQTTMessage).Topic))
					if len(got) == 3 {
						meerkat.MQTTDisconnect(c, nil)
					}
				case meerkat.EvError:
					t.Errorf("client error: %v", data)
				case meerkat.EvClose:
					closed = true
				}
			}))
			if err != nil {
				t.Fatal(err)
			}
			e.pollUntil(5*time.Second, "close", func() bool { return closed })
			if len(got) != 3 {
				t.Fatalf("got %v", got)
			}
		}
	})
}
