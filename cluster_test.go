package pikkuredis_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/mna/redisc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pikkujs/pikkuredis"
	"github.com/pikkujs/pikkuredis/internal/redisserver"
)

// The store suites run on a Redis Cluster by running this test binary
// again (TestClusterSuites) with the cluster's URL in the environment:
// every store the suites open then goes through the cluster transport,
// and every check of what they wrote reads the master that holds the
// tests' hash tag.
const (
	clusterURLEnv = "PIKKUREDIS_TEST_CLUSTER_URL" // redis+cluster://... the stores open
)

// testTag is the hash tag of every test prefix on a cluster: all of a
// suite's keys share one slot, as a store with a hash-tag prefix does.
const testTag = "{pikkuredis-test}"

// testPrefixStem starts every test prefix (newPrefix).
var testPrefixStem = "pikkuredis-test-"

func onCluster() bool { return os.Getenv(clusterURLEnv) != "" }

// clusterLayoutEnv names the key layout of a run on a cluster:
// "standard" (every test prefix under testTag) or "sharded" (WithShards).
const clusterLayoutEnv = "PIKKUREDIS_TEST_CLUSTER_LAYOUT"

// layoutOpts are the options every test store gets before its own:
// WithShards on a sharded cluster run, none otherwise.
var layoutOpts []pikkuredis.Option

// withPrefix is the options of a test store on prefix: WithKeyPrefix,
// the run's layout, then opts.
func withPrefix(prefix string, opts ...pikkuredis.Option) []pikkuredis.Option {
	return append(append([]pikkuredis.Option{pikkuredis.WithKeyPrefix(prefix)}, layoutOpts...), opts...)
}

// runOnCluster is TestMain in the run of the suites on a cluster: the
// stores open the cluster's URL, in the layout the parent asked for.
func runOnCluster(m *testing.M) int {
	redisURL, rawURL = os.Getenv(clusterURLEnv), os.Getenv(clusterURLEnv)
	layout := os.Getenv(clusterLayoutEnv)
	switch layout {
	case "standard":
		testPrefixStem = testTag + "-"
		layoutCases = []layoutCase{{"standard", 0}}
	case "sharded":
		layoutOpts = []pikkuredis.Option{pikkuredis.WithShards(testShards)}
		layoutCases = []layoutCase{{"sharded", testShards}}
	default:
		fmt.Fprintf(os.Stderr, "%s=%q: want standard or sharded\n", clusterLayoutEnv, layout)
		return 2
	}
	fmt.Fprintf(os.Stderr, "pikkuredis tests: on the Redis Cluster %s, %s layout\n", redisURL, layout)
	return m.Run()
}

// clusterSuites are the suites that run on the cluster: the store
// conformance cases, the atomic cleanup and the concurrency invariants,
// sessions, leases, scans and repair, on every way a store reaches it.
var clusterSuites = []string{
	// integration_test.go
	"TestAddThenGet", "TestSessionSetReplaceClear", "TestAbsentJSONIsAFreshEmptyObject", "TestMissingChannelIsNotFound",
	"TestGetHashWithoutChannelIDIsNotFound", "TestRemoveChannelsEmptyIsNoop", "TestSubscribeTwiceReturnsTrue",
	"TestUnsubscribeTrueThenFalse", "TestUnknownTopicIsEmptyNonNil", "TestLayoutExactFieldsAndSets",
	"TestOpeningDataFalsyIsEmptyObject", "TestAddChannelOverwriteKeepsSession", "TestSetUserSessionOnMissingChannelWritesNothing",
	"TestRemoveChannelsLargeLeavesNoTrace", "TestRemoveChannelsChunkBoundaries", "TestRemoveChannelsUnknownAndDuplicateIDs",
	"TestConcurrentMixKeepsIndexesConsistent", "TestOddIDsAndTopicsRoundTrip", "TestBadInputIsRefusedAndWritesNothing",
	"TestScriptErrorsNameTheScript", "TestCorruptStoredJSONIsAnError", "TestTypedView",
	// channel_state_test.go, session_test.go, leases_test.go, scan_test.go, repair_test.go
	"TestGetChannelWithSession", "TestGetChannelWithSessionIsAtomic",
	"TestTouchChannels", "TestSweepExpiredRemovesEveryExpiredChannel",
	"TestRepairRemovesOrphanedSubscriptions", "TestRepairNeverTouchesLiveChannels",
}

