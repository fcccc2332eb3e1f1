package mqttpkt

import (
	"encoding/binary"
	"math/bits"
	"strconv"
)

// Property identifiers (MQTT 5 section 2.2.2.2).
const (
	PropPayloadFormat        byte = 0x01
	PropMessageExpiry        byte = 0x02
	PropContentType          byte = 0x03
	PropResponseTopic        byte = 0x08
	PropCorrelationData      byte = 0x09
	PropSubscriptionID       byte = 0x0B
	PropSessionExpiry        byte = 0x11
	PropAssignedClientID     byte = 0x12
	PropServerKeepAlive      byte = 0x13
	PropAuthMethod           byte = 0x15
	PropAuthData             byte = 0x16
	PropRequestProblemInfo   byte = 0x17
	PropWillDelay            byte = 0x18
	PropRequestResponseInfo  byte = 0x19
	PropResponseInfo         byte = 0x1A
	PropServerReference      byte = 0x1C
	PropReasonString         byte = 0x1F
	PropReceiveMaximum       byte = 0x21
	PropTopicAliasMaximum    byte = 0x22
	PropTopicAlias           byte = 0x23
	PropMaximumQoS           byte = 0x24
	PropRetainAvailable      byte = 0x25
	PropUser                 byte = 0x26
	PropMaximumPacketSize    byte = 0x27
	PropWildcardSubAvailable byte = 0x28
	PropSubIDAvailable       byte = 0x29
	PropSharedSubAvailable   byte = 0x2A
)

// Properties are MQTT 5 properties; the zero value has none.
//
// The fixed-size properties (bytes and integers) are read and written with
// methods: MessageExpiry() returns the value and whether it is present,
// SetMessageExpiry sets it. They live in a bitmask of present identifiers
// and a small array of values inside the struct, so that decoding them
// allocates nothing (a pointer per property would cost an allocation each).
//
// The string and binary properties are the byte-slice fields: nil means
// absent, an empty non-nil slice a property present with an empty value
// (Decode gives such a slice, a view of its input). SubscriptionIDs and
// User keep the order they came in (the specification requires User
// Properties to be forwarded in order); Decode reuses their backing arrays.
type Properties struct {
	present uint64     // bit id set: the fixed-size property id is present
	num     [16]uint32 // their values, at propTable[id].slot

	ContentType      []byte // UTF-8
	ResponseTopic    []byte // UTF-8
	CorrelationData  []byte
	AssignedClientID []byte // UTF-8
	AuthMethod       []byte // UTF-8
	AuthData         []byte
	ResponseInfo     []byte // UTF-8
	ServerReference  []byte // UTF-8
	ReasonString     []byte // UTF-8

	SubscriptionIDs []uint32 // 1..MaxSubscriptionID; PUBLISH: any number, SUBSCRIBE: at most one
	User            []UserProperty
}

type propKind uint8

const (
	kindNone propKind = iota
	kindByte
	kindUint16
	kindUint32
	kindVarInt
	kindString
	kindBinary
	kindPair
)

type propInfo struct {
	kind propKind
	slot int8 // index in Properties.num, fixed-size kinds only
	name string
}

