package meerkat

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/meerkat-net/meerkat/internal/mqttpkt"
)

// MQTTProperties are MQTT 5 properties. The fixed-size ones are read and set
// with methods (MessageExpiry, SetMessageExpiry, ...), the string and binary
// ones are fields (ContentType, ResponseTopic, CorrelationData, User, ...).
type MQTTProperties = mqttpkt.Properties

// MQTTUserProperty is an MQTT 5 user property.
type MQTTUserProperty = mqttpkt.UserProperty

// MQTTPacket is a decoded MQTT packet, as EvMQTTCmd's MQTTMessage carries it.
type MQTTPacket = mqttpkt.Packet

// MQTT packet types (MQTTMessage.Cmd).
const (
	MQTTCmdConnect     = mqttpkt.CONNECT
	MQTTCmdConnAck     = mqttpkt.CONNACK
	MQTTCmdPublish     = mqttpkt.PUBLISH
	MQTTCmdPubAck      = mqttpkt.PUBACK
	MQTTCmdPubRec      = mqttpkt.PUBREC
	MQTTCmdPubRel      = mqttpkt.PUBREL
	MQTTCmdPubComp     = mqttpkt.PUBCOMP
	MQTTCmdSubscribe   = mqttpkt.SUBSCRIBE
	MQTTCmdSubAck      = mqttpkt.SUBACK
	MQTTCmdUnsubscribe = mqttpkt.UNSUBSCRIBE
	MQTTCmdUnsubAck    = mqttpkt.UNSUBACK
	MQTTCmdPingReq     = mqttpkt.PINGREQ
	MQTTCmdPingResp    = mqttpkt.PINGRESP
	MQTTCmdDisconnect  = mqttpkt.DISCONNECT
	MQTTCmdAuth        = mqttpkt.AUTH
)

// MQTTOptions describe an MQTT connection (MQTTConnect), a message
// (MQTTPub), a subscription (MQTTSub, MQTTUnsub) or a disconnection
// (MQTTDisconnect); each uses the fields its doc names.
type MQTTOptions struct {
	// Connect.
	ClientID  string        // "" : a random one
	User      string        // sent when not ""
	Pass      string        // sent when not ""
	Clean     bool          // clean session (3.1.1) / clean start (5)
	Version   byte          // 4 (MQTT 3.1.1, the default) or 5
	Keepalive time.Duration // PINGREQ after this long without sending (60 s when 0; negative: none)
	// Session, when set, keeps the packet identifiers and the QoS 1 and 2
	// messages not yet acknowledged from one connection to the next: on a
	// connection whose CONNACK says the broker kept the session, they are
	// sent again (PUBLISH with DUP, or PUBREL). Use one per client ID.
	Session *MQTTSession

	// Connect: the will (when Topic is set), and MQTTPub: the message.
	Topic   string
	Message []byte
	QoS     byte
	Retain  bool

	// MQTTSub and MQTTUnsub: the filters (Topic, if set, comes first), and
	// for MQTTSub the MQTT 5 subscription options.
	Topics            []string
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte

	// MQTT 5 properties of the packet (CONNECT, PUBLISH, SUBSCRIBE,
	// UNSUBSCRIBE, DISCONNECT), and of the will (connect).
	Props     MQTTProperties
	WillProps MQTTProperties
	// ReasonCode of a DISCONNECT (MQTT 5).
	ReasonCode byte
}

// MQTTMessage is an MQTT packet as a handler sees it: EvMQTTMsg for a
// PUBLISH, EvMQTTCmd for every packet. Its byte slices are views of the
// receive buffer, valid only during the handler call.
type MQTTMessage struct {
	Topic      []byte
	Data       []byte // a PUBLISH's payload
	ID         uint16 // the packet identifier, 0 if none
	Cmd        byte   // the packet type (MQTTCmdPublish, ...)
	QoS        byte
	Retain     bool
	Dup        bool
	ReasonCode byte            // CONNACK, PUBACK...PUBCOMP, DISCONNECT, AUTH; SUBACK's first
	Props      *MQTTProperties // MQTT 5 properties
	Packet     *MQTTPacket     // the whole packet
}

