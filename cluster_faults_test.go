package pikkuredis_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mna/redisc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pikkujs/pikkuredis"
	"github.com/pikkujs/pikkuredis/internal/redisserver"
)

// clusterLoad is a 64-goroutine mix of every store call on a cluster,
// each call with its own deadline, recording when calls fail and
// succeed, and any call that returned later than its deadline allows.
type clusterLoad struct {
	cs *pikkuredis.ChannelStore
	hs *pikkuredis.EventHubStore

	stop    chan struct{}
	wg      sync.WaitGroup
	ok      atomic.Int64
	failed  atomic.Int64
	mu      sync.Mutex
	lastErr time.Time // when the last call failed
	firstOK time.Time // the first success after the last failure
	sample  error     // an error seen, for the log
	late    []string  // calls that outlived their deadline by more than lateSlack
}

const (
	loadDeadline = 500 * time.Millisecond
	// lateSlack is how much later than its deadline a call may return:
	// the scheduling of 64 goroutines on 2 cores under -race (seen up to
	// 330 ms at a load average of 7), not any wait of the store's.
	lateSlack = 500 * time.Millisecond
)

func startClusterLoad(t *testing.T, cs *pikkuredis.ChannelStore, hs *pikkuredis.EventHubStore, goroutines int) *clusterLoad {
	l := &clusterLoad{cs: cs, hs: hs, stop: make(chan struct{})}
	for g := 0; g < goroutines; g++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				l.one(g, i)
			}
		}()
	}
	return l
}

// one is one call of goroutine g's i-th step: channels and topics of its
// own, so that the invariants are checked on a busy keyspace.
func (l *clusterLoad) one(g, i int) {
	ctx, cancel := context.WithTimeout(context.Background(), loadDeadline)
	defer cancel()
	id := fmt.Sprintf("g%d-c%d", g, i%8)
	topic := fmt.Sprintf("t%d", i%5)
	start := time.Now()
	var err error
	switch i % 5 {
	case 0:
		err = l.cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id, ChannelName: "x"})
	case 1:
		_, err = l.hs.Subscribe(ctx, topic, id)
	case 2:
		_, err = l.cs.GetChannelAndSession(ctx, id)
		if errors.Is(err, pikkuredis.ErrChannelNotFound) {
			err = nil
		}
	case 3:
		_, err = l.hs.Unsubscribe(ctx, topic, id)
	case 4:
		err = l.cs.RemoveChannels(ctx, []string{id})
	}
	took := time.Since(start)
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if took > loadDeadline+lateSlack {
		l.late = append(l.late, fmt.Sprintf("call %d of goroutine %d took %v: %v", i%5, g, took, err))
	}
	if err != nil {
		l.failed.Add(1)
		l.lastErr, l.firstOK = now, time.Time{}
		l.sample = err
		return
	}
	l.ok.Add(1)
	if l.firstOK.IsZero() {
		l.firstOK = now
	}
}

func (l *clusterLoad) halt() {
	close(l.stop)
	l.wg.Wait()
}

// window returns when calls last failed, and the first success after that.
func (l *clusterLoad) window() (lastErr, firstOK time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastErr, l.firstOK
}

// TestClusterFailover stops the master that holds the store's keys under
// a 64-goroutine load, by SIGKILL and by SIGSTOP (a hung node, which
// refuses nothing and answers nothing): its replica takes over, calls
// fail with errors or succeed but never outlive their deadline, and
// within 10 s of the promotion every call succeeds again through the same
// store objects, with both index directions in agreement afterwards.
func TestClusterFailover(t *testing.T) {
	needRedis(t) // starts a cluster and fails a master over
	for _, how := range []string{"SIGKILL", "SIGSTOP"} {
		for _, mode := range []string{"auto-pipelined", "pooled"} {
			t.Run(how+"/"+mode, func(t *testing.T) { testClusterFailover(t, how, mode) })
		}
	}
}

