package pikkuredis_test

import (
	"context"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pikkujs/pikkuredis"
)

// fullBacklog returns host:port of a socket listening with backlog 0 and
// never accepting, whose queue is already full: a further connect hangs
// (its SYNs are dropped).
func fullBacklog(t *testing.T) string {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	require.NoError(t, err)
	require.NoError(t, syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	require.NoError(t, syscall.Listen(fd, 0))
	sa, err := syscall.Getsockname(fd)
	require.NoError(t, err)
	addr := (&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*syscall.SockaddrInet4).Port}).String()
	t.Cleanup(func() { syscall.Close(fd) })
	for i := 0; i < 3; i++ {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
	}
	return addr
}

// DialURLContext's doc: "as redis.DialURLContext does (same URL forms,
// same options)". redis.DialConnectTimeout is one of those options.
func TestReviewDialURLContextIgnoresDialConnectTimeout(t *testing.T) {
	addr := fullBacklog(t)
	start := time.Now()
	_, err := redis.DialURLContext(context.Background(), "redis://"+addr, redis.DialConnectTimeout(300*time.Millisecond))
	t.Logf("redigo's DialURLContext with DialConnectTimeout(300ms): %v after %v", err, time.Since(start))
	start = time.Now()
	_, err = pikkuredis.DialURLContext(context.Background(), "redis://"+addr, redis.DialConnectTimeout(300*time.Millisecond))
	d := time.Since(start)
	t.Logf("pikkuredis.DialURLContext with DialConnectTimeout(300ms): %v after %v", err, d)
	assert.Less(t, d, time.Second, "DialConnectTimeout ignored")
}

// A caller's own DialContextFunc in WithDialOptions, and a caller's pool
// whose Dial is redigo's, still work with CheckIdleConn.
func TestReviewCallersOwnDial(t *testing.T) {
	srv := ownRedis(t, "--timeout", "1")
	var dials int
	own := redis.DialContextFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials++
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	})
	for mode, opts := range openModes {
		t.Run(mode, func(t *testing.T) {
			dials = 0
			cs, _ := openBoth(t, srv.URL, append(opts, pikkuredis.WithKeyPrefix(randomPrefix(t)), pikkuredis.WithDialOptions(own))...)
			ctx := context.Background()
			require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "a", ChannelName: "A"}))
			time.Sleep(2500 * time.Millisecond) // the server closes it
			_, err := cs.GetChannelAndSession(ctx, "a")
			t.Logf("after the server closed the idle connection: %v (dials %d)", err, dials)
		})
	}
	t.Run("caller's pool, redigo Dial", func(t *testing.T) {
		p := poolFor(t, srv.URL)
		p.TestOnBorrowContext = pikkuredis.CheckIdleConn
		cs := pikkuredis.NewChannelStore(p, pikkuredis.WithKeyPrefix(randomPrefix(t)))
		ctx := context.Background()
		require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "a", ChannelName: "A"}))
		time.Sleep(2500 * time.Millisecond)
		_, err := cs.GetChannelAndSession(ctx, "a")
		assert.NoError(t, err)
	})
	t.Run("DialURLContext sentinel URL", func(t *testing.T) {
		_, err := pikkuredis.DialURLContext(context.Background(), "redis+sentinel://127.0.0.1:1/mymaster")
		t.Logf("DialURLContext(redis+sentinel://...): %v", err)
	})
}
