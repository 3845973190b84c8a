package pikkuredis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/mna/redisc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The tags of n shards sit in n evenly spaced slots, in shard order, each
// the first decimal number of its slot.
func TestShardTagsSpreadEvenlyOverTheSlots(t *testing.T) {
	for _, n := range []int{2, 3, 5, 16, 64, 1000, maxShards} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			seen := map[string]bool{}
			prev := -1
			for i := 0; i < n; i++ {
				p := shardPrefix("pikku", i, n)
				tag, ok := hashTag(p)
				require.True(t, ok, "shard prefix %q has a hash tag", p)
				require.False(t, seen[tag], "tag %s twice", tag)
				seen[tag] = true
				slot := redisc.Slot(p + ":channel:x")
				assert.Equal(t, shardSlot(i, n), slot, "shard %d: its keys are in its slot", i)
				assert.Equal(t, redisc.Slot(tag), slot)
				assert.Greater(t, slot, prev, "slots rise with the shard")
				// Each of the n ranges of 16384/n slots holds one tag, in
				// its middle.
				lo, hi := i*redisc.HashSlots/n, (i+1)*redisc.HashSlots/n
				assert.True(t, slot >= lo && slot < hi, "shard %d's slot %d in [%d, %d)", i, slot, lo, hi)
				assert.InDelta(t, float64(lo+hi)/2, slot, 1, "shard %d's slot in the middle of its range", i)
				prev = slot
			}
			// Each tag is the first number of its slot: no smaller number
			// hashes there.
			first := map[int]int{} // slot -> its shard's tag
			most := 0
			for i := 0; i < n; i++ {
				tag, _ := hashTag(shardPrefix("pikku", i, n))
				num, err := strconv.Atoi(tag)
				require.NoError(t, err, "a tag is a decimal number")
				first[shardSlot(i, n)] = num
				most = max(most, num)
			}
			for num := 0; num < most; num++ {
				if tag, ok := first[redisc.Slot(strconv.Itoa(num))]; ok {
					require.GreaterOrEqual(t, num, tag, "%d hashes to the slot of tag %d, and is smaller", num, tag)
				}
			}
		})
	}
	// Every slot has a tag, and it hashes to that slot.
	tags := slotTags()
	require.Len(t, tags, redisc.HashSlots)
	for slot, tag := range tags {
		require.Equal(t, slot, redisc.Slot(tag), "tag %q", tag)
	}
}

// Ids spread evenly over the shards: 10,000 ids over 16 shards, each
// shard within 20% of the mean (the binomial spread is about 4%); and the
// shard is the SHA-1 formula the README and the Lua script state.
func TestShardOfSpreadsIDsEvenly(t *testing.T) {
	const n, ids = 16, 10000
	counts := make([]int, n)
	for i := 0; i < ids; i++ {
		counts[shardOf(fmt.Sprintf("channel-%d", i), n)]++
	}
	for s, c := range counts {
		assert.InDelta(t, ids/n, c, 0.2*ids/n, "shard %d holds %d of %d ids", s, c, ids)
	}
	t.Logf("ids per shard: %v", counts)
	// sha1("c1") begins 2f22765d: 0x2f22765d % 16 = 13, % 1000 = 677.
	assert.Equal(t, 13, shardOf("c1", 16))
	assert.Equal(t, 677, shardOf("c1", 1000))
}