// MQTT errors, delivered with EvError.
var (
	// ErrMQTTRefused: the broker's CONNACK refused the connection
	// (*MQTTError carries its code).
	ErrMQTTRefused = errors.New("meerkat: mqtt connection refused")
	// ErrMQTTProtocol: the peer sent a malformed or forbidden packet
	// (*MQTTError carries the reason code).
	ErrMQTTProtocol = errors.New("meerkat: mqtt protocol error")
	// ErrMQTTKeepalive: the broker did not answer a PINGREQ within the
	// keepalive interval.
	ErrMQTTKeepalive = errors.New("meerkat: mqtt broker stopped answering pings")
	// ErrMQTTDisconnected: the broker sent DISCONNECT (MQTT 5) with an
	// error reason code.
	ErrMQTTDisconnected = errors.New("meerkat: mqtt broker disconnected")
)

// MQTTError is an MQTT failure with its reason code.
type MQTTError struct {
	Code   byte
	Reason string
	kind   error
}

func (e *MQTTError) Error() string {
	return fmt.Sprintf("%v: %s (reason code 0x%02x)", e.kind, e.Reason, e.Code)
}

// Unwrap lets errors.Is match the kind (ErrMQTTRefused, ...).
func (e *MQTTError) Unwrap() error { return e.kind }

// MQTTSession is a client's session state kept across connections: see
// MQTTOptions.Session. The zero value is ready to use.
type MQTTSession struct {
	nextID   uint16
	inflight map[uint16]*mqttOut
	order    []uint16 // inflight's IDs in the order they were first sent
}

// Inflight is the number of QoS 1 and 2 messages not yet acknowledged.
func (s *MQTTSession) Inflight() int { return len(s.inflight) }

// mqttOut is a QoS 1 or 2 message sent and not yet acknowledged.
type mqttOut struct {
	pkt  mqttpkt.Packet // an owned copy
	rec  bool           // QoS 2: PUBREC came, PUBREL is what is outstanding
	sent bool           // on the wire on this connection (not waiting for Receive Maximum)
}

// mqttState is a client connection's MQTT state.
type mqttState struct {
	version   byte
	opts      MQTTOptions // connect options (copied)
	sess      *MQTTSession
	in        mqttpkt.Packet
	msg       MQTTMessage
	out       mqttpkt.Packet
	open      bool  // CONNACK accepted
	recvMax   int   // the broker's Receive Maximum (MQTT 5), 65535 otherwise
	maxPacket int   // the broker's Maximum Packet Size, 0 if none
	keepalive int64 // nanoseconds, 0 if none
	lastSent  int64 // Manager clock
	pingSent  int64 // an unanswered PINGREQ went out then, 0 if none
	qos2      map[uint16]bool
	buf       []byte   // encoding space
	prev      []uint16 // in-flight messages of earlier connections of the session
	connSent  bool     // CONNECT is queued: other packets may follow it
	pending   []byte   // packets sent before CONNECT was, to follow it
	ws        bool     // MQTT over WebSocket: packets go in binary messages
	wsIn      IOBuf    // with ws: the bytes of the messages, not yet decoded
}

func mqttOf(c *Conn) *mqttState {
	switch st := c.pstate.(type) {
	case *mqttState:
		return st
	case *wsState:
		s, _ := st.inner.(*mqttState)
		return s
	}
	return nil
}

// input is where the broker's packets are read from.
func (s *mqttState) input(c *Conn) *IOBuf {
	if s.ws {
		return &s.wsIn
	}
	return &c.recv
}

