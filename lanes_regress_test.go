package pikkuredis_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	mathrand "math/rand"
	"net"
	"runtime"
	"sort"
	"strconv"
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

// connsReceived is Redis's count of connections accepted so far.
func connsReceived(t *testing.T, admin redis.Conn) int {
	t.Helper()
	s, err := redis.String(admin.Do("INFO", "stats"))
	require.NoError(t, err)
	for _, line := range splitLines(s) {
		if v, ok := cutPrefix(line, "total_connections_received:"); ok {
			n, err := strconv.Atoi(v)
			require.NoError(t, err)
			return n
		}
	}
	t.Fatal("no total_connections_received")
	return 0
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			line := s[start:i]
			if len(line) > 0 && line[len(line)-1] == '\r' {
				line = line[:len(line)-1]
			}
			out = append(out, line)
			start = i + 1
		}
	}
	return out
}

func cutPrefix(s, p string) (string, bool) {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):], true
	}
	return "", false
}

// TestBreak14IdleLongerThanIOTimeoutRedials: a lane's socket keeps the
// read deadline of its last reply (now+WithIOTimeout). Once the lane has
// been idle longer than that, the idle check (peekIdle: RawConn.Read
// fails on a passed deadline) takes the healthy connection for closed,
// and the next call waits for a new dial: on a quiet store (10 s by
// default) nearly every call dials. The same on f7e05ad (redigo's
// Receive leaves the deadline too); with a timeout longer than the idle
// time, nothing is dialled.
func TestBreak14IdleLongerThanIOTimeoutRedials(t *testing.T) {
	srv := ownRedis(t)
	admin := dialURL(t, srv.URL)
	defer admin.Close()
	for _, c := range []struct {
		timeout time.Duration
	}{{5 * time.Second}, {200 * time.Millisecond}} {
		hs, err := pikkuredis.OpenEventHubStore(srv.URL, pikkuredis.WithKeyPrefix(newPrefix(t)), pikkuredis.WithIOTimeout(c.timeout))
		require.NoError(t, err)
		ctx := context.Background()
		_, err = hs.Subscribe(ctx, "t", "c1")
		require.NoError(t, err)
		before := connsReceived(t, admin)
		for i := 0; i < 3; i++ {
			time.Sleep(400 * time.Millisecond)
			_, err := hs.GetChannelIDsForTopic(ctx, "t")
			require.NoError(t, err)
		}
		assert.Equal(t, before, connsReceived(t, admin), "WithIOTimeout(%v), idle 400 ms before each call: connections dialled", c.timeout)
		hs.Close()
	}
}

// seedTopic fills prefix's topic with n ids, straight into Redis.
func seedTopic(t *testing.T, admin redis.Conn, prefix, topic string, n int, idLen int) {
	t.Helper()
	key := prefix + ":topic:" + topic
	args := []any{key}
	for i := 0; i < n; i++ {
		id := strconv.Itoa(i)
		for len(id) < idLen {
			id = "x" + id
		}
		args = append(args, id)
		if len(args) == 10001 || i == n-1 {
			_, err := admin.Do("SADD", args...)
			require.NoError(t, err)
			args = args[:1]
		}
	}
}

