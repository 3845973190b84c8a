package pikkuredis_test

// The transport under the calls (transport.go, pipeline.go): connections
// closed while idle, connections dropped silently, calls whose caller
// left while the writer was blocked, and TLS handshakes that never end.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	mathrand "math/rand"
	"net"
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
	"github.com/pikkujs/pikkuredis/internal/tcpproxy"
)

// idleBackends are the ways a store reaches Redis, each configured as the
// README says, opened on url.
func idleBackends() map[string]func(t *testing.T, url string, opts ...pikkuredis.Option) (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore) {
	return map[string]func(t *testing.T, url string, opts ...pikkuredis.Option) (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore){
		"auto-pipelined": func(t *testing.T, url string, opts ...pikkuredis.Option) (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore) {
			return openBoth(t, url, opts...)
		},
		"WithoutAutoPipelining": func(t *testing.T, url string, opts ...pikkuredis.Option) (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore) {
			return openBoth(t, url, append(opts, pikkuredis.WithoutAutoPipelining())...)
		},
		"caller's pool, DialURLContext, CheckIdleConn": func(t *testing.T, url string, opts ...pikkuredis.Option) (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore) {
			p := poolFor(t, url)
			p.DialContext = func(ctx context.Context) (redis.Conn, error) {
				return pikkuredis.DialURLContext(ctx, url, redis.DialReadTimeout(10*time.Second))
			}
			p.TestOnBorrowContext = pikkuredis.CheckIdleConn
			return callerPoolStores(t, p, opts...)
		},
	}
}

func callerPoolStores(t *testing.T, p *redis.Pool, opts ...pikkuredis.Option) (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore) {
	cs, hs := pikkuredis.NewChannelStore(p, opts...), pikkuredis.NewEventHubStore(p, opts...)
	t.Cleanup(func() { cs.Close(); hs.Close() })
	return cs, hs
}

// idleRound makes a few concurrent calls of every kind and returns the
// errors they got.
func idleRound(cs *pikkuredis.ChannelStore, hs *pikkuredis.EventHubStore, round int) []error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("c%d-%d", round, g)
			err := cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id, ChannelName: "chat"})
			if err == nil {
				_, err = hs.Subscribe(ctx, "news", id)
			}
			if err == nil {
				_, err = cs.GetChannelAndSession(ctx, id)
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("round %d, caller %d: %w", round, g, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errs
}

// A server that closes idle connections (timeout 1) fails no call, on any
// path, though every call comes after 3 s of silence.
func TestIdleClosedByServerTimeoutFailsNoCall(t *testing.T) {
	srv := ownRedis(t, "--timeout", "1")
	backends := idleBackends()
	// A caller's pool dialled by redigo: CheckIdleConn PINGs instead.
	backends["caller's pool, redigo's dial, CheckIdleConn"] = func(t *testing.T, url string, opts ...pikkuredis.Option) (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore) {
		p := poolFor(t, url)
		p.TestOnBorrowContext = pikkuredis.CheckIdleConn
		return callerPoolStores(t, p, opts...)
	}
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cs, hs := open(t, srv.URL, pikkuredis.WithKeyPrefix(randomPrefix(t)))
			for round := 0; round < 4; round++ {
				if round > 0 {
					time.Sleep(3 * time.Second)
				}
				for _, err := range idleRound(cs, hs, round) {
					t.Error(err)
				}
			}
		})
	}
}