// MQTTConnect opens an MQTT client connection to an mqtt:// or mqtts://
// URL, or over WebSocket to a ws:// or wss:// one (subprotocol "mqtt")
// (TLS verification on, server name from the URL) with opts (nil:
// MQTT 3.1.1, a random client ID, a clean session, 60 s keepalive). The
// CONNECT goes out once connected; EvMQTTOpen carries the CONNACK's code (0
// when accepted; a refusal is then an EvError matching ErrMQTTRefused, and
// EvClose). Every packet received is an EvMQTTCmd, each PUBLISH an
// EvMQTTMsg as well; acknowledgements (PUBACK, PUBREC, PUBREL, PUBCOMP) and
// PINGREQ are sent by themselves.
func (m *Manager) MQTTConnect(url string, opts *MQTTOptions, fn Handler) (*Conn, error) {
	ep, err := parseURL(url)
	if err != nil {
		return nil, err
	}
	if ep.scheme != "mqtt" && ep.scheme != "mqtts" && ep.scheme != "ws" && ep.scheme != "wss" {
		return nil, fmt.Errorf("%w %q: MQTTConnect needs mqtt://, mqtts://, ws:// or wss://", ErrBadURL, url)
	}
	s := &mqttState{version: mqttpkt.Version311, recvMax: 65535}
	if opts != nil {
		s.opts = *opts
	} else {
		s.opts.Clean = true
	}
	o := &s.opts
	switch o.Version {
	case 0:
		o.Version = mqttpkt.Version311
	case mqttpkt.Version311, mqttpkt.Version5:
	default:
		return nil, fmt.Errorf("meerkat: MQTT version %d: want 4 (3.1.1) or 5", o.Version)
	}
	s.version = o.Version
	if o.ClientID == "" {
		var b [8]byte
		rand.Read(b[:])
		o.ClientID = "meerkat-" + hex.EncodeToString(b[:])
	}
	switch {
	case o.Keepalive == 0:
		o.Keepalive = 60 * time.Second
	case o.Keepalive > 65535*time.Second:
		return nil, errors.New("meerkat: MQTT keepalive over 65535 s")
	}
	if o.Keepalive > 0 {
		s.keepalive = int64(o.Keepalive.Truncate(time.Second))
		if s.keepalive == 0 {
			s.keepalive = int64(time.Second)
		}
	}
	s.sess = o.Session
	if s.sess == nil || o.Clean {
		if s.sess == nil {
			s.sess = &MQTTSession{}
		}
		s.sess.inflight, s.sess.order = nil, nil
	}
	s.prev = slices.Clone(s.sess.order)
	// Check the CONNECT now: a bad option is an error here, not later.
	s.connectPacket(&s.out)
	if _, err := mqttpkt.Append(nil, &s.out, s.version); err != nil {
		return nil, fmt.Errorf("meerkat: MQTT connect options: %w", err)
	}
	if ep.scheme == "ws" || ep.scheme == "wss" {
		// MQTT over WebSocket: the "mqtt" subprotocol, packets in binary
		// messages.
		c, err := m.WSConnectOpts(url, &WSOptions{Subprotocols: []string{"mqtt"}}, fn)
		if err != nil {
			return nil, err
		}
		s.ws = true
		wsOf(c).inner = s
		c.proto = mqttWSClientProto
		c.onShutdown = mqttShutdown
		return c, nil
	}
	c, err := m.connect(url, fn, mqttClientProto)
	if err != nil {
		return nil, err
	}
	c.pstate = s
	c.onShutdown = mqttShutdown
	return c, nil
}

// mqttWSClientProto runs an MQTT client over WebSocket: the WebSocket
// client underneath, CONNECT once it is open, packets from its messages.
func mqttWSClientProto(c *Conn, ev Event, data any) {
	s := mqttOf(c)
	switch ev {
	case EvWSOpen:
		if s != nil {
			s.connectPacket(&s.out)
			s.send(c, &s.out)
		}
		c.flags |= fSwallow
		return
	case EvWSMsg:
		if s != nil {
			s.wsIn.append(data.(*WSMessage).Data)
			s.parse(c)
		}
		c.flags |= fSwallow
		return
	case EvWSCtl:
		c.flags |= fSwallow
		return
	}
	wsClientProto(c, ev, data)
	if s == nil {
		return
	}
	switch ev {
	case EvWrite:
		s.flushInflight(c)
	case EvPoll:
		s.timers(c)
	case EvClose:
		s.wsIn.reset()
	}
}

