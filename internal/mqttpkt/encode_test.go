package mqttpkt

import (
	"bytes"
	"strings"
	"testing"
)

// TestAppendErrors: what cannot be encoded, or would be refused by the
// receiver, is an *Error from Append, and dst is returned unchanged.
func TestAppendErrors(t *testing.T) {
	long := bytes.Repeat([]byte("a"), MaxStringLength+1)
	max := bytes.Repeat([]byte("a"), MaxStringLength)
	cases := []struct {
		name    string
		version byte
		p       func() *Packet
		code    byte
		reason  string
	}{
		{"topic over 65535 bytes", 4, func() *Packet { return &Packet{Type: PUBLISH, Topic: long} }, MalformedPacket, "longer than 65535"},
		{"client ID over 65535 bytes", 5, func() *Packet { return &Packet{Type: CONNECT, ClientID: long} }, MalformedPacket, "longer than 65535"},
		{"password over 65535 bytes", 5, func() *Packet {
			return &Packet{Type: CONNECT, HasPassword: true, Password: long}
		}, MalformedPacket, "password longer"},
		{"will payload over 65535 bytes", 4, func() *Packet {
			return &Packet{Type: CONNECT, Will: &Will{Topic: []byte("w"), Payload: long}}
		}, MalformedPacket, "will payload longer"},
		{"user property over 65535 bytes", 5, func() *Packet {
			p := basePacket(PUBACK)
			p.Props.User = []UserProperty{{Key: []byte("k"), Value: long}}
			return p
		}, MalformedPacket, "User Property value longer"},
		{"correlation data over 65535 bytes", 5, func() *Packet {
			p := basePacket(PUBLISH)
			p.Props.CorrelationData = long
			return p
		}, MalformedPacket, "Correlation Data longer"},
		{"remaining length over 268435455", 4, func() *Packet {
			p := &Packet{Type: UNSUBSCRIBE, PacketID: 1}
			for len(p.Filters)*(2+len(max)) <= MaxRemainingLength {
				p.Filters = append(p.Filters, max)
			}
			return p
		}, MalformedPacket, "remaining length"},
		{"Topic Alias in SUBSCRIBE", 5, func() *Packet {
			p := basePacket(SUBSCRIBE)
			p.Props.SetTopicAlias(1)
			return p
		}, MalformedPacket, "Topic Alias not allowed in SUBSCRIBE"},
		{"two Subscription Identifiers in SUBSCRIBE", 5, func() *Packet {
			p := basePacket(SUBSCRIBE)
			p.Props.SubscriptionIDs = []uint32{1, 2}
			return p
		}, ProtocolError, "given twice"},
		{"Subscription Identifier over the maximum", 5, func() *Packet {
			p := basePacket(PUBLISH)
			p.Props.SubscriptionIDs = []uint32{MaxSubscriptionID + 1}
			return p
		}, ProtocolError, "out of range"},
		{"property in 3.1.1", 4, func() *Packet {
			p := basePacket(DISCONNECT)
			p.Props.ReasonString = []byte("x")
			return p
		}, MalformedPacket, "properties in MQTT 3.1.1"},
		{"CONNACK Banned in 3.1.1", 4, func() *Packet { return &Packet{Type: CONNACK, ReasonCode: Banned} }, ProtocolError, "3.1.1 return code"},
		{"PUBACK reason code in 3.1.1", 4, func() *Packet {
			return &Packet{Type: PUBACK, PacketID: 1, ReasonCode: NoMatchingSubscribers}
		}, MalformedPacket, "reason code in an MQTT 3.1.1"},
		{"SUBACK 5 code in 3.1.1", 4, func() *Packet {
			return &Packet{Type: SUBACK, PacketID: 1, ReasonCodes: []byte{NotAuthorized}}
		}, ProtocolError, "reason code not allowed"},
		{"UNSUBACK reason codes in 3.1.1", 4, func() *Packet {
			return &Packet{Type: UNSUBACK, PacketID: 1, ReasonCodes: []byte{0}}
		}, MalformedPacket, "3.1.1 UNSUBACK"},
		{"No Local in 3.1.1", 4, func() *Packet {
			return &Packet{Type: SUBSCRIBE, PacketID: 1, Subscriptions: []Subscription{{Filter: []byte("a"), NoLocal: true}}}
		}, MalformedPacket, "MQTT 5 subscription options"},
		{"AUTH in 3.1.1", 4, func() *Packet { return &Packet{Type: AUTH} }, MalformedPacket, "AUTH"},
		{"type 0", 5, func() *Packet { return &Packet{} }, MalformedPacket, "packet type"},
		{"type 16", 5, func() *Packet { return &Packet{Type: 16} }, MalformedPacket, "packet type"},
		{"QoS 3", 5, func() *Packet { return &Packet{Type: PUBLISH, Topic: []byte("t"), QoS: 3, PacketID: 1} }, MalformedPacket, "QoS 3"},
		{"DUP with QoS 0", 5, func() *Packet { return &Packet{Type: PUBLISH, Topic: []byte("t"), Dup: true} }, MalformedPacket, "DUP"},
		{"QoS 1 without packet ID", 5, func() *Packet { return &Packet{Type: PUBLISH, Topic: []byte("t"), QoS: 1} }, ProtocolError, "packet identifier 0"},
		{"will QoS 3", 5, func() *Packet {
			return &Packet{Type: CONNECT, Will: &Will{Topic: []byte("w"), QoS: 3}}
		}, MalformedPacket, "will QoS 3"},
		{"password without user name in 3.1.1", 4, func() *Packet {
			return &Packet{Type: CONNECT, HasPassword: true, Password: []byte("p")}
		}, ProtocolError, "password without user name"},
		{"SUBSCRIBE without filters", 5, func() *Packet { return &Packet{Type: SUBSCRIBE, PacketID: 1} }, ProtocolError, "without topic filters"},
		{"Retain Handling 3", 5, func() *Packet {
			return &Packet{Type: SUBSCRIBE, PacketID: 1, Subscriptions: []Subscription{{Filter: []byte("a"), RetainHandling: 3}}}
		}, ProtocolError, "Retain Handling"},
		{"PUBLISH topic with a wildcard", 5, func() *Packet { return &Packet{Type: PUBLISH, Topic: []byte("a/+")} }, TopicNameInvalid, "wildcard"},
		{"AUTH Re-authenticate... as CONNACK code", 5, func() *Packet { return &Packet{Type: CONNACK, ReasonCode: ReAuthenticate} }, ProtocolError, "reason code not allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dst := []byte("keep")
			out, err := Append(dst, c.p(), c.version)
			if codeOf(err) != int(c.code) || !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("err=%v, want code %#x saying %q", err, c.code, c.reason)
			}
			if string(out) != "keep" {
				t.Fatalf("dst changed: %q", out)
			}
		})
	}
}

