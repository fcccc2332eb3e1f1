package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/meerkat-net/meerkat"
)

const mqttHelp = `Usage:
  meerkat mqtt broker [--listen URL]... [--cert FILE --key FILE]
  meerkat mqtt pub URL -t TOPIC -m MESSAGE [-q QOS] [-r] [flags]
  meerkat mqtt sub URL -t FILTER [-t FILTER]... [-q QOS] [-C COUNT] [flags]

broker runs an MQTT 3.1.1 and 5 broker (default mqtt://localhost:1883; an
mqtts:// listener without --cert/--key gets a self-signed certificate).
pub publishes one message and exits once it is acknowledged (QoS 1 and 2)
or sent (QoS 0). sub prints "TOPIC PAYLOAD" per message received, until
interrupted or after COUNT messages. URL is mqtt://HOST[:PORT] or
mqtts://HOST[:PORT] (mqtt:// is assumed without a scheme).

Flags:
`

func runMQTT(ctx context.Context, args []string, std stdio) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		out := std.err
		if len(args) > 0 {
			out = std.out
		}
		fmt.Fprint(out, mqttHelp)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	switch args[0] {
	case "broker":
		return runMQTTBroker(ctx, args[1:], std)
	case "pub", "sub":
		return runMQTTClient(ctx, args[0], args[1:], std)
	}
	fmt.Fprintf(std.err, "meerkat mqtt: unknown command %q\n\n%s", args[0], mqttHelp)
	return exitUsage
}

// mqttListenList collects repeated --listen flags.
type mqttListenList []string

func (l *mqttListenList) String() string { return strings.Join(*l, " ") }
func (l *mqttListenList) Set(v string) error {
	if !strings.HasPrefix(v, "mqtt://") && !strings.HasPrefix(v, "mqtts://") {
		return fmt.Errorf("want mqtt://HOST:PORT or mqtts://HOST:PORT, got %q", v)
	}
	*l = append(*l, v)
	return nil
}

func runMQTTBroker(ctx context.Context, args []string, std stdio) int {
	fs := flag.NewFlagSet("meerkat mqtt broker", flag.ContinueOnError)
	fs.SetOutput(std.err)
	var listen mqttListenList
	fs.Var(&listen, "listen", "listen on `URL` (repeatable; default mqtt://localhost:1883)")
	certFile := fs.String("cert", "", "TLS certificate `FILE` (PEM) for mqtts:// listeners")
	keyFile := fs.String("key", "", "TLS private key `FILE` (PEM) for mqtts:// listeners")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), mqttHelp)
		fs.PrintDefaults()
	}
	pos, err := parseFlags(fs, args)
	if err == flag.ErrHelp {
		fs.SetOutput(std.out)
		fs.Usage()
		return exitOK
	}
	if err != nil {
		return exitUsage
	}
	if len(pos) > 0 {
		fmt.Fprintf(std.err, "meerkat mqtt broker: unexpected argument %q\n", pos[0])
		return exitUsage
	}
	if (*certFile == "") != (*keyFile == "") {
		fmt.Fprintln(std.err, "meerkat mqtt broker: --cert and --key go together")
		return exitUsage
	}
	if len(listen) == 0 {
		listen = mqttListenList{"mqtt://localhost:1883"}
	}
	mgr := meerkat.NewManager()
	defer mgr.Close()
	for _, u := range listen {
		if strings.HasPrefix(u, "mqtts://") && mgr.TLSConfig == nil {
			cfg, fingerprint, err := serverTLS(*certFile, *keyFile)
			if err != nil {
				fmt.Fprintf(std.err, "meerkat mqtt broker: %v\n", err)
				return exitFailure
			}
			mgr.TLSConfig = cfg
			if fingerprint != "" {
				fmt.Fprintf(std.out, "meerkat: self-signed certificate, SHA-256 fingerprint %s\n", fingerprint)
			}
		}
	}
	for _, u := range listen {
		l, err := mgr.MQTTListen(u, nil)
		if err != nil {
			fmt.Fprintf(std.err, "meerkat mqtt broker: %v\n", err)
			return exitFailure
		}
		scheme, rest, _ := strings.Cut(u, "://")
		host, _, _ := strings.Cut(rest, ":")
		fmt.Fprintf(std.out, "meerkat: MQTT broker on %s://%s:%d\n", scheme, host, l.LocalAddr().Port())
	}
	if err := mgr.Run(ctx); err != nil && err != context.DeadlineExceeded {
		fmt.Fprintf(std.err, "meerkat mqtt broker: %v\n", err)
	}
	return exitOK
}

