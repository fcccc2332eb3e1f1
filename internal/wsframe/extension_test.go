package wsframe

import (
	"bytes"
	"testing"
)

var (
	noTakeover = Config{}
	takeover   = Config{ContextTakeover: true}
)

// TestServerNegotiate: the server accepts the first permessage-deflate offer
// it can honour (RFC 7692 sections 5 and 7), answers with the parameters
// the RFC requires, and declines malformed offers and offers that limit its
// window, without failing.
func TestServerNegotiate(t *testing.T) {
	const both = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	for _, tc := range []struct {
		name   string
		offers string
		cfg    Config
		want   string // response, "" for declined
		params Params
	}{
		{"plain offer", "permessage-deflate", noTakeover, both, Params{ServerNoContextTakeover: true, ClientNoContextTakeover: true}},
		{"plain offer, takeover", "permessage-deflate", takeover, "permessage-deflate", Params{}},
		{"client asks no server takeover", "permessage-deflate; server_no_context_takeover", takeover,
			"permessage-deflate; server_no_context_takeover", Params{ServerNoContextTakeover: true}},
		{"client announces no takeover", "permessage-deflate; client_no_context_takeover", takeover,
			"permessage-deflate; client_no_context_takeover", Params{ClientNoContextTakeover: true}},
		{"gorilla's offer", "permessage-deflate; server_no_context_takeover; client_no_context_takeover", takeover, both,
			Params{ServerNoContextTakeover: true, ClientNoContextTakeover: true}},
		{"browser offer", "permessage-deflate; client_max_window_bits", noTakeover, both,
			Params{ServerNoContextTakeover: true, ClientNoContextTakeover: true}},
		{"browser offer, takeover", "permessage-deflate; client_max_window_bits", takeover, "permessage-deflate", Params{}},
		{"client window hint, takeover", "permessage-deflate; client_max_window_bits=10", takeover,
			"permessage-deflate; client_max_window_bits=10", Params{ClientMaxWindowBits: 10}},
		{"client window hint, no takeover", "permessage-deflate; client_max_window_bits=10", noTakeover, both,
			Params{ServerNoContextTakeover: true, ClientNoContextTakeover: true}},
		{"server window 15", "permessage-deflate; server_max_window_bits=15", takeover,
			"permessage-deflate; server_max_window_bits=15", Params{ServerMaxWindowBits: 15}},
		{"quoted value", `permessage-deflate; client_max_window_bits="12"`, takeover,
			"permessage-deflate; client_max_window_bits=12", Params{ClientMaxWindowBits: 12}},
		{"escaped quoted value", `permessage-deflate; client_max_window_bits="1\2"`, takeover,
			"permessage-deflate; client_max_window_bits=12", Params{ClientMaxWindowBits: 12}},
		{"whitespace", "  permessage-deflate\t;  client_max_window_bits = 9 ;server_no_context_takeover  ", takeover,
			"permessage-deflate; server_no_context_takeover; client_max_window_bits=9", Params{ServerNoContextTakeover: true, ClientMaxWindowBits: 9}},
		{"case-insensitive names", "PerMessage-Deflate; Server_No_Context_Takeover", takeover,
			"permessage-deflate; server_no_context_takeover", Params{ServerNoContextTakeover: true}},
		{"empty list elements", " , ,permessage-deflate,, ", takeover, "permessage-deflate", Params{}},

		// RFC 7692 section 7.1.3 (and 5.2): the first offer limits the
		// server's window, which we cannot do, so the fallback is taken.
		{"RFC 7.1.3 fallback", "permessage-deflate; client_max_window_bits; server_max_window_bits=10, permessage-deflate; client_max_window_bits",
			noTakeover, both, Params{ServerNoContextTakeover: true, ClientNoContextTakeover: true}},
		{"RFC 5.2 fallback", "permessage-deflate; server_max_window_bits=10, permessage-deflate", takeover, "permessage-deflate", Params{}},
		{"other extensions first", "x-webkit-deflate-frame, foo; bar=baz, permessage-deflate", takeover, "permessage-deflate", Params{}},
		{"malformed first, quoted comma", `foo; bar="a,b", permessage-deflate`, takeover, "permessage-deflate", Params{}},
		{"unknown param first", "permessage-deflate; foo, permessage-deflate; server_no_context_takeover", takeover,
			"permessage-deflate; server_no_context_takeover", Params{ServerNoContextTakeover: true}},

		{"no offer", "", noTakeover, "", Params{}},
		{"other extension only", "x-webkit-deflate-frame", noTakeover, "", Params{}},
		{"unknown param", "permessage-deflate; foo", noTakeover, "", Params{}},
		{"unknown param with value", "permessage-deflate; foo=1", noTakeover, "", Params{}},
		{"duplicate param", "permessage-deflate; server_no_context_takeover; server_no_context_takeover", noTakeover, "", Params{}},
		{"duplicate window bits", "permessage-deflate; client_max_window_bits=10; client_max_window_bits", noTakeover, "", Params{}},
		{"server window 10", "permessage-deflate; server_max_window_bits=10", noTakeover, "", Params{}},
		{"server window 8", "permessage-deflate; server_max_window_bits=8", noTakeover, "", Params{}},
		{"server window 7", "permessage-deflate; server_max_window_bits=7", noTakeover, "", Params{}},
		{"server window 16", "permessage-deflate; server_max_window_bits=16", noTakeover, "", Params{}},
		{"server window 010", "permessage-deflate; server_max_window_bits=010", noTakeover, "", Params{}},
		{"server window 015", "permessage-deflate; server_max_window_bits=015", noTakeover, "", Params{}},
		{"server window without value", "permessage-deflate; server_max_window_bits", noTakeover, "", Params{}},
		{"client window 7", "permessage-deflate; client_max_window_bits=7", noTakeover, "", Params{}},
		{"client window 16", "permessage-deflate; client_max_window_bits=16", noTakeover, "", Params{}},
		{"client window 08", "permessage-deflate; client_max_window_bits=08", noTakeover, "", Params{}},
		{"client window +9", "permessage-deflate; client_max_window_bits=+9", noTakeover, "", Params{}},
		{"client window empty quoted", `permessage-deflate; client_max_window_bits=""`, noTakeover, "", Params{}},
		{"no_context_takeover with value", "permessage-deflate; client_no_context_takeover=1", noTakeover, "", Params{}},
		{"unterminated quote", `permessage-deflate; client_max_window_bits="10`, noTakeover, "", Params{}},
		{"quoted non-token", `permessage-deflate; client_max_window_bits="1 0"`, noTakeover, "", Params{}},
		{"empty param", "permessage-deflate;", noTakeover, "", Params{}},
		{"missing semicolon", "permessage-deflate server_no_context_takeover", noTakeover, "", Params{}},
		{"missing value", "permessage-deflate; client_max_window_bits=", noTakeover, "", Params{}},
		{"control character", "permessage-deflate;\x01", noTakeover, "", Params{}},
	} {
		p, resp, ok := ServerNegotiate(tc.offers, tc.cfg)
		if ok != (tc.want != "") || resp != tc.want || p != tc.params {
			t.Errorf("%s: %+v %q %v; want %+v %q", tc.name, p, resp, ok, tc.params, tc.want)
		}
	}
}