// CLIENT KILL of every idle connection, and a load balancer closing every
// open connection (tcpproxy.CloseOpen), fail no call made afterwards.
func TestIdleKilledOrCutFailsNoCall(t *testing.T) {
	srv := ownRedis(t)
	proxy, err := tcpproxy.Start(srv.Addr)
	require.NoError(t, err)
	t.Cleanup(proxy.Close)
	admin := dialURL(t, srv.URL)
	defer admin.Close()
	cuts := map[string]func() int{
		"CLIENT KILL": func() int {
			n, err := redis.Int(admin.Do("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"))
			require.NoError(t, err)
			return n
		},
		"load balancer": proxy.CloseOpen,
	}
	for cut, kill := range cuts {
		for name, open := range idleBackends() {
			t.Run(cut+"/"+name, func(t *testing.T) {
				cs, hs := open(t, proxy.URL, pikkuredis.WithKeyPrefix(randomPrefix(t)))
				for round := 0; round < 4; round++ {
					if round > 0 {
						require.NotZero(t, kill(), "no connection to cut")
						time.Sleep(100 * time.Millisecond) // the FIN reaches the client
					}
					for _, err := range idleRound(cs, hs, round) {
						t.Error(err)
					}
				}
			})
		}
	}
}

// A connection dropped silently (no FIN, no RST) under 8 callers with 1 s
// deadlines on the auto-pipelined path costs them about one deadline, not
// the IO timeout (10 s): the lane stops writing on a connection that
// reads nothing while replies are owed.
func TestSilentlyDroppedConnectionCostsAboutOneDeadline(t *testing.T) {
	srv := ownRedis(t)
	proxy, err := tcpproxy.Start(srv.Addr)
	require.NoError(t, err)
	t.Cleanup(proxy.Close)
	cs, _ := openBoth(t, proxy.URL, pikkuredis.WithKeyPrefix(randomPrefix(t)))
	require.NoError(t, cs.AddChannel(ctxT(t), pikkuredis.Channel{ChannelID: "c", ChannelName: "chat"}))

	var frozenAt atomic.Int64 // unix nanos; 0 before the freeze
	var recovered atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				start := time.Now().UnixNano()
				_, err := cs.GetChannelAndSession(ctx, "c")
				cancel()
				if f := frozenAt.Load(); err == nil && f != 0 && start > f {
					recovered.CompareAndSwap(0, time.Now().UnixNano())
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	frozenAt.Store(time.Now().UnixNano())
	require.NotZero(t, proxy.FreezeOpen())
	for deadline := time.Now().Add(12 * time.Second); recovered.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	require.NotZero(t, recovered.Load(), "no call succeeded within 12 s of the freeze")
	outage := time.Duration(recovered.Load() - frozenAt.Load())
	t.Logf("outage from the freeze to the first success: %v", outage)
	// One deadline (1 s) plus the stall threshold and a dial, with slack
	// for a loaded machine; the IO timeout is 10 s.
	assert.Less(t, outage, 4*time.Second, "the callers waited for the IO timeout")
}

// mainLaneMax is the longest argument an auto-pipelined store sends over
// its main connections (512 KiB); calls with a longer one go over a
// connection of their own. Tests that block the main writer use values of
// this size.
const mainLaneMax = 1 << 19

// A call whose caller left is never written: the auto-pipelined writer is
// blocked in write(2) behind a server that stopped reading (a paused
// proxy) when an AddChannel with a 200 ms deadline is queued; it returns
// its deadline's error, and after the proxy resumes (the big writes all
// go through) the channel does not exist.
func TestCallWhoseCallerLeftIsNeverWritten(t *testing.T) {
	srv := ownRedis(t)
	proxy, err := tcpproxy.Start(srv.Addr)
	require.NoError(t, err)
	t.Cleanup(proxy.Close)
	prefix := randomPrefix(t)
	cs, _ := openBoth(t, proxy.URL, pikkuredis.WithKeyPrefix(prefix))
	bg := context.Background()
	require.NoError(t, cs.AddChannel(bg, pikkuredis.Channel{ChannelID: "warm", ChannelName: "chat"}))

	proxy.Pause()
	// A call with no deadline first, alone: in flight, its caller reading
	// the reply, so that what follows goes to the writer goroutine.
	var wg sync.WaitGroup
	errs := make(chan error, 65)
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, err := cs.GetChannelAndSession(bg, "warm")
		errs <- err
	}()
	time.Sleep(50 * time.Millisecond)
	// 512 KiB each (the most that goes over the main connection: larger
	// arguments go over a connection of their own), sent as is (a name is
	// not JSON-encoded, which would take long under the race detector).
	big := strings.Repeat("x", mainLaneMax)
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- cs.AddChannel(bg, pikkuredis.Channel{ChannelID: fmt.Sprint("big", g), ChannelName: big})
		}()
	}
	time.Sleep(100 * time.Millisecond) // the writer is blocked: far more than the socket buffers hold
	ctx, cancel := context.WithTimeout(bg, 200*time.Millisecond)
	err = cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "late", ChannelName: "chat"})
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	time.Sleep(time.Second)
	proxy.Resume()
	resumed := time.Now()
	wg.Wait()
	t.Logf("the writes took %v after Resume", time.Since(resumed))
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	admin := dialURL(t, srv.URL)
	defer admin.Close()
	n, err := redis.Int(admin.Do("EXISTS", prefix+":channel:late"))
	require.NoError(t, err)
	assert.Zero(t, n, "the call whose caller had left was written")
}