var propTable = [...]propInfo{
	PropPayloadFormat:        {kindByte, 0, "Payload Format Indicator"},
	PropMessageExpiry:        {kindUint32, 1, "Message Expiry Interval"},
	PropContentType:          {kindString, -1, "Content Type"},
	PropResponseTopic:        {kindString, -1, "Response Topic"},
	PropCorrelationData:      {kindBinary, -1, "Correlation Data"},
	PropSubscriptionID:       {kindVarInt, -1, "Subscription Identifier"},
	PropSessionExpiry:        {kindUint32, 2, "Session Expiry Interval"},
	PropAssignedClientID:     {kindString, -1, "Assigned Client Identifier"},
	PropServerKeepAlive:      {kindUint16, 3, "Server Keep Alive"},
	PropAuthMethod:           {kindString, -1, "Authentication Method"},
	PropAuthData:             {kindBinary, -1, "Authentication Data"},
	PropRequestProblemInfo:   {kindByte, 4, "Request Problem Information"},
	PropWillDelay:            {kindUint32, 5, "Will Delay Interval"},
	PropRequestResponseInfo:  {kindByte, 6, "Request Response Information"},
	PropResponseInfo:         {kindString, -1, "Response Information"},
	PropServerReference:      {kindString, -1, "Server Reference"},
	PropReasonString:         {kindString, -1, "Reason String"},
	PropReceiveMaximum:       {kindUint16, 7, "Receive Maximum"},
	PropTopicAliasMaximum:    {kindUint16, 8, "Topic Alias Maximum"},
	PropTopicAlias:           {kindUint16, 9, "Topic Alias"},
	PropMaximumQoS:           {kindByte, 10, "Maximum QoS"},
	PropRetainAvailable:      {kindByte, 11, "Retain Available"},
	PropUser:                 {kindPair, -1, "User Property"},
	PropMaximumPacketSize:    {kindUint32, 12, "Maximum Packet Size"},
	PropWildcardSubAvailable: {kindByte, 13, "Wildcard Subscription Available"},
	PropSubIDAvailable:       {kindByte, 14, "Subscription Identifier Available"},
	PropSharedSubAvailable:   {kindByte, 15, "Shared Subscription Available"},
}

// PropName is the specification's name of property identifier id, or
// "property 0xNN" for a value that is not one.
func PropName(id byte) string {
	if int(id) < len(propTable) && propTable[id].kind != kindNone {
		return propTable[id].name
	}
	return "property 0x" + strconv.FormatUint(uint64(id), 16)
}

func bit(id byte) uint64 { return 1 << id }

func bitsOf(ids ...byte) (m uint64) {
	for _, id := range ids {
		m |= bit(id)
	}
	return m
}

// allowedProps are the properties each packet type may carry (MQTT 5
// section 2.2.2.2); willProps those of a CONNECT's will.
var (
	allowedProps = [16]uint64{
		CONNECT: bitsOf(PropSessionExpiry, PropAuthMethod, PropAuthData, PropRequestProblemInfo,
			PropRequestResponseInfo, PropReceiveMaximum, PropTopicAliasMaximum, PropUser, PropMaximumPacketSize),
		CONNACK: bitsOf(PropSessionExpiry, PropAssignedClientID, PropServerKeepAlive, PropAuthMethod,
			PropAuthData, PropResponseInfo, PropServerReference, PropReasonString, PropReceiveMaximum,
			PropTopicAliasMaximum, PropMaximumQoS, PropRetainAvailable, PropUser, PropMaximumPacketSize,
			PropWildcardSubAvailable, PropSubIDAvailable, PropSharedSubAvailable),
		PUBLISH: bitsOf(PropPayloadFormat, PropMessageExpiry, PropContentType, PropResponseTopic,
			PropCorrelationData, PropSubscriptionID, PropTopicAlias, PropUser),
		PUBACK:      bitsOf(PropReasonString, PropUser),
		PUBREC:      bitsOf(PropReasonString, PropUser),
		PUBREL:      bitsOf(PropReasonString, PropUser),
		PUBCOMP:     bitsOf(PropReasonString, PropUser),
		SUBSCRIBE:   bitsOf(PropSubscriptionID, PropUser),
		SUBACK:      bitsOf(PropReasonString, PropUser),
		UNSUBSCRIBE: bitsOf(PropUser),
		UNSUBACK:    bitsOf(PropReasonString, PropUser),
		DISCONNECT:  bitsOf(PropSessionExpiry, PropServerReference, PropReasonString, PropUser),
		AUTH:        bitsOf(PropAuthMethod, PropAuthData, PropReasonString, PropUser),
	}
	willProps = bitsOf(PropPayloadFormat, PropMessageExpiry, PropContentType, PropResponseTopic,
		PropCorrelationData, PropWillDelay, PropUser)
)

