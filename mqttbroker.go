package meerkat

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/meerkat-net/meerkat/internal/mqttpkt"
)

// MQTTBrokerSettings configure the MQTT broker of a Manager (MQTTListen).
// Zero values select the defaults.
type MQTTBrokerSettings struct {
	// Authenticate, when set, decides on each CONNECT: return 0 to accept,
	// or an MQTT 5 reason code to refuse (BadUserNameOrPassword 0x86,
	// NotAuthorized 0x87, ...; mapped to the 3.1.1 return code for 3.1.1
	// clients). hasPass tells a missing password from an empty one.
	Authenticate func(c *Conn, clientID, user string, pass []byte, hasPass bool) byte
	// Authorize, when set, decides on each PUBLISH (publish true) and each
	// filter of a SUBSCRIBE (publish false): false refuses it (PUBACK or
	// SUBACK with NotAuthorized in MQTT 5; for a 3.1.1 PUBLISH, silently
	// dropped as the protocol has no way to say no).
	Authorize func(c *Conn, clientID string, topic []byte, publish bool) bool
	// ReceiveMaximum bounds the QoS 1 and 2 messages in flight to each
	// client, and from it (announced in MQTT 5 CONNACK) (100 when 0).
	ReceiveMaximum int
	// MaxQueued bounds the messages a session queues (1000 when 0). While
	// its client is connected, a full queue is back-pressure: QoS 0
	// messages for it are dropped (and counted), and the publishers of
	// QoS 1 and 2 messages for it are not read from until the queue is
	// half empty again, so no QoS 1 or 2 message is dropped; while the
	// client is offline, the oldest messages are dropped (and counted).
	MaxQueued int
	// SendHighWater is how much output a client's connection may have
	// queued before messages for it wait in its session's queue (1 MiB
	// when 0).
	SendHighWater int
	// SlowTimeout disconnects a subscriber whose queue stayed full with no
	// progress (no acknowledgement, no byte taken) for this long (30 s when
	// 0; negative: never). Its persistent session keeps what was queued.
	SlowTimeout time.Duration
	// ConnectTimeout bounds the wait for CONNECT on a new connection (10 s
	// when 0).
	ConnectTimeout time.Duration
	// TopicAliasMaximum is how many topic aliases an MQTT 5 client may set
	// up on a connection (16 when 0; negative: none).
	TopicAliasMaximum int
}

// MQTTBrokerStats are counters of a Manager's broker.
type MQTTBrokerStats struct {
	Sessions        int    // sessions, connected or not
	Connected       int    // clients connected
	Retained        int    // retained messages
	Received        uint64 // PUBLISH received
	Delivered       uint64 // PUBLISH sent to subscribers
	DroppedQueueful uint64 // messages dropped from an offline session's full queue
	DroppedQoS0     uint64 // QoS 0 messages dropped for a connected client that did not keep up
	DroppedExpired  uint64 // messages dropped because their expiry passed
	Paused          int    // publishers not read from now (back-pressure)
	SlowDropped     uint64 // subscribers disconnected for making no progress
}

// MQTTStats returns the broker's counters.
func (m *Manager) MQTTStats() MQTTBrokerStats {
	b := m.broker
	if b == nil {
		return MQTTBrokerStats{}
	}
	st := b.stats
	st.Sessions, st.Retained, st.Paused = len(b.sessions), len(b.retained), len(b.paused)
	for _, s := range b.sessions {
		if s.conn != nil {
			st.Connected++
		}
	}
	return st
}

// mqttBroker is a Manager's broker state, shared by its MQTT listeners.
type mqttBroker struct {
	sessions map[string]*bSession
	retained map[string]*bMsg
	stats    MQTTBrokerStats
	buf      []byte
	shareRR  map[string]uint  // shared subscription groups: the next member's turn
	paused   map[*Conn]*bConn // publishers held back by full subscribers
	filled   []*bSession      // sessions whose queue filled while routing one message
	nextScan int64            // session expiry and delayed wills: next time to look, 0 if none
}

// bSession is a client's session.
type bSession struct {
	id       string
	conn     *Conn // nil while the client is offline
	version  byte
	subs     map[string]*bSub
	queue    []*bDelivery // waiting for room in flight, or for the client
	inflight map[uint16]*bDelivery
	nextID   uint16
	qos2in   map[uint16]bool // QoS 2 PUBLISH received, PUBREL not yet
	expiry   int64           // session expiry after disconnection (ns); <0: never
	expireAt int64           // when an offline session goes, 0 if it does not
	will     *bMsg
	willAt   int64  // a delayed will is published then, 0 if none pending
	recvMax  int    // the client's Receive Maximum
	maxPkt   int    // the client's Maximum Packet Size, 0 if none
	full     bool   // the queue is full: publishers feeding it wait
	resend   bool   // in-flight messages wait to be sent again (a resumed session)
	seq      uint64 // deliveries put in flight so far, for their order
	progress int64  // the last acknowledgement or write (Manager clock)
}

type bSub struct {
	share             string // "$share/GROUP/FILTER" for a shared subscription, else ""
	filter            []byte // the filter (without "$share/GROUP/")
	qos               byte
	noLocal           bool
	retainAsPublished bool
	subID             uint32 // MQTT 5 Subscription Identifier, 0 if none
}

// bMsg is an application message held by the broker (owned copies).
type bMsg struct {
	topic    []byte
	payload  []byte
	qos      byte
	retain   bool
	props    MQTTProperties
	expireAt int64 // Message Expiry (Manager clock), 0 if none
	from     *bSession
}

