package pikkuredis_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pikkujs/pikkuredis"
)

// TestScriptFlushIsInvisible flushes the script cache before every call on
// a server of the test's own: each call must still succeed, which needs the
// NOSCRIPT fallback. Without it every script call here fails.
func TestScriptFlushIsInvisible(t *testing.T) {
	srv := ownRedis(t)
	ctx := ctxT(t)
	cs, err := pikkuredis.OpenChannelStore(srv.URL)
	require.NoError(t, err)
	defer cs.Close()
	hs, err := pikkuredis.OpenEventHubStore(srv.URL)
	require.NoError(t, err)
	defer hs.Close()
	admin, err := redis.DialURL(srv.URL)
	require.NoError(t, err)
	defer admin.Close()
	flush := func() {
		t.Helper()
		_, err := admin.Do("SCRIPT", "FLUSH")
		require.NoError(t, err)
	}

	flush()
	require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c1", ChannelName: "chat"}))
	flush()
	require.NoError(t, cs.SetUserSession(ctx, "c1", map[string]string{"userId": "u1"}))
	flush()
	ok, err := hs.Subscribe(ctx, "news", "c1")
	require.NoError(t, err)
	assert.True(t, ok)
	flush()
	ok, err = hs.Unsubscribe(ctx, "news", "c1")
	require.NoError(t, err)
	assert.True(t, ok)
	_, err = hs.Subscribe(ctx, "news", "c1")
	require.NoError(t, err)
	flush()
	require.NoError(t, cs.RemoveChannels(ctx, []string{"c1"}))
	ids, err := hs.GetChannelIDsForTopic(ctx, "news")
	require.NoError(t, err)
	assert.Empty(t, ids)
	n, err := redis.Int(admin.Do("DBSIZE"))
	require.NoError(t, err)
	assert.Zero(t, n)
}

// TestInitLoadsEveryScript: after Init the server's cache has every script,
// so the first calls go out as plain EVALSHA.
func TestInitLoadsEveryScript(t *testing.T) {
	srv := ownRedis(t)
	admin, err := redis.DialURL(srv.URL)
	require.NoError(t, err)
	defer admin.Close()

	hs, err := pikkuredis.OpenEventHubStore(srv.URL)
	require.NoError(t, err)
	defer hs.Close()
	require.NoError(t, hs.Init(ctxT(t)))

	shas := pikkuredis.ScriptSHAs()
	require.Len(t, shas, 10)
	args := redis.Args{"EXISTS"}
	want := []int{}
	for _, sha := range shas {
		args = append(args, sha)
		want = append(want, 1)
	}
	exists, err := redis.Ints(admin.Do("SCRIPT", args...))
	require.NoError(t, err)
	assert.Equal(t, want, exists)
}