// clusterLayoutSuites are the suites of one layout only: they write that
// layout's keys themselves.
var clusterLayoutSuites = map[string][]string{
	"standard": {"TestScanChannelIDsForTopicReturnsEveryMember", "TestChannelStateOnMissingChannelWritesNothing",
		"TestPikkuUserIDSetGetClear", "TestStateSetGetClear", "TestBothAPIsShareTheHash"},
	"sharded": {"TestShardedKeysOfAChannelShareOneSlot", "TestShardedTopicReadsEveryShard", "TestShardedRemoveAndTouchAcrossShards",
		"TestShardedGetChannelWithSession", "TestShardedRepairFindsOrphansInEveryShard"},
}

var shared struct {
	once    sync.Once
	cluster *redisserver.Cluster
	err     error
}

// sharedCluster is a 3-master, 3-replica cluster for the tests that only
// read and write through it; the tests that fail over or move slots start
// their own (ownCluster). It is stopped when the tests end.
func sharedCluster(t testing.TB) *redisserver.Cluster {
	t.Helper()
	needRedis(t)
	shared.once.Do(func() { shared.cluster, shared.err = redisserver.StartCluster(redisserver.ClusterConfig{}) })
	if shared.err != nil {
		failStart(t, shared.err)
	}
	return shared.cluster
}

// stopShared stops the shared cluster, if a test started it.
func stopShared() {
	if shared.cluster != nil {
		shared.cluster.Close()
	}
}

// ownCluster starts a cluster for one test, stopped when it ends.
func ownCluster(t testing.TB) *redisserver.Cluster {
	t.Helper()
	needRedis(t)
	c, err := redisserver.StartCluster(redisserver.ClusterConfig{})
	if err != nil {
		failStart(t, err)
	}
	t.Cleanup(c.Close)
	return c
}

// failStart fails a test whose servers (a cluster, a replica) did not
// start; without redis-server or redis-cli it says how to install them.
func failStart(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, redisserver.ErrNotInstalled) {
		t.Fatalf("this test starts Redis servers of its own, and needs redis-server and redis-cli on PATH (apt-get install redis-server redis-tools): %v", err)
	}
	t.Fatalf("start redis servers: %v", err)
}

// callersCluster is a caller's own *redisc.Cluster over the cluster of
// redisURL (on a cluster run) or of url, closed when the test ends.
func callersCluster(t testing.TB, url ...string) *redisc.Cluster {
	t.Helper()
	u := redisURL
	if len(url) > 0 {
		u = url[0]
	}
	addrs := strings.Split(strings.TrimPrefix(u, "redis+cluster://"), ",")
	c := &redisc.Cluster{
		StartupNodes: addrs,
		DialOptions:  []redis.DialOption{redis.DialConnectTimeout(2 * time.Second), redis.DialReadTimeout(5 * time.Second)},
		CreatePool: func(addr string, opts ...redis.DialOption) (*redis.Pool, error) {
			return &redis.Pool{
				MaxIdle: 16, MaxActive: 64, Wait: true, IdleTimeout: time.Minute,
				Dial: func() (redis.Conn, error) { return redis.Dial("tcp", addr, opts...) },
			}, nil
		},
	}
	if err := c.Refresh(); err != nil {
		t.Fatalf("redisc refresh: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestClusterSuites runs the store suites (clusterSuites) on a 3-master
// cluster, through every backend (auto-pipelined lanes per master, a
// pool per master, a caller's *redisc.Cluster), with the tests' keys
// under one hash tag.
func TestClusterSuites(t *testing.T) {
	if onCluster() {
		t.Skip("already on the cluster")
	}
	needRedis(t) // starts a cluster and runs the suites again on it
	cl := sharedCluster(t)
	for _, layout := range []string{"standard", "sharded"} {
		t.Run(layout, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			suites := append(slices.Clone(clusterSuites), clusterLayoutSuites[layout]...)
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run", "^("+strings.Join(suites, "|")+")$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), clusterURLEnv+"="+cl.URL(), clusterLayoutEnv+"="+layout)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("the suites on the cluster failed (%v):\n%s", err, tail(failures(string(out)), 300))
			}
			for _, name := range suites {
				if !strings.Contains(string(out), "--- PASS: "+name+" ") {
					t.Errorf("%s did not pass on the cluster (skipped, or not run)", name)
				}
			}
			t.Logf("%d tests and subtests passed on the cluster %s", strings.Count(string(out), "--- PASS: Test"), cl.URL())
		})
	}
}

