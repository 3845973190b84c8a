package pikkuredis

import (
	"context"
	"crypto/sha1"
	"encoding/binary"
	"strconv"
	"strings"
	"sync"

	"github.com/mna/redisc"
	"golang.org/x/sync/errgroup"
)

// keys builds every Redis key of one key prefix; no key name is written
// anywhere else. The standard layout is that of @pikku/redis, byte for
// byte:
//
//	{prefix}:channel:{channelId}  hash  channelId, channelName, openingData, userSession, createdAt
//	                                    (and, since @pikku/redis 0.12.18, pikkuUserId, state)
//	{prefix}:topic:{topic}        set   channel ids subscribed to the topic
//	{prefix}:subs:{channelId}     set   topics the channel is subscribed to
//	{prefix}:session:{pikkuUserId} string JSON text of the user's session
//	                                    (@pikku/redis 0.12.18's RedisSessionStore)
//
// and, only for stores with WithChannelTTL (not in @pikku/redis):
//
//	{prefix}:leases               zset  channel id -> lease deadline, ms since the Unix epoch
//
// The prefix comes first, so a hash-tag prefix such as "{pikku}" puts every
// key of a store in one Redis Cluster slot. remove_channels.lua builds topic
// keys from the prefix in the same way (ARGV[1] .. ":topic:" .. topic), and
// get_channel_with_session.lua session keys (ARGV[1] .. ":session:" .. id).
//
// The sharded layout (WithShards(n)) uses the same keys under n shard
// prefixes, {prefix}:{tag_i} (see shardPrefix): a channel's hash, subs set,
// lease and its memberships of topics live under the prefix of its id's
// shard, a session under that of its user id's shard; a topic has one set
// per shard. The scripts take the shard prefix and stay as they are.
type keys struct{ prefix string }

func (k keys) channel(channelID string) string { return k.prefix + ":channel:" + channelID }
func (k keys) topic(topic string) string       { return k.prefix + ":topic:" + topic }
func (k keys) subs(channelID string) string    { return k.prefix + ":subs:" + channelID }
func (k keys) leases() string                  { return k.prefix + ":leases" }
func (k keys) session(userID string) string    { return k.prefix + ":session:" + userID }

// maxShards is the most shards WithShards takes: far more than a cluster
// has masters, few enough that a topic read (one set per shard) stays cheap.
const maxShards = 1024

// sharded says whether n shards (WithShards) is the sharded layout: 0 and 1
// are the standard one.
func sharded(n int) bool { return n >= 2 }

// shardOf is the shard of a channel id or a Pikku user id among n: the
// first four bytes of its SHA-1, big-endian, modulo n. SHA-1, rather than a
// faster hash, so that a Lua script computes the same with redis.sha1hex:
// tonumber(string.sub(redis.sha1hex(id), 1, 8), 16) % n.
func shardOf(id string, n int) int {
	sum := sha1.Sum([]byte(id))
	return int(binary.BigEndian.Uint32(sum[:4]) % uint32(n))
}

// slotTags is, for each of the 16,384 Redis Cluster slots, the first
// decimal number ("0", "1", ...) whose CRC16 slot it is: the hash tag that
// puts a key in that slot. Every slot is covered by 109,758; built once,
// in about 30 ms, by the first sharded store.
var slotTags = sync.OnceValue(func() []string {
	tags := make([]string, redisc.HashSlots)
	for i, left := 0, len(tags); left > 0; i++ {
		s := strconv.Itoa(i)
		if slot := redisc.Slot(s); tags[slot] == "" {
			tags[slot] = s
			left--
		}
	}
	return tags
})

// shardSlot is the Redis Cluster slot of shard i of n: the middle of the
// i-th of n equal ranges of slots, so that the n shards spread evenly over
// the slot ranges a cluster gives its masters.
func shardSlot(i, n int) int { return (2*i + 1) * redisc.HashSlots / (2 * n) }

// shardPrefix is the key prefix of shard i of n: prefix + ":{" + tag + "}",
// tag the number whose slot is shardSlot(i, n). Tags depend on n alone, so
// the same n always finds the same keys; another n puts the same ids in
// other shards, and finds few or none of them.
// prefix holds no brace (layoutError), so the tag is the key's hash tag.
func shardPrefix(prefix string, i, n int) string {
	return prefix + ":{" + slotTags()[shardSlot(i, n)] + "}"
}

