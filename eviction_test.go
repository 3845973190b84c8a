package pikkuredis_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/gomodule/redigo/redis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pikkujs/pikkuredis"
)

// TestInitRefusesAllkeysEvictionPolicies: under an allkeys-* policy Redis
// evicts the index sets themselves, so Init says so, with the policy and
// what to set, on every path; volatile-* and noeviction pass. The scripts
// are loaded all the same, for a caller who accepts the risk.
func TestInitRefusesAllkeysEvictionPolicies(t *testing.T) {
	srv := ownRedis(t)
	admin := dialURL(t, srv.URL)
	defer admin.Close()
	pool := poolFor(t, srv.URL)
	ctx := ctxT(t)

	paths := map[string]func() (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore){}
	for mode, opts := range openModes {
		paths[mode] = func() (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore) {
			return openBoth(t, srv.URL, opts...)
		}
	}
	paths["caller's pool"] = func() (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore) {
		return pikkuredis.NewChannelStore(pool), pikkuredis.NewEventHubStore(pool)
	}

	for _, policy := range []string{"allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl", "noeviction"} {
		_, err := admin.Do("CONFIG", "SET", "maxmemory-policy", policy)
		require.NoError(t, err)
		refused := strings.HasPrefix(policy, "allkeys-")
		for path, open := range paths {
			_, err := admin.Do("SCRIPT", "FLUSH")
			require.NoError(t, err)
			cs, hs := open()
			for name, init := range map[string]func() error{
				"ChannelStore.Init":  func() error { return cs.Init(ctx) },
				"EventHubStore.Init": func() error { return hs.Init(ctx) },
			} {
				err := init()
				if !refused {
					assert.NoError(t, err, "%s, %s, %s", policy, path, name)
					continue
				}
				require.Error(t, err, "%s, %s, %s", policy, path, name)
				assert.True(t, errors.Is(err, pikkuredis.ErrEvictionPolicy), "%s, %s, %s: %v", policy, path, name, err)
				assert.Contains(t, err.Error(), "maxmemory-policy is "+policy)
				assert.Contains(t, err.Error(), "noeviction")
				assert.Contains(t, err.Error(), "volatile-")
			}
			shas := []any{}
			for _, sha := range pikkuredis.ScriptSHAs() {
				shas = append(shas, sha)
			}
			loaded, err := redis.Ints(admin.Do("SCRIPT", append([]any{"EXISTS"}, shas...)...))
			require.NoError(t, err)
			for i, l := range loaded {
				assert.Equal(t, 1, l, "%s, %s: script %v loaded before the check", policy, path, shas[i])
			}
		}
	}
}

// TestInitSkipsTheEvictionCheckWhenRefused: a user that may run neither
// INFO nor CONFIG GET (the ACL line of docs/connections.md grants neither) gets on with
// Init; one that may run CONFIG GET only is checked with it.
func TestInitSkipsTheEvictionCheckWhenRefused(t *testing.T) {
	const pw = "evict-pw-91d3"
	prefix := randomPrefix(t)
	srv, admin := aclRedis(t, pw, map[string]string{"tenant": prefix})
	_, err := admin.Do("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")
	require.NoError(t, err)
	for mode, opts := range openModes {
		cs, hs := openBoth(t, userURL(srv, "tenant", pw), append([]pikkuredis.Option{pikkuredis.WithKeyPrefix(prefix)}, opts...)...)
		assert.NoError(t, cs.Init(ctxT(t)), mode)
		assert.NoError(t, hs.Init(ctxT(t)), mode)
	}
	// The same server refuses an admin's Init, and that of a user who
	// may not run INFO but may read the config.
	cs, _ := openBoth(t, srv.URL)
	assert.ErrorIs(t, cs.Init(ctxT(t)), pikkuredis.ErrEvictionPolicy)
	args := readmeACLLine(t, "configreader", pw, prefix)
	_, err = admin.Do(args[0], toAny(append(args[1:], "+config|get"))...)
	require.NoError(t, err)
	cs, _ = openBoth(t, userURL(srv, "configreader", pw), pikkuredis.WithKeyPrefix(prefix))
	err = cs.Init(ctxT(t))
	assert.ErrorIs(t, err, pikkuredis.ErrEvictionPolicy, "read with CONFIG GET where INFO is refused")
	assert.ErrorContains(t, err, "maxmemory-policy is allkeys-lru")
}
