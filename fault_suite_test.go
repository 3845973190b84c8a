package pikkuredis_test

// The fault suite (issue 5): each fault is injected into a redis-server of
// the test's own while 64 goroutines mix every operation of the three
// stores (ChannelStore, EventHubStore, SessionStore), each call with its
// own deadline, on every backend (faultBackends: auto-pipelined, an owned
// pool with leases and a session TTL, a caller's *redis.Pool). Each test
// states which errors the fault may cause and when (mixedLoad's policy);
// any other error, a wrong answer (replies are checked against the channel
// or user asked for), a call that returns past its deadline plus a slack,
// a NOSCRIPT seen by a caller, a goroutine left behind, indexes that
// disagree, a session key that is not whole (a string holding exactly the
// JSON the load gives its user, with the backend's TTL), or a key left
// after removing every channel and clearing every session fail it.
//
//	TestFaultServerKilledAndRestarted  kill -9, restart on the same port, empty
//	TestFaultClientKill                CLIENT KILL TYPE normal, repeatedly
//	TestFaultScriptFlush               SCRIPT FLUSH every 2 ms: zero failed calls
//	TestFaultStalledServer             CLIENT PAUSE 2000 ALL, DEBUG SLEEP 2; 200 ms deadlines
//	TestFaultOutOfMemory               maxmemory 16mb, noeviction, filled up
//
// On a loaded machine a thread can wait a long time for a CPU, and a
// context's deadline then fires late: a call late (or past its deadline
// where none is allowed) by no more than the stalls the stallMonitor saw
// during it is excused and counted in the report, not failed.
//
// Environment:
//
//	PIKKUREDIS_SOAK=<duration>  (e.g. 5m) also runs TestFaultSoak: the same
//	                            load on every backend at once for that long,
//	                            every fault above injected in rotation, each
//	                            followed by a recovery check. Skipped when
//	                            unset.
//
// Every test here starts its own redis-server (internal/redisserver, on a
// free loopback port) and never touches the shared one.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mathrand "math/rand"
	"net"
	"os"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pikkujs/pikkuredis"
	"github.com/pikkujs/pikkuredis/internal/redisserver"
)

// soakEnv names the variable that turns the soak on; see the top of the file.
const soakEnv = "PIKKUREDIS_SOAK"

// repairDeadlineFactor: a Repair call gets this many times the load's
// deadline.
const repairDeadlineFactor = 5

const (
	loadGoroutines = 64
	loadChannels   = 32 // c0..c31
	loadTopics     = 8  // t0..t7
	freshCallers   = 16 // the recovery round: fresh0..fresh15
)

// --- Backends ---

// faultBackend is one way a store reaches Redis.
type faultBackend struct {
	name string
	// lanes: the stores are auto-pipelined, one connection each.
	lanes bool
	// leases: the stores have a channel TTL (of an hour: no lease runs
	// out during a test) and Subscribe requires the channel, and the mix
	// adds TouchChannels, SweepExpired and Repair.
	leases bool
	// sessionTTL is the SessionStore's WithSessionTTL (0: none), so that
	// both forms of SET face the faults; an hour, none runs out.
	sessionTTL time.Duration
	// open opens the three stores on url under prefix; their connections
	// are named clientName. close closes them (and a caller's pool) and
	// returns Close's errors.
	open func(t *testing.T, url, prefix, clientName string) (st faultStores, close func() error)
}

// faultStores are the stores of one backend, on one prefix.
type faultStores struct {
	cs *pikkuredis.ChannelStore
	hs *pikkuredis.EventHubStore
	ss *pikkuredis.SessionStore
}

// faultBackends: the default path of Open*Store(url) as it is, a pool
// (with the lease options, so that their scripts face the faults too, and
// a session TTL, so that SET ... EX does), and a caller's *redis.Pool.
var faultBackends = []faultBackend{
	{name: "auto-pipelined", lanes: true, open: func(t *testing.T, url, prefix, name string) (faultStores, func() error) {
		return openFaultStores(t, url, prefix, name)
	}},
	{name: "owned pool, leases", leases: true, sessionTTL: time.Hour, open: func(t *testing.T, url, prefix, name string) (faultStores, func() error) {
		return openFaultStores(t, url, prefix, name, pikkuredis.WithoutAutoPipelining(),
			pikkuredis.WithChannelTTL(time.Hour), pikkuredis.WithRequireChannel(), pikkuredis.WithSessionTTL(time.Hour))
	}},
	{name: "caller's pool", open: func(t *testing.T, url, prefix, name string) (faultStores, func() error) {
		pool := &redis.Pool{
			MaxActive: 64, MaxIdle: 64, Wait: true,
			DialContext: func(ctx context.Context) (redis.Conn, error) {
				return redis.DialURLContext(ctx, url, redis.DialReadTimeout(10*time.Second), redis.DialClientName(name))
			},
		}
		opt := pikkuredis.WithKeyPrefix(prefix)
		st := faultStores{cs: pikkuredis.NewChannelStore(pool, opt), hs: pikkuredis.NewEventHubStore(pool, opt), ss: pikkuredis.NewSessionStore(pool, opt)}
		return st, func() error { return errors.Join(st.cs.Close(), st.hs.Close(), st.ss.Close(), pool.Close()) }
	}},
}

func openFaultStores(t *testing.T, url, prefix, name string, opts ...pikkuredis.Option) (faultStores, func() error) {
	t.Helper()
	opts = append([]pikkuredis.Option{pikkuredis.WithKeyPrefix(prefix), pikkuredis.WithDialOptions(redis.DialClientName(name))}, opts...)
	var st faultStores
	var err error
	st.cs, err = pikkuredis.OpenChannelStore(url, opts...)
	require.NoError(t, err)
	st.hs, err = pikkuredis.OpenEventHubStore(url, opts...)
	require.NoError(t, err)
	st.ss, err = pikkuredis.OpenSessionStore(url, opts...)
	require.NoError(t, err)
	return st, func() error { return errors.Join(st.cs.Close(), st.hs.Close(), st.ss.Close()) }
}

// --- The rig: a server, a backend's stores, and the checks every fault ends with ---

type faultRig struct {
	faultStores // cs, hs, ss
	t           *testing.T
	srv         *redisserver.Server
	backend     faultBackend
	prefix      string
	client      string // the stores' connection name
	close       func() error
	baseline    int // goroutines before the stores were opened
	closed      bool
}

// startFaultServer starts a redis-server for one test, with DEBUG allowed
// from loopback (Redis 7 refuses it by default) and extra config.
func startFaultServer(t *testing.T, extra ...string) *redisserver.Server {
	t.Helper()
	return ownRedis(t, append([]string{"--enable-debug-command", "local"}, extra...)...)
}

// newFaultRig opens b's stores on srv, for a test whose finish checks
// that the goroutines are back to what they were before.
func newFaultRig(t *testing.T, srv *redisserver.Server, b faultBackend) *faultRig {
	t.Helper()
	return newFaultRigOn(t, srv, b, "pikkuredis-fault", runtime.NumGoroutine())
}

// newFaultRigOn opens b's stores under prefix (also their connections'
// name); finish checks that the goroutines are back to baseline (-1: it
// does not).
func newFaultRigOn(t *testing.T, srv *redisserver.Server, b faultBackend, prefix string, baseline int) *faultRig {
	t.Helper()
	r := &faultRig{t: t, srv: srv, backend: b, prefix: prefix, client: prefix, baseline: baseline}
	r.faultStores, r.close = b.open(t, srv.URL, r.prefix, r.client)
	t.Cleanup(func() {
		if !r.closed {
			r.close()
		}
	})
	return r
}

// admin sends one command on a connection of its own, so that it never
// shares the fate of the stores' connections.
func (r *faultRig) admin(cmd string, args ...any) (any, error) {
	return adminDo(r.srv.URL, cmd, args...)
}

func adminDo(url, cmd string, args ...any) (any, error) {
	c, err := redis.DialURL(url, redis.DialConnectTimeout(5*time.Second), redis.DialReadTimeout(10*time.Second))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Do(cmd, args...)
}

func (r *faultRig) mustAdmin(cmd string, args ...any) any {
	r.t.Helper()
	reply, err := r.admin(cmd, args...)
	require.NoError(r.t, err, "%s %v", cmd, args)
	return reply
}