// bDelivery is a message on its way to one session.
type bDelivery struct {
	msg    *bMsg
	qos    byte
	retain bool
	subIDs []uint32
	id     uint16
	seq    uint64 // order of entry in flight
	rec    bool   // QoS 2: PUBREC came; PUBREL sent
	sent   bool
}

// bConn is a broker connection's state.
type bConn struct {
	version   byte
	sess      *bSession
	in        mqttpkt.Packet
	out       mqttpkt.Packet
	msg       MQTTMessage
	keepalive int64 // 1.5x the client's, ns; 0 if none
	lastRecv  int64
	since     int64             // accepted then (Manager clock), until CONNECT
	graceful  bool              // DISCONNECT received: no will
	aliases   map[uint16][]byte // MQTT 5 topic aliases the client set up
	paused    bool              // back-pressure: not read from while subscribers are full
	waitFor   []*bSession       // with paused: the full sessions it waits for
	resume    bool              // paused no more: parse what waits, at EvPoll
	ws        bool              // MQTT over WebSocket: packets come in binary messages
	wsIn      IOBuf             // with ws: the bytes of the messages, not yet decoded
}

// input is where the client's packets are read from.
func (bc *bConn) input(c *Conn) *IOBuf {
	if bc.ws {
		return &bc.wsIn
	}
	return &c.recv
}

func (m *Manager) mqttBroker() *mqttBroker {
	if m.broker == nil {
		m.broker = &mqttBroker{sessions: map[string]*bSession{}, retained: map[string]*bMsg{}}
	}
	return m.broker
}

// MQTTListen opens an MQTT broker listener on an mqtt:// or mqtts:// URL,
// or for MQTT over WebSocket a ws:// or wss:// one (requests for any path
// are upgraded; the "mqtt" subprotocol is chosen when offered).
// The broker (one per Manager, shared by its listeners) keeps sessions
// (clean and persistent, with MQTT 5 session expiry), subscriptions with
// wildcards, retained messages, QoS 0, 1 and 2 end to end, wills (with MQTT
// 5 will delay), keepalive at 1.5 times the client's, and takes over a
// client ID from an older connection. fn sees each connection's events,
// EvMQTTCmd for every packet and EvMQTTMsg for every PUBLISH received.
// Manager.MQTT holds its settings (authentication and authorization hooks,
// limits).
func (m *Manager) MQTTListen(url string, fn Handler) (*Conn, error) {
	ep, err := parseURL(url)
	if err != nil {
		return nil, err
	}
	m.mqttBroker()
	switch ep.scheme {
	case "mqtt", "mqtts":
		return m.listen(url, fn, mqttBrokerProto)
	case "ws", "wss":
		return m.listen("http"+strings.TrimPrefix(url, "ws"), fn, mqttWSListenProto)
	}
	return nil, errors.New("meerkat: MQTTListen needs mqtt://, mqtts://, ws:// or wss://")
}

func bconnOf(c *Conn) *bConn {
	switch st := c.pstate.(type) {
	case *bConn:
		return st
	case *wsState:
		bc, _ := st.inner.(*bConn)
		return bc
	}
	return nil
}

// mqttWSListenProto runs an MQTT-over-WebSocket listener's connections
// until the upgrade: HTTP, whose requests (any path) are upgraded, with
// the "mqtt" subprotocol when offered.
func mqttWSListenProto(c *Conn, ev Event, data any) {
	if c.flags&fListening != 0 {
		if ev == EvPoll {
			c.m.broker.housekeeping(c)
		}
		return
	}
	switch ev {
	case EvHTTPHeaders:
		c.flags |= fSwallow
		return
	case EvHTTPMsg:
		hm := data.(*HTTPMessage)
		extra := ""
		if hm.wire.HasToken("Sec-WebSocket-Protocol", "mqtt") {
			extra = "Sec-WebSocket-Protocol: mqtt\r\n"
		}
		bc := &bConn{ws: true, since: c.m.clock()}
		if wsUpgrade(c, hm, extra, mqttWSBrokerProto, bc) {
			c.wakeProtoAt(bc.since + timeoutNanos(c.m.MQTT.ConnectTimeout, 10*time.Second))
		}
		c.flags |= fSwallow
		return
	}
	httpServerProto(c, ev, data)
}

// mqttWSBrokerProto runs a broker connection over WebSocket.
func mqttWSBrokerProto(c *Conn, ev Event, data any) {
	bc := bconnOf(c)
	switch ev {
	case EvWSMsg:
		if bc != nil {
			bc.wsIn.append(data.(*WSMessage).Data)
			bc.parse(c)
		}
		c.flags |= fSwallow
		return
	case EvWSOpen, EvWSCtl:
		c.flags |= fSwallow
		return
	}
	wsProto(c, ev, data)
	if bc == nil {
		return
	}
	switch ev {
	case EvWrite:
		if bc.sess != nil && bc.sess.conn == c {
			bc.sess.progress = c.m.now
			c.m.broker.flush(bc.sess)
		}
	case EvPoll:
		bc.timers(c)
	case EvClose:
		c.m.broker.disconnected(c, bc)
		bc.wsIn.reset()
	}
}