func TestCancelledContextFailsAndWritesNothing(t *testing.T) {
	cs, hs, prefix := stores(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := map[string]func() error{
		"Init":                  func() error { return cs.Init(ctx) },
		"AddChannel":            func() error { return cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c1"}) },
		"RemoveChannels":        func() error { return cs.RemoveChannels(ctx, []string{"c1"}) },
		"SetUserSession":        func() error { return cs.SetUserSession(ctx, "c1", nil) },
		"GetChannelAndSession":  func() error { _, err := cs.GetChannelAndSession(ctx, "c1"); return err },
		"GetChannelIDsForTopic": func() error { _, err := hs.GetChannelIDsForTopic(ctx, "t"); return err },
		"Subscribe":             func() error { _, err := hs.Subscribe(ctx, "t", "c1"); return err },
		"Unsubscribe":           func() error { _, err := hs.Unsubscribe(ctx, "t", "c1"); return err },
	}
	for name, call := range calls {
		assert.ErrorIs(t, call(), context.Canceled, name)
	}
	c := dialRaw(t)
	defer c.Close()
	assert.Empty(t, scanKeys(t, c, prefix))
}

// getOnlyPool has Get and no GetContext, as a cluster client's pool.
type getOnlyPool struct{ p *redis.Pool }

func (g getOnlyPool) Get() redis.Conn { return g.p.Get() }

// timeoutOnlyConn is a redis.ConnWithTimeout but not a ConnWithContext,
// as a caller's wrapper around a redigo connection might be.
type timeoutOnlyConn struct{ redis.Conn }

func (c timeoutOnlyConn) DoWithTimeout(d time.Duration, cmd string, args ...any) (any, error) {
	return redis.DoWithTimeout(c.Conn, d, cmd, args...)
}

func (c timeoutOnlyConn) ReceiveWithTimeout(d time.Duration) (any, error) {
	return redis.ReceiveWithTimeout(c.Conn, d)
}

var _ redis.ConnWithTimeout = timeoutOnlyConn{}

func hungPool(t *testing.T, url string, wrap func(redis.Conn) redis.Conn) *redis.Pool {
	p := &redis.Pool{MaxActive: 1, Wait: true, Dial: func() (redis.Conn, error) {
		c, err := redis.DialURL(url)
		if err != nil {
			return nil, err
		}
		return wrap(c), nil
	}}
	t.Cleanup(func() { p.Close() })
	return p
}

// A server that accepts connections and never answers: every call must end
// with the caller's deadline, not hang, whatever the path to Redis.
func TestHungServerEndsWithTheDeadline(t *testing.T) {
	url := blackhole(t)
	host := strings.TrimPrefix(url, "redis://")
	open := func(u string, opts ...pikkuredis.Option) (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore) {
		cs, err := pikkuredis.OpenChannelStore(u, opts...)
		require.NoError(t, err)
		hs, err := pikkuredis.OpenEventHubStore(u, opts...)
		require.NoError(t, err)
		t.Cleanup(func() { cs.Close(); hs.Close() })
		return cs, hs
	}
	shared := func(p pikkuredis.Pool) (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore) {
		return pikkuredis.NewChannelStore(p), pikkuredis.NewEventHubStore(p)
	}
	paths := map[string]func() (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore){
		"owned redis://": func() (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore) { return open(url) },
		// The TLS handshake and AUTH happen after connect, outside redigo's
		// context handling.
		"owned rediss://":       func() (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore) { return open("rediss://" + host) },
		"owned with a password": func() (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore) { return open("redis://:secret@" + host) },
		"owned pool": func() (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore) {
			return open(url, pikkuredis.WithoutAutoPipelining())
		},
		"owned pool with a password": func() (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore) {
			return open("redis://:secret@"+host, pikkuredis.WithoutAutoPipelining())
		},
		"pool without GetContext": func() (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore) {
			return shared(getOnlyPool{hungPool(t, url, func(c redis.Conn) redis.Conn { return c })})
		},
		"connection without DoContext": func() (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore) {
			return shared(hungPool(t, url, func(c redis.Conn) redis.Conn { return timeoutOnlyConn{c} }))
		},
	}
	for pathName, build := range paths {
		t.Run(pathName, func(t *testing.T) {
			cs, hs := build()
			calls := map[string]func(context.Context) error{
				"Init":      func(ctx context.Context) error { return hs.Init(ctx) },
				"Subscribe": func(ctx context.Context) error { _, err := hs.Subscribe(ctx, "t", "c1"); return err },
				"Get":       func(ctx context.Context) error { _, err := cs.GetChannelAndSession(ctx, "c1"); return err },
				"Remove":    func(ctx context.Context) error { return cs.RemoveChannels(ctx, []string{"c1"}) },
			}
			for name, call := range calls {
				ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				done := make(chan error, 1)
				go func() { done <- call(ctx) }()
				select {
				case err := <-done:
					assert.ErrorIs(t, err, context.DeadlineExceeded, name)
				case <-time.After(5 * time.Second):
					t.Fatalf("%s: still running 5s after a 200ms deadline", name)
				}
				cancel()
			}
		})
	}
}

// With every connection busy, a caller waits for one only as long as its
// context lasts: behind a call on the one pipelined connection, for a
// pooled connection, also from a pool that has no GetContext.
func TestWaitingForAConnectionHonoursTheContext(t *testing.T) {
	url := blackhole(t)
	pipelined, err := pikkuredis.OpenEventHubStore(url)
	require.NoError(t, err)
	defer pipelined.Close()
	owned, err := pikkuredis.OpenEventHubStore(url, pikkuredis.WithoutAutoPipelining(), pikkuredis.WithPoolSize(1))
	require.NoError(t, err)
	defer owned.Close()
	stores := map[string]*pikkuredis.EventHubStore{
		"auto-pipelined":          pipelined,
		"owned pool":              owned,
		"pool without GetContext": pikkuredis.NewEventHubStore(getOnlyPool{hungPool(t, url, func(c redis.Conn) redis.Conn { return c })}),
	}
	for name, hs := range stores {
		t.Run(name, func(t *testing.T) { waitForBusyPool(t, hs) })
	}
}

func waitForBusyPool(t *testing.T, hs *pikkuredis.EventHubStore) {

	// Hold the only connection: this call hangs on the silent server.
	holdCtx, release := context.WithCancel(context.Background())
	held := make(chan error, 1)
	go func() { _, err := hs.Subscribe(holdCtx, "t", "c1"); held <- err }()
	time.Sleep(100 * time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := hs.GetChannelIDsForTopic(ctx, "t"); done <- err }()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	case <-time.After(10 * time.Second):
		t.Fatal("waiting for a pooled connection ignored the context")
	}
	release()
	assert.ErrorIs(t, <-held, context.Canceled)
}

func TestUnreachableServerIsAnError(t *testing.T) {
	cs, err := pikkuredis.OpenChannelStore(closedPortURL(t))
	require.NoError(t, err, "opening dials nothing")
	defer cs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = cs.Init(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "pikkuredis: init:")
	_, err = cs.GetChannelAndSession(ctx, "c1")
	require.Error(t, err)
	assert.NotErrorIs(t, err, pikkuredis.ErrChannelNotFound)
}

func TestOpenRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"", "localhost:6379", "http://localhost:6379", "redis://localhost:6379/notadb", "redis://%zz"} {
		_, err := pikkuredis.OpenChannelStore(u)
		assert.Error(t, err, "OpenChannelStore(%q)", u)
		_, err = pikkuredis.OpenEventHubStore(u)
		assert.Error(t, err, "OpenEventHubStore(%q)", u)
	}
}

