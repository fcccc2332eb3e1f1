package mqttpkt

import (
	"encoding/binary"
	"slices"
)

var errRemainingLength = malformed("remaining length over 268435455 bytes")

// Append encodes p for protocol version (4 or 5) and appends it to dst. It
// refuses, with an *Error and dst unchanged, every packet Decode would
// refuse (see the package documentation) and what cannot be encoded: a
// string or binary field over 65535 bytes, a remaining length over
// 268435455, a property not allowed in the packet type, any property in
// 3.1.1, a reason code the packet type does not have (in 3.1.1, any but
// the CONNACK codes that map to return codes and the SUBACK codes 0, 1, 2
// and 0x80). The fixed header's flags come from the packet (QoS, Retain,
// Dup for PUBLISH), never from p.Flags.
//
// Append writes the shortest form: an MQTT 5 acknowledgement, DISCONNECT
// or AUTH without its reason code when it is Success and there are no
// properties, properties in the order of their identifiers.
func Append(dst []byte, p *Packet, version byte) ([]byte, error) {
	if version != Version311 && version != Version5 {
		return dst, errVersion
	}
	m := p.Props.mask()
	var wm uint64
	if p.Type == CONNECT && p.Will != nil {
		wm = p.Will.Props.mask()
	}
	// The size first: it is cheap, and spares checking the UTF-8 of a
	// packet too large to send.
	rl, ps, wps := bodySize(p, version, m, wm)
	if rl > MaxRemainingLength {
		return dst, errRemainingLength
	}
	if err := check(p, version, m); err != nil {
		return dst, err
	}
	dst = slices.Grow(dst, 1+varintLen(rl)+rl)
	dst = append(dst, p.Type<<4|fixedFlags(p))
	dst = appendVarint(dst, rl)
	v5 := version == Version5

	switch p.Type {
	case CONNECT:
		dst = append(dst, 0, 4, 'M', 'Q', 'T', 'T', version, connectFlags(p))
		dst = binary.BigEndian.AppendUint16(dst, p.KeepAlive)
		if v5 {
			dst = p.Props.appendTo(dst, ps, m)
		}
		dst = appendPrefixed(dst, p.ClientID)
		if w := p.Will; w != nil {
			if v5 {
				dst = w.Props.appendTo(dst, wps, wm)
			}
			dst = appendPrefixed(dst, w.Topic)
			dst = appendPrefixed(dst, w.Payload)
		}
		if p.HasUsername {
			dst = appendPrefixed(dst, p.Username)
		}
		if p.HasPassword {
			dst = appendPrefixed(dst, p.Password)
		}

	case CONNACK:
		var ack byte
		if p.SessionPresent {
			ack = 1
		}
		rc := p.ReasonCode
		if !v5 {
			rc, _ = ReturnCode311(rc)
		}
		dst = append(dst, ack, rc)
		if v5 {
			dst = p.Props.appendTo(dst, ps, m)
		}

	case PUBLISH:
		dst = appendPrefixed(dst, p.Topic)
		if p.QoS > 0 {
			dst = binary.BigEndian.AppendUint16(dst, p.PacketID)
		}
		if v5 {
			dst = p.Props.appendTo(dst, ps, m)
		}
		dst = append(dst, p.Payload...)

	case PUBACK, PUBREC, PUBREL, PUBCOMP:
		dst = binary.BigEndian.AppendUint16(dst, p.PacketID)
		dst = appendReasonAndProps(dst, p, v5, ps, m, false)

	case SUBSCRIBE:
		dst = binary.BigEndian.AppendUint16(dst, p.PacketID)
		if v5 {
			dst = p.Props.appendTo(dst, ps, m)
		}
		for _, s := range p.Subscriptions {
			dst = appendPrefixed(dst, s.Filter)
			o := s.QoS | s.RetainHandling<<4
			if s.NoLocal {
				o |= 0x04
			}
			if s.RetainAsPublished {
				o |= 0x08
			}
			dst = append(dst, o)
		}

	case SUBACK, UNSUBACK:
		dst = binary.BigEndian.AppendUint16(dst, p.PacketID)
		if v5 {
			dst = p.Props.appendTo(dst, ps, m)
		}
		dst = append(dst, p.ReasonCodes...)

	case UNSUBSCRIBE:
		dst = binary.BigEndian.AppendUint16(dst, p.PacketID)
		if v5 {
			dst = p.Props.appendTo(dst, ps, m)
		}
		for _, f := range p.Filters {
			dst = appendPrefixed(dst, f)
		}

	case DISCONNECT:
		dst = appendReasonAndProps(dst, p, v5, ps, m, false)

	case AUTH:
		dst = appendReasonAndProps(dst, p, v5, ps, m, true)
	}
	return dst, nil
}