// failures is go test -v output without the lines of what passed.
func failures(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- PASS") {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}

func tail(s string, lines int) string {
	ls := strings.Split(s, "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// clusterBackends are the ways a store reaches a cluster, each opened on
// the shared cluster with opts: auto-pipelined lanes per master (the
// default for a redis+cluster:// URL), a pool per master
// (WithoutAutoPipelining), and a caller's *redisc.Cluster.
func clusterBackends(t *testing.T) map[string]func(opts ...pikkuredis.Option) (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore) {
	cl := sharedCluster(t)
	return map[string]func(opts ...pikkuredis.Option) (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore){
		"auto-pipelined": func(opts ...pikkuredis.Option) (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore) {
			return openBoth(t, cl.URL(), opts...)
		},
		"pooled": func(opts ...pikkuredis.Option) (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore) {
			return openBoth(t, cl.URL(), append(opts, pikkuredis.WithoutAutoPipelining())...)
		},
		"caller's cluster": func(opts ...pikkuredis.Option) (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore) {
			rc := callersCluster(t, cl.URL())
			cs, hs := pikkuredis.NewChannelStore(rc, opts...), pikkuredis.NewEventHubStore(rc, opts...)
			t.Cleanup(func() { cs.Close(); hs.Close() })
			return cs, hs
		},
	}
}

// Init loads every script on every master, and a master that lost them
// (SCRIPT FLUSH, as a node that never saw them) runs them anyway.
func TestClusterScriptsOnEveryMaster(t *testing.T) {
	needRedis(t) // starts a cluster
	cl := sharedCluster(t)
	masters, err := cl.Masters()
	require.NoError(t, err)
	require.Len(t, masters, 3)
	for name, open := range clusterBackends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := ctxT(t)
			for _, m := range masters {
				c := dialURL(t, m.URL)
				_, err := c.Do("SCRIPT", "FLUSH")
				require.NoError(t, err)
				c.Close()
			}
			cs, hs := open(pikkuredis.WithKeyPrefix("{" + newPrefix(t) + "}"))
			require.NoError(t, cs.Init(ctx))
			for _, m := range masters {
				c := dialURL(t, m.URL)
				for script, sha := range pikkuredis.ScriptSHAs() {
					ok, err := redis.Ints(c.Do("SCRIPT", "EXISTS", sha))
					require.NoError(t, err)
					assert.Equal(t, []int{1}, ok, "%s is not loaded on %s", script, m.Addr)
				}
				_, err := c.Do("SCRIPT", "FLUSH")
				require.NoError(t, err)
				c.Close()
			}
			require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c1", ChannelName: "n"}))
			ok, err := hs.Subscribe(ctx, "t", "c1")
			require.NoError(t, err)
			assert.True(t, ok)
			require.NoError(t, cs.RemoveChannels(ctx, []string{"c1"}))
			ids, err := hs.GetChannelIDsForTopic(ctx, "t")
			require.NoError(t, err)
			assert.Empty(t, ids)
		})
	}
}

