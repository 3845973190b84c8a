package pikkuredis

import (
	"context"
	"encoding/json"
	"time"

	"github.com/gomodule/redigo/redis"
)

// SessionStore keeps one user session per Pikku user id, as today's
// Pikku does (@pikku/redis 0.12.18's RedisSessionStore): a string key
// {prefix}:session:{pikkuUserId} holding the session as JSON text, written
// with SET (SET ... EX with WithSessionTTL), read with GET and cleared with
// DEL. Go and TypeScript servers on the same Redis and prefix share the
// sessions both ways. A channel names its user with
// ChannelStore.SetPikkuUserID; ChannelStore.GetChannelWithSession reads a
// channel and its user's session in one atomic step. In the sharded layout
// (WithShards, the same n as the ChannelStore's) the key is under the
// prefix of the user id's shard, {prefix}:{tag}:session:{pikkuUserId}.
//
// It is safe for concurrent use. Each call is one command on one key, so
// it runs no script.
type SessionStore struct {
	c *conn
}

// NewSessionStore returns a session store over the caller's pool (a
// *redis.Pool or a *redisc.Cluster, as NewChannelStore says). Close does
// not close that pool.
func NewSessionStore(pool Pool, opts ...Option) *SessionStore {
	return &SessionStore{c: connOver(pool, opts)}
}

// OpenSessionStore returns a session store with connections of its own,
// dialled from a redis://, rediss://, redis+sentinel:// or
// redis+cluster:// URL as OpenChannelStore says. Close closes them. Nothing is dialled until the
// first call.
func OpenSessionStore(rawURL string, opts ...Option) (*SessionStore, error) {
	c, err := openConn(rawURL, opts)
	if err != nil {
		return nil, err
	}
	return &SessionStore{c: c}, nil
}

// Init pings Redis and checks the server's maxmemory-policy: under an
// allkeys-* policy Redis evicts sessions at maxmemory, logging users out
// without a word, which is ErrEvictionPolicy (see there; a caller who
// accepts that can go on). It is optional. Under a volatile-* policy,
// sessions written WithSessionTTL can be evicted too, before their TTL.
func (s *SessionStore) Init(ctx context.Context) error {
	if _, err := s.c.do(ctx, "PING"); err != nil {
		return wrap("init", err)
	}
	return wrap("init", s.c.checkEvictionPolicy(ctx, "sessions (users are logged out without notice)",
		"set maxmemory-policy to noeviction (a volatile-* policy would still evict sessions written with a TTL)"))
}

// Close stops the store: later calls return ErrClosed. It closes the
// connections only if the store opened them. Closing twice is harmless.
func (s *SessionStore) Close() error { return s.c.close() }

func checkUserID(userID string) error {
	if userID == "" {
		return invalid("empty pikku user id")
	}
	return nil
}

// Get returns the session of a Pikku user: the JSON text as stored, and
// ok true. ok is false, with a nil session and no error, when the user has
// none: the key is missing or holds the empty string, where @pikku/redis
// returns undefined. A stored JSON null is returned as null with ok true
// (@pikku/redis returns null). Stored text that is not JSON is an error
// naming the user (@pikku/redis's JSON.parse throws); a key of another
// type than a string is ErrWrongType naming it. An empty user id is
// ErrInvalidArgument.
func (s *SessionStore) Get(ctx context.Context, pikkuUserID string) (session json.RawMessage, ok bool, err error) {
	const op = "get session"
	if err := checkUserID(pikkuUserID); err != nil {
		return nil, false, wrap(op, err)
	}
	key := s.c.keysOf(pikkuUserID).session(pikkuUserID)
	raw, err := redis.Bytes(s.c.do(ctx, "GET", key))
	if err == redis.ErrNil {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, wrap(op, onKey(key, err))
	}
	session, ok, err = sessionJSON(pikkuUserID, raw)
	return session, ok, wrap(op, err)
}

// sessionJSON checks a stored session: empty is none, as in @pikku/redis
// (`if (!data) return undefined`); text that is not JSON is an error.
func sessionJSON(pikkuUserID string, raw []byte) (json.RawMessage, bool, error) {
	return storedJSON("pikku user", pikkuUserID, "session", raw)
}

// Set stores the session of a Pikku user as JSON, replacing any session it
// had, with the store's TTL (WithSessionTTL) or, without one, none (a TTL
// the key had is dropped, as SET does in @pikku/redis). Like SET it
// replaces a key of any type. Every value is
// stored as it encodes, the same bytes as JSON.stringify: nil is stored as
// null, false and 0 as themselves. A value encoding/json cannot encode, or
// an empty user id, is ErrInvalidArgument, and nothing is written.
func (s *SessionStore) Set(ctx context.Context, pikkuUserID string, session any) error {
	const op = "set session"
	if err := checkUserID(pikkuUserID); err != nil {
		return wrap(op, err)
	}
	b, err := marshalJSON(session)
	if err != nil {
		return wrap(op, invalid("session cannot be encoded as JSON: %v", err))
	}
	key := s.c.keysOf(pikkuUserID).session(pikkuUserID)
	if ttl := s.c.opts().sessionTTL; ttl > 0 {
		_, err = s.c.do(ctx, "SET", key, b, "EX", ttlSeconds(ttl))
	} else {
		_, err = s.c.do(ctx, "SET", key, b)
	}
	return wrap(op, err)
}

// Clear deletes the session of a Pikku user (DEL, which deletes a key of
// any type, as in @pikku/redis); clearing a user with no session does
// nothing. An empty user id is ErrInvalidArgument.
func (s *SessionStore) Clear(ctx context.Context, pikkuUserID string) error {
	const op = "clear session"
	if err := checkUserID(pikkuUserID); err != nil {
		return wrap(op, err)
	}
	_, err := s.c.do(ctx, "DEL", s.c.keysOf(pikkuUserID).session(pikkuUserID))
	return wrap(op, err)
}

// ttlSeconds is d in whole seconds, rounded up, so that a session never
// expires before d has passed: 1500ms is 2 s, 1ms is 1 s. (The longest
// time.Duration, about 292 years, is far below the most SET ... EX takes.)
func ttlSeconds(d time.Duration) int64 {
	s := int64(d / time.Second)
	if d%time.Second != 0 {
		s++
	}
	return s
}