func mqttBrokerProto(c *Conn, ev Event, data any) {
	m := c.m
	if c.flags&fListening != 0 {
		if ev == EvPoll {
			m.broker.housekeeping(c)
		}
		return
	}
	bc := bconnOf(c)
	switch ev {
	case EvAccept:
		bc = &bConn{since: m.clock()}
		c.pstate = bc
		c.onShutdown = mqttBrokerShutdown
		c.wakeProtoAt(bc.since + timeoutNanos(m.MQTT.ConnectTimeout, 10*time.Second))
	case EvRead:
		if bc != nil {
			bc.parse(c)
		}
	case EvWrite:
		if bc != nil && bc.sess != nil && bc.sess.conn == c {
			bc.sess.progress = m.now
			m.broker.flush(bc.sess)
		}
	case EvPoll:
		if bc != nil {
			bc.timers(c)
		}
	case EvClose:
		if bc != nil {
			m.broker.disconnected(c, bc)
		}
	}
}

// mqttBrokerShutdown: MQTT 5 clients are told (DISCONNECT 0x8B); then the
// connection drains.
func mqttBrokerShutdown(c *Conn) {
	if bc := bconnOf(c); bc != nil && bc.sess != nil && bc.version == mqttpkt.Version5 {
		bc.out = mqttpkt.Packet{Type: mqttpkt.DISCONNECT, ReasonCode: mqttpkt.ServerShuttingDown}
		bc.send(c, &bc.out)
	}
	c.Drain()
}

func (bc *bConn) send(c *Conn, p *mqttpkt.Packet) bool {
	b := c.m.broker
	out, err := mqttpkt.Append(b.buf[:0], p, max(bc.version, mqttpkt.Version311))
	if err != nil {
		c.m.log().Warn("meerkat: mqtt broker packet not sent", "conn", c.id, "type", mqttpkt.TypeName(p.Type), "err", err)
		return false
	}
	b.buf = out
	if cap(b.buf) > 64<<10 {
		b.buf = nil
	}
	if bc.ws {
		return WSSend(c, out, WSOpBinary) > 0
	}
	return c.Send(out)
}

// parse decodes and handles the client's packets.
func (bc *bConn) parse(c *Conn) {
	m := c.m
	in := bc.input(c)
	for c.flags&(fClosing|fClosed|fDraining) == 0 && !bc.paused {
		buf := in.Bytes()
		if len(buf) == 0 {
			return
		}
		n, err := mqttpkt.Decode(buf, bc.version, m.recvLimit(), &bc.in)
		if err != nil {
			if bc.sess == nil && bc.in.Type == mqttpkt.CONNECT {
				var pe *mqttpkt.Error
				if errors.As(err, &pe) && pe.Code == mqttpkt.UnsupportedProtocolVersion {
					v := mqttpkt.Version311
					if bc.in.Version == mqttpkt.Version5 {
						v = mqttpkt.Version5
					}
					bc.version = v
					bc.out = mqttpkt.Packet{Type: mqttpkt.CONNACK, ReasonCode: mqttpkt.UnsupportedProtocolVersion}
					bc.send(c, &bc.out)
				}
			}
			bc.violation(c, err)
			return
		}
		if n == 0 {
			if in.Len() >= m.recvLimit() {
				bc.violation(c, &mqttpkt.Error{Code: mqttpkt.PacketTooLarge, Reason: "packet larger than the receive buffer"})
			}
			return
		}
		bc.lastRecv = m.now
		bc.handle(c, &bc.in)
		in.Consume(n)
	}
}

// violation closes a client that broke the protocol: MQTT 5 clients get a
// DISCONNECT with the reason code first. No event is raised for the bad
// packet; the will is published (the client did not disconnect cleanly).
func (bc *bConn) violation(c *Conn, err error) {
	code := byte(mqttpkt.ProtocolError)
	var pe *mqttpkt.Error
	if errors.As(err, &pe) {
		code = pe.Code
	}
	if bc.sess != nil && bc.version == mqttpkt.Version5 {
		bc.out = mqttpkt.Packet{Type: mqttpkt.DISCONNECT, ReasonCode: code}
		bc.send(c, &bc.out)
	}
	c.m.log().Debug("meerkat: mqtt client closed for a protocol violation", "conn", c.id, "err", err)
	in := bc.input(c)
	in.Consume(in.Len())
	if bc.ws {
		bc.wsIn.reset()
		WSClose(c, WSCloseProtocolError, "mqtt protocol violation")
		return
	}
	c.Drain()
}

