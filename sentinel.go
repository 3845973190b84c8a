package pikkuredis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
//
// The sentinels are asked as Redis's Sentinel client guidelines say: in
// turn, each given SentinelTimeout to connect and answer, and the one
// that named the master is asked first next time. One that gave no
// answer goes to the end, so that a sentinel that hangs costs one
// SentinelTimeout, once, rather than the IO timeout at every dial; one
// whose master could not be used (unreachable, or not a master) goes
// after the others that answered, so that a sentinel cut off from the
// others is not followed forever. The store asks them itself, with
// contexts that Close ends: FZambia/sentinel, used before, has none (a
// hung sentinel held every dial for the IO timeout, twice, since it
// reorders its list while walking it, and the question outlived Close).

// SentinelTimeout is how long one sentinel has to answer the store's
// question (connect, TLS, AUTH and SENTINEL get-master-addr-by-name):
// sentinels answer from memory, so one that takes longer is taken for
// down and the next is asked. It is not WithIOTimeout, which bounds
// Redis's replies (a long script may take seconds).
const SentinelTimeout = time.Second

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
	// What a connection to a sentinel is dialled with: the store's dial
	// options (a TLS config, a client name), then the sentinels' own
	// credentials, TLS choice and database 0, after them so that a Redis
	// password given WithDialOptions is not sent to the sentinels.
	defaults, callers []redis.DialOption

	life context.Context // ends with release: every question, dial and read on a sentinel ends with it
	stop context.CancelFunc
	asks sync.WaitGroup // the question under way, for release to wait for

	// gen counts the master switches the sentinels announced (see
	// watch); a connection dialled under an earlier count leads to a
	// replaced master and takes no more calls (sock.stale).
	gen atomic.Uint64

	mu       sync.Mutex
	watching bool                  // watch runs
	master   string                // the master the last dial reached
	order    []string              // the order in which the sentinels are asked (see ask)
	silent   map[string]bool       // the sentinels whose last question got no answer
	idle     map[string]redis.Conn // a connection to each sentinel that answered, kept for the next question
	asking   *masterAsk            // the question to the sentinels under way, if any
	closed   bool
}

// sentinelDialer checks a Sentinel URL, when the store is opened, and
// returns its dial. Nothing is dialled yet.
func sentinelDialer(rawURL string, cfg config) (func(context.Context) (redis.Conn, error), func(), error) {
	u, err := redisurl.ParseSentinel(rawURL)
	if err != nil {
		return nil, nil, &urlError{err}
	}
	callers := slices.Clip(append(slices.Clone(cfg.dialOptions),
		redis.DialUsername(u.SentinelUsername),
		redis.DialPassword(u.SentinelPassword),
		redis.DialDatabase(0),
	))
	life, stop := context.WithCancel(context.Background())
	d := &sentinelDial{
		url: u, cfg: cfg,
		defaults: []redis.DialOption{redis.DialReadTimeout(SentinelTimeout), redis.DialWriteTimeout(SentinelTimeout)},
		callers:  callers,
		life:     life, stop: stop,
		order:  slices.Clone(u.Addrs),
		silent: map[string]bool{},
		idle:   map[string]redis.Conn{},
	}
	return d.dial, d.release, nil
}

// dial asks the sentinels for the master, dials it and checks its role,
// all bounded by ctx.
func (d *sentinelDial) dial(ctx context.Context) (redis.Conn, error) {
	gen := d.gen.Load() // before the question: a switch meanwhile makes this dial stale
	done := noteDial(ctx, d.askWhat())
	addr, from, err := d.masterAddr(ctx)
	done()
	if err != nil {
		return nil, err
	}
	rc, err := d.dialMaster(ctx, addr, from)
	if err != nil {
		if ctx.Err() == nil {
			// The sentinel that answered would be asked first next time:
			// if it is the one that is wrong (cut off from the others),
			// the store would follow it forever.
			d.demote(from)
		}
		return nil, err
	}
	if _, s := unwrapSock(rc); s != nil {
		s.stale = func() bool { return d.gen.Load() != gen }
	}
	d.mu.Lock()
	d.master = addr
	if !d.watching && !d.closed {
		d.watching = true
		d.asks.Add(1)
		go d.watch()
	}
	d.mu.Unlock()
	return rc, nil
}

