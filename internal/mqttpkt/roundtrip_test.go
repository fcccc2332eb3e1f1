package mqttpkt

import (
	"math/rand/v2"
	"testing"
)

// gen makes random packets. Valid ones (wild false) are packets Append
// must accept; wild ones put arbitrary values in the fields their type
// uses (bad bytes in strings, any QoS, reason code, packet ID, property).
type gen struct {
	r    *rand.Rand
	wild bool
}

func (g *gen) n(n int) int       { return g.r.IntN(n) }
func (g *gen) chance(n int) bool { return g.r.IntN(n) == 0 }

func (g *gen) bytes(alphabet string, max int) []byte {
	b := make([]byte, g.n(max+1))
	for i := range b {
		b[i] = alphabet[g.n(len(alphabet))]
	}
	return b
}

// str is a UTF-8 string; wild, it may hold U+0000 and invalid bytes.
func (g *gen) str() []byte {
	if g.wild && g.chance(8) {
		return g.bytes("ab\x00\xff\xc3\xa9+#/", 6)
	}
	s := []string{"", "a", "é", "日本", "x/y", "$SYS", "😀", "k e y"}
	var b []byte
	for i := g.n(3); i >= 0; i-- {
		b = append(b, s[g.n(len(s))]...)
	}
	return b
}

func (g *gen) topic() []byte {
	if g.wild && g.chance(8) {
		return g.bytes("a/+#\x00", 5)
	}
	levels := []string{"a", "b", "", "sport", "$SYS", "é"}
	t := levels[g.n(len(levels))]
	for i := g.n(3); i > 0; i-- {
		t += "/" + levels[g.n(len(levels))]
	}
	if t == "" {
		t = "t"
	}
	return []byte(t)
}

func (g *gen) filter() []byte {
	if g.wild && g.chance(8) {
		return g.bytes("a/+#\x00", 5)
	}
	f := []string{"a/+", "#", "sport/tennis/#", "+/+", "$share/g/a/#", "a", "/"}
	return []byte(f[g.n(len(f))])
}

func (g *gen) qos() byte {
	if g.wild && g.chance(10) {
		return 3
	}
	return byte(g.n(3))
}

func (g *gen) id() uint16 {
	if g.wild && g.chance(10) {
		return 0
	}
	return uint16(1 + g.n(65535))
}

// code picks a reason code of set; wild, any byte now and then.
func (g *gen) code(set *codeSet) byte {
	if g.wild && g.chance(10) {
		return byte(g.n(256))
	}
	var all []byte
	for c := 0; c < 256; c++ {
		if set.has(byte(c)) {
			all = append(all, byte(c))
		}
	}
	return all[g.n(len(all))]
}

// props fills pr with a random selection of the properties in allowed
// (wild: of any property, any value).
func (g *gen) props(pr *Properties, allowed uint64, typ byte) {
	if g.chance(3) {
		return
	}
	if g.wild && g.chance(4) {
		allowed = ^uint64(0)
	}
	for id := byte(1); int(id) < len(propTable); id++ {
		info := propTable[id]
		if info.kind == kindNone || allowed&bit(id) == 0 || !g.chance(3) {
			continue
		}
		v := uint32(g.r.Uint32())
		switch info.kind {
		case kindByte:
			v = uint32(byte(v))
		case kindUint16:
			v = uint32(uint16(v))
		}
		if !g.wild || !g.chance(4) {
			switch id {
			case PropPayloadFormat, PropRequestProblemInfo, PropRequestResponseInfo, PropMaximumQoS,
				PropRetainAvailable, PropWildcardSubAvailable, PropSubIDAvailable, PropSharedSubAvailable:
				v &= 1
			case PropReceiveMaximum, PropMaximumPacketSize, PropTopicAlias:
				v |= 1
			}
		}
		switch info.kind {
		case kindByte, kindUint16, kindUint32:
			pr.set(id, v)
		case kindString:
			*pr.bytesField(id) = g.str()
		case kindBinary:
			*pr.bytesField(id) = g.bytes("\x00\x01\xff", 4)
		case kindVarInt:
			n := 1
			if typ == PUBLISH || (g.wild && g.chance(4)) {
				n += g.n(3)
			}
			for i := 0; i < n; i++ {
				sid := 1 + uint32(g.n(MaxSubscriptionID))
				if g.wild && g.chance(6) {
					sid = uint32(g.n(2)) * (MaxSubscriptionID + 1)
				}
				pr.SubscriptionIDs = append(pr.SubscriptionIDs, sid)
			}
		case kindPair:
			for i := g.n(3); i >= 0; i-- {
				pr.User = append(pr.User, UserProperty{g.str(), g.str()})
			}
		}
	}
	if !g.wild && typ == CONNECT && pr.AuthData != nil && pr.AuthMethod == nil {
		pr.AuthMethod = []byte("m")
	}
}

