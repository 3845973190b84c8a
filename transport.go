package pikkuredis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gomodule/redigo/redis"
)

// The store dials the TCP connection under each of its connections itself
// (through redigo's DialContextFunc; redigo still does TLS, AUTH and
// SELECT), for three reasons redigo gives no hook for:
//   - a connection that sat idle can be checked, with one non-blocking
//     peek at its socket, before a call is written on it: a server
//     timeout, a load balancer or CLIENT KILL may have closed it, and a
//     call written on it would fail;
//   - the bytes read on it can be counted, so that a connection on which
//     nothing at all arrives while replies are owed (a middlebox dropped
//     it silently) is told from one reading a large reply;
//   - the whole dial ends with its context: redigo bounds the TCP connect
//     by the context but not the TLS handshake (its own 10 s timeout), so
//     the socket is closed under the handshake when the context ends.
//
// A caller who gives their own redis.DialContextFunc or DialNetDial in
// WithDialOptions replaces this dial (their options come after the
// store's): their connections work as before but get none of the three.

// idleCheckAfter is how long a connection must have had nothing in flight
// before it is checked. The check is one syscall (about a microsecond, a
// few percent of a loopback round trip); back-to-back calls skip it, and
// no server or middlebox closes a connection idle for less.
const idleCheckAfter = time.Millisecond

// idlePingAfter is how long a connection of a caller's pool must have been
// idle before CheckIdleConn PINGs it. Redis's timeout is whole seconds (at
// least 1), and load balancers' idle timeouts are longer, so a connection
// idle for less was not closed by either.
const idlePingAfter = time.Second

// stallAfter is how long a lane's connection may read nothing at all while
// replies are owed before no further call is written on it (see
// lane.flushLocked). Calls already on it keep waiting for their replies,
// so a server that is merely slow (CLIENT PAUSE, DEBUG SLEEP, a long
// script) fails no call; the cost of a wrong guess is one more connection.
const stallAfter = 500 * time.Millisecond

// defaultKeepAlive is the TCP keep-alive period redigo would have used.
const defaultKeepAlive = 5 * time.Minute

// errIdleClosed is why a connection found closed while idle is dropped;
// no call sees it (they go out on a new connection).
var errIdleClosed = errors.New("redis connection lost: closed while idle")

// sock is the TCP connection under a connection the store dialled, as
// redigo (and TLS, when used) see it.
type sock struct {
	net.Conn
	raw  syscall.RawConn // nil when the connection has none
	read atomic.Uint64   // bytes read so far
	// first is the first byte written on the socket, plus one (0: none
	// yet): '*' for a RESP command, 0x16 for a TLS handshake (see plain).
	first atomic.Uint32
	// stale, set by the dial that made the connection before it is used
	// (sentinel.go), says when the server it leads to has stopped being
	// the master; nil when the dial cannot tell.
	stale func() bool
}

// superseded says whether the server s leads to is known to be no longer
// the master (the sentinels switched it): no call is written on it any
// more, since a write the demoted master acknowledges is lost when it is
// made a replica.
func (s *sock) superseded() bool {
	return s != nil && s.stale != nil && s.stale()
}

// errSuperseded closes a connection to a master the sentinels replaced.
var errSuperseded = errors.New("redis connection lost: the sentinels switched the master")

func newSock(nc net.Conn) *sock {
	s := &sock{Conn: nc}
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			s.raw = raw
		}
	}
	return s
}

func (s *sock) Read(p []byte) (int, error) {
	n, err := s.Conn.Read(p)
	if n > 0 {
		s.read.Add(uint64(n))
	}
	return n, err
}

func (s *sock) Write(p []byte) (int, error) {
	if len(p) > 0 && s.first.Load() == 0 {
		s.first.CompareAndSwap(0, uint32(p[0])+1)
	}
	return s.Conn.Write(p)
}

// plain says whether what redigo reads off s is the socket's own bytes,
// plaintext RESP, so that a reader of the store's own can read the
// replies (resp.go) once the dial is over. Under TLS the dial wrote a
// handshake record (0x16) first; a dial that wrote nothing (no AUTH, no
// SELECT) or a command ('*') is plaintext. nil (the caller's dial
// function) is not known to be.
func (s *sock) plain() bool {
	if s == nil {
		return false
	}
	f := s.first.Load()
	return f == 0 || f == '*'+1
}

// bytesRead is how many bytes have been read on s; 0 for no sock.
func (s *sock) bytesRead() uint64 {
	if s == nil {
		return 0
	}
	return s.read.Load()
}