// Holds: callers mixing big topic reads, small reads and calls whose
// context ends at random points; every answer must be its own call's.
func TestBreak14MixedBigAndSmallWithCancels(t *testing.T) {
	srv := ownRedis(t)
	admin := dialURL(t, srv.URL)
	defer admin.Close()
	prefix := newPrefix(t)
	seedTopic(t, admin, prefix, "big", 100000, 36)
	seedTopic(t, admin, prefix, "small", 3, 5)
	for _, opts := range [][]pikkuredis.Option{nil, {pikkuredis.WithPipelineConns(2)}} {
		hs, err := pikkuredis.OpenEventHubStore(srv.URL, append(opts, pikkuredis.WithKeyPrefix(prefix))...)
		require.NoError(t, err)
		before := runtime.NumGoroutine()
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		stop := time.Now().Add(3 * time.Second)
		for g := 0; g < 12; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := mathrand.New(mathrand.NewSource(int64(g)))
				own := "own" + strconv.Itoa(g)
				for i := 0; time.Now().Before(stop); i++ {
					ctx, cancel := context.Background(), context.CancelFunc(func() {})
					if rng.Intn(3) == 0 {
						ctx, cancel = context.WithTimeout(ctx, time.Duration(rng.Intn(20000))*time.Microsecond)
					}
					switch rng.Intn(4) {
					case 0:
						ids, err := hs.GetChannelIDsForTopic(ctx, "big")
						if err == nil && len(ids) != 100000 {
							errs <- fmt.Errorf("big read: %d ids", len(ids))
						}
					case 1:
						ids, err := hs.GetChannelIDsForTopic(ctx, "small")
						if err == nil {
							sort.Strings(ids)
							if strings.Join(ids, ",") != "xxxx0,xxxx1,xxxx2" {
								errs <- fmt.Errorf("small read: %q", ids)
							}
						}
					case 2:
						ok, err := hs.Subscribe(ctx, own, "c"+strconv.Itoa(i))
						if err == nil && !ok {
							errs <- fmt.Errorf("subscribe said false")
						}
					case 3:
						ids, err := hs.GetChannelIDsForTopic(ctx, own)
						if err == nil {
							for _, id := range ids {
								if !strings.HasPrefix(id, "c") {
									errs <- fmt.Errorf("own read: %q", ids[:min(3, len(ids))])
									break
								}
							}
						}
					}
					cancel()
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		require.NoError(t, hs.Close())
		time.Sleep(200 * time.Millisecond)
		if after := runtime.NumGoroutine(); after > before {
			buf := make([]byte, 1<<20)
			t.Errorf("goroutines: %d before, %d after Close\n%s", before, after, buf[:runtime.Stack(buf, true)])
		}
	}
}

// fakeRedis serves each command read on a connection with handle, which
// writes whatever it likes. Closed when the test ends.
func fakeRedis(t *testing.T, handle func(c net.Conn, args []string)) (url string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					args, err := readCommand(br)
					if err != nil {
						return
					}
					handle(c, args)
				}
			}()
		}
	}()
	return "redis://" + l.Addr().String()
}

func readCommand(br *bufio.Reader) ([]string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || line[0] != '*' {
		return nil, fmt.Errorf("bad command line %q", line)
	}
	n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
	if err != nil {
		return nil, err
	}
	args := make([]string, n)
	for i := range args {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil, err
		}
		m, err := strconv.Atoi(strings.TrimSpace(line[1:]))
		if err != nil {
			return nil, err
		}
		b := make([]byte, m+2)
		if _, err := io.ReadFull(br, b); err != nil {
			return nil, err
		}
		args[i] = string(b[:m])
	}
	return args, nil
}

// arrayReply is a RESP array of n ids.
func arrayReply(n int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", n)
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("id-%030d", i)
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(id), id)
	}
	return b.Bytes()
}

// trickle writes b in pieces of size, one every gap.
func trickle(c net.Conn, b []byte, size int, gap time.Duration) error {
	for len(b) > 0 {
		n := min(size, len(b))
		if _, err := c.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
		time.Sleep(gap)
	}
	return nil
}

// TestBreak14TricklingReplyOutlastsIOTimeout: WithIOTimeout bounds a
// reply's arrival as a whole (its doc says so since the breaker found
// that it said "no reply at all"): a big reply whose bytes keep coming
// (16 KiB every 20 ms, about 1.1 s in all) is cut at the 400 ms timeout,
// its connection declared lost, as redigo's Receive does; and the next
// call dials again and gets its reply.
func TestBreak14TricklingReplyOutlastsIOTimeout(t *testing.T) {
	big := arrayReply(20000) // about 900 KB
	var smembers atomic.Int32
	url := fakeRedis(t, func(c net.Conn, args []string) {
		switch strings.ToUpper(args[0]) {
		case "SMEMBERS":
			if smembers.Add(1) == 1 {
				trickle(c, big, 16<<10, 20*time.Millisecond) // ~1.1 s in all
				return
			}
			c.Write(big)
		default:
			c.Write([]byte("+OK\r\n"))
		}
	})
	hs, err := pikkuredis.OpenEventHubStore(url, pikkuredis.WithIOTimeout(400*time.Millisecond))
	require.NoError(t, err)
	defer hs.Close()
	_, err = hs.GetChannelIDsForTopic(context.Background(), "t")
	require.ErrorContains(t, err, "i/o timeout")
	ids, err := hs.GetChannelIDsForTopic(context.Background(), "t")
	require.NoError(t, err)
	require.Len(t, ids, 20000)
}