// handle acts on one packet from a client.
func (bc *bConn) handle(c *Conn, p *mqttpkt.Packet) {
	m := c.m
	b := m.broker
	if bc.sess == nil && p.Type != mqttpkt.CONNECT {
		bc.violation(c, &mqttpkt.Error{Code: mqttpkt.ProtocolError, Reason: "the first packet must be CONNECT"})
		return
	}
	switch p.Type {
	case mqttpkt.CONNECT:
		if bc.sess != nil {
			bc.violation(c, &mqttpkt.Error{Code: mqttpkt.ProtocolError, Reason: "a second CONNECT"})
			return
		}
	case mqttpkt.PUBLISH, mqttpkt.PUBACK, mqttpkt.PUBREC, mqttpkt.PUBREL, mqttpkt.PUBCOMP, mqttpkt.SUBSCRIBE,
		mqttpkt.UNSUBSCRIBE, mqttpkt.PINGREQ, mqttpkt.DISCONNECT:
	default:
		bc.violation(c, &mqttpkt.Error{Code: mqttpkt.ProtocolError, Reason: "a client does not send " + mqttpkt.TypeName(p.Type)})
		return
	}
	wm := &bc.msg
	*wm = MQTTMessage{Topic: p.Topic, Data: p.Payload, ID: p.PacketID, Cmd: p.Type, QoS: p.QoS,
		Retain: p.Retain, Dup: p.Dup, ReasonCode: p.ReasonCode, Props: &p.Props, Packet: p}
	if p.Type == mqttpkt.CONNECT {
		b.connect(c, bc, p)
		return
	}
	m.dispatch(c, EvMQTTCmd, wm)
	if c.flags&(fClosing|fClosed) != 0 {
		return
	}
	s := bc.sess
	switch p.Type {
	case mqttpkt.PUBLISH:
		b.publish(c, bc, p)
	case mqttpkt.PUBACK, mqttpkt.PUBCOMP:
		s.progress = m.now
		if d := s.inflight[p.PacketID]; d != nil && (p.Type == mqttpkt.PUBACK) == (d.qos == 1) {
			delete(s.inflight, p.PacketID)
			b.flush(s)
		}
	case mqttpkt.PUBREC:
		s.progress = m.now
		d := s.inflight[p.PacketID]
		if d == nil || d.qos != 2 {
			break
		}
		if p.ReasonCode >= 0x80 {
			delete(s.inflight, p.PacketID)
			b.flush(s)
			break
		}
		d.rec = true
		bc.out = mqttpkt.Packet{Type: mqttpkt.PUBREL, PacketID: p.PacketID}
		bc.send(c, &bc.out)
	case mqttpkt.PUBREL:
		delete(s.qos2in, p.PacketID) // known or not, the exchange is over
		bc.out = mqttpkt.Packet{Type: mqttpkt.PUBCOMP, PacketID: p.PacketID}
		bc.send(c, &bc.out)
	case mqttpkt.SUBSCRIBE:
		b.subscribe(c, bc, p)
	case mqttpkt.UNSUBSCRIBE:
		bc.out = mqttpkt.Packet{Type: mqttpkt.UNSUBACK, PacketID: p.PacketID}
		for _, f := range p.Filters {
			code := byte(mqttpkt.Success)
			if _, ok := s.subs[string(f)]; ok {
				delete(s.subs, string(f))
			} else {
				code = mqttpkt.NoSubscriptionExisted
			}
			if bc.version == mqttpkt.Version5 {
				bc.out.ReasonCodes = append(bc.out.ReasonCodes, code)
			}
		}
		bc.send(c, &bc.out)
	case mqttpkt.PINGREQ:
		bc.out = mqttpkt.Packet{Type: mqttpkt.PINGRESP}
		bc.send(c, &bc.out)
	case mqttpkt.DISCONNECT:
		if v, ok := p.Props.SessionExpiry(); ok && bc.version == mqttpkt.Version5 {
			if s.expiry == 0 && v != 0 {
				bc.violation(c, &mqttpkt.Error{Code: mqttpkt.ProtocolError, Reason: "DISCONNECT sets a session expiry after CONNECT set none"})
				return
			}
			s.expiry = int64(v) * int64(time.Second)
			if v == 0xFFFFFFFF {
				s.expiry = -1
			}
		}
		bc.graceful = p.ReasonCode != mqttpkt.DisconnectWithWill
		c.Drain()
	}
}

// connect handles CONNECT: authentication, the session (new, resumed or
// taken over), CONNACK, and what the session kept.
func (b *mqttBroker) connect(c *Conn, bc *bConn, p *mqttpkt.Packet) {
	m := c.m
	bc.version = p.Version
	refuse := func(code byte) {
		bc.out = mqttpkt.Packet{Type: mqttpkt.CONNACK, ReasonCode: code}
		if bc.version == mqttpkt.Version311 {
			if _, ok := mqttpkt.ReturnCode311(code); !ok {
				bc.out.ReasonCode = mqttpkt.ServerUnavailable
			}
		}
		bc.send(c, &bc.out)
		c.Drain()
	}
	clientID := string(p.ClientID)
	assigned := false
	if clientID == "" {
		if bc.version == mqttpkt.Version311 && !p.CleanStart {
			refuse(mqttpkt.ClientIDNotValid)
			return
		}
		var r [8]byte
		rand.Read(r[:])
		clientID, assigned = "auto-"+hex.EncodeToString(r[:]), true
	}
	if f := m.MQTT.Authenticate; f != nil {
		if code := f(c, clientID, string(p.Username), p.Password, p.HasPassword); code != 0 {
			refuse(code)
			return
		}
	}
	m.dispatch(c, EvMQTTCmd, &bc.msg)
	if c.flags&(fClosing|fClosed) != 0 {
		return
	}
	s := b.sessions[clientID]
	present := s != nil && !p.CleanStart
	if s != nil && s.conn != nil && s.conn != c {
		// Takeover: the older connection goes, without its will's delay.
		old := s.conn
		if obc := bconnOf(old); obc != nil {
			if obc.version == mqttpkt.Version5 {
				obc.out = mqttpkt.Packet{Type: mqttpkt.DISCONNECT, ReasonCode: mqttpkt.SessionTakenOver}
				obc.send(old, &obc.out)
			}
			obc.sess = nil
		}
		if s.will != nil {
			b.publishWill(m, s)
		}
		s.conn = nil
		old.Drain()
	}
	if s == nil || p.CleanStart {
		s = &bSession{id: clientID, subs: map[string]*bSub{}}
		b.sessions[clientID] = s
	}
	s.conn, s.version, s.expireAt, s.willAt = c, bc.version, 0, 0
	s.expiry = -1 // 3.1.1: a persistent session lasts
	if bc.version == mqttpkt.Version5 {
		s.expiry = 0
		if v, ok := p.Props.SessionExpiry(); ok {
			s.expiry = int64(v) * int64(time.Second)
			if v == 0xFFFFFFFF {
				s.expiry = -1
			}
		}
	} else if p.CleanStart {
		s.expiry = 0
	}
	s.recvMax = 65535
	if v, ok := p.Props.ReceiveMaximum(); ok {
		s.recvMax = int(v)
	}
	s.maxPkt = 0
	if v, ok := p.Props.MaximumPacketSize(); ok {
		s.maxPkt = int(v)
	}
	s.will = nil
	if w := p.Will; w != nil {
		s.will = &bMsg{topic: clone(w.Topic), payload: clone(w.Payload), qos: w.QoS, retain: w.Retain, props: cloneProps(&w.Props), from: s}
	}
	bc.sess = s
	if p.KeepAlive > 0 {
		bc.keepalive = int64(p.KeepAlive) * int64(time.Second) * 3 / 2
		c.wakeProtoAt(m.now + bc.keepalive)
	}
	c.wakeAt = 0

	ack := mqttpkt.Packet{Type: mqttpkt.CONNACK, SessionPresent: present}
	if bc.version == mqttpkt.Version5 {
		ack.Props.SetReceiveMaximum(uint16(b.receiveMax(m)))
		ack.Props.SetMaximumPacketSize(uint32(m.recvLimit()))
		ack.Props.SetTopicAliasMaximum(uint16(b.aliasMax(m)))
		if assigned {
			ack.Props.AssignedClientID = []byte(clientID)
		}
	}
	bc.send(c, &ack)
	// What the session kept: unacknowledged messages again, then the queue.
	for _, d := range s.inflight {
		d.sent = false
	}
	s.resend = len(s.inflight) > 0
	b.flush(s)
}

