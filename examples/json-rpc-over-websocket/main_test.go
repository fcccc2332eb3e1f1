package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/meerkat-net/meerkat"
)

// TestRPC sends requests through a Meerkat WebSocket client and checks each
// answer: results, batches, notifications (no answer) and the error codes.
func TestRPC(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrs := make(chan string, 1)
	go run(ctx, "http://127.0.0.1:0", func(a string) { addrs <- a })
	addr := <-addrs

	cases := []struct{ req, want string }{
		{`{"jsonrpc":"2.0","id":1,"method":"sum","params":[1,2,3.5]}`, `{"jsonrpc":"2.0","id":1,"result":6.5}`},
		{`{"jsonrpc":"2.0","id":"x","method":"multiply","params":[2,21]}`, `{"jsonrpc":"2.0","id":"x","result":42}`},
		{`{"jsonrpc":"2.0","method":"sum","params":[1]}`, ``}, // a notification: no answer
		{`{"jsonrpc":"2.0","id":2,"method":"echo","params":{"a":[1,"b"]}}`, `{"jsonrpc":"2.0","id":2,"result":{"a":[1,"b"]}}`},
		{`{"jsonrpc":"2.0","id":3,"method":"nope"}`, `{"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"method not found: nope"}}`},
		{`{"jsonrpc":"2.0","id":4,"method":"sum","params":"x"}`, `{"jsonrpc":"2.0","id":4,"error":{"code":-32602,"message":"params must be an array of numbers"}}`},
		{`{"jsonrpc":`, `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}`},
		{`{"id":5,"method":"sum"}`, `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"invalid request"}}`},
		{`[]`, `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"empty batch"}}`},
		{`[{"jsonrpc":"2.0","id":6,"method":"sum","params":[1,1]},{"jsonrpc":"2.0","method":"sum","params":[]},{"jsonrpc":"2.0","id":7,"method":"multiply","params":[3,3]}]`,
			`[{"jsonrpc":"2.0","id":6,"result":2},{"jsonrpc":"2.0","id":7,"result":9}]`},
	}
	var wants []string
	for _, c := range cases {
		if c.want != "" {
			wants = append(wants, c.want)
		}
	}
	m := meerkat.NewManager()
	defer m.Close()
	var got []string
	closed := false
	_, err := m.WSConnect("ws://"+addr+"/rpc", func(c *meerkat.Conn, ev meerkat.Event, data any) {
		switch ev {
		case meerkat.EvWSOpen:
			for _, cs := range cases {
				meerkat.WSSend(c, []byte(cs.req), meerkat.WSOpText)
			}
		case meerkat.EvWSMsg:
			got = append(got, string(data.(*meerkat.WSMessage).Data))
			if len(got) == len(wants) {
				meerkat.WSClose(c, meerkat.WSCloseNormal, "")
			}
		case meerkat.EvClose:
			closed = true
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); !closed && time.Since(start) < 10*time.Second; {
		m.Poll(50 * time.Millisecond)
	}
	if len(got) != len(wants) {
		t.Fatalf("got %d answers, want %d: %q", len(got), len(wants), got)
	}
	for i := range wants {
		var a, b any
		json.Unmarshal([]byte(got[i]), &a)
		json.Unmarshal([]byte(wants[i]), &b)
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if string(ja) != string(jb) {
			t.Errorf("answer %d: %s, want %s", i, got[i], wants[i])
		}
	}
}
