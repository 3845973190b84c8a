package pikkuredis

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/gomodule/redigo/redis"
)

// Auto-pipelining: a store that owns its connections sends every call
// over a few long-lived connections (lanes). Calls made at the same time
// go out in one write and their replies come back in one read, which is
// what lets one client keep a single-threaded Redis busy (ioredis and
// rueidis do the same).
//
// Writing is done by the callers themselves (flat combining): a caller
// queues its call, and whoever takes the lane's write lock writes every
// call queued so far in one go.
//
// Reading has two modes. A call that finds its connection idle is written
// alone and its caller reads the reply itself (direct mode): one round
// trip with no other goroutine involved, as a plain redigo Do. That
// matters: on a machine with few cores, waking a goroutine on another
// thread costs about as much as the round trip itself. Calls that come
// meanwhile are written at once behind it; a reader goroutine per
// connection reads their replies, in order, once the direct reply is in,
// and hands each to its caller (pipelined mode). Under concurrency the
// connection is seldom idle, and calls go out in batches.
//
// A caller waits for its reply or for its context, whichever ends first.
// In pipelined mode a reply that comes after its caller left is read and
// dropped, so the connection stays usable. In direct mode the caller is
// itself reading, and the only way to stop a read mid-way is to close the
// connection: the calls written behind it then fail as on a lost
// connection, and the next call dials a new one. A lost connection fails
// the calls written on it and is replaced on the next call. Reads time out
// after the IO timeout with no reply at all, which ends waits on a stuck
// or vanished server (a half-open TCP connection).

// call is one command on its way through a lane.
type call struct {
	ctx   context.Context
	cmd   string
	args  []any
	reply any
	err   error
	done  chan struct{} // receives once, when reply and err are set
}

var callPool = sync.Pool{New: func() any { return &call{done: make(chan struct{}, 1)} }}

func finish(c *call, reply any, err error) {
	c.reply, c.err = reply, err
	c.done <- struct{}{}
}

// lane is one multiplexed connection slot.
type lane struct {
	dial   func(ctx context.Context) (redis.Conn, error)
	ctx    context.Context // ends with close, and with it a dial under way
	cancel context.CancelFunc
	dials  sync.WaitGroup

	mu        sync.Mutex
	queue     []*call // waiting to be written
	closed    bool
	redialing bool // a dial is under way

	wmu   sync.Mutex // held by whoever writes; guards the fields below
	conn  *laneConn  // nil before the first dial and after a loss
	spare []*call    // the queue's other buffer
}

func newLane(dial func(context.Context) (redis.Conn, error)) *lane {
	ctx, cancel := context.WithCancel(context.Background())
	return &lane{dial: dial, ctx: ctx, cancel: cancel}
}

// do sends one command and waits for its reply, or for ctx.
func (l *lane) do(ctx context.Context, cmd string, args []any) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c := callPool.Get().(*call)
	c.ctx, c.cmd, c.args = ctx, cmd, args
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		*c = call{done: c.done}
		callPool.Put(c)
		return nil, ErrClosed
	}
	l.queue = append(l.queue, c)
	l.mu.Unlock()
	var reply any
	var err error
	if lc := l.flush(c); lc != nil {
		reply, err = lc.readDirect(ctx)
	} else {
		if done := ctx.Done(); done != nil {
			select {
			case <-c.done:
			case <-done:
				// The call stays with the lane, which drops it unsent or
				// drops its reply; it must not go back to the pool.
				return nil, ctx.Err()
			}
		} else {
			<-c.done
		}
		reply, err = c.reply, c.err
	}
	*c = call{done: c.done}
	callPool.Put(c)
	return reply, err
}

// flush writes the queue unless someone else is writing, and then again
// while calls keep coming: a caller whose TryLock fails has queued its call
// before, and the writer looks at the queue again after unlocking, so no
// call is left behind. When own went out alone on an idle connection,
// flush returns that connection: the caller reads its reply itself.
func (l *lane) flush(own *call) (direct *laneConn) {
	for l.wmu.TryLock() {
		d, wrote := l.flushLocked(own)
		l.wmu.Unlock()
		if d != nil {
			direct = d
		}
		if !wrote { // a dial is under way; it writes the queue when done
			return direct
		}
		own = nil
		l.mu.Lock()
		more := len(l.queue) > 0 && !l.redialing
		l.mu.Unlock()
		if !more {
			return direct
		}
	}
	return direct
}

