package pikkuredis_test

import (
	"fmt"
	"sort"
	"sync"
	"testing"

	"github.com/gomodule/redigo/redis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pikkujs/pikkuredis"
)

// orphanedByTypeScript removes channels as @pikku/redis 0.12.3's
// removeChannels does: the hash and the subs set, not the ids in the
// topic sets.
func orphanedByTypeScript(t *testing.T, c redis.Conn, k keyLayout, ids ...string) {
	t.Helper()
	for _, id := range ids {
		_, err := c.Do("DEL", k.channel(id), k.subs(id))
		require.NoError(t, err)
	}
}

func sortSubs(s []pikkuredis.Subscription) []pikkuredis.Subscription {
	sort.Slice(s, func(i, j int) bool {
		if s[i].Topic != s[j].Topic {
			return s[i].Topic < s[j].Topic
		}
		return s[i].ChannelID < s[j].ChannelID
	})
	return s
}

// repairAll calls Repair until Done and adds up the reports.
func repairAll(t *testing.T, hs *pikkuredis.EventHubStore, opts pikkuredis.RepairOptions) (total pikkuredis.RepairReport, calls int) {
	t.Helper()
	for {
		r, err := hs.Repair(ctxT(t), opts)
		require.NoError(t, err)
		calls++
		if opts.MaxSets > 0 {
			// Sets are counted per SCAN page; a page of COUNT MaxSets
			// may hold a few more.
			assert.LessOrEqual(t, r.SetsExamined, 3*opts.MaxSets, "bounded work per call")
		}
		total.SetsExamined += r.SetsExamined
		total.MembersChecked += r.MembersChecked
		total.Found += r.Found
		total.Removed += r.Removed
		total.Orphans = append(total.Orphans, r.Orphans...)
		if r.Done {
			require.Equal(t, "0", r.Cursor)
			return total, calls
		}
		opts.Cursor = r.Cursor
		require.Less(t, calls, 1000, "Repair never finishes")
	}
}

// Repair removes the ids @pikku/redis leaves in topic sets and the
// subscriptions of channels that were never added; a dry run reports the
// same and writes nothing; live channels keep every subscription.
func TestRepairRemovesOrphanedSubscriptions(t *testing.T) {
	for name, open := range layoutBackends() {
		t.Run(name, func(t *testing.T) { testRepairRemovesOrphans(t, open) })
	}
}

func testRepairRemovesOrphans(t *testing.T, open storesFunc) {
	cs, hs, k := open(t)
	prefix := k.prefix
	ctx := ctxT(t)
	c := dialRaw(t)
	defer c.Close()
	ids := populateWith(t, cs, hs, 30, 2) // c0..c29 in t0..t4
	orphanedByTypeScript(t, c, k, ids[:10]...)
	_, err := hs.Subscribe(ctx, "t9", "never-added") // both directions, no hash
	require.NoError(t, err)
	want := []pikkuredis.Subscription{{Topic: "t9", ChannelID: "never-added"}}
	for i, id := range ids[:10] {
		for j := 0; j < 2; j++ {
			want = append(want, pikkuredis.Subscription{Topic: fmt.Sprintf("t%d", (i+j)%5), ChannelID: id})
		}
	}

	_, err = hs.Repair(ctx, pikkuredis.RepairOptions{DryRun: true})
	assert.ErrorIs(t, err, pikkuredis.ErrInvalidArgument, "no opt-in")
	assert.ErrorContains(t, err, "ChannelsKeptByChannelStore")

	before := contents(t, c, prefix)
	dry, _ := repairAll(t, hs, pikkuredis.RepairOptions{ChannelsKeptByChannelStore: true, DryRun: true})
	assert.Equal(t, before, contents(t, c, prefix), "a dry run writes nothing")
	assert.Zero(t, dry.Removed)
	// never-added is in both of its sets, so a dry run sees it twice.
	assert.Equal(t, len(want)+1, dry.Found)

	got, calls := repairAll(t, hs, pikkuredis.RepairOptions{ChannelsKeptByChannelStore: true, MaxSets: 2})
	assert.Greater(t, calls, 2, "work is cut into calls")
	assert.Equal(t, len(want), got.Found)
	assert.Equal(t, len(want), got.Removed)
	assert.Equal(t, sortSubs(want), sortSubs(got.Orphans))
	// 5 topic sets and 20 live subs sets, and never-added's topic
	// or subs set: the repair of either removes the other.
	// (SCAN may also list a key twice while keys are deleted.)
	assert.GreaterOrEqual(t, got.SetsExamined, 26)

	for i := 0; i < 5; i++ {
		members, err := hs.GetChannelIDsForTopic(ctx, fmt.Sprintf("t%d", i))
		require.NoError(t, err)
		for _, id := range members {
			_, err := cs.GetChannelAndSession(ctx, id)
			assert.NoError(t, err, "topic t%d holds %s, which does not exist", i, id)
		}
		assert.Len(t, members, 8, "t%d keeps its 8 live channels", i)
	}
	assertIndexesAgree(t, prefix)
	again, _ := repairAll(t, hs, pikkuredis.RepairOptions{ChannelsKeptByChannelStore: true})
	assert.Zero(t, again.Found, "nothing left to repair")

	require.NoError(t, cs.RemoveChannels(ctx, ids))
	assert.Empty(t, scanKeys(t, c, prefix))
}

// Channels added and subscribed while Repair runs are never touched: each
// member is checked inside the script.
func TestRepairNeverTouchesLiveChannels(t *testing.T) {
	forLayouts(t, testRepairNeverTouchesLiveChannels)
}

