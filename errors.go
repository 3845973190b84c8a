package pikkuredis

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/gomodule/redigo/redis"
)

// The error model. Every error a store returns is one of:
//   - the caller's: ErrInvalidArgument (nothing was written), or the
//     caller's context ending (errors.Is context.Canceled or
//     context.DeadlineExceeded);
//   - Redis's answer to the call: ErrChannelNotFound, ErrWrongType, a
//     script's or a command's error reply (errors.As finds it as a
//     redigo redis.Error: OOM, NOPERM, BUSY...), ErrEvictionPolicy from
//     Init;
//   - the connection's: ErrConnection, when the call could not be carried
//     to Redis and back;
//   - ErrClosed, after Close.
// Only the last two say nothing about the call itself, and only after
// ErrConnection (or a context that ended) may the call have run without
// its caller learning so.

var (
	// ErrConnection is matched, with errors.Is, by the error of every
	// call that failed because of its connection to Redis rather than
	// Redis's answer:
	//   - the dial failed (TCP connect, TLS handshake, the dial's PING,
	//     the sentinels, the cluster's slot map, maxclients); these errors
	//     read "connect to redis: ..." and the call was not sent;
	//   - the connection was lost before the call's reply came (EOF,
	//     reset, CLIENT KILL, a protocol error in the reply stream);
	//     these read "redis connection lost: ...";
	//   - no reply came within WithIOTimeout (an I/O timeout), which
	//     closes the connection;
	//   - the connection was retired by a refusal (READONLY, MASTERDOWN,
	//     maxclients, protected mode's DENIED) and the call, sent again
	//     on a new connection, was refused again: "redis connection
	//     retired: ..."; errors.As finds Redis's reply as a redis.Error.
	//
	// The store has already dropped the connection, and the next call
	// dials a new one: calling again is how to recover. A dial refused
	// for good reads "connect to redis: ..." too but is not ErrConnection,
	// since every new dial would fail the same way: Redis answered its
	// AUTH or SELECT with an error (a wrong password or user, a database
	// it does not have; errors.As finds the redis.Error), or TLS failed
	// to verify (an unknown CA, another host name, a server without TLS
	// under rediss://; errors.As finds the crypto/tls or crypto/x509
	// error).
	//
	// After a dial failure nothing was sent. Otherwise the call may or
	// may not have run, each script all or nothing, and every operation
	// is safe to call again, with the same arguments, to reach the same
	// state:
	// AddChannel (rewrites the same hash; createdAt becomes the later
	// time), RemoveChannels, SetUserSession, SetPikkuUserID, SetState,
	// ClearState, Subscribe, TouchChannels, SweepExpired, Repair,
	// SessionStore.Set and Clear, and every read. Unsubscribe is safe to
	// call again too, but its bool then says whether this call found the
	// subscription: false when the first one, unseen, removed it.
	// A call whose context ended mid-way is in the same position, and
	// its error is the context's instead.
	ErrConnection = errors.New("pikkuredis: redis connection failed")

	// ErrClosed is returned by every call on a store after its Close.
	ErrClosed = errors.New("pikkuredis: store is closed")

	// ErrChannelNotFound is returned (wrapped, naming the channel id) when
	// a channel hash is missing or has no channelId field.
	ErrChannelNotFound = errors.New("pikkuredis: channel not found")

	// ErrInvalidArgument is returned (wrapped, saying what is wrong) for
	// input the store refuses before sending anything, so that nothing
	// is written:
	//   - an empty channel id (at any index of a list), topic or Pikku
	//     user id;
	//   - opening data, a session or a state encoding/json cannot encode,
	//     or JSON nested deeper than 10,000 levels (which encoding/json,
	//     and so the store's reads, cannot read back);
	//   - TouchChannels on a store without WithChannelTTL;
	//   - SweepExpiredEvery with an interval that is not > 0;
	//   - Repair without RepairOptions.ChannelsKeptByChannelStore, or
	//     with a Cursor Repair did not return;
	//   - a store whose options cannot work, from Init and every call:
	//     WithShards below 0 or over 1024, or with a prefix holding '{' or
	//     '}'; a store on Redis Cluster whose prefix is not a hash tag and
	//     that is not sharded; an option that shapes only the connections
	//     a store dials itself (WithPipelineConns, WithoutAutoPipelining,
	//     WithPoolSize, WithConnectTimeout, WithDialOptions) given to
	//     New*Store over a caller's pool, which it would not change.
	//   - a URL Open*Store or DialURLContext cannot use (an unknown
	//     scheme, a bad host or port, a query it does not know).
	ErrInvalidArgument = errors.New("invalid argument")

	// ErrWrongType is returned (wrapped; the text names the key, and for
	// a script both types) when a key a call reads or writes holds
	// another Redis type than the layout's: another program wrote a
	// string where a topic set belongs, say. Redis never rolls a script
	// back, so every script checks all the keys it will write before its
	// first write: a call that returns ErrWrongType has written nothing,
	// but for two that work in steps: RemoveChannels removes the channels
	// before the one with the bad key (the error says how many), and
	// SweepExpired removes the other expired channels and leaves the one
	// with the bad key, lease included.
	ErrWrongType = errors.New("pikkuredis: a key holds the wrong type")
)

