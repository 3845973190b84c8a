package pikkuredis_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	mathrand "math/rand"
	"net"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/ory/dockertest/v3"
	"github.com/ory/dockertest/v3/docker"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pikkujs/pikkuredis"
	"github.com/pikkujs/pikkuredis/internal/redisserver"
	"github.com/pikkujs/pikkuredis/internal/redisurl"
	"github.com/pikkujs/pikkuredis/internal/testnote"
)

// redisURL is the Redis every integration test, example and benchmark
// uses, found by TestMain. Tests only touch keys under their own random
// prefix and never flush it: it may be a server someone else uses.
var redisURL string

// rawURL is the server the tests' own connections read and write to check
// what the stores did: redisURL, or, when the suites run on a Redis
// Cluster (cluster_test.go), the master that holds every test prefix's
// slot.
var rawURL string

// internalTestURLEnv carries redisURL to the internal tests.
const internalTestURLEnv = "PIKKUREDIS_INTERNAL_TEST_URL"

// howToProvideRedis ends the failure of a run that found no Redis: every
// way to give the tests one, and the way to run without.
const howToProvideRedis = `To provide one, any of:
  - install redis-server (apt-get install redis-server; brew install redis): the tests start their own on a free port;
  - run a Docker daemon: the tests start a redis:7 container;
  - set REDIS_URL=redis://host:port (the tests use only keys under their own random prefixes and never flush it).
To run only the tests that need neither Redis nor Node.js: go test -short ./...`

// shortRun is the -test.run of a -short run that gave none: the tests
// and fuzz targets' seeds, without the runnable examples, whose // Output:
// needs Redis and which cannot skip.
const shortRun = "^(Test|Fuzz)"

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	flag.Parse() // for testing.Short
	if testing.Short() {
		return runShort(m)
	}
	if onCluster() {
		return runOnCluster(m)
	}
	url, how, stop, err := findRedis()
	if err != nil {
		// Never a skip: a run that tested nothing must not print ok.
		fmt.Fprintf(os.Stderr, "FAIL: the pikkuredis tests need a real Redis and found none: %v\n%s\n", err, howToProvideRedis)
		return 1
	}
	defer stop()
	defer stopShared()
	redisURL, rawURL = url, url
	// For the package's internal tests (pipeline_internal_test.go),
	// which share this TestMain but not its variables.
	os.Setenv(internalTestURLEnv, url)
	fmt.Fprintf(os.Stderr, "pikkuredis tests: Redis from %s\n", how)
	return m.Run()
}

// runShort runs the tests without looking for Redis: each test that needs
// it, or Node.js, skips (needRedis, needNode), and the run says how many
// did, where go test ./... shows it although the package passes
// (testnote).
func runShort(m *testing.M) int {
	examples := ""
	if run := flag.Lookup("test.run"); run.Value.String() == "" {
		if err := run.Value.Set(shortRun); err != nil {
			panic(err)
		}
		examples = "; the runnable examples need Redis too and were not run"
	}
	code := m.Run()
	testnote.Print(fmt.Sprintf("pikkuredis tests: -short: ran only the tests that need neither Redis nor Node.js; %d need them and were skipped%s",
		pikkuredis.ShortSkipped(), examples))
	return code
}

// needRedis skips t under -short, where TestMain found no Redis.
func needRedis(t testing.TB) {
	t.Helper()
	pikkuredis.SkipShort(t, "Redis")
}

// needTool returns the path of a command a test runs, or fails the test
// saying what it is for and how to install it: a skip would print ok for
// a test that never ran.
func needTool(t testing.TB, name, why, install string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s: %s is not on PATH: install it (%s)", why, name, install)
	}
	return path
}