// closedByPeer says whether the other end of c has closed it, waiting
// until deadline for the FIN.
func closedByPeer(c net.Conn, deadline time.Time) bool {
	c.SetReadDeadline(deadline)
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil { // the ClientHello first
			return errors.Is(err, io.EOF) || !isTimeout(err)
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// storeStacks counts the goroutines that run the store's dial code (the
// question to the sentinels included).
func storeStacks() int {
	buf := make([]byte, 8<<20)
	n := 0
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		for _, f := range []string{"gomodule/redigo/redis.", "crypto/tls.(*Conn).", "pikkuredis.bounded",
			"pikkuredis.(*lane", "pikkuredis.(*sentinelDial"} {
			if strings.Contains(g, f) {
				n++
				break
			}
		}
	}
	return n
}

// requireNothingOutlives fails t unless every socket of conns was closed
// by the store and no goroutine of it beyond base is left by limit.
func requireNothingOutlives(t *testing.T, conns []net.Conn, base int, limit time.Time) {
	t.Helper()
	for _, c := range conns {
		assert.True(t, closedByPeer(c, limit), "a socket outlived Close by 100 ms")
	}
	for storeStacks() > base && time.Now().Before(limit) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := storeStacks(); n > base {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutine(s) of the store outlived Close by 100 ms:\n%s", n-base, buf[:runtime.Stack(buf, true)])
	}
}

// A TLS handshake that never ends ends with the call's context and with
// Close: nothing of the store (goroutine, socket) outlives Close by more
// than 100 ms.
func TestTLSHandshakeEndsWithContextAndClose(t *testing.T) {
	for mode, opts := range openModes {
		t.Run(mode, func(t *testing.T) {
			addr, accepted := silentListener(t) // a rediss:// server that never answers the handshake
			url := "rediss://" + addr
			base := storeStacks()
			cs, err := pikkuredis.OpenChannelStore(url, append(opts,
				pikkuredis.WithDialOptions(redis.DialTLSConfig(&tls.Config{InsecureSkipVerify: true})))...)
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			start := time.Now()
			_, err = cs.GetChannelAndSession(ctx, "c")
			cancel()
			require.ErrorIs(t, err, context.DeadlineExceeded)
			assert.Less(t, time.Since(start), time.Second)
			// A call with no deadline, then Close under it.
			res := make(chan error, 1)
			go func() { _, err := cs.GetChannelAndSession(context.Background(), "c"); res <- err }()
			time.Sleep(200 * time.Millisecond)
			conns := accepted()
			require.NotEmpty(t, conns)
			require.NoError(t, cs.Close())
			closed := time.Now()
			select {
			case err := <-res:
				assert.Error(t, err)
			case <-time.After(time.Second):
				t.Fatal("a call waiting on the handshake outlived Close")
			}
			requireNothingOutlives(t, conns, base, closed.Add(100*time.Millisecond))
		})
	}
}

// A server that is merely slow (DEBUG SLEEP, CLIENT PAUSE WRITE) fails no
// call whose caller still waits: the connection that reads nothing is
// retired, not failed, and its calls get their replies when they come.
func TestSlowServerFailsNoWaitingCall(t *testing.T) {
	srv := ownRedis(t, "--enable-debug-command", "local")
	admin := dialURL(t, srv.URL)
	defer admin.Close()
	stalls := map[string]func() error{
		"DEBUG SLEEP 2": func() error { _, err := admin.Do("DEBUG", "SLEEP", 2); return err },
		"CLIENT PAUSE 2000 WRITE": func() error {
			if _, err := admin.Do("CLIENT", "PAUSE", 2000, "WRITE"); err != nil {
				return err
			}
			time.Sleep(2 * time.Second)
			return nil
		},
	}
	for name, stall := range stalls {
		t.Run(name, func(t *testing.T) {
			cs, hs := openBoth(t, srv.URL, pikkuredis.WithKeyPrefix(randomPrefix(t)))
			stop := make(chan struct{})
			var calls, failed atomic.Int64
			var wg sync.WaitGroup
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
						id := fmt.Sprint("c", g, "-", i)
						err := cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id, ChannelName: "chat"})
						if err == nil {
							_, err = hs.Subscribe(ctx, "news", id)
						}
						cancel()
						calls.Add(1)
						if err != nil {
							failed.Add(1)
							t.Error(err)
						}
					}
				}()
			}
			// Impatient callers keep calls coming during the stall, so the
			// lane sees its connection read nothing and retires it; theirs
			// may fail only with their deadline.
			for g := 0; g < 4; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						select {
						case <-stop:
							return
						default:
						}
						ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
						_, err := cs.GetChannelAndSession(ctx, "none")
						cancel()
						if !errors.Is(err, pikkuredis.ErrChannelNotFound) && !errors.Is(err, context.DeadlineExceeded) {
							t.Error(err)
						}
					}
				}()
			}
			time.Sleep(200 * time.Millisecond)
			err := stall()
			time.Sleep(300 * time.Millisecond)
			close(stop)
			wg.Wait()
			require.NoError(t, err)
			assert.Zero(t, failed.Load(), "of %d calls", calls.Load())
		})
	}
}