func TestOpenedStoresWork(t *testing.T) {
	prefix := newPrefix(t)
	ctx := ctxT(t)
	cs, err := pikkuredis.OpenChannelStore(redisURL, pikkuredis.WithKeyPrefix(prefix), pikkuredis.WithPoolSize(4),
		pikkuredis.WithDialOptions(redis.DialClientName("pikkuredis-test")))
	require.NoError(t, err)
	defer cs.Close()
	hs, err := pikkuredis.OpenEventHubStore(redisURL, pikkuredis.WithKeyPrefix(prefix))
	require.NoError(t, err)
	defer hs.Close()
	require.NoError(t, cs.Init(ctx))
	require.NoError(t, hs.Init(ctx))
	require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c1"}))
	_, err = hs.Subscribe(ctx, "t", "c1")
	require.NoError(t, err)
	require.NoError(t, cs.RemoveChannels(ctx, []string{"c1"}))
	ids, err := hs.GetChannelIDsForTopic(ctx, "t")
	require.NoError(t, err)
	assert.Empty(t, ids)
}

func TestCloseSemantics(t *testing.T) {
	pool := newPool(t)
	ctx := ctxT(t)
	prefix := newPrefix(t)
	cs := pikkuredis.NewChannelStore(pool, pikkuredis.WithKeyPrefix(prefix))
	hs := pikkuredis.NewEventHubStore(pool, pikkuredis.WithKeyPrefix(prefix))
	require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c1"}))

	require.NoError(t, cs.Close())
	require.NoError(t, cs.Close(), "a second Close is harmless")
	require.NoError(t, hs.Close())
	require.NoError(t, hs.Close())

	closedCalls := map[string]func() error{
		"Init":                  func() error { return cs.Init(ctx) },
		"AddChannel":            func() error { return cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c2"}) },
		"RemoveChannels":        func() error { return cs.RemoveChannels(ctx, []string{"c1"}) },
		"RemoveChannels(empty)": func() error { return cs.RemoveChannels(ctx, nil) },
		"SetUserSession":        func() error { return cs.SetUserSession(ctx, "c1", nil) },
		"GetChannelAndSession":  func() error { _, err := cs.GetChannelAndSession(ctx, "c1"); return err },
		"HubInit":               func() error { return hs.Init(ctx) },
		"GetChannelIDsForTopic": func() error { _, err := hs.GetChannelIDsForTopic(ctx, "t"); return err },
		"Subscribe":             func() error { _, err := hs.Subscribe(ctx, "t", "c1"); return err },
		"Unsubscribe":           func() error { _, err := hs.Unsubscribe(ctx, "t", "c1"); return err },
	}
	for name, call := range closedCalls {
		assert.True(t, errors.Is(call(), pikkuredis.ErrClosed), name)
	}

	// The caller's pool is still open and the data still there.
	c := pool.Get()
	defer c.Close()
	n, err := redis.Int(c.Do("EXISTS", prefix+":channel:c1"))
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	other := pikkuredis.NewChannelStore(pool, pikkuredis.WithKeyPrefix(prefix))
	_, err = other.GetChannelAndSession(ctx, "c1")
	require.NoError(t, err)
}

// Calls racing with Close end with a result or ErrClosed, never with the
// pool's own "closed pool" error.
func TestCallsRacingCloseGetErrClosed(t *testing.T) {
	prefix := newPrefix(t)
	hs, err := pikkuredis.OpenEventHubStore(redisURL, pikkuredis.WithKeyPrefix(prefix), pikkuredis.WithPoolSize(4))
	require.NoError(t, err)
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	started := make(chan struct{}, 16)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				if i == 10 {
					started <- struct{}{}
				}
				if _, err := hs.Subscribe(ctx, "t", "c1"); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for g := 0; g < 16; g++ {
		<-started
	}
	require.NoError(t, hs.Close())
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.ErrorIs(t, err, pikkuredis.ErrClosed)
	}
}