// TestClientAccept: the client takes a response that answers its offer as
// RFC 7692 allows and fails on anything else.
func TestClientAccept(t *testing.T) {
	if got := ClientOffer(noTakeover); got != "permessage-deflate; server_no_context_takeover; client_no_context_takeover" {
		t.Errorf("offer without takeover: %q", got)
	}
	if got := ClientOffer(takeover); got != "permessage-deflate" {
		t.Errorf("offer with takeover: %q", got)
	}
	for _, tc := range []struct {
		name     string
		response string
		cfg      Config
		ok       bool
		err      bool
		params   Params
	}{
		{"none", "", noTakeover, false, false, Params{}},
		{"blank", "  ", takeover, false, false, Params{}},
		{"both granted", "permessage-deflate; server_no_context_takeover; client_no_context_takeover", noTakeover, true, false,
			Params{ServerNoContextTakeover: true, ClientNoContextTakeover: true}},
		{"client no takeover implied", "permessage-deflate; server_no_context_takeover", noTakeover, true, false,
			Params{ServerNoContextTakeover: true, ClientNoContextTakeover: true}},
		{"takeover", "permessage-deflate", takeover, true, false, Params{}},
		{"server imposes no takeover", "permessage-deflate; server_no_context_takeover; client_no_context_takeover", takeover, true, false,
			Params{ServerNoContextTakeover: true, ClientNoContextTakeover: true}},
		{"server window stated", "permessage-deflate; server_max_window_bits=10", takeover, true, false, Params{ServerMaxWindowBits: 10}},
		{"server window quoted", `permessage-deflate; server_max_window_bits="8"`, takeover, true, false, Params{ServerMaxWindowBits: 8}},

		{"no server takeover not granted", "permessage-deflate", noTakeover, false, true, Params{}},
		{"client window not offered", "permessage-deflate; client_max_window_bits=15", takeover, false, true, Params{}},
		{"client window without value", "permessage-deflate; client_max_window_bits", takeover, false, true, Params{}},
		{"server window 7", "permessage-deflate; server_max_window_bits=7", takeover, false, true, Params{}},
		{"server window 16", "permessage-deflate; server_max_window_bits=16", takeover, false, true, Params{}},
		{"server window without value", "permessage-deflate; server_max_window_bits", takeover, false, true, Params{}},
		{"unknown param", "permessage-deflate; foo", takeover, false, true, Params{}},
		{"duplicate param", "permessage-deflate; server_no_context_takeover; server_no_context_takeover", noTakeover, false, true, Params{}},
		{"value on a flag", "permessage-deflate; server_no_context_takeover=1", noTakeover, false, true, Params{}},
		{"extension not offered", "x-webkit-deflate-frame", takeover, false, true, Params{}},
		{"two extensions", "permessage-deflate, permessage-deflate", takeover, false, true, Params{}},
		{"malformed", "permessage-deflate;", takeover, false, true, Params{}},
	} {
		p, ok, err := ClientAccept(tc.response, tc.cfg)
		if ok != tc.ok || (err != nil) != tc.err || p != tc.params {
			t.Errorf("%s: %+v %v %v; want %+v %v error %v", tc.name, p, ok, err, tc.params, tc.ok, tc.err)
		}
		if err != nil && codeOf(err) != 1002 {
			t.Errorf("%s: %v is not a 1002 *Error", tc.name, err)
		}
	}
}