// bytesField is the byte-slice field of string or binary property id.
func (p *Properties) bytesField(id byte) *[]byte {
	switch id {
	case PropContentType:
		return &p.ContentType
	case PropResponseTopic:
		return &p.ResponseTopic
	case PropCorrelationData:
		return &p.CorrelationData
	case PropAssignedClientID:
		return &p.AssignedClientID
	case PropAuthMethod:
		return &p.AuthMethod
	case PropAuthData:
		return &p.AuthData
	case PropResponseInfo:
		return &p.ResponseInfo
	case PropServerReference:
		return &p.ServerReference
	case PropReasonString:
		return &p.ReasonString
	}
	return nil
}

// mask is the set of properties present, a bit per identifier.
func (p *Properties) mask() uint64 {
	m := p.present
	if p.ContentType != nil {
		m |= bit(PropContentType)
	}
	if p.ResponseTopic != nil {
		m |= bit(PropResponseTopic)
	}
	if p.CorrelationData != nil {
		m |= bit(PropCorrelationData)
	}
	if p.AssignedClientID != nil {
		m |= bit(PropAssignedClientID)
	}
	if p.AuthMethod != nil {
		m |= bit(PropAuthMethod)
	}
	if p.AuthData != nil {
		m |= bit(PropAuthData)
	}
	if p.ResponseInfo != nil {
		m |= bit(PropResponseInfo)
	}
	if p.ServerReference != nil {
		m |= bit(PropServerReference)
	}
	if p.ReasonString != nil {
		m |= bit(PropReasonString)
	}
	if len(p.SubscriptionIDs) > 0 {
		m |= bit(PropSubscriptionID)
	}
	if len(p.User) > 0 {
		m |= bit(PropUser)
	}
	return m
}

// Has reports whether property id is present.
func (p *Properties) Has(id byte) bool { return id < 64 && p.mask()&bit(id) != 0 }

// Empty reports whether no property is present.
func (p *Properties) Empty() bool { return p.mask() == 0 }

// Remove removes property id (all of them for User Property and
// Subscription Identifier), e.g. a Topic Alias before forwarding.
func (p *Properties) Remove(id byte) {
	if int(id) >= len(propTable) {
		return
	}
	switch propTable[id].kind {
	case kindByte, kindUint16, kindUint32:
		p.present &^= bit(id)
		p.num[propTable[id].slot] = 0
	case kindString, kindBinary:
		*p.bytesField(id) = nil
	case kindVarInt:
		p.SubscriptionIDs = p.SubscriptionIDs[:0]
	case kindPair:
		p.User = p.User[:0]
	}
}

func (p *Properties) get(id byte) (uint32, bool) {
	if p.present&bit(id) == 0 {
		return 0, false
	}
	return p.num[propTable[id].slot], true
}

func (p *Properties) set(id byte, v uint32) {
	p.present |= bit(id)
	p.num[propTable[id].slot] = v
}

func (p *Properties) get8(id byte) (byte, bool)    { v, ok := p.get(id); return byte(v), ok }
func (p *Properties) get16(id byte) (uint16, bool) { v, ok := p.get(id); return uint16(v), ok }

// PayloadFormat is the Payload Format Indicator (0 bytes, 1 UTF-8).
func (p *Properties) PayloadFormat() (byte, bool) { return p.get8(PropPayloadFormat) }

// MessageExpiry is the Message Expiry Interval in seconds.
func (p *Properties) MessageExpiry() (uint32, bool) { return p.get(PropMessageExpiry) }

// SessionExpiry is the Session Expiry Interval in seconds.
func (p *Properties) SessionExpiry() (uint32, bool) { return p.get(PropSessionExpiry) }

// ServerKeepAlive is the Server Keep Alive in seconds.
func (p *Properties) ServerKeepAlive() (uint16, bool) { return p.get16(PropServerKeepAlive) }