// findRedis returns REDIS_URL when set; else starts a container when a
// Docker daemon answers; else starts redis-server from PATH on a free port.
func findRedis() (url, how string, stop func(), err error) {
	if u := os.Getenv("REDIS_URL"); u != "" {
		// Checked first: redigo's errors for a bad URL quote it whole.
		if err := redisurl.Check(u); err != nil {
			return "", "", nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		if err := pingURL(u); err != nil {
			return "", "", nil, fmt.Errorf("REDIS_URL=%s does not answer PING: %w", redisurl.Redact(u), err)
		}
		return u, "REDIS_URL", func() {}, nil
	}
	url, stop, dockerErr := startDocker()
	if dockerErr == nil {
		return url, "a Docker container (dockertest)", stop, nil
	}
	srv, err := redisserver.Start()
	if err != nil {
		return "", "", nil, fmt.Errorf("REDIS_URL is not set; Docker: %v; %w", dockerErr, err)
	}
	return srv.URL, "redis-server on " + srv.Addr + " (started by the tests)", srv.Stop, nil
}

func startDocker() (string, func(), error) {
	pool, err := dockertest.NewPool("")
	if err != nil {
		return "", nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := pool.Client.PingWithContext(ctx); err != nil {
		return "", nil, err
	}
	res, err := pool.RunWithOptions(&dockertest.RunOptions{Repository: "redis", Tag: "7"},
		func(hc *docker.HostConfig) { hc.AutoRemove = true })
	if err != nil {
		return "", nil, err
	}
	res.Expire(600) // never outlive a crashed test run by long
	url := "redis://" + res.GetHostPort("6379/tcp")
	pool.MaxWait = 30 * time.Second
	if err := pool.Retry(func() error { return pingURL(url) }); err != nil {
		pool.Purge(res)
		return "", nil, err
	}
	return url, func() { pool.Purge(res) }, nil
}

func pingURL(url string) error {
	c, err := redis.DialURL(url, redis.DialConnectTimeout(2*time.Second), redis.DialReadTimeout(2*time.Second))
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Do("PING")
	return err
}

// newPrefix returns a key prefix no other test uses, and removes the
// test's keys (only those) when it ends.
func newPrefix(t testing.TB) string {
	t.Helper()
	needRedis(t)
	b := make([]byte, 6)
	rand.Read(b)
	prefix := testPrefixStem + hex.EncodeToString(b)
	t.Cleanup(func() {
		c := dialRaw(t)
		defer c.Close()
		for _, k := range scanKeys(t, c, prefix) {
			c.Do("DEL", k)
		}
	})
	return prefix
}

// dialRaw opens a plain redigo connection to check what the store wrote.
func dialRaw(t testing.TB) redis.Conn {
	t.Helper()
	needRedis(t)
	c, err := dialRawErr()
	if err != nil {
		t.Fatalf("dial %s: %v", redisurl.Redact(rawURL), err)
	}
	return c
}

// dialRawErr is dialRaw for a goroutine: the test Redis, or, when the
// suites run on a cluster, a connection that sends each command to its
// key's master (clusterConn).
func dialRawErr() (redis.Conn, error) {
	if onCluster() {
		return dialCluster()
	}
	return redis.DialURL(rawURL, redis.DialReadTimeout(10*time.Second))
}

func dialURL(t testing.TB, url string) redis.Conn {
	t.Helper()
	needRedis(t)
	c, err := redis.DialURL(url, redis.DialReadTimeout(10*time.Second))
	if err != nil {
		t.Fatalf("dial %s: %v", redisurl.Redact(url), err)
	}
	return c
}

// scanKeys lists every key under prefix. The prefix is hex, so it holds no
// glob characters; everything after it may.
func scanKeys(t testing.TB, c redis.Conn, prefix string) []string {
	t.Helper()
	if cc, ok := c.(*clusterConn); ok {
		return cc.scanKeys(t, prefix)
	}
	var out []string
	cursor := "0"
	for {
		reply, err := redis.Values(c.Do("SCAN", cursor, "MATCH", prefix+":*", "COUNT", 1000))
		if err != nil {
			t.Fatalf("scan: %v", err)
		}
		cursor, _ = redis.String(reply[0], nil)
		keys, _ := redis.Strings(reply[1], nil)
		out = append(out, keys...)
		if cursor == "0" {
			return out
		}
	}
}

// newPool returns a caller-owned pool, closed when the test ends.
func newPool(t testing.TB) *redis.Pool {
	t.Helper()
	return poolFor(t, redisURL)
}

// callersPool is the pool a caller would hand a store: a *redis.Pool, or,
// when the suites run on a cluster, a *redisc.Cluster.
func callersPool(t testing.TB) pikkuredis.Pool {
	t.Helper()
	if onCluster() {
		return callersCluster(t)
	}
	return newPool(t)
}

func poolFor(t testing.TB, url string) *redis.Pool {
	t.Helper()
	needRedis(t)
	p := &redis.Pool{
		MaxActive: 64, MaxIdle: 64, Wait: true,
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			return redis.DialURLContext(ctx, url, redis.DialReadTimeout(10*time.Second))
		},
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// contents is every key under a prefix with its contents, to show that a call
// wrote nothing. (Not DUMP: a set's serialisation follows its hash
// table's order, which a mere read can change.)
func contents(t *testing.T, c redis.Conn, prefix string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, k := range scanKeys(t, c, prefix) {
		typ, err := redis.String(c.Do("TYPE", k))
		require.NoError(t, err)
		var v []string
		switch typ {
		case "string": // only where a test planted one (wrongtype_test.go)
			var str string
			str, err = redis.String(c.Do("GET", k))
			v = []string{str}
		case "hash":
			var m map[string]string
			m, err = redis.StringMap(c.Do("HGETALL", k))
			for f, val := range m {
				v = append(v, f+"="+val)
			}
		case "set":
			v, err = redis.Strings(c.Do("SMEMBERS", k))
		case "zset":
			v, err = redis.Strings(c.Do("ZRANGE", k, 0, -1, "WITHSCORES"))
		default:
			t.Fatalf("%s is a %s", k, typ)
		}
		require.NoError(t, err)
		if typ != "zset" {
			sort.Strings(v)
		}
		out[k] = append([]string{typ}, v...)
	}
	return out
}

// ownRedis starts a redis-server for this test alone, for tests that do
// what must never be done to a shared server (SCRIPT FLUSH, kill...),
// with extra config ("--maxmemory", "10mb").
func ownRedis(t testing.TB, extra ...string) *redisserver.Server {
	t.Helper()
	return ownServer(t, func() (*redisserver.Server, error) { return redisserver.Start(extra...) })
}

// ownServer runs start and stops the server when the test ends. It skips
// the test under -short, and fails it when redis-server is not installed:
// REDIS_URL or Docker cannot stand in for a server of the test's own.
func ownServer(t testing.TB, start func() (*redisserver.Server, error)) *redisserver.Server {
	t.Helper()
	needRedis(t)
	srv, err := start()
	if err != nil {
		if errors.Is(err, redisserver.ErrNotInstalled) {
			t.Fatalf("this test starts a redis-server of its own: %v", err)
		}
		t.Fatalf("start redis-server: %v", err)
	}
	t.Cleanup(srv.Stop)
	return srv
}

// silentListener listens on loopback, accepts connections and never
// answers: a server that hangs (a stopped process, a TLS port that never
// finishes the handshake, a sentinel behind a firewall that lets the SYN
// through). accepted returns the connections so far, for a test to watch
// the store close them. Closed when the test ends.
func silentListener(t testing.TB) (addr string, accepted func() []net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String(), func() []net.Conn {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(conns)
	}
}

// blackhole is a redis:// URL of a silentListener: a server that hangs.
func blackhole(t testing.TB) string {
	t.Helper()
	addr, _ := silentListener(t)
	return "redis://" + addr
}

// closedPortURL returns a redis:// URL on which nothing listens.
func closedPortURL(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "redis://" + addr
}

func oddStrings() map[string]string {
	return map[string]string{
		"colons":   "a:b:c",
		"braces":   "{tag}x{y}",
		"spaces":   "with some spaces",
		"newlines": "line1\nline2\r\n",
		"unicode":  "ünïcødé 🎉 中文",
		"nul":      "nul\x00byte\x00",
		"glob":     "*?[a-z]\\",
		"quotes":   `"'` + "`",
		"long":     strings.Repeat("x", 4096),
		"lua":      "%d ..'",
	}
}

// stores returns both stores on a fresh prefix, opened from the URL with
// the given options: auto-pipelined unless they say otherwise, the path a
// user who calls Open*Store(url) gets.
func stores(t testing.TB, opts ...pikkuredis.Option) (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore, string) {
	t.Helper()
	prefix := newPrefix(t)
	opts = withPrefix(prefix, opts...)
	cs, err := pikkuredis.OpenChannelStore(redisURL, opts...)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := pikkuredis.OpenEventHubStore(redisURL, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close(); hs.Close() })
	return cs, hs, prefix
}

// sharedPoolStores returns both stores over a fresh caller-owned pool:
// one pooled connection per call.
func sharedPoolStores(t testing.TB, opts ...pikkuredis.Option) (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore, string) {
	t.Helper()
	prefix := newPrefix(t)
	pool := callersPool(t)
	opts = withPrefix(prefix, opts...)
	cs := pikkuredis.NewChannelStore(pool, opts...)
	hs := pikkuredis.NewEventHubStore(pool, opts...)
	t.Cleanup(func() { cs.Close(); hs.Close() })
	return cs, hs, prefix
}

// backends are the ways a store reaches Redis, for the tests that must
// hold on every one of them.
var backends = map[string]func(testing.TB, ...pikkuredis.Option) (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore, string){
	"auto-pipelined": stores,
	"one pipelined connection": func(t testing.TB, o ...pikkuredis.Option) (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore, string) {
		return stores(t, append(o, pikkuredis.WithPipelineConns(1))...)
	},
	"owned pool": func(t testing.TB, o ...pikkuredis.Option) (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore, string) {
		return stores(t, append(o, pikkuredis.WithoutAutoPipelining())...)
	},
	"caller's pool": sharedPoolStores,
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// --- The conformance cases of Pikku's own store suites ---

func TestAddThenGet(t *testing.T) { forLayouts(t, testAddThenGet) }

func testAddThenGet(t *testing.T, lc layoutCase) {
	cs, _, _ := lc.stores(t)
	ctx := ctxT(t)
	before := time.Now().Truncate(time.Millisecond)
	require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{
		ChannelID: "c1", ChannelName: "chat", OpeningData: map[string]any{"room": "lobby", "n": 3},
	}))
	after := time.Now()

	got, err := cs.GetChannelAndSession(ctx, "c1")
	require.NoError(t, err)
	assert.Equal(t, "c1", got.ChannelID)
	assert.Equal(t, "chat", got.ChannelName)
	assert.JSONEq(t, `{"room":"lobby","n":3}`, string(got.OpeningData))
	assert.Equal(t, "{}", string(got.Session))
	assert.False(t, got.CreatedAt.Before(before), "createdAt %v before %v", got.CreatedAt, before)
	assert.False(t, got.CreatedAt.After(after), "createdAt %v after %v", got.CreatedAt, after)
}

func TestSessionSetReplaceClear(t *testing.T) { forLayouts(t, testSessionSetReplaceClear) }

func testSessionSetReplaceClear(t *testing.T, lc layoutCase) {
	cs, _, _ := lc.stores(t)
	ctx := ctxT(t)
	require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c1", ChannelName: "chat"}))

	require.NoError(t, cs.SetUserSession(ctx, "c1", map[string]string{"userId": "u1"}))
	got, err := cs.GetChannelAndSession(ctx, "c1")
	require.NoError(t, err)
	assert.JSONEq(t, `{"userId":"u1"}`, string(got.Session))

	require.NoError(t, cs.SetUserSession(ctx, "c1", map[string]string{"userId": "u2"}))
	got, err = cs.GetChannelAndSession(ctx, "c1")
	require.NoError(t, err)
	assert.JSONEq(t, `{"userId":"u2"}`, string(got.Session))

	require.NoError(t, cs.SetUserSession(ctx, "c1", nil))
	got, err = cs.GetChannelAndSession(ctx, "c1")
	require.NoError(t, err)
	assert.Equal(t, "{}", string(got.Session))

	// Whatever JavaScript reads as false clears too, as in @pikku/redis.
	for _, falsy := range []any{json.RawMessage("null"), false, 0, ""} {
		require.NoError(t, cs.SetUserSession(ctx, "c1", map[string]string{"userId": "u3"}))
		require.NoError(t, cs.SetUserSession(ctx, "c1", falsy))
		got, err = cs.GetChannelAndSession(ctx, "c1")
		require.NoError(t, err)
		assert.Equal(t, "{}", string(got.Session), "session %#v", falsy)
	}
	// Other scalars are sessions like any other value.
	require.NoError(t, cs.SetUserSession(ctx, "c1", "u4"))
	got, err = cs.GetChannelAndSession(ctx, "c1")
	require.NoError(t, err)
	assert.Equal(t, `"u4"`, string(got.Session))
}

func TestAbsentJSONIsAFreshEmptyObject(t *testing.T) {
	forLayouts(t, testAbsentJSONIsAFreshEmptyObject)
}

func testAbsentJSONIsAFreshEmptyObject(t *testing.T, lc layoutCase) {
	cs, _, _ := lc.stores(t)
	ctx := ctxT(t)
	require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c1"}))
	a, err := cs.GetChannelAndSession(ctx, "c1")
	require.NoError(t, err)
	a.Session[0], a.OpeningData[0] = 'X', 'Y' // a caller editing its result in place
	b, err := cs.GetChannelAndSession(ctx, "c1")
	require.NoError(t, err)
	assert.Equal(t, "{}", string(b.Session))
	assert.Equal(t, "{}", string(b.OpeningData))
}

func TestMissingChannelIsNotFound(t *testing.T) { forLayouts(t, testMissingChannelIsNotFound) }

func testMissingChannelIsNotFound(t *testing.T, lc layoutCase) {
	cs, _, _ := lc.stores(t)
	ctx := ctxT(t)
	_, err := cs.GetChannelAndSession(ctx, "nope-42")
	require.ErrorIs(t, err, pikkuredis.ErrChannelNotFound)
	assert.Equal(t, "pikkuredis: channel not found: nope-42", err.Error())
}

func TestGetHashWithoutChannelIDIsNotFound(t *testing.T) {
	forLayouts(t, testGetHashWithoutChannelIDIsNotFound)
}

func testGetHashWithoutChannelIDIsNotFound(t *testing.T, lc layoutCase) {
	cs, _, k := lc.stores(t)
	c := dialRaw(t)
	defer c.Close()
	_, err := c.Do("HSET", k.channel("half"), "userSession", `{"a":1}`)
	require.NoError(t, err)
	_, err = cs.GetChannelAndSession(ctxT(t), "half")
	require.ErrorIs(t, err, pikkuredis.ErrChannelNotFound)
}

func TestRemoveChannelsEmptyIsNoop(t *testing.T) { forLayouts(t, testRemoveChannelsEmptyIsNoop) }

func testRemoveChannelsEmptyIsNoop(t *testing.T, lc layoutCase) {
	cs, _, k := lc.stores(t)
	ctx := ctxT(t)
	require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c1"}))
	require.NoError(t, cs.RemoveChannels(ctx, nil))
	require.NoError(t, cs.RemoveChannels(ctx, []string{}))
	c := dialRaw(t)
	defer c.Close()
	assert.Equal(t, []string{k.channel("c1")}, scanKeys(t, c, k.prefix))
}

func TestSubscribeTwiceReturnsTrue(t *testing.T) { forLayouts(t, testSubscribeTwiceReturnsTrue) }

func testSubscribeTwiceReturnsTrue(t *testing.T, lc layoutCase) {
	_, hs, _ := lc.stores(t)
	ctx := ctxT(t)
	for i := 0; i < 2; i++ {
		ok, err := hs.Subscribe(ctx, "news", "c1")
		require.NoError(t, err)
		assert.True(t, ok, "subscribe #%d", i+1)
	}
	ids, err := hs.GetChannelIDsForTopic(ctx, "news")
	require.NoError(t, err)
	assert.Equal(t, []string{"c1"}, ids)
}

func TestUnsubscribeTrueThenFalse(t *testing.T) { forLayouts(t, testUnsubscribeTrueThenFalse) }

func testUnsubscribeTrueThenFalse(t *testing.T, lc layoutCase) {
	_, hs, _ := lc.stores(t)
	ctx := ctxT(t)
	_, err := hs.Subscribe(ctx, "news", "c1")
	require.NoError(t, err)
	ok, err := hs.Unsubscribe(ctx, "news", "c1")
	require.NoError(t, err)
	assert.True(t, ok)
	ok, err = hs.Unsubscribe(ctx, "news", "c1")
	require.NoError(t, err)
	assert.False(t, ok)
	ok, err = hs.Unsubscribe(ctx, "never", "c9")
	require.NoError(t, err)
	assert.False(t, ok)
}

func TestUnknownTopicIsEmptyNonNil(t *testing.T) { forLayouts(t, testUnknownTopicIsEmptyNonNil) }

func testUnknownTopicIsEmptyNonNil(t *testing.T, lc layoutCase) {
	_, hs, _ := lc.stores(t)
	ids, err := hs.GetChannelIDsForTopic(ctxT(t), "nobody-here")
	require.NoError(t, err)
	require.NotNil(t, ids)
	assert.Empty(t, ids)
}

// --- The exact bytes in Redis ---

func TestLayoutExactFieldsAndSets(t *testing.T) { forLayouts(t, testLayoutExactFieldsAndSets) }

func testLayoutExactFieldsAndSets(t *testing.T, lc layoutCase) {
	cs, hs, k := lc.stores(t)
	ctx := ctxT(t)
	c := dialRaw(t)
	defer c.Close()

	before := time.Now().UnixMilli()
	require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{
		ChannelID: "c1", ChannelName: "chat",
		OpeningData: struct {
			Room string `json:"room"`
			HTML string `json:"html"`
		}{"lobby", "<b>&</b>"},
	}))
	after := time.Now().UnixMilli()

	h, err := redis.StringMap(c.Do("HGETALL", k.channel("c1")))
	require.NoError(t, err)
	created, err := strconv.ParseInt(h["createdAt"], 10, 64)
	require.NoError(t, err, "createdAt must be decimal milliseconds, got %q", h["createdAt"])
	assert.GreaterOrEqual(t, created, before)
	assert.LessOrEqual(t, created, after)
	delete(h, "createdAt")
	// JSON.stringify writes <, > and & as they are.
	assert.Equal(t, map[string]string{
		"channelId":   "c1",
		"channelName": "chat",
		"openingData": `{"room":"lobby","html":"<b>&</b>"}`,
	}, h, "no userSession field until a session is set")

	require.NoError(t, cs.SetUserSession(ctx, "c1", map[string]any{"userId": "u1", "roles": []string{"a<b"}}))
	s, err := redis.String(c.Do("HGET", k.channel("c1"), "userSession"))
	require.NoError(t, err)
	assert.Equal(t, `{"roles":["a<b"],"userId":"u1"}`, s)

	require.NoError(t, cs.SetUserSession(ctx, "c1", nil))
	exists, err := redis.Int(c.Do("HEXISTS", k.channel("c1"), "userSession"))
	require.NoError(t, err)
	assert.Equal(t, 0, exists, "a cleared session removes the field")

	_, err = hs.Subscribe(ctx, "news", "c1")
	require.NoError(t, err)
	_, err = hs.Subscribe(ctx, "sport", "c1")
	require.NoError(t, err)
	topic, err := redis.Strings(c.Do("SMEMBERS", k.topic("news", "c1")))
	require.NoError(t, err)
	assert.Equal(t, []string{"c1"}, topic)
	subs, err := redis.Strings(c.Do("SMEMBERS", k.subs("c1")))
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"news", "sport"}, subs)

	assert.ElementsMatch(t, []string{
		k.channel("c1"), k.topic("news", "c1"), k.topic("sport", "c1"), k.subs("c1"),
	}, scanKeys(t, c, k.prefix))
}

