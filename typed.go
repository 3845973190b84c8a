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

// TypedChannelInfo is a channel of today's Pikku API decoded into Go
// types: what Typed.GetChannel returns.
type TypedChannelInfo[O any] struct {
	ChannelID   string
	ChannelName string
	OpeningData O      // decoded from the stored JSON ({} when none was stored)
	PikkuUserID string // "" when none
	CreatedAt   time.Time
}

// GetChannel returns the channel with its opening data decoded and its
// Pikku user id, as ChannelStore.GetChannel reads them. A missing channel
// is ErrChannelNotFound; stored JSON that does not fit O is an error.
func (t Typed[O, S]) GetChannel(ctx context.Context, channelID string) (TypedChannelInfo[O], error) {
	if err := t.check(); err != nil {
		return TypedChannelInfo[O]{}, err
	}
	raw, err := t.store.GetChannel(ctx, channelID)
	if err != nil {
		return TypedChannelInfo[O]{}, err
	}
	out := TypedChannelInfo[O]{
		ChannelID:   raw.ChannelID,
		ChannelName: raw.ChannelName,
		PikkuUserID: raw.PikkuUserID,
		CreatedAt:   raw.CreatedAt,
	}
	if err := json.Unmarshal(raw.OpeningData, &out.OpeningData); err != nil {
		return TypedChannelInfo[O]{}, fmt.Errorf("pikkuredis: get channel: channel %s: decode opening data as %T: %w", channelID, out.OpeningData, err)
	}
	return out, nil
}

// SetPikkuUserID records which Pikku user a channel belongs to, as
// ChannelStore.SetPikkuUserID does.
func (t Typed[O, S]) SetPikkuUserID(ctx context.Context, channelID, userID string) error {
	if err := t.check(); err != nil {
		return err
	}
	return t.store.SetPikkuUserID(ctx, channelID, userID)
}

// TypedChannelWithSession is a channel of today's Pikku API decoded into
// Go types, with its user's session: what Typed.GetChannelWithSession
// returns.
type TypedChannelWithSession[O, S any] struct {
	ChannelID   string
	ChannelName string
	OpeningData O      // decoded from the stored JSON ({} when none was stored)
	PikkuUserID string // "" when none
	Session     S      // the zero S when HasSession is false
	HasSession  bool   // false when there is no Pikku user id or no session for it
	CreatedAt   time.Time
}

// GetChannelWithSession returns the channel with its opening data and its
// Pikku user's session decoded, read in one atomic step as
// ChannelStore.GetChannelWithSession says. Stored JSON that does not fit O
// or S is an error; a stored null session decodes as S decodes null (the
// zero value for a struct), with HasSession true.
func (t Typed[O, S]) GetChannelWithSession(ctx context.Context, channelID string) (TypedChannelWithSession[O, S], error) {
	if err := t.check(); err != nil {
		return TypedChannelWithSession[O, S]{}, err
	}
	raw, err := t.store.GetChannelWithSession(ctx, channelID)
	if err != nil {
		return TypedChannelWithSession[O, S]{}, err
	}
	out := TypedChannelWithSession[O, S]{
		ChannelID:   raw.ChannelID,
		ChannelName: raw.ChannelName,
		PikkuUserID: raw.PikkuUserID,
		HasSession:  raw.HasSession,
		CreatedAt:   raw.CreatedAt,
	}
	if err := json.Unmarshal(raw.OpeningData, &out.OpeningData); err != nil {
		return TypedChannelWithSession[O, S]{}, fmt.Errorf("pikkuredis: get channel with session: channel %s: decode opening data as %T: %w", channelID, out.OpeningData, err)
	}
	if raw.HasSession {
		if err := json.Unmarshal(raw.Session, &out.Session); err != nil {
			return TypedChannelWithSession[O, S]{}, fmt.Errorf("pikkuredis: get channel with session: channel %s: decode the session of pikku user %s as %T: %w", channelID, raw.PikkuUserID, out.Session, err)
		}
	}
	return out, nil
}