// Holds: Close while a big reply trickles in, in direct mode: the call
// ends with ErrClosed at once, nothing is left running.
func TestBreak14CloseDuringTricklingReply(t *testing.T) {
	big := arrayReply(20000)
	url := fakeRedis(t, func(c net.Conn, args []string) {
		trickle(c, big, 4<<10, 10*time.Millisecond)
	})
	before := runtime.NumGoroutine()
	hs, err := pikkuredis.OpenEventHubStore(url)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		_, err := hs.GetChannelIDsForTopic(context.Background(), "t")
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	require.NoError(t, hs.Close())
	select {
	case err := <-done:
		require.ErrorIs(t, err, pikkuredis.ErrClosed)
	case <-time.After(2 * time.Second):
		t.Fatal("call still waiting 2 s after Close")
	}
	require.Less(t, time.Since(start), time.Second)
	time.Sleep(100 * time.Millisecond)
	require.LessOrEqual(t, runtime.NumGoroutine(), before+2) // the fake server's
}

// Holds: a caller whose context ends during a big reply in direct mode
// (the lane idle, warmed up); the next call must not wait for that reply.
func TestBreak14CancelDuringBigReplyThenCall(t *testing.T) {
	big := arrayReply(20000)
	var n atomic.Int32
	url := fakeRedis(t, func(c net.Conn, args []string) {
		if len(args) == 2 && strings.HasSuffix(args[1], ":big") && n.Add(1) == 1 {
			trickle(c, big, 4<<10, 10*time.Millisecond) // ~2 s
			return
		}
		c.Write([]byte("*1\r\n$2\r\nok\r\n"))
	})
	hs, err := pikkuredis.OpenEventHubStore(url)
	require.NoError(t, err)
	defer hs.Close()
	_, err = hs.GetChannelIDsForTopic(context.Background(), "warm")
	require.NoError(t, err)
	time.Sleep(10 * time.Millisecond) // past busyWindow: direct mode
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = hs.GetChannelIDsForTopic(ctx, "big")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	start := time.Now()
	ids, err := hs.GetChannelIDsForTopic(context.Background(), "t")
	require.NoError(t, err)
	require.Equal(t, []string{"ok"}, ids)
	require.Less(t, time.Since(start), 500*time.Millisecond)
}

// Holds: big topic reads under TLS (redigo's reader) and as an ACL user
// on db 5 (the store's reader, after AUTH and SELECT on the dial).
func TestBreak14TLSAndACLSelectBigTopic(t *testing.T) {
	srv, ca := tlsRedis(t)
	admin := dialURL(t, srv.URL)
	defer admin.Close()
	_, err := admin.Do("ACL", "SETUSER", "app", "on", ">s3cret", "~*", "+@all")
	require.NoError(t, err)
	prefix := randomPrefix(t)
	_, err = admin.Do("SELECT", 5)
	require.NoError(t, err)
	seedTopic(t, admin, prefix, "big", 10000, 36)
	_, err = admin.Do("SELECT", 0)
	require.NoError(t, err)
	host := strings.TrimPrefix(srv.URL, "redis://")
	tlsHost := strings.TrimPrefix(srv.TLSURL, "rediss://")
	for name, url := range map[string]string{
		"plain acl db5": "redis://app:s3cret@" + host + "/5",
		"tls acl db5":   "rediss://app:s3cret@" + tlsHost + "/5",
	} {
		t.Run(name, func(t *testing.T) {
			hs, err := pikkuredis.OpenEventHubStore(url, pikkuredis.WithKeyPrefix(prefix),
				pikkuredis.WithDialOptions(redis.DialTLSConfig(&tls.Config{RootCAs: ca.pool()})))
			require.NoError(t, err)
			defer hs.Close()
			ctx := ctxT(t)
			var wg sync.WaitGroup
			for g := 0; g < 4; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 10; i++ {
						ids, err := hs.GetChannelIDsForTopic(ctx, "big")
						if !assert.NoError(t, err) || !assert.Len(t, ids, 10000) {
							return
						}
						ok, err := hs.Subscribe(ctx, "own"+strconv.Itoa(g), "c"+strconv.Itoa(i))
						if !assert.NoError(t, err) || !assert.True(t, ok) {
							return
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}