func TestOpeningDataFalsyIsEmptyObject(t *testing.T) {
	forLayouts(t, testOpeningDataFalsyIsEmptyObject)
}

func testOpeningDataFalsyIsEmptyObject(t *testing.T, lc layoutCase) {
	cs, _, k := lc.stores(t)
	ctx := ctxT(t)
	c := dialRaw(t)
	defer c.Close()
	var nilPtr *struct{ A int }
	// @pikku/redis stores `openingData || {}`: every falsy value becomes {}.
	for i, data := range []any{nil, json.RawMessage("null"), nilPtr, false, 0, 0.0, ""} {
		id := fmt.Sprintf("c%d", i)
		require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id, OpeningData: data}))
		raw, err := redis.String(c.Do("HGET", k.channel(id), "openingData"))
		require.NoError(t, err)
		assert.Equal(t, "{}", raw, "opening data %#v", data)
	}
}

func TestAddChannelOverwriteKeepsSession(t *testing.T) {
	forLayouts(t, testAddChannelOverwriteKeepsSession)
}

func testAddChannelOverwriteKeepsSession(t *testing.T, lc layoutCase) {
	cs, _, _ := lc.stores(t)
	ctx := ctxT(t)
	require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c1", ChannelName: "old", OpeningData: map[string]int{"v": 1}}))
	require.NoError(t, cs.SetUserSession(ctx, "c1", map[string]string{"userId": "u1"}))
	first, err := cs.GetChannelAndSession(ctx, "c1")
	require.NoError(t, err)
	time.Sleep(5 * time.Millisecond) // so that the new createdAt is a later millisecond
	require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c1", ChannelName: "new", OpeningData: map[string]int{"v": 2}}))

	got, err := cs.GetChannelAndSession(ctx, "c1")
	require.NoError(t, err)
	assert.Equal(t, "new", got.ChannelName)
	assert.JSONEq(t, `{"v":2}`, string(got.OpeningData))
	assert.JSONEq(t, `{"userId":"u1"}`, string(got.Session))
	assert.True(t, got.CreatedAt.After(first.CreatedAt), "createdAt is rewritten")
}

