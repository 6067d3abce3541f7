package k8sdns

import "syscall"

// freeBind sets IP_FREEBIND on a socket before it binds, so it may bind an IP no interface carries yet (the
// gateway IP of a CNI bridge that the first pod creates).
func freeBind(_, _ string, c syscall.RawConn) error {
	var err error
	if cerr := c.Control(func(fd uintptr) {
		err = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_FREEBIND, 1)
	}); cerr != nil {
		return cerr
	}
	return err
}
