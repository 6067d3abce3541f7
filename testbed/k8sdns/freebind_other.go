//go:build !linux

package k8sdns

import "syscall"

// freeBind does nothing outside Linux: the address must be on an interface before Serve binds it.
func freeBind(_, _ string, _ syscall.RawConn) error { return nil }