func TestSetUserSessionOnMissingChannelWritesNothing(t *testing.T) {
	forLayouts(t, testSetUserSessionOnMissingChannelWritesNothing)
}

func testSetUserSessionOnMissingChannelWritesNothing(t *testing.T, lc layoutCase) {
	cs, _, k := lc.stores(t)
	ctx := ctxT(t)
	err := cs.SetUserSession(ctx, "ghost", map[string]string{"userId": "u1"})
	require.ErrorIs(t, err, pikkuredis.ErrChannelNotFound)
	assert.Contains(t, err.Error(), "ghost")
	err = cs.SetUserSession(ctx, "ghost", nil)
	require.ErrorIs(t, err, pikkuredis.ErrChannelNotFound, "clearing a missing channel's session")
	c := dialRaw(t)
	defer c.Close()
	assert.Empty(t, scanKeys(t, c, k.prefix))
}

// --- RemoveChannels ---

// populate adds n channels c0..c(n-1), each subscribed to subsPer of the
// topics t0..t(topics-1), and returns their ids.
func populate(t testing.TB, cs *pikkuredis.ChannelStore, hs *pikkuredis.EventHubStore, n, subsPer, topics int) []string {
	t.Helper()
	ctx := context.Background()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("c%d", i)
		require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: ids[i], ChannelName: "n"}))
		for j := 0; j < subsPer; j++ {
			_, err := hs.Subscribe(ctx, fmt.Sprintf("t%d", (i+j)%topics), ids[i])
			require.NoError(t, err)
		}
	}
	return ids
}

