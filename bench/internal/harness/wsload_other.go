//go:build !linux

package harness

import (
	"errors"
	"sync/atomic"
	"time"
)

const wsEpollAvailable = false

func wsRunEpoll([]*wsClient, *atomic.Bool, *atomic.Bool, time.Time) (int64, error) {
	return 0, errors.New("the epoll load needs Linux")
}