// connError is a connection fault: it reads as the fault itself and
// matches ErrConnection and the fault with errors.Is.
type connError struct{ err error }

func (e *connError) Error() string   { return e.err.Error() }
func (e *connError) Unwrap() []error { return []error{ErrConnection, e.err} }

// urlError is a URL refused before anything is dialled: it reads as
// before ("pikkuredis: invalid redis URL ...") and matches
// ErrInvalidArgument with errors.Is.
type urlError struct{ err error }

func (e *urlError) Error() string   { return "pikkuredis: " + e.err.Error() }
func (e *urlError) Unwrap() []error { return []error{ErrInvalidArgument, e.err} }

// dialError is a failed dial: it reads "connect to redis: ..." and
// matches its cause with errors.Is, and ErrConnection unless the server
// or TLS refused the dial for good (refused).
type dialError struct {
	err     error
	refused bool
}

func (e *dialError) Error() string { return "connect to redis: " + e.err.Error() }
func (e *dialError) Unwrap() []error {
	if e.refused {
		return []error{e.err}
	}
	return []error{ErrConnection, e.err}
}

// dialFailed makes err the error of a dial, once.
func dialFailed(err error) error {
	var d *dialError
	if errors.As(err, &d) {
		return err
	}
	return &dialError{err: err, refused: refusedForGood(err)}
}

// refusedForGood says whether a dial failed in a way that a new dial
// would repeat: Redis answered the dial's AUTH, SELECT or HELLO with an
// error (a wrong password or user, a database it does not have), or TLS
// refused the server (an unknown CA, another host name, a server that
// does not speak TLS) or was refused by it (a client certificate). A
// refusal that retires the connection (maxclients, protected mode's
// DENIED) and LOADING pass with time, and the network's faults may too.
func refusedForGood(err error) bool {
	var reply redis.Error
	if errors.As(err, &reply) {
		return !retires(reply) && !isLoading(reply)
	}
	var (
		verify    *tls.CertificateVerificationError
		header    tls.RecordHeaderError
		alert     tls.AlertError
		authority x509.UnknownAuthorityError
		host      x509.HostnameError
		invalid   x509.CertificateInvalidError
	)
	return errors.As(err, &verify) || errors.As(err, &header) || errors.As(err, &alert) ||
		errors.As(err, &authority) || errors.As(err, &host) || errors.As(err, &invalid)
}

// connFault marks err, the error of a call that went to a transport, as
// ErrConnection when it is the connection's fault, and leaves it as it
// is when it is Redis's answer (a redis.Error within it, but for a
// retiring refusal resent in vain), the store being closed, or the
// caller's context ending outside a dial. A dial cut short by the
// caller's context is a dialError, so both.
func connFault(ctx context.Context, err error) error {
	var dial *dialError
	if err == nil || errors.Is(err, ErrConnection) || errors.Is(err, ErrClosed) || errors.As(err, &dial) {
		return err // said already, a dial refused for good included
	}
	var retired *retiredError
	if errors.As(err, &retired) {
		return &connError{err}
	}
	var reply redis.Error
	if errors.As(err, &reply) {
		return err
	}
	var plain *plainError
	if errors.As(err, &plain) {
		return err
	}
	if ctxEnded(ctx) && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return err
	}
	return &connError{err}
}

// ctxEnded says whether ctx has ended, or its deadline has passed: the
// read deadline redigo derives from it can fire a moment before ctx's own
// timer marks it done (see ctxErr).
func ctxEnded(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// plainError is a transport's error that is no connection fault, said as
// it is: connFault leaves it (a caller's pool that is closed).
type plainError struct{ err error }

func (e *plainError) Error() string { return e.err.Error() }
func (e *plainError) Unwrap() error { return e.err }

// lostConn says a pooled connection's I/O fault as the lanes say theirs,
// "redis connection lost: ...", leaving Redis's replies and the caller's
// context (its deadline passed included) as they are.
func lostConn(ctx context.Context, err error) error {
	if err == nil || isReplyError(err) || ctxEnded(ctx) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("redis connection lost: %w", err)
}