func TestRemoveChannelsLargeLeavesNoTrace(t *testing.T) {
	forLayouts(t, testRemoveChannelsLargeLeavesNoTrace)
}

func testRemoveChannelsLargeLeavesNoTrace(t *testing.T, lc layoutCase) {
	cs, hs, k := lc.stores(t)
	ctx := ctxT(t)
	c := dialRaw(t)
	defer c.Close()
	const n, subsPer, topics = 2000, 3, 20
	ids := populate(t, cs, hs, n, subsPer, topics)

	var even, odd []string
	for i, id := range ids {
		if i%2 == 0 {
			even = append(even, id)
		} else {
			odd = append(odd, id)
		}
	}
	// 1,000 ids: ten full chunks of the default size.
	require.NoError(t, cs.RemoveChannels(ctx, even))

	removed := map[string]bool{}
	for _, id := range even {
		removed[id] = true
	}
	for i := 0; i < topics; i++ {
		for _, m := range k.members(t, c, fmt.Sprintf("t%d", i)) {
			require.False(t, removed[m], "removed channel %s still in topic t%d", m, i)
		}
	}
	for i, id := range odd {
		got, err := cs.GetChannelAndSession(ctx, id)
		require.NoError(t, err, "kept channel %s", id)
		require.Equal(t, id, got.ChannelID)
		subs, err := redis.Strings(c.Do("SMEMBERS", k.subs(id)))
		require.NoError(t, err)
		require.Len(t, subs, subsPer, "kept channel %s keeps its subscriptions", id)
		if i%100 == 0 {
			for _, topic := range subs {
				member, err := redis.Bool(c.Do("SISMEMBER", k.topic(topic, id), id))
				require.NoError(t, err)
				require.True(t, member, "kept channel %s still in topic %s", id, topic)
			}
		}
	}
	for _, id := range even {
		_, err := cs.GetChannelAndSession(ctx, id)
		require.ErrorIs(t, err, pikkuredis.ErrChannelNotFound)
	}

	require.NoError(t, cs.RemoveChannels(ctx, odd))
	assert.Empty(t, scanKeys(t, c, k.prefix), "no key under the prefix remains")
}

func TestRemoveChannelsChunkBoundaries(t *testing.T) {
	forLayouts(t, testRemoveChannelsChunkBoundaries)
}

func testRemoveChannelsChunkBoundaries(t *testing.T, lc layoutCase) {
	// 10 ids in chunks of 3: three full chunks and one of 1.
	cs, hs, k := lc.stores(t, pikkuredis.WithRemoveChunkSize(3))
	ctx := ctxT(t)
	ids := populate(t, cs, hs, 10, 2, 4)
	require.NoError(t, cs.RemoveChannels(ctx, ids))
	c := dialRaw(t)
	defer c.Close()
	assert.Empty(t, scanKeys(t, c, k.prefix))
}

