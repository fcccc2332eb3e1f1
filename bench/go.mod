module github.com/meerkat-net/meerkat/bench

go 1.26.0

require github.com/meerkat-net/meerkat v0.0.0

require golang.org/x/sys v0.49.0 // indirect

replace github.com/meerkat-net/meerkat => ../
