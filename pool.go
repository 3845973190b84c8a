package pikkuredis

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
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

// conn is what both stores share: where connections come from, the key
// names, and whether the store still runs.
type conn struct {
	pool   Pool
	owned  *redis.Pool // the pool the store dialled itself; nil for a caller's pool
	keys   keys
	cfg    config
	closed atomic.Bool
}

func newConn(pool Pool, owned *redis.Pool, cfg config) *conn {
	return &conn{pool: pool, owned: owned, keys: keys{prefix: cfg.prefix}, cfg: cfg}
}

// get returns a connection for one call. It fails at once after Close or
// when ctx is already done, and waits no longer than ctx for a pooled one.
func (c *conn) get(ctx context.Context) (redis.Conn, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if p, ok := c.pool.(contextPool); ok {
		rc, err := p.GetContext(ctx)
		if err != nil {
			return nil, ctxErr(ctx, err)
		}
		return rc, nil
	}
	rc := c.pool.Get()
	if err := rc.Err(); err != nil {
		rc.Close()
		return nil, err
	}
	return rc, nil
}

// close marks the store closed (once) and closes an owned pool.
func (c *conn) close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	if c.owned != nil {
		if err := c.owned.Close(); err != nil {
			return fmt.Errorf("pikkuredis: close pool: %w", err)
		}
	}
	return nil
}

// do sends one command bounded by ctx. redigo's pooled connections honour
// ctx directly (closing the connection when ctx ends mid-call, so that it is
// never reused with a reply still in flight); a connection without context
// support (for example redisc's) gets ctx's deadline as a timeout instead.
func do(ctx context.Context, rc redis.Conn, cmd string, args ...any) (any, error) {
	var reply any
	var err error
	switch cc := rc.(type) {
	case redis.ConnWithContext:
		reply, err = cc.DoContext(ctx, cmd, args...)
	case redis.ConnWithTimeout:
		if dl, ok := ctx.Deadline(); ok {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			reply, err = cc.DoWithTimeout(time.Until(dl), cmd, args...)
		} else {
			reply, err = rc.Do(cmd, args...)
		}
	default:
		reply, err = rc.Do(cmd, args...)
	}
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

var dbPathRE = regexp.MustCompile(`^/?(\d*)$`)

// checkURL rejects what redis.DialURL would reject, so that a bad URL fails
// when the store is opened, not at its first call.
func checkURL(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("pikkuredis: invalid redis URL: %w", err)
	}
	switch u.Scheme {
	case "redis", "rediss", "valkey", "valkeys":
	default:
		return fmt.Errorf("pikkuredis: invalid redis URL %q: scheme must be redis:// or rediss://", rawURL)
	}
	if u.Opaque != "" {
		return fmt.Errorf("pikkuredis: invalid redis URL %q: write it as redis://host:port", rawURL)
	}
	if !dbPathRE.MatchString(u.Path) {
		return fmt.Errorf("pikkuredis: invalid redis URL %q: path must be a database number", rawURL)
	}
	return nil
}

// openPool builds the pool an Open* store owns. It dials lazily: opening a
// store never touches the network (Init does, with PING).
func openPool(rawURL string, cfg config) (*redis.Pool, error) {
	if err := checkURL(rawURL); err != nil {
		return nil, err
	}
	dialOpts := append([]redis.DialOption{
		redis.DialConnectTimeout(DefaultConnectTimeout),
		redis.DialReadTimeout(DefaultIOTimeout),
		redis.DialWriteTimeout(DefaultIOTimeout),
	}, cfg.dialOptions...)
	return &redis.Pool{
		MaxActive:   cfg.poolSize,
		MaxIdle:     cfg.poolSize,
		Wait:        true, // wait (bounded by the caller's context) rather than fail when all are busy
		IdleTimeout: 5 * time.Minute,
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			return redis.DialURLContext(ctx, rawURL, dialOpts...)
		},
		// A connection idle for a while may have been cut by a proxy or a
		// server timeout; check it before handing it out.
		TestOnBorrow: func(rc redis.Conn, idleSince time.Time) error {
			if time.Since(idleSince) < time.Minute {
				return nil
			}
			_, err := rc.Do("PING")
			return err
		},
	}, nil
}