// A value over Redis's proto-max-bulk-len gets "ERR Protocol error" and
// Redis closes the connection: the store drops that connection too, so
// the call after it does not fail on a dead connection.
func TestProtocolErrorDropsTheConnection(t *testing.T) {
	srv := ownRedis(t, "--proto-max-bulk-len", "1mb")
	big := strings.Repeat("x", 2<<20)
	for name, opts := range map[string][]pikkuredis.Option{
		"auto-pipelined": nil, "WithoutAutoPipelining": {pikkuredis.WithoutAutoPipelining(), pikkuredis.WithPoolSize(1)},
	} {
		t.Run(name, func(t *testing.T) {
			cs, err := pikkuredis.OpenChannelStore(srv.URL, opts...)
			require.NoError(t, err)
			defer cs.Close()
			ctx := ctxT(t)
			require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c1"}))
			for i := 0; i < 20; i++ {
				// Redis replies, or, still being sent the value, resets the
				// connection (which the writer may find closed by the
				// reader that met the reset first).
				err := cs.SetState(ctx, "c1", big)
				require.Error(t, err)
				assert.Regexp(t, "Protocol error|connection reset|broken pipe|use of closed network connection", err.Error())
				_, err = cs.GetChannel(ctx, "c1")
				require.NoError(t, err, "round %d: the call after the refused one", i)
			}
		})
	}
}

// A value Redis refuses (over proto-max-bulk-len) while other callers'
// calls are in flight: Redis closes the connection while it still reads
// the value, and any call written with it on that connection would be
// lost. No call with small arguments fails: on an auto-pipelined store the
// large ones go over a connection of their own.
func TestOversizedValueCostsNoSmallCall(t *testing.T) {
	srv := ownRedis(t, "--proto-max-bulk-len", "1mb", "--client-query-buffer-limit", "1mb")
	// Over proto-max-bulk-len (refused with a reply); and exactly 1 MiB as
	// JSON, which the query buffer limit refuses (the buffer holds the
	// line end too), closing the connection with no reply.
	big, justOver := strings.Repeat("x", 2<<20), strings.Repeat("x", 1<<20-2)
	for name, opts := range map[string][]pikkuredis.Option{
		"auto-pipelined": nil, "WithoutAutoPipelining": {pikkuredis.WithoutAutoPipelining()},
	} {
		t.Run(name, func(t *testing.T) {
			ss, err := pikkuredis.OpenSessionStore(srv.URL, opts...)
			require.NoError(t, err)
			defer ss.Close()
			cs, err := pikkuredis.OpenChannelStore(srv.URL, opts...)
			require.NoError(t, err)
			defer cs.Close()
			ctx := ctxT(t)
			require.NoError(t, ss.Set(ctx, "u1", 1))
			require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c1"}))

			var stop atomic.Bool
			var calls, failed atomic.Int64
			var wg sync.WaitGroup
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; !stop.Load(); i++ {
						var err error
						switch i % 3 {
						case 0:
							_, _, err = ss.Get(ctx, "u1")
						case 1:
							err = cs.SetState(ctx, "c1", i)
						default:
							_, err = cs.GetChannelWithSession(ctx, "c1")
						}
						calls.Add(1)
						if err != nil && failed.Add(1) < 5 {
							t.Errorf("a small call failed: %v", err)
						}
					}
				}()
			}
			for i := 0; i < 12; i++ {
				var err error
				switch i % 3 {
				case 0:
					err = ss.Set(ctx, "huge", big)
				case 1:
					err = cs.SetState(ctx, "c1", big)
				default:
					err = ss.Set(ctx, "huge", justOver)
				}
				require.Error(t, err)
				assert.Regexp(t, "Protocol error|connection reset|broken pipe|use of closed network connection|EOF", err.Error())
			}
			stop.Store(true)
			wg.Wait()
			assert.Zero(t, failed.Load(), "of %d small calls", calls.Load())
			assert.Positive(t, calls.Load())
		})
	}
}
