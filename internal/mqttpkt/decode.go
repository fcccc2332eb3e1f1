package mqttpkt

var (
	errReservedType    = malformed("reserved packet type 0")
	errAuth311         = malformed("AUTH in MQTT 3.1.1 (a reserved packet type there)")
	errNotConnect      = protocol("first packet is not CONNECT")
	errFlags           = malformed("fixed header flags other than the packet type requires")
	errQoS3            = malformed("PUBLISH with QoS 3")
	errDupQoS0         = malformed("PUBLISH with DUP set and QoS 0")
	errConnectShort    = malformed("CONNECT field past the end of the packet")
	errMQIsdp          = &Error{UnsupportedProtocolVersion, "MQTT 3.1 (MQIsdp, level 3) is not supported"}
	errProtocolName    = &Error{UnsupportedProtocolVersion, "protocol name other than MQTT"}
	errProtocolLevel   = &Error{UnsupportedProtocolVersion, "protocol level other than 4 (3.1.1) and 5"}
	errConnectReserved = malformed("CONNECT flags: reserved bit 0 set")
	errWillQoS3        = malformed("CONNECT flags: will QoS 3")
	errWillFlags       = malformed("CONNECT flags: will QoS or will retain without the will flag")
	errShort           = malformed("field past the end of the packet")
	errTopicPastEnd    = malformed("topic length past the end of the packet")
	errIDPastEnd       = malformed("packet identifier past the end of the packet")
	errFilterPastEnd   = malformed("topic filter length past the end of the packet")
	errOptionsPastEnd  = malformed("subscription options past the end of the packet")
	errOptionsReserved = malformed("subscription options: reserved bits set")
	errSubQoS3         = malformed("subscription options: QoS 3")
	errRetainHandling3 = protocol("subscription options: Retain Handling 3")
	errConnackFlags    = malformed("CONNACK flags: reserved bits set")
	errReturnCode      = protocol("CONNACK return code over 5")
)

// Decode decodes one packet at the start of b for protocol version (4 or
// 5; 0 = not known yet: only CONNECT is accepted, and a CONNECT's own
// protocol level always decides how it is read). It returns the packet's
// length n. While b holds less than a whole packet it returns n = 0 and a
// nil error: call again with more bytes. maxSize > 0 bounds the whole
// packet: a larger one is a PacketTooLarge *Error as soon as its fixed
// header is in, before the rest arrives.
//
// Every other error is an *Error (see the package documentation); after
// an error the connection cannot go on (there is no resynchronising on a
// stream), and p holds what was read so far: for a refused CONNECT,
// ProtocolName and Version (once read) tell the server which CONNACK to
// answer with (MQTT 5's for Version 5, 3.1.1's otherwise).
//
// p is overwritten and reused, the backing arrays of its lists too: decode
// every packet of a connection into the same Packet. Its byte slices are
// views of b, with their capacity cut to their length.
func Decode(b []byte, version byte, maxSize int, p *Packet) (n int, err error) {
	if version != 0 && version != Version311 && version != Version5 {
		return 0, errVersion
	}
	if len(b) == 0 {
		return 0, nil
	}
	typ, flags := b[0]>>4, b[0]&0x0f
	if e := checkFixedHeader(typ, flags, version); e != nil {
		return 0, e
	}
	rl, hl, e := varint(b[1:])
	if e != nil {
		return 0, e
	}
	if hl == 0 {
		return 0, nil
	}
	n = 1 + hl + rl
	if maxSize > 0 && n > maxSize {
		return 0, errTooLarge
	}
	if len(b) < n {
		return 0, nil
	}
	p.reset()
	p.Type, p.Flags = typ, flags
	r := reader{b: b[1+hl : n : n]}
	if typ == CONNECT {
		e = r.connect(p)
		version = p.Version
	} else {
		e = r.body(p, version)
	}
	if e == nil && r.left() != 0 {
		e = errTrailing
	}
	if e == nil {
		e = check(p, version, r.mask)
	}
	if e != nil {
		return 0, e
	}
	return n, nil
}

