package pikkuredis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Typed is a view of a ChannelStore whose opening data has the Go type O
// and whose user session has the type S, so that callers never marshal or
// unmarshal by hand. It is the Go counterpart of the generic types of
// @pikku/core's ChannelStore. The raw ChannelStore stays usable beside it.
type Typed[O, S any] struct {
	store *ChannelStore
}

// NewTyped returns a typed view of store.
func NewTyped[O, S any](store *ChannelStore) Typed[O, S] {
	return Typed[O, S]{store: store}
}

// TypedChannel is a stored channel decoded into Go types.
type TypedChannel[O, S any] struct {
	ChannelID   string
	ChannelName string
	OpeningData O // decoded from the stored JSON ({} when none was stored)
	Session     S // the zero S when HasSession is false
	HasSession  bool
	CreatedAt   time.Time
}

// A zero Typed has no store to use; its methods say so rather than panic.
func (t Typed[O, S]) check() error {
	if t.store == nil {
		return errors.New("pikkuredis: Typed has no store: make it with NewTyped(store)")
	}
	return nil
}

// AddChannel stores a channel opened with data.
func (t Typed[O, S]) AddChannel(ctx context.Context, channelID, channelName string, data O) error {
	if err := t.check(); err != nil {
		return err
	}
	return t.store.AddChannel(ctx, Channel{ChannelID: channelID, ChannelName: channelName, OpeningData: data})
}

// SetUserSession stores the session of an existing channel.
func (t Typed[O, S]) SetUserSession(ctx context.Context, channelID string, session S) error {
	if err := t.check(); err != nil {
		return err
	}
	return t.store.SetUserSession(ctx, channelID, session)
}

// ClearUserSession removes the session of an existing channel.
func (t Typed[O, S]) ClearUserSession(ctx context.Context, channelID string) error {
	if err := t.check(); err != nil {
		return err
	}
	return t.store.SetUserSession(ctx, channelID, nil)
}

// GetChannelAndSession returns the channel with its opening data and
// session decoded. Stored JSON that does not fit O or S is an error.
func (t Typed[O, S]) GetChannelAndSession(ctx context.Context, channelID string) (TypedChannel[O, S], error) {
	if err := t.check(); err != nil {
		return TypedChannel[O, S]{}, err
	}
	raw, hasSession, err := t.store.getChannelAndSession(ctx, channelID)
	if err != nil {
		return TypedChannel[O, S]{}, err
	}
	out := TypedChannel[O, S]{
		ChannelID:   raw.ChannelID,
		ChannelName: raw.ChannelName,
		HasSession:  hasSession,
		CreatedAt:   raw.CreatedAt,
	}
	if err := json.Unmarshal(raw.OpeningData, &out.OpeningData); err != nil {
		return TypedChannel[O, S]{}, fmt.Errorf("pikkuredis: get channel and session: channel %s: decode opening data as %T: %w", channelID, out.OpeningData, err)
	}
	if hasSession {
		if err := json.Unmarshal(raw.Session, &out.Session); err != nil {
			return TypedChannel[O, S]{}, fmt.Errorf("pikkuredis: get channel and session: channel %s: decode session as %T: %w", channelID, out.Session, err)
		}
	}
	return out, nil
}
