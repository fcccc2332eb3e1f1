package mqttpkt

import (
	"bytes"
	"testing"
)

// fixture is one packet as bytes on the wire (hand-written from the
// specifications' layouts) and as a Packet.
type fixture struct {
	name    string
	version byte
	hex     string
	packet  func() *Packet
}

func bstr(s string) []byte { return []byte(s) }

var fixtures = []fixture{
	// MQTT 3.1.1.
	{"CONNECT clean session", 4,
		"10 0e | 00 04 4d 51 54 54 | 04 | 02 | 00 3c | 00 02 63 31",
		func() *Packet {
			return &Packet{Type: CONNECT, ProtocolName: bstr("MQTT"), Version: 4, CleanStart: true, KeepAlive: 60, ClientID: bstr("c1")}
		}},
	// The variable header of 3.1.1 section 3.1.2.10's example (flags
	// 0xCE: user name, password, will QoS 1, will, clean session; keep
	// alive 10), with a will and credentials.
	{"CONNECT will and credentials", 4,
		"10 1f | 00 04 4d 51 54 54 | 04 | ce | 00 0a | 00 02 69 64 | 00 03 77 2f 74 | 00 03 62 79 65 | 00 01 75 | 00 02 70 77",
		func() *Packet {
			return &Packet{Type: CONNECT, ProtocolName: bstr("MQTT"), Version: 4, CleanStart: true, KeepAlive: 10, ClientID: bstr("id"),
				Will:        &Will{Topic: bstr("w/t"), Payload: bstr("bye"), QoS: 1},
				HasUsername: true, Username: bstr("u"), HasPassword: true, Password: bstr("pw")}
		}},
	{"CONNECT empty client ID, will QoS 2 retained", 4,
		"10 15 | 00 04 4d 51 54 54 | 04 | 36 | 00 00 | 00 00 | 00 01 74 | 00 04 00 ff 00 01",
		func() *Packet {
			return &Packet{Type: CONNECT, ProtocolName: bstr("MQTT"), Version: 4, CleanStart: true, ClientID: bstr(""),
				Will: &Will{Topic: bstr("t"), Payload: []byte{0, 0xff, 0, 1}, QoS: 2, Retain: true}}
		}},
	{"CONNACK session present", 4, "20 02 01 00",
		func() *Packet { return &Packet{Type: CONNACK, SessionPresent: true} }},
	{"CONNACK not authorized (return code 5)", 4, "20 02 00 05",
		func() *Packet { return &Packet{Type: CONNACK, ReasonCode: NotAuthorized} }},
	{"CONNACK unacceptable protocol version (return code 1)", 4, "20 02 00 01",
		func() *Packet { return &Packet{Type: CONNACK, ReasonCode: UnsupportedProtocolVersion} }},
	{"PUBLISH QoS 0", 4, "30 07 | 00 03 61 2f 62 | 68 69",
		func() *Packet { return &Packet{Type: PUBLISH, Topic: bstr("a/b"), Payload: bstr("hi")} }},
	{"PUBLISH QoS 1 DUP RETAIN", 4, "3b 08 | 00 03 61 2f 62 | 01 02 | 78",
		func() *Packet {
			return &Packet{Type: PUBLISH, Flags: 0xb, Topic: bstr("a/b"), QoS: 1, Dup: true, Retain: true, PacketID: 0x102, Payload: bstr("x")}
		}},
	{"PUBLISH QoS 2 empty payload", 4, "34 07 | 00 03 61 2f 62 | 00 07",
		func() *Packet { return &Packet{Type: PUBLISH, Flags: 4, Topic: bstr("a/b"), QoS: 2, PacketID: 7} }},
	{"PUBACK", 4, "40 02 00 07", func() *Packet { return &Packet{Type: PUBACK, PacketID: 7} }},
	{"PUBREC", 4, "50 02 00 07", func() *Packet { return &Packet{Type: PUBREC, PacketID: 7} }},
	{"PUBREL", 4, "62 02 00 07", func() *Packet { return &Packet{Type: PUBREL, Flags: 2, PacketID: 7} }},
	{"PUBCOMP", 4, "70 02 00 07", func() *Packet { return &Packet{Type: PUBCOMP, PacketID: 7} }},
	{"SUBSCRIBE two filters", 4, "82 0c | 00 0a | 00 03 61 2f 2b 01 | 00 01 23 00",
		func() *Packet {
			return &Packet{Type: SUBSCRIBE, Flags: 2, PacketID: 10, Subscriptions: []Subscription{{Filter: bstr("a/+"), QoS: 1}, {Filter: bstr("#")}}}
		}},
	{"SUBACK granted QoS 1 and failure", 4, "90 04 | 00 0a | 01 80",
		func() *Packet { return &Packet{Type: SUBACK, PacketID: 10, ReasonCodes: []byte{1, 0x80}} }},
	{"UNSUBSCRIBE two filters", 4, "a2 0a | 00 0b | 00 03 61 2f 2b | 00 01 23",
		func() *Packet {
			return &Packet{Type: UNSUBSCRIBE, Flags: 2, PacketID: 11, Filters: [][]byte{bstr("a/+"), bstr("#")}}
		}},
	{"UNSUBACK", 4, "b0 02 00 0b", func() *Packet { return &Packet{Type: UNSUBACK, PacketID: 11} }},
	{"PINGREQ", 4, "c0 00", func() *Packet { return &Packet{Type: PINGREQ} }},
	{"PINGRESP", 4, "d0 00", func() *Packet { return &Packet{Type: PINGRESP} }},
	{"DISCONNECT", 4, "e0 00", func() *Packet { return &Packet{Type: DISCONNECT} }},

	// MQTT 5.
	{"CONNECT properties, will with properties, credentials", 5,
		"10 37 | 00 04 4d 51 54 54 | 05 | ee | 00 0a" +
			"| 0f | 11 00 00 00 3c | 21 00 14 | 26 00 01 6b 00 01 76" + // Session Expiry 60, Receive Maximum 20, User k=v
			"| 00 02 69 64" + // client ID
			"| 07 | 01 01 | 18 00 00 00 05" + // will: Payload Format 1, Will Delay 5
			"| 00 03 77 2f 74 | 00 03 62 79 65 | 00 01 75 | 00 02 70 77",
		func() *Packet {
			p := &Packet{Type: CONNECT, ProtocolName: bstr("MQTT"), Version: 5, CleanStart: true, KeepAlive: 10, ClientID: bstr("id"),
				Will:        &Will{Topic: bstr("w/t"), Payload: bstr("bye"), QoS: 1, Retain: true},
				HasUsername: true, Username: bstr("u"), HasPassword: true, Password: bstr("pw")}
			p.Props.SetSessionExpiry(60)
			p.Props.SetReceiveMaximum(20)
			p.Props.User = []UserProperty{user("k", "v")}
			p.Will.Props.SetPayloadFormat(1)
			p.Will.Props.SetWillDelay(5)
			return p
		}},
	// MQTT 5 allows a password without a user name; 5.0 section
	// 3.1.2.11's example of properties: Session Expiry Interval 10.
	{"CONNECT password without user name", 5,
		"10 17 | 00 04 4d 51 54 54 | 05 | 40 | 00 0a | 05 11 00 00 00 0a | 00 01 63 | 00 02 70 77",
		func() *Packet {
			p := &Packet{Type: CONNECT, ProtocolName: bstr("MQTT"), Version: 5, KeepAlive: 10, ClientID: bstr("c"), HasPassword: true, Password: bstr("pw")}
			p.Props.SetSessionExpiry(10)
			return p
		}},
	{"CONNECT enhanced authentication", 5,
		"10 1a | 00 04 4d 51 54 54 | 05 | 02 | 00 00 | 0d | 15 00 05 53 43 52 41 4d | 16 00 02 01 02 | 00 00",
		func() *Packet {
			p := &Packet{Type: CONNECT, ProtocolName: bstr("MQTT"), Version: 5, CleanStart: true, ClientID: bstr("")}
			p.Props.AuthMethod = bstr("SCRAM")
			p.Props.AuthData = []byte{1, 2}
			return p
		}},
	{"CONNACK with properties", 5,
		"20 0e | 00 00 | 0b | 12 00 03 61 62 63 | 22 00 0a | 24 01",
		func() *Packet {
			p := &Packet{Type: CONNACK}
			p.Props.AssignedClientID = bstr("abc")
			p.Props.SetTopicAliasMaximum(10)
			p.Props.SetMaximumQoS(1)
			return p
		}},
	{"CONNACK failure", 5, "20 03 00 87 00",
		func() *Packet { return &Packet{Type: CONNACK, ReasonCode: NotAuthorized} }},
	{"CONNACK every server property", 5,
		"20 45 | 01 00 | 42" +
			"| 11 00 00 01 00 | 12 00 01 78 | 13 00 1e | 15 00 01 6d | 16 00 00" +
			"| 1a 00 01 72 | 1c 00 01 73 | 1f 00 02 6f 6b | 21 00 05 | 22 00 06 | 24 00 | 25 00" +
			"| 26 00 01 61 00 00 | 26 00 01 61 00 01 62 | 27 00 01 00 00 | 28 00 | 29 01 | 2a 00",
		func() *Packet {
			p := &Packet{Type: CONNACK, SessionPresent: true}
			pr := &p.Props
			pr.SetSessionExpiry(256)
			pr.AssignedClientID = bstr("x")
			pr.SetServerKeepAlive(30)
			pr.AuthMethod = bstr("m")
			pr.AuthData = bstr("")
			pr.ResponseInfo = bstr("r")
			pr.ServerReference = bstr("s")
			pr.ReasonString = bstr("ok")
			pr.SetReceiveMaximum(5)
			pr.SetTopicAliasMaximum(6)
			pr.SetMaximumQoS(0)
			pr.SetRetainAvailable(0)
			pr.User = []UserProperty{user("a", ""), user("a", "b")}
			pr.SetMaximumPacketSize(65536)
			pr.SetWildcardSubAvailable(0)
			pr.SetSubIDAvailable(1)
			pr.SetSharedSubAvailable(0)
			return p
		}},
	{"PUBLISH QoS 1 with properties", 5,
		"32 1d | 00 03 61 2f 62 | 00 01 | 10 | 01 01 | 02 00 00 00 1e | 03 00 01 74 | 0b 05 | 23 00 03 | 68 65 6c 6c 6f",
		func() *Packet {
			p := &Packet{Type: PUBLISH, Flags: 2, Topic: bstr("a/b"), QoS: 1, PacketID: 1, Payload: bstr("hello")}
			p.Props.SetPayloadFormat(1)
			p.Props.SetMessageExpiry(30)
			p.Props.ContentType = bstr("t")
			p.Props.SubscriptionIDs = []uint32{5}
			p.Props.SetTopicAlias(3)
			return p
		}},
	{"PUBLISH empty topic with a Topic Alias", 5, "30 07 | 00 00 | 03 23 00 07 | 78",
		func() *Packet {
			p := &Packet{Type: PUBLISH, Topic: bstr(""), Payload: bstr("x")}
			p.Props.SetTopicAlias(7)
			return p
		}},
	{"PUBLISH request with several subscription IDs", 5,
		"30 1c | 00 01 71 | 17 | 08 00 01 72 | 09 00 03 01 02 03 | 0b 01 | 0b ff ff ff 7f | 26 00 01 6b 00 00 | 00",
		func() *Packet {
			p := &Packet{Type: PUBLISH, Topic: bstr("q"), Payload: []byte{0}}
			p.Props.ResponseTopic = bstr("r")
			p.Props.CorrelationData = []byte{1, 2, 3}
			p.Props.SubscriptionIDs = []uint32{1, MaxSubscriptionID}
			p.Props.User = []UserProperty{user("k", "")}
			return p
		}},
	{"PUBACK success (short form)", 5, "40 02 00 01", func() *Packet { return &Packet{Type: PUBACK, PacketID: 1} }},
	{"PUBACK reason code only", 5, "40 03 00 01 10",
		func() *Packet { return &Packet{Type: PUBACK, PacketID: 1, ReasonCode: NoMatchingSubscribers} }},
	{"PUBREC with reason string", 5, "50 09 | 00 01 | 80 | 05 1f 00 02 6e 6f",
		func() *Packet {
			p := &Packet{Type: PUBREC, PacketID: 1, ReasonCode: UnspecifiedError}
			p.Props.ReasonString = bstr("no")
			return p
		}},
	{"PUBREL packet identifier not found", 5, "62 03 00 01 92",
		func() *Packet { return &Packet{Type: PUBREL, Flags: 2, PacketID: 1, ReasonCode: PacketIDNotFound} }},
	{"PUBCOMP success", 5, "70 02 00 01", func() *Packet { return &Packet{Type: PUBCOMP, PacketID: 1} }},
	{"PUBCOMP success with a user property", 5, "70 0a | 00 01 | 00 | 06 26 00 01 61 00 00",
		func() *Packet {
			p := &Packet{Type: PUBCOMP, PacketID: 1}
			p.Props.User = []UserProperty{user("a", "")}
			return p
		}},
	{"SUBSCRIBE options and subscription ID", 5,
		"82 19 | 00 02 | 03 0b 80 01 | 00 03 61 2f 23 1e | 00 0a 24 73 68 61 72 65 2f 67 2f 78 20",
		func() *Packet {
			p := &Packet{Type: SUBSCRIBE, Flags: 2, PacketID: 2, Subscriptions: []Subscription{
				{Filter: bstr("a/#"), QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 1},
				{Filter: bstr("$share/g/x"), RetainHandling: 2},
			}}
			p.Props.SubscriptionIDs = []uint32{128}
			return p
		}},
	{"SUBACK", 5, "90 05 | 00 02 | 00 | 02 8f",
		func() *Packet {
			return &Packet{Type: SUBACK, PacketID: 2, ReasonCodes: []byte{GrantedQoS2, TopicFilterInvalid}}
		}},
	{"UNSUBSCRIBE", 5, "a2 08 | 00 03 | 00 | 00 03 61 2f 23",
		func() *Packet {
			return &Packet{Type: UNSUBSCRIBE, Flags: 2, PacketID: 3, Filters: [][]byte{bstr("a/#")}}
		}},
	{"UNSUBACK with a user property", 5, "b0 0c | 00 03 | 07 26 00 01 6b 00 01 76 | 00 11",
		func() *Packet {
			p := &Packet{Type: UNSUBACK, PacketID: 3, ReasonCodes: []byte{Success, NoSubscriptionExisted}}
			p.Props.User = []UserProperty{user("k", "v")}
			return p
		}},
	{"PINGREQ", 5, "c0 00", func() *Packet { return &Packet{Type: PINGREQ} }},
	{"PINGRESP", 5, "d0 00", func() *Packet { return &Packet{Type: PINGRESP} }},
	{"DISCONNECT normal (short form)", 5, "e0 00", func() *Packet { return &Packet{Type: DISCONNECT} }},
	{"DISCONNECT with will", 5, "e0 01 04", func() *Packet { return &Packet{Type: DISCONNECT, ReasonCode: DisconnectWithWill} }},
	{"DISCONNECT server shutting down, reason string", 5, "e0 08 | 8b | 06 1f 00 03 62 79 65",
		func() *Packet {
			p := &Packet{Type: DISCONNECT, ReasonCode: ServerShuttingDown}
			p.Props.ReasonString = bstr("bye")
			return p
		}},
	{"AUTH success (short form)", 5, "f0 00", func() *Packet { return &Packet{Type: AUTH} }},
	{"AUTH continue", 5, "f0 0f | 18 | 0d 15 00 05 53 43 52 41 4d 16 00 02 01 02",
		func() *Packet {
			p := &Packet{Type: AUTH, ReasonCode: ContinueAuthentication}
			p.Props.AuthMethod = bstr("SCRAM")
			p.Props.AuthData = []byte{1, 2}
			return p
		}},
	{"AUTH re-authenticate without properties", 5, "f0 02 19 00",
		func() *Packet { return &Packet{Type: AUTH, ReasonCode: ReAuthenticate} }},
}