// checkFixedHeader judges the first byte alone, so that a stream that can
// only be wrong is refused before the rest of the packet arrives.
func checkFixedHeader(typ, flags, version byte) *Error {
	switch {
	case typ == 0:
		return errReservedType
	case typ == AUTH && version == Version311:
		return errAuth311
	case version == 0 && typ != CONNECT:
		return errNotConnect
	}
	switch typ {
	case PUBLISH:
		qos := flags >> 1 & 3
		if qos == 3 {
			return errQoS3
		}
		if qos == 0 && flags&0x08 != 0 {
			return errDupQoS0
		}
	case PUBREL, SUBSCRIBE, UNSUBSCRIBE:
		if flags != 0x02 {
			return errFlags
		}
	default:
		if flags != 0 {
			return errFlags
		}
	}
	return nil
}

// reset empties p for the next packet, keeping its lists' backing arrays.
func (p *Packet) reset() {
	subs, filters := p.Subscriptions[:0], p.Filters[:0]
	ids, user := p.Props.SubscriptionIDs[:0], p.Props.User[:0]
	*p = Packet{Subscriptions: subs, Filters: filters}
	p.Props.SubscriptionIDs, p.Props.User = ids, user
}

// connect reads a CONNECT's body (MQTT 5 section 3.1, 3.1.1 section 3.1).
func (r *reader) connect(p *Packet) *Error {
	name, ok := r.prefixed()
	if !ok {
		return errConnectShort
	}
	level, ok := r.u8()
	if !ok {
		return errConnectShort
	}
	p.ProtocolName, p.Version = name, level
	switch {
	case string(name) == "MQIsdp":
		return errMQIsdp
	case string(name) != "MQTT":
		return errProtocolName
	case level != Version311 && level != Version5:
		return errProtocolLevel
	}
	flags, ok := r.u8()
	if !ok {
		return errConnectShort
	}
	if p.KeepAlive, ok = r.u16(); !ok {
		return errConnectShort
	}
	if flags&0x01 != 0 {
		return errConnectReserved
	}
	p.CleanStart = flags&0x02 != 0
	hasWill := flags&0x04 != 0
	willQoS := flags >> 3 & 3
	willRetain := flags&0x20 != 0
	p.HasPassword = flags&0x40 != 0
	p.HasUsername = flags&0x80 != 0
	if willQoS == 3 {
		return errWillQoS3
	}
	if !hasWill && (willQoS != 0 || willRetain) {
		return errWillFlags
	}
	if level == Version311 && p.HasPassword && !p.HasUsername {
		return errPasswordNoUser
	}
	if level == Version5 {
		if err := r.packetProps(p); err != nil {
			return err
		}
	}
	if p.ClientID, ok = r.prefixed(); !ok {
		return errConnectShort
	}
	if hasWill {
		w := &Will{QoS: willQoS, Retain: willRetain}
		p.Will = w
		if level == Version5 {
			if _, err := r.props(&w.Props, willProps, 0); err != nil {
				return err
			}
		}
		if w.Topic, ok = r.prefixed(); !ok {
			return errConnectShort
		}
		if w.Payload, ok = r.prefixed(); !ok {
			return errConnectShort
		}
	}
	if p.HasUsername {
		if p.Username, ok = r.prefixed(); !ok {
			return errConnectShort
		}
	}
	if p.HasPassword {
		if p.Password, ok = r.prefixed(); !ok {
			return errConnectShort
		}
	}
	return nil
}

// packetProps reads the packet's own properties and notes which were
// present in r.mask, for check.
func (r *reader) packetProps(p *Packet) *Error {
	m, err := r.props(&p.Props, allowedProps[p.Type], p.Type)
	r.mask = m
	return err
}

