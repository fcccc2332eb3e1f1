// Package mqttpkt is the MQTT wire codec: the fifteen control packets of
// MQTT 3.1.1 (protocol level 4) and MQTT 5 (level 5), their properties and
// reason codes, and the topic rules. It does no I/O and keeps no state
// between packets: the caller owns the bytes.
//
// Receiving is Decode, once per packet, into a Packet the connection reuses:
// decoding copies nothing and allocates nothing on the way of a PUBLISH (the
// packet's byte slices are views of the input, and its lists reuse their
// backing arrays), so the caller copies what it keeps past the next Decode
// or past the reuse of its input buffer. Sending is Append (or Size first,
// to check a peer's Maximum Packet Size).
//
// # What Decode judges, and what it leaves to the caller
//
// Every malformed or forbidden packet is an *Error carrying the MQTT 5
// reason code to answer it with (MalformedPacket, ProtocolError,
// PacketTooLarge, TopicNameInvalid, TopicAliasInvalid,
// UnsupportedProtocolVersion); never a panic, never a loop. Decode judges
// everything that can be judged from one packet: the fixed header's flags,
// lengths, variable byte integers (at most 4 bytes, minimal), UTF-8 strings
// (well-formed, no U+0000; the code points the specification says SHOULD
// NOT be sent, such as control characters, are accepted), property identifiers,
// types, duplicates and values, reason codes allowed in each packet type,
// the CONNECT flags, packet identifiers (not 0 where one is needed), lists
// that may not be empty, topic names (no wildcards; empty only with an MQTT
// 5 Topic Alias), bytes left over inside the remaining length. Append
// refuses every packet Decode would refuse (with the same *Error wherever
// the rule is about values rather than bytes), so what Append produces
// always decodes to the same packet.
//
// The rules that need the state of a connection or a session are the
// caller's: a second CONNECT on a connection (a protocol error the broker
// must close the connection for), CONNECT being the first packet (Decode
// enforces it only when told the version is still unknown), the direction
// of a packet (a client does not send CONNACK, nor a Subscription
// Identifier in PUBLISH, a server does not send Request Problem Information),
// topic alias ranges, Receive Maximum, the Maximum Packet Size the peer
// announced (Decode's maxSize is our own limit), AUTH without an
// Authentication Method negotiated in CONNECT, an empty client ID with
// clean session 0 in 3.1.1 (CONNACK 0x02), the UTF-8 of a payload whose
// Payload Format Indicator is 1 (a receiver MAY check it and answer
// PayloadFormatInvalid), wildcards in a Response Topic, and the validity
// of topic filters in SUBSCRIBE and UNSUBSCRIBE, which is answered per
// filter in SUBACK/UNSUBACK (use ValidTopicFilter and SharedSubscription).
//
// # Protocol levels
//
// Only "MQTT" at levels 4 and 5 is accepted. MQTT 3.1 ("MQIsdp", level 3)
// is refused, as is any other name or level, with an *Error of code
// UnsupportedProtocolVersion; the Packet then holds the ProtocolName and
// Version read, and the server answers with a 3.1.1 CONNACK of return code
// 1 (Append maps UnsupportedProtocolVersion to it) unless Version is 5.
//
// # Reason codes in MQTT 3.1.1
//
// A 3.1.1 CONNACK's return code is mapped to its MQTT 5 reason code in
// ReasonCode (1 to UnsupportedProtocolVersion, 2 to ClientIDNotValid, 3 to
// ServerUnavailable, 4 to BadUserNameOrPassword, 5 to NotAuthorized) and
// back by Append, which refuses any other code for 3.1.1. A 3.1.1 SUBACK's
// return codes (0, 1, 2 and 0x80) are the same numbers as MQTT 5's.
package mqttpkt

import "strconv"

// Packet types (the high 4 bits of the first byte).
const (
	CONNECT     byte = 1
	CONNACK     byte = 2
	PUBLISH     byte = 3
	PUBACK      byte = 4
	PUBREC      byte = 5
	PUBREL      byte = 6
	PUBCOMP     byte = 7
	SUBSCRIBE   byte = 8
	SUBACK      byte = 9
	UNSUBSCRIBE byte = 10
	UNSUBACK    byte = 11
	PINGREQ     byte = 12
	PINGRESP    byte = 13
	DISCONNECT  byte = 14
	AUTH        byte = 15 // MQTT 5 only
)

// Protocol levels.
const (
	Version311 byte = 4
	Version5   byte = 5
)

