package harness

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"
)

// The MQTT benchmark's load speaks MQTT 3.1.1 itself, hand-encoded: a
// client library costs more CPU per message than the brokers measured.
// Only what the benchmark needs: CONNECT (clean session), SUBSCRIBE with one
// filter, PUBLISH at QoS 0 and 1, PUBACK, DISCONNECT; and a splitter for
// what brokers send (CONNACK, SUBACK, PUBLISH, PUBACK).

// MQTT 3.1.1 packet types (first byte, flags included where fixed).
const (
	mqttCONNECT    = 0x10
	mqttCONNACK    = 0x20
	mqttPUBLISH    = 0x30
	mqttPUBACK     = 0x40
	mqttSUBSCRIBE  = 0x82
	mqttSUBACK     = 0x90
	mqttDISCONNECT = 0xe0
)

// mqttKeepalive is the keepalive the load's clients announce (s): longer
// than any scenario, and they send nothing when idle.
const mqttKeepalive = 300

func mqttAppendLen(b []byte, n int) []byte {
	for {
		d := byte(n & 0x7f)
		n >>= 7
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

func mqttAppendStr(b []byte, s string) []byte {
	b = append(b, byte(len(s)>>8), byte(len(s)))
	return append(b, s...)
}

// mqttAppendConnect appends a CONNECT of protocol level 4 with a clean
// session and no credentials.
func mqttAppendConnect(b []byte, clientID string, keepalive uint16) []byte {
	b = append(b, mqttCONNECT)
	b = mqttAppendLen(b, 10+2+len(clientID))
	b = mqttAppendStr(b, "MQTT")
	b = append(b, 4, 0x02, byte(keepalive>>8), byte(keepalive))
	return mqttAppendStr(b, clientID)
}

func mqttAppendSubscribe(b []byte, id uint16, filter string, qos byte) []byte {
	b = append(b, mqttSUBSCRIBE)
	b = mqttAppendLen(b, 2+2+len(filter)+1)
	b = append(b, byte(id>>8), byte(id))
	b = mqttAppendStr(b, filter)
	return append(b, qos)
}

// mqttAppendPublish appends a PUBLISH; id is used with QoS 1 only.
func mqttAppendPublish(b []byte, topic string, qos byte, id uint16, payload []byte) []byte {
	n := 2 + len(topic) + len(payload)
	if qos > 0 {
		n += 2
	}
	b = append(b, mqttPUBLISH|qos<<1)
	b = mqttAppendLen(b, n)
	b = mqttAppendStr(b, topic)
	if qos > 0 {
		b = append(b, byte(id>>8), byte(id))
	}
	return append(b, payload...)
}

func mqttAppendPuback(b []byte, id uint16) []byte {
	return append(b, mqttPUBACK, 2, byte(id>>8), byte(id))
}

// mqttPacketID is the packet ID of the seq-th QoS 1 message of a
// publisher: 1 to 65535 in turn.
func mqttPacketID(seq uint64) uint16 { return uint16(seq%65535) + 1 }

// mqttSeqOf is the sequence number of the latest message sent with packet
// ID id, next being the sequence number of the next message to send: the
// message in flight with that ID, as long as fewer than 65,535 are in
// flight. -1 if no message was sent with id.
func mqttSeqOf(id uint16, next uint64) int64 {
	if id == 0 || next == 0 {
		return -1
	}
	last := int64(next - 1)
	d := (last - int64(id-1)) % 65535
	if d < 0 {
		d += 65535
	}
	if s := last - d; s >= 0 {
		return s
	}
	return -1
}

// The payload of a benchmark message: the publisher's index (4 bytes) and
// the message's sequence number (8 bytes), then filler.
const mqttPayloadHeader = 12

func mqttPutPayload(p []byte, pub int, seq uint64) {
	binary.BigEndian.PutUint32(p, uint32(pub))
	binary.BigEndian.PutUint64(p[4:], seq)
}

var errMQTTMalformed = errors.New("malformed MQTT packet from the broker")

// mqttSplit finds the first complete packet in b: its first byte, its body
// and its whole length; n is 0 when b holds no complete packet yet.
func mqttSplit(b []byte) (h byte, body []byte, n int, err error) {
	if len(b) < 2 {
		return 0, nil, 0, nil
	}
	size, mul := 0, 1
	for i := 1; ; i++ {
		if i > 4 {
			return 0, nil, 0, errMQTTMalformed
		}
		if i >= len(b) {
			return 0, nil, 0, nil
		}
		size += int(b[i]&0x7f) * mul
		mul <<= 7
		if b[i]&0x80 == 0 {
			if i+1+size > len(b) {
				return 0, nil, 0, nil
			}
			return b[0], b[i+1 : i+1+size], i + 1 + size, nil
		}
	}
}

// mqttPublishFields returns a PUBLISH body's packet ID (0 at QoS 0) and
// payload.
func mqttPublishFields(h byte, body []byte) (id uint16, payload []byte, err error) {
	if len(body) < 2 {
		return 0, nil, errMQTTMalformed
	}
	i := 2 + int(binary.BigEndian.Uint16(body))
	if h&0x06 != 0 {
		if i+2 > len(body) {
			return 0, nil, errMQTTMalformed
		}
		id = binary.BigEndian.Uint16(body[i:])
		i += 2
	}
	if i > len(body) {
		return 0, nil, errMQTTMalformed
	}
	return id, body[i:], nil
}

// mqttConn is one client connection of the load, with its input buffer.
type mqttConn struct {
	nc   *net.TCPConn
	buf  []byte
	r, w int // buf[r:w] is read and not yet split
}

// fill reads what the connection has (blocking until something comes).
func (c *mqttConn) fill() error {
	if c.r > 0 {
		c.w = copy(c.buf, c.buf[c.r:c.w])
		c.r = 0
	}
	if c.w == len(c.buf) {
		c.buf = append(c.buf, make([]byte, len(c.buf))...)
	}
	n, err := c.nc.Read(c.buf[c.w:])
	c.w += n
	if n > 0 {
		return nil
	}
	return err
}

// packet returns the next complete packet already read (ok false: none;
// fill). The body stays valid until the next fill.
func (c *mqttConn) packet() (h byte, body []byte, ok bool, err error) {
	h, body, n, err := mqttSplit(c.buf[c.r:c.w])
	if err != nil || n == 0 {
		return 0, nil, false, err
	}
	c.r += n
	return h, body, true, nil
}

// next returns the next packet, reading as needed.
func (c *mqttConn) next() (byte, []byte, error) {
	for {
		h, body, ok, err := c.packet()
		if err != nil {
			return 0, nil, err
		}
		if ok {
			return h, body, nil
		}
		if err := c.fill(); err != nil {
			return 0, nil, err
		}
	}
}

// mqttDialOptions describe one load client.
type mqttDialOptions struct {
	clientID string
	filter   string // subscribe to it when set
	qos      byte   // the subscription's QoS
	bufSize  int    // input buffer (4 KiB when 0)
	sndBuf   int    // SO_SNDBUF when positive (else the kernel's autotuning)
}

// mqttDial connects, waits for a successful CONNACK and, with a filter,
// subscribes and checks that the broker granted the QoS asked for.
func mqttDial(addr string, opt mqttDialOptions, timeout time.Duration) (*mqttConn, error) {
	d := net.Dialer{Timeout: timeout}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	size := opt.bufSize
	if size <= 0 {
		size = 4 << 10
	}
	c := &mqttConn{nc: nc.(*net.TCPConn), buf: make([]byte, size)}
	if opt.sndBuf > 0 {
		if err := c.nc.SetWriteBuffer(opt.sndBuf); err != nil {
			nc.Close()
			return nil, err
		}
	}
	if err := c.handshake(opt, timeout); err != nil {
		nc.Close()
		return nil, fmt.Errorf("%s: %w", opt.clientID, err)
	}
	return c, nil
}

func (c *mqttConn) handshake(opt mqttDialOptions, timeout time.Duration) error {
	c.nc.SetDeadline(time.Now().Add(timeout))
	defer c.nc.SetDeadline(time.Time{})
	if _, err := c.nc.Write(mqttAppendConnect(nil, opt.clientID, mqttKeepalive)); err != nil {
		return err
	}
	h, body, err := c.next()
	if err != nil {
		return fmt.Errorf("waiting for CONNACK: %w", err)
	}
	if h != mqttCONNACK || len(body) != 2 || body[1] != 0 {
		return fmt.Errorf("CONNACK expected, got %#x %x", h, body)
	}
	if opt.filter == "" {
		return nil
	}
	if _, err := c.nc.Write(mqttAppendSubscribe(nil, 1, opt.filter, opt.qos)); err != nil {
		return err
	}
	h, body, err = c.next()
	if err != nil {
		return fmt.Errorf("waiting for SUBACK: %w", err)
	}
	if h != mqttSUBACK || len(body) != 3 || body[0] != 0 || body[1] != 1 {
		return fmt.Errorf("SUBACK expected, got %#x %x", h, body)
	}
	if body[2] != opt.qos {
		return fmt.Errorf("subscription granted QoS %#x, asked %d", body[2], opt.qos)
	}
	return nil
}

// close sends DISCONNECT (best effort, without waiting) and closes.
func (c *mqttConn) close() {
	c.nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	c.nc.Write([]byte{mqttDISCONNECT, 0})
	c.nc.Close()
}

// mqttDialMany opens n clients, parallel at a time; opt(i) describes the
// i-th. On error, the ones opened are closed.
func mqttDialMany(addr string, n, parallel int, opt func(i int) mqttDialOptions) ([]*mqttConn, error) {
	conns := make([]*mqttConn, n)
	errs := make([]error, n)
	sem := make(chan struct{}, max(parallel, 1))
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			conns[i], errs[i] = mqttDial(addr, opt(i), 10*time.Second)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		mqttCloseAll(conns)
		return nil, err
	}
	return conns, nil
}

func mqttCloseAll(conns []*mqttConn) {
	for _, c := range conns {
		if c != nil {
			c.close()
		}
	}
}

// mqttClientID names the i-th client of a role in a scenario.
func mqttClientID(role string, i int) string { return "bench-" + role + "-" + strconv.Itoa(i) }

// mqttBits is a growable bit set of sequence numbers.
type mqttBits []uint64

// set sets bit i and reports whether it was set already.
func (b *mqttBits) set(i uint64) bool {
	w := int(i / 64)
	if w >= len(*b) {
		*b = append(*b, make([]uint64, w+1-len(*b)+len(*b)/2)...)
	}
	m := uint64(1) << (i % 64)
	was := (*b)[w]&m != 0
	(*b)[w] |= m
	return was
}

func (b mqttBits) has(i uint64) bool {
	w := int(i / 64)
	return w < len(b) && b[w]&(1<<(i%64)) != 0
}

// count is the number of bits set.
func (b mqttBits) count() int64 {
	var n int64
	for _, w := range b {
		for ; w != 0; w &= w - 1 {
			n++
		}
	}
	return n
}

// missing counts the bits set in b and not in other.
func (b mqttBits) missing(other mqttBits) int64 {
	var n int64
	for i, w := range b {
		if i < len(other) {
			w &^= other[i]
		}
		for ; w != 0; w &= w - 1 {
			n++
		}
	}
	return n
}
