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

// Pool is where a store gets its connections. *redis.Pool satisfies it, and
// so does a redigo-based cluster client such as *redisc.Cluster. When the
// value also has GetContext (as *redis.Pool does), the store uses it, so
// that waiting for a free connection ends with the caller's context.
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

// ErrClosed is returned by every call on a store after its Close.
var ErrClosed = errors.New("pikkuredis: store is closed")

// errNoPool is returned by a store made without a pool: a zero value, or
// New*Store(nil).
var errNoPool = errors.New("store has no pool: make it with NewChannelStore/NewEventHubStore/NewSessionStore(pool) or Open*Store(url)")

// conn is what both stores share: where connections come from, the key
// names, and whether the store still runs.
type conn struct {
	pool   Pool
	owned  *redis.Pool // the pool the store dialled itself; nil for a caller's pool
	lanes  *lanes      // auto-pipelined connections the store dialled itself; nil when it uses a pool
	keys   keys
	cfg    config
	closed atomic.Bool
	done   chan struct{} // closed by close, for loops that wait between calls

	// release frees what the dial of a store opened from a URL holds
	// (its connections to Redis Sentinel); nil when nothing.
	release   func()
	stopDials context.CancelFunc // ends the owned pool's dials under way; nil otherwise
}

func newConn(pool Pool, owned *redis.Pool, cfg config) *conn {
	return &conn{pool: pool, owned: owned, keys: keys{prefix: cfg.prefix}, cfg: cfg, done: make(chan struct{})}
}

// openConn is the conn of a store opened from a URL: auto-pipelined by
// default, or over a pool of its own.
func openConn(rawURL string, opts []Option) (*conn, error) {
	cfg := newConfig(opts)
	dial, release, err := dialFor(rawURL, cfg) // dialer, or the Sentinel's (sentinel.go)
	if err != nil {
		return nil, err
	}
	var c *conn
	if cfg.pipelineConns > 0 {
		c = newConn(nil, nil, cfg)
		c.lanes = newLanes(cfg.pipelineConns, dial)
	} else {
		life, stop := context.WithCancel(context.Background())
		p := openPool(life, dial, cfg)
		c = newConn(p, p, cfg)
		c.stopDials = stop
	}
	c.release = release
	return c, nil
}

// key returns the key builder; a zero-value store (nil conn) gets one too,
// so that it reaches do, which says what is wrong.
func (c *conn) key() keys {
	if c == nil {
		return keys{}
	}
	return c.keys
}

// closing is closed when the store is; never for a zero-value store,
// whose calls fail at once instead.
func (c *conn) closing() <-chan struct{} {
	if c == nil {
		return nil
	}
	return c.done
}

// opts is the store's configuration; a zero config for a zero-value
// store, whose calls then fail in usable.
func (c *conn) opts() *config {
	if c == nil {
		return &config{}
	}
	return &c.cfg
}

// usable says why the store cannot take a call: it has no connections, or
// it is closed. Every call asks, even one with nothing to send.
func (c *conn) usable() error {
	if c == nil || (c.pool == nil && c.lanes == nil) {
		return errNoPool
	}
	if c.closed.Load() {
		return ErrClosed
	}
	return nil
}

