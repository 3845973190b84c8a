package pikkuredis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/mna/redisc"

	"github.com/pikkujs/pikkuredis/internal/redisurl"
)

// errNoPool is returned by a store made without a pool: a zero value, or
// New*Store(nil).
var errNoPool = errors.New("store has no pool: make it with NewChannelStore/NewEventHubStore/NewSessionStore(pool) or Open*Store(url)")

// transport is how a call reaches Redis: auto-pipelined lanes
// (pipeline.go), a pool, the store's own or the caller's (pool.go), a
// Redis Cluster (cluster.go), which routes each call by its key's slot. Each
// owns its connections, bounds each call by its context and handles its
// connections' faults; the store above sees only replies and errors.
type transport interface {
	// do sends one command once and returns its reply, bounded by ctx:
	// ctx's error (matching it with errors.Is) when ctx ends first. A
	// refusal that says the connection was the wrong one (replies.go)
	// is returned as Redis's error, that connection already retired,
	// so that sending the call again reaches another.
	do(ctx context.Context, cmd string, args []any) (any, error)
	// tries is how many times conn.do sends a call so refused.
	tries() int
	// close closes what the transport owns; calls under way or later
	// end with ErrClosed.
	close() error
}

// conn is what every store holds: how its calls reach Redis, the key
// names, and whether the store still runs. It sends each call again when
// Redis refused it without running it (see do).
type conn struct {
	t      transport
	keys   keys
	cfg    config
	closed atomic.Bool
	done   chan struct{} // closed by close, for loops that wait between calls

	// badConfig is why the store's options cannot be used: the key
	// layout (layout.go), or options for connections it does not dial
	// (options.go); for every call to return; nil when they can.
	badConfig error

	// release frees what the dial of a store opened from a URL holds
	// (its connections to Redis Sentinel); nil when nothing.
	release func()
}

func newConn(t transport, cfg config) *conn {
	c := &conn{t: t, keys: keys{prefix: cfg.prefix}, cfg: cfg, done: make(chan struct{})}
	c.badConfig = layoutError(cfg, isCluster(t))
	return c
}

// connOver is the conn of a store over a caller's pool; nil pool gives
// a conn whose calls fail with errNoPool.
func connOver(pool Pool, opts []Option) *conn {
	cfg := newConfig(opts)
	var c *conn
	switch p := pool.(type) {
	case nil:
		return newConn(nil, cfg)
	case *redisc.Cluster:
		c = newConn(clusterOver(p, cfg), cfg)
	default:
		c = newConn(newPoolTransport(pool, nil, nil), cfg)
	}
	if c.badConfig == nil {
		c.badConfig = dialOnlyError(cfg)
	}
	return c
}

// openConn is the conn of a store opened from a URL: auto-pipelined by
// default, or over a pool of its own.
func openConn(rawURL string, opts []Option) (*conn, error) {
	cfg := newConfig(opts)
	if redisurl.IsCluster(rawURL) {
		t, err := openCluster(rawURL, cfg)
		if err != nil {
			return nil, err
		}
		return newConn(t, cfg), nil
	}
	dial, release, err := dialFor(rawURL, cfg) // dialer, or the Sentinel's (sentinel.go)
	if err != nil {
		return nil, err
	}
	var t transport
	if cfg.pipelineConns > 0 {
		t = newLanes(cfg.pipelineConns, dial, cfg.ioTimeout)
	} else {
		life, stop := context.WithCancel(context.Background())
		p := openPool(life, dial, cfg)
		t = newPoolTransport(p, p, stop)
	}
	c := newConn(t, cfg)
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
	if c == nil || c.t == nil {
		return errNoPool
	}
	if c.badConfig != nil {
		return c.badConfig
	}
	if c.closed.Load() {
		return ErrClosed
	}
	return nil
}

// do sends one command, bounded by ctx. A call refused because its
// connection was the wrong one (see replies.go) was not run, and that
// connection is retired: the call is sent again, within the same ctx,
// until it reaches a new connection (see transport.tries).
func (c *conn) do(ctx context.Context, cmd string, args ...any) (any, error) {
	if err := c.usable(); err != nil {
		return nil, err
	}
	return c.doOn(c.t, ctx, cmd, args)
}

