package pikkuredis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/pikkujs/pikkuredis/internal/redisurl"
)

// Pool is where a store gets its connections. *redis.Pool satisfies it:
// when the value also has GetContext (as *redis.Pool does), the store
// uses it, so that waiting for a free connection ends with the caller's
// context. A *redisc.Cluster (github.com/mna/redisc) satisfies it too, and
// the store then routes each call by its key's slot (cluster.go).
type Pool interface {
	Get() redis.Conn
}

// contextPool is the optional part of Pool that honours a context while
// waiting for (or dialling) a connection.
type contextPool interface {
	GetContext(ctx context.Context) (redis.Conn, error)
}

var _ Pool = (*redis.Pool)(nil)
var _ contextPool = (*redis.Pool)(nil)

// poolTransport sends each call on a connection of a pool: one the store
// opened WithoutAutoPipelining (owned, which close closes), or the
// caller's, which it never closes.
type poolTransport struct {
	pool      Pool
	owned     *redis.Pool        // the pool the store dialled itself; nil for a caller's pool
	stopDials context.CancelFunc // ends the owned pool's dials under way; nil otherwise
	closed    atomic.Bool
}

var _ transport = (*poolTransport)(nil)

func newPoolTransport(pool Pool, owned *redis.Pool, stopDials context.CancelFunc) *poolTransport {
	return &poolTransport{pool: pool, owned: owned, stopDials: stopDials}
}

// get returns a connection for one call. It fails at once after Close or
// when ctx is already done, and waits no longer than ctx for a pooled one.
func (p *poolTransport) get(ctx context.Context) (redis.Conn, error) {
	if p.closed.Load() {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var rc redis.Conn
	var err error
	if cp, ok := p.pool.(contextPool); ok {
		rc, err = cp.GetContext(ctx)
	} else {
		// Pool.Get has no context: wait aside, so that the caller leaves
		// on time; a connection that arrives after that goes back.
		rc, err = bounded(ctx, func() (redis.Conn, error) { return checked(p.pool.Get()) })
	}
	if err != nil {
		if p.closed.Load() { // Close ran while we waited: say so, not "closed pool"
			return nil, ErrClosed
		}
		switch {
		case err.Error() == "redigo: get on closed pool":
			// The caller closed it: no call will get a connection
			// from it again, so this is no connection fault.
			return nil, &plainError{fmt.Errorf("the pool given to the store is closed: %w", err)}
		case errors.Is(err, redis.ErrPoolExhausted):
			return nil, err // nothing was dialled; a later call may find one free
		case ctx.Err() != nil && errors.Is(err, ctx.Err()) && p.mayBeFull():
			return nil, err // the wait for a free connection ended
		}
		// A caller's pool dials with the caller's code: its failure
		// (cut short by ctx included) is said as the store's own dials
		// say theirs.
		return nil, ctxErr(ctx, dialFailed(err))
	}
	return rc, nil
}

// mayBeFull says whether a call that found no connection before its
// context ended may have been waiting for a free one rather than for a
// dial: on the store's own pool (whose dials say their failures
// themselves, see openPool), or a caller's *redis.Pool at MaxActive (a
// dial under way counts as active, so this says true for it too), or a
// pool that does not tell.
func (p *poolTransport) mayBeFull() bool {
	if p.owned != nil {
		return true
	}
	rp, ok := p.pool.(*redis.Pool)
	if !ok {
		return true
	}
	return rp.MaxActive > 0 && rp.ActiveCount() >= rp.MaxActive
}

// bounded returns what f returns, or ctx's error as soon as ctx ends, for
// the steps redigo does not bound by a context (a pool's Get, a TLS
// handshake, the AUTH after a dial). f then goes on aside, and a connection
// it returns after the caller left is closed.
func bounded(ctx context.Context, f func() (redis.Conn, error)) (redis.Conn, error) {
	return untilDone(ctx, f, func(rc redis.Conn) {
		if rc != nil {
			rc.Close()
		}
	})
}

// untilDone returns what f returns, or ctx's error as soon as ctx ends;
// f then goes on in a goroutine of its own, and what it returns after the
// caller left is handed to drop (nil: nothing to free). A ctx that cannot
// end runs f on the caller's goroutine.
func untilDone[T any](ctx context.Context, f func() (T, error), drop func(T)) (T, error) {
	if ctx.Done() == nil {
		return f()
	}
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		if drop != nil {
			go func() { drop((<-ch).v) }()
		}
		var zero T
		return zero, ctx.Err()
	}
}

func checked(rc redis.Conn) (redis.Conn, error) {
	if err := rc.Err(); err != nil {
		rc.Close()
		return nil, err
	}
	return rc, nil
}

// tries is, on a pool, once more per idle connection than on lanes,
// since a pool hands those out before it dials and each may lead to the
// same wrong server (as after a failover behind one address, when every
// idle connection does). It ends: each try retires the connection it
// used, and a refusal costs one quick round trip.
func (p *poolTransport) tries() int {
	if s, ok := p.pool.(interface{ Stats() redis.PoolStats }); ok {
		return 2 + s.Stats().IdleCount
	}
	return 2
}

