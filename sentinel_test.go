package pikkuredis_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pikkujs/pikkuredis"
	"github.com/pikkujs/pikkuredis/internal/redisserver"
)

// The passwords of the Sentinel set that sentinelSet starts: Redis's (an
// ACL user, app) and the sentinels' differ, as they may in production.
const (
	sentinelRedisPW = "Rq7pW3xZ"
	sentinelPW      = "Sv4kT8mY"
)

// sentinelSetup is a master, its replica and three sentinels, all of the
// test's own.
type sentinelSetup struct {
	master, replica *redisserver.Server
	sentinels       []*redisserver.Sentinel
	url             string // redis+sentinel:// with both passwords
}

// sentinelSet starts a master and a replica that both know the user app
// (given on the command line, so that a restart keeps it), and three
// sentinels with a password that watch them, and waits until each
// sentinel sees the replica and the two others.
func sentinelSet(t *testing.T) *sentinelSetup {
	t.Helper()
	user := []string{"--user", "app", "on", ">" + sentinelRedisPW, "~*", "&*", "+@all"}
	master := ownRedis(t, user...)
	_, port, _ := net.SplitHostPort(master.Addr)
	replica := ownRedis(t, append([]string{"--replicaof", "127.0.0.1", port}, user...)...)
	waitRole(t, replica, "slave", master.Addr, 10*time.Second)
	s := &sentinelSetup{master: master, replica: replica}
	var addrs []string
	for range 3 {
		sn := ownSentinel(t, redisserver.SentinelConfig{MasterAddr: master.Addr, Password: sentinelPW})
		s.sentinels = append(s.sentinels, sn)
		addrs = append(addrs, sn.Addr)
	}
	for _, sn := range s.sentinels {
		require.NoError(t, sn.WaitMonitoring(1, 2, 20*time.Second))
	}
	s.url = "redis+sentinel://app:" + sentinelRedisPW + "@" + strings.Join(addrs, ",") + "/mymaster?sentinel_password=" + sentinelPW
	return s
}

// ownSentinel starts a sentinel, stopped when the test ends. It runs
// after ownRedis, which skips under -short and fails when redis-server is
// missing, so any error here fails the test.
func ownSentinel(t *testing.T, cfg redisserver.SentinelConfig) *redisserver.Sentinel {
	t.Helper()
	sn, err := redisserver.StartSentinel(cfg)
	require.NoError(t, err)
	t.Cleanup(sn.Stop)
	return sn
}

// waitRole waits until srv's INFO replication says role (and, for a
// replica, that its link to master is up).
func waitRole(t *testing.T, srv *redisserver.Server, role, master string, timeout time.Duration) {
	t.Helper()
	host, port, _ := net.SplitHostPort(master)
	deadline := time.Now().Add(timeout)
	var info string
	for time.Now().Before(deadline) {
		if c, err := redis.Dial("tcp", srv.Addr, redis.DialReadTimeout(time.Second)); err == nil {
			info, _ = redis.String(c.Do("INFO", "replication"))
			c.Close()
		}
		if strings.Contains(info, "role:"+role+"\r\n") && (role == "master" ||
			strings.Contains(info, "master_host:"+host+"\r\n") && strings.Contains(info, "master_port:"+port+"\r\n") &&
				strings.Contains(info, "master_link_status:up")) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s is not %s of %s after %v:\n%s", srv.Addr, role, master, timeout, info)
}

// commandCalls returns INFO commandstats as command name -> calls.
func commandCalls(t *testing.T, srv *redisserver.Server) map[string]int {
	t.Helper()
	c := dialURL(t, srv.URL)
	defer c.Close()
	info, err := redis.String(c.Do("INFO", "commandstats"))
	require.NoError(t, err)
	calls := map[string]int{}
	for _, line := range strings.Split(info, "\r\n") {
		name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":calls=")
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(strings.SplitN(rest, ",", 2)[0])
		calls[name] = n
	}
	return calls
}

