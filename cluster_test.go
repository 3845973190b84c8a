package pikkuredis_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
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
	clusterRawEnv = "PIKKUREDIS_TEST_CLUSTER_RAW" // redis://... of the master of testTag's slot
)

// testTag is the hash tag of every test prefix on a cluster: all of a
// suite's keys share one slot, as a store with a hash-tag prefix does.
const testTag = "{pikkuredis-test}"

// testPrefixStem starts every test prefix (newPrefix).
var testPrefixStem = "pikkuredis-test-"

func onCluster() bool { return os.Getenv(clusterURLEnv) != "" }

// runOnCluster is TestMain in the run of the suites on a cluster.
func runOnCluster(m *testing.M) int {
	redisURL, rawURL = os.Getenv(clusterURLEnv), os.Getenv(clusterRawEnv)
	testPrefixStem = testTag + "-"
	fmt.Fprintf(os.Stderr, "pikkuredis tests: on the Redis Cluster %s\n", redisURL)
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
	"TestPikkuUserIDSetGetClear", "TestStateSetGetClear", "TestBothAPIsShareTheHash", "TestChannelStateOnMissingChannelWritesNothing",
	"TestGetChannelWithSession", "TestGetChannelWithSessionIsAtomic",
	"TestTouchChannels", "TestSweepExpiredRemovesEveryExpiredChannel",
	"TestScanChannelIDsForTopicReturnsEveryMember",
	"TestRepairRemovesOrphanedSubscriptions", "TestRepairNeverTouchesLiveChannels",
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
	shared.once.Do(func() { shared.cluster, shared.err = redisserver.StartCluster(redisserver.ClusterConfig{}) })
	if shared.err != nil {
		skipOrFail(t, shared.err)
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
	c, err := redisserver.StartCluster(redisserver.ClusterConfig{})
	if err != nil {
		skipOrFail(t, err)
	}
	t.Cleanup(c.Close)
	return c
}

func skipOrFail(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, redisserver.ErrNotInstalled) && os.Getenv("CI") != "true" {
		t.Skipf("needs redis-server and redis-cli: %v", err)
	}
	t.Fatalf("start a redis cluster: %v", err)
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
	if testing.Short() {
		t.Skip("starts a cluster and runs the suites again on it")
	}
	cl := sharedCluster(t)
	master, err := cl.MasterOf(redisc.Slot(testTag))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run", "^("+strings.Join(clusterSuites, "|")+")$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), clusterURLEnv+"="+cl.URL(), clusterRawEnv+"="+master.URL)
	out, err := cmd.CombinedOutput()
	passed := strings.Count(string(out), "--- PASS: Test")
	if err != nil {
		t.Fatalf("the suites on the cluster failed (%v):\n%s", err, tail(string(out), 200))
	}
	for _, name := range clusterSuites {
		if !strings.Contains(string(out), "--- PASS: "+name+" ") {
			t.Errorf("%s did not pass on the cluster (skipped, or not run)", name)
		}
	}
	t.Logf("%d suites passed on the cluster %s", passed, cl.URL())
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
	if testing.Short() {
		t.Skip("starts a cluster")
	}
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
	if testing.Short() {
		t.Skip("starts a cluster")
	}
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
