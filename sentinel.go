package pikkuredis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/FZambia/sentinel/v2"
	"github.com/gomodule/redigo/redis"

	"github.com/pikkujs/pikkuredis/internal/redisurl"
)

// Redis Sentinel: a store opened from a redis+sentinel:// URL (see
// OpenChannelStore) asks the sentinels for the master's address at every
// dial, dials it as it would dial redis://host:port with the URL's Redis
// credentials and database, and checks with ROLE that the server is the
// master before it carries a call. After a failover the old master's
// connections break (or, where it is still up, answer READONLY) and the
// next dial asks the sentinels again, so the same store objects follow
// the new master without a restart.

// dialFor returns how a store opened from rawURL dials, and what to
// release when it is closed (nil when nothing).
func dialFor(rawURL string, cfg config) (dial func(context.Context) (redis.Conn, error), release func(), err error) {
	if redisurl.IsSentinel(rawURL) {
		return sentinelDialer(rawURL, cfg)
	}
	dial, err = dialer(rawURL, cfg)
	return dial, nil, err
}

// sentinelDial dials the master that the sentinels name.
type sentinelDial struct {
	url *redisurl.Sentinel
	cfg config
	snt *sentinel.Sentinel

	mu     sync.Mutex
	closed bool
	asking *masterAsk // the question to the sentinels under way, if any
}

// sentinelDialer checks a Sentinel URL, when the store is opened, and
// returns its dial. Nothing is dialled yet.
func sentinelDialer(rawURL string, cfg config) (func(context.Context) (redis.Conn, error), func(), error) {
	u, err := redisurl.ParseSentinel(rawURL)
	if err != nil {
		return nil, nil, fmt.Errorf("pikkuredis: %w", err)
	}
	// The sentinels get the store's timeouts and dial options (a TLS
	// config, a client name), but their own credentials, TLS choice and
	// no database: a Redis password given WithDialOptions is not theirs.
	opts := slices.Clip(append([]redis.DialOption{
		redis.DialConnectTimeout(cfg.connectTimeout),
		redis.DialReadTimeout(cfg.ioTimeout),
		redis.DialWriteTimeout(cfg.ioTimeout),
	}, cfg.dialOptions...))
	opts = append(opts,
		redis.DialUseTLS(u.SentinelTLS),
		redis.DialUsername(u.SentinelUsername),
		redis.DialPassword(u.SentinelPassword),
		redis.DialDatabase(0),
	)
	d := &sentinelDial{url: u, cfg: cfg, snt: &sentinel.Sentinel{
		Addrs:      slices.Clone(u.Addrs),
		MasterName: u.MasterName,
		// The library has no context: its dials and reads are bounded
		// by these timeouts, and masterAddr leaves them at ctx's end.
		Dial: func(addr string) (redis.Conn, error) { return redis.Dial("tcp", addr, opts...) },
	}}
	return d.dial, d.release, nil
}

// dial asks the sentinels for the master, dials it and checks its role,
// all bounded by ctx.
func (d *sentinelDial) dial(ctx context.Context) (redis.Conn, error) {
	addr, err := d.masterAddr(ctx)
	if err != nil {
		return nil, err
	}
	// The ordinary dial of a redis:// URL, with everything it does (dial
	// options, TLS, AUTH, SELECT, bounded by ctx).
	dial, err := dialer(d.url.RedisURL(addr), d.cfg)
	if err != nil {
		return nil, fmt.Errorf("master %s of %q: %w", addr, d.url.MasterName, err)
	}
	rc, err := dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("master %s of %q: %w", addr, d.url.MasterName, ctxErr(ctx, err))
	}
	// The sentinels may name a server that is not (or no longer) the
	// master: during a failover, or a sentinel cut off from the others.
	// Writes to it would fail with READONLY, or worse land on a restarted
	// old master that is about to be turned into a replica and emptied.
	role, err := redis.Values(redis.DoContext(rc, ctx, "ROLE"))
	if err == nil && len(role) == 0 {
		err = errors.New("empty ROLE reply")
	}
	var name string
	if err == nil {
		name, err = redis.String(role[0], nil)
	}
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("master %s of %q: ROLE: %w", addr, d.url.MasterName, ctxErr(ctx, err))
	}
	if name != "master" {
		rc.Close()
		return nil, fmt.Errorf("%s, named master of %q by the sentinels, is a %s (a failover is under way; the next call asks again)", addr, d.url.MasterName, name)
	}
	return rc, nil
}

// masterAddr asks the sentinels, in turn, for the master's address. The
// library tries them in order, putting the one that answered first for
// next time; it has no context, so its work goes on aside when ctx ends.
// Its list is not safe for concurrent asks (it reorders it in place while
// another walks it), and concurrent dials all want the same answer: so
// one ask runs at a time and the dials that come meanwhile share it. A
// stale answer is caught by the ROLE check.
func (d *sentinelDial) masterAddr(ctx context.Context) (string, error) {
	d.mu.Lock()
	a := d.asking
	if a == nil {
		a = &masterAsk{done: make(chan struct{})}
		d.asking = a
		go d.ask(a)
	}
	d.mu.Unlock()
	select {
	case <-a.done:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	if a.err != nil {
		if strings.Contains(a.err.Error(), redis.ErrNil.Error()) {
			// get-master-addr-by-name answers nil for a name it does not
			// monitor; the library reports it as a nil reply.
			return "", fmt.Errorf("sentinels %s do not know master %q", strings.Join(d.url.Addrs, ","), d.url.MasterName)
		}
		return "", fmt.Errorf("ask sentinels %s for master %q: %w", strings.Join(d.url.Addrs, ","), d.url.MasterName, a.err)
	}
	return a.addr, nil
}

// masterAsk is one question to the sentinels, shared by the dials that
// wait for it; addr and err are set before done is closed.
type masterAsk struct {
	done chan struct{}
	addr string
	err  error
}

func (d *sentinelDial) ask(a *masterAsk) {
	// The library moves a sentinel that failed to the end of its list
	// while it walks that list, so one MasterAddr can skip the sentinels
	// after a dead one; asking again walks the new order.
	for range d.url.Addrs {
		if a.addr, a.err = d.snt.MasterAddr(); !errors.As(a.err, new(sentinel.NoSentinelsAvailable)) {
			break
		}
	}
	d.mu.Lock()
	d.asking = nil
	if d.closed {
		// release ran while this asked, and the library then opened new
		// connections to the sentinels: close them too.
		d.snt.Close()
	}
	d.mu.Unlock()
	close(a.done)
}

// release closes the store's connections to the sentinels.
func (d *sentinelDial) release() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	d.snt.Close()
}