// connectPacket fills p with the CONNECT for s's options.
func (s *mqttState) connectPacket(p *mqttpkt.Packet) {
	o := &s.opts
	*p = mqttpkt.Packet{Type: mqttpkt.CONNECT, CleanStart: o.Clean, KeepAlive: uint16(s.keepalive / int64(time.Second)), ClientID: []byte(o.ClientID)}
	if o.User != "" {
		p.Username, p.HasUsername = []byte(o.User), true
	}
	if o.Pass != "" {
		p.Password, p.HasPassword = []byte(o.Pass), true
	}
	if o.Topic != "" {
		p.Will = &mqttpkt.Will{Topic: []byte(o.Topic), Payload: o.Message, QoS: o.QoS, Retain: o.Retain}
		if s.version == mqttpkt.Version5 {
			p.Will.Props = o.WillProps
		}
	}
	if s.version == mqttpkt.Version5 {
		p.Props = o.Props
	}
}

func mqttClientProto(c *Conn, ev Event, data any) {
	s := mqttOf(c)
	if s == nil {
		return
	}
	switch ev {
	case EvConnect:
		s.connectPacket(&s.out)
		s.send(c, &s.out)
	case EvRead:
		s.parse(c)
	case EvWrite:
		s.flushInflight(c) // what a full send buffer refused
	case EvPoll:
		s.timers(c)
	}
}

// mqttShutdown says goodbye with DISCONNECT, then drains (over WebSocket,
// with the close handshake).
func mqttShutdown(c *Conn) {
	s := mqttOf(c)
	if s != nil && s.open {
		s.out = mqttpkt.Packet{Type: mqttpkt.DISCONNECT}
		s.send(c, &s.out)
	}
	if s != nil && s.ws {
		wsShutdown(c)
		return
	}
	c.Drain()
}

// send encodes and queues a packet; it reports false (and logs why) if the
// packet cannot be encoded or the connection refused it.
func (s *mqttState) send(c *Conn, p *mqttpkt.Packet) bool {
	b, err := mqttpkt.Append(s.buf[:0], p, s.version)
	if err != nil {
		c.m.log().Warn("meerkat: mqtt packet not sent", "conn", c.id, "type", mqttpkt.TypeName(p.Type), "err", err)
		return false
	}
	if s.maxPacket > 0 && len(b) > s.maxPacket {
		c.m.log().Warn("meerkat: mqtt packet not sent: over the broker's Maximum Packet Size", "conn", c.id,
			"type", mqttpkt.TypeName(p.Type), "size", len(b), "max", s.maxPacket)
		return false
	}
	s.buf = b
	if cap(s.buf) > 64<<10 {
		s.buf = nil
	}
	if !s.connSent && p.Type != mqttpkt.CONNECT {
		// Nothing may precede CONNECT: this follows it once it is sent.
		s.pending = append(s.pending, b...)
		return true
	}
	if !s.transmit(c, b) {
		return false
	}
	if p.Type == mqttpkt.CONNECT {
		s.connSent = true
		if len(s.pending) > 0 {
			s.transmit(c, s.pending)
			s.pending = nil
		}
	}
	s.lastSent = c.m.clock()
	s.schedule(c)
	return true
}

// transmit queues encoded packets on the connection.
func (s *mqttState) transmit(c *Conn, b []byte) bool {
	if s.ws {
		return WSSend(c, b, WSOpBinary) > 0
	}
	return c.Send(b)
}