// Reason codes (MQTT 5 section 2.4). Several names share a value: which one
// applies depends on the packet.
const (
	Success                    byte = 0x00
	NormalDisconnection        byte = 0x00
	GrantedQoS0                byte = 0x00
	GrantedQoS1                byte = 0x01
	GrantedQoS2                byte = 0x02
	DisconnectWithWill         byte = 0x04
	NoMatchingSubscribers      byte = 0x10
	NoSubscriptionExisted      byte = 0x11
	ContinueAuthentication     byte = 0x18
	ReAuthenticate             byte = 0x19
	UnspecifiedError           byte = 0x80 // also the 3.1.1 SUBACK "Failure"
	MalformedPacket            byte = 0x81
	ProtocolError              byte = 0x82
	ImplementationSpecific     byte = 0x83
	UnsupportedProtocolVersion byte = 0x84
	ClientIDNotValid           byte = 0x85
	BadUserNameOrPassword      byte = 0x86
	NotAuthorized              byte = 0x87
	ServerUnavailable          byte = 0x88
	ServerBusy                 byte = 0x89
	Banned                     byte = 0x8A
	ServerShuttingDown         byte = 0x8B
	BadAuthMethod              byte = 0x8C
	KeepAliveTimeout           byte = 0x8D
	SessionTakenOver           byte = 0x8E
	TopicFilterInvalid         byte = 0x8F
	TopicNameInvalid           byte = 0x90
	PacketIDInUse              byte = 0x91
	PacketIDNotFound           byte = 0x92
	ReceiveMaximumExceeded     byte = 0x93
	TopicAliasInvalid          byte = 0x94
	PacketTooLarge             byte = 0x95
	MessageRateTooHigh         byte = 0x96
	QuotaExceeded              byte = 0x97
	AdministrativeAction       byte = 0x98
	PayloadFormatInvalid       byte = 0x99
	RetainNotSupported         byte = 0x9A
	QoSNotSupported            byte = 0x9B
	UseAnotherServer           byte = 0x9C
	ServerMoved                byte = 0x9D
	SharedSubsNotSupported     byte = 0x9E
	ConnectionRateExceeded     byte = 0x9F
	MaximumConnectTime         byte = 0xA0
	SubIDsNotSupported         byte = 0xA1
	WildcardSubsNotSupported   byte = 0xA2
)

// Limits of the encoding.
const (
	MaxRemainingLength = 268435455 // the largest variable byte integer (4 bytes)
	MaxStringLength    = 65535     // strings and binary data have a 2-byte length
	MaxSubscriptionID  = 268435455
)

// Error is a malformed or forbidden packet: the MQTT 5 reason code to
// answer it with (0x81 malformed, 0x82 protocol error, 0x95 too large, ...)
// and why. The errors this package returns may be shared values: do not
// modify them.
type Error struct {
	Code   byte
	Reason string
}

func (e *Error) Error() string {
	return "mqtt: " + e.Reason + " (reason code 0x" + strconv.FormatUint(uint64(e.Code), 16) + ")"
}

func malformed(reason string) *Error { return &Error{MalformedPacket, reason} }
func protocol(reason string) *Error  { return &Error{ProtocolError, reason} }

// UserProperty is an MQTT 5 User Property: a name and a value, both UTF-8.
type UserProperty struct{ Key, Value []byte }

// Subscription is one topic filter of a SUBSCRIBE and its options. NoLocal,
// RetainAsPublished and RetainHandling (0, 1 or 2) are MQTT 5's.
type Subscription struct {
	Filter            []byte
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
}

// Will is the will message of a CONNECT. Props may hold only the will
// properties (Payload Format Indicator, Message Expiry Interval, Content
// Type, Response Topic, Correlation Data, Will Delay Interval, User
// Property), in MQTT 5 only.
type Will struct {
	Topic   []byte
	Payload []byte
	QoS     byte
	Retain  bool
	Props   Properties
}

// Packet is any MQTT packet; which fields are used depends on Type. Decode
// fills it with views of its input; Append reads it. Fields a packet type
// does not use are zero after Decode and ignored by Append.
type Packet struct {
	Type  byte // CONNECT ... AUTH
	Flags byte // the fixed header's low 4 bits, as decoded; Append derives them

	// CONNECT. Append writes "MQTT" and its version argument, whatever
	// ProtocolName and Version say; Decode reports what it read.
	ProtocolName []byte
	Version      byte
	CleanStart   bool // Clean Session in 3.1.1
	KeepAlive    uint16
	ClientID     []byte
	Will         *Will // nil: no will. Decode allocates one for a CONNECT that has a will.
	Username     []byte
	Password     []byte
	HasUsername  bool
	HasPassword  bool

	// CONNACK.
	SessionPresent bool

	// ReasonCode of a CONNACK (a 3.1.1 return code is mapped to its MQTT 5
	// value, see the package documentation), PUBACK, PUBREC, PUBREL,
	// PUBCOMP, DISCONNECT and AUTH. It is always 0 in 3.1.1 acknowledgements
	// and DISCONNECT.
	ReasonCode byte

	// PUBLISH.
	Topic   []byte
	QoS     byte
	Retain  bool
	Dup     bool
	Payload []byte

	// PacketID of a PUBLISH with QoS > 0, PUBACK, PUBREC, PUBREL, PUBCOMP,
	// SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK. Never 0 in those.
	PacketID uint16

	Subscriptions []Subscription // SUBSCRIBE: at least one
	Filters       [][]byte       // UNSUBSCRIBE: at least one
	ReasonCodes   []byte         // SUBACK (at least one), UNSUBACK (MQTT 5: at least one; 3.1.1: none)

	// Props are the packet's MQTT 5 properties (a CONNECT's will
	// properties are in Will.Props). Always empty in 3.1.1.
	Props Properties
}

// TypeName is the name of packet type t ("PUBLISH"), or "type N" for a
// value that is not one.
func TypeName(t byte) string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return "type " + strconv.Itoa(int(t))
}

var typeNames = [...]string{
	CONNECT: "CONNECT", CONNACK: "CONNACK", PUBLISH: "PUBLISH", PUBACK: "PUBACK",
	PUBREC: "PUBREC", PUBREL: "PUBREL", PUBCOMP: "PUBCOMP", SUBSCRIBE: "SUBSCRIBE",
	SUBACK: "SUBACK", UNSUBSCRIBE: "UNSUBSCRIBE", UNSUBACK: "UNSUBACK",
	PINGREQ: "PINGREQ", PINGRESP: "PINGRESP", DISCONNECT: "DISCONNECT", AUTH: "AUTH",
}
