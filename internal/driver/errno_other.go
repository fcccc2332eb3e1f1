//go:build !windows

package driver

// portableErrno leaves errors alone where the system's codes already are
// the POSIX ones (see errno_windows.go).
func portableErrno(err error) error { return err }