// usable says whether an idle connection can take a call: its socket has
// nothing to read. Redis sends nothing unasked, so EOF, a reset or any
// byte waiting (an error Redis sent before closing, a TLS close_notify)
// means it is closed or about to be. Under TLS this looks at the TCP
// socket, so pending TLS records count as bytes: such a connection is
// replaced, which costs a dial, never a call. Where the socket cannot be
// reached, it says true, and the first call written finds out.
func (s *sock) usable() bool {
	if s == nil || s.raw == nil {
		return true
	}
	return peekIdle(s.raw)
}

// sockConn is a connection the store dialled: redigo's, with its socket.
// It keeps redigo's context and timeout support, which a pool uses.
type sockConn struct {
	redis.Conn
	s *sock
}

func (c *sockConn) DoContext(ctx context.Context, cmd string, args ...any) (any, error) {
	return redis.DoContext(c.Conn, ctx, cmd, args...)
}

func (c *sockConn) ReceiveContext(ctx context.Context) (any, error) {
	return redis.ReceiveContext(c.Conn, ctx)
}

func (c *sockConn) DoWithTimeout(d time.Duration, cmd string, args ...any) (any, error) {
	return redis.DoWithTimeout(c.Conn, d, cmd, args...)
}

func (c *sockConn) ReceiveWithTimeout(d time.Duration) (any, error) {
	return redis.ReceiveWithTimeout(c.Conn, d)
}

// unwrapSock splits a connection the store dialled into redigo's
// connection and its socket (nil for any other connection).
func unwrapSock(rc redis.Conn) (redis.Conn, *sock) {
	if sc, ok := rc.(*sockConn); ok {
		return sc.Conn, sc.s
	}
	return rc, nil
}

// dialSock dials one connection with redigo, its TCP connect done here:
// bounded by ctx and connectTimeout, and closed when ctx ends
// before the dial is over, which ends a TLS handshake redigo does not
// bound by ctx. opts are the store's defaults and the caller's options;
// the hook goes between them, so that a caller's own dial function wins.
//
// A dial that read nothing from the server (no TLS, no AUTH, no SELECT)
// ends with a PING, so that a server that does not speak plaintext RESP
// (a TLS port, which closes the connection at the first command) fails
// the dial, "connect to redis: ...", and not the first call, "redis
// connection lost". Any reply to it, an error included, will do. While it
// runs, the dial says in ctx's note (sentinel.go) what it waits on.
func dialSock(ctx context.Context, rawURL string, connectTimeout time.Duration, defaults, callers []redis.DialOption) (redis.Conn, error) {
	var s *sock
	var addr string
	stop := func() bool { return true }
	unnote := func() {}
	defer func() {
		// A dial its context cut short leaves its note, for the caller
		// who left to read (dialer, lane.left).
		if ctx.Err() == nil {
			unnote()
		}
	}()
	hook := redis.DialContextFunc(func(ctx context.Context, network, a string) (net.Conn, error) {
		addr = a
		undo := noteDial(ctx, "TCP connect to "+addr)
		d := net.Dialer{Timeout: connectTimeout, KeepAlive: defaultKeepAlive}
		nc, err := d.DialContext(ctx, network, addr)
		undo()
		if err != nil {
			return nil, err
		}
		s = newSock(nc)
		unnote = noteDialFunc(ctx, func() string { return s.waitsOn(addr) })
		stop = context.AfterFunc(ctx, func() { nc.Close() })
		return s, nil
	})
	opts := make([]redis.DialOption, 0, len(defaults)+1+len(callers))
	opts = append(append(append(opts, defaults...), hook), callers...)
	rc, err := redis.DialURLContext(ctx, rawURL, opts...)
	if err == nil && s != nil && s.bytesRead() == 0 {
		if _, perr := redis.DoContext(rc, ctx, "PING"); perr != nil {
			if e, ok := perr.(redis.Error); ok && retires(e) {
				// maxclients or protected mode's DENIED, sent as the
				// connection was accepted, which Redis then closes.
				rc.Close()
				rc, err = nil, e
			} else if !ok {
				rc.Close()
				rc = nil
				var ne net.Error
				if perr = ctxErr(ctx, perr); ctx.Err() != nil || (errors.As(perr, &ne) && ne.Timeout()) {
					err = fmt.Errorf("no answer from %s to PING: %w", addr, perr)
				} else if s.bytesRead() == 0 && (errors.Is(perr, io.EOF) || errors.Is(perr, io.ErrUnexpectedEOF) || errors.Is(perr, syscall.ECONNRESET)) {
					err = fmt.Errorf("PING %s: %w (a server that expects TLS closes the connection at the first plaintext command: for it, use a rediss:// URL)", addr, perr)
				} else {
					err = fmt.Errorf("PING %s: %w (is it a Redis server?)", addr, perr)
				}
			}
		}
	}
	if !stop() { // ctx ended during the dial: the socket is closed
		if rc != nil {
			rc.Close()
		}
		if err == nil {
			err = ctx.Err()
		}
		return nil, s.explain(addr, ctxErr(ctx, err))
	}
	if err != nil {
		return nil, s.explain(addr, err)
	}
	if s == nil { // the caller's own dial function was used
		return rc, nil
	}
	return &sockConn{Conn: rc, s: s}, nil
}

