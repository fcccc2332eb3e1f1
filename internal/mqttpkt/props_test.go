package mqttpkt

import (
	"strings"
	"testing"
)

// specProps is MQTT 5 section 2.2.2.2's table, written out again here
// independently of propTable: where each property may appear ("WILL" for
// will properties).
var specProps = map[byte]string{
	0x01: "PUBLISH WILL",
	0x02: "PUBLISH WILL",
	0x03: "PUBLISH WILL",
	0x08: "PUBLISH WILL",
	0x09: "PUBLISH WILL",
	0x0B: "PUBLISH SUBSCRIBE",
	0x11: "CONNECT CONNACK DISCONNECT",
	0x12: "CONNACK",
	0x13: "CONNACK",
	0x15: "CONNECT CONNACK AUTH",
	0x16: "CONNECT CONNACK AUTH",
	0x17: "CONNECT",
	0x18: "WILL",
	0x19: "CONNECT",
	0x1A: "CONNACK",
	0x1C: "CONNACK DISCONNECT",
	0x1F: "CONNACK PUBACK PUBREC PUBREL PUBCOMP SUBACK UNSUBACK DISCONNECT AUTH",
	0x21: "CONNECT CONNACK",
	0x22: "CONNECT CONNACK",
	0x23: "PUBLISH",
	0x24: "CONNACK",
	0x25: "CONNACK",
	0x26: "CONNECT CONNACK PUBLISH WILL PUBACK PUBREC PUBREL PUBCOMP SUBSCRIBE SUBACK UNSUBSCRIBE UNSUBACK DISCONNECT AUTH",
	0x27: "CONNECT CONNACK",
	0x28: "CONNACK",
	0x29: "CONNACK",
	0x2A: "CONNACK",
}

// basePacket is a minimal valid packet of type typ for MQTT 5.
func basePacket(typ byte) *Packet {
	p := &Packet{Type: typ}
	switch typ {
	case CONNECT:
		p.ProtocolName, p.Version, p.ClientID = []byte("MQTT"), 5, []byte("c")
	case PUBLISH:
		p.Topic = []byte("t")
	case PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK, SUBACK:
		p.PacketID = 1
		if typ == SUBACK || typ == UNSUBACK {
			p.ReasonCodes = []byte{0}
		}
	case SUBSCRIBE:
		p.PacketID, p.Subscriptions = 1, []Subscription{{Filter: []byte("t")}}
	case UNSUBSCRIBE:
		p.PacketID, p.Filters = 1, [][]byte{[]byte("t")}
	}
	p.Flags = fixedFlags(p)
	return p
}

// setProp gives property id a valid value in pr.
func setProp(pr *Properties, id byte) {
	switch propTable[id].kind {
	case kindByte, kindUint16, kindUint32:
		pr.set(id, 1)
	case kindString, kindBinary:
		*pr.bytesField(id) = []byte("x")
	case kindVarInt:
		pr.SubscriptionIDs = []uint32{1}
	case kindPair:
		pr.User = []UserProperty{user("k", "v")}
	}
}

