package pikkuredis_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pikkujs/pikkuredis"
)

// A value over proto-max-bulk-len makes Redis close the connection, often
// before its error reply can be read. The store cannot tell that from a
// network fault under a large value, so the error stays ErrConnection
// (calling again is safe, and fails the same way), but it says which
// limits close the connection, so that a caller sees why retrying does
// not help. (The breaker's first version asked for "not ErrConnection";
// a network fault would then look final.)
func TestRegress15OversizedValueSaysWhy(t *testing.T) {
	srv := ownRedis(t)
	admin := dialURL(t, srv.URL)
	defer admin.Close()
	_, err := admin.Do("CONFIG", "SET", "proto-max-bulk-len", "1mb")
	require.NoError(t, err)
	big := strings.Repeat("x", 2<<20)
	for mode, opts := range dialModes {
		t.Run(mode, func(t *testing.T) {
			cs, err := pikkuredis.OpenChannelStore(srv.URL, append(opts, pikkuredis.WithKeyPrefix(randomPrefix(t)))...)
			require.NoError(t, err)
			defer cs.Close()
			ctx := ctxT(t)
			for i := 0; i < 2; i++ {
				err = cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c1", ChannelName: "chat", OpeningData: map[string]string{"blob": big}})
				require.Error(t, err)
				t.Log(err)
				if errors.Is(err, pikkuredis.ErrConnection) {
					assert.Contains(t, err.Error(), "proto-max-bulk-len", "try %d: the error says why", i+1)
				} else {
					assert.Contains(t, err.Error(), "invalid bulk length", "try %d: Redis's own reply", i+1)
				}
			}
			_, err = cs.GetChannelAndSession(ctx, "c1")
			assert.ErrorIs(t, err, pikkuredis.ErrChannelNotFound, "nothing was written")
		})
	}
}

// A call on a lane whose caller leaves is the context's error, never
// ErrConnection.
func TestRegress15CallerLeavesIsNotErrConnection(t *testing.T) {
	srv := ownRedis(t, "--enable-debug-command", "yes")
	admin := dialURL(t, srv.URL)
	defer admin.Close()
	for mode, opts := range dialModes {
		t.Run(mode, func(t *testing.T) {
			hs, err := pikkuredis.OpenEventHubStore(srv.URL, append(opts, pikkuredis.WithKeyPrefix(randomPrefix(t)))...)
			require.NoError(t, err)
			defer hs.Close()
			_, err = hs.Subscribe(ctxT(t), "news", "c1")
			require.NoError(t, err)
			sleeping := make(chan error, 1)
			go func() { _, err := redis.DoWithTimeout(admin, 5*time.Second, "DEBUG", "SLEEP", "0.5"); sleeping <- err }()
			time.Sleep(50 * time.Millisecond)
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(100*time.Millisecond, cancel)
			_, err = hs.GetChannelIDsForTopic(ctx, "news")
			require.NoError(t, <-sleeping)
			require.Error(t, err)
			t.Log(err)
			assert.ErrorIs(t, err, context.Canceled)
			assert.NotErrorIs(t, err, pikkuredis.ErrConnection)
		})
	}
}

// Redis's refusals of a call are its answer, on every dial mode: NOPERM,
// OOM, BUSY (a script of another client running past
// busy-reply-threshold), a script's error.
func TestRegress15RefusalsAreNotErrConnection(t *testing.T) {
	srv := ownRedis(t)
	admin := dialURL(t, srv.URL)
	defer admin.Close()
	_, err := admin.Do("ACL", "SETUSER", "ro", "on", ">pw", "~*", "+@read", "+ping", "+hello", "+select")
	require.NoError(t, err)
	roURL := "redis://ro:pw@" + srv.Addr
	check := func(t *testing.T, err error, want string) {
		t.Helper()
		require.Error(t, err)
		t.Log(err)
		assert.Contains(t, err.Error(), want)
		assert.NotErrorIs(t, err, pikkuredis.ErrConnection)
	}
	for mode, opts := range dialModes {
		t.Run(mode, func(t *testing.T) {
			prefix := randomPrefix(t)
			ro, err := pikkuredis.OpenEventHubStore(roURL, append(opts, pikkuredis.WithKeyPrefix(prefix))...)
			require.NoError(t, err)
			defer ro.Close()
			_, err = ro.Subscribe(ctxT(t), "news", "c1")
			check(t, err, "NOPERM")

			hs, err := pikkuredis.OpenEventHubStore(srv.URL, append(opts, pikkuredis.WithKeyPrefix(prefix))...)
			require.NoError(t, err)
			defer hs.Close()
			require.NoError(t, hs.Init(ctxT(t)))
			_, err = admin.Do("CONFIG", "SET", "maxmemory", "1")
			require.NoError(t, err)
			_, err = hs.Subscribe(ctxT(t), "news", "c1")
			_, err2 := admin.Do("CONFIG", "SET", "maxmemory", "0")
			require.NoError(t, err2)
			check(t, err, "OOM")

			_, err = admin.Do("CONFIG", "SET", "busy-reply-threshold", "100")
			require.NoError(t, err)
			busy := dialURL(t, srv.URL)
			defer busy.Close()
			done := make(chan struct{})
			go func() {
				defer close(done)
				redis.DoWithTimeout(busy, 10*time.Second, "EVAL", "local function now() local t = redis.call('TIME') return t[1] * 1000000 + t[2] end local t = now() + 1000000 while now() < t do end return 1", 0) //nolint:errcheck
			}()
			time.Sleep(300 * time.Millisecond)
			_, err = hs.GetChannelIDsForTopic(ctxT(t), "news")
			<-done
			check(t, err, "BUSY")
		})
	}
}
