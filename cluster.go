package pikkuredis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/mna/redisc"

	"github.com/pikkujs/pikkuredis/internal/redisurl"
)

// ClusterTimeout bounds each question the store asks a cluster node about
// the cluster itself (CLUSTER SLOTS, when the slot map is read): nodes
// answer it from memory, so one that takes longer is taken for down (a
// hung master) and the next is asked. It is not WithIOTimeout, which
// bounds the replies to the store's calls.
const ClusterTimeout = time.Second

// How a call follows the cluster's redirections.
const (
	// clusterTries bounds the sends of one call: a MOVED costs one, so
	// a slot that moves again and again while a call
	// follows it (a resharding that shuffles it back and forth) ends
	// with an error rather than a loop.
	clusterTries = 8
	// tryAgainWait is the pause after TRYAGAIN (a multi-key call while
	// its slot is half migrated), which lasts only as long as a MIGRATE
	// batch.
	tryAgainWait = 20 * time.Millisecond
	// refreshGap is the least time between two reads of the slot map
	// that connection faults ask for: during a failover every call to
	// the lost master fails, and one read per gap is enough to see the
	// promotion as soon as the cluster has made it.
	refreshGap = 100 * time.Millisecond
)

// clusterTransport sends each call to the master that owns the slot of
// its first key (Redis Cluster), in one of two ways:
//
//   - auto-pipelined (a store opened from a redis+cluster:// URL): over
//     lanes of its own to each master, the slot map kept here, so that
//     the calls to one master share its writes and reads as on one
//     server;
//   - pooled (a caller's *redisc.Cluster, or a cluster URL with
//     WithoutAutoPipelining): on a redisc connection bound to the key's
//     slot, one per call.
//
// Both follow MOVED (the slot map updated at once, then read again whole
// in the background), ASK (the call sent after ASKING to the node that is
// importing the slot), and TRYAGAIN (a short pause, then again). A
// connection fault also has the slot map read again in the background:
// redisc reads it only on MOVED, and a master that hangs, or is gone,
// sends none, so the calls to it would fail until something else moved.
type clusterTransport struct {
	cluster *redisc.Cluster
	owned   bool // the store built cluster, and closes it
	cfg     config
	// dialNode dials the node at an address the slot map names, for
	// the lanes and for ASK; nil for a caller's cluster, whose dial
	// options are its own.
	dialNode func(addr string) func(context.Context) (redis.Conn, error)
	life     context.Context // ends with close: the dials of the owned pools
	stop     context.CancelFunc
	closed   atomic.Bool

	// Auto-pipelined only: the master of each slot, nil where none is
	// known, and every master's lanes by address (kept once made, so
	// that a call under way on a node that left the map is not cut).
	pipelined bool
	slots     [redisc.HashSlots]atomic.Pointer[clusterNode]
	masterSet atomic.Pointer[[]*clusterNode] // the masters of the last map, by address
	mapped    atomic.Bool                    // the slot map has been read
	mu        sync.Mutex
	nodes     map[string]*clusterNode

	refreshMu   sync.Mutex
	refreshing  *refreshCall // the read of the slot map under way, if any
	lastRefresh time.Time

	// refused is the last failure of a node's dial that a new dial would
	// repeat (refusedForGood: a wrong password, TLS), nil once a dial
	// succeeds: redisc's own errors ("all nodes failed") keep only the
	// text of the nodes' errors, so a refusal is told from it here.
	refused atomic.Pointer[error]
}

// recordDial wraps a node's dial of a cluster the store opened, to keep
// refused up to date.
func (ct *clusterTransport) recordDial(dial func(context.Context) (redis.Conn, error)) func(context.Context) (redis.Conn, error) {
	return func(ctx context.Context) (redis.Conn, error) {
		rc, err := dial(ctx)
		switch {
		case err == nil:
			ct.refused.Store(nil)
		case refusedForGood(err):
			ct.refused.Store(&err)
		}
		return rc, err
	}
}

