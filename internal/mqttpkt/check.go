package mqttpkt

var (
	errBadType         = malformed("packet type out of range")
	errPacketIDZero    = protocol("packet identifier 0")
	errEmptyTopic      = protocol("empty topic name without a Topic Alias")
	errTopicWildcardIn = &Error{TopicNameInvalid, "wildcard in a PUBLISH topic name"}
	errTopicUTF8In     = malformed("topic name not valid UTF-8 or contains U+0000")
	errTopicTooLong    = malformed("topic name longer than 65535 bytes")
	errNoSubscriptions = protocol("SUBSCRIBE without topic filters")
	errNoFilters       = protocol("UNSUBSCRIBE without topic filters")
	errNoReasonCodes   = protocol("acknowledgement without reason codes")
	errReasonCode      = protocol("reason code not allowed in this packet type")
	errAck311Reason    = malformed("reason code in an MQTT 3.1.1 acknowledgement or DISCONNECT")
	errSubOptions311   = malformed("MQTT 5 subscription options in MQTT 3.1.1")
	errRetainHandling  = protocol("subscription options: Retain Handling over 2")
	errSharedNoLocal   = protocol("No Local on a shared subscription")
	errUnsuback311     = malformed("reason codes in an MQTT 3.1.1 UNSUBACK")
	errSessionPresent  = protocol("CONNACK with Session Present and a failure reason code")
	errConnack311      = protocol("CONNACK reason code without a 3.1.1 return code")
	errPasswordNoUser  = protocol("password without user name in MQTT 3.1.1")
	errWillTopic       = &Error{TopicNameInvalid, "will topic is not a valid topic name"}
)

// codeSet is a set of reason codes, a bit per value.
type codeSet [4]uint64

func codes(cs ...byte) (s codeSet) {
	for _, c := range cs {
		s[c>>6] |= 1 << (c & 63)
	}
	return s
}

func (s *codeSet) has(c byte) bool { return s[c>>6]&(1<<(c&63)) != 0 }

// The reason codes each packet type may carry (MQTT 5 sections 3.2.2.2,
// 3.4.2.1 ... 3.15.2.1). 0x8C in DISCONNECT is in the table of section 2.4
// though not in 3.14.2.1; it is accepted.
var (
	connackCodes = codes(0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A,
		0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F)
	pubackCodes  = codes(0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99) // and PUBREC
	pubrelCodes  = codes(0x00, 0x92)                                           // and PUBCOMP
	subackCodes  = codes(0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2)
	suback311    = codes(0x00, 0x01, 0x02, 0x80)
	unsubackCode = codes(0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91)
	disconnCodes = codes(0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8C, 0x8D, 0x8E,
		0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F,
		0xA0, 0xA1, 0xA2)
	authCodes = codes(0x00, 0x18, 0x19)
)

// connack311 maps a 3.1.1 CONNACK return code to its MQTT 5 reason code.
var connack311 = [...]byte{Success, UnsupportedProtocolVersion, ClientIDNotValid,
	ServerUnavailable, BadUserNameOrPassword, NotAuthorized}

// ReturnCode311 is the MQTT 3.1.1 CONNACK return code for reason code rc,
// if it has one.
func ReturnCode311(rc byte) (byte, bool) {
	for i, c := range connack311 {
		if c == rc {
			return byte(i), true
		}
	}
	return 0, false
}

