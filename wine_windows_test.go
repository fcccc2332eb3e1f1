package meerkat_test

import "syscall"

// onWine reports whether the test runs under Wine rather than Windows:
// Wine's ntdll exports wine_get_version.
func onWine() bool {
	ntdll, err := syscall.LoadDLL("ntdll.dll")
	if err != nil {
		return false
	}
	_, err = ntdll.FindProc("wine_get_version")
	return err == nil
}
