package pikkuredis

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Auto-pipelining: a store that owns its connections sends every call
// over a few long-lived connections (lanes). Calls made at the same time
// go out in one write and their replies come back in one read, which is
// what lets one client keep a single-threaded Redis busy (ioredis and
// rueidis do the same).
//
// Calls queue on their lane; whoever takes the lane's write lock hands
// every call queued so far to the connection at once (flat combining).
//
// A call that finds its connection idle is written alone by its caller,
// who then reads the reply itself (direct mode): one round trip with no
// other goroutine involved, as a plain redigo Do. That matters: on a
// machine with few cores, waking a goroutine on another thread costs about
// as much as the round trip itself.
//
// Otherwise (pipelined mode) calls go to the connection's writer
// goroutine, which writes everything handed to it since its last write
// and flushes once, and its reader goroutine reads the replies in order
// and hands each to its caller. Callers never write in this mode, so none
// waits on a write past its context. Under concurrency the connection is
// seldom idle, and calls go out in batches.
//
// A caller waits for its reply or for its context, whichever ends first.
// In pipelined mode a reply that comes after its caller left is read and
// dropped, so the connection stays usable. In direct mode the caller is
// itself reading, and the only way to stop a read mid-way is to close the
// connection; so while a direct call whose context can end is in flight,
// no other call is written behind it (they wait at most that round trip),
// and its caller leaving costs no one else a call: the next call dials a
// new connection. A lost connection fails the calls written on it and is
// replaced on the next call; calls not yet written wait for the new one.
// Reads time out after the IO timeout with no reply at all, which ends
// waits on a stuck or vanished server (a half-open TCP connection).

// busyWindow is how long after calls last overlapped on a lane its calls
// stay in pipelined mode. A direct call whose caller can leave holds the
// calls that come meanwhile for a round trip; under steady concurrency
// that would happen each time the connection happened to drain, so direct
// mode is kept for a lane that has been quiet for a while, where it pays.
const busyWindow = time.Millisecond

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
	dial    func(ctx context.Context) (redis.Conn, error)
	timeout time.Duration   // the IO timeout: how long a reply may take to come
	ctx     context.Context // ends with close, and with it a dial under way
	cancel  context.CancelFunc
	dials   sync.WaitGroup
	note    *dialNote // what the dial under way waits on, if it says (sentinel.go)

	mu        sync.Mutex
	queue     []*call // waiting to be written
	closed    bool
	redialing bool // a dial is under way

	wmu      sync.Mutex // held by whoever writes; guards the fields below
	conn     *laneConn  // nil before the first dial and after a loss
	spare    []*call    // the queue's other buffer
	lastBusy time.Time  // when calls last overlapped on this lane

	retired []*laneConn // (l.mu) connections no call is written on any more, until their replies are in

	cur atomic.Pointer[laneConn] // conn, for Close to reach without wmu
}