// parse decodes and handles the packets in Recv.
func (s *mqttState) parse(c *Conn) {
	m := c.m
	in := s.input(c)
	for c.flags&(fClosing|fClosed) == 0 {
		buf := in.Bytes()
		if len(buf) == 0 {
			return
		}
		n, err := mqttpkt.Decode(buf, s.version, m.recvLimit(), &s.in)
		if err != nil {
			s.protocolError(c, err)
			return
		}
		if n == 0 {
			if in.Len() >= m.recvLimit() {
				s.protocolError(c, &mqttpkt.Error{Code: mqttpkt.PacketTooLarge, Reason: "packet larger than the receive buffer"})
			}
			return
		}
		s.pingSent = 0 // anything from the broker shows it alive
		s.handle(c, &s.in)
		in.Consume(n)
	}
}

// protocolError fails the connection for a packet the broker should not
// have sent (MQTT 5: DISCONNECT with the reason code first).
func (s *mqttState) protocolError(c *Conn, err error) {
	code := byte(mqttpkt.ProtocolError)
	var pe *mqttpkt.Error
	if errors.As(err, &pe) {
		code = pe.Code
	}
	if s.version == mqttpkt.Version5 && s.open {
		s.out = mqttpkt.Packet{Type: mqttpkt.DISCONNECT, ReasonCode: code}
		s.send(c, &s.out)
	}
	in := s.input(c)
	in.Consume(in.Len())
	c.m.dispatch(c, EvError, &MQTTError{Code: code, Reason: err.Error(), kind: ErrMQTTProtocol})
	c.flags |= fFailed
	if s.ws {
		WSClose(c, WSCloseProtocolError, "mqtt protocol violation")
		return
	}
	c.Drain()
}

// handle acts on one packet from the broker.
func (s *mqttState) handle(c *Conn, p *mqttpkt.Packet) {
	m := c.m
	wm := &s.msg
	*wm = MQTTMessage{Topic: p.Topic, Data: p.Payload, ID: p.PacketID, Cmd: p.Type, QoS: p.QoS,
		Retain: p.Retain, Dup: p.Dup, ReasonCode: p.ReasonCode, Props: &p.Props, Packet: p}
	if p.Type == mqttpkt.SUBACK && len(p.ReasonCodes) > 0 {
		wm.ReasonCode = p.ReasonCodes[0]
	}
	if !s.open && p.Type != mqttpkt.CONNACK {
		s.protocolError(c, &mqttpkt.Error{Code: mqttpkt.ProtocolError, Reason: mqttpkt.TypeName(p.Type) + " before CONNACK"})
		return
	}
	switch p.Type {
	case mqttpkt.CONNACK, mqttpkt.PUBLISH, mqttpkt.PUBACK, mqttpkt.PUBREC, mqttpkt.PUBREL, mqttpkt.PUBCOMP,
		mqttpkt.SUBACK, mqttpkt.UNSUBACK, mqttpkt.PINGRESP, mqttpkt.DISCONNECT, mqttpkt.AUTH:
	default:
		s.protocolError(c, &mqttpkt.Error{Code: mqttpkt.ProtocolError, Reason: "a broker does not send " + mqttpkt.TypeName(p.Type)})
		return
	}
	m.dispatch(c, EvMQTTCmd, wm)
	if c.flags&(fClosing|fClosed) != 0 {
		return
	}
	switch p.Type {
	case mqttpkt.CONNACK:
		s.connAck(c, p)
	case mqttpkt.PUBLISH:
		s.publish(c, p)
	case mqttpkt.PUBACK, mqttpkt.PUBCOMP:
		s.acked(c, p.PacketID)
	case mqttpkt.PUBREC:
		o := s.sess.inflight[p.PacketID]
		if o == nil || o.pkt.QoS != 2 {
			break // not ours (any more): nothing to release
		}
		if p.ReasonCode >= 0x80 { // refused: the exchange ends here
			s.acked(c, p.PacketID)
			break
		}
		o.rec = true
		s.out = mqttpkt.Packet{Type: mqttpkt.PUBREL, PacketID: p.PacketID}
		s.send(c, &s.out)
	case mqttpkt.PUBREL:
		delete(s.qos2, p.PacketID)
		s.out = mqttpkt.Packet{Type: mqttpkt.PUBCOMP, PacketID: p.PacketID}
		s.send(c, &s.out)
	case mqttpkt.PINGRESP:
		s.pingSent = 0
	case mqttpkt.DISCONNECT:
		if p.ReasonCode >= 0x80 {
			m.fail(c, &MQTTError{Code: p.ReasonCode, Reason: string(p.Props.ReasonString), kind: ErrMQTTDisconnected})
			return
		}
		c.Drain()
	}
}

