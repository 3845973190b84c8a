package pikkuredis_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pikkujs/pikkuredis"
)

// Breaker probes for issue 15's dial PING: a server that refuses PING
// (an ACL user without +ping; a renamed PING answers the same error
// kind, but internal/redisserver needs PING to start a server) still carries a store's
// calls when the caller skips Init (Init PINGs itself).
func TestRegress15DialPingRefusedStillCarriesCalls(t *testing.T) {
	cases := map[string]func(t *testing.T) string{
		"default user without +ping": func(t *testing.T) string {
			srv := ownRedis(t)
			admin := dialURL(t, srv.URL)
			defer admin.Close()
			_, err := admin.Do("ACL", "SETUSER", "default", "-ping")
			require.NoError(t, err)
			return srv.URL
		},
	}
	for name, url := range cases {
		t.Run(name, func(t *testing.T) {
			u := url(t)
			for mode, opts := range dialModes {
				t.Run(mode, func(t *testing.T) {
					hs, err := pikkuredis.OpenEventHubStore(u, append(opts, pikkuredis.WithKeyPrefix(randomPrefix(t)))...)
					require.NoError(t, err)
					defer hs.Close()
					ok, err := hs.Subscribe(ctxT(t), "news", "c1")
					require.NoError(t, err)
					assert.True(t, ok)
					ids, err := hs.GetChannelIDsForTopic(ctxT(t), "news")
					require.NoError(t, err)
					assert.Equal(t, []string{"c1"}, ids)
				})
			}
		})
	}
}
