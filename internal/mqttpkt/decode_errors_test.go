package mqttpkt

import (
	"strings"
	"testing"
)

// A CONNECT's variable header up to the flags, for the bad CONNECTs below.
const (
	connect4 = "00 04 4d 51 54 54 04"
	connect5 = "00 04 4d 51 54 54 05"
)

var badPackets = []struct {
	name    string
	version byte
	hex     string
	code    byte
	reason  string // a part of the Error's reason
}{
	// Fixed header.
	{"reserved type 0", 4, "00 00", MalformedPacket, "reserved packet type"},
	{"AUTH in 3.1.1", 4, "f0 00", MalformedPacket, "AUTH in MQTT 3.1.1"},
	{"first packet not CONNECT", 0, "30 07 00 03 61 2f 62 68 69", ProtocolError, "not CONNECT"},
	{"AUTH before CONNECT", 0, "f0 00", ProtocolError, "not CONNECT"},
	{"CONNECT flags 0001", 0, "11 0e " + connect4 + " 02 00 3c 00 02 63 31", MalformedPacket, "flags"},
	{"CONNACK flags 0100", 4, "24 02 00 00", MalformedPacket, "flags"},
	{"PUBACK flags 0010", 4, "42 02 00 01", MalformedPacket, "flags"},
	{"PUBREC flags 0010", 4, "52 02 00 01", MalformedPacket, "flags"},
	{"PUBREL flags 0000", 4, "60 02 00 01", MalformedPacket, "flags"},
	{"PUBREL flags 0011", 5, "63 02 00 01", MalformedPacket, "flags"},
	{"PUBCOMP flags 1000", 4, "78 02 00 01", MalformedPacket, "flags"},
	{"SUBSCRIBE flags 0000", 4, "80 06 00 01 00 01 23 00", MalformedPacket, "flags"},
	{"SUBACK flags 0010", 4, "92 03 00 01 00", MalformedPacket, "flags"},
	{"UNSUBSCRIBE flags 0000", 4, "a0 05 00 01 00 01 23", MalformedPacket, "flags"},
	{"UNSUBACK flags 0001", 4, "b1 02 00 01", MalformedPacket, "flags"},
	{"PINGREQ flags 0001", 4, "c1 00", MalformedPacket, "flags"},
	{"PINGRESP flags 1111", 4, "df 00", MalformedPacket, "flags"},
	{"DISCONNECT flags 0010", 5, "e2 00", MalformedPacket, "flags"},
	{"AUTH flags 0001", 5, "f1 00", MalformedPacket, "flags"},
	{"PUBLISH QoS 3", 4, "36 09 00 03 61 2f 62 00 01 68 69", MalformedPacket, "QoS 3"},
	{"PUBLISH DUP with QoS 0", 4, "38 07 00 03 61 2f 62 68 69", MalformedPacket, "DUP"},

	// Variable byte integers.
	{"remaining length of five bytes", 4, "30 ff ff ff ff 7f", MalformedPacket, "longer than 4 bytes"},
	{"remaining length of five bytes, fifth not arrived", 4, "30 80 80 80 80", MalformedPacket, "longer than 4 bytes"},
	{"remaining length not minimal", 4, "c0 80 00", MalformedPacket, "minimal"},
	{"property length not minimal", 5, "40 05 00 01 00 80 00", MalformedPacket, "minimal"},
	{"subscription ID of five bytes", 5, "30 0b 00 01 61 07 0b 80 80 80 80 01 78", MalformedPacket, "longer than 4 bytes"},
	{"subscription ID past the end of the properties", 5, "30 06 00 01 61 02 0b 80 78", MalformedPacket, "past the end"},

	// Lengths past the end of the packet.
	{"topic length past the end", 4, "30 05 00 10 61 62 63", MalformedPacket, "topic length past the end"},
	{"topic length past the end (odd byte)", 4, "30 01 00", MalformedPacket, "topic length past the end"},
	{"QoS 1 PUBLISH without packet ID", 4, "32 05 00 03 61 2f 62", MalformedPacket, "packet identifier past the end"},
	{"QoS 2 PUBLISH with half a packet ID", 5, "34 06 00 03 61 2f 62 00", MalformedPacket, "packet identifier past the end"},
	{"PUBACK without packet ID", 4, "40 00", MalformedPacket, "packet identifier past the end"},
	{"SUBACK without packet ID", 5, "90 01 00", MalformedPacket, "packet identifier past the end"},
	{"filter length past the end", 4, "82 06 00 01 00 05 61 62", MalformedPacket, "filter length past the end"},
	{"subscription options missing", 4, "82 05 00 01 00 01 61", MalformedPacket, "options past the end"},
	{"UNSUBSCRIBE filter length past the end", 5, "a2 06 00 01 00 00 09 61", MalformedPacket, "filter length past the end"},
	{"CONNECT protocol name past the end", 0, "10 04 00 04 4d 51", MalformedPacket, "past the end"},
	{"CONNECT client ID past the end", 0, "10 0e " + connect4 + " 02 00 3c 00 09 63 31", MalformedPacket, "past the end"},
	{"CONNECT without keep alive", 0, "10 08 " + connect4 + " 02", MalformedPacket, "past the end"},
	{"CONNECT user name flag without user name", 0, "10 0e " + connect4 + " 82 00 3c 00 02 63 31", MalformedPacket, "past the end"},
	{"CONNECT will flag without will", 0, "10 0e " + connect4 + " 06 00 3c 00 02 63 31", MalformedPacket, "past the end"},
	{"CONNECT without protocol level", 0, "10 06 00 04 4d 51 54 54", MalformedPacket, "past the end"},
	{"CONNECT without flags", 0, "10 07 " + connect4, MalformedPacket, "past the end"},
	{"CONNECT will payload past the end", 0, "10 14 " + connect4 + " 06 00 3c 00 02 63 31 00 01 74 00 05 78", MalformedPacket, "past the end"},
	{"CONNECT password past the end", 0, "10 14 " + connect4 + " c2 00 3c 00 02 63 31 00 01 75 00 05 70", MalformedPacket, "past the end"},
	{"SUBSCRIBE without packet ID", 4, "82 01 00", MalformedPacket, "packet identifier past the end"},
	{"UNSUBSCRIBE without packet ID", 5, "a2 00", MalformedPacket, "packet identifier past the end"},
	{"CONNACK of one byte", 4, "20 01 00", MalformedPacket, "past the end"},
	{"CONNACK 5 without property length", 5, "20 02 00 00", MalformedPacket, "past the end"},

	// MQTT 5 properties.
	{"property length past the end", 5, "30 06 00 01 61 05 01 01", MalformedPacket, "property length past the end"},
	{"property value past the end", 5, "40 06 00 01 00 02 1f 00", MalformedPacket, "property value past the end"},
	{"property value past the property length", 5, "40 08 00 01 00 02 1f 00 01 61", MalformedPacket, "property value past the end"},
	{"user property value missing", 5, "40 09 00 01 00 05 26 00 01 6b 00", MalformedPacket, "property value past the end"},
	{"SUBACK property length past the end", 5, "90 04 00 01 05 00", MalformedPacket, "property length past the end"},
	{"Message Expiry past the end of the properties", 5, "30 08 00 01 61 03 02 00 00 78", MalformedPacket, "property value past the end"},
	{"unknown property 0x05", 5, "40 06 00 01 00 02 05 00", MalformedPacket, "unknown property"},
	{"unknown property 0x80", 5, "40 06 00 01 00 02 80 01", MalformedPacket, "unknown property"},
	{"Topic Alias in PUBACK", 5, "40 07 00 01 00 03 23 00 01", MalformedPacket, "Topic Alias not allowed in PUBACK"},
	{"Session Expiry in PUBLISH", 5, "30 09 00 01 61 05 11 00 00 00 01", MalformedPacket, "not allowed in PUBLISH"},
	{"Reason String in SUBSCRIBE", 5, "82 0b 00 01 04 1f 00 01 61 00 01 23 00", MalformedPacket, "not allowed in SUBSCRIBE"},
	{"Subscription Identifier in UNSUBSCRIBE", 5, "a2 08 00 01 02 0b 01 00 01 23", MalformedPacket, "not allowed in UNSUBSCRIBE"},
	{"Will Delay in CONNECT properties", 0, "10 13 " + connect5 + " 02 00 3c 05 18 00 00 00 01 00 01 63", MalformedPacket, "not allowed in CONNECT"},
	{"Session Expiry in will properties", 0, "10 18 " + connect5 + " 06 00 3c 00 00 01 63 05 11 00 00 00 01 00 01 74 00 00", MalformedPacket, "not allowed in will properties"},
	{"Reason String twice", 5, "40 0c 00 01 00 08 1f 00 01 61 1f 00 01 62", ProtocolError, "Reason String given twice"},
	{"Topic Alias twice", 5, "30 0b 00 01 61 06 23 00 01 23 00 02 78", ProtocolError, "given twice"},
	{"Subscription Identifier twice in SUBSCRIBE", 5, "82 0a 00 01 04 0b 01 0b 02 00 01 23 00", ProtocolError, "given twice"},
	{"Payload Format 2", 5, "30 07 00 01 61 02 01 02 78", ProtocolError, "other than 0 or 1"},
	{"Request Problem Information 2", 0, "10 10 " + connect5 + " 02 00 3c 02 17 02 00 01 63", ProtocolError, "other than 0 or 1"},
	{"Maximum QoS 2", 5, "20 05 00 00 02 24 02", ProtocolError, "other than 0 or 1"},
	{"Receive Maximum 0", 5, "20 06 00 00 03 21 00 00", ProtocolError, "Receive Maximum of 0"},
	{"Maximum Packet Size 0", 0, "10 13 " + connect5 + " 02 00 3c 05 27 00 00 00 00 00 01 63", ProtocolError, "Maximum Packet Size of 0"},
	{"Topic Alias 0", 5, "30 08 00 01 61 03 23 00 00 78", TopicAliasInvalid, "Topic Alias of 0"},
	{"Subscription Identifier 0", 5, "82 09 00 01 02 0b 00 00 01 23 00", ProtocolError, "out of range"},
	{"Content Type not UTF-8", 5, "30 08 00 01 61 04 03 00 01 ff", MalformedPacket, "Content Type not valid UTF-8"},
	{"User Property name with U+0000", 5, "40 0b 00 01 00 07 26 00 01 00 00 01 76", MalformedPacket, "User Property name"},
	{"Authentication Data without Method", 0, "10 11 " + connect5 + " 02 00 3c 04 16 00 01 61 00 00", ProtocolError, "without Authentication Method"},
	{"AUTH with a reason code and no property length", 5, "f0 01 18", MalformedPacket, "past the end"},

	// UTF-8 strings.
	{"topic with U+0000", 4, "30 06 00 03 61 00 62 78", MalformedPacket, "topic name not valid UTF-8"},
	{"topic invalid UTF-8", 4, "30 05 00 02 c3 28 78", MalformedPacket, "topic name not valid UTF-8"},
	{"topic with a surrogate (U+D800)", 5, "30 07 00 03 ed a0 80 00 78", MalformedPacket, "topic name not valid UTF-8"},
	{"topic overlong encoding of '/'", 4, "30 05 00 02 c0 af 78", MalformedPacket, "topic name not valid UTF-8"},
	{"client ID with U+0000", 0, "10 0d " + connect4 + " 02 00 3c 00 01 00", MalformedPacket, "client identifier"},
	{"user name invalid UTF-8", 0, "10 10 " + connect4 + " 82 00 3c 00 00 00 02 ff fe", MalformedPacket, "user name"},
	{"will topic invalid UTF-8", 0, "10 11 " + connect4 + " 06 00 3c 00 00 00 01 80 00 00", MalformedPacket, "will topic"},
	{"filter with U+0000", 4, "82 06 00 01 00 01 00 00", MalformedPacket, "topic filter not valid UTF-8"},
	{"unsubscribe filter invalid UTF-8", 4, "a2 05 00 01 00 01 e2", MalformedPacket, "topic filter not valid UTF-8"},
	{"reason string invalid UTF-8", 5, "40 09 00 01 80 05 1f 00 02 f8 88", MalformedPacket, "Reason String not valid UTF-8"},

	// Topic names.
	{"PUBLISH topic with '+'", 4, "30 05 00 03 61 2f 2b", TopicNameInvalid, "wildcard"},
	{"PUBLISH topic with '#'", 5, "30 04 00 01 23 00", TopicNameInvalid, "wildcard"},
	{"PUBLISH empty topic in 3.1.1", 4, "30 03 00 00 78", ProtocolError, "empty topic"},
	{"PUBLISH empty topic without Topic Alias", 5, "30 04 00 00 00 78", ProtocolError, "empty topic"},
	{"will topic with a wildcard", 0, "10 11 " + connect4 + " 06 00 3c 00 00 00 01 23 00 00", TopicNameInvalid, "will topic"},
	{"empty will topic", 0, "10 10 " + connect4 + " 06 00 3c 00 00 00 00 00 00", TopicNameInvalid, "will topic"},

	// Packet identifiers.
	{"QoS 1 PUBLISH with packet ID 0", 4, "32 07 00 03 61 2f 62 00 00", ProtocolError, "packet identifier 0"},
	{"PUBREL with packet ID 0", 5, "62 02 00 00", ProtocolError, "packet identifier 0"},
	{"SUBSCRIBE with packet ID 0", 4, "82 06 00 00 00 01 23 00", ProtocolError, "packet identifier 0"},
	{"UNSUBACK with packet ID 0", 4, "b0 02 00 00", ProtocolError, "packet identifier 0"},

	// SUBSCRIBE, UNSUBSCRIBE and their acknowledgements.
	{"SUBSCRIBE without filters", 4, "82 02 00 01", ProtocolError, "without topic filters"},
	{"SUBSCRIBE 5 without filters", 5, "82 03 00 01 00", ProtocolError, "without topic filters"},
	{"subscription options 3.1.1 reserved bit 2", 4, "82 06 00 01 00 01 23 04", MalformedPacket, "reserved bits"},
	{"subscription options 3.1.1 reserved bit 7", 4, "82 06 00 01 00 01 23 80", MalformedPacket, "reserved bits"},
	{"subscription options 5 reserved bit 6", 5, "82 07 00 01 00 00 01 23 40", MalformedPacket, "reserved bits"},
	{"subscription QoS 3", 4, "82 06 00 01 00 01 23 03", MalformedPacket, "QoS 3"},
	{"subscription Retain Handling 3", 5, "82 07 00 01 00 00 01 23 30", ProtocolError, "Retain Handling 3"},
	{"No Local on a shared subscription", 5, "82 10 00 01 00 00 0a 24 73 68 61 72 65 2f 67 2f 23 04", ProtocolError, "No Local"},
	{"UNSUBSCRIBE without filters", 4, "a2 02 00 01", ProtocolError, "without topic filters"},
	{"UNSUBSCRIBE 5 without filters", 5, "a2 03 00 01 00", ProtocolError, "without topic filters"},
	{"SUBACK without return codes", 4, "90 02 00 01", ProtocolError, "without reason codes"},
	{"SUBACK 3.1.1 return code 3", 4, "90 03 00 01 03", ProtocolError, "reason code not allowed"},
	{"SUBACK 3.1.1 return code 0x87", 4, "90 03 00 01 87", ProtocolError, "reason code not allowed"},
	{"SUBACK 5 reason code 0x11", 5, "90 04 00 01 00 11", ProtocolError, "reason code not allowed"},
	{"UNSUBACK 5 without reason codes", 5, "b0 03 00 01 00", ProtocolError, "without reason codes"},
	{"UNSUBACK 5 reason code 0x01", 5, "b0 04 00 01 00 01", ProtocolError, "reason code not allowed"},

	// Reason codes.
	{"PUBACK reason code 0x05", 5, "40 03 00 01 05", ProtocolError, "reason code not allowed"},
	{"PUBREC reason code 0x92", 5, "50 03 00 01 92", ProtocolError, "reason code not allowed"},
	{"PUBREL reason code 0x10", 5, "62 03 00 01 10", ProtocolError, "reason code not allowed"},
	{"PUBCOMP reason code 0x80", 5, "70 03 00 01 80", ProtocolError, "reason code not allowed"},
	{"DISCONNECT reason code 0x84", 5, "e0 01 84", ProtocolError, "reason code not allowed"},
	{"AUTH reason code 0x00 with 0x01", 5, "f0 02 01 00", ProtocolError, "reason code not allowed"},
	{"CONNACK 5 reason code 0x04", 5, "20 03 00 04 00", ProtocolError, "reason code not allowed"},
	{"CONNACK 3.1.1 return code 6", 4, "20 02 00 06", ProtocolError, "return code over 5"},
	{"CONNACK reserved flags", 4, "20 02 02 00", MalformedPacket, "CONNACK flags"},
	{"CONNACK session present with a failure", 4, "20 02 01 05", ProtocolError, "Session Present"},
	{"CONNACK 5 session present with a failure", 5, "20 03 01 80 00", ProtocolError, "Session Present"},

	// CONNECT.
	{"protocol name MQTX", 0, "10 0e 00 04 4d 51 54 58 04 02 00 3c 00 02 63 31", UnsupportedProtocolVersion, "protocol name"},
	{"MQTT 3.1 (MQIsdp, level 3)", 0, "10 10 00 06 4d 51 49 73 64 70 03 02 00 3c 00 02 63 31", UnsupportedProtocolVersion, "MQIsdp"},
	{"protocol level 3 with name MQTT", 0, "10 0e 00 04 4d 51 54 54 03 02 00 3c 00 02 63 31", UnsupportedProtocolVersion, "protocol level"},
	{"protocol level 6", 4, "10 0e 00 04 4d 51 54 54 06 02 00 3c 00 02 63 31", UnsupportedProtocolVersion, "protocol level"},
	{"reserved CONNECT flag", 0, "10 0e " + connect4 + " 03 00 3c 00 02 63 31", MalformedPacket, "reserved bit 0"},
	{"password without user name in 3.1.1", 0, "10 12 " + connect4 + " 42 00 3c 00 02 63 31 00 02 70 77", ProtocolError, "password without user name"},
	{"will QoS without will flag", 0, "10 0e " + connect4 + " 0a 00 3c 00 02 63 31", MalformedPacket, "without the will flag"},
	{"will retain without will flag", 0, "10 0e " + connect5 + " 22 00 3c 00 00 02 63 31", MalformedPacket, "without the will flag"},
	{"will QoS 3", 0, "10 14 " + connect4 + " 1e 00 3c 00 02 63 31 00 01 74 00 01 78", MalformedPacket, "will QoS 3"},

	// Bytes no field consumes.
	{"CONNECT trailing byte", 0, "10 0f " + connect4 + " 02 00 3c 00 02 63 31 00", MalformedPacket, "left over"},
	{"CONNECT 5 trailing byte", 0, "10 10 " + connect5 + " 02 00 3c 00 00 02 63 31 00", MalformedPacket, "left over"},
	{"CONNACK 3.1.1 trailing byte", 4, "20 03 00 00 00", MalformedPacket, "left over"},
	{"PUBACK 3.1.1 with a reason code", 4, "40 03 00 01 00", MalformedPacket, "left over"},
	{"PUBCOMP 5 trailing byte after properties", 5, "70 05 00 01 00 00 00", MalformedPacket, "left over"},
	{"UNSUBACK 3.1.1 with a reason code", 4, "b0 03 00 01 00", MalformedPacket, "left over"},
	{"PINGREQ with a body", 4, "c0 01 00", MalformedPacket, "left over"},
	{"PINGRESP 5 with a body", 5, "d0 02 00 00", MalformedPacket, "left over"},
	{"DISCONNECT 3.1.1 with a reason code", 4, "e0 01 00", MalformedPacket, "left over"},
	{"DISCONNECT 5 trailing byte", 5, "e0 03 00 00 00", MalformedPacket, "left over"},
	{"AUTH trailing byte", 5, "f0 03 18 00 00", MalformedPacket, "left over"},
	{"SUBSCRIBE half a filter after the first", 4, "82 07 00 01 00 01 23 00 00", MalformedPacket, "filter length past the end"},
}