func testClusterFailover(t *testing.T, how, mode string) {
	cl := ownCluster(t)
	prefix := "{fo}"
	opts := []pikkuredis.Option{pikkuredis.WithKeyPrefix(prefix)}
	if mode == "pooled" {
		opts = append(opts, pikkuredis.WithoutAutoPipelining())
	}
	cs, hs := openBoth(t, cl.URL(), opts...)
	ctx := ctxT(t)
	require.NoError(t, cs.Init(ctx))
	old, err := cl.MasterOf(redisc.Slot(prefix))
	require.NoError(t, err)

	load := startClusterLoad(t, cs, hs, 64)
	time.Sleep(300 * time.Millisecond)
	if how == "SIGKILL" {
		old.Kill()
	} else {
		require.NoError(t, cl.Pause(old))
		t.Cleanup(func() { cl.Resume(old) })
	}
	stopped := time.Now()
	promoted, err := cl.WaitFailover(old, 30*time.Second)
	require.NoError(t, err)
	promotedAt := time.Now()

	// Calls succeed again within 10 s of the promotion: wait until none
	// has failed for a while, then see when that began.
	deadline := promotedAt.Add(15 * time.Second)
	for time.Now().Before(deadline) {
		lastErr, _ := load.window()
		if time.Since(lastErr) > 2*time.Second {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	load.halt()
	lastErr, firstOK := load.window()
	recovered := firstOK.Sub(promotedAt)
	if lastErr.Before(promotedAt) {
		recovered = 0
	}
	t.Logf("%s of %s: promotion %v after the stop; calls succeeded again %v after the promotion (%d ok, %d failed; e.g. %v)",
		how, old.Addr, promotedAt.Sub(stopped).Round(time.Millisecond), recovered.Round(time.Millisecond), load.ok.Load(), load.failed.Load(), load.sample)
	assert.False(t, firstOK.IsZero(), "no call succeeded after the last failure")
	assert.LessOrEqual(t, recovered, 10*time.Second, "calls kept failing more than 10 s after the promotion")
	assert.Empty(t, load.late, "calls that outlived their deadline")

	// The same store objects work, and the indexes agree on the new master.
	_, err = hs.Subscribe(ctx, "after", "g0-c0")
	require.NoError(t, err)
	c := dialURL(t, promoted.URL)
	defer c.Close()
	assertIndexesAgreeOn(t, c, prefix)
}

// TestClusterResharding moves the slot that holds the store's keys to
// another master, a few keys at a time, under load: calls follow ASK while
// the slot is split and MOVED once it has gone, and no acknowledged write
// is lost.
func TestClusterResharding(t *testing.T) {
	needRedis(t) // starts a cluster and moves a slot
	for _, mode := range []string{"auto-pipelined", "pooled", "caller's cluster"} {
		t.Run(mode, func(t *testing.T) { testClusterResharding(t, mode) })
	}
}

func testClusterResharding(t *testing.T, mode string) {
	cl := ownCluster(t)
	prefix := "{rs}"
	opts := []pikkuredis.Option{pikkuredis.WithKeyPrefix(prefix)}
	var cs *pikkuredis.ChannelStore
	var hs *pikkuredis.EventHubStore
	switch mode {
	case "pooled":
		cs, hs = openBoth(t, cl.URL(), append(opts, pikkuredis.WithoutAutoPipelining())...)
	case "caller's cluster":
		rc := callersCluster(t, cl.URL())
		cs, hs = pikkuredis.NewChannelStore(rc, opts...), pikkuredis.NewEventHubStore(rc, opts...)
	default:
		cs, hs = openBoth(t, cl.URL(), opts...)
	}
	ctx := ctxT(t)
	require.NoError(t, cs.Init(ctx))
	slot := redisc.Slot(prefix)
	from, err := cl.MasterOf(slot)
	require.NoError(t, err)
	masters, err := cl.Masters()
	require.NoError(t, err)
	var to *redisserver.Server
	for _, m := range masters {
		if m.Addr != from.Addr {
			to = m
			break
		}
	}
	// Keys enough that the move takes many batches.
	for i := 0; i < 200; i++ {
		require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: fmt.Sprintf("pre%d", i), ChannelName: "x"}))
		_, err := hs.Subscribe(ctx, "pre", fmt.Sprintf("pre%d", i))
		require.NoError(t, err)
	}

	// 16 writers add and subscribe channels of their own, and remember
	// what Redis acknowledged.
	var (
		mu     sync.Mutex
		acked  []string
		failed []error
		stop   = make(chan struct{})
		wg     sync.WaitGroup
	)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("w%d-%d", g, i)
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				err := cs.AddChannel(cctx, pikkuredis.Channel{ChannelID: id, ChannelName: "x"})
				if err == nil {
					_, err = hs.Subscribe(cctx, "live", id)
				}
				cancel()
				mu.Lock()
				if err != nil {
					failed = append(failed, err)
				} else {
					acked = append(acked, id)
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	move, err := cl.BeginMove(slot, to)
	require.NoError(t, err)
	// Batches of 200 keys: on an idle machine the 16 writers add keys
	// faster than batches of 20 move them, and the move then outlasts
	// the writers' 5 s deadlines (their multi-key calls get TRYAGAIN for
	// as long as the slot is split), which is no fault of the store.
	for {
		n, err := move.MigrateKeys(200)
		require.NoError(t, err)
		if n == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond) // calls meet the slot split meanwhile
	}
	require.NoError(t, move.Finish())
	time.Sleep(200 * time.Millisecond) // calls meet MOVED
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d channels added and subscribed during the move of slot %d from %s to %s; %d calls failed", len(acked), slot, from.Addr, to.Addr, len(failed))
	for _, err := range failed[:min(len(failed), 5)] {
		t.Errorf("a call failed during the move: %v", err)
	}
	require.NotEmpty(t, acked)
	live, err := hs.GetChannelIDsForTopic(ctx, "live")
	require.NoError(t, err)
	sort.Strings(live)
	sort.Strings(acked)
	assert.Equal(t, acked, live, "every acknowledged subscription, and nothing else")
	pre, err := hs.GetChannelIDsForTopic(ctx, "pre")
	require.NoError(t, err)
	assert.Len(t, pre, 200)
	for _, id := range []string{"pre0", "pre199", acked[0], acked[len(acked)-1]} {
		_, err := cs.GetChannelAndSession(ctx, id)
		assert.NoError(t, err, id)
	}
	c := dialURL(t, to.URL)
	defer c.Close()
	assertIndexesAgreeOn(t, c, prefix)
}
