//go:build !linux

package driver

import "errors"

var available = []string{"portable"}

func newDefault() (Driver, error) { return NewPortable(), nil }

func newEpoll() (Driver, error) {
	return nil, errors.New("driver: epoll is available on Linux only")
}
