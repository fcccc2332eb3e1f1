module github.com/meerkat-net/meerkat/interop

go 1.26.0

require (
	github.com/coder/websocket v1.8.15
	github.com/gorilla/websocket v1.5.3
	github.com/meerkat-net/meerkat v0.0.0
)

require golang.org/x/sys v0.49.0 // indirect

replace github.com/meerkat-net/meerkat => ../