// TestWithConnectTimeoutBoundsTheConnect: the store dials TCP itself, so
// its connect timeout is WithConnectTimeout's (redis.DialConnectTimeout
// has no effect); one too short to connect even on loopback fails the
// dial, on both paths, and the default connects.
func TestWithConnectTimeoutBoundsTheConnect(t *testing.T) {
	srv := ownRedis(t)
	for mode, opts := range openModes {
		_, hs := openBoth(t, srv.URL, append([]pikkuredis.Option{pikkuredis.WithConnectTimeout(time.Nanosecond)}, opts...)...)
		err := hs.Init(ctxT(t))
		require.Error(t, err, mode)
		assert.Contains(t, err.Error(), "connect to redis", mode)
		assert.Contains(t, err.Error(), "i/o timeout", mode)
		_, hs = openBoth(t, srv.URL, append([]pikkuredis.Option{pikkuredis.WithDialOptions(redis.DialConnectTimeout(time.Nanosecond))}, opts...)...)
		assert.NoError(t, hs.Init(ctxT(t)), "%s: redis.DialConnectTimeout has no effect", mode)
	}
}

// TestLoneCallAfterAnUnsentCallIsAnswered: the writer drops a call whose
// caller left right before its bytes would go out (unsend), leaving the
// lane idle. The reader must not have started reading for that call: a
// lone call after it, written directly, would have its reply read by the
// reader (a panic on the empty queue), or its idle check would wait for
// the reader's read lock until the IO timeout, with every caller and
// Close behind it. Found by a review; random timing, bounded to a few
// seconds.
func TestLoneCallAfterAnUnsentCallIsAnswered(t *testing.T) {
	srv := ownRedis(t)
	cs, err := pikkuredis.OpenChannelStore(srv.URL, pikkuredis.WithKeyPrefix(newPrefix(t)), pikkuredis.WithPipelineConns(1))
	require.NoError(t, err)
	defer cs.Close()
	bg := context.Background()
	require.NoError(t, cs.AddChannel(bg, pikkuredis.Channel{ChannelID: "a", ChannelName: "A"}))
	require.NoError(t, cs.AddChannel(bg, pikkuredis.Channel{ChannelID: "b", ChannelName: "B"}))
	spin := func(d time.Duration) {
		for t0 := time.Now(); time.Since(t0) < d; {
		}
	}
	r := mathrand.New(mathrand.NewSource(2))
	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); {
		var wg sync.WaitGroup
		for range 3 { // a busy lane, so that the next call is pipelined
			wg.Add(1)
			go func() { defer wg.Done(); cs.GetChannelAndSession(bg, "a") }()
		}
		wg.Wait()
		spin(time.Duration(r.Intn(1200)) * time.Microsecond)
		ctx, cancel := context.WithTimeout(bg, time.Duration(r.Intn(60))*time.Microsecond)
		cs.GetChannelAndSession(ctx, "a") // its caller leaves before the writer hands it over
		cancel()
		if r.Intn(2) == 0 {
			spin(time.Duration(r.Intn(900)) * time.Microsecond) // the next call goes direct
		} else {
			time.Sleep(2 * time.Millisecond) // the next call's idle check peeks
		}
		ctx, cancel = context.WithTimeout(bg, time.Second)
		got, err := cs.GetChannelAndSession(ctx, "b")
		cancel()
		require.NoError(t, err)
		require.Equal(t, "B", got.ChannelName)
	}
}

