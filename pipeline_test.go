package pikkuredis_test

import (
	"context"
	"fmt"
	"runtime"
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

// Tests of auto-pipelining: many callers share a connection, and every
// reply must still reach the caller who asked, whatever happens to the
// others or to the connection.

// openOn opens both stores on url, auto-pipelined, with opts.
func openOn(t *testing.T, url string, opts ...pikkuredis.Option) (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore) {
	t.Helper()
	cs, err := pikkuredis.OpenChannelStore(url, opts...)
	require.NoError(t, err)
	hs, err := pikkuredis.OpenEventHubStore(url, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { cs.Close(); hs.Close() })
	return cs, hs
}

// 64 callers on one connection, each reading back what it wrote: a reply
// handed to the wrong caller shows up as another channel's data.
func TestPipelinedRepliesReachTheirCallers(t *testing.T) {
	for _, conns := range []int{1, 4} {
		t.Run(fmt.Sprintf("conns=%d", conns), func(t *testing.T) {
			cs, hs, _ := stores(t, pikkuredis.WithPipelineConns(conns))
			ctx := ctxT(t)
			var wg sync.WaitGroup
			errs := make(chan error, 64)
			for g := 0; g < 64; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- pipelinedRoundTrips(ctx, cs, hs, g)
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
		})
	}
}

func pipelinedRoundTrips(ctx context.Context, cs *pikkuredis.ChannelStore, hs *pikkuredis.EventHubStore, g int) error {
	for i := 0; i < 50; i++ {
		id := fmt.Sprintf("c%d-%d", g, i)
		topic := fmt.Sprintf("t%d", g)
		if err := cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id, ChannelName: id, OpeningData: map[string]int{"g": g, "i": i}}); err != nil {
			return err
		}
		if err := cs.SetUserSession(ctx, id, map[string]string{"user": id}); err != nil {
			return err
		}
		got, err := cs.GetChannelAndSession(ctx, id)
		if err != nil {
			return err
		}
		if got.ChannelID != id || got.ChannelName != id ||
			string(got.OpeningData) != fmt.Sprintf(`{"g":%d,"i":%d}`, g, i) || string(got.Session) != `{"user":"`+id+`"}` {
			return fmt.Errorf("caller %d asked for %s and got %+v", g, id, got)
		}
		if ok, err := hs.Subscribe(ctx, topic, id); err != nil || !ok {
			return fmt.Errorf("subscribe %s: %v %v", id, ok, err)
		}
		ids, err := hs.GetChannelIDsForTopic(ctx, topic)
		if err != nil {
			return err
		}
		if len(ids) != i+1 {
			return fmt.Errorf("caller %d: topic %s has %d ids, want %d", g, topic, len(ids), i+1)
		}
		if ok, err := hs.Unsubscribe(ctx, "none", id); err != nil || ok {
			return fmt.Errorf("unsubscribe %s from a topic it never joined: %v %v", id, ok, err)
		}
	}
	return nil
}

// clientIDs returns the ids of the server's clients named name.
func clientIDs(t *testing.T, admin redis.Conn, name string) []string {
	t.Helper()
	list, err := redis.String(admin.Do("CLIENT", "LIST"))
	require.NoError(t, err)
	var ids []string
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, " name="+name+" ") {
			ids = append(ids, strings.Fields(line)[0])
		}
	}
	return ids
}

// A caller who leaves on its deadline gets its context's error at once,
// and the reply it leaves behind goes to no one else. Waiting behind a
// call in flight, it leaves the connection as it was; alone on it (its
// caller reading the reply itself), it closes it, and the next call dials
// a new one.
func TestPipelinedCallerWhoLeaves(t *testing.T) {
	srv := ownRedis(t)
	cs, _ := openOn(t, srv.URL, pikkuredis.WithPipelineConns(1), pikkuredis.WithDialOptions(redis.DialClientName("lane")))
	admin := dialURL(t, srv.URL)
	ctx := ctxT(t)
	require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "a", ChannelName: "A"}))
	require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "b", ChannelName: "B"}))
	before := clientIDs(t, admin, "lane")
	require.Len(t, before, 1)
	getShort := func(id string) {
		t.Helper()
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := cs.GetChannelAndSession(short, id)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Less(t, time.Since(start), 400*time.Millisecond, "the caller left at its deadline, not when Redis woke")
	}

	_, err := admin.Do("CLIENT", "PAUSE", 500, "ALL")
	require.NoError(t, err)
	first := make(chan string, 1)
	go func() {
		got, err := cs.GetChannelAndSession(ctx, "b")
		assert.NoError(t, err)
		first <- got.ChannelName
	}()
	time.Sleep(20 * time.Millisecond)
	getShort("a")
	assert.Equal(t, "B", <-first)
	got, err := cs.GetChannelAndSession(ctx, "b")
	require.NoError(t, err)
	assert.Equal(t, "B", got.ChannelName)
	assert.Equal(t, before, clientIDs(t, admin, "lane"), "the same connection carries on")

	_, err = admin.Do("CLIENT", "PAUSE", 500, "ALL")
	require.NoError(t, err)
	getShort("a")
	got, err = cs.GetChannelAndSession(ctx, "b")
	require.NoError(t, err)
	assert.Equal(t, "B", got.ChannelName, "the reply for a went to no one")
	after := clientIDs(t, admin, "lane")
	assert.Len(t, after, 1, "the abandoned connection was closed")
	assert.NotEqual(t, before, after)
}

