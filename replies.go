package pikkuredis

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Most error replies are Redis's answer to the call (WRONGTYPE, OOM,
// NOPERM, a script's own error): the connection is fine and the call is
// done. A few say instead that the connection itself is no good, and those
// are sorted out here, for every path (auto-pipelined lanes, the owned
// pool, a caller's pool):
//
//   - The connection talks to the wrong server: READONLY (a replica, such
//     as a master demoted by a failover while a DNS name or a proxy still
//     leads to it) and MASTERDOWN (a replica cut off from its master, with
//     replica-serve-stale-data no). Redis keeps such a connection open, and
//     every write on it would fail for as long as the process runs.
//   - Redis closes the connection right after the reply: the replies it
//     sends to a connection it accepts only to refuse (maxclients, which
//     says "ERR max number of clients reached", or "... + cluster
//     connections reached"; protected mode's DENIED), and its reply to a
//     command it cannot parse (ERR Protocol error, which sets
//     CLIENT_CLOSE_AFTER_REPLY). The next call written on it would fail
//     with EOF or "connection reset by peer", even with Redis ready again.
//
// Such a connection is retired: a lane fails it and the next call dials a
// new one; a pooled one is made unusable so that the pool drops it.
//
// Replies that close the connection without a reply (CLIENT KILL, the
// client output buffer or query buffer limits, the server's timeout, a
// SHUTDOWN) are lost connections, handled where reads fail.
//
// LOADING (the server restarted and is reading its dataset) is the right
// server, not yet ready: the connection is kept, and the call, which was
// not run, is sent again until the server is ready or the call's context
// ends (conn.waitLoading).

// replyKind is what an error reply means for its connection and its call.
type replyKind uint8

const (
	// answer: the server's answer to the call; the connection is fine.
	answer replyKind = iota
	// retireRefused: the connection must go, and the call was not run
	// (see notRun), so it can be sent again on a new connection.
	retireRefused
	// retireBadCall: the connection must go (Redis closes it), because of
	// the call itself: sending it again would do the same.
	retireBadCall
)

// classify says what an error from a connection means. Only Redis's own
// error replies (redis.Error, which redigo returns unwrapped) are
// classified; anything else is an I/O error or the caller's, handled where
// it arises.
func classify(err error) replyKind {
	e, ok := err.(redis.Error)
	if !ok {
		return answer
	}
	s := string(e)
	switch {
	// Each is a refusal before the command runs: Redis checks the role
	// (READONLY, MASTERDOWN) in processCommand, before calling the
	// command; a replica refuses our scripts without the no-writes flag
	// (all but get_channel_with_session.lua, which only reads and which a
	// replica runs) whole, before running a line; maxclients and DENIED are
	// written when the connection is accepted, before a byte of it is
	// read. So nothing of the call happened, and it may be sent again.
	case strings.HasPrefix(s, "READONLY "), strings.HasPrefix(s, "MASTERDOWN "),
		strings.HasPrefix(s, "ERR max number of clients"), strings.HasPrefix(s, "DENIED "):
		return retireRefused
	case strings.HasPrefix(s, "ERR Protocol error"):
		return retireBadCall
	}
	return answer
}

// isLoading says whether err is the LOADING refusal of a server still
// reading its dataset: the command was not run.
func isLoading(err error) bool {
	e, ok := err.(redis.Error)
	return ok && strings.HasPrefix(string(e), "LOADING ")
}

// retires says whether a reply means the connection it came on must go.
func retires(err error) bool { return classify(err) != answer }

// notRun is the error of the calls written on a lane connection behind a
// call whose reply retired it. They were not run: after maxclients, DENIED
// or a protocol error, Redis reads nothing more from the connection; after
// READONLY or MASTERDOWN, the server is a replica, which refuses every
// write, and the reads it may have answered can be sent again. So the
// store sends them again on a new connection (see conn.do).
type notRun struct{ reply redis.Error }

func (e *notRun) Error() string {
	return "redis connection retired before this call's reply, after the reply " + quoteReply(e.reply) + " to an earlier call"
}

// notSent is the error of a call queued on a lane connection that was
// lost before the call was handed to it: it was never written, so it is
// sent again on the next connection (conn.do), like a call not yet
// queued on any.
type notSent struct{ cause error }

func (e *notSent) Error() string {
	return "redis connection lost before this call was written: " + e.cause.Error()
}

func (e *notSent) Unwrap() error { return e.cause }

// retiredError is what a caller sees when the reply that retired the
// connection was to its own call, and sending it again did not help: a
// connection fault, said as one, and not as the call's (or its script's)
// own error. errors.As finds the reply itself as a redis.Error.
type retiredError struct{ reply redis.Error }

func (e *retiredError) Error() string {
	return "redis connection retired: " + string(e.reply)
}

func (e *retiredError) Unwrap() error { return e.reply }

// quoteReply keeps the first line of a reply short enough for an error
// message (protected mode's DENIED runs to a paragraph).
func quoteReply(e redis.Error) string {
	s := string(e)
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return `"` + s + `"`
}

// retryable says whether a call that failed with err was certainly not
// run, on a connection that is gone, so that sending it again once on a
// new connection is invisible to its caller.
func retryable(err error) bool {
	switch err.(type) {
	case *notRun, *notSent:
		return true
	}
	return classify(err) == retireRefused
}

// describe turns a retiring refusal into a retiredError, which says it is
// a fault of the connection (a wrong server, a full one); other errors are
// returned as they are.
func describe(err error) error {
	if e, ok := err.(redis.Error); ok && classify(e) == retireRefused {
		return &retiredError{reply: e}
	}
	return err
}

// isConnFault says whether err is a connection fault (describe's or a
// lane's, as conn.sendOn says each: ErrConnection), or a dial's failure,
// so that a script's name is not put before it.
func isConnFault(err error) bool {
	switch err.(type) {
	case *retiredError, *notRun, *notSent:
		return true
	}
	var dial *dialError
	return errors.Is(err, ErrConnection) || errors.As(err, &dial)
}

// retire makes a pooled connection unusable, so that a redigo pool drops
// it when it is closed instead of handing it to the next call: the pool
// keeps a connection unless its Err() is non-nil. A redigo connection given
// a context that has already ended marks itself failed (and closes its
// socket) before it writes anything. A connection that ignores contexts
// gets a read timeout it cannot meet; one that supports neither is told
// to QUIT, so that at least its next use fails rather than reaches the
// wrong server.
func retire(rc redis.Conn) {
	if rc.Err() != nil {
		return
	}
	ctx, cancel := context.WithDeadline(context.Background(), time.Unix(0, 1))
	cancel()
	redis.DoContext(rc, ctx, "PING")
	if rc.Err() != nil {
		return
	}
	redis.DoWithTimeout(rc, time.Nanosecond, "PING")
	if rc.Err() != nil {
		return
	}
	rc.Do("QUIT")
}