// RequestProblemInfo is Request Problem Information (0 or 1).
func (p *Properties) RequestProblemInfo() (byte, bool) { return p.get8(PropRequestProblemInfo) }

// WillDelay is the Will Delay Interval in seconds.
func (p *Properties) WillDelay() (uint32, bool) { return p.get(PropWillDelay) }

// RequestResponseInfo is Request Response Information (0 or 1).
func (p *Properties) RequestResponseInfo() (byte, bool) { return p.get8(PropRequestResponseInfo) }

// ReceiveMaximum is Receive Maximum (not 0).
func (p *Properties) ReceiveMaximum() (uint16, bool) { return p.get16(PropReceiveMaximum) }

// TopicAliasMaximum is Topic Alias Maximum.
func (p *Properties) TopicAliasMaximum() (uint16, bool) { return p.get16(PropTopicAliasMaximum) }

// TopicAlias is the Topic Alias of a PUBLISH (not 0).
func (p *Properties) TopicAlias() (uint16, bool) { return p.get16(PropTopicAlias) }

// MaximumQoS is Maximum QoS (0 or 1; absent means 2).
func (p *Properties) MaximumQoS() (byte, bool) { return p.get8(PropMaximumQoS) }

// RetainAvailable is Retain Available (0 or 1).
func (p *Properties) RetainAvailable() (byte, bool) { return p.get8(PropRetainAvailable) }

// MaximumPacketSize is Maximum Packet Size in bytes (not 0).
func (p *Properties) MaximumPacketSize() (uint32, bool) { return p.get(PropMaximumPacketSize) }

// WildcardSubAvailable is Wildcard Subscription Available (0 or 1).
func (p *Properties) WildcardSubAvailable() (byte, bool) { return p.get8(PropWildcardSubAvailable) }

// SubIDAvailable is Subscription Identifier Available (0 or 1).
func (p *Properties) SubIDAvailable() (byte, bool) { return p.get8(PropSubIDAvailable) }

// SharedSubAvailable is Shared Subscription Available (0 or 1).
func (p *Properties) SharedSubAvailable() (byte, bool) { return p.get8(PropSharedSubAvailable) }

// SetPayloadFormat sets the Payload Format Indicator.
func (p *Properties) SetPayloadFormat(v byte) { p.set(PropPayloadFormat, uint32(v)) }

// SetMessageExpiry sets the Message Expiry Interval.
func (p *Properties) SetMessageExpiry(v uint32) { p.set(PropMessageExpiry, v) }

// SetSessionExpiry sets the Session Expiry Interval.
func (p *Properties) SetSessionExpiry(v uint32) { p.set(PropSessionExpiry, v) }

// SetServerKeepAlive sets Server Keep Alive.
func (p *Properties) SetServerKeepAlive(v uint16) { p.set(PropServerKeepAlive, uint32(v)) }

// SetRequestProblemInfo sets Request Problem Information.
func (p *Properties) SetRequestProblemInfo(v byte) { p.set(PropRequestProblemInfo, uint32(v)) }

// SetWillDelay sets the Will Delay Interval.
func (p *Properties) SetWillDelay(v uint32) { p.set(PropWillDelay, v) }

// SetRequestResponseInfo sets Request Response Information.
func (p *Properties) SetRequestResponseInfo(v byte) { p.set(PropRequestResponseInfo, uint32(v)) }

// SetReceiveMaximum sets Receive Maximum.
func (p *Properties) SetReceiveMaximum(v uint16) { p.set(PropReceiveMaximum, uint32(v)) }

// SetTopicAliasMaximum sets Topic Alias Maximum.
func (p *Properties) SetTopicAliasMaximum(v uint16) { p.set(PropTopicAliasMaximum, uint32(v)) }

// SetTopicAlias sets the Topic Alias.
func (p *Properties) SetTopicAlias(v uint16) { p.set(PropTopicAlias, uint32(v)) }

// SetMaximumQoS sets Maximum QoS.
func (p *Properties) SetMaximumQoS(v byte) { p.set(PropMaximumQoS, uint32(v)) }