// connAck handles the broker's answer to CONNECT.
func (s *mqttState) connAck(c *Conn, p *mqttpkt.Packet) {
	m := c.m
	if s.open {
		s.protocolError(c, &mqttpkt.Error{Code: mqttpkt.ProtocolError, Reason: "a second CONNACK"})
		return
	}
	code := p.ReasonCode // EvMQTTOpen gets the code as it was on the wire
	if s.version == mqttpkt.Version311 {
		code, _ = mqttpkt.ReturnCode311(code)
	}
	if p.ReasonCode != 0 {
		m.dispatch(c, EvMQTTOpen, int(code))
		m.fail(c, &MQTTError{Code: code, Reason: "CONNACK refused the connection", kind: ErrMQTTRefused})
		return
	}
	s.open = true
	if v, ok := p.Props.ReceiveMaximum(); ok && v > 0 {
		s.recvMax = int(v)
	}
	if v, ok := p.Props.MaximumPacketSize(); ok {
		s.maxPacket = int(v)
	}
	if v, ok := p.Props.ServerKeepAlive(); ok {
		s.keepalive = int64(v) * int64(time.Second)
	}
	if !p.SessionPresent && len(s.prev) > 0 {
		// The broker has no session: what earlier connections left
		// unacknowledged is gone with it (MQTT-3.2.2-4 / 5: the client
		// discards its session state). What this connection published
		// before the CONNACK stays.
		c.m.log().Warn("meerkat: mqtt broker kept no session: unacknowledged messages dropped",
			"conn", c.id, "count", len(s.prev))
		for _, id := range s.prev {
			delete(s.sess.inflight, id)
		}
		s.sess.order = slices.DeleteFunc(s.sess.order, func(id uint16) bool { return slices.Contains(s.prev, id) })
	}
	s.prev = nil
	// A kept session: what was not acknowledged goes out again, in order,
	// before anything the handler sends on EvMQTTOpen.
	for _, id := range s.sess.order {
		if o := s.sess.inflight[id]; o != nil && o.sent { // sent on an earlier connection
			o.sent = false
			o.pkt.Dup = true
		}
	}
	s.flushInflight(c)
	m.dispatch(c, EvMQTTOpen, 0)
}

// flushInflight sends in-flight messages not yet on this connection, up
// to the broker's Receive Maximum.
func (s *mqttState) flushInflight(c *Conn) {
	onWire := 0
	for _, id := range s.sess.order {
		if o := s.sess.inflight[id]; o != nil && o.sent {
			onWire++
		}
	}
	for _, id := range s.sess.order {
		o := s.sess.inflight[id]
		if o == nil || o.sent {
			continue
		}
		if onWire >= s.recvMax || !s.open {
			return
		}
		if !o.rec && s.maxPacket > 0 && mqttpkt.Size(&o.pkt, s.version) > s.maxPacket {
			// Published before CONNACK told the limit: it can never go.
			c.m.log().Warn("meerkat: mqtt message dropped: over the broker's Maximum Packet Size", "conn", c.id, "id", id)
			delete(s.sess.inflight, id)
			s.sess.order = slices.DeleteFunc(s.sess.order, func(v uint16) bool { return v == id })
			s.flushInflight(c)
			return
		}
		if o.rec {
			s.out = mqttpkt.Packet{Type: mqttpkt.PUBREL, PacketID: id}
			o.sent = s.send(c, &s.out)
		} else {
			o.sent = s.send(c, &o.pkt)
		}
		if !o.sent {
			return
		}
		onWire++
	}
}