// TestFixtures: every packet type in both versions decodes from its
// hand-written bytes to the expected fields, and Append writes exactly
// those bytes back (Size agrees). A CONNECT also decodes when the version
// is not known yet.
func TestFixtures(t *testing.T) {
	seen := map[[2]byte]bool{}
	for _, f := range fixtures {
		t.Run(f.name+"/v"+string('0'+f.version), func(t *testing.T) {
			wire := mustHex(f.hex)
			want := f.packet()
			seen[[2]byte{f.version, want.Type}] = true

			got := decodeAll(t, wire, f.version)
			if g, w := describe(got), describe(want); g != w {
				t.Errorf("decoded\n got %s\nwant %s", g, w)
			}
			if want.Type == CONNECT {
				got0 := decodeAll(t, wire, 0)
				if g, w := describe(got0), describe(want); g != w {
					t.Errorf("decoded with version 0\n got %s\nwant %s", g, w)
				}
			}

			enc, err := Append([]byte("prefix"), want, f.version)
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
			if !bytes.HasPrefix(enc, []byte("prefix")) || !bytes.Equal(enc[6:], wire) {
				t.Errorf("Append\n got % x\nwant % x", enc[6:], wire)
			}
			if n := Size(want, f.version); n != len(wire) {
				t.Errorf("Size = %d, want %d", n, len(wire))
			}
		})
	}
	for v := byte(4); v <= 5; v++ {
		for typ := CONNECT; typ <= AUTH; typ++ {
			if typ == AUTH && v == 4 {
				continue
			}
			if !seen[[2]byte{v, typ}] {
				t.Errorf("no fixture for %s in version %d", TypeName(typ), v)
			}
		}
	}
}

