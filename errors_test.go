package pikkuredis_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pikkujs/pikkuredis"
	"github.com/pikkujs/pikkuredis/internal/tcpproxy"
)

// The error model (errors.go): a connection fault matches ErrConnection,
// and a dial's fault reads "connect to redis: ...", on every way a store
// dials; Redis's answers, the caller's context and Close do not.

// dialModes are the ways a store opened from a URL dials.
var dialModes = map[string][]pikkuredis.Option{
	"auto-pipelined": nil,
	"owned pool":     {pikkuredis.WithoutAutoPipelining()},
}

// dialFails opens a store on url in each dial mode, makes one call
// bounded by wait and checks that it fails as a dial does, saying each
// of says.
func dialFails(t *testing.T, url string, wait time.Duration, says ...string) {
	t.Helper()
	for mode, opts := range dialModes {
		t.Run(mode, func(t *testing.T) {
			hs, err := pikkuredis.OpenEventHubStore(url, append(opts, pikkuredis.WithKeyPrefix(randomPrefix(t)))...)
			require.NoError(t, err, "opening dials nothing")
			defer hs.Close()
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			start := time.Now()
			_, err = hs.Subscribe(ctx, "news", "c1")
			require.Error(t, err)
			t.Logf("after %v: %v", time.Since(start).Round(time.Millisecond), err)
			assert.ErrorIs(t, err, pikkuredis.ErrConnection)
			assert.Contains(t, err.Error(), "connect to redis: ")
			for _, s := range says {
				assert.Contains(t, err.Error(), s)
			}
			assert.Less(t, time.Since(start), wait+2*time.Second, "the call ends with its context")
		})
	}
}

func TestDialFaultsSayConnectToRedis(t *testing.T) {
	t.Run("rediss:// to a plaintext port", func(t *testing.T) {
		srv := ownRedis(t)
		dialFails(t, strings.Replace(srv.URL, "redis://", "rediss://", 1), time.Second, "TLS handshake", "redis://")
	})
	t.Run("redis:// to a TLS port", func(t *testing.T) {
		srv, _ := tlsRedis(t)
		dialFails(t, strings.Replace(srv.TLSURL, "rediss://", "redis://", 1), 3*time.Second, "rediss://")
	})
	t.Run("nothing listens", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := l.Addr().String()
		require.NoError(t, l.Close())
		dialFails(t, "redis://"+addr, 3*time.Second, addr)
	})
	t.Run("a server that never answers", func(t *testing.T) {
		addr, _ := silentListener(t)
		dialFails(t, "redis://"+addr, 500*time.Millisecond, "no answer from "+addr, "context deadline exceeded")
	})
}

// A dial refused for good (Redis answered AUTH or SELECT with an error;
// TLS could not verify the server) says "connect to redis: ..." but is not
// ErrConnection: a new dial would fail the same way. The cause is there for
// errors.As.
func TestDialRefusedForGoodIsNotErrConnection(t *testing.T) {
	srv := ownRedis(t)
	admin := dialURL(t, srv.URL)
	_, err := admin.Do("CONFIG", "SET", "requirepass", "right")
	require.NoError(t, err)
	admin.Close()
	tlsSrv, _ := tlsRedis(t)
	for name, tc := range map[string]struct {
		url   string
		reply bool
	}{
		"wrong password":                {strings.Replace(srv.URL, "redis://", "redis://:wrong@", 1), true},
		"no such database":              {strings.Replace(srv.URL, "redis://", "redis://:right@", 1) + "/99", true},
		"unknown certificate authority": {tlsSrv.TLSURL, false},
	} {
		for mode, opts := range dialModes {
			t.Run(name+"/"+mode, func(t *testing.T) {
				hs, err := pikkuredis.OpenEventHubStore(tc.url, opts...)
				require.NoError(t, err)
				defer hs.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_, err = hs.Subscribe(ctx, "news", "c1")
				require.Error(t, err)
				t.Log(err)
				assert.Contains(t, err.Error(), "connect to redis: ")
				assert.NotErrorIs(t, err, pikkuredis.ErrConnection, "a new dial would fail the same way")
				var reply redis.Error
				assert.Equal(t, tc.reply, errors.As(err, &reply), "Redis's reply is found")
				if !tc.reply {
					var unknown x509.UnknownAuthorityError
					assert.True(t, errors.As(err, &unknown), "the x509 error is found")
				}
			})
		}
	}
}

// A dial cut short by the caller's context is the context's error too.
func TestDialCutShortIsBothErrors(t *testing.T) {
	addr, _ := silentListener(t)
	for mode, opts := range dialModes {
		t.Run(mode, func(t *testing.T) {
			hs, err := pikkuredis.OpenEventHubStore("redis://"+addr, opts...)
			require.NoError(t, err)
			defer hs.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			_, err = hs.GetChannelIDsForTopic(ctx, "news")
			assert.ErrorIs(t, err, pikkuredis.ErrConnection)
			assert.ErrorIs(t, err, context.DeadlineExceeded)
		})
	}
}