// refusedDial is the error of a call that failed to reach the cluster
// when its nodes' dials are refused for good (refused): a dial's error,
// but not ErrConnection; nil otherwise.
func (ct *clusterTransport) refusedDial(what string) error {
	if p := ct.refused.Load(); p != nil {
		return &dialError{err: fmt.Errorf("%s: %w", what, *p), refused: true}
	}
	return nil
}

// clusterNode is one master's lanes.
type clusterNode struct {
	addr  string
	lanes *lanes
}

// refreshCall is one read of the slot map, which callers may wait for.
type refreshCall struct {
	done chan struct{}
	err  error
}

var (
	_ transport = (*clusterTransport)(nil)
	_ servers   = (*clusterTransport)(nil)
	_ Pool      = (*redisc.Cluster)(nil)
)

// clusterOver is the transport of a store over a caller's cluster: pooled
// (its pools, dial options and timeouts), never closed by the store.
func clusterOver(c *redisc.Cluster, cfg config) *clusterTransport {
	ct := &clusterTransport{cluster: c, cfg: cfg}
	ct.life, ct.stop = context.WithCancel(context.Background())
	return ct
}

// openCluster builds the cluster client of a store opened from a
// redis+cluster:// URL: its seed nodes, and a dial per node with the
// URL's credentials and TLS and the store's options. Nothing is dialled
// yet.
func openCluster(rawURL string, cfg config) (*clusterTransport, error) {
	u, err := redisurl.ParseCluster(rawURL)
	if err != nil {
		return nil, &urlError{err}
	}
	// The nodes' URLs are well formed (ParseCluster built them), so
	// dialer fails on none; it is checked once here all the same.
	if _, err := dialer(u.NodeURL(u.Addrs[0]), cfg); err != nil {
		return nil, err
	}
	ct := &clusterTransport{owned: true, cfg: cfg, pipelined: cfg.pipelineConns > 0, nodes: map[string]*clusterNode{}}
	ct.life, ct.stop = context.WithCancel(context.Background())
	ct.dialNode = func(addr string) func(context.Context) (redis.Conn, error) {
		d, _ := dialer(u.NodeURL(addr), cfg)
		return ct.recordDial(d)
	}
	// The pools redisc keeps per node read the slot map, and carry the
	// calls of a pooled store. Their connections' own read timeout is
	// ClusterTimeout, for CLUSTER SLOTS, which redisc sends without one;
	// every call of the store gives its own (see sendTimed).
	meta := cfg
	meta.ioTimeout = ClusterTimeout
	ct.cluster = &redisc.Cluster{
		StartupNodes: u.Addrs,
		CreatePool: func(addr string, _ ...redis.DialOption) (*redis.Pool, error) {
			d, _ := dialer(u.NodeURL(addr), meta)
			return openPool(ct.life, ct.recordDial(d), cfg), nil
		},
	}
	if ct.pipelined {
		ct.cluster.LayoutRefresh = func(_, m [redisc.HashSlots][]string) { ct.install(&m) }
	}
	return ct, nil
}

// install makes m (the master of each slot first, then its replicas) the
// slot map of the lanes.
func (ct *clusterTransport) install(m *[redisc.HashSlots][]string) {
	seen := map[string]*clusterNode{}
	for slot, nodes := range m {
		if len(nodes) == 0 || nodes[0] == "" {
			ct.slots[slot].Store(nil)
			continue
		}
		n := seen[nodes[0]]
		if n == nil {
			n = ct.node(nodes[0])
			seen[nodes[0]] = n
		}
		ct.slots[slot].Store(n)
	}
	masters := make([]*clusterNode, 0, len(seen))
	for _, n := range seen {
		masters = append(masters, n)
	}
	slices.SortFunc(masters, func(a, b *clusterNode) int { return strings.Compare(a.addr, b.addr) })
	ct.masterSet.Store(&masters)
	ct.mapped.Store(true)
}