// acked ends the exchange of message id.
func (s *mqttState) acked(c *Conn, id uint16) {
	if _, ok := s.sess.inflight[id]; !ok {
		return
	}
	delete(s.sess.inflight, id)
	for i, v := range s.sess.order {
		if v == id {
			s.sess.order = append(s.sess.order[:i], s.sess.order[i+1:]...)
			break
		}
	}
	s.flushInflight(c)
}

// publish handles a PUBLISH from the broker: EvMQTTMsg (once, for QoS 2),
// then its acknowledgement.
func (s *mqttState) publish(c *Conn, p *mqttpkt.Packet) {
	switch p.QoS {
	case 0:
		c.m.dispatch(c, EvMQTTMsg, &s.msg)
	case 1:
		c.m.dispatch(c, EvMQTTMsg, &s.msg)
		s.out = mqttpkt.Packet{Type: mqttpkt.PUBACK, PacketID: p.PacketID}
		s.send(c, &s.out)
	case 2:
		if !s.qos2[p.PacketID] { // a duplicate of one delivered already is not delivered again
			if s.qos2 == nil {
				s.qos2 = map[uint16]bool{}
			}
			s.qos2[p.PacketID] = true
			c.m.dispatch(c, EvMQTTMsg, &s.msg)
		}
		s.out = mqttpkt.Packet{Type: mqttpkt.PUBREC, PacketID: p.PacketID}
		s.send(c, &s.out)
	}
}

// timers runs the keepalive: PINGREQ after a quiet interval, and failure
// when it stays unanswered for another.
func (s *mqttState) timers(c *Conn) {
	if s.keepalive == 0 || !s.open || c.flags&(fClosing|fClosed|fDraining) != 0 {
		return
	}
	m := c.m
	if s.pingSent != 0 {
		if m.now-s.pingSent >= s.keepalive {
			m.fail(c, ErrMQTTKeepalive)
		}
		return
	}
	if m.now-s.lastSent >= s.keepalive {
		s.out = mqttpkt.Packet{Type: mqttpkt.PINGREQ}
		if s.send(c, &s.out) {
			s.pingSent = m.now
			c.wakeProtoAt(m.now + s.keepalive)
		}
	}
}

func (s *mqttState) schedule(c *Conn) {
	if s.keepalive > 0 {
		c.wakeProtoAt(s.lastSent + s.keepalive)
	}
}

// MQTTPub publishes opts.Message on opts.Topic with opts.QoS, opts.Retain
// and (MQTT 5) opts.Props. It returns the packet identifier for QoS 1 and
// 2: the message is kept until acknowledged (see MQTTOptions.Session) and
// sent as soon as the broker's Receive Maximum and the send buffer allow.
// It returns 0 for QoS 0 and when the message cannot be sent (not an MQTT
// client, a bad topic or QoS, over the broker's Maximum Packet Size; the
// reason is logged). Anything sent before the CONNECT went out follows it.
func MQTTPub(c *Conn, opts *MQTTOptions) uint16 {
	s := mqttOf(c)
	if s == nil || opts == nil || c.IsClosing() {
		return 0
	}
	p := mqttpkt.Packet{Type: mqttpkt.PUBLISH, Topic: []byte(opts.Topic), Payload: opts.Message, QoS: opts.QoS, Retain: opts.Retain}
	if s.version == mqttpkt.Version5 {
		p.Props = opts.Props
	}
	if opts.QoS == 0 {
		s.send(c, &p)
		return 0
	}
	if opts.QoS > 2 {
		c.m.log().Warn("meerkat: mqtt publish refused", "conn", c.id, "qos", opts.QoS)
		return 0
	}
	id := s.sess.newID()
	if id == 0 {
		c.m.log().Warn("meerkat: mqtt publish refused: 65535 messages in flight", "conn", c.id)
		return 0
	}
	p.PacketID = id
	if _, err := mqttpkt.Append(s.buf[:0], &p, s.version); err != nil {
		c.m.log().Warn("meerkat: mqtt publish refused", "conn", c.id, "err", err)
		return 0
	}
	if s.maxPacket > 0 && mqttpkt.Size(&p, s.version) > s.maxPacket {
		c.m.log().Warn("meerkat: mqtt publish refused: over the broker's Maximum Packet Size", "conn", c.id, "max", s.maxPacket)
		return 0
	}
	o := &mqttOut{pkt: mqttClone(&p)}
	if s.sess.inflight == nil {
		s.sess.inflight = map[uint16]*mqttOut{}
	}
	s.sess.inflight[id] = o
	s.sess.order = append(s.sess.order, id)
	s.flushInflight(c)
	return id
}