// finish is what every fault test ends with: the indexes agree in both
// directions, every session key is whole (assertSessionsWhole), removing
// every channel used and clearing every session leaves no key under the
// prefix, Close succeeds and leaves no goroutine behind.
func (r *faultRig) finish() {
	t := r.t
	t.Helper()
	c := dialURL(t, r.srv.URL)
	defer c.Close()
	assertIndexesAgreeOn(t, c, r.prefix)
	assertSessionsWhole(t, c, r.prefix, r.backend.sessionTTL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, r.cs.RemoveChannels(ctx, allLoadIDs()))
	r.clearSessions(ctx)
	assert.Empty(t, scanKeys(t, c, r.prefix), "keys left after removing every channel and clearing every session")
	r.closed = true
	require.NoError(t, r.close())
	if r.baseline >= 0 {
		waitForGoroutines(t, r.baseline)
	}
}

// clearSessions clears the session of every user the load and the
// recovery rounds use.
func (r *faultRig) clearSessions(ctx context.Context) {
	r.t.Helper()
	for _, user := range allLoadUsers() {
		require.NoError(r.t, r.ss.Clear(ctx, user), "Clear(%s)", user)
	}
}

// assertSessionsWhole checks every session key under prefix, with no call
// running: it is a string holding exactly the JSON of a loadSessionValue of
// the user its key names, one of the users the load and the recovery
// rounds use (a SET is all or nothing: the key holds the old value or the
// new one, never a part, nor another user's), and it has the store's TTL
// (ttl; none when 0: SET without EX drops a TTL the key had).
func assertSessionsWhole(t *testing.T, c redis.Conn, prefix string, ttl time.Duration) {
	t.Helper()
	sessionPrefix := prefix + ":session:"
	users := map[string]bool{}
	for _, u := range allLoadUsers() {
		users[u] = true
	}
	checked := 0
	for _, key := range scanKeys(t, c, prefix) {
		user, ok := strings.CutPrefix(key, sessionPrefix)
		if !ok {
			continue
		}
		checked++
		assert.True(t, users[user], "session key %s: no load user %q", key, user)
		raw, err := redis.Bytes(c.Do("GET", key))
		if !assert.NoError(t, err, "GET %s", key) {
			continue
		}
		assert.NoError(t, checkLoadSession(raw, user), "session key %s", key)
		left, err := redis.Int64(c.Do("PTTL", key))
		require.NoError(t, err)
		if ttl == 0 {
			assert.Equal(t, int64(-1), left, "session key %s has a TTL; the store writes none", key)
		} else {
			assert.True(t, left > 0 && left <= ttl.Milliseconds(), "session key %s: PTTL %d, want (0, %d]", key, left, ttl.Milliseconds())
		}
	}
	t.Logf("checked %d session keys", checked)
}

// info returns the fields of an INFO section.
func (r *faultRig) info(section string) map[string]string {
	r.t.Helper()
	text, err := redis.String(r.admin("INFO", section))
	require.NoError(r.t, err)
	out := map[string]string{}
	for _, line := range strings.Split(text, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[k] = v
		}
	}
	return out
}