// switchChannel is where sentinels announce a new master:
// "<name> <old ip> <old port> <new ip> <new port>".
const switchChannel = "+switch-master"

// watchPing is how often watch PINGs its sentinel; three missed answers
// and it subscribes to another.
const watchPing = 2 * time.Second

// watch follows the sentinels' announcements of a new master, from the
// first dial until Close, so that no call goes to a master the sentinels
// replaced: a manual failover (SENTINEL FAILOVER) promotes the replica
// while the old master still takes writes, acknowledges them, and loses
// them when it is made a replica, seconds later, and a connection to it
// would never fail meanwhile. It stays subscribed to one sentinel at a
// time, in the order the sentinels are asked, and after (re)subscribing
// asks that sentinel for the master, in case a switch came while no
// subscription was there.
func (d *sentinelDial) watch() {
	defer d.asks.Done()
	for d.life.Err() == nil {
		d.mu.Lock()
		order := slices.Clone(d.order)
		d.mu.Unlock()
		for _, addr := range order {
			if d.life.Err() != nil {
				return
			}
			d.watchOne(addr)
		}
		select { // every sentinel failed: a pause before the next round
		case <-d.life.Done():
		case <-time.After(SentinelTimeout):
		}
	}
}

// watchOne subscribes to one sentinel's switchChannel and follows it
// until the connection fails or the store is closed.
func (d *sentinelDial) watchOne(addr string) {
	ctx, cancel := context.WithTimeout(d.life, SentinelTimeout)
	rc, err := d.dialSentinel(ctx, addr)
	cancel()
	if err != nil {
		return
	}
	defer rc.Close()
	defer context.AfterFunc(d.life, func() { rc.Close() })()
	psc := redis.PubSubConn{Conn: rc}
	if err := psc.Subscribe(switchChannel); err != nil {
		return
	}
	pinging := make(chan struct{})
	defer close(pinging)
	go func() { // a write beside the reads, as redigo allows
		t := time.NewTicker(watchPing)
		defer t.Stop()
		for {
			select {
			case <-pinging:
				return
			case <-t.C:
				if psc.Ping("") != nil {
					return
				}
			}
		}
	}()
	for {
		switch m := psc.ReceiveWithTimeout(3 * watchPing).(type) {
		case redis.Message:
			if f := strings.Fields(string(m.Data)); len(f) == 5 && f[0] == d.url.MasterName {
				d.gen.Add(1)
			}
		case redis.Subscription:
			if m.Kind == "subscribe" {
				d.checkMaster(addr)
			}
		case error:
			return
		}
	}
}

// checkMaster asks sentinel addr for the master and counts a switch when
// it is not the one the last dial reached.
func (d *sentinelDial) checkMaster(addr string) {
	master, err := d.askOne(addr)
	if err != nil {
		return
	}
	d.mu.Lock()
	switched := d.master != "" && d.master != master
	d.mu.Unlock()
	if switched {
		d.gen.Add(1)
	}
}

// dialMaster dials the server that sentinel from named and checks that
// it is the master.
func (d *sentinelDial) dialMaster(ctx context.Context, addr, from string) (redis.Conn, error) {
	defer noteDial(ctx, fmt.Sprintf("master %s of %q", addr, d.url.MasterName))()
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
		return nil, fmt.Errorf("%s, named master of %q by sentinel %s, is a %s (a failover is under way, or that sentinel is cut off; the next call asks again, another sentinel first)", addr, d.url.MasterName, from, name)
	}
	return rc, nil
}

// askWhat is what the question to the sentinels is, for errors.
func (d *sentinelDial) askWhat() string {
	return fmt.Sprintf("ask sentinels %s for master %q", strings.Join(d.url.Addrs, ","), d.url.MasterName)
}

// masterAddr asks the sentinels for the master's address, or waits for
// the question under way: concurrent dials all want the same answer, so
// one question runs at a time, aside, and the dials that come meanwhile
// share it; a dial leaves it when ctx ends. A stale answer is caught by
// the ROLE check.
func (d *sentinelDial) masterAddr(ctx context.Context) (addr, from string, err error) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return "", "", ErrClosed
	}
	a := d.asking
	if a == nil {
		a = &masterAsk{done: make(chan struct{})}
		d.asking = a
		d.asks.Add(1)
		go d.ask(a)
	}
	d.mu.Unlock()
	select {
	case <-a.done:
	case <-ctx.Done():
		return "", "", fmt.Errorf("%s: %w", d.askWhat(), ctx.Err())
	}
	if a.err != nil {
		return "", "", fmt.Errorf("%s: %w", d.askWhat(), a.err)
	}
	return a.addr, a.from, nil
}