// packet makes a random packet of any type for version v.
func (g *gen) packet(v byte) *Packet {
	types := int(DISCONNECT)
	if v == Version5 {
		types = int(AUTH)
	}
	p := &Packet{Type: byte(1 + g.n(types))}
	v5 := v == Version5
	if v5 && p.Type != PINGREQ && p.Type != PINGRESP {
		g.props(&p.Props, allowedProps[p.Type], p.Type)
	}
	switch p.Type {
	case CONNECT:
		p.ProtocolName, p.Version = []byte("MQTT"), v
		p.CleanStart = g.chance(2)
		p.KeepAlive = uint16(g.n(3) * g.n(65536))
		p.ClientID = g.str()
		if g.chance(2) {
			w := &Will{Topic: g.topic(), Payload: g.bytes("\x00pq", 5), QoS: g.qos(), Retain: g.chance(2)}
			if v5 {
				g.props(&w.Props, willProps, 0)
			}
			p.Will = w
		}
		p.HasUsername = g.chance(2)
		if p.HasUsername {
			p.Username = g.str()
		}
		p.HasPassword = g.chance(2) && (p.HasUsername || v5 || g.wild)
		if p.HasPassword {
			p.Password = g.bytes("\x00\xffpw", 5)
		}
	case CONNACK:
		if v5 {
			p.ReasonCode = g.code(&connackCodes)
		} else {
			p.ReasonCode = connack311[g.n(len(connack311))]
			if g.wild && g.chance(10) {
				p.ReasonCode = Banned
			}
		}
		p.SessionPresent = g.chance(2) && (p.ReasonCode == 0 || g.wild)
	case PUBLISH:
		p.QoS = g.qos()
		p.Retain = g.chance(2)
		p.Dup = g.chance(3) && (p.QoS > 0 || g.wild)
		if p.QoS > 0 {
			p.PacketID = g.id()
		}
		p.Topic = g.topic()
		if v5 && p.Props.Has(PropTopicAlias) && g.chance(2) {
			p.Topic = []byte{}
		}
		p.Payload = g.bytes("\x00\x01\x02hello", 70)
	case PUBACK, PUBREC, PUBREL, PUBCOMP:
		p.PacketID = g.id()
		if v5 {
			if p.Type == PUBACK || p.Type == PUBREC {
				p.ReasonCode = g.code(&pubackCodes)
			} else {
				p.ReasonCode = g.code(&pubrelCodes)
			}
		} else if g.wild && g.chance(10) {
			p.ReasonCode = 0x10
		}
	case SUBSCRIBE:
		p.PacketID = g.id()
		for i := g.n(3); i >= 0 || (g.wild && g.chance(10)); i-- {
			s := Subscription{Filter: g.filter(), QoS: g.qos()}
			if v5 || g.wild && g.chance(10) {
				s.NoLocal = g.chance(2) && !isShared(s.Filter)
				s.RetainAsPublished = g.chance(2)
				s.RetainHandling = byte(g.n(3))
				if g.wild && g.chance(10) {
					s.RetainHandling, s.NoLocal = 3, true
				}
			}
			p.Subscriptions = append(p.Subscriptions, s)
			if g.wild && g.chance(10) {
				p.Subscriptions = nil
			}
		}
	case SUBACK:
		p.PacketID = g.id()
		set := &subackCodes
		if !v5 {
			set = &suback311
		}
		for i := g.n(3); i >= 0; i-- {
			p.ReasonCodes = append(p.ReasonCodes, g.code(set))
		}
	case UNSUBSCRIBE:
		p.PacketID = g.id()
		for i := g.n(3); i >= 0; i-- {
			p.Filters = append(p.Filters, g.filter())
		}
	case UNSUBACK:
		p.PacketID = g.id()
		if v5 || (g.wild && g.chance(10)) {
			for i := g.n(3); i >= 0; i-- {
				p.ReasonCodes = append(p.ReasonCodes, g.code(&unsubackCode))
			}
		}
	case DISCONNECT:
		if v5 {
			p.ReasonCode = g.code(&disconnCodes)
		}
	case AUTH:
		p.ReasonCode = g.code(&authCodes)
	}
	if g.wild && g.chance(20) {
		p.Props = Properties{}
		g.props(&p.Props, ^uint64(0), p.Type)
	}
	p.Flags = fixedFlags(p)
	return p
}