// do sends one command once on a pooled connection.
func (p *poolTransport) do(ctx context.Context, cmd string, args []any) (any, error) {
	rc, err := p.get(ctx)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	reply, err := do(ctx, rc, cmd, args...)
	err = lostConn(ctx, err)
	if retires(err) {
		// redigo keeps a connection that got an error reply, and the
		// pool would hand it to the next call: on the wrong server, or
		// closed by Redis.
		retire(rc)
	}
	return reply, err
}

// close ends the owned pool's dials and closes it; a caller's pool is
// left open.
func (p *poolTransport) close() error {
	p.closed.Store(true)
	if p.stopDials != nil {
		p.stopDials()
	}
	if p.owned != nil {
		if err := p.owned.Close(); err != nil {
			return fmt.Errorf("pikkuredis: close pool: %w", err)
		}
	}
	return nil
}

// The errors redigo returns when a connection lacks context or timeout
// support (a pooled connection always claims both, then asks the connection
// it wraps), taken from redigo itself so that they compare with ==.
var (
	_, errNoContext = redis.DoContext(struct{ redis.Conn }{}, context.Background(), "")
	_, errNoTimeout = redis.DoWithTimeout(struct{ redis.Conn }{}, 0, "")
)

// do sends one command bounded by ctx. redigo's connections honour ctx
// directly, closing the connection when ctx ends mid-call so that it is
// never reused with a reply in flight. A connection without context support
// (a caller's wrapper, a cluster client's) gets ctx's deadline as a read
// timeout instead, and is bounded only by its own timeouts when it supports
// neither.
func do(ctx context.Context, rc redis.Conn, cmd string, args ...any) (any, error) {
	if cc, ok := rc.(redis.ConnWithContext); ok {
		reply, err := cc.DoContext(ctx, cmd, args...)
		if err != errNoContext {
			if err != nil {
				return nil, ctxErr(ctx, err)
			}
			return reply, nil
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		if ct, ok := rc.(redis.ConnWithTimeout); ok {
			left := time.Until(dl)
			if left <= 0 { // redigo reads a zero timeout as "none"
				return nil, context.DeadlineExceeded
			}
			reply, err := ct.DoWithTimeout(left, cmd, args...)
			if err != errNoTimeout {
				if err != nil {
					return nil, ctxErr(ctx, err)
				}
				return reply, nil
			}
		}
	}
	reply, err := rc.Do(cmd, args...)
	if err != nil {
		return nil, ctxErr(ctx, err)
	}
	return reply, nil
}

// checkURL rejects, when a store is opened rather than at its first call,
// the URLs that redis.DialURLContext would reject, and those whose password
// would be dialled as a host or port. Its errors never show the password.
func checkURL(rawURL string) error {
	if err := redisurl.Check(rawURL); err != nil {
		return &urlError{err}
	}
	return nil
}

// dialer returns how a store opened from a URL dials: with the default
// timeouts, then the caller's dial options. Nothing is dialled yet: opening
// a store never touches the network (Init does, with PING).
func dialer(rawURL string, cfg config) (func(context.Context) (redis.Conn, error), error) {
	if err := checkURL(rawURL); err != nil {
		return nil, err
	}
	defaults := []redis.DialOption{
		redis.DialReadTimeout(cfg.ioTimeout),
		redis.DialWriteTimeout(cfg.ioTimeout),
	}
	// Clipped: dialSock appends to copies, and dials run concurrently.
	callers := slices.Clip(cfg.dialOptions)
	// dialSock ends the whole dial (connect, TLS handshake, AUTH, SELECT)
	// with ctx; bounded still returns at once when ctx ends, for a
	// caller's own dial function, which may not.
	// A caller who leaves mid-dial learns what the dial waited on.
	return func(ctx context.Context) (redis.Conn, error) {
		note := noteOf(ctx)
		if note == nil {
			ctx, note = withDialNote(ctx)
		}
		rc, err := bounded(ctx, func() (redis.Conn, error) { return dialSock(ctx, rawURL, cfg.connectTimeout, defaults, callers) })
		if what := note.get(); err != nil && err == ctx.Err() && what != "" {
			err = fmt.Errorf("%s: %w", what, err)
		}
		return rc, err
	}, nil
}

// openPool builds the pool a store opened WithoutAutoPipelining owns.
// Its dials end with the caller's context and with life (the store's
// Close), so that no dial outlives either.
func openPool(life context.Context, dial func(context.Context) (redis.Conn, error), cfg config) *redis.Pool {
	return &redis.Pool{
		MaxActive:   cfg.poolSize,
		MaxIdle:     cfg.poolSize,
		Wait:        true, // wait (bounded by the caller's context) rather than fail when all are busy
		IdleTimeout: 5 * time.Minute,
		// Said as the auto-pipelined path says it (docs/guarantees.md, Errors).
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			ctx, cancel := withCancelOf(ctx, life)
			defer cancel()
			rc, err := dial(ctx)
			if err != nil {
				if life.Err() != nil {
					return nil, ErrClosed
				}
				return nil, dialFailed(err)
			}
			return rc, nil
		},
		// A connection idle for a while may have been closed by a server
		// timeout, a load balancer or CLIENT KILL: its socket is checked
		// (one syscall) before it is handed out, and the pool drops it
		// if closed. A connection from a caller's own dial function is
		// PINGed instead, after a second idle.
		TestOnBorrowContext: CheckIdleConn,
	}
}
