// Command http-restful-server is a small REST API over an in-memory store
// of items, with JSON bodies (encoding/json) and the usual status codes:
//
//	GET    /api/items       200, the list
//	POST   /api/items       201 with Location, the new item; 400 for bad JSON
//	GET    /api/items/ID    200, the item; 404 if there is none
//	PUT    /api/items/ID    200, the replaced item; 400, 404
//	DELETE /api/items/ID    204; 404
//
// Other methods get 405 with an Allow header, other paths 404. Handlers run
// one at a time on the Poll goroutine, so the store needs no lock.
//
// Try it with:
//
//	go run ./examples/http-restful-server &
//	curl -d '{"name":"milk"}' localhost:8000/api/items
//	curl -X PUT -d '{"name":"milk","done":true}' localhost:8000/api/items/1
//	curl localhost:8000/api/items
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strconv"

	"github.com/meerkat-net/meerkat"
)

// Item is what the API stores.
type Item struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
	Done bool   `json:"done"`
}

// store holds the items; only the Poll goroutine touches it.
type store struct {
	items  map[int]Item
	nextID int
}

func replyJSON(c *meerkat.Conn, status int, headers string, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = 500, []byte(`{"error":"cannot encode the reply"}`)
	}
	meerkat.HTTPReply(c, status, headers+"Content-Type: application/json\r\n", "%s\n", body)
}

func replyError(c *meerkat.Conn, status int, headers, format string, args ...any) {
	replyJSON(c, status, headers, map[string]string{"error": fmt.Sprintf(format, args...)})
}

// decodeItem reads an item from a request body, answering 400 if it cannot.
func decodeItem(c *meerkat.Conn, body []byte) (Item, bool) {
	var it Item
	if err := json.Unmarshal(body, &it); err != nil {
		replyError(c, 400, "", "bad JSON: %v", err)
		return it, false
	}
	if it.Name == "" {
		replyError(c, 400, "", "an item needs a name")
		return it, false
	}
	return it, true
}

func (s *store) handle(c *meerkat.Conn, ev meerkat.Event, data any) {
	if ev != meerkat.EvHTTPMsg {
		return
	}
	hm := data.(*meerkat.HTTPMessage)
	var caps [1][]byte
	switch {
	case meerkat.HTTPMatch("/api/items", hm.URI, nil):
		s.collection(c, hm)
	case meerkat.HTTPMatch("/api/items/*", hm.URI, caps[:]):
		id, err := strconv.Atoi(string(caps[0]))
		if _, ok := s.items[id]; err != nil || !ok {
			replyError(c, 404, "", "no item %q", caps[0])
			return
		}
		s.item(c, hm, id)
	default:
		replyError(c, 404, "", "no such resource")
	}
}

// collection answers /api/items.
func (s *store) collection(c *meerkat.Conn, hm *meerkat.HTTPMessage) {
	switch string(hm.Method) {
	case "GET":
		list := make([]Item, 0, len(s.items))
		for _, id := range slices.Sorted(maps.Keys(s.items)) {
			list = append(list, s.items[id])
		}
		replyJSON(c, 200, "", list)
	case "POST":
		it, ok := decodeItem(c, hm.Body)
		if !ok {
			return
		}
		s.nextID++
		it.ID = s.nextID
		s.items[it.ID] = it
		replyJSON(c, 201, fmt.Sprintf("Location: /api/items/%d\r\n", it.ID), it)
	default:
		replyError(c, 405, "Allow: GET, POST\r\n", "method %s not allowed", hm.Method)
	}
}

// item answers /api/items/ID for an existing id.
func (s *store) item(c *meerkat.Conn, hm *meerkat.HTTPMessage, id int) {
	switch string(hm.Method) {
	case "GET":
		replyJSON(c, 200, "", s.items[id])
	case "PUT":
		it, ok := decodeItem(c, hm.Body)
		if !ok {
			return
		}
		it.ID = id
		s.items[id] = it
		replyJSON(c, 200, "", it)
	case "DELETE":
		delete(s.items, id)
		meerkat.HTTPReply(c, 204, "", "")
	default:
		replyError(c, 405, "Allow: GET, PUT, DELETE\r\n", "method %s not allowed", hm.Method)
	}
}

// run serves on url until ctx is done; ready receives the listening address.
func run(ctx context.Context, url string, ready func(string)) error {
	mgr := meerkat.NewManager()
	defer mgr.Close()
	s := &store{items: map[int]Item{}}
	l, err := mgr.HTTPListen(url, s.handle)
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
	err := run(ctx, *url, func(addr string) { log.Printf("REST API on http://%s/api/items", addr) })
	if err != nil {
		log.Fatal(err)
	}
}