// TestCallsNeverWrittenGoToTheNextConnection: calls queued behind writes
// blocked on a connection that then dies (silently dropped, ended by the
// IO timeout) were never handed to it; they go out on the next
// connection rather than failing as "connection lost", which would say
// they may have been applied.
func TestCallsNeverWrittenGoToTheNextConnection(t *testing.T) {
	srv := ownRedis(t)
	p, err := tcpproxy.Start(srv.Addr)
	require.NoError(t, err)
	defer p.Close()
	prefix := newPrefix(t)
	cs, err := pikkuredis.OpenChannelStore(p.URL, pikkuredis.WithKeyPrefix(prefix), pikkuredis.WithIOTimeout(2*time.Second))
	require.NoError(t, err)
	defer cs.Close()
	bg := context.Background()
	require.NoError(t, cs.AddChannel(bg, pikkuredis.Channel{ChannelID: "warm", ChannelName: "w"}))
	p.FreezeOpen()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); cs.GetChannelAndSession(bg, "warm") }() // in flight, read by its caller
	time.Sleep(50 * time.Millisecond)
	big := strings.Repeat("x", mainLaneMax)
	const bigCalls = 48 // 24 MiB: far more than the socket buffers hold
	errs := make([]error, bigCalls+1)
	for i := range bigCalls { // fill the socket buffers: the writer blocks
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = cs.AddChannel(bg, pikkuredis.Channel{ChannelID: fmt.Sprintf("big%d", i), ChannelName: big})
		}()
	}
	time.Sleep(300 * time.Millisecond)
	wg.Add(1)
	go func() {
		defer wg.Done()
		errs[bigCalls] = cs.AddChannel(bg, pikkuredis.Channel{ChannelID: "small", ChannelName: "s"})
	}()
	wg.Wait()
	require.NoError(t, errs[bigCalls], "a call queued behind the blocked writes was never written")
	_, err = cs.GetChannelAndSession(bg, "small")
	require.NoError(t, err)
	for i, err := range errs[:bigCalls] {
		if err != nil {
			assert.Contains(t, err.Error(), "redis connection lost", "big%d", i)
		}
	}
}