// check judges a packet as a whole, after Decode has read it and before
// Append writes it: what the rules forbid beyond the wire format.
// propsMask is p.Props.mask(), which the caller has at hand.
func check(p *Packet, v byte, propsMask uint64) *Error {
	typ := p.Type
	if typ == 0 || typ > AUTH {
		return errBadType
	}
	if typ == AUTH && v != Version5 {
		return errAuth311
	}
	v5 := v == Version5
	switch typ {
	case CONNECT:
		if err := checkConnect(p, v); err != nil {
			return err
		}

	case CONNACK:
		if v5 {
			if !connackCodes.has(p.ReasonCode) {
				return errReasonCode
			}
		} else if _, ok := ReturnCode311(p.ReasonCode); !ok {
			return errConnack311
		}
		if p.SessionPresent && p.ReasonCode != Success {
			return errSessionPresent
		}

	case PUBLISH:
		if p.QoS > 2 {
			return errQoS3
		}
		if p.Dup && p.QoS == 0 {
			return errDupQoS0
		}
		if p.QoS > 0 && p.PacketID == 0 {
			return errPacketIDZero
		}
		switch {
		case len(p.Topic) > MaxStringLength:
			return errTopicTooLong
		case len(p.Topic) == 0:
			if !v5 || propsMask&bit(PropTopicAlias) == 0 {
				return errEmptyTopic
			}
		default:
			switch scanTopic(p.Topic) {
			case topicWildcard:
				return errTopicWildcardIn
			case topicBadUTF8:
				return errTopicUTF8In
			}
		}

	case PUBACK, PUBREC, PUBREL, PUBCOMP:
		if p.PacketID == 0 {
			return errPacketIDZero
		}
		set := &pubackCodes
		if typ == PUBREL || typ == PUBCOMP {
			set = &pubrelCodes
		}
		if err := checkReason(p.ReasonCode, set, v); err != nil {
			return err
		}

	case SUBSCRIBE:
		if p.PacketID == 0 {
			return errPacketIDZero
		}
		if len(p.Subscriptions) == 0 {
			return errNoSubscriptions
		}
		for i := range p.Subscriptions {
			s := &p.Subscriptions[i]
			if err := checkString(s.Filter, "topic filter", true); err != nil {
				return err
			}
			if s.QoS > 2 {
				return errSubQoS3
			}
			if !v5 && (s.NoLocal || s.RetainAsPublished || s.RetainHandling != 0) {
				return errSubOptions311
			}
			if s.RetainHandling > 2 {
				return errRetainHandling
			}
			if s.NoLocal && isShared(s.Filter) {
				return errSharedNoLocal
			}
		}

	case SUBACK:
		if p.PacketID == 0 {
			return errPacketIDZero
		}
		set := &subackCodes
		if !v5 {
			set = &suback311
		}
		if err := checkCodes(p.ReasonCodes, set); err != nil {
			return err
		}

	case UNSUBACK:
		if p.PacketID == 0 {
			return errPacketIDZero
		}
		if !v5 {
			if len(p.ReasonCodes) > 0 {
				return errUnsuback311
			}
		} else if err := checkCodes(p.ReasonCodes, &unsubackCode); err != nil {
			return err
		}

	case UNSUBSCRIBE:
		if p.PacketID == 0 {
			return errPacketIDZero
		}
		if len(p.Filters) == 0 {
			return errNoFilters
		}
		for _, f := range p.Filters {
			if err := checkString(f, "topic filter", true); err != nil {
				return err
			}
		}

	case DISCONNECT:
		if err := checkReason(p.ReasonCode, &disconnCodes, v); err != nil {
			return err
		}

	case AUTH:
		if !authCodes.has(p.ReasonCode) {
			return errReasonCode
		}
	}
	return checkProps(&p.Props, propsMask, allowedProps[typ], typ, v)
}

// checkReason judges the reason code of an acknowledgement or DISCONNECT:
// one of set in MQTT 5, none (0) in 3.1.1.
func checkReason(rc byte, set *codeSet, v byte) *Error {
	if v != Version5 {
		if rc != 0 {
			return errAck311Reason
		}
		return nil
	}
	if !set.has(rc) {
		return errReasonCode
	}
	return nil
}

// checkCodes judges the reason codes of a SUBACK or UNSUBACK: at least one
// (there is one per filter asked for), each in set.
func checkCodes(rcs []byte, set *codeSet) *Error {
	if len(rcs) == 0 {
		return errNoReasonCodes
	}
	for _, rc := range rcs {
		if !set.has(rc) {
			return errReasonCode
		}
	}
	return nil
}

func checkConnect(p *Packet, v byte) *Error {
	if err := checkString(p.ClientID, "client identifier", true); err != nil {
		return err
	}
	if w := p.Will; w != nil {
		if w.QoS > 2 {
			return errWillQoS3
		}
		if err := checkString(w.Topic, "will topic", true); err != nil {
			return err
		}
		if len(w.Topic) == 0 || hasWildcard(w.Topic) {
			return errWillTopic
		}
		if err := checkString(w.Payload, "will payload", false); err != nil {
			return err
		}
		if err := checkProps(&w.Props, w.Props.mask(), willProps, 0, v); err != nil {
			return err
		}
	}
	if p.HasUsername {
		if err := checkString(p.Username, "user name", true); err != nil {
			return err
		}
	}
	if p.HasPassword {
		if err := checkString(p.Password, "password", false); err != nil {
			return err
		}
		if v != Version5 && !p.HasUsername {
			return errPasswordNoUser
		}
	}
	return nil
}