// SetRetainAvailable sets Retain Available.
func (p *Properties) SetRetainAvailable(v byte) { p.set(PropRetainAvailable, uint32(v)) }

// SetMaximumPacketSize sets Maximum Packet Size.
func (p *Properties) SetMaximumPacketSize(v uint32) { p.set(PropMaximumPacketSize, v) }

// SetWildcardSubAvailable sets Wildcard Subscription Available.
func (p *Properties) SetWildcardSubAvailable(v byte) { p.set(PropWildcardSubAvailable, uint32(v)) }

// SetSubIDAvailable sets Subscription Identifier Available.
func (p *Properties) SetSubIDAvailable(v byte) { p.set(PropSubIDAvailable, uint32(v)) }

// SetSharedSubAvailable sets Shared Subscription Available.
func (p *Properties) SetSharedSubAvailable(v byte) { p.set(PropSharedSubAvailable, uint32(v)) }

// props reads a property block (its length, then the properties) into
// pr, which is empty but for the backing arrays of its lists, and returns
// the set of properties it held (as mask would). allowed is the set the
// packet may carry; typ the packet type (0 for a will), for messages and
// for PUBLISH, the one type in which Subscription Identifier may repeat.
func (r *reader) props(pr *Properties, allowed uint64, typ byte) (seen uint64, err *Error) {
	n, err := r.varint()
	if err != nil {
		return 0, err
	}
	if n > r.left() {
		return 0, errPropsPastEnd
	}
	end := r.i + n
	s := reader{b: r.b[:end], i: r.i}
	for s.i < end {
		id := s.b[s.i]
		s.i++
		if int(id) >= len(propTable) || propTable[id].kind == kindNone {
			return 0, malformed("unknown property identifier 0x" + strconv.FormatUint(uint64(id), 16))
		}
		if allowed&bit(id) == 0 {
			return 0, notAllowed(id, typ)
		}
		if seen&bit(id) != 0 && id != PropUser && (id != PropSubscriptionID || typ != PUBLISH) {
			return 0, protocol(propTable[id].name + " given twice")
		}
		seen |= bit(id)
		var ok bool
		switch propTable[id].kind {
		case kindByte:
			var v byte
			if v, ok = s.u8(); ok {
				pr.set(id, uint32(v))
			}
		case kindUint16:
			var v uint16
			if v, ok = s.u16(); ok {
				pr.set(id, uint32(v))
			}
		case kindUint32:
			var v uint32
			if v, ok = s.u32(); ok {
				pr.set(id, v)
			}
		case kindVarInt:
			v, err := s.varint()
			if err != nil {
				return 0, err
			}
			pr.SubscriptionIDs = append(pr.SubscriptionIDs, uint32(v))
			ok = true
		case kindString, kindBinary:
			var v []byte
			if v, ok = s.prefixed(); ok {
				*pr.bytesField(id) = v
			}
		case kindPair:
			var k, v []byte
			if k, ok = s.prefixed(); ok {
				if v, ok = s.prefixed(); ok {
					pr.User = append(pr.User, UserProperty{k, v})
				}
			}
		}
		if !ok {
			return 0, errPropPastEnd
		}
	}
	r.i = end
	return seen, nil
}

func notAllowed(id, typ byte) *Error {
	where := "will properties"
	if typ != 0 {
		where = TypeName(typ)
	}
	return malformed(propTable[id].name + " not allowed in " + where)
}

