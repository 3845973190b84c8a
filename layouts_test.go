package pikkuredis_test

import (
	"crypto/sha1"
	"encoding/binary"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gomodule/redigo/redis"
	"github.com/mna/redisc"
	"github.com/stretchr/testify/require"

	"github.com/pikkujs/pikkuredis"
)

// The key layouts the suites run on, and the tests' own statement of
// where each puts a key: docs/layout.md's "Redis layout" and docs/cluster.md's "Sharded layout",
// written here apart from layout.go, so that the stores are checked
// against the documentation rather than against themselves.

// testShards is the shard count of the sharded variant of the suites.
const testShards = 16

// layoutCase is one key layout the suites run on: shards 0 for the
// standard layout.
type layoutCase struct {
	name   string
	shards int
}

var layoutCases = []layoutCase{{"standard", 0}, {"sharded", testShards}}

// forLayouts runs test once per layout, as subtests.
func forLayouts(t *testing.T, test func(t *testing.T, lc layoutCase)) {
	t.Helper()
	for _, lc := range layoutCases {
		t.Run(lc.name, func(t *testing.T) { test(t, lc) })
	}
}

// opts is the options of the layout: WithShards(0) is the standard one.
func (lc layoutCase) opts(more ...pikkuredis.Option) []pikkuredis.Option {
	return append([]pikkuredis.Option{pikkuredis.WithShards(lc.shards)}, more...)
}

// stores opens both stores from the test Redis's URL on a fresh prefix
// in this layout, as stores does, and returns where their keys are.
func (lc layoutCase) stores(t testing.TB, opts ...pikkuredis.Option) (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore, keyLayout) {
	t.Helper()
	cs, hs, prefix := stores(t, lc.opts(opts...)...)
	return cs, hs, keyLayout{prefix: prefix, shards: lc.shards}
}

// on returns the layout of a backend's stores (backends): open with this
// layout's options.
func (lc layoutCase) on(open func(testing.TB, ...pikkuredis.Option) (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore, string)) storesFunc {
	return func(t testing.TB, opts ...pikkuredis.Option) (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore, keyLayout) {
		cs, hs, prefix := open(t, lc.opts(opts...)...)
		return cs, hs, keyLayout{prefix: prefix, shards: lc.shards}
	}
}

// keyLayout says where a store on prefix with shards shards (0: the
// standard layout) keeps each key.
type keyLayout struct {
	prefix string
	shards int
}

// shardOf is the shard of a channel or user id: the first four bytes of
// its SHA-1, big-endian, modulo the shard count.
func (l keyLayout) shardOf(id string) int {
	sum := sha1.Sum([]byte(id))
	return int(binary.BigEndian.Uint32(sum[:4]) % uint32(l.shards))
}

// shardPrefix is the prefix of shard i: {prefix}:{tag}, the tag the first
// decimal number whose slot is the middle of the i-th of n equal slot
// ranges.
func (l keyLayout) shardPrefix(i int) string {
	return l.prefix + ":{" + tagOfSlot((2*i+1)*redisc.HashSlots/(2*l.shards)) + "}"
}

// prefixOf is the prefix of the keys of a channel or user id.
func (l keyLayout) prefixOf(id string) string {
	if l.shards < 2 {
		return l.prefix
	}
	return l.shardPrefix(l.shardOf(id))
}

func (l keyLayout) channel(id string) string      { return l.prefixOf(id) + ":channel:" + id }
func (l keyLayout) subs(id string) string         { return l.prefixOf(id) + ":subs:" + id }
func (l keyLayout) session(userID string) string  { return l.prefixOf(userID) + ":session:" + userID }
func (l keyLayout) leases(id string) string       { return l.prefixOf(id) + ":leases" }
func (l keyLayout) topic(topic, id string) string { return l.prefixOf(id) + ":topic:" + topic }

// shardPrefixes is the prefix of every shard; the prefix alone in the
// standard layout.
func (l keyLayout) shardPrefixes() []string {
	if l.shards < 2 {
		return []string{l.prefix}
	}
	out := make([]string, l.shards)
	for i := range out {
		out[i] = l.shardPrefix(i)
	}
	return out
}

// topicKeys is the topic's set in every shard.
func (l keyLayout) topicKeys(topic string) []string {
	var out []string
	for _, p := range l.shardPrefixes() {
		out = append(out, p+":topic:"+topic)
	}
	return out
}

// members is the topic's channel ids in every shard, sorted.
func (l keyLayout) members(t testing.TB, c redis.Conn, topic string) []string {
	t.Helper()
	var out []string
	for _, key := range l.topicKeys(topic) {
		ids, err := redis.Strings(c.Do("SMEMBERS", key))
		require.NoError(t, err)
		out = append(out, ids...)
	}
	slices.Sort(out)
	return out
}

// leaseScores is every shard's lease set together: channel id ->
// deadline (ms).
func (l keyLayout) leaseScores(t *testing.T, c redis.Conn) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, p := range l.shardPrefixes() {
		for id, d := range leaseScores(t, c, p) {
			out[id] = d
		}
	}
	return out
}

// splitKey cuts a key under prefix into the prefix of its shard (prefix
// itself in the standard layout) and the rest, ":topic:t" say. A sharded
// key is {prefix}:{tag}:...; a standard one never has "{" right after
// {prefix}:, its next part being channel, topic, subs, session or leases.
func splitKey(prefix, key string) (shardPrefix, rest string) {
	rest = strings.TrimPrefix(key, prefix)
	if strings.HasPrefix(rest, ":{") {
		if end := strings.IndexByte(rest, '}'); end > 0 {
			return prefix + rest[:end+1], rest[end+1:]
		}
	}
	return prefix, rest
}

var slotTagCache struct {
	sync.Mutex
	m map[int]string
}

// tagOfSlot is the first decimal number whose Redis Cluster slot is slot.
func tagOfSlot(slot int) string {
	slotTagCache.Lock()
	defer slotTagCache.Unlock()
	if tag, ok := slotTagCache.m[slot]; ok {
		return tag
	}
	for i := 0; ; i++ {
		if s := strconv.Itoa(i); redisc.Slot(s) == slot {
			if slotTagCache.m == nil {
				slotTagCache.m = map[int]string{}
			}
			slotTagCache.m[slot] = s
			return s
		}
	}
}

// storesFunc opens both stores on a fresh prefix and says where their
// keys are.
type storesFunc func(testing.TB, ...pikkuredis.Option) (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore, keyLayout)

// layoutBackends is every backend (backends) in every layout, named
// "backend/layout".
func layoutBackends() map[string]storesFunc {
	out := map[string]storesFunc{}
	for name, open := range backends {
		for _, lc := range layoutCases {
			out[name+"/"+lc.name] = lc.on(open)
		}
	}
	return out
}

// layoutSessionBackends is every session backend (sessionBackends) in
// every layout, named "backend/layout".
func layoutSessionBackends() map[string]func(testing.TB, ...pikkuredis.Option) (*pikkuredis.SessionStore, keyLayout) {
	out := map[string]func(testing.TB, ...pikkuredis.Option) (*pikkuredis.SessionStore, keyLayout){}
	for name, open := range sessionBackends {
		for _, lc := range layoutCases {
			out[name+"/"+lc.name] = func(t testing.TB, opts ...pikkuredis.Option) (*pikkuredis.SessionStore, keyLayout) {
				ss, prefix := open(t, lc.opts(opts...)...)
				return ss, keyLayout{prefix: prefix, shards: lc.shards}
			}
		}
	}
	return out
}
