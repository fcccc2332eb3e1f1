package mqttpkt

import (
	"bytes"
	"testing"
)

// benchPublish is a PUBLISH with a 64-byte payload; props adds a Message
// Expiry, a Content Type, a Subscription Identifier and a User Property.
func benchPublish(qos byte, props bool) *Packet {
	p := &Packet{Type: PUBLISH, Topic: []byte("sensors/building-1/floor-2/temperature"), QoS: qos,
		Payload: bytes.Repeat([]byte("p"), 64)}
	if qos > 0 {
		p.PacketID = 4242
	}
	if props {
		p.Props.SetMessageExpiry(3600)
		p.Props.ContentType = []byte("application/json")
		p.Props.SubscriptionIDs = []uint32{7}
		p.Props.User = []UserProperty{user("trace", "abc123")}
	}
	return p
}

var benchCases = []struct {
	name    string
	version byte
	qos     byte
	props   bool
}{
	{"v4/QoS0", 4, 0, false},
	{"v4/QoS1", 4, 1, false},
	{"v5/QoS0", 5, 0, false},
	{"v5/QoS1", 5, 1, false},
	{"v5/QoS1+props", 5, 1, true},
}

func BenchmarkDecodePublish(b *testing.B) {
	for _, c := range benchCases {
		b.Run(c.name, func(b *testing.B) {
			wire, err := Append(nil, benchPublish(c.qos, c.props), c.version)
			if err != nil {
				b.Fatal(err)
			}
			var p Packet
			b.SetBytes(int64(len(wire)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(wire, c.version, 0, &p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAppendPublish(b *testing.B) {
	for _, c := range benchCases {
		b.Run(c.name, func(b *testing.B) {
			p := benchPublish(c.qos, c.props)
			buf := make([]byte, 0, 256)
			b.SetBytes(int64(Size(p, c.version)))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, err = Append(buf[:0], p, c.version); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkMatch(b *testing.B) {
	cases := []struct{ name, filter, topic string }{
		{"literal", "sensors/building-1/floor-2/temperature", "sensors/building-1/floor-2/temperature"},
		{"plus", "sensors/+/floor-2/+", "sensors/building-1/floor-2/temperature"},
		{"hash", "sensors/building-1/#", "sensors/building-1/floor-2/temperature"},
		{"miss", "sensors/building-2/+/temperature", "sensors/building-1/floor-2/temperature"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			f, t := []byte(c.filter), []byte(c.topic)
			b.ReportAllocs()
			for b.Loop() {
				Match(f, t)
			}
		})
	}
}

// TestDecodeDoesNotAllocate: decoding a PUBLISH (QoS 0 or 1, with or
// without properties, User Property and Subscription Identifier included)
// into a reused Packet allocates nothing, nor does decoding a SUBSCRIBE
// once its list has grown; Append into a buffer with room and Match
// allocate nothing either.
func TestDecodeDoesNotAllocate(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation allocates")
	}
	for _, c := range benchCases {
		wire, err := Append(nil, benchPublish(c.qos, c.props), c.version)
		if err != nil {
			t.Fatal(err)
		}
		var p Packet
		Decode(wire, c.version, 0, &p) // grows the lists once
		if n := testing.AllocsPerRun(1000, func() { Decode(wire, c.version, 0, &p) }); n != 0 {
			t.Errorf("Decode %s: %v allocations", c.name, n)
		}
		buf := make([]byte, 0, 256)
		pk := benchPublish(c.qos, c.props)
		if n := testing.AllocsPerRun(1000, func() { buf, _ = Append(buf[:0], pk, c.version) }); n != 0 {
			t.Errorf("Append %s: %v allocations", c.name, n)
		}
	}
	sub := mustHex("82 19 | 00 02 | 03 0b 80 01 | 00 03 61 2f 23 1e | 00 0a 24 73 68 61 72 65 2f 67 2f 78 20")
	var p Packet
	Decode(sub, 5, 0, &p)
	if n := testing.AllocsPerRun(1000, func() { Decode(sub, 5, 0, &p) }); n != 0 {
		t.Errorf("Decode SUBSCRIBE: %v allocations", n)
	}
	f, tp := []byte("a/+/c/#"), []byte("a/b/c/d/e")
	if n := testing.AllocsPerRun(1000, func() { Match(f, tp) }); n != 0 {
		t.Errorf("Match: %v allocations", n)
	}
}