func (b *mqttBroker) receiveMax(m *Manager) int { return orDefault(m.MQTT.ReceiveMaximum, 100) }

func (b *mqttBroker) aliasMax(m *Manager) int {
	return min(max(orDefault(m.MQTT.TopicAliasMaximum, 16), 0), 65535)
}

func clone(p []byte) []byte {
	if p == nil {
		return nil
	}
	return append([]byte{}, p...)
}

// cloneProps copies properties with everything they refer to.
func cloneProps(p *MQTTProperties) MQTTProperties {
	q := *p
	q.ContentType, q.ResponseTopic, q.CorrelationData = clone(p.ContentType), clone(p.ResponseTopic), clone(p.CorrelationData)
	q.AssignedClientID, q.AuthMethod, q.AuthData = nil, nil, nil
	q.ResponseInfo, q.ServerReference, q.ReasonString = nil, nil, nil
	q.SubscriptionIDs = nil
	if p.User != nil {
		q.User = make([]mqttpkt.UserProperty, len(p.User))
		for i, kv := range p.User {
			q.User[i] = mqttpkt.UserProperty{Key: clone(kv.Key), Value: clone(kv.Value)}
		}
	}
	return q
}

// publish handles a PUBLISH from a client.
func (b *mqttBroker) publish(c *Conn, bc *bConn, p *mqttpkt.Packet) {
	m := c.m
	s := bc.sess
	if len(p.Props.SubscriptionIDs) > 0 {
		bc.violation(c, &mqttpkt.Error{Code: mqttpkt.ProtocolError, Reason: "a client's PUBLISH carries a Subscription Identifier"})
		return
	}
	if alias, ok := p.Props.TopicAlias(); ok && bc.version == mqttpkt.Version5 {
		if alias == 0 || int(alias) > b.aliasMax(m) {
			bc.violation(c, &mqttpkt.Error{Code: mqttpkt.TopicAliasInvalid, Reason: "topic alias out of range"})
			return
		}
		if len(p.Topic) > 0 {
			if bc.aliases == nil {
				bc.aliases = map[uint16][]byte{}
			}
			bc.aliases[alias] = append(bc.aliases[alias][:0], p.Topic...)
		} else if t, ok := bc.aliases[alias]; ok {
			p.Topic = t
			bc.msg.Topic = t
		} else {
			bc.violation(c, &mqttpkt.Error{Code: mqttpkt.ProtocolError, Reason: "topic alias never set"})
			return
		}
	}
	b.stats.Received++
	allowed := m.MQTT.Authorize == nil || m.MQTT.Authorize(c, s.id, p.Topic, true)
	if p.QoS == 2 && s.qos2in[p.PacketID] {
		allowed = false // a duplicate of one routed already
	} else {
		m.dispatch(c, EvMQTTMsg, &bc.msg)
	}
	if allowed && c.flags&(fClosing|fClosed) == 0 {
		msg := &bMsg{topic: clone(p.Topic), payload: clone(p.Payload), qos: p.QoS, retain: p.Retain, from: s}
		if bc.version == mqttpkt.Version5 {
			msg.props = cloneProps(&p.Props)
			msg.props.Remove(mqttpkt.PropTopicAlias)
			if v, ok := p.Props.MessageExpiry(); ok {
				msg.expireAt = m.now + int64(v)*int64(time.Second)
			}
		}
		b.route(m, msg)
		if p.QoS > 0 {
			b.pause(c, bc) // when a subscriber it fed is full
		}
	}
	switch p.QoS {
	case 1:
		bc.out = mqttpkt.Packet{Type: mqttpkt.PUBACK, PacketID: p.PacketID}
		if !allowed && bc.version == mqttpkt.Version5 {
			bc.out.ReasonCode = mqttpkt.NotAuthorized
		}
		bc.send(c, &bc.out)
	case 2:
		if s.qos2in == nil {
			s.qos2in = map[uint16]bool{}
		}
		s.qos2in[p.PacketID] = true
		bc.out = mqttpkt.Packet{Type: mqttpkt.PUBREC, PacketID: p.PacketID}
		bc.send(c, &bc.out)
	}
}