func TestRemoveChannelsUnknownAndDuplicateIDs(t *testing.T) {
	forLayouts(t, testRemoveChannelsUnknownAndDuplicateIDs)
}

func testRemoveChannelsUnknownAndDuplicateIDs(t *testing.T, lc layoutCase) {
	cs, hs, k := lc.stores(t)
	ctx := ctxT(t)
	ids := populate(t, cs, hs, 2, 2, 2)
	require.NoError(t, cs.RemoveChannels(ctx, []string{"never-added", ids[0], ids[0], ids[1]}))
	c := dialRaw(t)
	defer c.Close()
	assert.Empty(t, scanKeys(t, c, k.prefix))
}

// --- Concurrency: the two directions never disagree ---

func TestConcurrentMixKeepsIndexesConsistent(t *testing.T) {
	for name, open := range layoutBackends() {
		t.Run(name, func(t *testing.T) { testConcurrentMix(t, open) })
	}
}

func testConcurrentMix(t *testing.T, open storesFunc) {
	cs, hs, k := open(t)
	ctx := ctxT(t)
	const workers, opsEach, channels, topics = 40, 150, 8, 4

	// A reader takes consistent snapshots of every set (one MULTI/EXEC)
	// while the writers run: with atomic scripts, each snapshot agrees in
	// both directions. Non-atomic writes show up here as torn states, even
	// when the final state happens to agree.
	stop := make(chan struct{})
	snapshots := make(chan error, 1)
	go func() { snapshots <- checkSnapshots(k, channels, topics, stop) }()

	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			rng := mathrand.New(mathrand.NewSource(seed))
			for i := 0; i < opsEach; i++ {
				id := fmt.Sprintf("c%d", rng.Intn(channels))
				topic := fmt.Sprintf("t%d", rng.Intn(topics))
				var err error
				switch rng.Intn(4) {
				case 0:
					err = cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id, ChannelName: "x"})
				case 1:
					_, err = hs.Subscribe(ctx, topic, id)
				case 2:
					_, err = hs.Unsubscribe(ctx, topic, id)
				case 3:
					err = cs.RemoveChannels(ctx, []string{id, fmt.Sprintf("c%d", rng.Intn(channels))})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}(int64(w))
	}
	wg.Wait()
	close(stop)
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, <-snapshots)
	assertIndexesAgree(t, k.prefix)
}

// checkSnapshots reads every topic and subs set of channels c0.. and
// topics t0.. (a topic's set in every shard) in one transaction, over and
// over until stop, and returns the first disagreement between the two
// directions.
func checkSnapshots(k keyLayout, channels, topics int, stop <-chan struct{}) error {
	c, err := dialRawErr()
	if err != nil {
		return err
	}
	defer c.Close()
	for n := 0; ; n++ {
		select {
		case <-stop:
			if n == 0 {
				return errors.New("no snapshot taken")
			}
			return nil
		default:
		}
		c.Send("MULTI")
		var topicKeys []string
		for i := 0; i < topics; i++ {
			topicKeys = k.topicKeys(fmt.Sprintf("t%d", i))
			for _, key := range topicKeys {
				c.Send("SMEMBERS", key)
			}
		}
		for i := 0; i < channels; i++ {
			c.Send("SMEMBERS", k.subs(fmt.Sprintf("c%d", i)))
		}
		replies, err := redis.Values(c.Do("EXEC"))
		if err != nil {
			return err
		}
		inTopic := map[[2]string]bool{}
		perTopic := len(topicKeys)
		for i := 0; i < topics*perTopic; i++ {
			ids, _ := redis.Strings(replies[i], nil)
			for _, id := range ids {
				inTopic[[2]string{id, fmt.Sprintf("t%d", i/perTopic)}] = true
			}
		}
		inSubs := 0
		for i := 0; i < channels; i++ {
			subs, _ := redis.Strings(replies[topics*perTopic+i], nil)
			for _, topic := range subs {
				pair := [2]string{fmt.Sprintf("c%d", i), topic}
				if !inTopic[pair] {
					return fmt.Errorf("snapshot %d: channel %s lists topic %s, which lacks it", n, pair[0], pair[1])
				}
				inSubs++
			}
		}
		if inSubs != len(inTopic) {
			return fmt.Errorf("snapshot %d: %d topic memberships but %d subs entries", n, len(inTopic), inSubs)
		}
	}
}

// assertIndexesAgree checks both directions: every member of a topic set
// lists the topic in its subs set, and every subs entry is in its topic set.
func assertIndexesAgree(t *testing.T, prefix string) {
	t.Helper()
	c := dialRaw(t)
	defer c.Close()
	assertIndexesAgreeOn(t, c, prefix)
}

// assertIndexesAgreeOn is assertIndexesAgree on the server c is connected
// to, for tests with a server of their own. Either layout: in the sharded
// one the other direction of a set is looked for in the set's own shard.
func assertIndexesAgreeOn(t *testing.T, c redis.Conn, prefix string) {
	t.Helper()
	checked := 0
	for _, key := range scanKeys(t, c, prefix) {
		shard, _ := splitKey(prefix, key)
		topicPrefix, subsPrefix := shard+":topic:", shard+":subs:"
		switch {
		case strings.HasPrefix(key, topicPrefix):
			topic := strings.TrimPrefix(key, topicPrefix)
			members, err := redis.Strings(c.Do("SMEMBERS", key))
			require.NoError(t, err)
			for _, id := range members {
				ok, err := redis.Bool(c.Do("SISMEMBER", subsPrefix+id, topic))
				require.NoError(t, err)
				assert.True(t, ok, "channel %s is in topic %s but its subs set lacks it", id, topic)
				checked++
			}
		case strings.HasPrefix(key, subsPrefix):
			id := strings.TrimPrefix(key, subsPrefix)
			subs, err := redis.Strings(c.Do("SMEMBERS", key))
			require.NoError(t, err)
			for _, topic := range subs {
				ok, err := redis.Bool(c.Do("SISMEMBER", topicPrefix+topic, id))
				require.NoError(t, err)
				assert.True(t, ok, "channel %s lists topic %s but the topic set lacks it", id, topic)
				checked++
			}
		}
	}
	t.Logf("checked %d index entries in both directions", checked)
}

