//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package pikkuredis

import "syscall"

// peekIdle looks, without blocking and without consuming anything, at
// whether an idle socket has anything to read: only "nothing yet"
// (EAGAIN) means it is still open and in step.
func peekIdle(raw syscall.RawConn) bool {
	var n int
	var perr error
	var buf [1]byte
	err := raw.Read(func(fd uintptr) bool {
		n, _, perr = syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true // never wait for readiness: one look only
	})
	if err != nil {
		return false // closed on our side
	}
	switch {
	case n > 0: // bytes Redis sent unasked
		return false
	case perr == syscall.EAGAIN || perr == syscall.EWOULDBLOCK:
		return true
	case perr == syscall.EINTR:
		return true // no answer; let the call find out
	default: // n == 0: EOF; or a reset
		return false
	}
}