// route delivers a message to every matching subscription, and keeps it
// when it is to be retained.
func (b *mqttBroker) route(m *Manager, msg *bMsg) {
	b.filled = b.filled[:0]
	if msg.retain {
		if len(msg.payload) == 0 {
			delete(b.retained, string(msg.topic))
		} else {
			b.retained[string(msg.topic)] = msg
		}
	}
	var groups map[string][]*bSession // shared subscriptions matching: their members
	for _, s := range b.sessions {
		var best *bSub
		var ids []uint32
		for _, sub := range s.subs {
			if !mqttpkt.Match(sub.filter, msg.topic) || (sub.noLocal && msg.from == s) {
				continue
			}
			if sub.share != "" {
				if groups == nil {
					groups = map[string][]*bSession{}
				}
				groups[sub.share] = append(groups[sub.share], s)
				continue
			}
			if best == nil || sub.qos > best.qos {
				best = sub
			}
			if sub.subID != 0 {
				ids = append(ids, sub.subID)
			}
		}
		if best == nil {
			continue
		}
		b.deliver(m, s, &bDelivery{msg: msg, qos: min(msg.qos, best.qos), retain: msg.retain && best.retainAsPublished, subIDs: ids})
	}
	// Each shared subscription group gets the message once: its members
	// take turns, connected ones first.
	for share, members := range groups {
		if b.shareRR == nil {
			b.shareRR = map[string]uint{}
		}
		slices.SortFunc(members, func(x, y *bSession) int { return strings.Compare(x.id, y.id) })
		turn := b.shareRR[share]
		b.shareRR[share] = turn + 1
		pick := members[turn%uint(len(members))]
		for i := range members {
			if cand := members[(turn+uint(i))%uint(len(members))]; cand.conn != nil {
				pick = cand
				break
			}
		}
		sub := pick.subs[share]
		var ids []uint32
		if sub.subID != 0 {
			ids = []uint32{sub.subID}
		}
		b.deliver(m, pick, &bDelivery{msg: msg, qos: min(msg.qos, sub.qos), retain: msg.retain && sub.retainAsPublished, subIDs: ids})
	}
}

// deliver queues a message for a session and sends what it can.
func (b *mqttBroker) deliver(m *Manager, s *bSession, d *bDelivery) {
	maxQ := orDefault(m.MQTT.MaxQueued, 1000)
	if s.conn == nil {
		if d.qos == 0 || s.expiry == 0 {
			return // QoS 0 is not kept for an offline client
		}
		if len(s.queue) >= maxQ {
			s.queue[0] = nil
			s.queue = s.queue[1:]
			b.stats.DroppedQueueful++
		}
		s.queue = append(s.queue, d)
		return
	}
	if d.qos == 0 && (len(s.queue) >= maxQ || s.conn.send.Len() >= b.highWater(m)) {
		b.stats.DroppedQoS0++ // it does not keep up: QoS 0 may go
		return
	}
	s.queue = append(s.queue, d)
	b.flush(s)
	if len(s.queue) >= maxQ && !s.full {
		s.full = true
		if s.progress == 0 {
			s.progress = m.now
		}
		if t := b.slowTimeout(m); t > 0 {
			s.conn.wakeProtoAt(s.progress + t)
		}
	}
	if s.full {
		b.filled = append(b.filled, s)
	}
}

func (b *mqttBroker) highWater(m *Manager) int { return orDefault(m.MQTT.SendHighWater, 1<<20) }

func (b *mqttBroker) slowTimeout(m *Manager) int64 {
	return timeoutNanos(m.MQTT.SlowTimeout, 30*time.Second)
}

// pause holds a publisher back until the full sessions it fed have room.
func (b *mqttBroker) pause(c *Conn, bc *bConn) {
	bc.waitFor = append(bc.waitFor[:0], b.filled...)
	b.filled = b.filled[:0]
	if len(bc.waitFor) == 0 {
		return
	}
	bc.paused = true
	if b.paused == nil {
		b.paused = map[*Conn]*bConn{}
	}
	b.paused[c] = bc
}

// unfull is called when a session's queue has room again: the publishers
// waiting for it only (and for no other full session) go on.
func (b *mqttBroker) unfull(m *Manager, s *bSession) {
	s.full = false
	for c, bc := range b.paused {
		waiting := false
		for _, w := range bc.waitFor {
			waiting = waiting || (w.full && w.conn != nil)
		}
		if !waiting {
			delete(b.paused, c)
			bc.paused, bc.resume, bc.waitFor = false, true, bc.waitFor[:0]
			c.wakeProtoAt(m.now) // its EvPoll, in the next iteration without waiting
		}
	}
}