func newLane(dial func(context.Context) (redis.Conn, error), timeout time.Duration) *lane {
	ctx, cancel := context.WithCancel(context.Background())
	ctx, note := withDialNote(ctx)
	return &lane{dial: dial, timeout: timeout, ctx: ctx, cancel: cancel, note: note}
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
		l.flush(nil) // what queued behind it while it held them
	} else {
		if done := ctx.Done(); done != nil {
			select {
			case <-c.done:
			case <-done:
				// The call stays with the lane, which drops it unsent or
				// drops its reply; it must not go back to the pool.
				return nil, l.left(ctx, c)
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

// left is the error of a call whose caller left (ctx ended) before its
// reply: ctx's, and, when the call was still waiting for a dial, a
// dial's error saying what the dial waits on (the TCP connect, a TLS
// handshake, the sentinels), so that "context deadline exceeded" never
// hides a server that does not answer the dial.
func (l *lane) left(ctx context.Context, c *call) error {
	err := ctx.Err()
	l.mu.Lock()
	dialing := l.redialing && slices.Contains(l.queue, c)
	l.mu.Unlock()
	if !dialing {
		return err
	}
	what := l.note.get()
	if what == "" {
		what = "the dial under way has not finished"
	}
	return dialFailed(fmt.Errorf("%s: %w", what, err))
}

// flush writes the queue unless someone else is writing, and then again
// while calls keep coming: a caller whose TryLock fails has queued its call
// before, and the writer looks at the queue again after unlocking, so no
// call is left behind. When own went out alone on an idle connection,
// flush returns that connection: the caller reads its reply itself.
func (l *lane) flush(own *call) (direct *laneConn) {
	for l.wmu.TryLock() {
		d, busy, wrote := l.flushLocked(own)
		l.wmu.Unlock()
		if d != nil {
			direct = d
		}
		if hold, _, _ := busy.state(); busy != nil && hold {
			// The direct call's caller writes the queue when its reply
			// is in (or its connection is lost); it stops holding before
			// it tries, so either it sees this unlock or this sees that.
			return direct
		}
		if !wrote && busy == nil { // a dial is under way; it writes the queue when done
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
// out alone in direct mode; busy, when a direct call holds the calls
// behind it; and wrote == false when there is no connection to write on:
// then it starts a dial, which writes the queue when done.
func (l *lane) flushLocked(own *call) (direct, busy *laneConn, wrote bool) {
	l.mu.Lock()
	batch := l.queue
	if l.closed { // Close ran after these calls were queued
		l.queue = nil
		l.mu.Unlock()
		for _, c := range batch {
			finish(c, nil, ErrClosed)
		}
		return nil, nil, true
	}
	if len(batch) == 0 {
		l.mu.Unlock()
		return nil, nil, true
	}
	lc := l.conn
	if lc == nil || lc.broken() {
		l.startRedial(lc)
		l.mu.Unlock()
		return nil, nil, false
	}
	hold, idle, replied := lc.state()
	if hold {
		l.mu.Unlock()
		return nil, lc, false
	}
	now := time.Now()
	if idle && now.Sub(lc.lastSend) >= idleCheckAfter && !lc.sock.usable() {
		// Closed while idle (a server timeout, a load balancer, CLIENT
		// KILL): nothing is in flight on it, so nothing is lost; the
		// queue waits for a new connection.
		lc.fail(errIdleClosed)
		l.startRedial(lc)
		l.mu.Unlock()
		return nil, nil, false
	}
	if lc.sock.superseded() {
		// The sentinels switched the master: no call goes to the old
		// one, whose acknowledged writes are lost when it is made a
		// replica. The calls in flight get their replies (or, when
		// another retired connection still has callers, fail: lost).
		if !l.retire(lc) {
			lc.fail(errSuperseded)
			l.startRedial(lc)
		}
		l.mu.Unlock()
		return nil, nil, false
	}
	if !idle && lc.stalled(replied, now) && l.retire(lc) {
		l.mu.Unlock()
		return nil, nil, false
	}
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
	if !idle {
		now = time.Now() // after the yield
	}
	if !idle || len(batch) > 1 {
		l.lastBusy = now
	}
	lc.lastSend = now
	if idle { // replies will be owed from now: the stall clock starts
		lc.seen, lc.seenAt = replied+lc.sock.bytesRead(), now
	}
	var sent bool
	if idle && len(batch) == 1 && batch[0] == own && now.Sub(l.lastBusy) > busyWindow {
		if sent = lc.sendDirect(own); sent {
			direct = lc
		}
	} else {
		sent = lc.send(batch)
	}
	if !sent {
		// The connection was lost before a byte of these went out: they
		// wait for the next one instead of failing.
		l.mu.Lock()
		l.queue = append(slices.Clone(batch), l.queue...)
		l.startRedial(lc)
		l.mu.Unlock()
	}
	clear(batch)
	l.spare = batch[:0]
	return direct, nil, sent
}

// startRedial starts a dial to replace lost (l.mu held), unless one is
// under way. It runs aside, so that no caller waits on a dial past its own
// context; the queued calls go out on the new connection.
func (l *lane) startRedial(lost *laneConn) {
	if !l.redialing {
		l.redialing = true
		l.dials.Add(1)
		go l.redial(lost)
	}
}

// redial replaces a lost (or not yet made) connection, then writes what
// queued meanwhile; if it cannot, the queued calls fail with its error.
func (l *lane) redial(old *laneConn) {
	defer l.dials.Done()
	if old != nil && old.broken() {
		old.done() // its calls have all been failed
	}
	rc, err := l.dial(l.ctx)
	l.wmu.Lock()
	l.mu.Lock()
	l.redialing = false
	if err == nil && !l.closed {
		l.conn = newLaneConn(rc, l.timeout)
		l.cur.Store(l.conn)
		l.mu.Unlock()
		l.wmu.Unlock()
		l.flush(nil)
		return
	}
	if err == nil { // Close ran meanwhile: it will not see this one
		rc.Close()
	}
	l.conn = nil
	l.cur.Store(nil)
	batch := l.queue
	l.queue = nil
	if l.closed {
		err = ErrClosed
	} else {
		err = dialFailed(err)
	}
	l.mu.Unlock()
	l.wmu.Unlock()
	for _, c := range batch {
		finish(c, nil, err)
	}
	// A call queued after the queue was taken found the write lock held
	// and left the writing to whoever held it: this.
	l.flush(nil)
}

// close fails the queued calls with ErrClosed, closes the connection (the
// calls in flight on it then fail with ErrClosed, and a write blocked on
// it ends) and returns once the lane's goroutines are gone.
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
	if lc := l.cur.Load(); lc != nil {
		lc.fail(ErrClosed) // before taking wmu, which a blocked write holds
	}
	l.mu.Lock()
	retired := l.retired
	l.retired = nil
	l.mu.Unlock()
	for _, lc := range retired {
		lc.fail(ErrClosed)
	}
	l.wmu.Lock()
	lc := l.conn
	l.wmu.Unlock()
	if lc != nil {
		lc.fail(ErrClosed)
		lc.done()
	}
	for _, lc := range retired {
		lc.done()
	}
	l.dials.Wait()
}

// retire stops writing on lc (l.mu and wmu held), which has read nothing
// for stallAfter while replies are owed: a connection a middlebox dropped
// silently looks just like that, and calls written on it would wait for
// the IO timeout. The calls in flight on it stay there and get their
// replies if they come (a server that is merely slow answers them); it is
// closed once they are all in, or at the IO timeout. New calls go to a
// new connection, dialled now. One retired connection per lane at a time:
// a second stall while the first one's callers still wait is a slow
// server, not a dropped connection, and retiring again would only pile up
// connections; one whose callers have all left is closed instead. It says
// whether lc was retired.
func (l *lane) retire(lc *laneConn) bool {
	kept := l.retired[:0]
	for _, old := range l.retired {
		if old.broken() {
			select {
			case <-old.readerDone:
				continue // gone: forget it
			default:
			}
		} else if old.awaited() {
			return false
		} else {
			old.fail(errRetired) // no one waits on it: close it now
		}
		kept = append(kept, old)
	}
	l.retired = append(kept, lc)
	lc.retire()
	l.conn = nil
	l.cur.Store(nil)
	l.startRedial(lc)
	return true
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
	rc   redis.Conn
	sock *sock       // the socket under rc; nil when the caller's dial function made it
	rr   *respReader // reads the replies off sock; nil: rc reads them (resp.go)

	// Guarded by the lane's wmu:
	lastSend time.Time // when a call was last written
	seen     uint64    // replies and bytes read, when last looked at
	seenAt   time.Time // when seen last changed (or replies began to be owed)

	mu       sync.Mutex
	inflight []*call // a FIFO: inflight[head:] await the reader
	head     int
	direct   bool // a direct call is in flight, ahead of inflight
	hold     bool // ... and no call may be written behind it
	written  int  // inflight[:written] have been taken by the writer
	// inflight[:sent] have been handed to the connection (Send): the
	// reader reads replies for these only. A call taken but not yet
	// handed over may still be dropped unsent (unsend), so a reader
	// waiting on it could read the reply of a later call as its own.
	sent    int
	gen     uint64      // counts direct calls, so that a late AfterFunc is a no-op
	stop    func() bool // stops the direct call's AfterFunc
	err     error       // set once, when the connection is lost
	wake    chan struct{}
	replied uint64 // replies read so far
	retired bool   // no call is written on it any more (lane.retire)

	sending    sync.Mutex    // held while writing: one writer at a time
	wwake      chan struct{} // the writer's wake-up
	lost       atomic.Bool
	readerDone chan struct{}
	writerDone chan struct{}
}

func newLaneConn(rc redis.Conn, timeout time.Duration) *laneConn {
	rc, s := unwrapSock(rc)
	var rr *respReader
	if s.plain() {
		rr = newRESPReader(s, timeout)
	}
	lc := &laneConn{
		rc:         rc,
		sock:       s,
		rr:         rr,
		lastSend:   time.Now(),
		wake:       make(chan struct{}, 1),
		wwake:      make(chan struct{}, 1),
		readerDone: make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	go lc.read()
	go lc.write()
	return lc
}

// done returns once the connection's goroutines are gone, which a lost
// connection's are soon: every call on it has been failed by then.
func (lc *laneConn) done() {
	<-lc.readerDone
	<-lc.writerDone
}

func (lc *laneConn) broken() bool { return lc.lost.Load() }

// stalled says whether nothing at all has been read on lc for stallAfter
// while replies are owed (wmu held; replied from state).
func (lc *laneConn) stalled(replied uint64, now time.Time) bool {
	seen := replied + lc.sock.bytesRead()
	if seen != lc.seen {
		lc.seen, lc.seenAt = seen, now
		return false
	}
	return now.Sub(lc.seenAt) >= stallAfter
}

// retire marks lc as taking no more calls: its reader closes it once the
// replies owed are in.
func (lc *laneConn) retire() {
	lc.mu.Lock()
	lc.retired = true
	lc.mu.Unlock()
	lc.signal()
}

// awaited says whether a caller still waits for a reply on lc.
func (lc *laneConn) awaited() bool {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if lc.direct {
		return true
	}
	for _, c := range lc.inflight[lc.head:] {
		if c.ctx.Err() == nil {
			return true
		}
	}
	return false
}

// state says, in one look, whether a direct call in flight holds the
// calls behind it (its caller can leave, and leaving closes the
// connection, which must then carry no one else's call), and whether no
// call is in flight at all.
func (lc *laneConn) state() (hold, idle bool, replied uint64) {
	if lc == nil {
		return false, false, 0
	}
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return lc.hold && lc.err == nil, !lc.direct && lc.head == len(lc.inflight), lc.replied
}

func (lc *laneConn) signal() { poke(lc.wake) }

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// sendDirect writes one call whose caller will read the reply itself, and
// says false when the connection was lost before (nothing was written).
// From here until its reply is read, the caller's context ending closes
// the connection: there is no other way to stop a write or a read
// mid-way.
func (lc *laneConn) sendDirect(c *call) bool {
	lc.mu.Lock()
	if lc.err != nil {
		lc.mu.Unlock()
		return false
	}
	lc.direct = true
	lc.gen++
	lc.stop = noStop
	if ctx := c.ctx; ctx.Done() != nil {
		lc.hold = true
		gen := lc.gen
		lc.stop = context.AfterFunc(ctx, func() {
			// Only while this call is still unanswered: checked in the
			// same critical section as the failing, so that a late run
			// cannot close the connection under a later call. No call
			// is behind it (hold); its caller returns its context's
			// error.
			lc.failWhen(func() bool { return lc.direct && lc.gen == gen },
				fmt.Errorf("redis connection lost: closed when the caller of a call on it left (%v)", ctx.Err()))
		})
	}
	lc.mu.Unlock()
	lc.sending.Lock()
	err := lc.rc.Send(c.cmd, c.args...)
	if err == nil {
		err = lc.rc.Flush()
	}
	lc.sending.Unlock()
	if err != nil {
		lc.fail(fmt.Errorf("redis connection lost: %w", err))
	}
	return true
}

func noStop() bool { return true }

// errRetired closes a retired connection; no call sees it (a call still
// in flight on it when it is closed early has been left by its caller).
var errRetired = errors.New("redis connection lost: retired after reading nothing while replies were owed")

// readDirect reads the reply of the direct call, then leaves the calls
// written behind it to the reader.
func (lc *laneConn) readDirect(ctx context.Context) (any, error) {
	reply, err := lc.receive()
	lc.mu.Lock()
	stop := lc.stop
	if err == nil || isReplyError(err) {
		lc.direct, lc.hold = false, false
		lc.replied++
	}
	lc.stop = nil
	behind := lc.head < len(lc.inflight) || lc.retired // retired: its reader closes it
	lc.mu.Unlock()
	stop()
	if err != nil && !isReplyError(err) {
		lc.fail(fmt.Errorf("redis connection lost: %w", err))
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		lc.mu.Lock()
		err = lc.err // the first cause: Close, or this error
		lc.mu.Unlock()
		return nil, err
	}
	if retires(err) { // Redis closes the connection now, or it leads to the wrong server
		lc.fail(&notRun{reply: err.(redis.Error)})
	} else if behind {
		lc.signal()
	}
	return reply, err
}

// send hands a batch to the connection's writer goroutine (pipelined
// mode), and says false when the connection was lost before (nothing of it
// will be written). The calls join the FIFO now, in the order they will
// be written, so that the reader always knows whose reply it reads.
// Callers never write in this mode, so none waits on a write past its
// context: a write to a server that stopped reading holds only the writer
// goroutine, until the connection is lost (the IO timeout) or closed.
func (lc *laneConn) send(batch []*call) bool {
	if len(batch) == 0 {
		return true
	}
	lc.mu.Lock()
	if lc.err != nil {
		lc.mu.Unlock()
		return false
	}
	if lc.head == len(lc.inflight) { // all replied, so all written
		clear(lc.inflight)
		lc.inflight, lc.head, lc.written, lc.sent = lc.inflight[:0], 0, 0, 0
	}
	lc.inflight = append(lc.inflight, batch...)
	lc.mu.Unlock()
	poke(lc.wwake)
	lc.signal()
	return true
}

// write is the connection's writer goroutine: it writes every call handed
// to it since its last write, and flushes once.
func (lc *laneConn) write() {
	defer close(lc.writerDone)
	var batch []*call
	for {
		lc.mu.Lock()
		for lc.err == nil && lc.written == len(lc.inflight) {
			lc.mu.Unlock()
			<-lc.wwake
			lc.mu.Lock()
		}
		if lc.err != nil {
			lc.mu.Unlock()
			return
		}
		batch = append(batch[:0], lc.inflight[lc.written:]...)
		lc.written = len(lc.inflight)
		lc.mu.Unlock()
		// Held until the last Send: a reader failing the calls in
		// flight waits for it, so that no call is finished (and reused
		// by its caller) while this still reads it.
		lc.sending.Lock()
		var err error
		handed := 0
		for _, c := range batch {
			// Looked at again right before its bytes go out: an earlier
			// write may have blocked for long (a server that stopped
			// reading), and a call whose caller left is never sent.
			if cerr := c.ctx.Err(); cerr != nil {
				lc.unsend(c, cerr)
				continue
			}
			handed++ // its bytes may go out from here on, even if Send fails
			if err = lc.rc.Send(c.cmd, c.args...); err != nil {
				break
			}
		}
		// The reader may read for these now (unsend removed the others,
		// all after lc.sent, so the ones before keep their places).
		lc.mu.Lock()
		lc.sent += handed
		lc.mu.Unlock()
		lc.signal()
		if err == nil {
			err = lc.rc.Flush()
		}
		lc.sending.Unlock()
		clear(batch)
		if err != nil {
			lc.fail(fmt.Errorf("redis connection lost: %w", err))
		}
	}
}

// unsend takes c, not written, out of the FIFO (so that the reader pairs
// the replies with the calls written) and finishes it with err. Only the
// writer calls it, holding sending; the calls after c in the FIFO are not
// written yet either, so no reply the reader is matching can be theirs.
func (lc *laneConn) unsend(c *call, err error) {
	lc.mu.Lock()
	i := slices.Index(lc.inflight[lc.head:], c)
	if i >= 0 {
		i += lc.head
		lc.inflight = slices.Delete(lc.inflight, i, i+1)
		lc.written--
	}
	lc.mu.Unlock()
	if i >= 0 {
		finish(c, nil, err)
	}
}

// fail marks the connection lost (once) and closes it, which ends any read
// on it; the reader then fails every call in flight with err.
func (lc *laneConn) fail(err error) { lc.failWhen(nil, err) }

// failWhen fails the connection if still (called with lc.mu held) says so.
func (lc *laneConn) failWhen(still func() bool, err error) {
	lc.mu.Lock()
	if lc.err != nil || (still != nil && !still()) {
		lc.mu.Unlock()
		return
	}
	lc.err = err
	lc.lost.Store(true)
	lc.mu.Unlock()
	lc.rc.Close()
	lc.signal()
	poke(lc.wwake)
}

// read is the connection's reader goroutine. It reads only while pipelined
// calls wait, and not while a direct call's caller reads the reply ahead
// of theirs; so the read timeout measures the server's silence towards a
// waiting call, never idleness.
func (lc *laneConn) read() {
	defer close(lc.readerDone)
	for {
		lc.mu.Lock()
		for lc.err == nil && (lc.direct || lc.head >= lc.sent) {
			if lc.retired && !lc.direct && lc.head == len(lc.inflight) { // every reply owed is in
				lc.mu.Unlock()
				lc.fail(errRetired)
				lc.mu.Lock()
				continue
			}
			lc.mu.Unlock()
			<-lc.wake
			lc.mu.Lock()
		}
		if lc.err != nil {
			lc.mu.Unlock()
			lc.sending.Lock() // see write
			lc.mu.Lock()
			rest := lc.inflight[lc.head:]
			owed := max(0, lc.sent-lc.head) // handed over, so maybe applied
			lc.inflight, lc.head = nil, 0
			err := lc.err
			lc.mu.Unlock()
			lc.sending.Unlock()
			for i, c := range rest {
				if i < owed {
					finish(c, nil, err)
				} else { // never handed to the connection: conn.do sends it again
					finish(c, nil, &notSent{cause: err})
				}
			}
			return
		}
		lc.mu.Unlock()

		reply, err := lc.receive()
		if err != nil && !isReplyError(err) {
			lc.fail(fmt.Errorf("redis connection lost: %w", err))
			continue
		}
		lc.mu.Lock()
		c := lc.inflight[lc.head]
		lc.inflight[lc.head] = nil
		lc.head++
		lc.replied++
		lc.mu.Unlock()
		if retires(err) { // Redis closes the connection now, or it leads to the wrong server
			// Before the caller hears: its next call must not find
			// this connection usable.
			lc.fail(&notRun{reply: err.(redis.Error)})
		}
		finish(c, reply, err)
	}
}

// receive reads the next reply: with the store's own reader where it can
// read the socket, else with redigo's. The two give the same shapes, but
// for an array, which the store's reader leaves as a rawArray for the
// caller to decode (see conn.doOn).
func (lc *laneConn) receive() (any, error) {
	if lc.rr != nil {
		return lc.rr.next()
	}
	return lc.rc.Receive()
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
//
// A call with an argument over bulkArg bytes goes over a lane of its own,
// bulk, dialled on first use: Redis may refuse such a value and then
// closes the connection at once, while it still reads the value, so that
// the calls written with it on that connection are lost. (redigo closes its connection on the failed write,
// so their replies, sent before the refusal, cannot be read either.) On
// the bulk lane they cost only each other; no call under the limit shares
// its connection, and the small calls do not wait behind megabytes being
// written either.
type lanes struct {
	all  []*lane
	bulk *lane
	next atomic.Uint32
}

// bulkArg is the longest argument sent over the main lanes: 512 KiB, half
// of the least that any Redis must take. Redis refuses an argument over
// proto-max-bulk-len, and closes a connection whose query buffer, which
// holds a large argument and its line end, passes
// client-query-buffer-limit; both are at least 1mb (Redis 7.0's
// config.c), and the margin covers the line end and whatever else the
// buffer holds.
const bulkArg = 1 << 19

func newLanes(n int, dial func(context.Context) (redis.Conn, error), timeout time.Duration) *lanes {
	ls := &lanes{all: make([]*lane, n), bulk: newLane(dial, timeout)}
	for i := range ls.all {
		ls.all[i] = newLane(dial, timeout)
	}
	return ls
}

var _ transport = (*lanes)(nil)

// do sends one command over the next lane, or over the bulk lane when an
// argument is long.
func (ls *lanes) do(ctx context.Context, cmd string, args []any) (any, error) {
	l := ls.bulk
	if !hasBulk(args) {
		l = ls.all[0]
		if len(ls.all) > 1 {
			l = ls.all[ls.next.Add(1)%uint32(len(ls.all))]
		}
	}
	reply, err := l.do(ctx, cmd, args)
	if err != nil {
		return nil, ctxErr(ctx, err)
	}
	return reply, nil
}

// tries is two: a lane retires the connection of a refused call, and its
// next call dials.
func (ls *lanes) tries() int { return 2 }

// hasBulk says whether an argument is longer than bulkArg.
// The stores pass keys, ids and values as strings and byte slices; other
// types are short (numbers).
func hasBulk(args []any) bool {
	for _, a := range args {
		switch v := a.(type) {
		case string:
			if len(v) > bulkArg {
				return true
			}
		case []byte:
			if len(v) > bulkArg {
				return true
			}
		}
	}
	return false
}

// close closes every lane, failing the calls still waiting with ErrClosed.
func (ls *lanes) close() error {
	var wg sync.WaitGroup
	for _, l := range append(ls.all, ls.bulk) {
		wg.Add(1)
		go func() { defer wg.Done(); l.close() }()
	}
	wg.Wait()
	return nil
}
