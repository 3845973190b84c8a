package pikkuredis

// Internal tests of the lanes (pipeline.go): schedules the public API
// cannot force. Each was a bug found in review; they use the test Redis
// that TestMain (integration_test.go) starts, or a listener of their own.

import (
	"context"
	"math/rand"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
)

func internalURL(t *testing.T) string {
	SkipShort(t, "Redis")
	u := os.Getenv("PIKKUREDIS_INTERNAL_TEST_URL")
	if u == "" {
		t.Fatal("no test Redis: TestMain (integration_test.go) sets PIKKUREDIS_INTERNAL_TEST_URL or fails the run")
	}
	return u
}

func countStacks(sub string) int {
	buf := make([]byte, 8<<20)
	return strings.Count(string(buf[:runtime.Stack(buf, true)]), sub)
}

// silentServer accepts connections and never reads from them: a server
// that stopped reading, so that a large enough write blocks.
func silentServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			cn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, cn)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, cn := range conns {
			cn.Close()
		}
	})
	return "redis://" + ln.Addr().String()
}

// A caller whose context ends about when its reply comes, over and over:
// another caller, without a deadline, on the same connection, never fails.
// (A caller reading its own reply closes the connection when it leaves, so
// no other call may be on it then, and a late AfterFunc must do nothing.)
func TestLaneCallerLeavingFailsNoOtherCall(t *testing.T) {
	c, err := openConn(internalURL(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	bg := context.Background()
	start := time.Now()
	for i := 0; i < 200; i++ {
		if _, err := c.do(bg, "PING"); err != nil {
			t.Fatal(err)
		}
	}
	rtt := time.Since(start) / 200

	stop := time.Now().Add(2 * time.Second)
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // deadlines about one round trip long
		defer wg.Done()
		for time.Now().Before(stop) {
			ctx, cancel := context.WithTimeout(bg, time.Duration(rand.Int63n(int64(2*rtt)+1)))
			c.do(ctx, "PING") //nolint:errcheck // leaving is the point
			cancel()
		}
	}()
	go func() { // no deadline, a healthy server: must never fail
		defer wg.Done()
		for time.Now().Before(stop) {
			if _, err := c.do(bg, "PING"); err != nil {
				mu.Lock()
				seen[err.Error()]++
				mu.Unlock()
			}
		}
	}()
	wg.Wait()
	for e, n := range seen {
		t.Errorf("a caller with no deadline failed %d times: %s", n, e)
	}
}

// Close while a dial that has succeeded waits to install its connection:
// Close must not miss it (its reader goroutine and socket would leak).
func TestLaneCloseRacingADialLeaksNothing(t *testing.T) {
	realDial, err := dialer(internalURL(t), newConfig(nil))
	if err != nil {
		t.Fatal(err)
	}
	base := countStacks("(*laneConn).read")
	l := newLane(func(ctx context.Context) (redis.Conn, error) {
		rc, err := realDial(ctx)
		<-ctx.Done()                      // Close has begun (it cancels l.ctx first)...
		time.Sleep(20 * time.Millisecond) // ...and looks for the connection before this installs it
		return rc, err
	}, 10*time.Second)
	res := make(chan error, 1)
	go func() { _, err := l.do(context.Background(), "PING", nil); res <- err }()
	time.Sleep(50 * time.Millisecond)
	l.close()
	if err := <-res; err != ErrClosed {
		t.Errorf("the call waiting for the dial got %v, want ErrClosed", err)
	}
	time.Sleep(100 * time.Millisecond)
	if n := countStacks("(*laneConn).read") - base; n > 0 {
		t.Errorf("after Close: %d reader goroutine(s) of a connection Close never saw", n)
	}
}

// Calls arriving while a failed dial reports its error are not stranded:
// with every dial refused, each call ends, at once.
func TestLaneFailedDialStrandsNoCall(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: every dial is refused at once
	dial, _ := dialer("redis://"+addr, newConfig(nil))
	l := newLane(dial, 10*time.Second)
	defer l.close()
	bg := context.Background()
	for r := 0; r < 3000; r++ {
		var wg sync.WaitGroup
		done := make(chan struct{})
		for g := 0; g < 3; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for s, d := time.Now(), time.Duration(rand.Int63n(int64(60*time.Microsecond))); time.Since(s) < d; {
				}
				l.do(bg, "PING", nil) //nolint:errcheck // refused, as expected
			}()
		}
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			l.mu.Lock()
			t.Errorf("round %d: a call was stranded (queue %d, redialing %v)", r, len(l.queue), l.redialing)
			l.mu.Unlock()
			l.do(bg, "PING", nil) //nolint:errcheck // the next call rescues it
			<-done
			return
		}
	}
}

// A write that cannot finish (the server stopped reading) holds no caller
// past its context, and Close does not wait for it.
func TestLaneStuckWriteHoldsNoCaller(t *testing.T) {
	c, err := openConn(silentServer(t), []Option{WithIOTimeout(3 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	ctx0, cancel0 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	c.do(ctx0, "PING") //nolint:errcheck // never answered: in flight for good
	cancel0()
	big := strings.Repeat("x", 64<<20) // far more than the socket buffers take
	res := make(chan time.Duration, 1)
	start := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		c.do(ctx, "SET", "k", big) //nolint:errcheck // the deadline is the point
		res <- time.Since(start)
	}()
	if took := <-res; took > time.Second {
		t.Errorf("a call with a 100ms context returned after %v, held by its write", took)
	}
	s := time.Now()
	c.close()
	if took := time.Since(s); took > time.Second {
		t.Errorf("Close took %v, waiting for a stuck write", took)
	}
}
