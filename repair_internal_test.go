package pikkuredis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/mna/redisc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pikkujs/pikkuredis/internal/redisserver"
)

// twoMasters stands in for a cluster transport, over two real servers:
// a call goes to the server of its first key's slot (the first server
// below slot 8192), and masters lists both, as a cluster transport lists
// its masters. It routes what the sharded stores and Repair send, so that
// Repair's walk over several masters is tested before a real cluster is.
type twoMasters struct{ servers []transport }

func (m twoMasters) do(ctx context.Context, cmd string, args []any) (any, error) {
	key := args[0]
	if cmd == "EVALSHA" || cmd == "EVAL" {
		key = args[2]
	}
	s := m.servers[1]
	if redisc.Slot(key.(string)) < redisc.HashSlots/2 {
		s = m.servers[0]
	}
	return s.do(ctx, cmd, args)
}

func (m twoMasters) tries() int { return 1 }

func (m twoMasters) close() error {
	return errors.Join(m.servers[0].close(), m.servers[1].close())
}

func (m twoMasters) masters(context.Context) ([]transport, error) { return m.servers, nil }

// startTwoMasters starts two redis-servers and returns a transport over
// them and a plain connection to each.
func startTwoMasters(t *testing.T) (twoMasters, []redis.Conn) {
	t.Helper()
	var m twoMasters
	var admins []redis.Conn
	for i := 0; i < 2; i++ {
		SkipShort(t, "Redis")
		srv, err := redisserver.Start()
		require.NoError(t, err, "this test starts redis-servers of its own")
		t.Cleanup(srv.Stop)
		pool := &redis.Pool{MaxIdle: 4, DialContext: func(ctx context.Context) (redis.Conn, error) {
			return redis.DialURLContext(ctx, srv.URL, redis.DialReadTimeout(10*time.Second))
		}}
		m.servers = append(m.servers, newPoolTransport(pool, pool, nil))
		admin, err := redis.DialURL(srv.URL)
		require.NoError(t, err)
		t.Cleanup(func() { admin.Close() })
		admins = append(admins, admin)
	}
	return m, admins
}

// On several masters, sharded: Init loads the scripts on each; channels
// land on both; Repair walks both masters over several calls, its cursor
// naming the master, and finds every orphan. A standard layout whose
// prefix is not a hash tag is refused there.
func TestRepairWalksEveryMaster(t *testing.T) {
	m, admins := startTwoMasters(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	refused := newConn(m, newConfig([]Option{WithKeyPrefix("pikku")}))
	assert.ErrorContains(t, refused.usable(), "is not a hash tag")
	assert.NoError(t, newConn(m, newConfig([]Option{WithKeyPrefix("{pikku}")})).usable())

	c := newConn(m, newConfig([]Option{WithKeyPrefix("pikku"), WithShards(16)}))
	defer c.close()
	cs, hs := &ChannelStore{c: c}, &EventHubStore{c: c}
	require.NoError(t, cs.Init(ctx))
	for i, admin := range admins {
		exists, err := redis.Ints(admin.Do("SCRIPT", "EXISTS", removeChannelsScript.sha, getChannelWithSessionScript.sha))
		require.NoError(t, err)
		assert.Equal(t, []int{1, 1}, exists, "Init loaded the scripts on master %d", i)
	}

	var want []Subscription
	for i := 0; i < 80; i++ {
		id := fmt.Sprint("c", i)
		require.NoError(t, cs.AddChannel(ctx, Channel{ChannelID: id}))
		for j := 0; j < 2; j++ {
			_, err := hs.Subscribe(ctx, fmt.Sprint("t", (i+j)%5), id)
			require.NoError(t, err)
		}
		if i%4 == 0 { // orphaned as @pikku/redis leaves it: the hash gone
			_, err := c.do(ctx, "DEL", c.keysOf(id).channel(id))
			require.NoError(t, err)
			for j := 0; j < 2; j++ {
				want = append(want, Subscription{Topic: fmt.Sprint("t", (i+j)%5), ChannelID: id})
			}
		}
	}
	for i, admin := range admins {
		n, err := redis.Int(admin.Do("DBSIZE"))
		require.NoError(t, err)
		assert.Greater(t, n, 20, "master %d holds its share of the keys", i)
	}

	opts := RepairOptions{ChannelsKeptByChannelStore: true, MaxSets: 5}
	var found []Subscription
	var cursors []string
	for calls := 0; ; calls++ {
		require.Less(t, calls, 200, "Repair never finishes")
		r, err := hs.Repair(ctx, opts)
		require.NoError(t, err)
		found = append(found, r.Orphans...)
		if r.Done {
			assert.Equal(t, "0", r.Cursor)
			break
		}
		cursors = append(cursors, r.Cursor)
		opts.Cursor = r.Cursor
	}
	masters := map[string]bool{}
	for _, cur := range cursors {
		m, _, ok := strings.Cut(cur, ":")
		require.True(t, ok, "cursor %q names its master", cur)
		masters[m] = true
	}
	assert.Equal(t, map[string]bool{"0": true, "1": true}, masters, "calls resumed on each master: %v", cursors)
	assert.ElementsMatch(t, want, found)
	for j := 0; j < 5; j++ {
		ids, err := hs.GetChannelIDsForTopic(ctx, fmt.Sprint("t", j))
		require.NoError(t, err)
		assert.Len(t, ids, 24, "t%d keeps its live channels only", j)
		for _, id := range ids {
			_, err := cs.GetChannel(ctx, id)
			assert.NoError(t, err, "t%d holds %s", j, id)
		}
	}
}