// statCount reads count= (errorstats) or calls= (commandstats) from an
// INFO line such as "calls=3,usec=...": 0 when the line is absent.
func statCount(line, field string) int {
	for _, kv := range strings.Split(line, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok && k == field {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

// --- The mixed load ---

// The operations, every method of the three stores that reaches Redis.
const (
	opAddChannel = iota
	opSetUserSession
	opGetChannelAndSession
	opRemoveChannels
	opSubscribe
	opUnsubscribe
	opGetChannelIDsForTopic
	opScanChannelIDsForTopic
	opSetPikkuUserID
	opGetChannel
	opSetState
	opGetState
	opClearState
	opGetChannelWithSession
	opSetSession // SessionStore's Set, Get and Clear
	opGetSession
	opClearSession
	// With leases (WithChannelTTL) only:
	opTouchChannels
	opSweepExpired
	opRepair
	numOps
)

var opNames = [numOps]string{
	"AddChannel", "SetUserSession", "GetChannelAndSession", "RemoveChannels", "Subscribe", "Unsubscribe",
	"GetChannelIDsForTopic", "ScanChannelIDsForTopic", "SetPikkuUserID", "GetChannel", "SetState", "GetState", "ClearState",
	"GetChannelWithSession", "SessionStore.Set", "SessionStore.Get", "SessionStore.Clear",
	"TouchChannels", "SweepExpired", "Repair",
}

// writeOps are the calls that add data, which Redis refuses when it is out
// of memory: a write command (SessionStore.Set's SET), or a script without
// the allow-oom flag (set_channel_field.lua, subscribe.lua,
// add_channel.lua).
var writeOps = []int{opAddChannel, opSetUserSession, opSubscribe, opSetPikkuUserID, opSetState, opSetSession}

// deleteOps only remove data, by allow-oom scripts (remove_channels.lua,
// unsubscribe.lua, clear_channel_field.lua) or DEL (SessionStore.Clear),
// which Redis runs when it is out of memory. (GetChannelWithSession's
// script is no-writes: Redis runs it out of memory too, as a read.)
var deleteOps = []int{opRemoveChannels, opUnsubscribe, opClearState, opClearSession}

func isWriteOp(op int) bool { return slices.Contains(writeOps, op) }

// opsFor returns every operation a backend's stores can make.
func opsFor(b faultBackend) []int {
	n := opTouchChannels
	if b.leases {
		n = numOps
	}
	ops := make([]int, n)
	for i := range ops {
		ops[i] = i
	}
	return ops
}

func loadID(n int) string    { return "c" + strconv.Itoa(n) }
func loadTopic(n int) string { return "t" + strconv.Itoa(n) }
func freshID(g int) string   { return "fresh" + strconv.Itoa(g) }
func freshTopic(g int) string {
	return "fresh-topic" + strconv.Itoa(g)
}

// allLoadIDs is every channel id the load and the recovery rounds use.
func allLoadIDs() []string {
	var ids []string
	for i := 0; i < loadChannels; i++ {
		ids = append(ids, loadID(i))
	}
	for g := 0; g < freshCallers; g++ {
		ids = append(ids, freshID(g))
	}
	return ids
}

func isLoadID(id string) bool {
	n, err := strconv.Atoi(strings.TrimPrefix(id, "c"))
	return strings.HasPrefix(id, "c") && err == nil && n >= 0 && n < loadChannels
}

// What the load writes is a function of the channel id, so that any read
// can tell whether the answer it got is about the channel it asked for:
// a reply handed to the wrong caller shows up as a wrong answer.
func loadName(id string) string     { return "name:" + id }
func loadData(id string) any        { return map[string]string{"id": id} }
func loadDataJSON(id string) string { b, _ := json.Marshal(loadData(id)); return string(b) }

// A channel's Pikku user is one of two, loadUser(id) or otherUser(id):
// SetPikkuUserID switches between them, so that a GetChannelWithSession
// that paired the user id of one instant with the session of another
// would return a session of the other user.
func loadUser(id string) string  { return "user:" + id }
func otherUser(id string) string { return "other-user:" + id }

func isUserOf(id, user string) bool { return user == loadUser(id) || user == otherUser(id) }

// pickUser returns one of the two users of the channel id.
func pickUser(id string, rng *mathrand.Rand) string {
	if rng.Intn(2) == 0 {
		return loadUser(id)
	}
	return otherUser(id)
}

// allLoadUsers is every Pikku user the load and the recovery rounds use.
func allLoadUsers() []string {
	var users []string
	for _, id := range allLoadIDs() {
		users = append(users, loadUser(id), otherUser(id))
	}
	return users
}

// loadSessionValue is what the load stores as a session: it names its user,
// so that a session read for the wrong user is a wrong answer.
type loadSessionValue struct {
	User string `json:"user"`
	N    int    `json:"n"`
}

func loadSessionJSON(user string, n int) string {
	b, _ := json.Marshal(loadSessionValue{User: user, N: n})
	return string(b)
}

// checkSessionFor says whether raw is exactly the JSON text of a
// loadSessionValue of user: whole (no byte more or less than SET was given)
// and that user's.
func checkLoadSession(raw []byte, user string) error {
	var v loadSessionValue
	if err := json.Unmarshal(raw, &v); err != nil || v.User != user || string(raw) != loadSessionJSON(user, v.N) {
		return fmt.Errorf("read session %q for user %s", raw, user)
	}
	return nil
}

// checkChannelWithSession checks a GetChannelWithSession(id) answer: the
// channel is id's, its user one of id's two (or none), and the session,
// when there is one, that user's.
func checkChannelWithSession(id string, got pikkuredis.ChannelWithSession) error {
	if got.ChannelID != id || got.ChannelName != loadName(id) || string(got.OpeningData) != loadDataJSON(id) ||
		(got.PikkuUserID != "" && !isUserOf(id, got.PikkuUserID)) || got.HasSession != (got.Session != nil) ||
		(got.PikkuUserID == "" && got.HasSession) {
		return fmt.Errorf("GetChannelWithSession(%s) = %+v (session %s)", id, got.ChannelInfo, got.Session)
	}
	if got.HasSession {
		if err := checkLoadSession(got.Session, got.PikkuUserID); err != nil {
			return fmt.Errorf("GetChannelWithSession(%s), Pikku user %s: %w", id, got.PikkuUserID, err)
		}
	}
	return nil
}

type idValue struct {
	ID string `json:"id"`
	N  int    `json:"n"`
}

// checkJSONFor says whether raw is a JSON object whose "id" is id ({} is
// accepted when empty is true).
func checkJSONFor(raw json.RawMessage, id string, empty bool) error {
	if empty && string(raw) == "{}" {
		return nil
	}
	var v idValue
	if err := json.Unmarshal(raw, &v); err != nil || v.ID != id {
		return fmt.Errorf("read %q for channel %s", raw, id)
	}
	return nil
}

// callOp makes one call of op. err is the call's error (nil, or
// ErrChannelNotFound, are answers); wrong is a wrong answer to the call,
// a failure whatever the fault.
func callOp(ctx context.Context, st faultStores, op int, rng *mathrand.Rand, n int) (err, wrong error) {
	cs, hs, ss := st.cs, st.hs, st.ss
	id := loadID(rng.Intn(loadChannels))
	topic := loadTopic(rng.Intn(loadTopics))
	switch op {
	case opAddChannel:
		err = cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id, ChannelName: loadName(id), OpeningData: loadData(id)})
	case opSetUserSession:
		err = cs.SetUserSession(ctx, id, idValue{ID: id, N: n})
	case opGetChannelAndSession:
		var got pikkuredis.ChannelAndSession
		got, err = cs.GetChannelAndSession(ctx, id)
		if err == nil {
			if got.ChannelID != id || got.ChannelName != loadName(id) || string(got.OpeningData) != loadDataJSON(id) {
				wrong = fmt.Errorf("GetChannelAndSession(%s) = %+v", id, got)
			} else {
				wrong = checkJSONFor(got.Session, id, true)
			}
		}
	case opRemoveChannels:
		err = cs.RemoveChannels(ctx, []string{id, loadID(rng.Intn(loadChannels))})
	case opSubscribe:
		var ok bool
		ok, err = hs.Subscribe(ctx, topic, id)
		if err == nil && !ok {
			wrong = fmt.Errorf("Subscribe(%s, %s) = false", topic, id)
		}
	case opUnsubscribe:
		_, err = hs.Unsubscribe(ctx, topic, id)
	case opGetChannelIDsForTopic:
		var ids []string
		ids, err = hs.GetChannelIDsForTopic(ctx, topic)
		if err == nil {
			if ids == nil {
				wrong = fmt.Errorf("GetChannelIDsForTopic(%s) = nil", topic)
			}
			for _, got := range ids {
				if !isLoadID(got) {
					wrong = fmt.Errorf("GetChannelIDsForTopic(%s) holds %q", topic, got)
				}
			}
		}
	case opScanChannelIDsForTopic:
		for got, e := range hs.ScanChannelIDsForTopic(ctx, topic) {
			if e != nil {
				err = e
				break
			}
			if !isLoadID(got) {
				wrong = fmt.Errorf("ScanChannelIDsForTopic(%s) yields %q", topic, got)
			}
		}
	case opSetPikkuUserID:
		err = cs.SetPikkuUserID(ctx, id, pickUser(id, rng))
	case opGetChannel:
		var got pikkuredis.ChannelInfo
		got, err = cs.GetChannel(ctx, id)
		if err == nil && (got.ChannelID != id || got.ChannelName != loadName(id) || string(got.OpeningData) != loadDataJSON(id) ||
			(got.PikkuUserID != "" && !isUserOf(id, got.PikkuUserID))) {
			wrong = fmt.Errorf("GetChannel(%s) = %+v", id, got)
		}
	case opSetState:
		err = cs.SetState(ctx, id, idValue{ID: id, N: n})
	case opGetState:
		var state json.RawMessage
		var ok bool
		state, ok, err = cs.GetState(ctx, id)
		if err == nil && ok {
			wrong = checkJSONFor(state, id, false)
		}
	case opClearState:
		err = cs.ClearState(ctx, id)
	case opGetChannelWithSession:
		var got pikkuredis.ChannelWithSession
		got, err = cs.GetChannelWithSession(ctx, id)
		if err == nil {
			wrong = checkChannelWithSession(id, got)
		}
	case opSetSession:
		user := pickUser(id, rng)
		err = ss.Set(ctx, user, loadSessionValue{User: user, N: n})
	case opGetSession:
		user := pickUser(id, rng)
		var raw json.RawMessage
		var ok bool
		raw, ok, err = ss.Get(ctx, user)
		switch {
		case err != nil:
		case ok:
			wrong = checkLoadSession(raw, user)
		case raw != nil:
			wrong = fmt.Errorf("SessionStore.Get(%s) = %q, false", user, raw)
		}
	case opClearSession:
		err = ss.Clear(ctx, pickUser(id, rng))
	case opTouchChannels:
		other := loadID(rng.Intn(loadChannels))
		var gone []string
		gone, err = cs.TouchChannels(ctx, id, other)
		for _, g := range gone {
			if g != id && g != other {
				wrong = fmt.Errorf("TouchChannels(%s, %s) says %q is gone", id, other, g)
			}
		}
	case opSweepExpired:
		var n int
		n, err = cs.SweepExpired(ctx)
		if err == nil && n != 0 {
			wrong = fmt.Errorf("SweepExpired removed %d channels, whose leases of an hour cannot have run out", n)
		}
	case opRepair:
		// Subscribe requires the channel and RemoveChannels removes its
		// subscriptions in the same script: no subscription can outlive
		// its channel, whatever the fault, so Repair finds none.
		var rep pikkuredis.RepairReport
		rep, err = hs.Repair(ctx, pikkuredis.RepairOptions{ChannelsKeptByChannelStore: true})
		if err == nil && (rep.Found != 0 || !rep.Done) {
			wrong = fmt.Errorf("Repair found orphaned subscriptions: %+v", rep)
		}
	}
	if errors.Is(err, pikkuredis.ErrChannelNotFound) {
		if op == opSetSession || op == opGetSession || op == opClearSession {
			// A session does not need a channel.
			return err, fmt.Errorf("%s: %w", opNames[op], err)
		}
		err = nil // an answer: the channel was removed meanwhile
	}
	return err, wrong
}

// policy says which errors a fault may cause. window decides for the
// calls that overlapped a fault window (from the injection until the
// server is back, plus a grace), outside for the others; nil accepts none.
type policy struct {
	window  func(op int, err error) bool
	outside func(op int, err error) bool
}

// isConnErr says whether err is a lost connection or a failed dial, as
// the README promises them: "redis connection lost: ..." and "connect to
// redis: ..." on the auto-pipelined path, the network error itself on a
// pool. ErrClosed is not one: no store is closed during a load.
func isConnErr(err error) bool {
	if errors.Is(err, pikkuredis.ErrClosed) {
		return false
	}
	for _, e := range []error{io.EOF, io.ErrUnexpectedEOF, syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EPIPE, net.ErrClosed} {
		if errors.Is(err, e) {
			return true
		}
	}
	s := err.Error()
	return strings.Contains(s, "redis connection lost: ") || strings.Contains(s, "connect to redis: ")
}

func isDeadline(err error) bool { return errors.Is(err, context.DeadlineExceeded) }

func isOOM(err error) bool {
	return strings.Contains(err.Error(), "OOM command not allowed")
}

// connOrDeadline: what a lost server or connection may cost a call.
func connOrDeadline(_ int, err error) bool { return isConnErr(err) || isDeadline(err) }

// --- Stalls of the machine ---

// stallMonitor records when the test process, or its redis-server, could
// not run. On a loaded machine (a 2-core VM shared with other builds) a
// thread can wait hundreds of milliseconds for a CPU; when the thread
// holding one of Go's Ps waits, the timers on that P (a context's
// deadline among them) fire that much later, and when redis-server waits,
// replies come that much later. A call late by no more than such stalls
// during it was late because nothing could run, not because the store
// waited on the wrong thing, and is excused (and counted in the report).
//
// It watches two ways:
//   - a chain of time.AfterFunc callbacks, each 2 ms after the last ran,
//     notes how late each ran: the delay a context's deadline sees
//     (context deadlines are AfterFunc timers);
//   - on Linux, every 10 ms, how long each thread of this process and of
//     redis-server waited on a run queue since the last look
//     (/proc/<pid>/task/<tid>/schedstat): time the thread was ready and
//     got no CPU.
type stallMonitor struct {
	mu        sync.Mutex
	stalls    [][2]time.Time // closed intervals, in the order found
	stop      chan struct{}
	done      chan struct{}
	redisPid  func() int
	lastWait  map[string]int64 // run-queue wait, ns, by /proc/<pid>/task/<tid>
	probeStop atomic.Bool
	probeDone chan struct{}
}

const stallThreshold = 10 * time.Millisecond

func startStallMonitor(redisPid func() int) *stallMonitor {
	m := &stallMonitor{stop: make(chan struct{}), done: make(chan struct{}), probeDone: make(chan struct{}),
		redisPid: redisPid, lastWait: map[string]int64{}}
	const tick = 2 * time.Millisecond
	var probe func(due time.Time) func()
	probe = func(due time.Time) func() {
		return func() {
			now := time.Now()
			if now.Sub(due) > stallThreshold {
				m.add(due, now)
			}
			if m.probeStop.Load() {
				close(m.probeDone)
				return
			}
			time.AfterFunc(tick, probe(now.Add(tick)))
		}
	}
	time.AfterFunc(tick, probe(time.Now().Add(tick)))
	go func() {
		defer close(m.done)
		m.sample() // the baseline
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-t.C:
				m.sample()
			}
		}
	}()
	return m
}