// TestSizeOverLimit: Size measures a packet too large to encode (for the
// caller to compare with a Maximum Packet Size), its remaining length
// counted in 4 bytes.
func TestSizeOverLimit(t *testing.T) {
	max := bytes.Repeat([]byte("a"), MaxStringLength)
	p := &Packet{Type: UNSUBSCRIBE, PacketID: 1}
	for i := 0; i < 4097; i++ {
		p.Filters = append(p.Filters, max)
	}
	want := 1 + 4 + 2 + 4097*(2+MaxStringLength)
	if n := Size(p, Version311); n != want || n <= MaxRemainingLength+5 {
		t.Fatalf("Size = %d, want %d", n, want)
	}
}

// TestAppendLargestRemainingLength: remaining lengths at the edges of the
// variable byte integer's 1-, 2-, 3- and 4-byte encodings are written and
// read back.
func TestAppendLargestRemainingLength(t *testing.T) {
	for _, rl := range []int{127, 128, 16383, 16384, 2097151, 2097152} {
		p := &Packet{Type: PUBLISH, Topic: []byte("t"), Payload: make([]byte, rl-3)}
		enc, err := Append(nil, p, Version311)
		if err != nil {
			t.Fatal(err)
		}
		if hl := len(enc) - rl - 1; hl != varintLen(rl) {
			t.Fatalf("remaining length %d in %d bytes", rl, hl)
		}
		got := decodeAll(t, enc, Version311)
		if len(got.Payload) != rl-3 {
			t.Fatalf("payload %d, want %d", len(got.Payload), rl-3)
		}
	}
}

// TestAppendDerivesFlags: the fixed header's flags come from the packet's
// fields, whatever p.Flags says.
func TestAppendDerivesFlags(t *testing.T) {
	p := &Packet{Type: PUBLISH, Flags: 0xf, Topic: []byte("t"), QoS: 2, Retain: true, PacketID: 9}
	enc, err := Append(nil, p, Version311)
	if err != nil || enc[0] != 0x35 {
		t.Fatalf("% x %v", enc, err)
	}
	enc, err = Append(nil, &Packet{Type: PUBREL, PacketID: 1}, Version311)
	if err != nil || enc[0] != 0x62 {
		t.Fatalf("% x %v", enc, err)
	}
}

// TestReturnCode311: the 3.1.1 CONNACK return codes map to MQTT 5 reason
// codes and back; no other reason code has one.
func TestReturnCode311(t *testing.T) {
	want := map[byte]byte{Success: 0, UnsupportedProtocolVersion: 1, ClientIDNotValid: 2,
		ServerUnavailable: 3, BadUserNameOrPassword: 4, NotAuthorized: 5}
	for c := 0; c < 256; c++ {
		rc, ok := ReturnCode311(byte(c))
		w, wok := want[byte(c)]
		if ok != wok || rc != w {
			t.Errorf("ReturnCode311(%#x) = %d %v, want %d %v", c, rc, ok, w, wok)
		}
		if !ok {
			continue
		}
		enc, err := Append(nil, &Packet{Type: CONNACK, ReasonCode: byte(c)}, Version311)
		if err != nil || enc[3] != rc {
			t.Errorf("CONNACK %#x: % x %v", c, enc, err)
		}
		if got := decodeAll(t, enc, Version311); got.ReasonCode != byte(c) {
			t.Errorf("CONNACK %d decodes to %#x", rc, got.ReasonCode)
		}
	}
}