// A connection lost under a call, or a reply that does not come within
// WithIOTimeout, is ErrConnection; the next call, on a new connection,
// works.
func TestLostConnectionIsErrConnection(t *testing.T) {
	srv := ownRedis(t, "--enable-debug-command", "yes")
	proxy, err := tcpproxy.Start(srv.Addr)
	require.NoError(t, err)
	t.Cleanup(proxy.Close)
	admin := dialURL(t, srv.URL)
	defer admin.Close()
	// whileBusy opens a store on url with a topic of one channel, then
	// reads the topic while the server sleeps for a second (DEBUG SLEEP on
	// admin), calling during (if not nil) 200 ms into the read; it returns
	// the read's error and checks that the next read works.
	whileBusy := func(t *testing.T, url string, opts []pikkuredis.Option, during func()) error {
		hs, err := pikkuredis.OpenEventHubStore(url, append(opts, pikkuredis.WithKeyPrefix(randomPrefix(t)))...)
		require.NoError(t, err)
		defer hs.Close()
		ctx := ctxT(t)
		_, err = hs.Subscribe(ctx, "news", "c1")
		require.NoError(t, err)
		sleeping := make(chan error, 1)
		go func() { _, err := admin.Do("DEBUG", "SLEEP", "1"); sleeping <- err }()
		time.Sleep(100 * time.Millisecond)
		if during != nil {
			go func() { time.Sleep(200 * time.Millisecond); during() }()
		}
		_, readErr := hs.GetChannelIDsForTopic(ctx, "news")
		require.NoError(t, <-sleeping)
		ids, err := hs.GetChannelIDsForTopic(ctx, "news")
		require.NoError(t, err, "the next call dials again")
		assert.Equal(t, []string{"c1"}, ids)
		return readErr
	}
	for mode, opts := range dialModes {
		t.Run(mode, func(t *testing.T) {
			t.Run("cut", func(t *testing.T) {
				err := whileBusy(t, proxy.URL, opts, func() { proxy.CloseOpen() })
				require.Error(t, err)
				t.Log(err)
				assert.ErrorIs(t, err, pikkuredis.ErrConnection)
			})
			t.Run("IO timeout", func(t *testing.T) {
				err := whileBusy(t, srv.URL, append(opts, pikkuredis.WithIOTimeout(200*time.Millisecond)), nil)
				require.Error(t, err)
				t.Log(err)
				assert.ErrorIs(t, err, pikkuredis.ErrConnection)
				assert.NotErrorIs(t, err, context.DeadlineExceeded, "the IO timeout, not the caller's context")
			})
		})
	}
}

// Redis's answers, bad input, the caller's context and Close are not
// connection faults.
func TestNotConnectionFaults(t *testing.T) {
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			cs, hs, prefix := open(t)
			ctx := ctxT(t)
			admin := dialURL(t, redisURL)
			defer admin.Close()
			_, err := admin.Do("SET", prefix+":topic:wrong", "a string")
			require.NoError(t, err)
			defer admin.Do("DEL", prefix+":topic:wrong")

			var errs []error
			_, err = hs.GetChannelIDsForTopic(ctx, "wrong")
			assert.ErrorIs(t, err, pikkuredis.ErrWrongType)
			var reply redis.Error
			assert.True(t, errors.As(err, &reply), "Redis's reply is found")
			errs = append(errs, err)
			_, err = cs.GetChannelAndSession(ctx, "missing")
			assert.ErrorIs(t, err, pikkuredis.ErrChannelNotFound)
			errs = append(errs, err)
			_, err = hs.Subscribe(ctx, "", "c1")
			assert.ErrorIs(t, err, pikkuredis.ErrInvalidArgument)
			errs = append(errs, err)
			cancelled, cancel := context.WithCancel(ctx)
			cancel()
			_, err = hs.Subscribe(cancelled, "news", "c1")
			assert.ErrorIs(t, err, context.Canceled)
			errs = append(errs, err)
			require.NoError(t, hs.Close())
			_, err = hs.Subscribe(ctx, "news", "c1")
			assert.ErrorIs(t, err, pikkuredis.ErrClosed)
			errs = append(errs, err)
			for _, e := range errs {
				assert.NotErrorIs(t, e, pikkuredis.ErrConnection)
			}
		})
	}
}

