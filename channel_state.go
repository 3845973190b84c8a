package pikkuredis

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/gomodule/redigo/redis"
)

// The channel API of today's Pikku (@pikku/redis 0.12.18): a Pikku user id
// and a state per channel, kept in the same hash as the 0.12.3 fields
// (pikkuUserId and state), so both APIs and both languages can be used on
// the same channels. Like SetUserSession, the writes here go through
// set_channel_field.lua and refuse a missing channel with
// ErrChannelNotFound, writing nothing (@pikku/redis would create a hash
// holding only that field).

// ChannelInfo is a stored channel as @pikku/redis 0.12.18's getChannel
// returns it, plus its creation time.
type ChannelInfo struct {
	ChannelID   string
	ChannelName string
	OpeningData json.RawMessage // {} when absent
	PikkuUserID string          // "" when none
	CreatedAt   time.Time       // zero when the hash has no valid createdAt
}

// SetPikkuUserID records which Pikku user a channel belongs to; the empty
// string clears it. On a missing channel it returns ErrChannelNotFound and
// writes nothing.
func (s *ChannelStore) SetPikkuUserID(ctx context.Context, channelID, userID string) error {
	const op = "set pikku user id"
	if err := checkID(channelID); err != nil {
		return wrap(op, err)
	}
	return wrap(op, s.setField(ctx, channelID, fieldPikkuUserID, []byte(userID)))
}

// GetChannel returns a channel with its Pikku user id. A missing channel
// is ErrChannelNotFound.
func (s *ChannelStore) GetChannel(ctx context.Context, channelID string) (ChannelInfo, error) {
	h, err := s.readChannel(ctx, channelID, fieldPikkuUserID)
	if err != nil {
		return ChannelInfo{}, wrap("get channel", err)
	}
	return ChannelInfo{
		ChannelID:   h.id,
		ChannelName: h.name,
		OpeningData: h.openingData,
		PikkuUserID: string(h.extra[0]),
		CreatedAt:   h.createdAt,
	}, nil
}

// SetState stores a channel's state as JSON. Every value is stored as it
// encodes, as @pikku/redis stores JSON.stringify(state ?? null): nil is
// stored as null (which GetState reports as no state), false and 0 as
// themselves. ClearState deletes it. On a missing channel it returns
// ErrChannelNotFound and writes nothing.
func (s *ChannelStore) SetState(ctx context.Context, channelID string, state any) error {
	const op = "set state"
	if err := checkID(channelID); err != nil {
		return wrap(op, err)
	}
	b, err := marshalJSON(state)
	if err != nil {
		return wrap(op, invalid("state cannot be encoded as JSON: %v", err))
	}
	return wrap(op, s.setField(ctx, channelID, fieldState, b))
}

// GetState returns a channel's state as stored. ok is false when there is
// none: the field is absent, holds JSON null, or the channel does not exist,
// the cases where @pikku/redis returns undefined. Stored text that is not
// JSON is an error (@pikku/redis returns undefined for it too).
//
// Like @pikku/redis it reads the state field alone, without checking that
// the hash is a whole channel: one read, and code ported from
// `await store.getState(id) ?? fallback` behaves the same.
func (s *ChannelStore) GetState(ctx context.Context, channelID string) (state json.RawMessage, ok bool, err error) {
	const op = "get state"
	if err := checkID(channelID); err != nil {
		return nil, false, wrap(op, err)
	}
	key := s.c.keysOf(channelID).channel(channelID)
	raw, err := redis.Bytes(s.c.do(ctx, "HGET", key, fieldState))
	if err == redis.ErrNil {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, wrap(op, onKey(key, err))
	}
	state, ok, err = jsonField(channelID, fieldState, raw)
	if err != nil {
		return nil, false, wrap(op, err)
	}
	if !ok || string(bytes.TrimSpace(state)) == "null" {
		return nil, false, nil
	}
	return state, true, nil
}

