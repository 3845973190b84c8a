package pikkuredis_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/gomodule/redigo/redis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pikkujs/pikkuredis"
)

// The iterator returns every member, whether the topic fits in one SSCAN
// page (a compact set) or takes many.
func TestScanChannelIDsForTopicReturnsEveryMember(t *testing.T) {
	_, hs, prefix := stores(t)
	ctx := ctxT(t)
	c := dialRaw(t)
	for _, n := range []int{0, 5, 2500} {
		t.Run(fmt.Sprintf("members=%d", n), func(t *testing.T) {
			topic := fmt.Sprintf("t%d", n)
			fillSet(t, c, prefix+":topic:"+topic, n)
			want, err := redis.Strings(c.Do("SMEMBERS", prefix+":topic:"+topic))
			require.NoError(t, err)
			var got []string
			for id, err := range hs.ScanChannelIDsForTopic(ctx, topic) {
				require.NoError(t, err)
				got = append(got, id)
			}
			if n <= 5 {
				assert.ElementsMatch(t, want, got, "a compact set comes in one page, each id once")
				return
			}
			// SSCAN may repeat an id if the set is resized meanwhile.
			slices.Sort(got)
			slices.Sort(want)
			assert.Equal(t, want, slices.Compact(got))
		})
	}
}

func TestScanChannelIDsForTopicStopsWhenAsked(t *testing.T) {
	_, hs, prefix := stores(t)
	ctx := ctxT(t)
	fillSet(t, dialRaw(t), prefix+":topic:big", 2500)
	seen := 0
	for _, err := range hs.ScanChannelIDsForTopic(ctx, "big") {
		require.NoError(t, err)
		seen++
		if seen == 3 {
			break
		}
	}
	assert.Equal(t, 3, seen)
}

func TestScanChannelIDsForTopicErrors(t *testing.T) {
	_, hs, prefix := stores(t)
	ctx := ctxT(t)
	errsOf := func(hs *pikkuredis.EventHubStore, topic string) (ids []string, errs []error) {
		for id, err := range hs.ScanChannelIDsForTopic(ctx, topic) {
			if err != nil {
				errs = append(errs, err)
				continue
			}
			ids = append(ids, id)
		}
		return ids, errs
	}

	ids, errs := errsOf(hs, "")
	assert.Empty(t, ids)
	require.Len(t, errs, 1, "one error, then the iterator stops")
	assert.ErrorIs(t, errs[0], pikkuredis.ErrInvalidArgument)

	_, err := dialRaw(t).Do("SET", prefix+":topic:wrongtype", "x")
	require.NoError(t, err)
	_, errs = errsOf(hs, "wrongtype")
	require.Len(t, errs, 1)
	assert.ErrorContains(t, errs[0], "pikkuredis: scan channel ids for topic: WRONGTYPE")

	require.NoError(t, hs.Close())
	_, errs = errsOf(hs, "t")
	require.Len(t, errs, 1)
	assert.ErrorIs(t, errs[0], pikkuredis.ErrClosed)
}