func (m *stallMonitor) add(from, to time.Time) {
	m.mu.Lock()
	m.stalls = append(m.stalls, [2]time.Time{from, to})
	m.mu.Unlock()
}

// sample records, as a stall ending now, the longest run-queue wait of a
// thread of this process or of redis-server since the last sample.
func (m *stallMonitor) sample() {
	now := time.Now()
	pids := []int{os.Getpid()}
	if m.redisPid != nil {
		if pid := m.redisPid(); pid > 0 {
			pids = append(pids, pid)
		}
	}
	var worst int64
	seen := map[string]bool{}
	for _, pid := range pids {
		dir := fmt.Sprintf("/proc/%d/task", pid)
		tasks, err := os.ReadDir(dir)
		if err != nil {
			continue // not Linux, or the server is down
		}
		for _, task := range tasks {
			path := dir + "/" + task.Name() + "/schedstat"
			b, err := os.ReadFile(path)
			if err != nil {
				continue
			}
			fields := strings.Fields(string(b))
			if len(fields) < 2 {
				continue
			}
			wait, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				continue
			}
			seen[path] = true
			if last, ok := m.lastWait[path]; ok && wait-last > worst {
				worst = wait - last
			}
			m.lastWait[path] = wait
		}
	}
	for path := range m.lastWait {
		if !seen[path] {
			delete(m.lastWait, path)
		}
	}
	if d := time.Duration(worst); d > stallThreshold {
		m.add(now.Add(-d), now)
	}
}

func (m *stallMonitor) close() {
	close(m.stop)
	<-m.done
	m.sample()
	m.probeStop.Store(true)
	<-m.probeDone
}

// during returns how long, between from and to, something the calls
// depend on could not run (the union of the stalls seen).
func (m *stallMonitor) during(from, to time.Time) time.Duration {
	m.mu.Lock()
	var spans [][2]time.Time
	for _, s := range m.stalls {
		if lo, hi := later(s[0], from), earlier(s[1], to); hi.After(lo) {
			spans = append(spans, [2]time.Time{lo, hi})
		}
	}
	m.mu.Unlock()
	sort.Slice(spans, func(i, j int) bool { return spans[i][0].Before(spans[j][0]) })
	var total time.Duration
	var end time.Time
	for _, s := range spans {
		if s[0].Before(end) {
			s[0] = end
		}
		if s[1].After(s[0]) {
			total += s[1].Sub(s[0])
			end = s[1]
		}
	}
	return total
}

// worst returns the longest stall seen.
func (m *stallMonitor) worst() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	var w time.Duration
	for _, s := range m.stalls {
		w = max(w, s[1].Sub(s[0]))
	}
	return w
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// loadConfig is one run of the mixed load.
type loadConfig struct {
	ops     []int         // which operations to mix
	timeout time.Duration // each call's deadline
	slack   time.Duration // how late past it a call may return
	policy  policy
}

// suspect is a call finish must judge: late, or past its deadline.
type suspect struct {
	start, end time.Time
	need       time.Duration // the stall during it that would explain it
	late       bool          // else a deadline failure
	msg        string
}

// opStats counts one operation's outcomes.
type opStats struct {
	ok, failed int
	failedBy   map[string]int
	maxElapsed time.Duration
}

// mixedLoad runs loadGoroutines goroutines that each call random
// operations until finish. A fault test opens a fault window before it
// injects the fault and closes it once the stores have recovered
// (settle); a call is judged by the policy's window rule when it
// overlapped a window, by its outside rule when it did not.
type mixedLoad struct {
	st  faultStores
	cfg loadConfig
	mon *stallMonitor

	// phase counts window openings and closings: even outside a window,
	// odd inside one.
	phase atomic.Int32
	// lastOK is, per operation, the phase of its latest answer wholly
	// within one phase.
	lastOK [numOps]atomic.Int32
	// anyFailed says, per operation, whether a call of it failed.
	anyFailed [numOps]atomic.Bool
	// restored is when the fault was undone (UnixNano, 0: not yet);
	// okSince counts, per goroutine, the answers to calls made after it.
	restored atomic.Int64
	okSince  [loadGoroutines]atomic.Int32

	stop chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	stats    [numOps]opStats
	bad      []string // unaccepted errors, wrong answers, late calls, panics
	nBad     int
	noscript int // errors that mention NOSCRIPT
	// suspects are the calls that returned late, or failed on their
	// deadline where the policy does not allow it: finish judges them
	// once the stall monitor has seen the whole load (a thread's wait
	// for a CPU is known only once it got one).
	suspects []suspect
	// Suspects that the machine's stalls explain.
	excusedLate, excusedDeadline int
	examples                     map[string]map[string]bool // a few distinct messages per error class
}

// startLoad starts the mixed load of every operation of the rig's
// backend, or of cfg.ops when set.
func (r *faultRig) startLoad(cfg loadConfig) *mixedLoad {
	if cfg.ops == nil {
		cfg.ops = opsFor(r.backend)
	}
	l := &mixedLoad{st: r.faultStores, cfg: cfg, stop: make(chan struct{}), mon: startStallMonitor(r.srv.Pid), examples: map[string]map[string]bool{}}
	for i := range l.stats {
		l.stats[i].failedBy = map[string]int{}
	}
	for i := range l.lastOK {
		l.lastOK[i].Store(-1)
	}
	for g := 0; g < loadGoroutines; g++ {
		l.wg.Add(1)
		go l.run(g)
	}
	return l
}

// openWindow marks the start of a fault window: call it before injecting
// the fault.
func (l *mixedLoad) openWindow() {
	if l.phase.Add(1)%2 != 1 {
		panic("a fault window is already open")
	}
	l.restored.Store(0)
}

