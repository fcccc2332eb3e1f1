// Command meerkat puts the Meerkat network library to work: a file and web
// server (with a WebSocket hub), an HTTP client and a WebSocket client.
//
//	meerkat serve [flags]            serve a directory over HTTP(S)
//	meerkat get URL [flags]          fetch a URL
//	meerkat post URL -d DATA [flags] send data to a URL
//	meerkat ws URL [flags]           talk to a WebSocket server
//	meerkat mqtt broker|pub|sub      an MQTT broker and client
//
// Run "meerkat help" or "meerkat COMMAND --help" for the details.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit statuses, as the help texts describe them.
const (
	exitOK        = 0
	exitFailure   = 1 // a transport or local error
	exitUsage     = 2 // bad command line
	exitHTTPError = 4 // the server answered with a status of 400 or more
)

// stdio is the command's standard streams, replaceable in tests.
type stdio struct {
	in       io.Reader
	out, err io.Writer
	errIsTTY bool // progress bars only for a terminal
}

const mainHelp = `meerkat - a small web server, HTTP and WebSocket client, MQTT broker and
client, built on the Meerkat library

Usage:
  meerkat serve [--listen URL]... [--root DIR] [--upload] [--auth USER:PASS]
                [--cors] [--ws PATH] [--cert FILE --key FILE] [-v LEVEL]
  meerkat get URL [-H 'Name: value']... [-o FILE] [-i] [--insecure]
  meerkat post URL -d DATA|@FILE [-H 'Name: value']... [-o FILE] [-i] [--insecure]
  meerkat ws URL [-b] [-H 'Name: value']... [--subprotocol P] [--insecure]
  meerkat mqtt broker [--listen URL]...
  meerkat mqtt pub URL -t TOPIC -m MESSAGE [-q QOS] [-r] [-u USER -P PASS] [-V 4|5]
  meerkat mqtt sub URL -t FILTER... [-q QOS] [-C COUNT] [-u USER -P PASS] [-V 4|5]
  meerkat help [COMMAND]

Commands:
  serve   Serve a directory over HTTP and HTTPS, with a directory listing.
          Without flags: the current directory on http://localhost:8000.
  get     Fetch a URL and write the body to standard output or a file.
  post    Send data to a URL with POST and write the response body.
  ws      Open a WebSocket: standard input lines go out as messages,
          messages received are written to standard output.
  mqtt    Run an MQTT broker, publish a message, or print subscribed ones.

Exit status:
  0  success
  1  a network, TLS or local error
  2  a bad command line
  4  the server answered with an HTTP status of 400 or more (get, post)
  (ws: 0 after a normal close, 1 otherwise; mqtt: 0, 1 or 2)

Run "meerkat COMMAND --help" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tty := false
	if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		tty = true
	}
	os.Exit(run(ctx, os.Args[1:], stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr, errIsTTY: tty}))
}

// run runs the command line args and returns the exit status.
func run(ctx context.Context, args []string, std stdio) int {
	if len(args) == 0 {
		fmt.Fprint(std.err, mainHelp)
		return exitUsage
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		return runServe(ctx, rest, std)
	case "get":
		return runFetch(ctx, "GET", rest, std)
	case "post":
		return runFetch(ctx, "POST", rest, std)
	case "ws":
		return runWS(ctx, rest, std)
	case "mqtt":
		return runMQTT(ctx, rest, std)
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 && rest[0] != "help" {
			return run(ctx, []string{rest[0], "--help"}, std)
		}
		fmt.Fprint(std.out, mainHelp)
		return exitOK
	default:
		fmt.Fprintf(std.err, "meerkat: unknown command %q\n\n%s", cmd, mainHelp)
		return exitUsage
	}
}