// The master dies (SIGKILL) under 64 concurrent callers whose every call
// has its own 500 ms deadline. No call outlives its deadline; once the
// sentinels promote the replica, the same store objects write to it
// within 15 s; the old master, restarted as a crashed server is (same
// configuration, empty), is turned into a replica by the sentinels after
// some seconds as a master, and the stores never send it a command. A
// second pair of stores, WithoutAutoPipelining, runs alongside.
func TestSentinelFailover(t *testing.T) {
	s := sentinelSet(t)
	const deadline = 500 * time.Millisecond
	// A call may end a little after its deadline on a loaded 2-core
	// machine (-race): scheduling, not waiting on Redis.
	const slack = 300 * time.Millisecond

	type pair struct {
		name    string
		cs      *pikkuredis.ChannelStore
		hs      *pikkuredis.EventHubStore
		workers int
		// firstAfterKill is when a write through the pair that started
		// after the master was dead first succeeded (UnixNano; 0 until
		// then). Not any write that ended after the kill: one in flight
		// when it came may have succeeded on the old master.
		firstAfterKill atomic.Int64
	}
	prefix := newPrefix(t)
	var pairs []*pair
	for _, m := range []struct {
		name    string
		workers int
		opts    []pikkuredis.Option
	}{
		{"auto-pipelined", 64, nil},
		{"WithoutAutoPipelining", 16, []pikkuredis.Option{pikkuredis.WithoutAutoPipelining()}},
	} {
		opts := append([]pikkuredis.Option{pikkuredis.WithKeyPrefix(prefix + m.name)}, m.opts...)
		cs, hs := openBoth(t, s.url, opts...)
		require.NoError(t, cs.Init(ctxT(t)), m.name)
		require.NoError(t, hs.Init(ctxT(t)), m.name)
		pairs = append(pairs, &pair{name: m.name, cs: cs, hs: hs, workers: m.workers})
	}

	var (
		deadAt    atomic.Int64 // UnixNano, once the killed master has exited; 0 before
		calls     atomic.Int64
		late      atomic.Int64
		worstLate atomic.Int64 // the longest a call took past its deadline, ns
		lateMu    sync.Mutex
		lateErrs  []string
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, p := range pairs {
		for w := range p.workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					id := fmt.Sprintf("w%d-%d", w, i)
					ctx, cancel := context.WithTimeout(context.Background(), deadline)
					start := time.Now()
					var err error
					switch i % 3 {
					case 0:
						err = p.cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id, ChannelName: "chat"})
					case 1:
						_, err = p.hs.Subscribe(ctx, "topic-"+strconv.Itoa(w%4), id)
					case 2:
						err = p.cs.SetUserSession(ctx, fmt.Sprintf("w%d-%d", w, i-2), map[string]string{"userId": id})
					}
					end := time.Now()
					cancel()
					calls.Add(1)
					if over := end.Sub(start) - deadline; over > slack {
						late.Add(1)
						for {
							old := worstLate.Load()
							if int64(over) <= old || worstLate.CompareAndSwap(old, int64(over)) {
								break
							}
						}
						lateMu.Lock()
						lateErrs = append(lateErrs, fmt.Sprintf("%s: %v over: %v", p.name, over, err))
						lateMu.Unlock()
					}
					if dead := deadAt.Load(); err == nil && dead != 0 && start.UnixNano() > dead && p.firstAfterKill.Load() == 0 {
						p.firstAfterKill.CompareAndSwap(0, end.UnixNano())
					}
					if err != nil {
						time.Sleep(10 * time.Millisecond) // no busy loop while Redis is away
					}
				}
			}()
		}
	}
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopLoad)

	time.Sleep(500 * time.Millisecond)
	require.Positive(t, calls.Load())
	oldMaster, newMaster := s.master.Addr, s.replica.Addr
	kill := time.Now()
	s.master.Kill() // returns once the process has exited
	deadAt.Store(time.Now().UnixNano())

	// The promotion, as the sentinels report it.
	var promoted time.Time
	for time.Since(kill) < 20*time.Second {
		if addr, err := s.sentinels[0].MasterAddr(); err == nil && addr == newMaster {
			promoted = time.Now()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.False(t, promoted.IsZero(), "the sentinels did not promote %s within 20 s of the kill", newMaster)
	for _, p := range pairs {
		for p.firstAfterKill.Load() == 0 && time.Since(promoted) < 15*time.Second {
			time.Sleep(10 * time.Millisecond)
		}
		first := p.firstAfterKill.Load()
		require.NotZero(t, first, "%s: no write succeeded within 15 s of the promotion", p.name)
		t.Logf("%s: kill -> promotion %v, kill -> first successful write %v",
			p.name, promoted.Sub(kill).Round(time.Millisecond), time.Unix(0, first).Sub(kill).Round(time.Millisecond))
	}

	// The old master comes back empty and as a master, until the
	// sentinels see it and turn it into a replica of the new one (some
	// seconds: they wait to be sure it is not the newer master). The
	// load goes on meanwhile.
	require.NoError(t, s.master.Restart())
	restarted := time.Now()
	waitRole(t, s.master, "slave", newMaster, 30*time.Second)
	t.Logf("old master restarted %v after the kill, a replica again %v later", restarted.Sub(kill).Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond))
	time.Sleep(500 * time.Millisecond) // the stores keep writing to the new master
	stopLoad()

	// Every store connection starts with AUTH (the app user) and ROLE, and
	// every write is a script or HSET after those: the old master, since
	// its restart, must have had none of them. The sentinels do not
	// AUTH (the default user has no password) nor send ROLE, and scripts
	// reach a replica as their effects, not as EVALSHA.
	old := commandCalls(t, s.master)
	for _, cmd := range []string{"auth", "role", "evalsha", "eval", "script|load"} {
		assert.Zero(t, old[cmd], "the restarted old master %s got %d %s", oldMaster, old[cmd], cmd)
	}
	assert.Positive(t, commandCalls(t, s.replica)["evalsha"], "the new master got no EVALSHA: the check above proves nothing")

	// The same store objects still write, to the new master.
	for _, p := range pairs {
		ctx := ctxT(t)
		require.NoError(t, p.cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "after", ChannelName: "x"}), p.name)
		c := dialURL(t, s.replica.URL)
		n, err := redis.Int(c.Do("EXISTS", prefix+p.name+":channel:after"))
		c.Close()
		require.NoError(t, err)
		assert.Equal(t, 1, n, "%s: the write after the failover is not on the new master", p.name)
	}

	t.Logf("%d calls, %d ended more than %v after their %v deadline (worst %v)", calls.Load(), late.Load(), slack, deadline, time.Duration(worstLate.Load()))
	assert.Zero(t, late.Load(), "calls outlived their deadline: %v", firstN(lateErrs, 5))
}