// roundTrip appends p, decodes the result into into and compares.
func roundTrip(t *testing.T, p *Packet, v byte, into *Packet) (appended bool) {
	t.Helper()
	enc, err := Append(nil, p, v)
	if err != nil {
		if codeOf(err) < 0 {
			t.Fatalf("Append: not an *Error: %v", err)
		}
		return false
	}
	if n := Size(p, v); n != len(enc) {
		t.Fatalf("%s: Size %d, Append wrote %d", describe(p), n, len(enc))
	}
	n, err := Decode(enc, v, 0, into)
	if err != nil || n != len(enc) {
		t.Fatalf("%s\nencoded % x\ndecodes to n=%d err=%v", describe(p), enc, n, err)
	}
	if g, w := describe(into), describe(p); g != w {
		t.Fatalf("round trip\n got %s\nwant %s\nwire % x", g, w, enc)
	}
	return true
}

// TestRoundTrip: random valid packets of every type, in both versions,
// are accepted by Append, measured right by Size and decode (into one
// reused Packet) to the same fields.
func TestRoundTrip(t *testing.T) {
	for _, v := range []byte{4, 5} {
		g := &gen{r: rand.New(rand.NewPCG(1, uint64(v)))}
		var into Packet
		for i := 0; i < 20000; i++ {
			p := g.packet(v)
			if !roundTrip(t, p, v, &into) {
				_, err := Append(nil, p, v)
				t.Fatalf("valid packet refused: %s: %v", describe(p), err)
			}
		}
	}
}

// TestAppendDecodeAgree: whatever Append accepts, Decode accepts and reads
// back the same; what Append refuses is an *Error. The packets carry
// arbitrary values (bad UTF-8, QoS 3, packet ID 0, reason codes and
// properties a type does not have), so both sides of each rule are hit.
func TestAppendDecodeAgree(t *testing.T) {
	for _, v := range []byte{4, 5} {
		g := &gen{r: rand.New(rand.NewPCG(2, uint64(v))), wild: true}
		var into Packet
		accepted := 0
		const total = 50000
		for i := 0; i < total; i++ {
			if roundTrip(t, g.packet(v), v, &into) {
				accepted++
			}
		}
		// Both outcomes must be well represented for the test to mean
		// something.
		if accepted < total/10 || accepted > total*9/10 {
			t.Errorf("version %d: %d of %d accepted", v, accepted, total)
		}
	}
}