// flushLocked writes the queue. It returns the connection when own went
// out alone in direct mode, and wrote == false when there is no connection
// to write on: then it starts a dial, which writes the queue when done.
func (l *lane) flushLocked(own *call) (direct *laneConn, wrote bool) {
	l.mu.Lock()
	batch := l.queue
	if l.closed { // Close ran after these calls were queued
		l.queue = nil
		l.mu.Unlock()
		for _, c := range batch {
			finish(c, nil, ErrClosed)
		}
		return nil, true
	}
	lc := l.conn
	if lc == nil || lc.broken() {
		// Dial aside: no caller waits on a dial past its own context.
		// The calls stay queued and go out on the new connection.
		if !l.redialing {
			l.redialing = true
			l.dials.Add(1)
			go l.redial(lc)
		}
		l.mu.Unlock()
		return nil, false
	}
	idle := lc.idle()
	if !idle {
		// Calls are in flight, so their callers will soon queue the next
		// ones: let those that are ready run first, so that one write
		// carries them all. Fewer, larger writes are what pipelining is
		// for.
		l.mu.Unlock()
		runtime.Gosched()
		l.mu.Lock()
		batch = l.queue
	}
	l.queue = l.spare[:0]
	l.mu.Unlock()
	batch = dropCancelled(batch)
	if idle && len(batch) == 1 && batch[0] == own {
		lc.sendDirect(own)
		direct = lc
	} else {
		lc.send(batch)
	}
	clear(batch)
	l.spare = batch[:0]
	return direct, true
}

// redial replaces a lost (or not yet made) connection, then writes what
// queued meanwhile; if it cannot, the queued calls fail with its error.
func (l *lane) redial(old *laneConn) {
	defer l.dials.Done()
	if old != nil {
		<-old.readerDone // its calls have all been failed
	}
	rc, err := l.dial(l.ctx)
	l.wmu.Lock()
	if err == nil {
		l.conn = newLaneConn(rc)
		l.mu.Lock()
		l.redialing = false
		l.mu.Unlock()
		l.wmu.Unlock()
		l.flush(nil)
		return
	}
	l.conn = nil
	l.mu.Lock()
	l.redialing = false
	batch := l.queue
	l.queue = nil
	if l.closed {
		err = ErrClosed
	} else {
		err = fmt.Errorf("connect to redis: %w", err)
	}
	l.mu.Unlock()
	l.wmu.Unlock()
	for _, c := range batch {
		finish(c, nil, err)
	}
}

// close fails the queued calls with ErrClosed, closes the connection (the
// calls in flight on it then fail with ErrClosed) and returns once the
// lane's goroutines are gone.
func (l *lane) close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	batch := l.queue
	l.queue = nil
	l.mu.Unlock()
	l.cancel()
	for _, c := range batch {
		finish(c, nil, ErrClosed)
	}
	l.wmu.Lock()
	lc := l.conn
	l.wmu.Unlock()
	if lc != nil {
		lc.fail(ErrClosed)
		<-lc.readerDone
	}
	l.dials.Wait()
}

// dropCancelled finishes the calls whose caller has left, so that they are
// never sent, and returns the others.
func dropCancelled(batch []*call) []*call {
	kept := batch[:0]
	for _, c := range batch {
		if err := c.ctx.Err(); err != nil {
			finish(c, nil, err)
			continue
		}
		kept = append(kept, c)
	}
	clear(batch[len(kept):])
	return kept
}

// laneConn is one connection of a lane and the calls written on it, in
// the order their replies will come.
type laneConn struct {
	rc redis.Conn

	mu       sync.Mutex
	inflight []*call // a FIFO: inflight[head:] await the reader
	head     int
	direct   bool  // a direct call is in flight, ahead of inflight
	err      error // set once, when the connection is lost
	wake     chan struct{}

	sending    sync.Mutex // held while a batch is being sent
	lost       atomic.Bool
	readerDone chan struct{}
}

func newLaneConn(rc redis.Conn) *laneConn {
	lc := &laneConn{rc: rc, wake: make(chan struct{}, 1), readerDone: make(chan struct{})}
	go lc.read()
	return lc
}

func (lc *laneConn) broken() bool { return lc.lost.Load() }

// idle says whether no call is in flight.
func (lc *laneConn) idle() bool {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return !lc.direct && lc.head == len(lc.inflight)
}

func (lc *laneConn) signal() {
	select {
	case lc.wake <- struct{}{}:
	default:
	}
}

// sendDirect writes one call whose caller will read the reply itself.
func (lc *laneConn) sendDirect(c *call) {
	lc.mu.Lock()
	lc.direct = true
	lc.mu.Unlock()
	err := lc.rc.Send(c.cmd, c.args...)
	if err == nil {
		err = lc.rc.Flush()
	}
	if err != nil {
		lc.fail(fmt.Errorf("redis connection lost: %w", err))
	}
}

