module github.com/meerkat-net/meerkat

go 1.26.0

require golang.org/x/sys v0.49.0