// checkProps judges properties as a whole, for Decode (after reading
// them) and Append: none in 3.1.1, only those allowed in the packet type,
// values in range, UTF-8 where UTF-8 is due, lengths that fit. m is
// pr.mask(); typ is 0 for will properties.
func checkProps(pr *Properties, m, allowed uint64, typ, version byte) *Error {
	if m == 0 {
		return nil
	}
	if version != Version5 {
		return errPropsIn311
	}
	if extra := m &^ allowed; extra != 0 {
		return notAllowed(byte(bits.TrailingZeros64(extra)), typ)
	}
	for b := pr.present; b != 0; b &= b - 1 {
		id := byte(bits.TrailingZeros64(b))
		v := pr.num[propTable[id].slot]
		switch id {
		case PropPayloadFormat, PropRequestProblemInfo, PropRequestResponseInfo, PropMaximumQoS,
			PropRetainAvailable, PropWildcardSubAvailable, PropSubIDAvailable, PropSharedSubAvailable:
			if v > 1 {
				return protocol(propTable[id].name + " other than 0 or 1")
			}
		case PropReceiveMaximum, PropMaximumPacketSize:
			if v == 0 {
				return protocol(propTable[id].name + " of 0")
			}
		case PropTopicAlias:
			if v == 0 {
				return errTopicAliasZero
			}
		}
	}
	for b := m & (stringProps | binaryProps); b != 0; b &= b - 1 {
		id := byte(bits.TrailingZeros64(b))
		if err := checkString(*pr.bytesField(id), propTable[id].name, stringProps&bit(id) != 0); err != nil {
			return err
		}
	}
	if typ != PUBLISH && len(pr.SubscriptionIDs) > 1 {
		return protocol("Subscription Identifier given twice")
	}
	for _, id := range pr.SubscriptionIDs {
		if id == 0 || id > MaxSubscriptionID {
			return protocol("Subscription Identifier out of range")
		}
	}
	for _, u := range pr.User {
		if err := checkString(u.Key, "User Property name", true); err != nil {
			return err
		}
		if err := checkString(u.Value, "User Property value", true); err != nil {
			return err
		}
	}
	if typ == CONNECT && pr.AuthData != nil && pr.AuthMethod == nil {
		return protocol("Authentication Data without Authentication Method")
	}
	return nil
}

var (
	stringProps = bitsOf(PropContentType, PropResponseTopic, PropAssignedClientID, PropAuthMethod,
		PropResponseInfo, PropServerReference, PropReasonString)
	binaryProps = bitsOf(PropCorrelationData, PropAuthData)
)

// size is the length of the properties present (m, from mask), without
// their length prefix.
func (p *Properties) size(m uint64) int {
	if m == 0 {
		return 0
	}
	n := 0
	for b := m; b != 0; b &= b - 1 {
		id := byte(bits.TrailingZeros64(b))
		switch propTable[id].kind {
		case kindByte:
			n += 2
		case kindUint16:
			n += 3
		case kindUint32:
			n += 5
		case kindString, kindBinary:
			n += 3 + len(*p.bytesField(id))
		case kindVarInt:
			for _, v := range p.SubscriptionIDs {
				n += 1 + varintLen(int(v))
			}
		case kindPair:
			for _, u := range p.User {
				n += 5 + len(u.Key) + len(u.Value)
			}
		}
	}
	return n
}

// appendTo appends the property block: its length n (from size), then
// the properties present (m, from mask) in identifier order.
func (p *Properties) appendTo(dst []byte, n int, m uint64) []byte {
	dst = appendVarint(dst, n)
	for b := m; b != 0; b &= b - 1 {
		id := byte(bits.TrailingZeros64(b))
		switch propTable[id].kind {
		case kindByte:
			dst = append(dst, id, byte(p.num[propTable[id].slot]))
		case kindUint16:
			dst = binary.BigEndian.AppendUint16(append(dst, id), uint16(p.num[propTable[id].slot]))
		case kindUint32:
			dst = binary.BigEndian.AppendUint32(append(dst, id), p.num[propTable[id].slot])
		case kindString, kindBinary:
			dst = appendPrefixed(append(dst, id), *p.bytesField(id))
		case kindVarInt:
			for _, v := range p.SubscriptionIDs {
				dst = appendVarint(append(dst, id), int(v))
			}
		case kindPair:
			for _, u := range p.User {
				dst = appendPrefixed(appendPrefixed(append(dst, id), u.Key), u.Value)
			}
		}
	}
	return dst
}
