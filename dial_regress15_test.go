package pikkuredis_test

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pikkujs/pikkuredis"
)

// Breaker probes for issue 15: every dial-path failure reads "connect to
// redis: ..." and matches ErrConnection, on every way a store dials.

// dialFailsEvery opens an EventHubStore on url in each way a store can
// dial it (auto-pipelined, owned pool, a caller's pool over
// DialURLContext), makes one call and checks the dial error.
func dialFailsEvery(t *testing.T, url string, dialOpts []redis.DialOption, says ...string) {
	t.Helper()
	dialFailsAs(t, true, url, dialOpts, says...)
}

// dialFailsAs is dialFailsEvery for a dial whose failure is a connection
// fault (conn) or one refused for good, which reads "connect to redis"
// all the same but is not ErrConnection (errors.go, 9010780).
func dialFailsAs(t *testing.T, conn bool, url string, dialOpts []redis.DialOption, says ...string) {
	t.Helper()
	opens := map[string]func() *pikkuredis.EventHubStore{
		"auto-pipelined": func() *pikkuredis.EventHubStore {
			hs, err := pikkuredis.OpenEventHubStore(url, pikkuredis.WithKeyPrefix("{r15}"), pikkuredis.WithDialOptions(dialOpts...))
			require.NoError(t, err)
			return hs
		},
		"owned pool": func() *pikkuredis.EventHubStore {
			hs, err := pikkuredis.OpenEventHubStore(url, pikkuredis.WithKeyPrefix("{r15}"), pikkuredis.WithoutAutoPipelining(), pikkuredis.WithDialOptions(dialOpts...))
			require.NoError(t, err)
			return hs
		},
	}
	if !strings.HasPrefix(url, "redis+") {
		opens["caller's pool, DialURLContext"] = func() *pikkuredis.EventHubStore {
			pool := &redis.Pool{DialContext: func(ctx context.Context) (redis.Conn, error) {
				return pikkuredis.DialURLContext(ctx, url, dialOpts...)
			}}
			t.Cleanup(func() { pool.Close() })
			return pikkuredis.NewEventHubStore(pool, pikkuredis.WithKeyPrefix("{r15}"))
		}
	}
	for mode, open := range opens {
		t.Run(mode, func(t *testing.T) {
			hs := open()
			defer hs.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			_, err := hs.Subscribe(ctx, "news", "c1")
			require.Error(t, err)
			t.Log(err)
			if conn {
				assert.ErrorIs(t, err, pikkuredis.ErrConnection)
			} else {
				assert.NotErrorIs(t, err, pikkuredis.ErrConnection, "refused for good")
			}
			assert.Contains(t, err.Error(), "connect to redis: ")
			assert.Equal(t, 1, strings.Count(err.Error(), "connect to redis: "), "said once")
			for _, s := range says {
				assert.Contains(t, err.Error(), s)
			}
		})
	}
}

func TestRegress15DialFailuresSayConnectToRedis(t *testing.T) {
	t.Run("TLS with a wrong CA", func(t *testing.T) {
		srv, _ := tlsRedis(t)
		dialFailsAs(t, false, srv.TLSURL, []redis.DialOption{redis.DialTLSConfig(&tls.Config{RootCAs: newTestCA(t, "other").pool()})}, "certificate")
	})
	t.Run("ACL: a user that does not exist", func(t *testing.T) {
		srv := ownRedis(t)
		dialFailsAs(t, false, "redis://nobody:pw@"+srv.Addr, nil, "WRONGPASS")
	})
	t.Run("SELECT of a db that does not exist", func(t *testing.T) {
		srv := ownRedis(t)
		dialFailsAs(t, false, srv.URL+"/99", nil, "DB index")
	})
	t.Run("maxclients", func(t *testing.T) {
		srv := ownRedis(t, "--maxclients", "1")
		hold := dialURL(t, srv.URL)
		defer hold.Close()
		dialFailsEvery(t, srv.URL, nil, "max number of clients")
	})
	t.Run("a proxy that accepts and closes at once", func(t *testing.T) {
		needRedis(t)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer l.Close()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		dialFailsEvery(t, "redis://"+l.Addr().String(), nil)
	})
	t.Run("an HTTP server", func(t *testing.T) {
		needRedis(t)
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		defer hs.Close()
		// It answered, in HTTP: no TLS port, so no rediss:// advice.
		dialFailsEvery(t, "redis://"+strings.TrimPrefix(hs.URL, "http://"), nil)
		t.Run("no TLS advice", func(t *testing.T) {
			_, err := pikkuredis.DialURLContext(ctxT(t), "redis://"+strings.TrimPrefix(hs.URL, "http://"))
			require.Error(t, err)
			assert.NotContains(t, err.Error(), "rediss://", "the server answered, in plaintext: it is no TLS port")
		})
	})
	t.Run("sentinel: none up", func(t *testing.T) {
		needRedis(t)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := l.Addr().String()
		l.Close()
		dialFailsEvery(t, "redis+sentinel://"+addr+"/mymaster", nil)
	})
	t.Run("sentinel: silent", func(t *testing.T) {
		needRedis(t)
		addr, _ := silentListener(t)
		dialFailsEvery(t, "redis+sentinel://"+addr+"/mymaster", nil, addr)
	})
	t.Run("cluster: a silent seed", func(t *testing.T) {
		needRedis(t)
		addr, _ := silentListener(t)
		dialFailsEvery(t, "redis+cluster://"+addr, nil, addr)
	})
	t.Run("cluster: every seed down", func(t *testing.T) {
		needRedis(t)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := l.Addr().String()
		l.Close()
		dialFailsEvery(t, "redis+cluster://"+addr, nil)
	})
}