// get returns a connection for one call. It fails at once after Close or
// when ctx is already done, and waits no longer than ctx for a pooled one.
func (c *conn) get(ctx context.Context) (redis.Conn, error) {
	if err := c.usable(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var rc redis.Conn
	var err error
	if p, ok := c.pool.(contextPool); ok {
		rc, err = p.GetContext(ctx)
	} else {
		// Pool.Get has no context: wait aside, so that the caller leaves
		// on time; a connection that arrives after that goes back.
		rc, err = bounded(ctx, func() (redis.Conn, error) { return checked(c.pool.Get()) })
	}
	if err != nil {
		if c.closed.Load() { // Close ran while we waited: say so, not "closed pool"
			return nil, ErrClosed
		}
		return nil, ctxErr(ctx, err)
	}
	return rc, nil
}

// bounded returns what f returns, or ctx's error as soon as ctx ends, for
// the steps redigo does not bound by a context (a pool's Get, a TLS
// handshake, the AUTH after a dial). f then goes on aside, and a connection
// it returns after the caller left is closed.
func bounded(ctx context.Context, f func() (redis.Conn, error)) (redis.Conn, error) {
	if ctx.Done() == nil {
		return f()
	}
	type result struct {
		rc  redis.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		rc, err := f()
		ch <- result{rc, err}
	}()
	select {
	case r := <-ch:
		return r.rc, r.err
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.rc != nil {
				r.rc.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

func checked(rc redis.Conn) (redis.Conn, error) {
	if err := rc.Err(); err != nil {
		rc.Close()
		return nil, err
	}
	return rc, nil
}

// do sends one command, over the store's lanes or on a connection of its
// pool, bounded by ctx. A call refused because its connection was the
// wrong one (see replies.go) was not run, and that connection is retired:
// the call is sent again, within the same ctx, until it reaches a new
// connection (see tries).
func (c *conn) do(ctx context.Context, cmd string, args ...any) (any, error) {
	if err := c.usable(); err != nil {
		return nil, err
	}
	reply, err := c.try(ctx, cmd, args)
	if retryable(err) {
		for n := c.tries() - 1; n > 0 && retryable(err) && ctx.Err() == nil && !c.closed.Load(); n-- {
			reply, err = c.try(ctx, cmd, args)
		}
	}
	if isLoading(err) {
		reply, err = c.waitLoading(ctx, cmd, args, err)
	}
	return reply, describe(err)
}

// Backoff between the tries of a call refused with LOADING.
const (
	loadingFirstWait = 10 * time.Millisecond
	loadingMaxWait   = 200 * time.Millisecond
)

// waitLoading sends a call that the server refused with LOADING (it is
// reading its dataset after a restart; the call was not run) again, with
// a growing pause, until the server takes it or ctx ends; a ctx without a
// deadline waits at most the IO timeout. A LOADING that outlasts the call
// is returned as ctx's error, saying LOADING; the connection is the right
// one and is kept.
func (c *conn) waitLoading(ctx context.Context, cmd string, args []any, err error) (any, error) {
	limit := time.Now().Add(c.cfg.ioTimeout)
	_, hasDeadline := ctx.Deadline()
	wait := loadingFirstWait
	for {
		if !hasDeadline {
			left := time.Until(limit)
			if left <= 0 {
				return nil, fmt.Errorf("still loading after %v (WithIOTimeout; give the call a deadline to wait longer): %w", c.cfg.ioTimeout, err)
			}
			wait = min(wait, left)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctxErr(ctx, err)
		case <-c.done:
			t.Stop()
			return nil, ErrClosed
		case <-t.C:
		}
		reply, err2 := c.try(ctx, cmd, args)
		if !isLoading(err2) {
			return reply, err2
		}
		err, wait = err2, min(2*wait, loadingMaxWait)
	}
}

// tries is how many times a refused call is sent: twice on lanes, whose
// next call always dials; on a pool, once more per idle connection, since
// a pool hands those out before it dials and each may lead to the same
// wrong server (as after a failover behind one address, when every idle
// connection does). It ends: each try retires the connection it used, and
// a refusal costs one quick round trip.
func (c *conn) tries() int {
	if p, ok := c.pool.(interface{ Stats() redis.PoolStats }); ok && c.lanes == nil {
		return 2 + p.Stats().IdleCount
	}
	return 2
}

// try sends one command once.
func (c *conn) try(ctx context.Context, cmd string, args []any) (any, error) {
	if c.lanes != nil {
		reply, err := c.lanes.do(ctx, cmd, args)
		if err != nil {
			return nil, ctxErr(ctx, err)
		}
		return reply, nil
	}
	rc, err := c.get(ctx)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	reply, err := do(ctx, rc, cmd, args...)
	if retires(err) {
		// redigo keeps a connection that got an error reply, and the
		// pool would hand it to the next call: on the wrong server, or
		// closed by Redis.
		retire(rc)
	}
	return reply, err
}

// close marks the store closed (once) and closes what it owns: its lanes,
// failing the calls still waiting with ErrClosed, or its pool.
func (c *conn) close() error {
	if c == nil || !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(c.done)
	if c.stopDials != nil {
		c.stopDials()
	}
	if c.lanes != nil {
		c.lanes.close()
	}
	if c.release != nil {
		defer c.release()
	}
	if c.owned != nil {
		if err := c.owned.Close(); err != nil {
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

// ctxErr makes an error caused by ctx ending match context.Canceled or
// context.DeadlineExceeded with errors.Is, whatever the I/O layer reported.
func ctxErr(ctx context.Context, err error) error {
	cerr := ctx.Err()
	if cerr == nil {
		// The read deadline redigo derives from ctx can fire a moment
		// before ctx's own timer marks it done.
		if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
			cerr = context.DeadlineExceeded
		} else {
			return err
		}
	}
	if errors.Is(err, cerr) {
		return err
	}
	return fmt.Errorf("%w (%v)", cerr, err)
}

// checkURL rejects, when a store is opened rather than at its first call,
// the URLs that redis.DialURLContext would reject, and those whose password
// would be dialled as a host or port. Its errors never show the password.
func checkURL(rawURL string) error {
	if err := redisurl.Check(rawURL); err != nil {
		return fmt.Errorf("pikkuredis: %w", err)
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
	return func(ctx context.Context) (redis.Conn, error) {
		return bounded(ctx, func() (redis.Conn, error) { return dialSock(ctx, rawURL, cfg.connectTimeout, defaults, callers) })
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
		// Said as the auto-pipelined path says it (README, Errors).
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			ctx, cancel := withCancelOf(ctx, life)
			defer cancel()
			rc, err := dial(ctx)
			if err != nil {
				if life.Err() != nil {
					return nil, ErrClosed
				}
				return nil, fmt.Errorf("connect to redis: %w", err)
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