// readDirect reads the reply of the direct call, then leaves the calls
// written behind it to the reader. The caller leaving closes the
// connection, which ends the read: there is no other way to stop a read
// mid-way.
func (lc *laneConn) readDirect(ctx context.Context) (any, error) {
	stop := func() bool { return true }
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() {
			// Not wrapped: the calls behind it fail for a lost
			// connection, not for a context of theirs.
			lc.fail(fmt.Errorf("redis connection lost: closed when the caller reading a reply on it left (%v)", ctx.Err()))
		})
	}
	reply, err := lc.rc.Receive()
	stop()
	if err != nil && !isReplyError(err) {
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		lc.fail(fmt.Errorf("redis connection lost: %w", err))
		lc.mu.Lock()
		err = lc.err // the first cause: Close, or this error
		lc.mu.Unlock()
		return nil, err
	}
	lc.mu.Lock()
	lc.direct = false
	behind := lc.head < len(lc.inflight)
	lc.mu.Unlock()
	if behind {
		lc.signal()
	}
	return reply, err
}

// send writes a batch in pipelined mode (the caller holds the lane's write
// lock). The calls join the FIFO before their bytes can reach the wire, so
// that the reader always knows whose reply it reads.
func (lc *laneConn) send(batch []*call) {
	if len(batch) == 0 {
		return
	}
	// Held until the last Send: a reader failing the calls in flight
	// waits for it, so that no call is finished (and reused by its
	// caller) while this still reads it.
	lc.sending.Lock()
	defer lc.sending.Unlock()
	lc.mu.Lock()
	if lc.err != nil {
		err := lc.err
		lc.mu.Unlock()
		for _, c := range batch {
			finish(c, nil, err)
		}
		return
	}
	if lc.head == len(lc.inflight) {
		clear(lc.inflight)
		lc.inflight, lc.head = lc.inflight[:0], 0
	}
	lc.inflight = append(lc.inflight, batch...)
	lc.mu.Unlock()
	lc.signal()
	var err error
	for _, c := range batch {
		if err = lc.rc.Send(c.cmd, c.args...); err != nil {
			break
		}
	}
	if err == nil {
		err = lc.rc.Flush()
	}
	if err != nil {
		lc.fail(fmt.Errorf("redis connection lost: %w", err))
	}
}

// fail marks the connection lost (once) and closes it, which ends any read
// on it; the reader then fails every call in flight with err.
func (lc *laneConn) fail(err error) {
	lc.mu.Lock()
	if lc.err != nil {
		lc.mu.Unlock()
		return
	}
	lc.err = err
	lc.lost.Store(true)
	lc.mu.Unlock()
	lc.rc.Close()
	lc.signal()
}

// read is the connection's reader goroutine. It reads only while pipelined
// calls wait, and not while a direct call's caller reads the reply ahead
// of theirs; so the read timeout measures the server's silence towards a
// waiting call, never idleness.
func (lc *laneConn) read() {
	defer close(lc.readerDone)
	for {
		lc.mu.Lock()
		for lc.err == nil && (lc.direct || lc.head == len(lc.inflight)) {
			lc.mu.Unlock()
			<-lc.wake
			lc.mu.Lock()
		}
		if lc.err != nil {
			lc.mu.Unlock()
			lc.sending.Lock() // see send
			lc.mu.Lock()
			rest := lc.inflight[lc.head:]
			lc.inflight, lc.head = nil, 0
			err := lc.err
			lc.mu.Unlock()
			lc.sending.Unlock()
			for _, c := range rest {
				finish(c, nil, err)
			}
			return
		}
		lc.mu.Unlock()

		reply, err := lc.rc.Receive()
		if err != nil && !isReplyError(err) {
			lc.fail(fmt.Errorf("redis connection lost: %w", err))
			continue
		}
		lc.mu.Lock()
		c := lc.inflight[lc.head]
		lc.inflight[lc.head] = nil
		lc.head++
		lc.mu.Unlock()
		finish(c, reply, err)
	}
}

// isReplyError says whether err is Redis's answer to the call (an error
// reply, such as NOSCRIPT or WRONGTYPE) rather than a failure of the
// connection. redigo returns those as redis.Error, unwrapped; a type
// assertion, unlike errors.As, costs no allocation on every reply.
func isReplyError(err error) bool {
	_, ok := err.(redis.Error)
	return ok
}

// lanes spreads calls over a store's lanes.
type lanes struct {
	all  []*lane
	next atomic.Uint32
}

func newLanes(n int, dial func(context.Context) (redis.Conn, error)) *lanes {
	ls := &lanes{all: make([]*lane, n)}
	for i := range ls.all {
		ls.all[i] = newLane(dial)
	}
	return ls
}

func (ls *lanes) do(ctx context.Context, cmd string, args []any) (any, error) {
	l := ls.all[0]
	if len(ls.all) > 1 {
		l = ls.all[int(ls.next.Add(1))%len(ls.all)]
	}
	return l.do(ctx, cmd, args)
}

func (ls *lanes) close() {
	var wg sync.WaitGroup
	for _, l := range ls.all {
		wg.Add(1)
		go func() { defer wg.Done(); l.close() }()
	}
	wg.Wait()
}