// stringList collects repeated string flags.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func runMQTTClient(ctx context.Context, cmd string, args []string, std stdio) int {
	fs := flag.NewFlagSet("meerkat mqtt "+cmd, flag.ContinueOnError)
	fs.SetOutput(std.err)
	var topics stringList
	fs.Var(&topics, "t", "`TOPIC` to publish on, or filter to subscribe to (repeatable for sub)")
	message := fs.String("m", "", "the `MESSAGE` to publish")
	qos := fs.Int("q", 0, "`QOS` 0, 1 or 2")
	retain := fs.Bool("r", false, "publish: retain the message")
	count := fs.Int("C", 0, "sub: exit after `COUNT` messages (0: never)")
	user := fs.String("u", "", "user `NAME`")
	pass := fs.String("P", "", "`PASSWORD`")
	id := fs.String("i", "", "client `ID` (default: a random one)")
	version := fs.Int("V", 4, "protocol `VERSION`: 4 (3.1.1) or 5")
	insecure := fs.Bool("insecure", false, "do not verify the broker's certificate (mqtts)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), mqttHelp)
		fs.PrintDefaults()
	}
	pos, err := parseFlags(fs, args)
	if err == flag.ErrHelp {
		fs.SetOutput(std.out)
		fs.Usage()
		return exitOK
	}
	if err != nil {
		return exitUsage
	}
	switch {
	case len(pos) != 1:
		fmt.Fprintf(std.err, "meerkat mqtt %s: want exactly one URL\n", cmd)
		return exitUsage
	case len(topics) == 0 || (cmd == "pub" && len(topics) > 1):
		fmt.Fprintf(std.err, "meerkat mqtt %s: want -t TOPIC (one for pub)\n", cmd)
		return exitUsage
	case *qos < 0 || *qos > 2:
		fmt.Fprintf(std.err, "meerkat mqtt %s: -q wants 0, 1 or 2\n", cmd)
		return exitUsage
	case *version != 4 && *version != 5:
		fmt.Fprintf(std.err, "meerkat mqtt %s: -V wants 4 or 5\n", cmd)
		return exitUsage
	}
	url := pos[0]
	if !strings.Contains(url, "://") {
		url = "mqtt://" + url
	}
	mgr := meerkat.NewManager()
	defer mgr.Close()
	mgr.TLSConfig = &tls.Config{InsecureSkipVerify: *insecure}
	var failure error
	closed, done, received := false, false, 0
	var pubID uint16
	opts := &meerkat.MQTTOptions{ClientID: *id, User: *user, Pass: *pass, Clean: true, Version: byte(*version)}
	_, err = mgr.MQTTConnect(url, opts, func(c *meerkat.Conn, ev meerkat.Event, data any) {
		switch ev {
		case meerkat.EvMQTTOpen:
			if cmd == "pub" {
				pubID = meerkat.MQTTPub(c, &meerkat.MQTTOptions{Topic: topics[0], Message: []byte(*message), QoS: byte(*qos), Retain: *retain})
				if *qos == 0 {
					done = true
					meerkat.MQTTDisconnect(c, nil)
				}
			} else {
				meerkat.MQTTSub(c, &meerkat.MQTTOptions{Topics: topics, QoS: byte(*qos)})
			}
		case meerkat.EvMQTTCmd:
			mm := data.(*meerkat.MQTTMessage)
			switch {
			case (mm.Cmd == meerkat.MQTTCmdPubAck || mm.Cmd == meerkat.MQTTCmdPubComp) && mm.ID == pubID && cmd == "pub":
				if mm.ReasonCode >= 0x80 {
					failure = fmt.Errorf("the broker refused the message (reason code 0x%02x)", mm.ReasonCode)
				}
				done = true
				meerkat.MQTTDisconnect(c, nil)
			case mm.Cmd == meerkat.MQTTCmdSubAck:
				for _, rc := range mm.Packet.ReasonCodes {
					if rc >= 0x80 {
						failure = fmt.Errorf("the broker refused a subscription (reason code 0x%02x)", rc)
						c.Close()
					}
				}
			}
		case meerkat.EvMQTTMsg:
			mm := data.(*meerkat.MQTTMessage)
			fmt.Fprintf(std.out, "%s %s\n", mm.Topic, mm.Data)
			if received++; *count > 0 && received >= *count {
				done = true
				meerkat.MQTTDisconnect(c, nil)
			}
		case meerkat.EvError:
			if failure == nil {
				failure = data.(error)
			}
		case meerkat.EvClose:
			closed = true
		}
	})
	if err != nil {
		fmt.Fprintf(std.err, "meerkat mqtt %s: %v\n", cmd, err)
		return exitUsage
	}
	for !closed {
		if ctx.Err() != nil {
			if cmd == "sub" && *count == 0 {
				return exitOK // interrupted, as expected
			}
			failure = errors.New("interrupted")
			break
		}
		mgr.Poll(100 * time.Millisecond)
	}
	if failure == nil && !done {
		failure = errors.New("the connection closed")
	}
	if failure != nil {
		fmt.Fprintf(std.err, "meerkat mqtt %s: %v\n", cmd, failure)
		return exitFailure
	}
	return exitOK
}
