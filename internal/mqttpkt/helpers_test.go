package mqttpkt

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// mustHex decodes hex written with spaces and "|" between fields, as the
// fixtures are.
func mustHex(s string) []byte {
	s = strings.NewReplacer(" ", "", "|", "", "\n", "", "\t", "").Replace(s)
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(fmt.Sprintf("bad hex %q: %v", s, err))
	}
	return b
}

// describe renders every field of a packet Decode or Append looks at, in a
// form where two packets are equal exactly when their renderings are:
// byte fields as Go strings (a nil and an empty list look the same, a
// property present with an empty value and an absent one do not).
func describe(p *Packet) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s flags=%x", TypeName(p.Type), p.Flags)
	switch p.Type {
	case CONNECT:
		fmt.Fprintf(&b, " name=%q version=%d clean=%v keepalive=%d client=%q", p.ProtocolName, p.Version, p.CleanStart, p.KeepAlive, p.ClientID)
		if w := p.Will; w != nil {
			fmt.Fprintf(&b, " will{topic=%q payload=%q qos=%d retain=%v props{%s}}", w.Topic, w.Payload, w.QoS, w.Retain, describeProps(&w.Props))
		}
		if p.HasUsername {
			fmt.Fprintf(&b, " user=%q", p.Username)
		}
		if p.HasPassword {
			fmt.Fprintf(&b, " password=%q", p.Password)
		}
	case CONNACK:
		fmt.Fprintf(&b, " session=%v", p.SessionPresent)
	case PUBLISH:
		fmt.Fprintf(&b, " topic=%q qos=%d retain=%v dup=%v payload=%q", p.Topic, p.QoS, p.Retain, p.Dup, p.Payload)
	case SUBSCRIBE:
		for _, s := range p.Subscriptions {
			fmt.Fprintf(&b, " sub{%q qos=%d nl=%v rap=%v rh=%d}", s.Filter, s.QoS, s.NoLocal, s.RetainAsPublished, s.RetainHandling)
		}
	case UNSUBSCRIBE:
		for _, f := range p.Filters {
			fmt.Fprintf(&b, " filter=%q", f)
		}
	}
	if p.ReasonCode != 0 {
		fmt.Fprintf(&b, " rc=%#x", p.ReasonCode)
	}
	if p.PacketID != 0 {
		fmt.Fprintf(&b, " id=%d", p.PacketID)
	}
	if len(p.ReasonCodes) > 0 {
		fmt.Fprintf(&b, " rcs=[% x]", p.ReasonCodes)
	}
	if s := describeProps(&p.Props); s != "" {
		fmt.Fprintf(&b, " props{%s}", s)
	}
	return b.String()
}

func describeProps(pr *Properties) string {
	var parts []string
	for id := byte(0); int(id) < len(propTable); id++ {
		if !pr.Has(id) {
			continue
		}
		var v string
		switch propTable[id].kind {
		case kindByte, kindUint16, kindUint32:
			n, _ := pr.get(id)
			v = fmt.Sprint(n)
		case kindString, kindBinary:
			v = fmt.Sprintf("%q", *pr.bytesField(id))
		case kindVarInt:
			v = fmt.Sprint(pr.SubscriptionIDs)
		case kindPair:
			for _, u := range pr.User {
				v += fmt.Sprintf("%q:%q ", u.Key, u.Value)
			}
		}
		parts = append(parts, propTable[id].name+"="+v)
	}
	return strings.Join(parts, " ")
}

// codeOf is the reason code of an *Error, or -1 for another error.
func codeOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return int(e.Code)
	}
	return -1
}

// decodeAll decodes b, which must hold exactly one packet.
func decodeAll(t testing.TB, b []byte, version byte) *Packet {
	t.Helper()
	var p Packet
	n, err := Decode(b, version, 0, &p)
	if err != nil {
		t.Fatalf("Decode(% x): %v", b, err)
	}
	if n != len(b) {
		t.Fatalf("Decode(% x) = %d, want %d", b, n, len(b))
	}
	return &p
}

func user(k, v string) UserProperty { return UserProperty{[]byte(k), []byte(v)} }
