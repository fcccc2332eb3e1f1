// Package interop tests Meerkat against other implementations: programs
// installed by .ci/run (openssl, gnutls-cli, curl, mosquitto, node's ws,
// Chromium) and Go modules (gorilla/websocket, paho, ...). It is a separate
// module so that the library's go.mod names no third-party module.
package interop