// strings sends one command as do does, for a reply that is an array of
// strings (SMEMBERS): decoded straight into a []string where the
// transport left the array undecoded (rawArray), as redis.Strings would.
func (c *conn) strings(ctx context.Context, cmd string, args ...any) ([]string, error) {
	if err := c.usable(); err != nil {
		return nil, err
	}
	return replyStrings(c.sendOn(c.t, ctx, cmd, args))
}

// doOn is do over t: the store's transport, or one server of it. An array
// reply a lane left undecoded is decoded here, on the caller's goroutine
// (resp.go).
func (c *conn) doOn(t transport, ctx context.Context, cmd string, args []any) (any, error) {
	return decodeReply(c.sendOn(t, ctx, cmd, args))
}

// sendOn is doOn, leaving an array reply as the transport gave it.
func (c *conn) sendOn(t transport, ctx context.Context, cmd string, args []any) (any, error) {
	reply, err := t.do(ctx, cmd, args)
	if retryable(err) {
		for n := t.tries() - 1; n > 0 && retryable(err) && ctx.Err() == nil && !c.closed.Load(); n-- {
			reply, err = t.do(ctx, cmd, args)
		}
	}
	if isLoading(err) {
		reply, err = c.waitLoading(t, ctx, cmd, args, err)
	}
	if isRedirect(err) && !isCluster(c.t) {
		return nil, fmt.Errorf("%w (the server is a Redis Cluster node: open the store with a redis+cluster:// URL, or give it a *redisc.Cluster)", err)
	}
	err = connFault(ctx, describe(err))
	if errors.Is(err, ErrConnection) && hasBulk(args) {
		// Redis closes the connection on a value over its limits, often
		// before its error reply can be read: say so, since sending the
		// same value again fails the same way. A network fault under a
		// large value reads the same, so it stays ErrConnection.
		err = &connError{fmt.Errorf("%w (the call carried a value over %d KiB: Redis closes the connection on one longer than its proto-max-bulk-len, 512 MB by default, or beyond its client-query-buffer-limit, 1 GB)", err, bulkArg>>10)}
	}
	return reply, err
}

// isRedirect says whether err is a cluster node's MOVED or ASK.
func isRedirect(err error) bool {
	e, ok := err.(redis.Error)
	return ok && (strings.HasPrefix(string(e), "MOVED ") || strings.HasPrefix(string(e), "ASK "))
}

// doFunc sends one command as conn.do does, to one server.
type doFunc func(ctx context.Context, cmd string, args ...any) (any, error)

// servers is what a transport over several servers (a cluster) has: one
// transport per master, for the calls that concern each server rather
// than a key (SCRIPT LOAD, SCAN, INFO).
type servers interface {
	masters(ctx context.Context) ([]transport, error)
}

// eachMaster calls fn with a doFunc for each master: the store's one
// server, or every master of a cluster, in turn. It stops at fn's
// first error.
func (c *conn) eachMaster(ctx context.Context, fn func(do doFunc) error) error {
	if err := c.usable(); err != nil {
		return err
	}
	m, ok := c.t.(servers)
	if !ok {
		return fn(c.do)
	}
	all, err := m.masters(ctx)
	if err != nil {
		return connFault(ctx, err)
	}
	for _, t := range all {
		err := fn(func(ctx context.Context, cmd string, args ...any) (any, error) {
			if err := c.usable(); err != nil {
				return nil, err
			}
			return c.doOn(t, ctx, cmd, args)
		})
		if err != nil {
			return err
		}
	}
	return nil
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
func (c *conn) waitLoading(t transport, ctx context.Context, cmd string, args []any, err error) (any, error) {
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
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctxErr(ctx, err)
		case <-c.done:
			timer.Stop()
			return nil, ErrClosed
		case <-timer.C:
		}
		reply, err2 := t.do(ctx, cmd, args)
		if !isLoading(err2) {
			return reply, err2
		}
		err, wait = err2, min(2*wait, loadingMaxWait)
	}
}

// close marks the store closed (once) and closes what its transport owns,
// failing the calls still under way with ErrClosed.
func (c *conn) close() error {
	if c == nil || !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(c.done)
	if c.release != nil {
		defer c.release()
	}
	if c.t != nil {
		return c.t.close()
	}
	return nil
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
	if errors.Is(err, ErrConnection) { // a dial that failed as ctx ended: both
		return fmt.Errorf("%w (%w)", err, cerr)
	}
	return fmt.Errorf("%w (%v)", cerr, err)
}