// newID is a packet identifier not in flight, 0 if none is free.
func (sess *MQTTSession) newID() uint16 {
	for range 65535 {
		sess.nextID++
		if sess.nextID == 0 {
			sess.nextID = 1
		}
		if _, used := sess.inflight[sess.nextID]; !used {
			return sess.nextID
		}
	}
	return 0
}

// mqttClone copies a PUBLISH with everything it refers to.
func mqttClone(p *mqttpkt.Packet) mqttpkt.Packet {
	q := *p
	q.Topic, q.Payload = clone(p.Topic), clone(p.Payload)
	q.Props = cloneProps(&p.Props)
	q.Props.SubscriptionIDs = slices.Clone(p.Props.SubscriptionIDs)
	return q
}

// MQTTSub subscribes to opts.Topic and opts.Topics with opts.QoS (and the
// MQTT 5 options and opts.Props); the SUBACK comes as EvMQTTCmd with the
// returned packet identifier (0 if nothing was sent).
func MQTTSub(c *Conn, opts *MQTTOptions) uint16 {
	return mqttSubUnsub(c, opts, mqttpkt.SUBSCRIBE)
}

// MQTTUnsub unsubscribes from opts.Topic and opts.Topics; the UNSUBACK
// comes as EvMQTTCmd with the returned packet identifier.
func MQTTUnsub(c *Conn, opts *MQTTOptions) uint16 {
	return mqttSubUnsub(c, opts, mqttpkt.UNSUBSCRIBE)
}

func mqttSubUnsub(c *Conn, opts *MQTTOptions, typ byte) uint16 {
	s := mqttOf(c)
	if s == nil || opts == nil || c.IsClosing() {
		return 0
	}
	var filters []string
	if opts.Topic != "" {
		filters = append(filters, opts.Topic)
	}
	filters = append(filters, opts.Topics...)
	if len(filters) == 0 {
		c.m.log().Warn("meerkat: mqtt "+mqttpkt.TypeName(typ)+" without a filter", "conn", c.id)
		return 0
	}
	id := s.sess.newID()
	p := mqttpkt.Packet{Type: typ, PacketID: id}
	for _, f := range filters {
		if typ == mqttpkt.SUBSCRIBE {
			p.Subscriptions = append(p.Subscriptions, mqttpkt.Subscription{Filter: []byte(f), QoS: opts.QoS,
				NoLocal: opts.NoLocal, RetainAsPublished: opts.RetainAsPublished, RetainHandling: opts.RetainHandling})
		} else {
			p.Filters = append(p.Filters, []byte(f))
		}
	}
	if s.version == mqttpkt.Version5 {
		p.Props = opts.Props
	}
	if !s.send(c, &p) {
		return 0
	}
	return id
}

// MQTTDisconnect sends DISCONNECT (MQTT 5: with opts.ReasonCode and
// opts.Props; opts may be nil) and closes the connection once it is sent.
// The broker then discards the will.
func MQTTDisconnect(c *Conn, opts *MQTTOptions) {
	s := mqttOf(c)
	if s == nil || c.IsClosing() {
		return
	}
	p := mqttpkt.Packet{Type: mqttpkt.DISCONNECT}
	if opts != nil && s.version == mqttpkt.Version5 {
		p.ReasonCode, p.Props = opts.ReasonCode, opts.Props
	}
	s.send(c, &p)
	if s.ws {
		WSClose(c, WSCloseNormal, "")
		return
	}
	c.Drain() // (no keepalive while draining)
}