// waitsOn says what a dial on s to addr waits on, once connected.
func (s *sock) waitsOn(addr string) string {
	if s.first.Load() == tlsHandshake+1 && s.bytesRead() == 0 {
		return "no answer from " + addr + " to the TLS handshake (a server without TLS never answers one: for it, use a redis:// URL)"
	}
	return "no answer from " + addr + " to the dial (TLS handshake, AUTH, SELECT, PING)"
}

// explain adds to the error of a dial on s to addr what the dial waited
// on, when the server never answered it; nil s (no TCP connection, or the
// caller's dial function) adds nothing.
func (s *sock) explain(addr string, err error) error {
	if s == nil || s.bytesRead() > 0 || strings.Contains(err.Error(), addr) {
		return err
	}
	return fmt.Errorf("%s: %w", s.waitsOn(addr), err)
}

// tlsHandshake is the first byte of a TLS record that starts a handshake.
const tlsHandshake = 0x16

// withCancelOf returns ctx, ended also when other ends.
func withCancelOf(ctx, other context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(other, cancel)
	return ctx, func() { stop(); cancel() }
}

// DialURLContext dials a connection as redis.DialURLContext does (the
// redis:// and rediss:// URL forms, not redis+sentinel://; the same
// options), for the DialContext of a caller's *redis.Pool, with what the
// connections of a store opened from a URL get: the whole dial, TLS
// handshake included, ends with ctx (redigo bounds only the TCP connect
// by it), a dial that read nothing from the server ends with a PING (so
// that a TLS port fails the dial, saying to use rediss://), its errors
// read "connect to redis: ..." and match ErrConnection (but a URL it
// cannot use, ErrInvalidArgument), and CheckIdleConn can check the connection's socket instead of
// sending a PING. It dials the TCP connection itself, so the connect is
// bounded by ctx and DefaultConnectTimeout, and redis.DialConnectTimeout
// and redis.DialKeepAlive among opts have no effect (give ctx a deadline
// for a shorter connect); a redis.DialContextFunc or DialNetDial among
// opts replaces this dial, and the connection then gets neither.
//
//	pool := &redis.Pool{
//		DialContext: func(ctx context.Context) (redis.Conn, error) {
//			return pikkuredis.DialURLContext(ctx, url, redis.DialReadTimeout(10*time.Second))
//		},
//		TestOnBorrowContext: pikkuredis.CheckIdleConn,
//		...
//	}
func DialURLContext(ctx context.Context, rawURL string, opts ...redis.DialOption) (redis.Conn, error) {
	if err := checkURL(rawURL); err != nil {
		return nil, err
	}
	rc, err := dialSock(ctx, rawURL, DefaultConnectTimeout, nil, slices.Clip(opts))
	if err != nil {
		return nil, dialFailed(err)
	}
	return rc, nil
}

// CheckIdleConn is a TestOnBorrowContext for a caller's *redis.Pool
// (NewChannelStore, NewEventHubStore), so that a connection that a server
// timeout, a load balancer or CLIENT KILL closed while it sat in the pool
// is dropped by the pool instead of failing the call written on it. A
// connection from DialURLContext has its socket checked (one syscall, no
// round trip) when it has been idle for a millisecond or more; any other
// connection is PINGed, within ctx, when it has been idle for a second or
// more, which covers a server timeout (whole seconds) and a load
// balancer's idle timeout, not a CLIENT KILL of a connection used less
// than a second before.
//
//	pool := &redis.Pool{..., TestOnBorrowContext: pikkuredis.CheckIdleConn}
func CheckIdleConn(ctx context.Context, rc redis.Conn, idleSince time.Time) error {
	if _, s := unwrapSock(rc); s != nil {
		if s.superseded() {
			return errSuperseded
		}
		if time.Since(idleSince) >= idleCheckAfter && !s.usable() {
			return errIdleClosed
		}
		return nil
	}
	if time.Since(idleSince) < idlePingAfter {
		return nil
	}
	_, err := redis.DoContext(rc, ctx, "PING")
	return err
}