func TestLayoutError(t *testing.T) {
	cfg := func(prefix string, shards int) config {
		return newConfig([]Option{WithKeyPrefix(prefix), WithShards(shards)})
	}
	for _, tc := range []struct {
		prefix    string
		shards    int
		onCluster bool
		want      string // "" for no error
	}{
		{"pikku", 0, false, ""},
		{"pikku", 1, false, ""},
		{"pikku", 2, false, ""},
		{"pikku", maxShards, false, ""},
		{"pikku", 16, true, ""},
		{"", 16, true, ""},
		{"{pikku}", 0, true, ""},
		{"{pikku}", 1, true, ""},
		{"app:{pikku}:x", 0, true, ""},
		{"{pikku}", 0, false, ""},
		{"pikku", -1, false, "WithShards(-1): the number of shards must be 2 to 1024, or 0 or 1"},
		{"pikku", maxShards + 1, true, "WithShards(1025)"},
		{"{pikku}", 16, false, `key prefix "{pikku}" holds a brace, so it cannot be sharded`},
		{"a}b", 2, true, "cannot be sharded"},
		{"pikku", 0, true, `key prefix "pikku" is not a hash tag: on Redis Cluster`},
		{"pikku", 1, true, "WithShards(n)"},
		{"{}pikku", 0, true, "is not a hash tag"},        // an empty tag is no tag
		{"{}{pikku}", 0, true, "is not a hash tag"},      // only the first '{' counts
		{"{pikku", 0, true, "is not a hash tag"},         // no '}': the key's own might close it
		{"pikku}{", 0, true, "is not a hash tag"},        // '}' before '{'
		{"", 0, true, `key prefix "" is not a hash tag`}, // the empty prefix
	} {
		err := layoutError(cfg(tc.prefix, tc.shards), tc.onCluster)
		name := fmt.Sprintf("prefix %q, %d shards, cluster %v", tc.prefix, tc.shards, tc.onCluster)
		if tc.want == "" {
			assert.NoError(t, err, name)
			continue
		}
		assert.ErrorIs(t, err, ErrInvalidArgument, name)
		assert.ErrorContains(t, err, tc.want, name)
	}
}

// hashTag follows Redis Cluster's rule as redisc.Slot applies it: a
// prefix that is a hash tag puts every key that starts with it in one
// slot, whatever follows; one that is not lets the rest of the key
// choose.
func TestHashTagIsRedisClusterRule(t *testing.T) {
	for _, prefix := range []string{"{pikku}", "a{b}c", "{a}{b}", "{{a}}", "x{}y{z}", "{}pikku", "{pikku", "pikku}", "pikku", "}{a}", "{ab"} {
		_, ok := hashTag(prefix)
		base := redisc.Slot(prefix + ":channel:c1")
		same := true
		for _, rest := range []string{":channel:c2", ":topic:{x}", "}:y", ":subs:z}"} {
			if redisc.Slot(prefix+rest) != base {
				same = false
			}
		}
		assert.Equal(t, ok, same, "prefix %q: a hash tag (%v) is what keeps every key in one slot", prefix, ok)
	}
}

// A bad layout is refused by every call and Init (usable), before a
// connection is touched; a store without a pool still says that first.
func TestBadLayoutIsRefusedByEveryCall(t *testing.T) {
	c := newConn(nil, newConfig([]Option{WithShards(-1)}))
	assert.Equal(t, errNoPool, c.usable())
	p := newPoolTransport(nil, nil, nil) // never dialled: usable refuses first
	c = newConn(p, newConfig([]Option{WithShards(-1)}))
	assert.ErrorIs(t, c.usable(), ErrInvalidArgument)
	_, err := c.do(context.Background(), "PING")
	assert.True(t, errors.Is(err, ErrInvalidArgument), "got %v", err)
	c = newConn(p, newConfig([]Option{WithShards(16), WithKeyPrefix("{x}")}))
	assert.ErrorContains(t, c.usable(), "cannot be sharded")
	assert.Nil(t, c.cfg.shardKeys, "no shard keys for a refused layout")
	assert.Equal(t, 0, c.shards())
}

// Repair's cursor: SCAN's own on one server; master:cursor on a cluster,
// where "0" starts from the first master and anything else is refused
// with ErrInvalidArgument.
func TestParseRepairCursor(t *testing.T) {
	for _, tc := range []struct {
		in, cursor string
		perMaster  bool
		master     int
	}{
		{"0", "0", false, 0},
		{"1234", "1234", false, 0},
		{"0", "0", true, 0},
		{"0:0", "0", true, 0},
		{"2:4711", "4711", true, 2},
	} {
		master, cursor, err := parseRepairCursor(tc.in, tc.perMaster)
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.master, master, tc.in)
		assert.Equal(t, tc.cursor, cursor, tc.in)
	}
	for _, bad := range []string{"1234", "x:1", "-1:5", "2:", ":5"} {
		_, _, err := parseRepairCursor(bad, true)
		assert.ErrorIs(t, err, ErrInvalidArgument, bad)
		assert.ErrorContains(t, err, "master:cursor", bad)
	}
}