// TestDecodeErrors: each malformed or forbidden packet is an *Error with
// the reason code to answer it with (never a panic, never "need more"),
// n is 0, and every prefix of it is either "need more" or an error too.
func TestDecodeErrors(t *testing.T) {
	for _, c := range badPackets {
		t.Run(c.name, func(t *testing.T) {
			wire := mustHex(c.hex)
			var p Packet
			n, err := Decode(wire, c.version, 0, &p)
			if err == nil || n != 0 {
				t.Fatalf("Decode(% x) = %d, %v; want an error", wire, n, err)
			}
			if codeOf(err) != int(c.code) {
				t.Errorf("code %#x (%v), want %#x", codeOf(err), err, c.code)
			}
			if !strings.Contains(err.Error(), c.reason) {
				t.Errorf("error %q does not say %q", err, c.reason)
			}
			for i := 0; i < len(wire); i++ {
				if n, err := Decode(wire[:i], c.version, 0, &p); n != 0 || (err != nil && codeOf(err) < 0) {
					t.Fatalf("prefix of %d bytes: n=%d err=%v", i, n, err)
				}
			}
		})
	}
}

// TestDecodeUnsupportedVersionReportsLevel: a CONNECT refused for its
// protocol leaves the name and level read in the Packet, for the server to
// choose the form of its CONNACK.
func TestDecodeUnsupportedVersionReportsLevel(t *testing.T) {
	var p Packet
	_, err := Decode(mustHex("10 0e 00 04 4d 51 54 54 06 02 00 3c 00 02 63 31"), 0, 0, &p)
	if codeOf(err) != int(UnsupportedProtocolVersion) || p.Version != 6 || string(p.ProtocolName) != "MQTT" {
		t.Fatalf("err=%v version=%d name=%q", err, p.Version, p.ProtocolName)
	}
	// Append answers a 3.1.1 client with return code 1.
	out, err := Append(nil, &Packet{Type: CONNACK, ReasonCode: byte(codeOf(err))}, Version311)
	if err != nil || string(out) != "\x20\x02\x00\x01" {
		t.Fatalf("CONNACK % x, %v", out, err)
	}
}

// TestDecodeBadVersionArgument: a version other than 0, 4 and 5 is refused
// before anything is read.
func TestDecodeBadVersionArgument(t *testing.T) {
	var p Packet
	if _, err := Decode(mustHex("c0 00"), 3, 0, &p); codeOf(err) != int(UnsupportedProtocolVersion) {
		t.Fatalf("err=%v", err)
	}
	if _, err := Append(nil, &Packet{Type: PINGREQ}, 6); codeOf(err) != int(UnsupportedProtocolVersion) {
		t.Fatalf("Append err=%v", err)
	}
}
