package meerkat

import "strconv"

// Event is what a Handler is told about a connection. The data passed with
// each event is listed beside it.
type Event int

const (
	EvError        Event = iota // error: what went wrong; EvClose follows
	EvOpen                      // nil: the connection exists (always its first event)
	EvPoll                      // nil: once per Poll iteration
	EvResolve                   // netip.AddrPort: a host name was resolved (clients)
	EvConnect                   // nil: an outgoing connection is established
	EvAccept                    // nil: an incoming connection was accepted
	EvTLSHandshake              // nil: the TLS handshake succeeded
	EvRead                      // int: bytes just added to Recv
	EvWrite                     // int: bytes just taken from the send buffer
	EvClose                     // nil: the connection is gone (always its last event)
	EvHTTPHeaders               // *HTTPMessage: a request or response head is complete
	EvHTTPMsg                   // *HTTPMessage: a whole HTTP message
	EvWSOpen                    // *HTTPMessage: a WebSocket handshake completed
	EvWSMsg                     // *WSMessage: a WebSocket data message
	EvWSCtl                     // *WSMessage: a WebSocket control frame
	EvMQTTCmd                   // *MQTTMessage: any MQTT packet
	EvMQTTMsg                   // *MQTTMessage: an MQTT PUBLISH
	EvMQTTOpen                  // int: the CONNACK code
	EvSNTPTime                  // time.Time: the time an SNTP server gave
	EvWakeup                    // []byte: data passed to Manager.Wakeup
	EvHTTPChunk                 // *HTTPMessage: a piece of a streamed body (see HTTPStreamBody)
	EvUser                      // first event number free for applications
)

var eventNames = [...]string{
	EvError:        "EvError",
	EvOpen:         "EvOpen",
	EvPoll:         "EvPoll",
	EvResolve:      "EvResolve",
	EvConnect:      "EvConnect",
	EvAccept:       "EvAccept",
	EvTLSHandshake: "EvTLSHandshake",
	EvRead:         "EvRead",
	EvWrite:        "EvWrite",
	EvClose:        "EvClose",
	EvHTTPHeaders:  "EvHTTPHeaders",
	EvHTTPMsg:      "EvHTTPMsg",
	EvWSOpen:       "EvWSOpen",
	EvWSMsg:        "EvWSMsg",
	EvWSCtl:        "EvWSCtl",
	EvMQTTCmd:      "EvMQTTCmd",
	EvMQTTMsg:      "EvMQTTMsg",
	EvMQTTOpen:     "EvMQTTOpen",
	EvSNTPTime:     "EvSNTPTime",
	EvWakeup:       "EvWakeup",
	EvHTTPChunk:    "EvHTTPChunk",
	EvUser:         "EvUser",
}

// String returns the event's name, such as "EvRead", or "EvUser+N" for
// application events.
func (e Event) String() string {
	switch {
	case e >= 0 && e < EvUser:
		return eventNames[e]
	case e >= EvUser:
		if e == EvUser {
			return "EvUser"
		}
		return "EvUser+" + strconv.Itoa(int(e-EvUser))
	}
	return "Event(" + strconv.Itoa(int(e)) + ")"
}

// Handler receives a connection's events. Handlers run on the goroutine that
// calls Manager.Poll, one event at a time.
type Handler func(c *Conn, ev Event, data any)
