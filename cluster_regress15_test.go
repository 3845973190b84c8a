package pikkuredis_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mna/redisc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pikkujs/pikkuredis"
	"github.com/pikkujs/pikkuredis/internal/redisserver"
)

// Breaker probe for issue 15: a cluster master that cannot be reached
// (killed, no replica, node timeout long enough that the cluster has not
// marked it failed yet) is a connection fault on every backend: the call
// could not be carried to Redis. Over a pooled cluster redisc sends a
// call whose master it cannot dial to another node, which answers MOVED,
// and the store ended with "still redirected after N tries ... MOVED",
// which matched redis.Error (Redis's answer) and not ErrConnection; it
// now says "connect to redis: the master of slot N cannot be reached".
func TestRegress15ClusterMasterDownIsErrConnection(t *testing.T) {
	needRedis(t)
	c, err := redisserver.StartCluster(redisserver.ClusterConfig{ReplicasPerMaster: -1, NodeTimeout: 60 * time.Second})
	if err != nil {
		failStart(t, err)
	}
	t.Cleanup(c.Close)
	prefix := "{regress15}"
	m, err := c.MasterOf(redisc.Slot(prefix))
	require.NoError(t, err)

	stores := map[string]func() *pikkuredis.EventHubStore{
		"caller's redisc.Cluster": func() *pikkuredis.EventHubStore {
			return pikkuredis.NewEventHubStore(callersCluster(t, c.URL()), pikkuredis.WithKeyPrefix(prefix))
		},
		"redis+cluster:// pooled": func() *pikkuredis.EventHubStore {
			hs, err := pikkuredis.OpenEventHubStore(c.URL(), pikkuredis.WithKeyPrefix(prefix), pikkuredis.WithoutAutoPipelining())
			require.NoError(t, err)
			return hs
		},
		"redis+cluster:// auto-pipelined": func() *pikkuredis.EventHubStore {
			hs, err := pikkuredis.OpenEventHubStore(c.URL(), pikkuredis.WithKeyPrefix(prefix))
			require.NoError(t, err)
			return hs
		},
	}
	all := map[string]*pikkuredis.EventHubStore{}
	for name, open := range stores {
		hs := open()
		t.Cleanup(func() { hs.Close() })
		_, err := hs.Subscribe(ctxT(t), "news", "c1")
		require.NoError(t, err, name)
		all[name] = hs
	}
	m.Kill()
	for name, hs := range all {
		t.Run(name, func(t *testing.T) {
			for i := 0; i < 3; i++ { // the first call may meet a pooled connection's EOF
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				_, err := hs.GetChannelIDsForTopic(ctx, "news")
				require.Error(t, err)
				t.Log(err)
				if ctx.Err() == nil {
					assert.ErrorIs(t, err, pikkuredis.ErrConnection)
					// errors.go: a dial's fault reads "connect to redis: ...",
					// a lost connection "redis connection lost: ...".
					assert.Regexp(t, "connect to redis: |redis connection (lost|retired)", err.Error())
				}
				cancel()
			}
		})
	}
}

// After 9010780 a dial refused for good (a wrong password) reads
// "connect to redis: ..." and is not ErrConnection, since every new dial
// fails the same way. On a cluster it is ErrConnection all the same:
// redisc's "all nodes failed" error lists each node's error as text, so
// the WRONGPASS reply is lost from the chain.
func TestRegress15ClusterWrongPasswordIsRefusedForGood(t *testing.T) {
	needRedis(t)
	c, err := redisserver.StartCluster(redisserver.ClusterConfig{ReplicasPerMaster: -1})
	if err != nil {
		failStart(t, err)
	}
	t.Cleanup(c.Close)
	for _, addr := range c.Addrs() {
		admin := dialURL(t, "redis://"+addr)
		_, err := admin.Do("CONFIG", "SET", "requirepass", "right")
		require.NoError(t, err)
		admin.Close()
	}
	url := strings.Replace(c.URL(), "redis+cluster://", "redis+cluster://:wrong@", 1)
	for mode, opts := range dialModes {
		t.Run(mode, func(t *testing.T) {
			hs, err := pikkuredis.OpenEventHubStore(url, append(opts, pikkuredis.WithKeyPrefix("{r15}"))...)
			require.NoError(t, err)
			defer hs.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err = hs.Subscribe(ctx, "news", "c1")
			require.Error(t, err)
			t.Log(err)
			assert.Contains(t, err.Error(), "WRONGPASS")
			assert.NotErrorIs(t, err, pikkuredis.ErrConnection, "refused for good, as on one server")
		})
	}
}