// load calls op from n goroutines, each counting i up from 0, until the
// returned stop is called; stop waits for them and returns the error that
// ended each goroutine that op ended.
func load(n int, op func(g, i int) error) (stop func() []error) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				if err := op(g, i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	return func() []error {
		close(done)
		wg.Wait()
		close(errs)
		var out []error
		for err := range errs {
			out = append(out, err)
		}
		return out
	}
}

// Killed connections fail only the calls written on them; the lanes dial
// again and later calls succeed.
func TestPipelinedKilledConnectionsAreReplaced(t *testing.T) {
	srv := ownRedis(t)
	_, hs := openOn(t, srv.URL, pikkuredis.WithDialOptions(redis.DialClientName("lane")))
	admin := dialURL(t, srv.URL)
	ctx := ctxT(t)
	var ok, failed atomic.Int64
	stop := load(16, func(g, i int) error {
		_, err := hs.Subscribe(ctx, "t", fmt.Sprintf("c%d-%d", g, i))
		switch {
		case err == nil:
			ok.Add(1)
		case strings.Contains(err.Error(), "connection lost"):
			failed.Add(1)
		default:
			return err
		}
		return nil
	})
	for k := 0; k < 5; k++ {
		time.Sleep(50 * time.Millisecond)
		_, err := admin.Do("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
		require.NoError(t, err)
	}
	time.Sleep(50 * time.Millisecond)
	for _, err := range stop() {
		t.Errorf("a killed connection gave an unclear error: %v", err)
	}
	t.Logf("%d calls succeeded, %d failed with a lost connection", ok.Load(), failed.Load())
	_, err := hs.Subscribe(ctx, "t", "after")
	require.NoError(t, err)
	assert.NotEmpty(t, clientIDs(t, admin, "lane"))
}

// SCRIPT FLUSH every few milliseconds under concurrent load: NOSCRIPT is
// recovered on the pipelined path, and no call fails.
func TestPipelinedScriptFlushLosesNoCall(t *testing.T) {
	srv := ownRedis(t)
	cs, hs := openOn(t, srv.URL)
	admin := dialURL(t, srv.URL)
	ctx := ctxT(t)
	require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c"}))
	var calls atomic.Int64
	stop := load(32, func(g, i int) error {
		var err error
		if g%2 == 0 {
			_, err = hs.Subscribe(ctx, fmt.Sprintf("t%d", i%10), "c")
		} else {
			err = cs.SetUserSession(ctx, "c", map[string]int{"g": g})
		}
		if err == nil {
			calls.Add(1)
		}
		return err
	})
	for deadline := time.Now().Add(500 * time.Millisecond); time.Now().Before(deadline); {
		_, err := admin.Do("SCRIPT", "FLUSH")
		require.NoError(t, err)
		time.Sleep(2 * time.Millisecond)
	}
	for _, err := range stop() {
		t.Error(err)
	}
	require.Positive(t, calls.Load())
}

// Close ends the calls still waiting with ErrClosed at once, however long
// Redis would take, and leaves no goroutine behind.
func TestCloseEndsWaitingCallsAndGoroutines(t *testing.T) {
	srv := ownRedis(t)
	admin := dialURL(t, srv.URL)
	baseline := runtime.NumGoroutine()
	hs, err := pikkuredis.OpenEventHubStore(srv.URL)
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, hs.Init(ctx))

	_, err = admin.Do("CLIENT", "PAUSE", 1500, "ALL")
	require.NoError(t, err)
	done := make(chan error, 10)
	for g := 0; g < 10; g++ {
		go func() { _, err := hs.Subscribe(ctx, "t", fmt.Sprint("c", g)); done <- err }()
	}
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	require.NoError(t, hs.Close())
	for g := 0; g < 10; g++ {
		select {
		case err := <-done:
			assert.ErrorIs(t, err, pikkuredis.ErrClosed)
		case <-time.After(time.Second):
			t.Fatal("a call waiting on a paused Redis outlived Close")
		}
	}
	assert.Less(t, time.Since(start), 500*time.Millisecond, "Close did not wait for the paused Redis")
	waitForGoroutines(t, baseline)
}

// waitForGoroutines waits (a little) for the goroutine count to fall back
// to n, and fails with their stacks when it does not.
func waitForGoroutines(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if runtime.NumGoroutine() <= n {
			return
		}
	}
	buf := make([]byte, 1<<20)
	t.Fatalf("%d goroutines, want %d:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
}

// A server that stops answering fails the pipelined calls after the read
// timeout, also for callers without a deadline: they never hang.
func TestPipelinedSilentServerFailsAfterTheReadTimeout(t *testing.T) {
	url := blackhole(t)
	_, hs := openOn(t, url, pikkuredis.WithIOTimeout(300*time.Millisecond))
	start := time.Now()
	done := make(chan error, 1)
	go func() { _, err := hs.Subscribe(context.Background(), "t", "c"); done <- err }()
	select {
	case err := <-done:
		require.Error(t, err)
		assert.ErrorContains(t, err, "i/o timeout")
		assert.Greater(t, time.Since(start), 250*time.Millisecond)
	case <-time.After(5 * time.Second):
		t.Fatal("a call without a deadline hung on a silent server")
	}
}