// demote puts sentinel addr, whose master could not be used, after the
// other sentinels that answered, so that the next dial asks another
// first; still before those that did not answer, which would cost a
// SentinelTimeout each.
func (d *sentinelDial) demote(addr string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if i := slices.Index(d.order, addr); i >= 0 && !d.silent[addr] {
		d.order = slices.Delete(d.order, i, i+1)
		j := slices.IndexFunc(d.order, func(a string) bool { return d.silent[a] })
		if j < 0 {
			j = len(d.order)
		}
		d.order = slices.Insert(d.order, j, addr)
	}
}

// heard moves sentinel addr, asked with the result err, to the front of
// the order when it named the master, as the Sentinel client guidelines
// say, and to the end when it gave no answer (or an error), so that one
// that hangs costs a SentinelTimeout once, not at every dial. One that
// knows no such master stays where it is.
func (d *sentinelDial) heard(addr string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.silent[addr] = err != nil && !errors.Is(err, errNoMaster)
	i := slices.Index(d.order, addr)
	switch {
	case i < 0:
	case err == nil:
		d.order = slices.Insert(slices.Delete(d.order, i, i+1), 0, addr)
	case d.silent[addr]:
		d.order = append(slices.Delete(d.order, i, i+1), addr)
	}
}

// masterAsk is one question to the sentinels, shared by the dials that
// wait for it; addr (the master's), from (the sentinel that named it) and
// err are set before done is closed.
type masterAsk struct {
	done       chan struct{}
	addr, from string
	err        error
}