// TestNegotiateEndToEnd: for every pair of client and server policies, the
// client's offer is accepted, the server's answer is accepted by the
// client, both sides agree on the parameters, and the codecs the
// parameters make carry messages both ways.
func TestNegotiateEndToEnd(t *testing.T) {
	msgs := testMessages(40)
	for _, ccfg := range []Config{noTakeover, takeover} {
		for _, scfg := range []Config{noTakeover, takeover} {
			sp, resp, ok := ServerNegotiate(ClientOffer(ccfg), scfg)
			if !ok {
				t.Fatalf("client %+v, server %+v: offer declined", ccfg, scfg)
			}
			cp, ok, err := ClientAccept(resp, ccfg)
			if !ok || err != nil || cp != sp {
				t.Fatalf("client %+v, server %+v: response %q: %+v %v %v, server has %+v", ccfg, scfg, resp, cp, ok, err, sp)
			}
			wantTakeover := ccfg.ContextTakeover && scfg.ContextTakeover
			if sp.ServerNoContextTakeover == wantTakeover || sp.ClientNoContextTakeover == wantTakeover {
				t.Errorf("client %+v, server %+v: %+v", ccfg, scfg, sp)
			}
			for _, dir := range []struct {
				c *Compressor
				d *Decompressor
			}{
				{sp.NewCompressor(true, 0), cp.NewDecompressor(false)},
				{cp.NewCompressor(false, 0), sp.NewDecompressor(true)},
			} {
				for i, m := range msgs {
					out, err := dir.d.Decompress(nil, dir.c.Compress(nil, m), 0)
					if err != nil || !bytes.Equal(out, m) {
						t.Fatalf("client %+v, server %+v, message %d: %v", ccfg, scfg, i, err)
					}
				}
				dir.c.Release()
				dir.d.Release()
			}
		}
	}
}

// TestParseExtensions pins the list grammar: elements, parameters, quoted
// values, and recovery after a malformed element.
func TestParseExtensions(t *testing.T) {
	got := parseExtensions(`a; x=1; y="q\"z", b , c;d, e f, g`)
	want := []extension{
		{name: "a", params: []extParam{{"x", "1", true}}, malformed: true}, // q"z is not a token
		{name: "b"},
		{name: "c", params: []extParam{{"d", "", false}}},
		{name: "e", malformed: true},
		{name: "g"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d elements: %+v", len(got), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.name != w.name || g.malformed != w.malformed || len(g.params) != len(w.params) {
			t.Errorf("element %d: %+v, want %+v", i, g, w)
			continue
		}
		for j := range w.params {
			if g.params[j] != w.params[j] {
				t.Errorf("element %d param %d: %+v, want %+v", i, j, g.params[j], w.params[j])
			}
		}
	}
}