// node returns the lanes to the master at addr, made on first use.
func (ct *clusterTransport) node(addr string) *clusterNode {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	n := ct.nodes[addr]
	if n == nil {
		n = &clusterNode{addr: addr, lanes: newLanes(ct.cfg.pipelineConns, ct.dialNode(addr), ct.cfg.ioTimeout)}
		if ct.closed.Load() {
			// A MOVED or a read of the map that came after Close:
			// lanes that take no call (ErrClosed) and hold nothing.
			n.lanes.close()
			return n
		}
		ct.nodes[addr] = n
	}
	return n
}

// routeKey returns the key whose slot a call goes to: the first declared
// key of a script, the first argument of the other commands the stores
// send; none (ok false) for the commands about a server rather than a
// key, and for a script without keys, which any master may run.
func routeKey(cmd string, args []any) (key string, ok bool) {
	switch cmd {
	case "EVALSHA", "EVAL":
		if len(args) >= 3 {
			if n, isInt := args[1].(int); isInt && n > 0 {
				return keyString(args[2])
			}
		}
		return "", false
	case "PING", "INFO", "CONFIG", "SCRIPT", "SCAN", "CLUSTER":
		return "", false
	}
	if len(args) > 0 {
		return keyString(args[0])
	}
	return "", false
}

func keyString(a any) (string, bool) {
	switch v := a.(type) {
	case string:
		return v, true
	case []byte:
		return string(v), true
	}
	return "", false
}

// do sends one call to the master of its key's slot, following the
// cluster's redirections (see clusterTransport).
func (ct *clusterTransport) do(ctx context.Context, cmd string, args []any) (any, error) {
	key, hasKey := routeKey(cmd, args)
	slot := -1
	if hasKey {
		slot = redisc.Slot(key)
	}
	var reply any
	var err error
	var waitUntil time.Time // the end of TRYAGAIN's pauses for a ctx without a deadline
	askAddr := ""           // where an ASK sent the call
	for try := 0; try < clusterTries; try++ {
		switch {
		case askAddr != "":
			reply, err = ct.ask(ctx, askAddr, cmd, args)
			askAddr = ""
		case ct.pipelined:
			reply, err = ct.viaLanes(ctx, slot, cmd, args)
		default:
			reply, err = ct.viaPool(ctx, key, hasKey, cmd, args)
		}
		re := redisc.ParseRedir(err)
		switch {
		case re != nil && re.Type == "MOVED":
			ct.moved(re)
			// Moved again and again: the map is being read anew
			// meanwhile (a pooled call whose master cannot be dialled
			// lands on another node, which sends it back).
			if try > 0 && !pause(ctx, time.Duration(try)*10*time.Millisecond) {
				return nil, ctxErr(ctx, err)
			}
			continue
		case re != nil: // ASK: this one call goes to the importing node
			// Not a try either: the importing node answers, or says
			// TRYAGAIN (a multi-key call whose keys are not all there
			// yet), which pauses.
			askAddr = re.Addr
			try--
			continue
		case redisc.IsTryAgain(err):
			// Not a try: the keys of a multi-key call are split
			// between the two nodes of a migrating slot until the
			// migration has moved them all, which may take many
			// pauses. The call waits as long as ctx lets it, or
			// WithIOTimeout, then goes by the slot map again.
			if _, ok := ctx.Deadline(); !ok {
				if waitUntil.IsZero() {
					waitUntil = time.Now().Add(ct.cfg.ioTimeout)
				} else if time.Now().After(waitUntil) {
					return nil, fmt.Errorf("redis cluster: slot %d still migrating after %v (WithIOTimeout; give the call a deadline to wait longer): %w", slot, ct.cfg.ioTimeout, err)
				}
			}
			if !pause(ctx, tryAgainWait) {
				return nil, ctxErr(ctx, err)
			}
			try--
			continue
		case err != nil && err != ErrClosed && (!isReplyError(err) || isClusterDown(err)):
			ct.refreshSoon()
		}
		return reply, err
	}
	// A master that cannot be reached sends a pooled call from node to
	// node: a connection fault, said as one, not as Redis's MOVED.
	return nil, &connError{fmt.Errorf("connect to redis: the master of slot %d cannot be reached, or the slot is moving (still redirected after %d tries): %w", slot, clusterTries, err)}
}