// ClearState deletes a channel's state. On a missing channel it returns
// ErrChannelNotFound (@pikku/redis does nothing and says nothing): a caller
// clearing the state of a channel that is gone learns that it is gone.
func (s *ChannelStore) ClearState(ctx context.Context, channelID string) error {
	const op = "clear state"
	if err := checkID(channelID); err != nil {
		return wrap(op, err)
	}
	return wrap(op, s.setField(ctx, channelID, fieldState, nil))
}

// ChannelWithSession is a stored channel with the session of the Pikku
// user it belongs to, as GetChannelWithSession reads them.
type ChannelWithSession struct {
	ChannelInfo
	// Session is the JSON text stored for the channel's PikkuUserID by a
	// SessionStore (or @pikku/redis 0.12.18's RedisSessionStore) on the
	// same prefix; nil when HasSession is false.
	Session json.RawMessage
	// HasSession is false when the channel has no Pikku user id, or its
	// user has no session (what SessionStore.Get reports as !ok).
	HasSession bool
}

// GetChannelWithSession returns a channel, as GetChannel does, together
// with the session of its Pikku user: what today's Pikku reads with
// getChannel and then sessionStore.get(pikkuUserId), in one round trip and
// one atomic step (get_channel_with_session.lua), so the session is the
// one of the user the channel names at that instant. (One round trip once
// the script is loaded: ChannelStore.Init loads it; without Init the first
// call on a server that lacks it sends it too.) The session is read
// under the store's own key prefix, {prefix}:session:{pikkuUserId}, where
// a SessionStore with the same WithKeyPrefix keeps it. A missing channel
// is ErrChannelNotFound; a stored session that is not JSON is an error.
//
// In the sharded layout (WithShards) the session lives in the shard of
// the user id, the channel in that of the channel id. Where they are the
// same shard, the read is one atomic step as above; where they differ,
// the script reads the channel and its user id, and a second call (GET)
// reads the session from the user's shard: the two reads are then not
// one snapshot, and a user that changes in between can give the channel's
// new user with no session yet, or the old one with the session it had.
func (s *ChannelStore) GetChannelWithSession(ctx context.Context, channelID string) (ChannelWithSession, error) {
	const op = "get channel with session"
	if err := checkID(channelID); err != nil {
		return ChannelWithSession{}, wrap(op, err)
	}
	k, want := s.c.keysOf(channelID), 6
	args := []any{nil, nil, k.channel(channelID), k.prefix}
	if n := s.c.shards(); n > 0 {
		// The sharded form: the script reads the session only when the
		// user's shard is the channel's, and says when it is not.
		args, want = append(args, n, shardOf(channelID, n)), 7
	}
	reply, err := redis.Values(getChannelWithSessionScript.run(ctx, s.c, 1, args))
	if err == nil && len(reply) != want {
		err = fmt.Errorf("script %s replied with %d values, want %d", getChannelWithSessionScript.name, len(reply), want)
	}
	var vals [][]byte
	if err == nil {
		vals, err = redis.ByteSlices(reply[:6], nil)
	}
	elsewhere := false
	if err == nil && want == 7 {
		var n int
		n, err = redis.Int(reply[6], nil)
		elsewhere = n == 1
	}
	if err != nil {
		return ChannelWithSession{}, wrap(op, err)
	}
	h, err := channelFields(channelID, vals[:4])
	if err != nil {
		return ChannelWithSession{}, wrap(op, err)
	}
	out := ChannelWithSession{ChannelInfo: ChannelInfo{
		ChannelID:   h.id,
		ChannelName: h.name,
		OpeningData: h.openingData,
		PikkuUserID: string(vals[4]),
		CreatedAt:   h.createdAt,
	}}
	session := vals[5]
	if elsewhere {
		// The session lives in the user's shard: read it there.
		key := s.c.keysOf(out.PikkuUserID).session(out.PikkuUserID)
		session, err = redis.Bytes(s.c.do(ctx, "GET", key))
		if err == redis.ErrNil {
			session, err = nil, nil
		}
		if err != nil {
			return ChannelWithSession{}, wrap(op, onKey(key, err))
		}
	}
	out.Session, out.HasSession, err = sessionJSON(out.PikkuUserID, session)
	if err != nil {
		return ChannelWithSession{}, wrap(op, err)
	}
	return out, nil
}
