package mqttpkt_test

import (
	"errors"
	"fmt"

	"github.com/meerkat-net/meerkat/internal/mqttpkt"
)

// A server's read loop: decode packets from the front of the received
// bytes into one reused Packet, stop when more bytes are needed, and
// answer a bad packet with its reason code.
func ExampleDecode() {
	in := []byte{
		0x10, 0x0e, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x02, 'c', '1', // CONNECT
		0x32, 0x08, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x01, 'x', // PUBLISH QoS 1
		0x30, 0x05, 0x00, 0x03, 'a', '/', // PUBLISH, incomplete
	}
	var p mqttpkt.Packet
	var version byte // not known before CONNECT
	for {
		n, err := mqttpkt.Decode(in, version, 1<<20, &p)
		if err != nil {
			var e *mqttpkt.Error
			errors.As(err, &e)
			fmt.Printf("close with reason code %#x: %s\n", e.Code, e.Reason)
			return
		}
		if n == 0 {
			fmt.Printf("need more than %d bytes\n", len(in))
			return
		}
		switch p.Type {
		case mqttpkt.CONNECT:
			version = p.Version
			fmt.Printf("CONNECT level %d from %s\n", p.Version, p.ClientID)
		case mqttpkt.PUBLISH:
			fmt.Printf("PUBLISH %s QoS %d id %d: %s\n", p.Topic, p.QoS, p.PacketID, p.Payload)
		}
		in = in[n:]
	}
	// Output:
	// CONNECT level 4 from c1
	// PUBLISH a/b QoS 1 id 1: x
	// need more than 6 bytes
}

// Encoding an MQTT 5 PUBLISH with properties, after checking it against
// the Maximum Packet Size the server announced.
func ExampleAppend() {
	p := mqttpkt.Packet{Type: mqttpkt.PUBLISH, Topic: []byte("a/b"), QoS: 1, PacketID: 7, Payload: []byte("hi")}
	p.Props.SetMessageExpiry(60)
	p.Props.User = []mqttpkt.UserProperty{{Key: []byte("k"), Value: []byte("v")}}

	const serverMaximum = 1024
	if mqttpkt.Size(&p, mqttpkt.Version5) > serverMaximum {
		fmt.Println("too large for the server")
		return
	}
	out, err := mqttpkt.Append(nil, &p, mqttpkt.Version5)
	fmt.Printf("% x %v\n", out, err)

	p.QoS = 3
	_, err = mqttpkt.Append(nil, &p, mqttpkt.Version5)
	fmt.Println(err)
	// Output:
	// 32 16 00 03 61 2f 62 00 07 0c 02 00 00 00 3c 26 00 01 6b 00 01 76 68 69 <nil>
	// mqtt: PUBLISH with QoS 3 (reason code 0x81)
}

// Routing: a shared subscription is split first, then its filter matched.
func ExampleMatch() {
	for _, f := range []string{"sport/tennis/#", "sport/+", "$share/g/sport/#", "#"} {
		filter := []byte(f)
		if _, inner, ok, err := mqttpkt.SharedSubscription(filter); err != nil {
			fmt.Println(err)
			continue
		} else if ok {
			filter = inner
		}
		fmt.Println(f, mqttpkt.Match(filter, []byte("sport/tennis")), mqttpkt.Match(filter, []byte("$SYS/load")))
	}
	// Output:
	// sport/tennis/# true false
	// sport/+ true false
	// $share/g/sport/# true false
	// # true false
}