// shardKeys is the keys of each of n shards; nil for the standard layout,
// and for a layout layoutError refuses.
func shardKeys(prefix string, n int) []keys {
	if !sharded(n) || n > maxShards || strings.ContainsAny(prefix, "{}") {
		return nil
	}
	out := make([]keys, n)
	for i := range out {
		out[i] = keys{prefix: shardPrefix(prefix, i, n)}
	}
	return out
}

// layoutError says why the store's key layout cannot be used: a shard count
// out of range, a sharded prefix holding a brace, or, on Redis Cluster
// (onCluster), a standard layout whose keys would spread over slots. It is
// ErrInvalidArgument; nil when the layout is usable.
func layoutError(cfg config, onCluster bool) error {
	n := cfg.shards
	if n < 0 || n > maxShards {
		return invalid("WithShards(%d): the number of shards must be 2 to %d, or 0 or 1 for the standard layout", n, maxShards)
	}
	if sharded(n) && strings.ContainsAny(cfg.prefix, "{}") {
		return invalid("key prefix %q holds a brace, so it cannot be sharded: WithShards puts each shard's hash tag {...} after the prefix, and Redis Cluster hashes the first {...} of a key", cfg.prefix)
	}
	if onCluster && !sharded(n) {
		if _, ok := hashTag(cfg.prefix); !ok {
			return invalid("key prefix %q is not a hash tag: on Redis Cluster the store's keys would spread over slots, and its scripts build keys inside Lua, which must share the slot of the keys they are given; use a prefix such as \"{pikku}\" (every key in one slot) or WithShards(n)", cfg.prefix)
		}
	}
	return nil
}

// hashTag is the part of s that Redis Cluster hashes when s begins a key,
// whatever follows: by Redis's rule, the text between the first '{' and
// the first '}' after it, if that is not empty. ok is false when s has no
// such tag (a key starting with s may then hash by what follows).
func hashTag(s string) (tag string, ok bool) {
	start := strings.IndexByte(s, '{')
	if start < 0 {
		return "", false
	}
	end := strings.IndexByte(s[start+1:], '}')
	if end <= 0 {
		return "", false
	}
	return s[start+1 : start+1+end], true
}

// isCluster says whether t reaches several servers (a cluster), whose
// keys must then respect slots.
func isCluster(t transport) bool { _, ok := t.(servers); return ok }

// shards is the store's number of shards: 0 for the standard layout.
func (c *conn) shards() int {
	if k := c.opts().shardKeys; k != nil {
		return len(k)
	}
	return 0
}

// keysOf returns the keys of the shard of id (a channel id or a Pikku user
// id): the store's keys in the standard layout.
func (c *conn) keysOf(id string) keys {
	if k := c.opts().shardKeys; k != nil {
		return k[shardOf(id, len(k))]
	}
	return c.key()
}

// shardKeyList is the keys of every shard, in shard order; in the standard
// layout the store's keys alone.
func (c *conn) shardKeyList() []keys {
	if k := c.opts().shardKeys; k != nil {
		return k
	}
	return []keys{c.key()}
}

// shardGroup is the ids of one shard, in the order given.
type shardGroup struct {
	keys keys
	ids  []string
}

// groupByShard splits ids by shard, each group in the order of the ids,
// the groups in the order of their shards' first ids. In the standard
// layout it is one group, ids itself.
func (c *conn) groupByShard(ids []string) []shardGroup {
	k := c.opts().shardKeys
	if k == nil {
		return []shardGroup{{keys: c.key(), ids: ids}}
	}
	var groups []shardGroup
	at := make(map[int]int) // shard -> index in groups
	for _, id := range ids {
		s := shardOf(id, len(k))
		g, ok := at[s]
		if !ok {
			g = len(groups)
			at[s] = g
			groups = append(groups, shardGroup{keys: k[s]})
		}
		groups[g].ids = append(groups[g].ids, id)
	}
	return groups
}

// shardReaders bounds the goroutines of one eachShardAtOnce: enough for
// the masters of a large cluster, few enough that one topic read over a
// pool does not take all its connections.
const shardReaders = 32

// eachShardAtOnce calls fn for every shard (i, its keys), concurrently, at
// most shardReaders at a time, and returns the first error, ending the
// calls still under way (their ctx is cancelled). It asks usable first, so
// that a closed or refused store says so once.
func (c *conn) eachShardAtOnce(ctx context.Context, fn func(ctx context.Context, i int, k keys) error) error {
	if err := c.usable(); err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(shardReaders)
	for i, k := range c.shardKeyList() {
		g.Go(func() error {
			if err := ctx.Err(); err != nil { // an earlier shard failed, or the caller left
				return err
			}
			return fn(ctx, i, k)
		})
	}
	return g.Wait()
}