// oneLine joins the lines of redisc's errors that list each node's
// ("redisc: all nodes failed\n...") into one line, for logs, without
// the "connect to redis: " of each node's dial, which the whole says once.
func oneLine(err error) error {
	if msg := err.Error(); strings.Contains(msg, "\n") || strings.Contains(msg, "connect to redis: ") {
		msg = strings.ReplaceAll(strings.TrimSpace(msg), "\n", "; ")
		return &joinedError{msg: strings.ReplaceAll(msg, "connect to redis: ", ""), err: err}
	}
	return err
}

type joinedError struct {
	msg string
	err error
}

func (e *joinedError) Error() string { return e.msg }
func (e *joinedError) Unwrap() error { return e.err }

// isClusterDown says whether err is a node's CLUSTERDOWN (a slot no
// master serves, as while a failover promotes a replica).
func isClusterDown(err error) bool {
	e, ok := err.(redis.Error)
	return ok && strings.HasPrefix(string(e), "CLUSTERDOWN")
}

// pause waits d, or until ctx ends (false).
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// viaLanes sends the call over the lanes of the slot's master, or of any
// master for a call without a key.
func (ct *clusterTransport) viaLanes(ctx context.Context, slot int, cmd string, args []any) (any, error) {
	if !ct.mapped.Load() {
		if err := ct.refreshNow(ctx); err != nil {
			return nil, err
		}
	}
	var n *clusterNode
	if slot >= 0 {
		n = ct.slots[slot].Load()
	} else if ms := ct.masterSet.Load(); ms != nil && len(*ms) > 0 {
		n = (*ms)[0]
	}
	if n == nil {
		ct.refreshSoon()
		return nil, fmt.Errorf("redis cluster: no master serves slot %d (the cluster is failing over, or the slot is unassigned)", slot)
	}
	return n.lanes.do(ctx, cmd, args)
}

// viaPool sends the call on a redisc connection bound to key's slot (to
// any master when hasKey is false). redisc takes no context: neither
// while it waits for a free connection of a node's pool or dials one, nor
// while it reads. The call reads with ctx's deadline (WithIOTimeout
// without one), and the whole of it runs aside when ctx can end, so that
// the caller leaves when ctx ends (the call then finishes on its own, and
// its connection is dropped if a reply was still owed).
func (ct *clusterTransport) viaPool(ctx context.Context, key string, hasKey bool, cmd string, args []any) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return withCtx(ctx, func() (any, error) {
		rc := ct.cluster.Get()
		defer rc.Close()
		var err error
		if hasKey {
			err = redisc.BindConn(rc, key)
		} else {
			err = redisc.BindConn(rc)
		}
		if err != nil {
			if ct.closed.Load() {
				return nil, ErrClosed
			}
			if err := ct.refusedDial("bind a connection to the slot's master"); err != nil {
				return nil, err
			}
			return nil, dialFailed(oneLine(err))
		}
		return sendTimed(ctx, rc, ct.cfg.ioTimeout, cmd, args)
	})
}

// withCtx returns what f returns, or ctx's error as soon as ctx ends
// (untilDone; f then finishes on its own).
func withCtx(ctx context.Context, f func() (any, error)) (any, error) {
	return untilDone(ctx, f, nil)
}

// sendTimed sends one command on rc with ctx's deadline as its read
// timeout, or dflt when ctx has none, and retires rc when the reply says
// it must go.
func sendTimed(ctx context.Context, rc redis.Conn, dflt time.Duration, cmd string, args []any) (any, error) {
	timeout := dflt
	if dl, ok := ctx.Deadline(); ok {
		if timeout = time.Until(dl); timeout <= 0 { // redigo reads a zero timeout as "none"
			return nil, context.DeadlineExceeded
		}
	}
	reply, err := redis.DoWithTimeout(rc, timeout, cmd, args...)
	if retires(err) {
		retire(rc)
	}
	if err = lostConn(ctx, err); err != nil {
		return nil, ctxErr(ctx, err)
	}
	return reply, nil
}

