package pikkuredis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pikkujs/pikkuredis"
)

// Limits of what the stores take: how deep, how large.

// nested returns a JSON value depth levels deep: arrays around an object.
func nested(depth int) any {
	var v any = map[string]any{"deepest": true}
	for i := 1; i < depth; i++ {
		v = []any{v}
	}
	return v
}

// encoding/json reads JSON no deeper than 10,000 levels, so that is as deep
// as a stored value may be: deeper is refused when written (it used to be
// stored, and every later read of the channel failed with "stored ... is
// not JSON").
func TestJSONNestingLimit(t *testing.T) {
	cs, _, prefix := stores(t)
	ctx := ctxT(t)
	c := dialRaw(t)
	defer c.Close()

	deepest := nested(10000)
	require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c1", OpeningData: deepest}))
	require.NoError(t, cs.SetUserSession(ctx, "c1", deepest))
	require.NoError(t, cs.SetState(ctx, "c1", deepest))
	got, err := cs.GetChannelAndSession(ctx, "c1")
	require.NoError(t, err)
	want := mustJS(t, deepest)
	assert.Equal(t, want, string(got.OpeningData))
	assert.Equal(t, want, string(got.Session))
	state, ok, err := cs.GetState(ctx, "c1")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, want, string(state))

	before := dump(t, c, prefix+":*")
	tooDeep := nested(10001)
	requireInvalid(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c2", OpeningData: tooDeep}), "AddChannel")
	requireInvalid(t, cs.SetUserSession(ctx, "c1", tooDeep), "SetUserSession")
	requireInvalid(t, cs.SetState(ctx, "c1", tooDeep), "SetState")
	assert.ErrorContains(t, cs.SetState(ctx, "c1", tooDeep), "nested more than 10000 levels deep")
	requireKeyspace(t, c, prefix+":*", before, "refused values write nothing")
}

// payloadText returns exactly n bytes of text that JSON writes as it is
// (no escapes): ASCII, HTML characters, two- to four-byte UTF-8, U+2028.
func payloadText(n int) string {
	const pattern = "pikku <a href='x'>&amp;</a> é 中文 🎉 \u2028 0123456789 "
	s := strings.Repeat(pattern, n/len(pattern)+1)[:n]
	for !utf8.ValidString(s) { // cut inside a character: pad instead
		s = s[:len(s)-1]
	}
	return s + strings.Repeat("x", n-len(s))
}

// largeValues returns an opening data, a session and a state whose JSON
// text is exactly size bytes each: one long string, a thousand objects,
// and raw JSON.
func largeValues(t testing.TB, size int) (opening, session, state any) {
	opening = map[string]any{"blob": payloadText(size - len(`{"blob":""}`))}
	var items []any
	n := 2 // the brackets
	line := payloadText(1000)
	for i := 0; ; i++ {
		item := map[string]any{"i": i, "s": line}
		l := len(mustJS(t, item)) + 1
		if n+l > size-2048 {
			break
		}
		items = append(items, item)
		n += l
	}
	items = append(items, payloadText(size-n-2)) // the last comma and quotes
	session = items
	state = json.RawMessage(`{"state":"` + payloadText(size-len(`{"state":""}`)) + `"}`)
	for _, v := range []any{opening, session, state} {
		require.Len(t, mustJS(t, v), size)
	}
	return opening, session, state
}

// A 1 MiB opening data, session and state round-trip exactly, through the
// auto-pipelined default and through a pool of connections, while other
// callers make small calls on the same stores: a large value breaks, loses
// or mixes up none of them (on a pool it delays the calls queued behind it
// on its connection by its transfer; an auto-pipelined store sends values
// over 512 KiB over a connection of their own).
func TestLargePayloads(t *testing.T) {
	const size = 1 << 20
	opening, session, state := largeValues(t, size)
	wantOpening, wantSession, wantState := mustJS(t, opening), mustJS(t, session), mustJS(t, state)
	for name, opts := range map[string][]pikkuredis.Option{
		"auto-pipelined":        nil,
		"WithoutAutoPipelining": {pikkuredis.WithoutAutoPipelining()},
	} {
		t.Run(name, func(t *testing.T) {
			cs, hs, _ := stores(t, opts...)
			ctx := ctxT(t)
			stop := make(chan struct{})
			var calls atomic.Int64
			var slowest atomic.Int64
			var small sync.WaitGroup
			smallErrs := make(chan error, 8)
			for g := range 8 {
				small.Add(1)
				go func() {
					defer small.Done()
					smallErrs <- smallCalls(ctx, cs, hs, g, stop, &calls, &slowest)
				}()
			}
			var big sync.WaitGroup
			bigErrs := make(chan error, 2)
			for b := range 2 { // two at once: two large values in one pipeline
				big.Add(1)
				go func() {
					defer big.Done()
					bigErrs <- bigCalls(ctx, cs, "big-"+strconv.Itoa(b), opening, session, state, wantOpening, wantSession, wantState)
				}()
			}
			big.Wait()
			close(stop)
			small.Wait()
			close(bigErrs)
			close(smallErrs)
			for err := range bigErrs {
				require.NoError(t, err)
			}
			for err := range smallErrs {
				require.NoError(t, err)
			}
			require.Positive(t, calls.Load(), "small calls ran alongside")
			t.Logf("%d small calls alongside the large ones; the slowest took %v", calls.Load(), time.Duration(slowest.Load()))
		})
	}
}

