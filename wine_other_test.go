//go:build !windows

package meerkat_test

func onWine() bool { return false }