// A cluster URL that cannot be read is refused when the store is opened,
// without the password; a cluster whose nodes do not answer fails Init
// with a connection error within the call's deadline.
func TestClusterURLErrors(t *testing.T) {
	_, err := pikkuredis.OpenChannelStore("redis+cluster://u:hunter2@h1:7000/3")
	require.Error(t, err)
	assert.ErrorContains(t, err, "only database 0")
	assert.NotContains(t, err.Error(), "hunter2")

	addr, _ := silentListener(t)
	for _, opts := range [][]pikkuredis.Option{nil, {pikkuredis.WithoutAutoPipelining()}} {
		cs, err := pikkuredis.OpenChannelStore("redis+cluster://"+addr, append(opts, pikkuredis.WithKeyPrefix("{x}"))...)
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		start := time.Now()
		err = cs.Init(ctx)
		cancel()
		assert.Error(t, err)
		assert.Less(t, time.Since(start), 2*time.Second, "Init outlived its deadline: %v", err)
		require.NoError(t, cs.Close())
	}
}

// Close closes what a store built from a cluster URL, and never a
// caller's cluster; calls after Close are ErrClosed.
func TestClusterClose(t *testing.T) {
	needRedis(t) // starts a cluster
	cl := sharedCluster(t)
	ctx := ctxT(t)
	rc := callersCluster(t, cl.URL())
	cs := pikkuredis.NewChannelStore(rc, pikkuredis.WithKeyPrefix("{"+newPrefix(t)+"}"))
	require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c", ChannelName: "n"}))
	require.NoError(t, cs.Close())
	assert.ErrorIs(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c", ChannelName: "n"}), pikkuredis.ErrClosed)
	c := rc.Get()
	_, err := c.Do("PING")
	c.Close()
	assert.NoError(t, err, "the caller's cluster still works")

	for name, open := range clusterBackends(t) {
		if name == "caller's cluster" {
			continue
		}
		cs, hs := open(pikkuredis.WithKeyPrefix("{" + newPrefix(t) + "}"))
		require.NoError(t, cs.Init(ctx), name)
		require.NoError(t, cs.Close(), name)
		require.NoError(t, hs.Close(), name)
		assert.ErrorIs(t, cs.Init(ctx), pikkuredis.ErrClosed, name)
		_, err := hs.Subscribe(ctx, "t", "c")
		assert.ErrorIs(t, err, pikkuredis.ErrClosed, name)
	}
}

// clusterConn is the tests' own connection to the cluster of a cluster
// run, for checking what the stores wrote: each command goes to the
// master of its first argument's slot (following MOVED and ASK), a MULTI
// ... EXEC runs as one transaction per slot (atomic per shard, which is
// what the index invariants need: a channel's subs set and its topic
// memberships share its shard's slot), and scanKeys scans every master.
type clusterConn struct {
	cl     *redisc.Cluster
	multi  bool
	queued [][]any // command and arguments, after MULTI
}

var rawCluster struct {
	once sync.Once
	cl   *redisc.Cluster
	err  error
}

func dialCluster() (redis.Conn, error) {
	rawCluster.once.Do(func() {
		addrs := strings.Split(strings.TrimPrefix(redisURL, "redis+cluster://"), ",")
		cl := &redisc.Cluster{
			StartupNodes: addrs,
			DialOptions:  []redis.DialOption{redis.DialConnectTimeout(2 * time.Second), redis.DialReadTimeout(10 * time.Second)},
			CreatePool: func(addr string, opts ...redis.DialOption) (*redis.Pool, error) {
				return &redis.Pool{MaxIdle: 8, Dial: func() (redis.Conn, error) { return redis.Dial("tcp", addr, opts...) }}, nil
			},
		}
		rawCluster.cl, rawCluster.err = cl, cl.Refresh()
	})
	if rawCluster.err != nil {
		return nil, rawCluster.err
	}
	return &clusterConn{cl: rawCluster.cl}, nil
}

func keyArg(args []any) string {
	if len(args) == 0 {
		return ""
	}
	switch v := args[0].(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	return fmt.Sprint(args[0])
}

// bound is a connection to the master of key's slot.
func (c *clusterConn) bound(key string) (redis.Conn, error) {
	rc := c.cl.Get()
	if err := redisc.BindConn(rc, key); err != nil {
		rc.Close()
		return nil, err
	}
	return rc, nil
}

func (c *clusterConn) Do(cmd string, args ...any) (any, error) {
	switch cmd {
	case "EXEC":
		if c.multi {
			return c.exec()
		}
	case "SCAN", "KEYS", "MULTI":
		return nil, fmt.Errorf("clusterConn: %s spans the masters: use scanKeys, or Send MULTI", cmd)
	}
	rc, err := c.bound(keyArg(args))
	if err != nil {
		return nil, err
	}
	retry, err := redisc.RetryConn(rc, 10, 20*time.Millisecond)
	if err != nil {
		rc.Close()
		return nil, err
	}
	defer retry.Close()
	return retry.Do(cmd, args...)
}

func (c *clusterConn) Send(cmd string, args ...any) error {
	switch {
	case cmd == "MULTI":
		c.multi, c.queued = true, nil
	case c.multi:
		c.queued = append(c.queued, append([]any{cmd}, args...))
	default:
		return errors.New("clusterConn: Send is only for MULTI ... EXEC")
	}
	return nil
}

// exec runs the queued commands as one MULTI ... EXEC per slot, and
// returns their replies in the order they were queued.
func (c *clusterConn) exec() (any, error) {
	queued := c.queued
	c.multi, c.queued = false, nil
	bySlot := map[int][]int{}
	for i, q := range queued {
		slot := redisc.Slot(keyArg(q[1:]))
		bySlot[slot] = append(bySlot[slot], i)
	}
	out := make([]any, len(queued))
	for _, idx := range bySlot {
		rc, err := c.bound(keyArg(queued[idx[0]][1:]))
		if err != nil {
			return nil, err
		}
		rc.Send("MULTI")
		for _, i := range idx {
			rc.Send(queued[i][0].(string), queued[i][1:]...)
		}
		replies, err := redis.Values(rc.Do("EXEC"))
		rc.Close()
		if err != nil {
			return nil, err
		}
		for j, i := range idx {
			out[i] = replies[j]
		}
	}
	return out, nil
}

func (c *clusterConn) Flush() error          { return nil }
func (c *clusterConn) Receive() (any, error) { return nil, errors.New("clusterConn: no Receive") }
func (c *clusterConn) Err() error            { return nil }
func (c *clusterConn) Close() error          { return nil }

// scanKeys lists every key under prefix on every master.
func (c *clusterConn) scanKeys(t testing.TB, prefix string) []string {
	t.Helper()
	var out []string
	err := c.cl.EachNode(false, func(_ string, rc redis.Conn) error {
		cursor := "0"
		for {
			reply, err := redis.Values(rc.Do("SCAN", cursor, "MATCH", prefix+":*", "COUNT", 1000))
			if err != nil {
				return err
			}
			cursor, _ = redis.String(reply[0], nil)
			keys, _ := redis.Strings(reply[1], nil)
			out = append(out, keys...)
			if cursor == "0" {
				return nil
			}
		}
	})
	if err != nil {
		t.Fatalf("scan the masters: %v", err)
	}
	return out
}

// TestClusterShardedBalance adds 10,000 channels with 5 subscriptions
// each in the sharded layout and counts the store's keys on each master:
// each holds between 25% and 42% of them.
func TestClusterShardedBalance(t *testing.T) {
	needRedis(t) // starts a cluster
	cl := sharedCluster(t)
	prefix := newPrefix(t)
	cs, hs := openBoth(t, cl.URL(), pikkuredis.WithKeyPrefix(prefix), pikkuredis.WithShards(16))
	ctx := ctxT(t)
	const channels, subsEach, workers = 10_000, 5, 64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < channels; i += workers {
				id := fmt.Sprintf("ch-%d", i)
				if err := cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id, ChannelName: "n"}); err != nil {
					errs <- err
					return
				}
				for j := 0; j < subsEach; j++ {
					if _, err := hs.Subscribe(ctx, fmt.Sprintf("topic-%d", (i+j)%100), id); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	masters, err := cl.Masters()
	require.NoError(t, err)
	counts := map[string]int{}
	total := 0
	for _, m := range masters {
		c := dialURL(t, m.URL)
		n := len(scanKeys(t, c, prefix))
		c.Close()
		counts[m.Addr] = n
		total += n
	}
	// 10,000 hashes, 10,000 subs sets, and each of the 100 topics' set
	// in each of the 16 shards.
	assert.Equal(t, 2*channels+100*16, total, "every key of the store, once")
	for addr, n := range counts {
		share := float64(n) / float64(total)
		t.Logf("master %s holds %d of the store's %d keys (%.1f%%)", addr, n, total, 100*share)
		assert.True(t, share >= 0.25 && share <= 0.42, "master %s holds %.1f%% of the keys, want 25%%..42%%", addr, 100*share)
	}
	ids, err := hs.GetChannelIDsForTopic(ctx, "topic-7")
	require.NoError(t, err)
	assert.Len(t, ids, channels*subsEach/100, "a topic read unions every shard")
}

// On a cluster, a store whose prefix is not a hash tag and that is not
// sharded is refused, by Init and every call, with nothing written; a
// hash-tag prefix, or WithShards with a plain one, is taken.
func TestClusterRefusesAPrefixThatIsNotAHashTag(t *testing.T) {
	needRedis(t) // starts a cluster
	ctx := ctxT(t)
	for name, open := range clusterBackends(t) {
		for _, prefix := range []string{"pikku", "pik{}ku", "pikku}{x"} {
			cs, hs := open(pikkuredis.WithKeyPrefix(prefix))
			err := cs.Init(ctx)
			assert.ErrorIs(t, err, pikkuredis.ErrInvalidArgument, "%s, %q", name, prefix)
			assert.ErrorContains(t, err, "not a hash tag", "%s, %q", name, prefix)
			assert.ErrorIs(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c", ChannelName: "n"}), pikkuredis.ErrInvalidArgument, name)
			_, err = hs.Subscribe(ctx, "t", "c")
			assert.ErrorIs(t, err, pikkuredis.ErrInvalidArgument, name)
		}
		for _, opts := range [][]pikkuredis.Option{
			{pikkuredis.WithKeyPrefix("{" + newPrefix(t) + "}")},
			{pikkuredis.WithKeyPrefix("app:{" + newPrefix(t) + "}:x")},
			{pikkuredis.WithKeyPrefix(newPrefix(t)), pikkuredis.WithShards(4)},
		} {
			cs, _ := open(opts...)
			assert.NoError(t, cs.Init(ctx), name)
			assert.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c", ChannelName: "n"}), name)
		}
	}
	m, err := sharedCluster(t).MasterOf(redisc.Slot("pikku:channel:c"))
	require.NoError(t, err)
	c := dialURL(t, m.URL)
	defer c.Close()
	n, err := redis.Int(c.Do("EXISTS", "pikku:channel:c"))
	require.NoError(t, err)
	assert.Zero(t, n, "nothing was written")
}

// A store opened with redis:// on one node of a cluster says, when a
// node redirects a call, that it should be opened as a cluster.
func TestClusterNodeOpenedAsOneServerSaysSo(t *testing.T) {
	needRedis(t) // starts a cluster
	cl := sharedCluster(t)
	masters, err := cl.Masters()
	require.NoError(t, err)
	prefix := "{" + newPrefix(t) + "}"
	owner, err := cl.MasterOf(redisc.Slot(prefix))
	require.NoError(t, err)
	for _, m := range masters {
		if m.Addr == owner.Addr {
			continue
		}
		cs, _ := openBoth(t, m.URL, pikkuredis.WithKeyPrefix(prefix))
		err := cs.AddChannel(ctxT(t), pikkuredis.Channel{ChannelID: "c", ChannelName: "n"})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "MOVED")
		assert.Contains(t, err.Error(), "open the store with a redis+cluster:// URL")
		return
	}
}
