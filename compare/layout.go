package main

import (
	"crypto/sha1"
	"encoding/binary"
	"strconv"

	"github.com/mna/redisc"
)

// layout names the keys the stores keep, as the README documents them, so
// that the runner can seed and check them with raw commands: the standard
// layout of @pikku/redis ({prefix}:channel:{id}, ...), or the sharded one
// of WithShards(n), where the same keys live under n shard prefixes
// {prefix}:{tag}, a channel's under the shard of its id. startCluster
// checks that the stores agree with it before anything is measured.
type layout struct {
	prefix string
	shards []string // the prefix of each shard; nil for the standard layout
}

func standardLayout(prefix string) layout { return layout{prefix: prefix} }

// shardedLayout is WithShards(n) on prefix (n >= 2): shard i's tag is the
// smallest decimal number whose cluster slot is (2i+1)*16384/(2n).
func shardedLayout(prefix string, n int) layout {
	want := map[int]int{} // slot -> shard
	for i := 0; i < n; i++ {
		want[(2*i+1)*redisc.HashSlots/(2*n)] = i
	}
	l := layout{prefix: prefix, shards: make([]string, n)}
	for tag, left := 0, n; left > 0; tag++ {
		s := strconv.Itoa(tag)
		if i, ok := want[redisc.Slot(s)]; ok && l.shards[i] == "" {
			l.shards[i] = prefix + ":{" + s + "}"
			left--
		}
	}
	return l
}

// of is the prefix of the shard of a channel id: the first 4 bytes of its
// SHA-1, big-endian, modulo the number of shards.
func (l layout) of(id string) string {
	if l.shards == nil {
		return l.prefix
	}
	sum := sha1.Sum([]byte(id))
	return l.shards[binary.BigEndian.Uint32(sum[:4])%uint32(len(l.shards))]
}

func (l layout) channel(id string) string { return l.of(id) + ":channel:" + id }
func (l layout) subs(id string) string    { return l.of(id) + ":subs:" + id }

// topic is the set of topic that holds the channel id.
func (l layout) topic(topic, id string) string { return l.of(id) + ":topic:" + topic }

// topicSets are every set of topic: one per shard.
func (l layout) topicSets(topic string) []string {
	if l.shards == nil {
		return []string{l.prefix + ":topic:" + topic}
	}
	out := make([]string, len(l.shards))
	for i, p := range l.shards {
		out[i] = p + ":topic:" + topic
	}
	return out
}