// appendReasonAndProps appends the optional tail of an MQTT 5
// acknowledgement, DISCONNECT or AUTH: nothing for Success without
// properties, the reason code alone without properties (but for AUTH),
// both otherwise.
func appendReasonAndProps(dst []byte, p *Packet, v5 bool, ps int, m uint64, auth bool) []byte {
	switch {
	case !v5 || (ps == 0 && p.ReasonCode == Success):
		return dst
	case ps == 0 && !auth:
		return append(dst, p.ReasonCode)
	}
	return p.Props.appendTo(append(dst, p.ReasonCode), ps, m)
}

// Size is the encoded size of p for version, fixed header included: what
// Append would add for a packet it accepts (to compare with the Maximum
// Packet Size a peer announced before encoding).
func Size(p *Packet, version byte) int {
	var wm uint64
	if p.Type == CONNECT && p.Will != nil {
		wm = p.Will.Props.mask()
	}
	rl, _, _ := bodySize(p, version, p.Props.mask(), wm)
	return 1 + varintLen(rl) + rl
}

// bodySize is the remaining length of p, with the lengths of its
// properties and of its will properties (without their length prefixes);
// m and wm are the masks of both.
func bodySize(p *Packet, v byte, m, wm uint64) (n, ps, wps int) {
	v5 := v == Version5
	if v5 {
		ps = p.Props.size(m)
	}
	block := 0 // the property block: length prefix and properties
	if v5 {
		block = varintLen(ps) + ps
	}
	switch p.Type {
	case CONNECT:
		n = 10 + block + 2 + len(p.ClientID)
		if w := p.Will; w != nil {
			if v5 {
				wps = w.Props.size(wm)
				n += varintLen(wps) + wps
			}
			n += 4 + len(w.Topic) + len(w.Payload)
		}
		if p.HasUsername {
			n += 2 + len(p.Username)
		}
		if p.HasPassword {
			n += 2 + len(p.Password)
		}
	case CONNACK:
		n = 2 + block
	case PUBLISH:
		n = 2 + len(p.Topic) + block + len(p.Payload)
		if p.QoS > 0 {
			n += 2
		}
	case PUBACK, PUBREC, PUBREL, PUBCOMP:
		n = 2 + tailSize(p, v5, ps, block, false)
	case SUBSCRIBE:
		n = 2 + block
		for _, s := range p.Subscriptions {
			n += 3 + len(s.Filter)
		}
	case SUBACK:
		n = 2 + block + len(p.ReasonCodes)
	case UNSUBACK:
		n = 2
		if v5 {
			n += block + len(p.ReasonCodes)
		}
	case UNSUBSCRIBE:
		n = 2 + block
		for _, f := range p.Filters {
			n += 2 + len(f)
		}
	case DISCONNECT:
		n = tailSize(p, v5, ps, block, false)
	case AUTH:
		n = tailSize(p, v5, ps, block, true)
	}
	return n, ps, wps
}

// tailSize is the size of what appendReasonAndProps appends.
func tailSize(p *Packet, v5 bool, ps, block int, auth bool) int {
	switch {
	case !v5 || (ps == 0 && p.ReasonCode == Success):
		return 0
	case ps == 0 && !auth:
		return 1
	}
	return 1 + block
}

// fixedFlags are the low 4 bits of the first byte.
func fixedFlags(p *Packet) byte {
	switch p.Type {
	case PUBLISH:
		f := p.QoS << 1
		if p.Dup {
			f |= 0x08
		}
		if p.Retain {
			f |= 0x01
		}
		return f
	case PUBREL, SUBSCRIBE, UNSUBSCRIBE:
		return 0x02
	}
	return 0
}

func connectFlags(p *Packet) byte {
	var f byte
	if p.CleanStart {
		f |= 0x02
	}
	if w := p.Will; w != nil {
		f |= 0x04 | w.QoS<<3
		if w.Retain {
			f |= 0x20
		}
	}
	if p.HasPassword {
		f |= 0x40
	}
	if p.HasUsername {
		f |= 0x80
	}
	return f
}