// TypedSessionStore is a view of a SessionStore whose sessions have the Go
// type S (the Go counterpart of @pikku/core's CoreUserSession type), so
// that callers never marshal or unmarshal by hand. S is stored as
// encoding/json encodes it, the same bytes as JSON.stringify (see
// docs/layout.md); the raw SessionStore stays usable beside it.
type TypedSessionStore[S any] struct {
	store *SessionStore
}

// NewTypedSessionStore returns a typed view of store.
func NewTypedSessionStore[S any](store *SessionStore) TypedSessionStore[S] {
	return TypedSessionStore[S]{store: store}
}

func (t TypedSessionStore[S]) check() error {
	if t.store == nil {
		return errors.New("pikkuredis: TypedSessionStore has no store: make it with NewTypedSessionStore(store)")
	}
	return nil
}

// Get returns the session of a Pikku user decoded as S, and ok false (the
// zero S, no error) when the user has none. Stored JSON that does not fit
// S is an error, never a silent zero value; a stored null decodes as S
// decodes null (the zero value for a struct), with ok true.
func (t TypedSessionStore[S]) Get(ctx context.Context, pikkuUserID string) (session S, ok bool, err error) {
	if err := t.check(); err != nil {
		return session, false, err
	}
	raw, ok, err := t.store.Get(ctx, pikkuUserID)
	if err != nil || !ok {
		return session, false, err
	}
	if err := json.Unmarshal(raw, &session); err != nil {
		var zero S
		return zero, false, fmt.Errorf("pikkuredis: get session: pikku user %s: decode session as %T: %w", pikkuUserID, session, err)
	}
	return session, true, nil
}

// Set stores the session of a Pikku user, as SessionStore.Set does.
func (t TypedSessionStore[S]) Set(ctx context.Context, pikkuUserID string, session S) error {
	if err := t.check(); err != nil {
		return err
	}
	return t.store.Set(ctx, pikkuUserID, session)
}

// Clear deletes the session of a Pikku user, as SessionStore.Clear does.
func (t TypedSessionStore[S]) Clear(ctx context.Context, pikkuUserID string) error {
	if err := t.check(); err != nil {
		return err
	}
	return t.store.Clear(ctx, pikkuUserID)
}

// TypedState is a view of a ChannelStore whose channel state (@pikku/redis
// 0.12.18's setState/getState) has the Go type T, so that callers never
// marshal or unmarshal by hand. The raw ChannelStore stays usable beside
// it.
type TypedState[T any] struct {
	store *ChannelStore
}

// NewTypedState returns a typed view of the channel state of store.
func NewTypedState[T any](store *ChannelStore) TypedState[T] {
	return TypedState[T]{store: store}
}

func (t TypedState[T]) check() error {
	if t.store == nil {
		return errors.New("pikkuredis: TypedState has no store: make it with NewTypedState(store)")
	}
	return nil
}

// Set stores a channel's state, as ChannelStore.SetState does: encoded
// as encoding/json encodes T. On a missing channel it returns
// ErrChannelNotFound and writes nothing.
func (t TypedState[T]) Set(ctx context.Context, channelID string, state T) error {
	if err := t.check(); err != nil {
		return err
	}
	return t.store.SetState(ctx, channelID, state)
}

// Get returns a channel's state decoded as T, and ok false (the zero T,
// no error) when there is none, in the cases ChannelStore.GetState says
// (no state, a stored null, no channel). Stored JSON that does not fit T
// is an error, never a silent zero value.
func (t TypedState[T]) Get(ctx context.Context, channelID string) (state T, ok bool, err error) {
	if err := t.check(); err != nil {
		return state, false, err
	}
	raw, ok, err := t.store.GetState(ctx, channelID)
	if err != nil || !ok {
		return state, false, err
	}
	if err := json.Unmarshal(raw, &state); err != nil {
		var zero T
		return zero, false, fmt.Errorf("pikkuredis: get state: channel %s: decode state as %T: %w", channelID, state, err)
	}
	return state, true, nil
}

// Clear deletes a channel's state, as ChannelStore.ClearState does.
func (t TypedState[T]) Clear(ctx context.Context, channelID string) error {
	if err := t.check(); err != nil {
		return err
	}
	return t.store.ClearState(ctx, channelID)
}