// TestDecodeNeedsMore: every proper prefix of a valid packet asks for more
// bytes (n = 0, no error) and leaves nothing decided; a packet followed by
// the next one decodes alone.
func TestDecodeNeedsMore(t *testing.T) {
	for _, f := range fixtures {
		wire := mustHex(f.hex)
		var p Packet
		for i := 0; i < len(wire); i++ {
			n, err := Decode(wire[:i], f.version, 0, &p)
			if n != 0 || err != nil {
				t.Fatalf("%s: prefix of %d bytes: n=%d err=%v", f.name, i, n, err)
			}
		}
		two := append(append([]byte(nil), wire...), wire...)
		if n, err := Decode(two, f.version, 0, &p); n != len(wire) || err != nil {
			t.Fatalf("%s: two packets: n=%d err=%v, want %d", f.name, n, err, len(wire))
		}
	}
}

// TestDecodeMaxSize: a packet over maxSize is PacketTooLarge as soon as its
// fixed header is in, the body not yet arrived; one of exactly maxSize
// decodes.
func TestDecodeMaxSize(t *testing.T) {
	var p Packet
	// PUBLISH with a remaining length of 16383: 3 header bytes only.
	n, err := Decode(mustHex("30 ff 7f"), 4, 1000, &p)
	if n != 0 || codeOf(err) != int(PacketTooLarge) {
		t.Fatalf("n=%d err=%v, want PacketTooLarge", n, err)
	}
	wire := mustHex("30 07 00 03 61 2f 62 68 69")
	if n, err := Decode(wire, 4, len(wire), &p); n != len(wire) || err != nil {
		t.Fatalf("exact size: n=%d err=%v", n, err)
	}
	if n, err := Decode(wire, 4, len(wire)-1, &p); n != 0 || codeOf(err) != int(PacketTooLarge) {
		t.Fatalf("one byte over: n=%d err=%v", n, err)
	}
}