// settle closes the window once the fault is undone (call it right after)
// and the stores have recovered: every goroutine has had two calls made
// since answered, and at least min has passed (for a pool, time for the
// dead connections left idle in it to be found). It fails the test if
// that takes longer than 15 s.
func (l *mixedLoad) settle(t *testing.T, min time.Duration) {
	t.Helper()
	for g := range l.okSince {
		l.okSince[g].Store(0)
	}
	l.restored.Store(time.Now().UnixNano())
	start := time.Now()
	time.Sleep(min)
	for !l.allSince(2) {
		if time.Since(start) > 15*time.Second {
			t.Errorf("the stores did not recover within 15s of the fault's end")
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("recovered %v after the fault's end", time.Since(start).Round(time.Millisecond))
	if l.phase.Add(1)%2 != 0 {
		panic("no fault window is open")
	}
}

func (l *mixedLoad) allSince(n int32) bool {
	for g := range l.okSince {
		if l.okSince[g].Load() < n {
			return false
		}
	}
	return true
}

// runFor keeps the load going for at least d, and until every operation
// has been answered wholly within the current phase (at most 15 s).
func (l *mixedLoad) runFor(d time.Duration) {
	l.runUntil(d, func(int) bool { return false })
}

// runUntil keeps the load going for at least d, and until every
// operation has been answered wholly within the current phase, or (those
// for which failing says true) failed once (at most 15 s): so that on a
// slow machine too, every operation was seen.
func (l *mixedLoad) runUntil(d time.Duration, failing func(op int) bool) {
	start := time.Now()
	time.Sleep(d)
	for time.Since(start) < 15*time.Second {
		p, all := l.phase.Load(), true
		for _, op := range l.cfg.ops {
			if failing(op) && !l.anyFailed[op].Load() || !failing(op) && l.lastOK[op].Load() != p {
				all = false
			}
		}
		if all {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (l *mixedLoad) run(g int) {
	defer l.wg.Done()
	rng := mathrand.New(mathrand.NewSource(int64(g)))
	var stats [numOps]opStats
	for i := range stats {
		stats[i].failedBy = map[string]int{}
	}
	var bad []string
	nBad, noscript := 0, 0
	var suspects []suspect
	examples := map[string]map[string]bool{}
	report := func(format string, args ...any) {
		nBad++
		if len(bad) < 10 {
			bad = append(bad, fmt.Sprintf(format, args...))
		}
	}
	defer func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		for op := range stats {
			s, t := &l.stats[op], stats[op]
			s.ok += t.ok
			s.failed += t.failed
			s.maxElapsed = max(s.maxElapsed, t.maxElapsed)
			for k, v := range t.failedBy {
				s.failedBy[k] += v
			}
		}
		l.bad = append(l.bad, bad...)
		l.nBad += nBad
		l.noscript += noscript
		l.suspects = append(l.suspects, suspects...)
		for class, msgs := range examples {
			if l.examples[class] == nil {
				l.examples[class] = map[string]bool{}
			}
			for m := range msgs {
				if len(l.examples[class]) < 4 {
					l.examples[class][m] = true
				}
			}
		}
	}()
	for i := 0; ; i++ {
		select {
		case <-l.stop:
			return
		default:
		}
		op := l.cfg.ops[rng.Intn(len(l.cfg.ops))]
		timeout := l.cfg.timeout
		if op == opRepair {
			// Repair examines every set of the prefix: tens of round
			// trips, not one.
			timeout *= repairDeadlineFactor
		}
		startPhase := l.phase.Load()
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err, wrong := safeCall(ctx, l.st, op, rng, i)
		cancel()
		end := time.Now()
		elapsed := end.Sub(start)
		endPhase := l.phase.Load()

		s := &stats[op]
		s.maxElapsed = max(s.maxElapsed, elapsed)
		if late := elapsed - (timeout + l.cfg.slack); late > 0 {
			suspects = append(suspects, suspect{start: start, end: end, need: late, late: true,
				msg: fmt.Sprintf("%s returned %v after it started, past its %v deadline (+%v slack): %v",
					opNames[op], elapsed.Round(time.Millisecond), timeout, l.cfg.slack, err)})
		}
		if wrong != nil {
			report("%s: wrong answer: %v", opNames[op], wrong)
			continue
		}
		if err == nil {
			s.ok++
			if startPhase == endPhase {
				l.lastOK[op].Store(startPhase)
			}
			if r := l.restored.Load(); r != 0 && start.UnixNano() > r {
				l.okSince[g].Add(1)
			}
			continue
		}
		s.failed++
		l.anyFailed[op].Store(true)
		class := errorClass(err)
		s.failedBy[class]++
		if msg := exampleText(err); len(examples[class]) < 4 && !examples[class][msg] {
			if examples[class] == nil {
				examples[class] = map[string]bool{}
			}
			examples[class][msg] = true
		}
		if strings.Contains(err.Error(), "NOSCRIPT") {
			noscript++
		}
		outside := startPhase == endPhase && startPhase%2 == 0
		accept := l.cfg.policy.window
		if outside {
			accept = l.cfg.policy.outside
		}
		if accept != nil && accept(op, err) {
			continue
		}
		where := "outside the fault windows"
		if !outside {
			where = "overlapping a fault window"
		}
		msg := fmt.Sprintf("%s failed %s (phases %d..%d): %v", opNames[op], where, startPhase, endPhase, err)
		if isDeadline(err) {
			// A deadline missed while the machine stood still for a
			// quarter of it says nothing about the store.
			suspects = append(suspects, suspect{start: start, end: end, need: timeout / 4, msg: msg})
			continue
		}
		report("%s", msg)
	}
}

// safeCall turns a panic in a call into a wrong answer.
func safeCall(ctx context.Context, st faultStores, op int, rng *mathrand.Rand, n int) (err, wrong error) {
	defer func() {
		if p := recover(); p != nil {
			wrong = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return callOp(ctx, st, op, rng, n)
}

var (
	addrRE = regexp.MustCompile(`127\.0\.0\.1:\d+`)
	opRE   = regexp.MustCompile(`^pikkuredis: [a-z ]+: `)
)

// exampleText is an error's text without its operation and addresses,
// so that the report shows each kind of failure once.
func exampleText(err error) string {
	return addrRE.ReplaceAllString(opRE.ReplaceAllString(err.Error(), ""), "ADDR")
}

// errorClass groups errors for the report.
func errorClass(err error) string {
	switch {
	case isDeadline(err):
		return "deadline"
	case isOOM(err):
		return "OOM"
	case isConnErr(err):
		return "connection"
	default:
		return "other"
	}
}

// finish stops the load, reports what it saw and fails the test for every
// call it could not accept, and for any NOSCRIPT a caller saw.
func (l *mixedLoad) finish(t *testing.T) *mixedLoad {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	l.mon.close()
	var excused []string
	for _, s := range l.suspects {
		stalled := l.mon.during(s.start, s.end)
		if stalled >= s.need && len(excused) < 3 {
			excused = append(excused, fmt.Sprintf("%s (the machine stood still %v of its %v)", s.msg, stalled.Round(time.Millisecond), s.end.Sub(s.start).Round(time.Millisecond)))
		}
		switch {
		case stalled >= s.need && s.late:
			l.excusedLate++
		case stalled >= s.need:
			l.excusedDeadline++
		default:
			l.nBad++
			if len(l.bad) < 30 {
				l.bad = append(l.bad, fmt.Sprintf("%s (the machine stood still %v of it)", s.msg, stalled.Round(time.Millisecond)))
			}
		}
	}
	var lines []string
	total := 0
	for op, s := range l.stats {
		total += s.ok + s.failed
		classes := make([]string, 0, len(s.failedBy))
		for k, v := range s.failedBy {
			classes = append(classes, fmt.Sprintf("%s %d", k, v))
		}
		sort.Strings(classes)
		lines = append(lines, fmt.Sprintf("  %-22s ok %6d  failed %5d %v  slowest %v",
			opNames[op], s.ok, s.failed, classes, s.maxElapsed.Round(time.Millisecond)))
	}
	t.Logf("%d calls by %d goroutines, %v deadline each (Repair 5 times that); the machine stood still up to %v at a time, "+
		"which explains %d calls late and %d past their deadline outside a fault window:\n%s",
		total, loadGoroutines, l.cfg.timeout, l.mon.worst().Round(time.Millisecond), l.excusedLate, l.excusedDeadline, strings.Join(lines, "\n"))
	var classes []string
	for class := range l.examples {
		classes = append(classes, class)
	}
	sort.Strings(classes)
	for _, class := range classes {
		var msgs []string
		for m := range l.examples[class] {
			msgs = append(msgs, m)
		}
		sort.Strings(msgs)
		t.Logf("  %s errors, e.g.:\n    %s", class, strings.Join(msgs, "\n    "))
	}
	if len(excused) > 0 {
		t.Logf("  excused, e.g.:\n    %s", strings.Join(excused, "\n    "))
	}
	for _, b := range l.bad {
		t.Error(b)
	}
	if l.nBad > len(l.bad) {
		t.Errorf("... and %d more like these", l.nBad-len(l.bad))
	}
	assert.Zero(t, l.noscript, "calls failed with NOSCRIPT: the fallback to EVAL did not hide it")
	return l
}

// failed returns how many calls failed, over all operations.
func (l *mixedLoad) failed() int {
	n := 0
	for _, s := range l.stats {
		n += s.failed
	}
	return n
}

// requireRecovered checks that every operation in the mix was answered
// after the last fault window closed: the same store objects work again.
func (l *mixedLoad) requireRecovered(t *testing.T) {
	t.Helper()
	p := l.phase.Load()
	require.Zero(t, p%2, "a fault window is still open")
	for _, op := range l.cfg.ops {
		assert.Equal(t, p, l.lastOK[op].Load(), "%s was never answered after the fault", opNames[op])
	}
}

// --- Recovery round ---

// freshRound checks, from freshCallers goroutines at once, every
// operation once on a channel of each caller's own, with exact answers:
// after a fault, the same store objects work as new.
func freshRound(t *testing.T, r *faultRig) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, freshCallers)
	for g := 0; g < freshCallers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := freshCalls(ctx, r, freshID(g), freshTopic(g)); err != nil {
				errs <- fmt.Errorf("recovery round, caller %d: %w", g, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func freshCalls(ctx context.Context, r *faultRig, id, topic string) error {
	cs, hs, ss := r.cs, r.hs, r.ss
	if err := cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id, ChannelName: loadName(id), OpeningData: loadData(id)}); err != nil {
		return err
	}
	if err := cs.SetUserSession(ctx, id, idValue{ID: id, N: 1}); err != nil {
		return err
	}
	got, err := cs.GetChannelAndSession(ctx, id)
	if err != nil {
		return err
	}
	if got.ChannelID != id || got.ChannelName != loadName(id) || string(got.OpeningData) != loadDataJSON(id) || string(got.Session) != `{"id":"`+id+`","n":1}` {
		return fmt.Errorf("GetChannelAndSession(%s) = %+v", id, got)
	}
	if err := cs.SetPikkuUserID(ctx, id, loadUser(id)); err != nil {
		return err
	}
	info, err := cs.GetChannel(ctx, id)
	if err != nil {
		return err
	}
	if info.ChannelID != id || info.PikkuUserID != loadUser(id) {
		return fmt.Errorf("GetChannel(%s) = %+v", id, info)
	}
	if err := freshSessionCalls(ctx, cs, ss, id, loadUser(id)); err != nil {
		return err
	}
	if err := cs.SetState(ctx, id, idValue{ID: id, N: 2}); err != nil {
		return err
	}
	state, ok, err := cs.GetState(ctx, id)
	if err != nil {
		return err
	}
	if !ok || string(state) != `{"id":"`+id+`","n":2}` {
		return fmt.Errorf("GetState(%s) = %s, %v", id, state, ok)
	}
	if err := cs.ClearState(ctx, id); err != nil {
		return err
	}
	if _, ok, err := cs.GetState(ctx, id); err != nil || ok {
		return fmt.Errorf("GetState(%s) after ClearState: %v, %v", id, ok, err)
	}
	if ok, err := hs.Subscribe(ctx, topic, id); err != nil || !ok {
		return fmt.Errorf("Subscribe(%s, %s) = %v, %v", topic, id, ok, err)
	}
	ids, err := hs.GetChannelIDsForTopic(ctx, topic)
	if err != nil {
		return err
	}
	if !slices.Equal(ids, []string{id}) {
		return fmt.Errorf("GetChannelIDsForTopic(%s) = %q", topic, ids)
	}
	var scanned []string
	for got, err := range hs.ScanChannelIDsForTopic(ctx, topic) {
		if err != nil {
			return err
		}
		scanned = append(scanned, got)
	}
	if !slices.Equal(scanned, []string{id}) {
		return fmt.Errorf("ScanChannelIDsForTopic(%s) = %q", topic, scanned)
	}
	if r.backend.leases {
		if gone, err := cs.TouchChannels(ctx, id, "no-such-channel"); err != nil || !slices.Equal(gone, []string{"no-such-channel"}) {
			return fmt.Errorf("TouchChannels(%s, no-such-channel) = %q, %v", id, gone, err)
		}
		if n, err := cs.SweepExpired(ctx); err != nil || n != 0 {
			return fmt.Errorf("SweepExpired() = %d, %v", n, err)
		}
		if rep, err := hs.Repair(ctx, pikkuredis.RepairOptions{ChannelsKeptByChannelStore: true}); err != nil || rep.Found != 0 || !rep.Done {
			return fmt.Errorf("Repair() = %+v, %v", rep, err)
		}
	}
	if ok, err := hs.Unsubscribe(ctx, topic, id); err != nil || !ok {
		return fmt.Errorf("Unsubscribe(%s, %s) = %v, %v", topic, id, ok, err)
	}
	if err := cs.RemoveChannels(ctx, []string{id}); err != nil {
		return err
	}
	if _, err := cs.GetChannelAndSession(ctx, id); !errors.Is(err, pikkuredis.ErrChannelNotFound) {
		return fmt.Errorf("GetChannelAndSession(%s) after RemoveChannels: %v", id, err)
	}
	if _, err := cs.GetChannelWithSession(ctx, id); !errors.Is(err, pikkuredis.ErrChannelNotFound) {
		return fmt.Errorf("GetChannelWithSession(%s) after RemoveChannels: %v", id, err)
	}
	return nil
}

// freshSessionCalls checks the SessionStore and GetChannelWithSession on
// the channel id, whose Pikku user is user, with exact answers, and
// leaves user without a session.
func freshSessionCalls(ctx context.Context, cs *pikkuredis.ChannelStore, ss *pikkuredis.SessionStore, id, user string) error {
	if raw, ok, err := ss.Get(ctx, user); err != nil || ok || raw != nil {
		return fmt.Errorf("SessionStore.Get(%s) before Set = %q, %v, %v", user, raw, ok, err)
	}
	if err := ss.Set(ctx, user, loadSessionValue{User: user, N: 3}); err != nil {
		return err
	}
	want := loadSessionJSON(user, 3)
	if raw, ok, err := ss.Get(ctx, user); err != nil || !ok || string(raw) != want {
		return fmt.Errorf("SessionStore.Get(%s) = %q, %v, %v", user, raw, ok, err)
	}
	got, err := cs.GetChannelWithSession(ctx, id)
	if err != nil {
		return err
	}
	if got.ChannelID != id || got.ChannelName != loadName(id) || string(got.OpeningData) != loadDataJSON(id) ||
		got.PikkuUserID != user || !got.HasSession || string(got.Session) != want {
		return fmt.Errorf("GetChannelWithSession(%s) = %+v, session %q, %v", id, got.ChannelInfo, got.Session, got.HasSession)
	}
	if err := ss.Clear(ctx, user); err != nil {
		return err
	}
	if raw, ok, err := ss.Get(ctx, user); err != nil || ok || raw != nil {
		return fmt.Errorf("SessionStore.Get(%s) after Clear = %q, %v, %v", user, raw, ok, err)
	}
	got, err = cs.GetChannelWithSession(ctx, id)
	if err != nil || got.PikkuUserID != user || got.HasSession || got.Session != nil {
		return fmt.Errorf("GetChannelWithSession(%s) after Clear = %+v, session %q, %v, %v", id, got.ChannelInfo, got.Session, got.HasSession, err)
	}
	return nil
}

// --- The faults ---

// forEachBackend runs test on every backend, each with a server of its
// own started with extra config.
func forEachBackend(t *testing.T, extra []string, test func(t *testing.T, r *faultRig)) {
	for _, b := range faultBackends {
		t.Run(b.name, func(t *testing.T) {
			srv := startFaultServer(t, extra...)
			test(t, newFaultRig(t, srv, b))
		})
	}
}

// Fault 1: the server is killed with SIGKILL mid-load and restarted on the
// same port, empty and without its script cache. Calls in the window may
// fail with a lost connection, a failed dial or their deadline, each
// within its deadline; calls before it, and after it, may not fail at
// all. The window closes once every goroutine has had two calls made
// after the restart answered, and 200 ms at least: an idle connection of
// a pool, or an idle lane, learns that the old server is gone only when a
// call is written on it, and that call fails. The same store objects work
// again, and the scripts came back by EVAL, with no caller seeing
// NOSCRIPT.
func TestFaultServerKilledAndRestarted(t *testing.T) {
	forEachBackend(t, nil, func(t *testing.T, r *faultRig) {
		ctx := ctxT(t)
		require.NoError(t, r.cs.Init(ctx)) // the scripts are cached, then lost
		l := r.startLoad(loadConfig{timeout: 2 * time.Second, slack: 500 * time.Millisecond,
			policy: policy{window: connOrDeadline}})
		l.runFor(300 * time.Millisecond)
		l.openWindow()
		r.srv.Kill()
		time.Sleep(300 * time.Millisecond)
		require.NoError(t, r.srv.Restart())
		l.settle(t, 200*time.Millisecond)
		l.runFor(300 * time.Millisecond)
		l.finish(t).requireRecovered(t)
		assert.Positive(t, l.failed(), "no call failed while the server was down")
		freshRound(t, r)

		// The restarted server got every script by EVAL (nothing here
		// sends SCRIPT LOAD after Init), after answering NOSCRIPT.
		names := []string{"subscribe", "unsubscribe", "set_channel_field", "clear_channel_field", "remove_channels", "get_channel_with_session"}
		if r.backend.leases {
			names = append(names, "add_channel", "touch_channels", "sweep_expired")
		}
		args := []any{"EXISTS"}
		for _, name := range names {
			args = append(args, pikkuredis.ScriptSHAs()[name])
		}
		exists, err := redis.Ints(r.admin("SCRIPT", args...))
		require.NoError(t, err)
		for i, name := range names {
			assert.Equal(t, 1, exists[i], "script %s missing from the restarted server's cache", name)
		}
		cmds, errs := r.info("commandstats"), r.info("errorstats")
		assert.Positive(t, statCount(cmds["cmdstat_eval"], "calls"), "no EVAL after the restart")
		assert.Zero(t, statCount(cmds["cmdstat_script|load"], "calls"), "SCRIPT LOAD after the restart")
		assert.Positive(t, statCount(errs["errorstat_NOSCRIPT"], "count"), "the restarted server never answered NOSCRIPT")
		r.finish()
	})
}

// Fault 2: CLIENT KILL TYPE normal, every 40 ms for a while, kills every
// connection of the stores, busy or idle. Calls in the window may fail
// with a lost connection or their deadline; broken connections are
// dropped, and once the kills stop every call succeeds again.
func TestFaultClientKill(t *testing.T) {
	forEachBackend(t, nil, func(t *testing.T, r *faultRig) {
		l := r.startLoad(loadConfig{timeout: 2 * time.Second, slack: 500 * time.Millisecond,
			policy: policy{window: connOrDeadline}})
		l.runFor(300 * time.Millisecond)
		l.openWindow()
		killed := 0
		for k := 0; k < 8; k++ {
			n, err := redis.Int(r.admin("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"))
			require.NoError(t, err)
			killed += n
			time.Sleep(40 * time.Millisecond)
		}
		l.settle(t, 200*time.Millisecond)
		l.runFor(300 * time.Millisecond)
		l.finish(t).requireRecovered(t)
		t.Logf("%d connections killed", killed)
		assert.Positive(t, killed)
		freshRound(t, r)
		if r.backend.lanes {
			// One lane per store, dialled again; nothing left over.
			c := dialURL(t, r.srv.URL)
			defer c.Close()
			assert.Len(t, clientIDs(t, c, r.client), 3, "connections of the three auto-pipelined stores")
		}
		r.finish()
	})
}

// Fault 3: SCRIPT FLUSH every 2 ms during the load. NOSCRIPT is recovered
// invisibly: not one call fails.
func TestFaultScriptFlush(t *testing.T) {
	forEachBackend(t, nil, func(t *testing.T, r *faultRig) {
		l := r.startLoad(loadConfig{timeout: 5 * time.Second, slack: time.Second})
		l.runFor(200 * time.Millisecond)
		flushes := 0
		for deadline := time.Now().Add(600 * time.Millisecond); time.Now().Before(deadline); flushes++ {
			mode := "SYNC"
			if flushes%2 == 1 {
				mode = "ASYNC"
			}
			r.mustAdmin("SCRIPT", "FLUSH", mode)
			time.Sleep(2 * time.Millisecond)
		}
		l.runFor(200 * time.Millisecond)
		l.finish(t).requireRecovered(t)
		assert.Equal(t, l.excusedDeadline, l.failed(), "calls failed under SCRIPT FLUSH (other than deadlines missed while the machine stood still)")
		t.Logf("%d flushes, %d NOSCRIPT answers recovered", flushes, statCount(r.info("errorstats")["errorstat_NOSCRIPT"], "count"))
		assert.Positive(t, statCount(r.info("errorstats")["errorstat_NOSCRIPT"], "count"), "the server never answered NOSCRIPT")
		r.finish()
	})
}

// Fault 4: the server stalls for 2 s (CLIENT PAUSE 2000 ALL, or DEBUG
// SLEEP 2, which blocks it wholly) while every call has a 200 ms deadline.
// Calls fail at their deadline, not when the server wakes: each returns
// within 200 ms + 300 ms of slack, and a failure is always
// context.DeadlineExceeded. Afterwards every call succeeds again.
func TestFaultStalledServer(t *testing.T) {
	stalls := []struct {
		name  string
		stall func(r *faultRig) error // returns when the stall is over
	}{
		{"CLIENT PAUSE 2000 ALL", func(r *faultRig) error {
			if _, err := r.admin("CLIENT", "PAUSE", 2000, "ALL"); err != nil {
				return err
			}
			_, err := r.admin("PING") // held until the pause ends
			return err
		}},
		{"DEBUG SLEEP 2", func(r *faultRig) error {
			_, err := r.admin("DEBUG", "SLEEP", 2)
			return err
		}},
	}
	for _, s := range stalls {
		t.Run(s.name, func(t *testing.T) {
			forEachBackend(t, nil, func(t *testing.T, r *faultRig) {
				deadline := func(_ int, err error) bool { return isDeadline(err) }
				l := r.startLoad(loadConfig{timeout: 200 * time.Millisecond, slack: 300 * time.Millisecond,
					policy: policy{window: deadline, outside: deadline}})
				l.runFor(300 * time.Millisecond)
				l.openWindow()
				start := time.Now()
				require.NoError(t, s.stall(r))
				require.Greater(t, time.Since(start), 1900*time.Millisecond, "the server did not stall")
				l.settle(t, 0)
				l.runFor(500 * time.Millisecond)
				l.finish(t).requireRecovered(t)
				assert.Greater(t, l.failed(), loadGoroutines, "calls did not fail during the stall")
				freshRound(t, r)
				r.finish()
			})
		})
	}
}

// Fault 5: out of memory (maxmemory 16mb, noeviction: room for the 128
// connections of two pools), the server filled with keys outside the
// prefix until it refuses writes.
//   - Writes that add data (AddChannel, Subscribe, SetUserSession,
//     SetPikkuUserID, SetState, SessionStore.Set) fail with an error that
//     says OOM, and leave no trace: the prefix's keys are what they were,
//     byte for byte (a refused Subscribe changed neither set, a refused
//     Set left the old session).
//   - Reads (GetChannelWithSession's no-writes script among them), the
//     deletes and clears (Unsubscribe, RemoveChannels, ClearState,
//     SessionStore.Clear), and the allow-oom scripts of leases
//     (TouchChannels, SweepExpired, Repair) still work, also with the
//     script cache flushed, keeping both index directions in agreement;
//     removing every channel and clearing every session leaves no key.
//   - Once memory is freed, every call succeeds again.
func TestFaultOutOfMemory(t *testing.T) {
	forEachBackend(t, []string{"--maxmemory", "16mb", "--maxmemory-policy", "noeviction"}, func(t *testing.T, r *faultRig) {
		ctx := ctxT(t)
		// Data for the deletes to delete: every channel, with a state,
		// each in 3 topics, and a Pikku user; both users of each channel
		// with a session.
		for i := 0; i < loadChannels; i++ {
			id := loadID(i)
			require.NoError(t, r.cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id, ChannelName: loadName(id), OpeningData: loadData(id)}))
			require.NoError(t, r.cs.SetUserSession(ctx, id, idValue{ID: id}))
			require.NoError(t, r.cs.SetState(ctx, id, idValue{ID: id}))
			require.NoError(t, r.cs.SetPikkuUserID(ctx, id, loadUser(id)))
			for _, user := range []string{loadUser(id), otherUser(id)} {
				require.NoError(t, r.ss.Set(ctx, user, loadSessionValue{User: user}))
			}
			for k := 0; k < 3; k++ {
				_, err := r.hs.Subscribe(ctx, loadTopic((i+k)%loadTopics), id)
				require.NoError(t, err)
			}
		}
		fillMemory(t, r)
		c := dialURL(t, r.srv.URL)
		defer c.Close()
		oomWrite := func(op int, err error) bool { return isWriteOp(op) && isOOM(err) }

		// Every operation but those that change data when Redis lets
		// them (the deletes and clears; TouchChannels moves leases): the
		// writes are all refused, and nothing changed.
		before := contents(t, c, r.prefix)
		ops := slices.DeleteFunc(opsFor(r.backend), func(op int) bool { return slices.Contains(deleteOps, op) || op == opTouchChannels })
		l := r.startLoad(loadConfig{ops: ops, timeout: 2 * time.Second, slack: 500 * time.Millisecond,
			policy: policy{outside: oomWrite}})
		l.runUntil(400*time.Millisecond, isWriteOp)
		l.finish(t)
		for _, op := range writeOps {
			assert.Zero(t, l.stats[op].ok, "%s succeeded with the server out of memory", opNames[op])
			assert.Positive(t, l.stats[op].failedBy["OOM"], "%s never failed with OOM", opNames[op])
		}
		assert.Equal(t, before, contents(t, c, r.prefix), "refused writes changed the prefix's keys")

		// A delete works, both directions (c0 is in t0, t1 and t2), also
		// when the server has lost its scripts: the EVAL that reloads an
		// allow-oom script is not refused either.
		r.mustAdmin("SCRIPT", "FLUSH")
		ok, err := r.hs.Unsubscribe(ctx, loadTopic(0), loadID(0))
		require.NoError(t, err, "Unsubscribe with the server out of memory")
		assert.True(t, ok)
		for _, check := range [][2]string{{":topic:" + loadTopic(0), loadID(0)}, {":subs:" + loadID(0), loadTopic(0)}} {
			in, err := redis.Bool(c.Do("SISMEMBER", r.prefix+check[0], check[1]))
			require.NoError(t, err)
			assert.False(t, in, "%s still holds %s", check[0], check[1])
		}
		// And a clear: a user can log out of a full Redis.
		require.NoError(t, r.cs.ClearState(ctx, loadID(1)), "ClearState with the server out of memory")
		_, hasState, err := r.cs.GetState(ctx, loadID(1))
		require.NoError(t, err)
		assert.False(t, hasState, "ClearState left the state")
		require.NoError(t, r.ss.Clear(ctx, loadUser(loadID(1))), "SessionStore.Clear with the server out of memory")
		_, hasSession, err := r.ss.Get(ctx, loadUser(loadID(1)))
		require.NoError(t, err)
		assert.False(t, hasSession, "SessionStore.Clear left the session")
		// GetChannelWithSession's script, not in the flushed cache, comes
		// back by EVAL: no-writes, Redis runs it out of memory.
		got, err := r.cs.GetChannelWithSession(ctx, loadID(2))
		require.NoError(t, err, "GetChannelWithSession with the server out of memory and its script flushed")
		assert.Equal(t, loadUser(loadID(2)), got.PikkuUserID)
		assert.True(t, got.HasSession)
		assert.Equal(t, loadSessionJSON(loadUser(loadID(2)), 0), string(got.Session))

		// Every operation: the writes are refused, everything else works.
		l = r.startLoad(loadConfig{timeout: 2 * time.Second, slack: 500 * time.Millisecond,
			policy: policy{outside: oomWrite}})
		l.runUntil(400*time.Millisecond, isWriteOp)
		l.finish(t)
		for _, op := range l.cfg.ops {
			if !isWriteOp(op) {
				assert.Positive(t, l.stats[op].ok, "%s never succeeded with the server out of memory", opNames[op])
			}
		}
		assertIndexesAgreeOn(t, c, r.prefix)
		assertSessionsWhole(t, c, r.prefix, r.backend.sessionTTL)
		require.NoError(t, r.cs.RemoveChannels(ctx, allLoadIDs()), "RemoveChannels with the server out of memory")
		r.clearSessions(ctx) // DEL, out of memory
		assert.Empty(t, scanKeys(t, c, r.prefix), "keys left after removing every channel and clearing every session out of memory")
		_, err = r.admin("SET", "probe", "x")
		require.ErrorContains(t, err, "OOM", "the server is still out of memory")

		// Memory freed: everything works again.
		freeMemory(t, r)
		l = r.startLoad(loadConfig{timeout: 2 * time.Second, slack: 500 * time.Millisecond})
		l.runFor(400 * time.Millisecond)
		l.finish(t).requireRecovered(t)
		freshRound(t, r)
		r.finish()
	})
}

// fillMemory fills database 1 (outside every prefix) until the server
// refuses writes, and then 8 MB more, so that neither the deletes the test
// makes nor connections coming and going (each costs the server tens of
// kilobytes) bring it back under its limit.
func fillMemory(t *testing.T, r *faultRig) {
	t.Helper()
	c := dialURL(t, r.srv.URL)
	defer c.Close()
	_, err := c.Do("SELECT", 1)
	require.NoError(t, err)
	for round := 0; ; round++ {
		require.Less(t, round, 100, "the server never ran out of memory")
		_, err := c.Do("DEBUG", "POPULATE", 10000, fmt.Sprintf("fill%d", round), 100)
		require.NoError(t, err)
		if _, err := c.Do("SET", "probe", "x"); err != nil {
			require.ErrorContains(t, err, "OOM")
			_, err = c.Do("DEBUG", "POPULATE", 50000, "extra", 100)
			require.NoError(t, err)
			t.Logf("out of memory: used_memory %s of %s", r.info("memory")["used_memory_human"], r.info("memory")["maxmemory_human"])
			return
		}
	}
}

func freeMemory(t *testing.T, r *faultRig) {
	t.Helper()
	c := dialURL(t, r.srv.URL)
	defer c.Close()
	_, err := c.Do("SELECT", 1)
	require.NoError(t, err)
	_, err = c.Do("FLUSHDB", "SYNC")
	require.NoError(t, err)
	_, err = c.Do("SET", "probe", "x")
	require.NoError(t, err, "still out of memory after freeing it: used_memory %s", r.info("memory")["used_memory_human"])
	_, err = c.Do("DEL", "probe")
	require.NoError(t, err)
}

// --- Soak ---

// TestFaultSoak runs, when PIKKUREDIS_SOAK names a duration, the mixed
// load on every backend at once (each on a prefix of its own, 64
// goroutines each) for that long, against one server, with every fault
// of this file injected in turn: kill -9 and restart, CLIENT KILL, SCRIPT
// FLUSH, CLIENT PAUSE, DEBUG SLEEP, out of memory. Calls have 1 s
// deadlines. In a fault's window a call may fail only with a lost
// connection, its deadline, or (a write) OOM; between faults, not at all.
// After each fault every backend must recover and pass a recovery round;
// at the end the indexes agree, every session key is whole, removing
// every channel and clearing every session leaves no key, and no
// goroutine is left.
func TestFaultSoak(t *testing.T) {
	v := os.Getenv(soakEnv)
	if v == "" {
		t.Skipf("set %s to a duration (e.g. %s=5m) to run the soak", soakEnv, soakEnv)
	}
	d, err := time.ParseDuration(v)
	require.NoError(t, err, "%s=%q", soakEnv, v)
	srv := startFaultServer(t)
	baseline := runtime.NumGoroutine()
	var rigs []*faultRig
	var loads []*mixedLoad
	window := func(op int, err error) bool {
		return isConnErr(err) || isDeadline(err) || (isWriteOp(op) && isOOM(err))
	}
	for i, b := range faultBackends {
		r := newFaultRigOn(t, srv, b, fmt.Sprintf("pikkuredis-soak-%d", i), -1)
		rigs = append(rigs, r)
		loads = append(loads, r.startLoad(loadConfig{timeout: time.Second, slack: 500 * time.Millisecond,
			policy: policy{window: window}}))
	}
	admin := func(cmd string, args ...any) any {
		t.Helper()
		reply, err := adminDo(srv.URL, cmd, args...)
		require.NoError(t, err, "%s %v", cmd, args)
		return reply
	}
	faults := []struct {
		name   string
		inject func() // returns once the fault is undone
	}{
		{"kill -9 and restart", func() {
			srv.Kill()
			time.Sleep(300 * time.Millisecond)
			require.NoError(t, srv.Restart())
		}},
		{"CLIENT KILL TYPE normal", func() {
			for k := 0; k < 5; k++ {
				admin("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
				time.Sleep(40 * time.Millisecond)
			}
		}},
		{"SCRIPT FLUSH every 2 ms", func() {
			for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); {
				admin("SCRIPT", "FLUSH")
				time.Sleep(2 * time.Millisecond)
			}
		}},
		{"CLIENT PAUSE 1500 ALL", func() {
			admin("CLIENT", "PAUSE", 1500, "ALL")
			admin("PING")
		}},
		{"DEBUG SLEEP 1", func() { admin("DEBUG", "SLEEP", 1) }},
		{"out of memory", func() {
			used, err := strconv.Atoi(rigs[0].info("memory")["used_memory"])
			require.NoError(t, err)
			admin("CONFIG", "SET", "maxmemory-policy", "noeviction")
			admin("CONFIG", "SET", "maxmemory", used+8<<20)
			fillMemory(t, rigs[0])
			time.Sleep(500 * time.Millisecond)
			freeMemory(t, rigs[0])
			admin("CONFIG", "SET", "maxmemory", 0)
		}},
	}
	start := time.Now()
	for round := 0; time.Since(start) < d && !t.Failed(); round++ {
		f := faults[round%len(faults)]
		for _, l := range loads {
			l.openWindow()
		}
		f.inject()
		for _, l := range loads {
			l.settle(t, 200*time.Millisecond)
		}
		for _, r := range rigs {
			freshRound(t, r)
		}
		time.Sleep(time.Second) // between faults, no call may fail
		t.Logf("round %d (%v): %s, recovered", round, time.Since(start).Round(time.Second), f.name)
	}
	for i, l := range loads {
		l.finish(t).requireRecovered(t)
		rigs[i].finish()
	}
	waitForGoroutines(t, baseline)
}