// bigCalls writes the large values on channel id, reads them back and
// removes the channel.
func bigCalls(ctx context.Context, cs *pikkuredis.ChannelStore, id string, opening, session, state any, wantOpening, wantSession, wantState string) error {
	if err := cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id, ChannelName: "big", OpeningData: opening}); err != nil {
		return err
	}
	if err := cs.SetUserSession(ctx, id, session); err != nil {
		return err
	}
	if err := cs.SetState(ctx, id, state); err != nil {
		return err
	}
	got, err := cs.GetChannelAndSession(ctx, id)
	if err != nil {
		return err
	}
	st, ok, err := cs.GetState(ctx, id)
	if err != nil {
		return err
	}
	if string(got.OpeningData) != wantOpening || string(got.Session) != wantSession || !ok || string(st) != wantState {
		return fmt.Errorf("%s: a large value did not come back exactly (lengths %d, %d, %d)", id, len(got.OpeningData), len(got.Session), len(st))
	}
	return cs.RemoveChannels(ctx, []string{id})
}

// smallCalls adds, reads, subscribes and removes small channels of its
// own until stop, checking each answer, and counts its calls.
func smallCalls(ctx context.Context, cs *pikkuredis.ChannelStore, hs *pikkuredis.EventHubStore, g int, stop <-chan struct{}, calls, slowest *atomic.Int64) error {
	timed := func(f func() error) error {
		start := time.Now()
		err := f()
		if d := int64(time.Since(start)); d > slowest.Load() {
			slowest.Store(d) // racy max: a log line, not a check
		}
		calls.Add(1)
		return err
	}
	topic := "small-topic-" + strconv.Itoa(g)
	for k := 0; ; k++ {
		select {
		case <-stop:
			return nil
		default:
		}
		id := fmt.Sprintf("small-%d-%d", g, k)
		want := fmt.Sprintf(`{"g":%d,"k":%d}`, g, k)
		var got pikkuredis.ChannelAndSession
		var ids []string
		steps := []func() error{
			func() error {
				return cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id, OpeningData: json.RawMessage(want)})
			},
			func() (err error) { got, err = cs.GetChannelAndSession(ctx, id); return err },
			func() error { _, err := hs.Subscribe(ctx, topic, id); return err },
			func() (err error) { ids, err = hs.GetChannelIDsForTopic(ctx, topic); return err },
			func() error { return cs.RemoveChannels(ctx, []string{id}) },
		}
		for _, step := range steps {
			if err := timed(step); err != nil {
				return fmt.Errorf("small call %s: %w", id, err)
			}
		}
		if got.ChannelID != id || string(got.OpeningData) != want {
			return fmt.Errorf("small call %s read %s %s", id, got.ChannelID, got.OpeningData)
		}
		if len(ids) != 1 || ids[0] != id {
			return fmt.Errorf("small call %s: topic %s holds %q", id, topic, ids)
		}
	}
}

// BenchmarkLargeValue: a value of 1, 16 and 64 MiB written and read back,
// as opening data (AddChannel, GetChannelAndSession: HSET and HMGET) and as
// a state (SetState, GetState: a script and HGET), on an auto-pipelined
// store. MB/s counts the bytes written and read.
//
//	go test -run '^$' -bench LargeValue -benchtime 5x .
func BenchmarkLargeValue(b *testing.B) {
	for _, mib := range []int{1, 16, 64} {
		size := mib << 20
		value := map[string]any{"blob": payloadText(size - len(`{"blob":""}`))}
		ops := map[string]func(ctx context.Context, cs *pikkuredis.ChannelStore) (int, error){
			"opening data": func(ctx context.Context, cs *pikkuredis.ChannelStore) (int, error) {
				if err := cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "big", OpeningData: value}); err != nil {
					return 0, err
				}
				got, err := cs.GetChannelAndSession(ctx, "big")
				return len(got.OpeningData), err
			},
			"state": func(ctx context.Context, cs *pikkuredis.ChannelStore) (int, error) {
				if err := cs.SetState(ctx, "big", value); err != nil {
					return 0, err
				}
				got, _, err := cs.GetState(ctx, "big")
				return len(got), err
			},
		}
		for _, name := range []string{"opening data", "state"} {
			b.Run(fmt.Sprintf("%s/%dMiB", name, mib), func(b *testing.B) {
				cs, _, _ := openStores(b)
				ctx := context.Background()
				require.NoError(b, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "big"}))
				b.SetBytes(2 * int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					n, err := ops[name](ctx, cs)
					if err != nil || n != size {
						b.Fatalf("read back %d bytes of %d: %v", n, size, err)
					}
				}
			})
		}
	}
}