func firstN(s []string, n int) []string { return s[:min(n, len(s))] }

// A Sentinel URL that cannot work is refused at Open, saying why and
// never showing a password; a dial that fails says why too: no sentinel,
// a wrong sentinel or Redis password, a master name the sentinels do not
// know, a "master" that is a replica (which then gets no command but
// AUTH and ROLE), sentinels that hang (the call still ends with its
// context).
func TestSentinelErrors(t *testing.T) {
	const s = "Zq9xK7wP"
	for url, want := range map[string]string{
		"redis+sentinel://u:" + s + "@/mymaster":                         "no sentinel addresses",
		"redis+sentinel://u:" + s + "@h1:bad/mymaster":                   `sentinel address "h1:bad": port must be a number`,
		"redis+sentinel://u:" + s + "@h1":                                "no master name",
		"redis+sentinel://h1/m?tls=1&sentinel_password=" + s:             `unknown parameter "tls"`,
		"redis+sentinel://h1/m?sentinel_password=" + s + "&x" + s:        "not shown",
		"redis+sentinel://u:" + s[:3] + "/" + s[3:] + "@h1/m":            "(not shown) is malformed",
		"rediss+sentinel://u:" + s + "@h1/m/x":                           `database "x"`,
		"redis+sentinel://h1/m?sentinel_password=" + s[:3] + "@" + s[3:]: "(not shown) is malformed",
	} {
		for mode, opts := range openModes {
			_, err := pikkuredis.OpenChannelStore(url, opts...)
			require.Error(t, err, "%s %s", mode, url)
			assert.Contains(t, err.Error(), "pikkuredis: invalid redis sentinel URL")
			assert.Contains(t, err.Error(), want)
			assertNoSecret(t, err, s)
			_, err = pikkuredis.OpenEventHubStore(url, opts...)
			require.Error(t, err, "%s %s", mode, url)
			assertNoSecret(t, err, s)
		}
	}

	user := []string{"--user", "app", "on", ">" + s, "~*", "&*", "+@all"}
	master := ownRedis(t, user...)
	replicaOfNothing := ownRedis(t, append([]string{"--replicaof", "127.0.0.1", strings.TrimPrefix(closedPortURL(t), "redis://127.0.0.1:")}, user...)...)
	good := ownSentinel(t, redisserver.SentinelConfig{MasterAddr: master.Addr, Quorum: 1, Password: s + "s"})
	// A sentinel that names a replica as the master (here: monitors it as
	// one, and has no replica to promote instead).
	liar := ownSentinel(t, redisserver.SentinelConfig{MasterAddr: replicaOfNothing.Addr, Quorum: 1})
	none := strings.TrimPrefix(closedPortURL(t), "redis://")
	hang, _ := silentListener(t)
	hangURL := "redis+sentinel://app:" + s + "@" + hang + "/mymaster"
	for url, want := range map[string]string{
		"redis+sentinel://app:" + s + "@" + none + "/mymaster":                                             "connection refused",
		"redis+sentinel://app:" + s + "@" + good.Addr + "/mymaster?sentinel_password=wrong" + s:            "WRONGPASS",
		"redis+sentinel://app:" + s + "@" + good.Addr + "/mymaster":                                        "NOAUTH",
		"redis+sentinel://app:wrong" + s + "@" + good.Addr + "/mymaster?sentinel_password=" + s + "s":      "WRONGPASS",
		"redis+sentinel://app:" + s + "@" + none + "," + good.Addr + "/other?sentinel_password=" + s + "s": `monitors no master of that name`,
		"redis+sentinel://app:" + s + "@" + liar.Addr + "/mymaster":                                        `is a slave`,
		"redis+sentinel://app:" + s + "@" + hang + "/mymaster":                                             `connect to redis: ask sentinels ` + hang + ` for master "mymaster": context deadline exceeded`,
	} {
		for mode, opts := range openModes {
			cs, hs := openBoth(t, url, opts...)
			for _, init := range []func(context.Context) error{cs.Init, hs.Init} {
				ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
				start := time.Now()
				err := init(ctx)
				took := time.Since(start)
				cancel()
				require.Error(t, err, "%s %s", mode, url)
				assert.Contains(t, err.Error(), want, "%s %s", mode, url)
				// Every dial failure says so, a caller who left while the
				// sentinels were asked included.
				assert.Contains(t, err.Error(), "connect to redis: ", "%s %s", mode, url)
				if url == hangURL {
					assert.ErrorIs(t, err, context.DeadlineExceeded, "%s %s", mode, url)
				}
				assertNoSecret(t, err, s)
				assert.Less(t, took, 300*time.Millisecond+300*time.Millisecond, "%s %s: Init outlived its context", mode, url)
			}
		}
	}
	// With the right passwords the good sentinel's master works...
	cs, _ := openBoth(t, "redis+sentinel://app:"+s+"@"+none+","+good.Addr+"/mymaster?sentinel_password="+s+"s")
	require.NoError(t, cs.Init(ctxT(t)))
	require.NoError(t, cs.AddChannel(ctxT(t), pikkuredis.Channel{ChannelID: "c1"}))
	// A sentinel that names a replica, asked first, costs one failed
	// dial: it answered, so it would be asked first ever after, but the
	// next dial asks the good one first.
	liar2 := ownSentinel(t, redisserver.SentinelConfig{MasterAddr: replicaOfNothing.Addr, Quorum: 1, Password: s + "s"})
	for mode, opts := range openModes {
		cs, _ := openBoth(t, "redis+sentinel://app:"+s+"@"+liar2.Addr+","+good.Addr+"/mymaster?sentinel_password="+s+"s", opts...)
		var errs []string
		for range 5 {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			err := cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c2"})
			cancel()
			if err == nil {
				break
			}
			assert.Contains(t, err.Error(), "is a slave", mode)
			errs = append(errs, err.Error())
		}
		assert.LessOrEqual(t, len(errs), 1, "%s: the liar was asked first again: %q", mode, errs)
		require.Less(t, len(errs), 5, "%s: no call succeeded", mode)
	}
	// ...and the replica the liars named got nothing but the dial's AUTH
	// and ROLE.
	calls := commandCalls(t, replicaOfNothing)
	assert.Positive(t, calls["role"])
	for _, cmd := range []string{"evalsha", "eval", "script|load", "hset"} { // not PING: the sentinel sends those
		assert.Zero(t, calls[cmd], "the replica got %s", cmd)
	}
}