// The options that shape only the connections a store dials itself are
// refused over a caller's pool, by Init and every call, naming them, and
// nothing is written; the others are taken.
func TestDialOnlyOptionsRefusedOverACallersPool(t *testing.T) {
	pool := newPool(t)
	for _, tc := range []struct {
		opt  pikkuredis.Option
		name string
	}{
		{pikkuredis.WithPipelineConns(4), "WithPipelineConns"},
		{pikkuredis.WithoutAutoPipelining(), "WithoutAutoPipelining"},
		{pikkuredis.WithPoolSize(8), "WithPoolSize"},
		{pikkuredis.WithPoolSize(0), "WithPoolSize"},
		{pikkuredis.WithConnectTimeout(time.Second), "WithConnectTimeout"},
		{pikkuredis.WithDialOptions(redis.DialClientName("x")), "WithDialOptions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := newPrefix(t)
			ctx := ctxT(t)
			cs := pikkuredis.NewChannelStore(pool, pikkuredis.WithKeyPrefix(prefix), tc.opt)
			hs := pikkuredis.NewEventHubStore(pool, pikkuredis.WithKeyPrefix(prefix), tc.opt)
			ss := pikkuredis.NewSessionStore(pool, pikkuredis.WithKeyPrefix(prefix), tc.opt)
			errs := map[string]error{
				"ChannelStore.Init":  cs.Init(ctx),
				"EventHubStore.Init": hs.Init(ctx),
				"SessionStore.Init":  ss.Init(ctx),
				"AddChannel":         cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c1"}),
				"SessionStore.Set":   ss.Set(ctx, "u1", map[string]any{"a": 1}),
			}
			_, errs["Subscribe"] = hs.Subscribe(ctx, "news", "c1")
			_, errs["GetChannelIDsForTopic"] = hs.GetChannelIDsForTopic(ctx, "news")
			for call, err := range errs {
				assert.ErrorIs(t, err, pikkuredis.ErrInvalidArgument, call)
				if err != nil {
					assert.Contains(t, err.Error(), tc.name, call)
					assert.Contains(t, err.Error(), "caller's pool", call)
				}
			}
			assertNoKeys(t, prefix)
		})
	}
	t.Run("several, each named once", func(t *testing.T) {
		hs := pikkuredis.NewEventHubStore(pool, pikkuredis.WithPoolSize(2), pikkuredis.WithDialOptions(), pikkuredis.WithPoolSize(3))
		err := hs.Init(ctxT(t))
		require.ErrorIs(t, err, pikkuredis.ErrInvalidArgument)
		assert.Equal(t, 1, strings.Count(err.Error(), "WithPoolSize"), err.Error())
		assert.Contains(t, err.Error(), "WithPoolSize, WithDialOptions")
	})
	t.Run("the others are taken", func(t *testing.T) {
		prefix := newPrefix(t)
		hs := pikkuredis.NewEventHubStore(pool, pikkuredis.WithKeyPrefix(prefix), pikkuredis.WithIOTimeout(time.Second),
			pikkuredis.WithRequireChannel(), pikkuredis.WithRemoveChunkSize(10), pikkuredis.WithChannelTTL(time.Minute),
			pikkuredis.WithSessionTTL(time.Minute), pikkuredis.WithShards(4))
		require.NoError(t, hs.Init(ctxT(t)))
	})
}

// assertNoKeys checks that nothing was written under prefix.
func assertNoKeys(t *testing.T, prefix string) {
	t.Helper()
	admin := dialURL(t, redisURL)
	defer admin.Close()
	keys, err := redis.Strings(admin.Do("KEYS", fmt.Sprintf("%s*", prefix)))
	require.NoError(t, err)
	assert.Empty(t, keys)
}

// A URL the store cannot use is ErrInvalidArgument, for every form, and
// its error never shows the password.
func TestBadURLIsInvalidArgument(t *testing.T) {
	for _, url := range []string{
		"http://localhost:6379",
		"redis://:s3cret@localhost:6379/notadb",
		"redis+cluster://:s3cret@localhost:6379/1",
		"redis+sentinel://:s3cret@localhost:26379",
	} {
		t.Run(url, func(t *testing.T) {
			_, err := pikkuredis.OpenChannelStore(url)
			require.ErrorIs(t, err, pikkuredis.ErrInvalidArgument)
			assert.NotContains(t, err.Error(), "s3cret")
			assert.NotErrorIs(t, err, pikkuredis.ErrConnection)
		})
	}
	_, err := pikkuredis.DialURLContext(context.Background(), "http://localhost:6379")
	assert.ErrorIs(t, err, pikkuredis.ErrInvalidArgument)
}

// DialURLContext, for a caller's pool, fails as a store's dial does.
func TestDialURLContextSaysConnectToRedis(t *testing.T) {
	srv, _ := tlsRedis(t)
	_, err := pikkuredis.DialURLContext(ctxT(t), strings.Replace(srv.TLSURL, "rediss://", "redis://", 1))
	require.ErrorIs(t, err, pikkuredis.ErrConnection)
	assert.Contains(t, err.Error(), "connect to redis: PING ")
	assert.Contains(t, err.Error(), "rediss://")
	rc, err := pikkuredis.DialURLContext(ctxT(t), ownRedis(t).URL)
	require.NoError(t, err)
	rc.Close()
}

// A caller's pool dials with the caller's code; its failure reads as the
// store's own dials do.
func TestCallersPoolDialFailureSaysConnectToRedis(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	pool := &redis.Pool{Dial: func() (redis.Conn, error) { return redis.Dial("tcp", addr) }}
	defer pool.Close()
	hs := pikkuredis.NewEventHubStore(pool)
	_, err = hs.Subscribe(ctxT(t), "news", "c1")
	require.ErrorIs(t, err, pikkuredis.ErrConnection)
	assert.Contains(t, err.Error(), "connect to redis: dial tcp "+addr)
}
