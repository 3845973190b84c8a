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
	// Control, not Read: Read fails once the read deadline of the last
	// reply has passed, which says nothing about the connection (an idle
	// connection keeps that deadline), and MSG_DONTWAIT never waits.
	err := raw.Control(func(fd uintptr) {
		n, _, perr = syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
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
