package wsframe_test

import (
	"fmt"
	"strings"

	"github.com/meerkat-net/meerkat/internal/wsframe"
)

// A client frame as a server receives it: parse the header, judge it,
// unmask the payload and validate the text.
func ExampleReader() {
	// "Hello", masked, as in RFC 6455 section 5.7.
	in := []byte{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}
	r := wsframe.Reader{Server: true, MaxMessage: 1 << 20}

	h, ok, err := wsframe.ParseHeader(in)
	if err != nil || !ok {
		fmt.Println("need more bytes, or", err)
		return
	}
	if err := r.Frame(&h); err != nil {
		fmt.Println(err)
		return
	}
	payload := in[h.Size : h.Size+int(h.Length)]
	wsframe.Mask(h.Key, 0, payload)
	if err := r.Text(payload); err != nil {
		fmt.Println(err)
		return
	}
	op, _ := r.Message()
	if h.Fin {
		if err := r.End(); err != nil {
			fmt.Println(err)
			return
		}
	}
	fmt.Printf("opcode %d: %s\n", op, payload)
	// Output: opcode 1: Hello
}

// A protocol violation carries the close code to answer it with.
func ExampleError() {
	var r wsframe.Reader                               // a client
	h, _, _ := wsframe.ParseHeader([]byte{0x80, 0x00}) // a continuation with no message
	err := r.Frame(&h)
	fmt.Println(err)
	fmt.Println(err.(*wsframe.Error).Code)
	// Output:
	// websocket: continuation frame with no message started (close code 1002)
	// 1002
}

// Building a frame: header, then the payload masked with the same key.
func ExampleAppendHeader() {
	key := [4]byte{1, 2, 3, 4}
	payload := wsframe.AppendClose(nil, wsframe.CloseNormal, "bye")
	frame := wsframe.AppendHeader(nil, true, 0, wsframe.OpClose, len(payload), &key)
	wsframe.Mask(key, 0, payload)
	frame = append(frame, payload...)
	fmt.Printf("% x\n", frame)
	// Output: 88 85 01 02 03 04 02 ea 61 7d 64
}

// A server answers a browser's permessage-deflate offer.
func ExampleServerNegotiate() {
	params, response, ok := wsframe.ServerNegotiate("permessage-deflate; client_max_window_bits", wsframe.Config{})
	fmt.Println(ok, response)
	fmt.Printf("%+v\n", params)
	// Output:
	// true permessage-deflate; server_no_context_takeover; client_no_context_takeover
	// {ServerNoContextTakeover:true ClientNoContextTakeover:true ServerMaxWindowBits:0 ClientMaxWindowBits:0}
}

// Compressing a message on one side and inflating it on the other, with the
// codecs the negotiated parameters call for.
func ExampleCompressor() {
	params, response, _ := wsframe.ServerNegotiate(wsframe.ClientOffer(wsframe.Config{}), wsframe.Config{})
	clientParams, _, err := wsframe.ClientAccept(response, wsframe.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	send := params.NewCompressor(true, 0) // the server's
	receive := clientParams.NewDecompressor(false)
	defer send.Release()
	defer receive.Release()

	in := []byte(strings.Repeat(`{"event":"tick"} `, 100))
	payload := send.Compress(nil, in)
	msg, err := receive.Decompress(nil, payload, 1<<20)
	fmt.Println("under a tenth on the wire:", len(payload) < len(in)/10)
	fmt.Println("the same out:", string(msg) == string(in), err)
	// Output:
	// under a tenth on the wire: true
	// the same out: true <nil>
}