func testRepairNeverTouchesLiveChannels(t *testing.T, lc layoutCase) {
	cs, hs, k := lc.stores(t)
	prefix := k.prefix
	ctx := ctxT(t)
	c := dialRaw(t)
	defer c.Close()
	orphans := populateWith(t, cs, hs, 50, 2)
	orphanedByTypeScript(t, c, k, orphans...)

	var wg sync.WaitGroup
	writersDone := make(chan struct{})
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 150; i++ {
				id := fmt.Sprintf("live-%d-%d", g, i)
				if !assert.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id})) {
					return
				}
				for j := 0; j < 5; j++ {
					_, err := hs.Subscribe(ctx, fmt.Sprintf("t%d", j), id)
					if !assert.NoError(t, err) {
						return
					}
				}
			}
		}()
	}
	go func() { wg.Wait(); close(writersDone) }()
	total, rounds := 0, 0
	for running := true; running || rounds == 0; rounds++ {
		select {
		case <-writersDone:
			running = false
		default:
		}
		r, _ := repairAll(t, hs, pikkuredis.RepairOptions{ChannelsKeptByChannelStore: true, MaxSets: 50})
		total += r.Removed
		for _, o := range r.Orphans {
			assert.NotContains(t, o.ChannelID, "live-", "Repair removed a live channel's subscription")
		}
	}
	t.Logf("%d repair rounds while channels were added", rounds)
	assert.Equal(t, 100, total, "every orphaned subscription, once")
	for j := 0; j < 5; j++ {
		members, err := hs.GetChannelIDsForTopic(ctx, fmt.Sprintf("t%d", j))
		require.NoError(t, err)
		for _, id := range members {
			assert.Contains(t, id, "live-", "t%d still holds orphan %s", j, id)
		}
	}
	assertIndexesAgree(t, prefix)
}

// A prefix holding glob characters repairs only its own keys.
func TestRepairStaysInItsPrefix(t *testing.T) { forLayouts(t, testRepairStaysInItsPrefix) }

func testRepairStaysInItsPrefix(t *testing.T, lc layoutCase) {
	base := newPrefix(t)
	mine, neighbour := base+"*", base+"x"
	open := func(prefix string) (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore) {
		cs, err := pikkuredis.OpenChannelStore(redisURL, lc.opts(pikkuredis.WithKeyPrefix(prefix))...)
		require.NoError(t, err)
		hs, err := pikkuredis.OpenEventHubStore(redisURL, lc.opts(pikkuredis.WithKeyPrefix(prefix))...)
		require.NoError(t, err)
		t.Cleanup(func() { cs.Close(); hs.Close() })
		return cs, hs
	}
	_, hs := open(mine)
	_, nhs := open(neighbour)
	ctx := ctxT(t)
	c := dialRaw(t)
	defer c.Close()
	for _, s := range []*pikkuredis.EventHubStore{hs, nhs} {
		_, err := s.Subscribe(ctx, "news", "never-added")
		require.NoError(t, err)
	}
	before := contents(t, c, neighbour)
	r, _ := repairAll(t, hs, pikkuredis.RepairOptions{ChannelsKeptByChannelStore: true})
	assert.Equal(t, 1, r.Removed)
	assert.Equal(t, before, contents(t, c, neighbour), "the neighbour's keys are untouched")
}

// With WithRequireChannel, Subscribe refuses a channel that does not
// exist and writes nothing.
func TestSubscribeRequireChannel(t *testing.T) {
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			cs, hs, prefix := open(t, pikkuredis.WithRequireChannel())
			ctx := ctxT(t)
			c := dialRaw(t)
			defer c.Close()

			ok, err := hs.Subscribe(ctx, "news", "ghost")
			assert.ErrorIs(t, err, pikkuredis.ErrChannelNotFound)
			assert.ErrorContains(t, err, "ghost")
			assert.False(t, ok)
			assert.Empty(t, scanKeys(t, c, prefix), "nothing written")

			require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c1"}))
			ok, err = hs.Subscribe(ctx, "news", "c1")
			require.NoError(t, err)
			assert.True(t, ok)
			ok, err = hs.Subscribe(ctx, "news", "c1")
			require.NoError(t, err)
			assert.True(t, ok, "idempotent")

			require.NoError(t, cs.RemoveChannels(ctx, []string{"c1"}))
			_, err = hs.Subscribe(ctx, "news", "c1")
			assert.ErrorIs(t, err, pikkuredis.ErrChannelNotFound, "refused once removed")
			assert.Empty(t, scanKeys(t, c, prefix))

			_, err = hs.Subscribe(ctx, "", "c1")
			assert.ErrorIs(t, err, pikkuredis.ErrInvalidArgument)
		})
	}
}

// Subscribe racing RemoveChannels of the same channels leaves no orphan
// with WithRequireChannel.
func TestSubscribeRequireChannelClosesTheRemoveRace(t *testing.T) {
	cs, hs, prefix := stores(t, pikkuredis.WithRequireChannel())
	ctx := ctxT(t)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				id := fmt.Sprintf("c%d-%d", g, i)
				if !assert.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id})) {
					return
				}
				if !assert.NoError(t, cs.RemoveChannels(ctx, []string{id})) {
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				_, err := hs.Subscribe(ctx, "news", fmt.Sprintf("c%d-%d", g, i))
				if err != nil && !assert.ErrorIs(t, err, pikkuredis.ErrChannelNotFound) {
					return
				}
			}
		}()
	}
	wg.Wait()
	c := dialRaw(t)
	defer c.Close()
	assert.Empty(t, scanKeys(t, c, prefix), "no id outlived its channel in a topic set")
}
