package pikkuredis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Leases (WithChannelTTL): a server that crashes never calls
// RemoveChannels, so without them its channels and their subscriptions
// would stay in Redis for ever. With a TTL, each channel has a deadline in
// {prefix}:leases; live servers push it forward (TouchChannels) and any
// server sweeps the channels past it (SweepExpired).

// maxTTLMillis is the longest lease the scripts take: about 31 years.
const maxTTLMillis = 1e12

// ttlMillis is a lease length as the scripts take it: whole milliseconds,
// rounded up so that a sub-millisecond TTL is not zero, at most
// maxTTLMillis.
func ttlMillis(d time.Duration) int64 {
	if d >= maxTTLMillis*time.Millisecond {
		return maxTTLMillis
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// TouchChannels extends the leases of channels to the store's TTL from
// now (Redis's clock): the heartbeat a server sends for its live sockets,
// well within the TTL. It returns the ids, of those given, whose channel
// no longer exists (it was swept or removed), writing nothing for them:
// the server should close those sockets (adding such a channel again
// would not bring back the subscriptions the sweep removed). A channel
// that exists but has no lease (added by @pikku/redis, or by a store
// without a TTL) gets one. The
// ids go in chunks of WithRemoveChunkSize, each one script call; on an
// error the chunks before it were touched (in the sharded layout,
// WithShards, the chunks go shard by shard, so those are not the first ids
// of the list; touching again is harmless). The store needs WithChannelTTL.
func (s *ChannelStore) TouchChannels(ctx context.Context, channelIDs ...string) (gone []string, err error) {
	const op = "touch channels"
	ttl := s.c.opts().channelTTL
	if ttl <= 0 {
		return nil, wrap(op, invalid("the store has no channel TTL: open it WithChannelTTL"))
	}
	if err := checkIDs(channelIDs); err != nil {
		return nil, wrap(op, err)
	}
	if err := s.c.usable(); err != nil || len(channelIDs) == 0 {
		return nil, wrap(op, err)
	}
	ms := ttlMillis(ttl)
	chunk := s.c.cfg.removeChunkSize
	done := 0
	for _, g := range s.c.groupByShard(channelIDs) {
		for i := 0; i < len(g.ids); i += chunk {
			ids := g.ids[i:min(i+chunk, len(g.ids))]
			args := make([]any, 3, 3+2*len(ids)+1)
			args[2] = g.keys.leases()
			for _, id := range ids {
				args = append(args, g.keys.channel(id))
			}
			args = append(args, ms)
			for _, id := range ids {
				args = append(args, id)
			}
			touched, err := redis.Strings(touchChannelsScript.run(ctx, s.c, 1+len(ids), args))
			if err != nil {
				order := "the first "
				if s.c.shards() > 0 {
					order = "shard by shard, "
				}
				return gone, wrap(op, fmt.Errorf("%s%d of %d ids were touched, the rest may not be: %w", order, done, len(channelIDs), err))
			}
			gone = append(gone, touched...)
			done += len(ids)
		}
	}
	if len(gone) > 1 && s.c.shards() > 0 {
		// Shard by shard, the gone ids came out of order: give them in
		// the order of the list, as the standard layout does.
		at := make(map[string]int, len(channelIDs))
		for i := len(channelIDs) - 1; i >= 0; i-- {
			at[channelIDs[i]] = i
		}
		slices.SortStableFunc(gone, func(a, b string) int { return at[a] - at[b] })
	}
	return gone, nil
}

// SweepExpired removes every channel whose lease has run out (by Redis's
// clock), each with every trace of it as RemoveChannels removes it, and
// returns how many it removed. It works in script calls of at most
// WithRemoveChunkSize channels and ten times as many subscriptions, so
// that no call holds Redis for long, until none is left or ctx ends. Any
// number of servers may sweep the same prefix at once: each channel is
// removed once. On an error, removed counts the channels removed before
// it. Only channels added WithChannelTTL have leases; sweeping a prefix
// that has none does nothing. In the sharded layout (WithShards) each
// shard has its lease set, swept in turn.
//
// An expired channel one of whose keys holds another type (another
// program wrote a string where its subs set or a topic set of it
// belongs) is left whole, lease included, and the sweep goes on with the
// others: it then returns their count and an error that is ErrWrongType,
// says how many channels it left and names the first one's key. The next
// sweep tries those channels again, and removes them once the key is
// gone or holds the right type.
func (s *ChannelStore) SweepExpired(ctx context.Context) (removed int, err error) {
	const op = "sweep expired channels"
	if err := s.c.usable(); err != nil {
		return 0, wrap(op, err)
	}
	skipped, firstBad := 0, ""
	for _, k := range s.c.shardKeyList() {
		n, skip, bad, err := s.sweepShard(ctx, k)
		removed += n
		skipped += skip
		if firstBad == "" {
			firstBad = bad
		}
		if err != nil {
			return removed, wrap(op, err)
		}
	}
	if skipped > 0 {
		return removed, wrap(op, fmt.Errorf("left %d expired channel(s) as they were, with their leases, because a key holds another type; the first: %w",
			skipped, &wrongTypeError{msg: firstBad, reply: redis.Error(firstBad)}))
	}
	return removed, nil
}

// sweepShard sweeps the lease set of one shard (the store's one in the
// standard layout): it returns how many channels it removed, how many it
// left because a key holds another type, and the first such one's text.
func (s *ChannelStore) sweepShard(ctx context.Context, k keys) (removed, skipped int, firstBad string, _ error) {
	chunk := s.c.cfg.removeChunkSize
	// skipped passes over the expired leases this sweep left (they stay
	// first in deadline order), so that each call makes progress and the
	// sweep ends.
	for {
		reply, err := redis.Values(sweepExpiredScript.run(ctx, s.c, 1, []any{nil, nil,
			k.leases(), k.prefix, chunk, removeBudgetPerID * chunk, skipped}))
		// {removed, more}, or {removed, more, skipped, text} when the
		// call left channels with a key of another type.
		var n, more, skip int
		if err == nil && len(reply) != 2 && len(reply) != 4 {
			err = fmt.Errorf("script %s replied with %d values, want 2 or 4", sweepExpiredScript.name, len(reply))
		}
		if err == nil {
			n, err = redis.Int(reply[0], nil)
		}
		if err == nil {
			more, err = redis.Int(reply[1], nil)
		}
		if err == nil && len(reply) == 4 {
			skip, err = redis.Int(reply[2], nil)
			if err == nil && firstBad == "" {
				firstBad, err = redis.String(reply[3], nil)
			}
		}
		if err != nil {
			return removed, skipped, firstBad, err
		}
		removed += n
		skipped += skip
		if more == 0 {
			return removed, skipped, firstBad, nil
		}
		if err := ctx.Err(); err != nil {
			return removed, skipped, firstBad, err
		}
	}
}

// SweepExpiredEvery calls SweepExpired at once and then every interval
// until ctx ends, and returns ctx's error (or the store's error once it is
// closed, or has no pool). report, if not nil, is called
// after each sweep with what it removed and its error; an error does not
// stop the loop (Redis may be back by the next tick). Run it in its own
// goroutine on one or more servers:
//
//	go store.SweepExpiredEvery(ctx, 10*time.Second, nil)
//
// A crashed server's channels then go within the TTL plus one interval.
func (s *ChannelStore) SweepExpiredEvery(ctx context.Context, interval time.Duration, report func(removed int, err error)) error {
	if interval <= 0 {
		return wrap("sweep expired channels", invalid("interval must be > 0, got %v", interval))
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := s.SweepExpired(ctx)
		if ctx.Err() != nil {
			if report != nil && n > 0 {
				report(n, err) // what was removed before ctx ended
			}
			return ctx.Err()
		}
		if errors.Is(err, ErrClosed) || errors.Is(err, errNoPool) {
			return err // no later tick can succeed
		}
		if report != nil {
			report(n, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.c.closing():
			return ErrClosed
		case <-t.C:
		}
	}
}