// ask asks each sentinel in turn, each within SentinelTimeout, until one
// names the master (see heard for the order). It ends at once when the
// store is closed.
func (d *sentinelDial) ask(a *masterAsk) {
	defer d.asks.Done()
	d.mu.Lock()
	order := slices.Clone(d.order)
	d.mu.Unlock()
	var errs sentinelErrors
	for _, addr := range order {
		if d.life.Err() != nil {
			break
		}
		master, err := d.askOne(addr)
		if d.life.Err() != nil {
			break
		}
		d.heard(addr, err)
		if err == nil {
			a.addr, a.from, errs = master, addr, nil
			break
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
	}
	if d.life.Err() != nil {
		a.addr, a.err = "", ErrClosed
	} else if len(errs) > 0 {
		a.err = errs
	}
	d.mu.Lock()
	d.asking = nil
	d.mu.Unlock()
	close(a.done)
}

// errNoMaster is a sentinel's nil answer: it monitors no master of that
// name.
var errNoMaster = errors.New("monitors no master of that name")

// askOne asks one sentinel for the master, within SentinelTimeout and
// the store's life, on the connection kept from its last answer if that
// is still open, else on a new one.
func (d *sentinelDial) askOne(addr string) (string, error) {
	ctx, cancel := context.WithTimeout(d.life, SentinelTimeout)
	defer cancel()
	d.mu.Lock()
	rc := d.idle[addr]
	delete(d.idle, addr)
	d.mu.Unlock()
	if _, s := unwrapSock(rc); rc != nil && !s.usable() {
		rc.Close() // closed by the sentinel (a restart, a timeout) while idle
		rc = nil
	}
	var hp []string
	for reused := rc != nil; ; reused = false {
		if rc == nil {
			var err error
			if rc, err = d.dialSentinel(ctx, addr); err != nil {
				return "", d.askErr(ctx, err)
			}
		}
		var err error
		hp, err = redis.Strings(redis.DoContext(rc, ctx, "SENTINEL", "get-master-addr-by-name", d.url.MasterName))
		if err == nil && len(hp) != 2 {
			err = fmt.Errorf("malformed get-master-addr-by-name reply %q", hp)
		}
		if err == nil || errors.Is(err, redis.ErrNil) {
			break
		}
		rc.Close()
		var answer redis.Error // the sentinel's own answer, such as NOAUTH
		if reused && !errors.As(err, &answer) && ctx.Err() == nil {
			rc = nil // the kept connection was lost: a new one
			continue
		}
		return "", d.askErr(ctx, err)
	}
	d.mu.Lock()
	if d.closed || d.idle[addr] != nil {
		rc.Close()
	} else {
		d.idle[addr] = rc
	}
	d.mu.Unlock()
	if hp == nil {
		return "", errNoMaster
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

// askErr says why a sentinel gave no answer. Its own timeout is not the
// caller's: it must not read as (nor match) context.DeadlineExceeded.
func (d *sentinelDial) askErr(ctx context.Context, err error) error {
	if ctx.Err() != nil && d.life.Err() == nil {
		return fmt.Errorf("no answer within %v", SentinelTimeout)
	}
	return err
}

// dialSentinel dials one sentinel, the whole dial (TCP, TLS, AUTH)
// bounded by ctx.
func (d *sentinelDial) dialSentinel(ctx context.Context, addr string) (redis.Conn, error) {
	u := url.URL{Scheme: "redis", Host: addr}
	if d.url.SentinelTLS {
		u.Scheme = "rediss"
	}
	// bounded: a caller's own dial function (WithDialOptions) may not
	// end with ctx; the question does.
	return bounded(ctx, func() (redis.Conn, error) {
		return dialSock(ctx, u.String(), min(d.cfg.connectTimeout, SentinelTimeout), d.defaults, d.callers)
	})
}

// sentinelErrors is why no sentinel named the master: one error per
// sentinel asked, in the order asked.
type sentinelErrors []error

func (e sentinelErrors) Error() string {
	s := make([]string, len(e))
	for i, err := range e {
		s[i] = err.Error()
	}
	return strings.Join(s, "; ")
}

func (e sentinelErrors) Unwrap() []error { return e }

// release ends the question under way, closes the store's connections
// to the sentinels and returns once nothing of them is left.
func (d *sentinelDial) release() {
	d.mu.Lock()
	d.closed = true
	idle := d.idle
	d.idle = nil
	d.mu.Unlock()
	d.stop()
	for _, rc := range idle {
		rc.Close()
	}
	d.asks.Wait()
}

// A dial under way says what it waits on through its context, so that a
// caller who leaves while a lane dials for it learns that the call waited
// on the dial, and on what ("connect to redis: ask sentinels ... for
// master ...: context deadline exceeded") rather than only the context's
// error.

type dialNoteKey struct{}

// dialNote is what a dial under way waits on; "" when it says nothing.
// A step of the dial inside another (the master's TCP connect within the
// sentinels' dial) adds to what the outer one says.
type dialNote struct {
	mu   sync.Mutex
	what func() string // nil: nothing
}

// withDialNote returns ctx carrying a note that the dials given it fill.
func withDialNote(ctx context.Context) (context.Context, *dialNote) {
	n := &dialNote{}
	return context.WithValue(ctx, dialNoteKey{}, n), n
}

// noteOf is ctx's note; nil when it has none.
func noteOf(ctx context.Context) *dialNote {
	n, _ := ctx.Value(dialNoteKey{}).(*dialNote)
	return n
}

// noteDial says, in ctx's note if it has one, that the dial now waits on
// what; the returned func puts back what the note said before.
func noteDial(ctx context.Context, what string) func() {
	return noteDialFunc(ctx, func() string { return what })
}

// noteDialFunc is noteDial with what said when it is asked, for a step
// whose state changes while it waits (a TLS handshake answered or not).
func noteDialFunc(ctx context.Context, what func() string) func() {
	n := noteOf(ctx)
	if n == nil {
		return func() {}
	}
	n.mu.Lock()
	outer := n.what
	if outer != nil {
		inner := what
		what = func() string { return outer() + ": " + inner() }
	}
	n.what = what
	n.mu.Unlock()
	return func() {
		n.mu.Lock()
		n.what = outer
		n.mu.Unlock()
	}
}

// get is what the dial waits on now, "" if it said nothing.
func (n *dialNote) get() string {
	if n == nil {
		return ""
	}
	n.mu.Lock()
	what := n.what
	n.mu.Unlock()
	if what == nil {
		return ""
	}
	return what()
}