// TestPropertiesAllowedPerPacket: each property is accepted by Append and
// read back by Decode in exactly the packet types (and the will) that the
// specification's table lists, and refused as MalformedPacket elsewhere.
func TestPropertiesAllowedPerPacket(t *testing.T) {
	for id := byte(0); id < 64; id++ {
		where, defined := specProps[id]
		if known := int(id) < len(propTable) && propTable[id].kind != kindNone; known != defined {
			t.Fatalf("property %#x: known=%v, in the specification=%v", id, known, defined)
		}
		if !defined {
			continue
		}
		allowed := map[string]bool{}
		for _, w := range strings.Fields(where) {
			allowed[w] = true
		}
		for typ := CONNECT; typ <= AUTH+1; typ++ { // AUTH+1: the will
			name := TypeName(typ)
			p := basePacket(typ)
			pr := &p.Props
			if typ == AUTH+1 {
				name = "WILL"
				p = basePacket(CONNECT)
				p.Will = &Will{Topic: []byte("w")}
				pr = &p.Will.Props
			}
			setProp(pr, id)
			if id == PropAuthData && typ == CONNECT {
				pr.AuthMethod = []byte("m")
			}
			enc, err := Append(nil, p, Version5)
			if !allowed[name] {
				if codeOf(err) != int(MalformedPacket) {
					t.Errorf("%s in %s: Append err=%v, want MalformedPacket", PropName(id), name, err)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s in %s: Append: %v", PropName(id), name, err)
				continue
			}
			got := decodeAll(t, enc, Version5)
			if g, w := describe(got), describe(p); g != w {
				t.Errorf("%s in %s:\n got %s\nwant %s", PropName(id), name, g, w)
			}
		}
	}
}

// TestPropertiesIn311: Append refuses any property in MQTT 3.1.1, in the
// packet and in the will.
func TestPropertiesIn311(t *testing.T) {
	p := basePacket(PUBLISH)
	p.Props.User = []UserProperty{user("k", "v")}
	if _, err := Append(nil, p, Version311); codeOf(err) != int(MalformedPacket) {
		t.Errorf("PUBLISH: err=%v", err)
	}
	p = basePacket(CONNECT)
	p.Will = &Will{Topic: []byte("w")}
	p.Will.Props.SetWillDelay(0)
	if _, err := Append(nil, p, Version311); codeOf(err) != int(MalformedPacket) {
		t.Errorf("will: err=%v", err)
	}
}

// TestPropertyAccessors: every fixed-size property reads as absent until
// set, then as its value (0 included), and absent again after Remove; Has
// and Empty follow.
func TestPropertyAccessors(t *testing.T) {
	type acc struct {
		id  byte
		set func(*Properties, uint32)
		get func(*Properties) (uint32, bool)
		max uint32
	}
	u8 := func(g func(*Properties) (byte, bool)) func(*Properties) (uint32, bool) {
		return func(p *Properties) (uint32, bool) { v, ok := g(p); return uint32(v), ok }
	}
	u16 := func(g func(*Properties) (uint16, bool)) func(*Properties) (uint32, bool) {
		return func(p *Properties) (uint32, bool) { v, ok := g(p); return uint32(v), ok }
	}
	accs := []acc{
		{PropPayloadFormat, func(p *Properties, v uint32) { p.SetPayloadFormat(byte(v)) }, u8((*Properties).PayloadFormat), 0xff},
		{PropMessageExpiry, func(p *Properties, v uint32) { p.SetMessageExpiry(v) }, (*Properties).MessageExpiry, 0xffffffff},
		{PropSessionExpiry, func(p *Properties, v uint32) { p.SetSessionExpiry(v) }, (*Properties).SessionExpiry, 0xffffffff},
		{PropServerKeepAlive, func(p *Properties, v uint32) { p.SetServerKeepAlive(uint16(v)) }, u16((*Properties).ServerKeepAlive), 0xffff},
		{PropRequestProblemInfo, func(p *Properties, v uint32) { p.SetRequestProblemInfo(byte(v)) }, u8((*Properties).RequestProblemInfo), 0xff},
		{PropWillDelay, func(p *Properties, v uint32) { p.SetWillDelay(v) }, (*Properties).WillDelay, 0xffffffff},
		{PropRequestResponseInfo, func(p *Properties, v uint32) { p.SetRequestResponseInfo(byte(v)) }, u8((*Properties).RequestResponseInfo), 0xff},
		{PropReceiveMaximum, func(p *Properties, v uint32) { p.SetReceiveMaximum(uint16(v)) }, u16((*Properties).ReceiveMaximum), 0xffff},
		{PropTopicAliasMaximum, func(p *Properties, v uint32) { p.SetTopicAliasMaximum(uint16(v)) }, u16((*Properties).TopicAliasMaximum), 0xffff},
		{PropTopicAlias, func(p *Properties, v uint32) { p.SetTopicAlias(uint16(v)) }, u16((*Properties).TopicAlias), 0xffff},
		{PropMaximumQoS, func(p *Properties, v uint32) { p.SetMaximumQoS(byte(v)) }, u8((*Properties).MaximumQoS), 0xff},
		{PropRetainAvailable, func(p *Properties, v uint32) { p.SetRetainAvailable(byte(v)) }, u8((*Properties).RetainAvailable), 0xff},
		{PropMaximumPacketSize, func(p *Properties, v uint32) { p.SetMaximumPacketSize(v) }, (*Properties).MaximumPacketSize, 0xffffffff},
		{PropWildcardSubAvailable, func(p *Properties, v uint32) { p.SetWildcardSubAvailable(byte(v)) }, u8((*Properties).WildcardSubAvailable), 0xff},
		{PropSubIDAvailable, func(p *Properties, v uint32) { p.SetSubIDAvailable(byte(v)) }, u8((*Properties).SubIDAvailable), 0xff},
		{PropSharedSubAvailable, func(p *Properties, v uint32) { p.SetSharedSubAvailable(byte(v)) }, u8((*Properties).SharedSubAvailable), 0xff},
	}
	fixed := 0
	for id := range propTable {
		if k := propTable[id].kind; k == kindByte || k == kindUint16 || k == kindUint32 {
			fixed++
		}
	}
	if fixed != len(accs) {
		t.Fatalf("%d fixed-size properties, %d accessors tested", fixed, len(accs))
	}
	for _, a := range accs {
		var p Properties
		if _, ok := a.get(&p); ok || p.Has(a.id) || !p.Empty() {
			t.Fatalf("%s present in a zero Properties", PropName(a.id))
		}
		for _, v := range []uint32{0, 1, a.max} {
			a.set(&p, v)
			if got, ok := a.get(&p); !ok || got != v || !p.Has(a.id) || p.Empty() {
				t.Fatalf("%s: set %d, got %d %v", PropName(a.id), v, got, ok)
			}
		}
		// Setting one leaves the others absent.
		for _, b := range accs {
			if _, ok := b.get(&p); ok != (b.id == a.id) {
				t.Fatalf("setting %s: %s present=%v", PropName(a.id), PropName(b.id), ok)
			}
		}
		p.Remove(a.id)
		if _, ok := a.get(&p); ok || p.Has(a.id) || !p.Empty() {
			t.Fatalf("%s present after Remove", PropName(a.id))
		}
	}
}

// TestPropertyByteFields: a string or binary property is present when its
// field is non-nil, even empty (and round-trips as present-and-empty);
// Remove drops it, and drops all User Properties and Subscription
// Identifiers at once.
func TestPropertyByteFields(t *testing.T) {
	p := basePacket(PUBLISH)
	p.Props.ContentType = []byte{}
	p.Props.CorrelationData = []byte{}
	p.Props.SubscriptionIDs = []uint32{3, 1, 2}
	p.Props.User = []UserProperty{user("b", "1"), user("a", "2"), user("b", "3")}
	enc, err := Append(nil, p, Version5)
	if err != nil {
		t.Fatal(err)
	}
	got := decodeAll(t, enc, Version5)
	if !got.Props.Has(PropContentType) || got.Props.ContentType == nil || len(got.Props.ContentType) != 0 {
		t.Fatalf("empty Content Type not kept as present: %q", got.Props.ContentType)
	}
	if got.Props.Has(PropResponseTopic) {
		t.Fatalf("absent Response Topic present")
	}
	if g := describe(got); !strings.Contains(g, `User Property="b":"1" "a":"2" "b":"3"`) || !strings.Contains(g, "Subscription Identifier=[3 1 2]") {
		t.Fatalf("order not kept: %s", g)
	}
	for _, id := range []byte{PropContentType, PropCorrelationData, PropSubscriptionID, PropUser} {
		got.Props.Remove(id)
		if got.Props.Has(id) {
			t.Fatalf("%s present after Remove", PropName(id))
		}
	}
	if !got.Props.Empty() {
		t.Fatalf("not empty: %s", describeProps(&got.Props))
	}
	got.Props.Remove(0x7f) // unknown: nothing happens
}

// TestPropName names the properties as the specification does.
func TestPropName(t *testing.T) {
	if PropName(PropTopicAlias) != "Topic Alias" || PropName(0x04) != "property 0x4" || PropName(0xff) != "property 0xff" {
		t.Fatalf("%q %q %q", PropName(PropTopicAlias), PropName(0x04), PropName(0xff))
	}
	if TypeName(PUBLISH) != "PUBLISH" || TypeName(0) != "type 0" || TypeName(16) != "type 16" {
		t.Fatalf("%q %q %q", TypeName(PUBLISH), TypeName(0), TypeName(16))
	}
}