// flush sends a connected session's unsent in-flight messages, then its
// queue, while Receive Maximum allows.
func (b *mqttBroker) flush(s *bSession) {
	c := s.conn
	if c == nil || c.flags&(fClosing|fClosed) != 0 {
		return
	}
	bc := bconnOf(c)
	if bc == nil || bc.sess != s {
		return
	}
	m := c.m
	if s.resend {
		// Unacknowledged messages again, in the order first sent (MQTT 4.6).
		s.resend = false
		again := make([]*bDelivery, 0, len(s.inflight))
		for _, d := range s.inflight {
			if !d.sent {
				again = append(again, d)
			}
		}
		slices.SortFunc(again, func(x, y *bDelivery) int { return cmp.Compare(x.seq, y.seq) })
		for _, d := range again {
			if d.sent = b.send(m, c, bc, d, true); !d.sent {
				s.resend = true
				break
			}
		}
	}
	limit := min(s.recvMax, b.receiveMax(m))
	maxQ := orDefault(m.MQTT.MaxQueued, 1000)
	defer func() {
		if s.full && len(s.queue) <= maxQ/2 {
			b.unfull(m, s)
		}
	}()
	high := b.highWater(m)
	for len(s.queue) > 0 {
		d := s.queue[0]
		if d.qos > 0 && len(s.inflight) >= limit || c.send.Len() >= high {
			return
		}
		s.queue[0] = nil
		s.queue = s.queue[1:]
		if d.msg.expireAt != 0 && m.now >= d.msg.expireAt {
			b.stats.DroppedExpired++
			continue
		}
		if d.qos > 0 {
			s.seq++
			d.id, d.seq = s.newID(), s.seq
			if s.inflight == nil {
				s.inflight = map[uint16]*bDelivery{}
			}
			s.inflight[d.id] = d
		}
		d.sent = b.send(m, c, bc, d, false)
	}
	if len(s.queue) == 0 {
		s.queue = nil
	}
}

func (s *bSession) newID() uint16 {
	for range 65535 {
		s.nextID++
		if s.nextID == 0 {
			s.nextID = 1
		}
		if _, used := s.inflight[s.nextID]; !used {
			return s.nextID
		}
	}
	return 0
}

// send writes one delivery (again, with DUP, when resent).
func (b *mqttBroker) send(m *Manager, c *Conn, bc *bConn, d *bDelivery, again bool) bool {
	if d.rec {
		bc.out = mqttpkt.Packet{Type: mqttpkt.PUBREL, PacketID: d.id}
		return bc.send(c, &bc.out)
	}
	p := &bc.out
	*p = mqttpkt.Packet{Type: mqttpkt.PUBLISH, Topic: d.msg.topic, Payload: d.msg.payload, QoS: d.qos, Retain: d.retain, Dup: again && d.qos > 0, PacketID: d.id}
	if bc.version == mqttpkt.Version5 {
		p.Props = d.msg.props
		p.Props.SubscriptionIDs = d.subIDs
		if d.msg.expireAt != 0 {
			left := max((d.msg.expireAt-m.now)/int64(time.Second), 0)
			p.Props.SetMessageExpiry(uint32(left))
		}
	}
	if s := bc.sess; s != nil && s.maxPkt > 0 && mqttpkt.Size(p, bc.version) > s.maxPkt {
		// Too big for this client: dropped, as MQTT 5 says, and acknowledged
		// on its behalf.
		delete(s.inflight, d.id)
		return true
	}
	if !bc.send(c, p) {
		return false
	}
	b.stats.Delivered++
	return true
}

// subscribe handles SUBSCRIBE: SUBACK, then the retained messages.
func (b *mqttBroker) subscribe(c *Conn, bc *bConn, p *mqttpkt.Packet) {
	m := c.m
	s := bc.sess
	ack := mqttpkt.Packet{Type: mqttpkt.SUBACK, PacketID: p.PacketID}
	type newSub struct {
		sub     *bSub
		handle  byte
		existed bool
	}
	var added []newSub
	subID := uint32(0)
	if len(p.Props.SubscriptionIDs) > 0 {
		subID = p.Props.SubscriptionIDs[0]
	}
	for _, rq := range p.Subscriptions {
		code := rq.QoS
		switch {
		case mqttpkt.ValidTopicFilter(rq.Filter) != nil:
			code = mqttpkt.TopicFilterInvalid
		case m.MQTT.Authorize != nil && !m.MQTT.Authorize(c, s.id, rq.Filter, false):
			code = mqttpkt.NotAuthorized
		}
		if code >= 0x80 {
			if bc.version == mqttpkt.Version311 {
				code = 0x80
			}
			ack.ReasonCodes = append(ack.ReasonCodes, code)
			continue
		}
		_, existed := s.subs[string(rq.Filter)]
		sub := &bSub{filter: clone(rq.Filter), qos: rq.QoS, noLocal: rq.NoLocal, retainAsPublished: rq.RetainAsPublished, subID: subID}
		if _, filter, shared, _ := mqttpkt.SharedSubscription(rq.Filter); shared {
			sub.share, sub.filter = string(rq.Filter), clone(filter)
		}
		s.subs[string(rq.Filter)] = sub
		if sub.share == "" { // shared subscriptions get no retained messages
			added = append(added, newSub{sub, rq.RetainHandling, existed})
		}
		ack.ReasonCodes = append(ack.ReasonCodes, rq.QoS)
	}
	bc.send(c, &ack)
	for _, a := range added {
		if a.handle == 2 || (a.handle == 1 && a.existed) {
			continue
		}
		for _, r := range b.retained {
			if r.expireAt != 0 && m.now >= r.expireAt {
				delete(b.retained, string(r.topic))
				continue
			}
			if mqttpkt.Match(a.sub.filter, r.topic) {
				var ids []uint32
				if a.sub.subID != 0 {
					ids = []uint32{a.sub.subID}
				}
				b.deliver(m, s, &bDelivery{msg: r, qos: min(r.qos, a.sub.qos), retain: true, subIDs: ids})
			}
		}
	}
}