// --- Input ---

func TestOddIDsAndTopicsRoundTrip(t *testing.T) { forLayouts(t, testOddIDsAndTopicsRoundTrip) }

func testOddIDsAndTopicsRoundTrip(t *testing.T, lc layoutCase) {
	cs, hs, k := lc.stores(t)
	ctx := ctxT(t)
	c := dialRaw(t)
	defer c.Close()
	for name, s := range oddStrings() {
		t.Run(name, func(t *testing.T) {
			require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: s, ChannelName: s, OpeningData: map[string]string{"v": s}}))
			require.NoError(t, cs.SetUserSession(ctx, s, map[string]string{"s": s}))
			got, err := cs.GetChannelAndSession(ctx, s)
			require.NoError(t, err)
			assert.Equal(t, s, got.ChannelID)
			assert.Equal(t, s, got.ChannelName)
			var od, sess map[string]string
			require.NoError(t, json.Unmarshal(got.OpeningData, &od))
			require.NoError(t, json.Unmarshal(got.Session, &sess))
			assert.Equal(t, s, od["v"])
			assert.Equal(t, s, sess["s"])

			// The key is exactly prefix:channel:id, with the id's bytes as they are.
			n, err := redis.Int(c.Do("EXISTS", k.channel(s)))
			require.NoError(t, err)
			assert.Equal(t, 1, n)

			_, err = hs.Subscribe(ctx, s, s)
			require.NoError(t, err)
			ids, err := hs.GetChannelIDsForTopic(ctx, s)
			require.NoError(t, err)
			assert.Equal(t, []string{s}, ids)

			require.NoError(t, cs.RemoveChannels(ctx, []string{s}))
			ids, err = hs.GetChannelIDsForTopic(ctx, s)
			require.NoError(t, err)
			assert.Empty(t, ids, "removal reaches topic keys built inside Lua from the id's topic")
		})
	}
	assert.Empty(t, scanKeys(t, c, k.prefix))
}

func TestBadInputIsRefusedAndWritesNothing(t *testing.T) {
	forLayouts(t, testBadInputIsRefusedAndWritesNothing)
}

func testBadInputIsRefusedAndWritesNothing(t *testing.T, lc layoutCase) {
	cs, hs, k := lc.stores(t)
	ctx := ctxT(t)
	c := dialRaw(t)
	defer c.Close()

	unencodable := []any{make(chan int), func() {}, math.NaN(), map[bool]int{true: 1}}
	cases := map[string]func() error{
		"add empty id":      func() error { return cs.AddChannel(ctx, pikkuredis.Channel{ChannelName: "x"}) },
		"remove empty id":   func() error { return cs.RemoveChannels(ctx, []string{"a", ""}) },
		"session empty id":  func() error { return cs.SetUserSession(ctx, "", map[string]int{}) },
		"get empty id":      func() error { _, err := cs.GetChannelAndSession(ctx, ""); return err },
		"topic ids empty":   func() error { _, err := hs.GetChannelIDsForTopic(ctx, ""); return err },
		"sub empty topic":   func() error { _, err := hs.Subscribe(ctx, "", "c1"); return err },
		"sub empty id":      func() error { _, err := hs.Subscribe(ctx, "t", ""); return err },
		"unsub empty topic": func() error { _, err := hs.Unsubscribe(ctx, "", "c1"); return err },
		"unsub empty id":    func() error { _, err := hs.Unsubscribe(ctx, "t", ""); return err },
	}
	for i, v := range unencodable {
		v := v
		cases[fmt.Sprintf("add unencodable %d", i)] = func() error {
			return cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "bad", OpeningData: v})
		}
		cases[fmt.Sprintf("session unencodable %d", i)] = func() error { return cs.SetUserSession(ctx, "bad", v) }
	}
	for name, call := range cases {
		err := call()
		require.Error(t, err, name)
		assert.ErrorIs(t, err, pikkuredis.ErrInvalidArgument, name)
		assert.True(t, strings.HasPrefix(err.Error(), "pikkuredis: "), "%s: %v", name, err)
	}
	assert.Empty(t, scanKeys(t, c, k.prefix), "nothing written")

	// A refused session leaves the stored one as it was.
	require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c1"}))
	require.NoError(t, cs.SetUserSession(ctx, "c1", map[string]string{"userId": "u1"}))
	require.ErrorIs(t, cs.SetUserSession(ctx, "c1", make(chan int)), pikkuredis.ErrInvalidArgument)
	got, err := cs.GetChannelAndSession(ctx, "c1")
	require.NoError(t, err)
	assert.JSONEq(t, `{"userId":"u1"}`, string(got.Session))
}

func TestScriptErrorsNameTheScript(t *testing.T) { forLayouts(t, testScriptErrorsNameTheScript) }

func testScriptErrorsNameTheScript(t *testing.T, lc layoutCase) {
	_, hs, k := lc.stores(t)
	c := dialRaw(t)
	defer c.Close()
	_, err := c.Do("SET", k.topic("wrongtype", "c1"), "a string, not a set")
	require.NoError(t, err)
	_, err = hs.Subscribe(ctxT(t), "wrongtype", "c1")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "pikkuredis: subscribe: script subscribe:")
	assert.Contains(t, err.Error(), "WRONGTYPE")
}

func TestCorruptStoredJSONIsAnError(t *testing.T) { forLayouts(t, testCorruptStoredJSONIsAnError) }

func testCorruptStoredJSONIsAnError(t *testing.T, lc layoutCase) {
	cs, _, k := lc.stores(t)
	c := dialRaw(t)
	defer c.Close()
	_, err := c.Do("HSET", k.channel("c1"), "channelId", "c1", "openingData", "{not json")
	require.NoError(t, err)
	_, err = cs.GetChannelAndSession(ctxT(t), "c1")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "openingData is not JSON")
}