// body reads the variable header and payload of any packet but CONNECT.
func (r *reader) body(p *Packet, version byte) *Error {
	v5 := version == Version5
	var ok bool
	switch p.Type {
	case CONNACK:
		ack, ok1 := r.u8()
		rc, ok2 := r.u8()
		if !ok1 || !ok2 {
			return errShort
		}
		if ack&0xFE != 0 {
			return errConnackFlags
		}
		p.SessionPresent = ack&0x01 != 0
		if !v5 {
			if int(rc) >= len(connack311) {
				return errReturnCode
			}
			p.ReasonCode = connack311[rc]
			return nil
		}
		p.ReasonCode = rc
		return r.packetProps(p)

	case PUBLISH:
		p.QoS = p.Flags >> 1 & 3
		p.Dup = p.Flags&0x08 != 0
		p.Retain = p.Flags&0x01 != 0
		if p.Topic, ok = r.prefixed(); !ok {
			return errTopicPastEnd
		}
		if p.QoS > 0 {
			if p.PacketID, ok = r.u16(); !ok {
				return errIDPastEnd
			}
		}
		if v5 {
			if err := r.packetProps(p); err != nil {
				return err
			}
		}
		p.Payload = r.rest()
		return nil

	case PUBACK, PUBREC, PUBREL, PUBCOMP:
		if p.PacketID, ok = r.u16(); !ok {
			return errIDPastEnd
		}
		// MQTT 5: the reason code may be left out when it is Success
		// and there are no properties, the property length when there
		// are none.
		if v5 && r.left() > 0 {
			p.ReasonCode, _ = r.u8()
			if r.left() > 0 {
				return r.packetProps(p)
			}
		}
		return nil

	case SUBSCRIBE:
		if p.PacketID, ok = r.u16(); !ok {
			return errIDPastEnd
		}
		if v5 {
			if err := r.packetProps(p); err != nil {
				return err
			}
		}
		for r.left() > 0 {
			var s Subscription
			if s.Filter, ok = r.prefixed(); !ok {
				return errFilterPastEnd
			}
			o, ok := r.u8()
			if !ok {
				return errOptionsPastEnd
			}
			reserved := byte(0xFC)
			if v5 {
				reserved = 0xC0
			}
			if o&reserved != 0 {
				return errOptionsReserved
			}
			s.QoS = o & 3
			s.NoLocal = o&0x04 != 0
			s.RetainAsPublished = o&0x08 != 0
			s.RetainHandling = o >> 4 & 3
			if s.QoS == 3 {
				return errSubQoS3
			}
			if s.RetainHandling == 3 {
				return errRetainHandling3
			}
			p.Subscriptions = append(p.Subscriptions, s)
		}
		return nil

	case SUBACK, UNSUBACK:
		if p.PacketID, ok = r.u16(); !ok {
			return errIDPastEnd
		}
		if v5 {
			if err := r.packetProps(p); err != nil {
				return err
			}
		}
		if v5 || p.Type == SUBACK {
			p.ReasonCodes = r.rest()
		}
		return nil

	case UNSUBSCRIBE:
		if p.PacketID, ok = r.u16(); !ok {
			return errIDPastEnd
		}
		if v5 {
			if err := r.packetProps(p); err != nil {
				return err
			}
		}
		for r.left() > 0 {
			f, ok := r.prefixed()
			if !ok {
				return errFilterPastEnd
			}
			p.Filters = append(p.Filters, f)
		}
		return nil

	case DISCONNECT, AUTH:
		// MQTT 5: an empty body means Success without properties. A
		// DISCONNECT may also stop after its reason code; an AUTH may
		// not.
		if v5 && r.left() > 0 {
			p.ReasonCode, _ = r.u8()
			if p.Type == AUTH || r.left() > 0 {
				return r.packetProps(p)
			}
		}
		return nil
	}
	// PINGREQ, PINGRESP: nothing; the caller refuses any byte left.
	return nil
}
