// Command json-rpc-over-websocket is a JSON-RPC 2.0 server over WebSocket:
// each text message is a request (or a batch of them) and the response goes
// back as a text message. Methods: "sum" and "multiply" (an array of
// numbers), "echo" (any params), "time" (no params: RFC 3339 time).
// Notifications (no "id") get no response; errors use the codes of the
// JSON-RPC 2.0 specification.
//
// Try it with:
//
//	go run ./examples/json-rpc-over-websocket &
//	echo '{"jsonrpc":"2.0","id":1,"method":"sum","params":[1,2,3]}' | go run ./cmd/meerkat ws ws://localhost:8000/rpc
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"log"
	"os"
	"os/signal"
	"time"

	"github.com/meerkat-net/meerkat"
)

// JSON-RPC 2.0 error codes.
const (
	codeParseError     = -32700
	codeInvalidRequest = -32600
	codeMethodNotFound = -32601
	codeInvalidParams  = -32602
)

type request struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params,omitempty"`
}

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

type response struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  any             `json:"result,omitempty"`
	Error   *rpcError       `json:"error,omitempty"`
}

// call runs one method.
func call(method string, params json.RawMessage) (any, *rpcError) {
	switch method {
	case "sum", "multiply":
		var nums []float64
		if err := json.Unmarshal(params, &nums); err != nil {
			return nil, &rpcError{codeInvalidParams, "params must be an array of numbers"}
		}
		acc := 0.0
		if method == "multiply" {
			acc = 1
		}
		for _, n := range nums {
			if method == "sum" {
				acc += n
			} else {
				acc *= n
			}
		}
		return acc, nil
	case "echo":
		if params == nil {
			return nil, nil
		}
		return params, nil
	case "time":
		return time.Now().UTC().Format(time.RFC3339), nil
	}
	return nil, &rpcError{codeMethodNotFound, "method not found: " + method}
}

// handle answers one request; nil for a notification.
func handle(raw json.RawMessage) *response {
	var req request
	if err := json.Unmarshal(raw, &req); err != nil || req.JSONRPC != "2.0" || req.Method == "" {
		return &response{JSONRPC: "2.0", ID: json.RawMessage("null"), Error: &rpcError{codeInvalidRequest, "invalid request"}}
	}
	result, rerr := call(req.Method, req.Params)
	if req.ID == nil {
		return nil // a notification
	}
	if rerr == nil && result == nil {
		result = json.RawMessage("null")
	}
	return &response{JSONRPC: "2.0", ID: req.ID, Result: result, Error: rerr}
}

// process turns a message (a request or a batch) into the reply, nil if
// there is none.
func process(msg []byte) []byte {
	msg = bytes.TrimSpace(msg)
	var out any
	switch {
	case !json.Valid(msg):
		out = &response{JSONRPC: "2.0", ID: json.RawMessage("null"), Error: &rpcError{codeParseError, "parse error"}}
	case len(msg) > 0 && msg[0] == '[':
		var batch []json.RawMessage
		json.Unmarshal(msg, &batch)
		if len(batch) == 0 {
			out = &response{JSONRPC: "2.0", ID: json.RawMessage("null"), Error: &rpcError{codeInvalidRequest, "empty batch"}}
			break
		}
		var replies []*response
		for _, r := range batch {
			if resp := handle(r); resp != nil {
				replies = append(replies, resp)
			}
		}
		if len(replies) == 0 {
			return nil
		}
		out = replies
	default:
		resp := handle(msg)
		if resp == nil {
			return nil
		}
		out = resp
	}
	b, _ := json.Marshal(out)
	return b
}

func handler(c *meerkat.Conn, ev meerkat.Event, data any) {
	switch ev {
	case meerkat.EvHTTPMsg:
		hm := data.(*meerkat.HTTPMessage)
		if string(hm.URI) == "/rpc" {
			meerkat.WSUpgrade(c, hm, "")
		} else {
			meerkat.HTTPReply(c, 404, "", "JSON-RPC is at ws://HOST/rpc\n")
		}
	case meerkat.EvWSMsg:
		wm := data.(*meerkat.WSMessage)
		if wm.Op() != meerkat.WSOpText {
			meerkat.WSClose(c, meerkat.WSCloseUnsupported, "text messages only")
			return
		}
		if reply := process(wm.Data); reply != nil {
			meerkat.WSSend(c, reply, meerkat.WSOpText)
		}
	}
}

// run serves on url until ctx is done; ready receives the listening address.
func run(ctx context.Context, url string, ready func(string)) error {
	mgr := meerkat.NewManager()
	defer mgr.Close()
	mgr.WS.MaxMessage = 1 << 20 // requests are small: refuse big ones (1009)
	l, err := mgr.HTTPListen(url, handler)
	if err != nil {
		return err
	}
	ready(l.LocalAddr().String())
	return mgr.Run(ctx)
}

func main() {
	url := flag.String("listen", "http://0.0.0.0:8000", "URL to listen on")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *url, func(addr string) { log.Printf("JSON-RPC on ws://%s/rpc", addr) }); err != nil {
		log.Fatal(err)
	}
}