// moved follows a MOVED: the lanes' map is told the slot's new master at
// once, and the whole map is read again in the background, since a
// MOVED seldom comes alone (a resharding, a failover). A pooled redisc
// connection has already told redisc's map.
func (ct *clusterTransport) moved(re *redisc.RedirError) {
	if ct.pipelined && re.NewSlot >= 0 && re.NewSlot < redisc.HashSlots {
		ct.slots[re.NewSlot].Store(ct.node(re.Addr))
	}
	ct.refreshSoon()
}

// ask sends one call to the node at addr, which is importing its slot,
// after ASKING, as an ASK redirection says: on a connection of its own
// (a lane's next call might not follow the ASKING), dialled and bounded
// by ctx. Over a caller's cluster, whose dial is its own, on the pooled
// connection redisc has to that node.
func (ct *clusterTransport) ask(ctx context.Context, addr, cmd string, args []any) (any, error) {
	if ct.dialNode == nil {
		return ct.askVisit(ctx, addr, cmd, args)
	}
	rc, err := ct.dialNode(addr)(ctx)
	if err != nil {
		return nil, dialFailed(err)
	}
	defer rc.Close()
	if err := rc.Send("ASKING"); err != nil {
		return nil, ctxErr(ctx, err)
	}
	// The reply to ASKING (OK) is read first; Do returns the call's.
	return do(ctx, rc, cmd, args...)
}

// askVisit is ask over a caller's cluster, on redisc's connection to the
// importing node. A node that owns no slot yet is not in redisc's map:
// the slot map is read again, and the call waits as after TRYAGAIN,
// then goes by the map (its slot's node sends the ASK again).
func (ct *clusterTransport) askVisit(ctx context.Context, addr, cmd string, args []any) (any, error) {
	reply, err := ct.onMaster(ctx, addr, func(rc redis.Conn) (any, error) {
		if err := rc.Send("ASKING"); err != nil {
			return nil, err
		}
		return sendTimed(ctx, rc, ct.cfg.ioTimeout, cmd, args)
	})
	if err == errNotMaster {
		ct.refreshSoon()
		return nil, redis.Error("TRYAGAIN ASK to " + addr + ", which redisc does not know yet")
	}
	return reply, err
}

// onMaster calls f with redisc's connection to the master at addr, bounded
// by ctx (withCtx); errNotMaster when redisc knows no master there.
func (ct *clusterTransport) onMaster(ctx context.Context, addr string, f func(rc redis.Conn) (any, error)) (any, error) {
	return withCtx(ctx, func() (any, error) {
		var reply any
		err := errNotMaster
		ct.cluster.EachNode(false, func(a string, rc redis.Conn) error { //nolint:errcheck // f's own error is kept
			if a != addr {
				return nil
			}
			reply, err = f(rc)
			return errStopVisit
		})
		return reply, err
	})
}