// --- Typed view ---

type roomData struct {
	Room string `json:"room"`
}

type userSession struct {
	UserID string   `json:"userId"`
	Roles  []string `json:"roles,omitempty"`
}

func TestTypedView(t *testing.T) { forLayouts(t, testTypedView) }

func testTypedView(t *testing.T, lc layoutCase) {
	cs, _, k := lc.stores(t)
	ctx := ctxT(t)
	typed := pikkuredis.NewTyped[roomData, userSession](cs)

	require.NoError(t, typed.AddChannel(ctx, "c1", "chat", roomData{Room: "lobby"}))
	got, err := typed.GetChannelAndSession(ctx, "c1")
	require.NoError(t, err)
	assert.Equal(t, roomData{Room: "lobby"}, got.OpeningData)
	assert.False(t, got.HasSession)
	assert.Equal(t, userSession{}, got.Session)

	require.NoError(t, typed.SetUserSession(ctx, "c1", userSession{UserID: "u1", Roles: []string{"admin"}}))
	got, err = typed.GetChannelAndSession(ctx, "c1")
	require.NoError(t, err)
	assert.True(t, got.HasSession)
	assert.Equal(t, userSession{UserID: "u1", Roles: []string{"admin"}}, got.Session)

	// The typed view writes the same bytes as the raw store.
	c := dialRaw(t)
	defer c.Close()
	raw, err := redis.String(c.Do("HGET", k.channel("c1"), "userSession"))
	require.NoError(t, err)
	assert.Equal(t, `{"userId":"u1","roles":["admin"]}`, raw)

	require.NoError(t, typed.ClearUserSession(ctx, "c1"))
	got, err = typed.GetChannelAndSession(ctx, "c1")
	require.NoError(t, err)
	assert.False(t, got.HasSession)

	_, err = typed.GetChannelAndSession(ctx, "missing")
	require.ErrorIs(t, err, pikkuredis.ErrChannelNotFound)

	// Stored data that does not fit the type is an error, not a zero value.
	_, err = c.Do("HSET", k.channel("c1"), "openingData", `{"room":42}`)
	require.NoError(t, err)
	_, err = typed.GetChannelAndSession(ctx, "c1")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "decode opening data")
}

// The script's own contract, called as any other client would: with a
// budget, it stops before the channel that would go over it and says how
// many it removed, always the first ones.
func TestRemoveChannelsScriptBudget(t *testing.T) {
	prefix := newPrefix(t)
	c := dialRaw(t)
	defer c.Close()
	src := readScript(t, "remove_channels")
	ids := seedChannels(t, c, prefix, "c", 3, 5, 7) // 3 channels, 5 topics each
	remove := func(budget int, ids ...string) (int, error) {
		args := redis.Args{src, 2 * len(ids)}
		for _, id := range ids {
			args = append(args, prefix+":channel:"+id, prefix+":subs:"+id)
		}
		args = append(args, prefix, budget)
		return redis.Int(c.Do("EVAL", append(args, redis.Args{}.AddFlat(ids)...)...))
	}

	// 5 + 5 > 8: only the first channel goes.
	n, err := remove(8, ids...)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	exists, err := redis.Int(c.Do("EXISTS", prefix+":channel:"+ids[0], prefix+":channel:"+ids[1], prefix+":channel:"+ids[2]))
	require.NoError(t, err)
	assert.Equal(t, 2, exists, "the first channel is gone, the others are whole")

	// A budget smaller than one channel's topics still removes that channel.
	n, err = remove(1, ids[1:]...)
	require.NoError(t, err)
	assert.Equal(t, 1, n)

	// 0 means no limit.
	n, err = remove(0, ids[2])
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Empty(t, scanKeys(t, c, prefix))

	_, err = c.Do("EVAL", string(src), 1, prefix+":channel:x", prefix, 0, "x")
	require.ErrorContains(t, err, "expected 2 keys per channel id")
	_, err = c.Do("EVAL", string(src), 0, prefix, "lots")
	require.ErrorContains(t, err, "budget must be a number")
}

// RemoveChannels bounds the work of each call, not only its ids: channels
// with many subscriptions go in more, smaller calls. Counted with INFO
// commandstats on a server of the test's own.
func TestRemoveChannelsBoundsWorkPerCall(t *testing.T) {
	srv := ownRedis(t)
	ctx := ctxT(t)
	// Chunks of 3 ids give a budget of 30 topic memberships a call.
	cs, err := pikkuredis.OpenChannelStore(srv.URL, pikkuredis.WithRemoveChunkSize(3))
	require.NoError(t, err)
	defer cs.Close()
	require.NoError(t, cs.Init(ctx))
	admin, err := redis.DialURL(srv.URL)
	require.NoError(t, err)
	defer admin.Close()

	heavy := seedChannels(t, admin, "pikku", "heavy", 4, 20, 40) // 20 topics each: one channel a call
	light := seedChannels(t, admin, "pikku", "light", 6, 2, 40)  // 2 topics each: 3 ids a call
	_, err = admin.Do("CONFIG", "RESETSTAT")
	require.NoError(t, err)
	require.NoError(t, cs.RemoveChannels(ctx, append(heavy, light...)))

	n, err := redis.Int(admin.Do("DBSIZE"))
	require.NoError(t, err)
	assert.Zero(t, n, "everything removed")
	info, err := redis.String(admin.Do("INFO", "commandstats"))
	require.NoError(t, err)
	m := regexp.MustCompile(`cmdstat_evalsha:calls=(\d+)`).FindStringSubmatch(info)
	require.NotNil(t, m, info)
	// heavy: 20+20 > 30, so 4 calls of one channel; light: 2 calls of 3.
	assert.Equal(t, "6", m[1])
}

// readScript returns the source of scripts/<name>.lua.
func readScript(b testing.TB, name string) string {
	b.Helper()
	src, err := os.ReadFile("scripts/" + name + ".lua")
	if err != nil {
		b.Fatal(err)
	}
	return string(src)
}