// timers: the CONNECT timeout and the keepalive (1.5 times the client's).
func (bc *bConn) timers(c *Conn) {
	m := c.m
	if c.flags&(fClosing|fClosed|fDraining) != 0 {
		return
	}
	if bc.sess == nil {
		if m.now-bc.since >= timeoutNanos(m.MQTT.ConnectTimeout, 10*time.Second) {
			m.log().Debug("meerkat: mqtt client sent no CONNECT in time", "conn", c.id)
			c.Close()
		}
		return
	}
	if bc.paused || bc.resume {
		bc.lastRecv = m.now // not read from: its packets wait
	}
	if bc.resume {
		bc.resume = false
		bc.parse(c)
		if c.flags&(fClosing|fClosed|fDraining) != 0 {
			return
		}
	}
	if s := bc.sess; s.full {
		if t := m.broker.slowTimeout(m); t > 0 && m.now-s.progress >= t {
			m.log().Info("meerkat: mqtt subscriber disconnected: no progress with a full queue", "conn", c.id, "client", s.id, "queued", len(s.queue))
			m.broker.stats.SlowDropped++
			if bc.version == mqttpkt.Version5 {
				bc.out = mqttpkt.Packet{Type: mqttpkt.DISCONNECT, ReasonCode: mqttpkt.QuotaExceeded}
				bc.send(c, &bc.out)
			}
			c.Close() // what it did not take stays queued in its session
			return
		}
	}
	if bc.keepalive > 0 {
		if m.now-bc.lastRecv >= bc.keepalive {
			if bc.version == mqttpkt.Version5 {
				bc.out = mqttpkt.Packet{Type: mqttpkt.DISCONNECT, ReasonCode: mqttpkt.KeepAliveTimeout}
				bc.send(c, &bc.out)
			}
			c.Drain()
			return
		}
		c.wakeProtoAt(bc.lastRecv + bc.keepalive)
	}
}

// disconnected handles a client's connection closing: its will, and its
// session's fate.
func (b *mqttBroker) disconnected(c *Conn, bc *bConn) {
	delete(b.paused, c)
	s := bc.sess
	if s == nil || s.conn != c {
		return
	}
	m := c.m
	s.conn = nil
	if s.full {
		b.unfull(m, s) // its publishers need not wait for an offline session
	}
	if maxQ := orDefault(m.MQTT.MaxQueued, 1000); len(s.queue) > maxQ {
		b.stats.DroppedQueueful += uint64(len(s.queue) - maxQ)
		s.queue = append([]*bDelivery(nil), s.queue[len(s.queue)-maxQ:]...)
	}
	if s.will != nil && !bc.graceful {
		delay := int64(0)
		if v, ok := s.will.props.WillDelay(); ok {
			delay = int64(v) * int64(time.Second)
		}
		// MQTT 5: the will goes when its delay passes or the session ends,
		// whichever comes first (housekeeping does both).
		if delay > 0 && s.expiry != 0 {
			s.willAt = m.now + delay
			b.wake(m, s.willAt)
		} else {
			b.publishWill(m, s)
		}
	}
	if bc.graceful {
		s.will = nil
	}
	switch {
	case s.expiry == 0:
		if s.will != nil && s.willAt == 0 {
			b.publishWill(m, s)
		}
		delete(b.sessions, s.id)
	case s.expiry > 0:
		s.expireAt = m.now + s.expiry
		b.wake(m, s.expireAt)
	}
}

// publishWill publishes a session's will (once).
func (b *mqttBroker) publishWill(m *Manager, s *bSession) {
	w := s.will
	s.will, s.willAt = nil, 0
	if w == nil {
		return
	}
	w.props.Remove(mqttpkt.PropWillDelay)
	if v, ok := w.props.MessageExpiry(); ok {
		w.expireAt = m.now + int64(v)*int64(time.Second)
	}
	b.route(m, w)
}

// wake asks the listeners' EvPoll to run housekeeping at time at.
func (b *mqttBroker) wake(m *Manager, at int64) {
	if b.nextScan == 0 || at < b.nextScan {
		b.nextScan = at
	}
	m.deadlineAt(at)
}

// housekeeping (on a listener's EvPoll): delayed wills and expired
// sessions.
func (b *mqttBroker) housekeeping(l *Conn) {
	m := l.m
	if b.nextScan == 0 || m.now < b.nextScan {
		if b.nextScan != 0 {
			l.wakeProtoAt(b.nextScan)
		}
		return
	}
	b.nextScan = 0
	for id, s := range b.sessions {
		if s.conn != nil {
			continue
		}
		if s.willAt != 0 {
			if m.now >= s.willAt || (s.expireAt != 0 && m.now >= s.expireAt) {
				b.publishWill(m, s)
			} else {
				b.wake(m, s.willAt)
			}
		}
		if s.expireAt != 0 {
			if m.now >= s.expireAt {
				delete(b.sessions, id)
			} else {
				b.wake(m, s.expireAt)
			}
		}
	}
	if b.nextScan != 0 {
		l.wakeProtoAt(b.nextScan)
	}
}