// refreshNow reads the slot map, or waits for the read under way, bounded
// by ctx.
func (ct *clusterTransport) refreshNow(ctx context.Context) error {
	r := ct.startRefresh()
	select {
	case <-r.done:
		if r.err != nil {
			if ct.closed.Load() {
				return ErrClosed
			}
			if err := ct.refusedDial("read the cluster's slot map"); err != nil {
				return err
			}
			return dialFailed(fmt.Errorf("read the cluster's slot map: %w", oneLine(r.err)))
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// refreshSoon starts a read of the slot map in the background, unless one
// is under way or the last ended less than refreshGap ago.
func (ct *clusterTransport) refreshSoon() {
	ct.refreshMu.Lock()
	recent := time.Since(ct.lastRefresh) < refreshGap
	ct.refreshMu.Unlock()
	if !recent {
		ct.startRefresh()
	}
}

// startRefresh starts a read of the slot map (CLUSTER SLOTS on one known
// node after another, until one answers), or returns the one under way.
func (ct *clusterTransport) startRefresh() *refreshCall {
	ct.refreshMu.Lock()
	defer ct.refreshMu.Unlock()
	if r := ct.refreshing; r != nil {
		return r
	}
	r := &refreshCall{done: make(chan struct{})}
	if ct.closed.Load() {
		r.err = ErrClosed
		close(r.done)
		return r
	}
	ct.refreshing = r
	go func() {
		r.err = ct.cluster.Refresh() // installs the lanes' map (LayoutRefresh)
		ct.refreshMu.Lock()
		ct.refreshing, ct.lastRefresh = nil, time.Now()
		ct.refreshMu.Unlock()
		close(r.done)
	}()
	return r
}

// tries is two, as on lanes: redirections are followed within one try.
func (ct *clusterTransport) tries() int { return 2 }

// masters returns one transport per master of the slot map (read first,
// if it never was), for the calls that concern each server.
func (ct *clusterTransport) masters(ctx context.Context) ([]transport, error) {
	// Read afresh: Init and Repair are seldom called, and they must
	// reach the masters of now, which the calls by key may not have
	// learnt (a failover of a master the store's keys are not on; a
	// pooled store that knows only its seed nodes yet).
	if err := ct.refreshNow(ctx); err != nil {
		return nil, err
	}
	if ct.pipelined {
		var out []transport
		for _, n := range *ct.masterSet.Load() {
			out = append(out, n.lanes)
		}
		return out, nil
	}
	// redisc lists the masters with a connection to each, which may
	// need a dial: bounded by ctx as every call is.
	addrs, err := untilDone(ctx, ct.masterAddrs, nil)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return nil, err
		}
		return nil, dialFailed(err)
	}
	out := make([]transport, len(addrs))
	for i, a := range addrs {
		out[i] = &clusterMaster{ct: ct, addr: a}
	}
	return out, nil
}

// masterAddrs lists the masters redisc knows, by address.
func (ct *clusterTransport) masterAddrs() ([]string, error) {
	var addrs []string
	err := ct.cluster.EachNode(false, func(addr string, _ redis.Conn) error {
		addrs = append(addrs, addr)
		return nil
	})
	slices.Sort(addrs)
	return addrs, err
}

// close ends the background work and closes what the store built: the
// lanes to every master, and the cluster client with its pools. A
// caller's cluster is left open.
func (ct *clusterTransport) close() error {
	ct.stop()
	ct.mu.Lock()
	ct.closed.Store(true) // under mu: node makes no lanes to keep after this
	nodes := make([]*clusterNode, 0, len(ct.nodes))
	for _, n := range ct.nodes {
		nodes = append(nodes, n)
	}
	ct.mu.Unlock()
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() { defer wg.Done(); n.lanes.close() }()
	}
	wg.Wait()
	// A read of the slot map under way (startRefresh, which starts no new
	// one once closed is set) uses the store's cluster's pools: redigo's Pool.Close
	// races with a Get on a pool it has not used yet, so it ends first.
	// Its dials end with ct.life, stopped above; a read on a connection it
	// has takes at most ClusterTimeout.
	if ct.owned {
		ct.refreshMu.Lock()
		r := ct.refreshing
		ct.refreshMu.Unlock()
		if r != nil {
			<-r.done
		}
		if err := ct.cluster.Close(); err != nil {
			return fmt.Errorf("pikkuredis: close cluster: %w", err)
		}
	}
	return nil
}

// clusterMaster is one master of a pooled cluster, for the calls that
// concern each server (SCRIPT LOAD, SCAN, INFO).
type clusterMaster struct {
	ct   *clusterTransport
	addr string
}

var errNotMaster = errors.New("no longer a master of the cluster")

func (m *clusterMaster) do(ctx context.Context, cmd string, args []any) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	reply, err := m.ct.onMaster(ctx, m.addr, func(rc redis.Conn) (any, error) {
		return sendTimed(ctx, rc, m.ct.cfg.ioTimeout, cmd, args)
	})
	if err == errNotMaster {
		return nil, fmt.Errorf("redis cluster: %s: %w", m.addr, err)
	}
	if err != nil && !isReplyError(err) {
		m.ct.refreshSoon()
	}
	return reply, err
}

var errStopVisit = errors.New("stop")

func (m *clusterMaster) tries() int   { return 2 }
func (m *clusterMaster) close() error { return nil }
