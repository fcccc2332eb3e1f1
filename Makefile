# make test runs everything CI runs on Linux: formatting, vet, the race-enabled
# suites of the library, the interop module and the bench module, and the
# Windows and macOS cross-builds. make wine-test runs the Windows build's tests
# under Wine (CI runs both; see .ci/run).

GO ?= go
# The Windows build is tested with the portable driver (the only one there);
# these are the lifecycle tests the Mongoose reset bug calls for.
WINE_TESTS ?= .

.PHONY: test fmt vet race cross interop bench wine-test

test: fmt vet race cross interop bench

fmt:
	@out=$$(gofmt -l . ); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	GOOS=windows $(GO) vet ./...

race:
	$(GO) test -race -count=1 -timeout 20m ./...

cross:
	GOOS=windows GOARCH=amd64 $(GO) build ./...
	GOOS=darwin GOARCH=arm64 $(GO) build ./...
	GOOS=freebsd GOARCH=amd64 $(GO) build ./...

interop:
	cd interop && $(GO) vet ./... && $(GO) test -race -count=1 -timeout 20m ./...

bench:
	cd bench && $(GO) vet ./... && $(GO) test -count=1 -timeout 10m ./...

wine-test:
	MEERKAT_DRIVER=portable .ci/wine/wine-go-test.sh -count=1 -timeout 20m -run '$(WINE_TESTS)' .