// TestDecodeReusesPacket: decoding into the same Packet leaves nothing of
// the previous packet behind, and reuses the lists' backing arrays.
func TestDecodeReusesPacket(t *testing.T) {
	var p Packet
	sub := mustHex("82 0c | 00 0a | 00 03 61 2f 2b 01 | 00 01 23 00")
	if _, err := Decode(sub, 4, 0, &p); err != nil {
		t.Fatal(err)
	}
	backing := &p.Subscriptions[:1][0]
	if _, err := Decode(mustHex("c0 00"), 4, 0, &p); err != nil {
		t.Fatal(err)
	}
	if describe(&p) != describe(&Packet{Type: PINGREQ}) || len(p.Subscriptions) != 0 {
		t.Fatalf("after PINGREQ: %s, %d subscriptions", describe(&p), len(p.Subscriptions))
	}
	if _, err := Decode(sub, 4, 0, &p); err != nil {
		t.Fatal(err)
	}
	if &p.Subscriptions[0] != backing {
		t.Errorf("Subscriptions reallocated")
	}
	// A CONNECT with a will, then one without: no stale will.
	if _, err := Decode(mustHex(fixtures[1].hex), 4, 0, &p); err != nil || p.Will == nil {
		t.Fatalf("will: %v %v", err, p.Will)
	}
	if _, err := Decode(mustHex(fixtures[0].hex), 4, 0, &p); err != nil || p.Will != nil || p.HasUsername {
		t.Fatalf("no will: %v %+v", err, p.Will)
	}
}

// TestDecodeViews: decoded byte fields are views of the input (no copy)
// whose capacity ends with them, so appending to one cannot overwrite the
// input.
func TestDecodeViews(t *testing.T) {
	wire := mustHex("32 1d | 00 03 61 2f 62 | 00 01 | 10 | 01 01 | 02 00 00 00 1e | 03 00 01 74 | 0b 05 | 23 00 03 | 68 65 6c 6c 6f")
	p := decodeAll(t, wire, 5)
	if &p.Topic[0] != &wire[4] || &p.Payload[0] != &wire[len(wire)-5] || &p.Props.ContentType[0] != &wire[20] {
		t.Fatalf("not views of the input")
	}
	if cap(p.Topic) != len(p.Topic) || cap(p.Props.ContentType) != 1 {
		t.Fatalf("capacity not cut: %d %d", cap(p.Topic), cap(p.Props.ContentType))
	}
	_ = append(p.Topic, 'X')
	if wire[7] != 0 {
		t.Fatalf("append through a view overwrote the input")
	}
}