// One or two hung sentinels before a good one cost each about one
// sentinel timeout (1 s), once: calls with 200 ms deadlines succeed
// within that of the first, and the good sentinel, having answered, is
// asked first from then on, so that after the store's connections are
// killed every call with a 200 ms deadline succeeds at once.
func TestSentinelHungFirst(t *testing.T) {
	master := ownRedis(t)
	good := ownSentinel(t, redisserver.SentinelConfig{MasterAddr: master.Addr, Quorum: 1})
	hang1, _ := silentListener(t)
	hang2, _ := silentListener(t)
	admin := dialURL(t, master.URL)
	defer admin.Close()
	for _, hung := range [][]string{{hang1}, {hang1, hang2}} {
		url := "redis+sentinel://" + strings.Join(append(slices.Clone(hung), good.Addr), ",") + "/mymaster"
		for mode, opts := range openModes {
			t.Run(fmt.Sprintf("%d hung, %s", len(hung), mode), func(t *testing.T) {
				hs, err := pikkuredis.OpenEventHubStore(url, append(opts, pikkuredis.WithKeyPrefix(newPrefix(t)))...)
				require.NoError(t, err)
				defer hs.Close()
				call := func() error {
					ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
					defer cancel()
					_, err := hs.Subscribe(ctx, "t", "c")
					return err
				}
				start := time.Now()
				for time.Since(start) < 30*time.Second {
					if err = call(); err == nil {
						break
					}
				}
				took := time.Since(start)
				require.NoError(t, err)
				t.Logf("first success after %v", took.Round(time.Millisecond))
				// One sentinel timeout per hung sentinel, plus a 200 ms
				// call and scheduling under -race.
				assert.Less(t, took, time.Duration(len(hung))*time.Second+time.Second,
					"the hung sentinels cost more than one sentinel timeout each")

				for range 3 {
					_, err := admin.Do("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
					require.NoError(t, err)
					// The store checks a connection idle for 1 ms or more
					// before it writes on it (see transport.go).
					time.Sleep(10 * time.Millisecond)
					for i := range 5 {
						require.NoError(t, call(), "call %d after the connections were killed: the hung sentinel was asked first again", i)
					}
				}
			})
		}
	}
}

// Close while the store asks a sentinel that hangs: the call waiting on
// the dial returns, and nothing of the store (goroutine, socket to the
// sentinel) outlives Close by more than 100 ms.
func TestSentinelCloseWhileAsking(t *testing.T) {
	for mode, opts := range openModes {
		t.Run(mode, func(t *testing.T) {
			hang, accepted := silentListener(t)
			base := storeStacks()
			hs, err := pikkuredis.OpenEventHubStore("redis+sentinel://"+hang+"/mymaster", opts...)
			require.NoError(t, err)
			// A call that leaves while the sentinel is asked, then one with
			// no deadline, and Close under it.
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			_, err = hs.Subscribe(ctx, "t", "c")
			cancel()
			require.ErrorIs(t, err, context.DeadlineExceeded)
			res := make(chan error, 1)
			go func() { _, err := hs.Subscribe(context.Background(), "t", "c"); res <- err }()
			time.Sleep(100 * time.Millisecond)
			conns := accepted()
			require.NotEmpty(t, conns, "the store did not ask the sentinel")
			require.NoError(t, hs.Close())
			closed := time.Now()
			limit := closed.Add(100 * time.Millisecond)
			select {
			case err := <-res:
				assert.ErrorIs(t, err, pikkuredis.ErrClosed)
			case <-time.After(time.Second):
				t.Fatal("a call waiting on the sentinels outlived Close by 1 s")
			}
			requireNothingOutlives(t, conns, base, limit)
		})
	}
}

// TestSentinelManualFailoverLosesNoLaterWrite: SENTINEL FAILOVER promotes
// the replica while the old master keeps taking writes, acknowledging
// them, until the sentinels make it a replica seconds later, which drops
// them all. The stores follow the sentinels' +switch-master: a write
// acknowledged later than a moment after the switch is on the new
// master, on both open modes. (Without it, connections to the old master
// never fail, and every write until its demotion was lost.)
func TestSentinelManualFailoverLosesNoLaterWrite(t *testing.T) {
	s := sentinelSet(t)
	ctx := ctxT(t)
	prefix := newPrefix(t)
	type ack struct {
		id string
		at time.Time
	}
	var mu sync.Mutex
	var acks []ack
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for mode, opts := range openModes {
		cs, err := pikkuredis.OpenChannelStore(s.url, append([]pikkuredis.Option{pikkuredis.WithKeyPrefix(prefix)}, opts...)...)
		require.NoError(t, err)
		defer cs.Close()
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					id := fmt.Sprintf("%s-%d-%d", mode, g, n)
					cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
					err := cs.AddChannel(cctx, pikkuredis.Channel{ChannelID: id, ChannelName: "x"})
					cancel()
					if err == nil {
						mu.Lock()
						acks = append(acks, ack{id, time.Now()})
						mu.Unlock()
					} else {
						time.Sleep(10 * time.Millisecond)
					}
					time.Sleep(2 * time.Millisecond)
				}
			}()
		}
	}
	time.Sleep(500 * time.Millisecond)
	sc, err := s.sentinels[0].Dial()
	require.NoError(t, err)
	defer sc.Close()
	_, err = sc.Do("SENTINEL", "FAILOVER", "mymaster")
	require.NoError(t, err)
	var switched time.Time
	require.Eventually(t, func() bool {
		addr, err := s.sentinels[0].MasterAddr()
		if err == nil && addr == s.replica.Addr {
			switched = time.Now()
			return true
		}
		return false
	}, 20*time.Second, 5*time.Millisecond, "the sentinels never switched the master")
	// Until the old master is a replica (its writes are dropped then).
	waitRole(t, s.master, "slave", s.replica.Addr, 30*time.Second)
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()

	newMaster := dialURL(t, "redis://app:"+sentinelRedisPW+"@"+s.replica.Addr)
	defer newMaster.Close()
	const grace = time.Second // the announcement's way from the sentinels to the stores
	lost, lostLate, after := 0, 0, 0
	for _, a := range acks {
		require.NoError(t, newMaster.Send("EXISTS", prefix+":channel:"+a.id))
	}
	require.NoError(t, newMaster.Flush())
	for _, a := range acks {
		n, err := redis.Int(newMaster.Receive())
		require.NoError(t, err)
		late := a.at.After(switched.Add(grace))
		if late {
			after++
		}
		if n == 0 {
			lost++
			if late {
				lostLate++
			}
		}
	}
	t.Logf("%d writes acknowledged, %d after the switch + %v; %d lost in all (before the stores heard of the switch)", len(acks), after, grace, lost)
	require.Positive(t, after, "writes went on after the switch")
	assert.Zero(t, lostLate, "acknowledged writes lost after the stores heard of the switch")
}
