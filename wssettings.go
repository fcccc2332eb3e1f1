package meerkat

import "time"

// WSSettings configure a Manager's WebSocket servers and clients. Zero
// values select the defaults.
type WSSettings struct {
	// MaxMessage bounds one received message (its payload after
	// reassembly and decompression): a larger one is refused from its
	// frame header with close code 1009 (DefaultWSMaxMessage when 0).
	MaxMessage int
	// CloseTimeout bounds the wait for the peer's close frame after ours;
	// then the connection is cut with ErrWSCloseTimeout
	// (DefaultWSCloseTimeout when 0).
	CloseTimeout time.Duration
	// PingInterval, when set, sends a ping on a connection that received
	// nothing for that long; a peer that then stays silent for PongTimeout
	// (PingInterval when 0) is cut with ErrWSPingTimeout.
	PingInterval time.Duration
	PongTimeout  time.Duration
	// Subprotocols are the subprotocols a server speaks, most preferred
	// first: WSUpgrade picks the first of them the client offers (unless
	// its extra headers name one).
	Subprotocols []string
	// Compression negotiates permessage-deflate (RFC 7692): servers accept
	// a client's offer, clients make one. Off by default.
	Compression bool
	// CompressionContextTakeover keeps the compression contexts from one
	// message to the next, in both directions: better ratios for similar
	// messages, at the price of a compressor kept per connection (1.2 MB
	// at BestSpeed, 0.8 MB at other levels, with compress/flate) and 32 KiB
	// of history for the decompressor. Without it (the default), both
	// sides are asked for no_context_takeover, flate state is pooled
	// between messages, and an idle connection holds none.
	CompressionContextTakeover bool
	// CompressionLevel is the compress/flate level (flate.BestSpeed when 0).
	CompressionLevel int
	// CompressionThreshold: messages shorter than this go uncompressed
	// (DefaultWSCompressionThreshold when 0; negative compresses all).
	CompressionThreshold int
}

// WebSocket defaults.
const (
	DefaultWSMaxMessage           = 16 << 20
	DefaultWSCloseTimeout         = 5 * time.Second
	DefaultWSCompressionThreshold = 128
)
