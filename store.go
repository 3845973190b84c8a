package pikkuredis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Hash fields of a channel, as @pikku/redis names them.
const (
	fieldChannelID   = "channelId"
	fieldChannelName = "channelName"
	fieldOpeningData = "openingData"
	fieldUserSession = "userSession"
	fieldCreatedAt   = "createdAt"
	fieldPikkuUserID = "pikkuUserId" // @pikku/redis 0.12.18
	fieldState       = "state"       // @pikku/redis 0.12.18
)

// wrongTypeError is a WRONGTYPE reply that names its key: a script's,
// which names it itself, or a plain command's, named by onKey. It is
// ErrWrongType for errors.Is, and unwraps to Redis's reply too.
type wrongTypeError struct {
	msg   string
	reply error
}

func (e *wrongTypeError) Error() string   { return e.msg }
func (e *wrongTypeError) Unwrap() []error { return []error{ErrWrongType, e.reply} }

// wrongTypeReply returns Redis's WRONGTYPE reply within err, if any.
func wrongTypeReply(err error) (redis.Error, bool) {
	var e redis.Error
	return e, errors.As(err, &e) && strings.HasPrefix(string(e), "WRONGTYPE")
}

// onKey names the key in a WRONGTYPE reply to a plain command, which
// Redis does not ("WRONGTYPE Operation against a key holding the wrong
// kind of value"), and makes it ErrWrongType; other errors pass as they
// are.
func onKey(key string, err error) error {
	if e, ok := wrongTypeReply(err); ok {
		return &wrongTypeError{msg: "WRONGTYPE key " + key + ": " + strings.TrimPrefix(string(e), "WRONGTYPE "), reply: e}
	}
	return err
}

// emptyObject is what absent JSON reads as; each result gets its own copy,
// so that a caller editing one in place cannot change another.
func emptyObject() json.RawMessage { return json.RawMessage{'{', '}'} }

func notFound(channelID string) error {
	return fmt.Errorf("%w: %s", ErrChannelNotFound, channelID)
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidArgument}, args...)...)
}

// wrap adds the operation to an error. ErrClosed and ErrChannelNotFound
// stay as they are: they already start with "pikkuredis:" and say all.
func wrap(op string, err error) error {
	if err == nil || err == ErrClosed || errors.Is(err, ErrChannelNotFound) {
		return err
	}
	return fmt.Errorf("pikkuredis: %s: %w", op, err)
}

func checkID(channelID string) error {
	if channelID == "" {
		return invalid("empty channel id")
	}
	return nil
}

// checkIDs refuses a list holding an empty id, saying where.
func checkIDs(channelIDs []string) error {
	for i, id := range channelIDs {
		if id == "" {
			return invalid("empty channel id at index %d", i)
		}
	}
	return nil
}

func checkTopic(topic string) error {
	if topic == "" {
		return invalid("empty topic")
	}
	return nil
}

// encodeValue encodes opening data or a session as JSON text. A value that
// JavaScript reads as false (nil, a nil pointer, null, false, 0, "") comes
// back as nil, "no value": @pikku/redis stores `openingData || {}` and
// clears the session when `!session`, and so must we for the same value.
func encodeValue(what string, v any) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	b, err := marshalJSON(v)
	if err != nil {
		return nil, invalid("%s cannot be encoded as JSON: %v", what, err)
	}
	if isFalsyJSON(b) {
		return nil, nil
	}
	return b, nil
}

// init is Init for both stores: on each master, PING and load every
// script; then check the eviction policy of each (last, so that a caller
// who accepts ErrEvictionPolicy has the scripts loaded).
func (c *conn) init(ctx context.Context) error {
	err := c.eachMaster(ctx, func(do doFunc) error {
		if _, err := do(ctx, "PING"); err != nil {
			return err
		}
		for _, s := range allScripts {
			if err := s.load(ctx, do); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return c.checkEvictionPolicy(ctx, "the topic and subs sets (topics read as empty, the two index directions disagree)",
		"set maxmemory-policy to noeviction, or to a volatile-* policy, which evicts only keys with a TTL, and these have none")
}

// ChannelStore keeps one hash per open channel: its id, name, opening data,
// user session and creation time. It is safe for concurrent use.
type ChannelStore struct {
	c *conn
}

// NewChannelStore returns a store over the caller's pool: a *redis.Pool,
// or a *redisc.Cluster, whose calls then go each to the master of its
// key's slot, on one of the cluster's connections, following MOVED, ASK
// and TRYAGAIN (give the cluster a CreatePool and a read timeout; see
// OpenChannelStore for the prefix a cluster needs). Close does not close
// that pool.
func NewChannelStore(pool Pool, opts ...Option) *ChannelStore {
	return &ChannelStore{c: connOver(pool, opts)}
}

// OpenChannelStore returns a store with a pool of its own, dialled from a
// redis:// or rediss:// URL (redis://[user:password@]host:port[/db]). Close
// closes that pool. Nothing is dialled until the first call; call Init to
// check the connection at start-up.
//
// For Redis Sentinel, give the sentinels and the master's name:
//
//	redis+sentinel://[user:password@]host1[:26379][,host2[:26379]...]/mastername[/db][?sentinel_username=u&sentinel_password=p]
//
// Every dial asks the sentinels (in turn, the last one that answered
// first) for the master, dials it with the user, password and database of
// the URL, as a redis:// URL, and checks with ROLE that it is the master;
// so after a failover the store follows the new master. The sentinels
// have their own credentials in the query (percent-encoded), none by
// default. rediss+sentinel:// dials Redis and the sentinels with TLS
// (WithDialOptions(redis.DialTLSConfig(...)) for both); add
// sentinel_tls=false for sentinels that listen without TLS, or
// sentinel_tls=true with redis+sentinel:// for the reverse.
//
// For Redis Cluster, give seed nodes (any one that answers is enough):
//
//	redis+cluster://[user:password@]host1[:6379][,host2[:6379]...]
//
// The store reads the slot map and sends each call to the master of its
// key's slot, auto-pipelined per master (a pool per master
// WithoutAutoPipelining); rediss+cluster:// dials every node with TLS.
// The prefix must be a hash tag ("{pikku}"), or the store sharded
// (WithShards); otherwise Init and every call return ErrInvalidArgument.
// See docs/cluster.md, "Running on Redis Cluster".
func OpenChannelStore(rawURL string, opts ...Option) (*ChannelStore, error) {
	c, err := openConn(rawURL, opts)
	if err != nil {
		return nil, err
	}
	return &ChannelStore{c: c}, nil
}

// Init pings Redis, loads every script and checks the server's
// maxmemory-policy: an allkeys-* policy, which would evict the index
// sets, is ErrEvictionPolicy (see there). It is optional: a call that
// needs a script the server lacks loads it itself.
func (s *ChannelStore) Init(ctx context.Context) error {
	return wrap("init", s.c.init(ctx))
}

// Close stops the store: later calls return ErrClosed. It closes the pool
// only if the store opened it. Closing twice is harmless.
func (s *ChannelStore) Close() error { return s.c.close() }

// Channel is what a channel is opened with.
type Channel struct {
	ChannelID   string
	ChannelName string
	// OpeningData is stored as JSON. nil, and any value JavaScript reads as
	// false (null, false, 0, ""), is stored as {}, as @pikku/redis does.
	OpeningData any
}

// ChannelAndSession is a stored channel with its user session.
type ChannelAndSession struct {
	ChannelID   string
	ChannelName string
	OpeningData json.RawMessage // {} when absent
	Session     json.RawMessage // {} when absent
	CreatedAt   time.Time       // zero when the hash has no valid createdAt
}

// AddChannel stores a channel. An existing channel with the same id gets
// the new name, opening data and creation time and keeps its session, Pikku
// user id and state, as in @pikku/redis: a server that reuses ids should
// clear them (or remove the channel) first. With WithChannelTTL it also
// gives the channel a lease, in the same atomic step (see TouchChannels).
func (s *ChannelStore) AddChannel(ctx context.Context, ch Channel) error {
	const op = "add channel"
	if err := checkID(ch.ChannelID); err != nil {
		return wrap(op, err)
	}
	data, err := encodeValue("opening data", ch.OpeningData)
	if err != nil {
		return wrap(op, err)
	}
	if data == nil {
		data = emptyObject()
	}
	createdAt := strconv.FormatInt(time.Now().UnixMilli(), 10)
	k := s.c.keysOf(ch.ChannelID)
	if ttl := s.c.opts().channelTTL; ttl > 0 {
		// The hash and its lease, in one script.
		_, err = addChannelScript.run(ctx, s.c, 2, []any{nil, nil,
			k.channel(ch.ChannelID), k.leases(),
			ch.ChannelID, ch.ChannelName, data, createdAt, ttlMillis(ttl)})
		return wrap(op, err)
	}
	// One key, one command: HSET is atomic on its own.
	key := k.channel(ch.ChannelID)
	_, err = s.c.do(ctx, "HSET", key,
		fieldChannelID, ch.ChannelID,
		fieldChannelName, ch.ChannelName,
		fieldOpeningData, data,
		fieldCreatedAt, createdAt)
	return wrap(op, onKey(key, err))
}

// removeBudgetPerID sets how many topic memberships one remove_channels call
// may remove per id it is sent: 10 (1,000 for the default 100 ids).
const removeBudgetPerID = 10

// RemoveChannels removes channels and every trace of them: per channel,
// atomically, its hash, its subscriptions set, its id in every topic set
// it was subscribed to (@pikku/redis leaves the ids in the topic sets) and
// its lease, if it has one.
// The work is cut into script calls of at most WithRemoveChunkSize ids and
// about ten times as many topic memberships, so a large removal never holds
// Redis for long; each channel is removed wholly or not at all (a channel
// with more subscriptions than that goes alone, in one call). An empty list
// does nothing. On an error, the error says how many ids were removed: the
// first ones of the list in the standard layout; in the sharded layout
// (WithShards) the ids go shard by shard, each call holding ids of one
// shard, so those removed are the ids of some shards and not the first of
// the list. Removing again is harmless: call again with the same list.
func (s *ChannelStore) RemoveChannels(ctx context.Context, channelIDs []string) error {
	const op = "remove channels"
	if err := checkIDs(channelIDs); err != nil {
		return wrap(op, err)
	}
	// Asked here too when there is nothing to send: a closed store still
	// says so.
	if err := s.c.usable(); err != nil || len(channelIDs) == 0 {
		return wrap(op, err)
	}
	done := 0
	for _, g := range s.c.groupByShard(channelIDs) {
		n, err := s.removeShard(ctx, g)
		done += n
		if err != nil {
			order := "the first "
			if s.c.shards() > 0 {
				order = "shard by shard, "
			}
			rest := "may not be"
			if errors.Is(err, ErrWrongType) {
				// The script checks before it writes: that call removed none.
				rest = "were not"
			}
			return wrap(op, fmt.Errorf("%s%d of %d ids were removed, the rest %s: %w", order, done, len(channelIDs), rest, err))
		}
	}
	return nil
}

// removeShard removes the ids of one shard (all ids in the standard
// layout), in chunks, and returns how many it removed before an error.
func (s *ChannelStore) removeShard(ctx context.Context, g shardGroup) (int, error) {
	chunk := s.c.cfg.removeChunkSize
	budget := removeBudgetPerID * chunk
	done := 0
	for done < len(g.ids) {
		ids := g.ids[done:min(done+chunk, len(g.ids))]
		args := make([]any, 2, 2+3*len(ids)+2)
		for _, id := range ids {
			args = append(args, g.keys.channel(id), g.keys.subs(id))
		}
		args = append(args, g.keys.prefix, budget)
		for _, id := range ids {
			args = append(args, id)
		}
		n, err := redis.Int(removeChannelsScript.run(ctx, s.c, 2*len(ids), args))
		if err == nil && (n < 1 || n > len(ids)) {
			err = fmt.Errorf("script %s removed %d of %d channels", removeChannelsScript.name, n, len(ids))
		}
		if err != nil {
			return done, err
		}
		done += n
	}
	return done, nil
}

// SetUserSession stores the user session of an existing channel. nil, and
// any value JavaScript reads as false (null, false, 0, ""), clears it, as in
// @pikku/redis. On a missing channel it returns ErrChannelNotFound and
// writes nothing (@pikku/redis would create a hash holding only the
// session).
func (s *ChannelStore) SetUserSession(ctx context.Context, channelID string, session any) error {
	const op = "set user session"
	if err := checkID(channelID); err != nil {
		return wrap(op, err)
	}
	b, err := encodeValue("session", session)
	if err != nil {
		return wrap(op, err)
	}
	return wrap(op, s.setField(ctx, channelID, fieldUserSession, b))
}

// setField writes (or, for an empty value, deletes) one of the fields
// that change while a channel is open, only if the channel exists.
// Deleting has a script of its own that Redis runs at maxmemory too.
func (s *ChannelStore) setField(ctx context.Context, channelID, field string, value []byte) error {
	sc, args := clearChannelFieldScript, []any{nil, nil, s.c.keysOf(channelID).channel(channelID), field, value}
	if len(value) == 0 {
		args = args[:4]
	} else {
		sc = setChannelFieldScript
	}
	found, err := redis.Int(sc.run(ctx, s.c, 1, args))
	if err != nil {
		return err
	}
	if found == 0 {
		return notFound(channelID)
	}
	return nil
}

// GetChannelAndSession returns a channel with its session; OpeningData and
// Session are {} when absent. A missing channel is ErrChannelNotFound.
func (s *ChannelStore) GetChannelAndSession(ctx context.Context, channelID string) (ChannelAndSession, error) {
	ch, _, err := s.getChannelAndSession(ctx, channelID)
	return ch, err
}

// getChannelAndSession also tells whether a session was stored, which the
// Typed view needs and the {} of ChannelAndSession hides.
func (s *ChannelStore) getChannelAndSession(ctx context.Context, channelID string) (ChannelAndSession, bool, error) {
	const op = "get channel and session"
	h, err := s.readChannel(ctx, channelID, fieldUserSession)
	if err != nil {
		return ChannelAndSession{}, false, wrap(op, err)
	}
	session, hasSession, err := jsonField(channelID, fieldUserSession, h.extra[0])
	if err != nil {
		return ChannelAndSession{}, false, wrap(op, err)
	}
	if !hasSession {
		session = emptyObject()
	}
	return ChannelAndSession{
		ChannelID:   h.id,
		ChannelName: h.name,
		OpeningData: h.openingData,
		Session:     session,
		CreatedAt:   h.createdAt,
	}, hasSession, nil
}

// channelHash is what every read of a channel returns: the fields
// AddChannel writes, and the extra fields the caller asked for, raw.
type channelHash struct {
	id, name    string
	openingData json.RawMessage // {} when absent
	createdAt   time.Time       // zero when absent or not a number
	extra       [][]byte        // nil for an absent field
}

// readChannel reads a channel hash's own fields and extra ones in one
// HMGET. A hash without channelId is ErrChannelNotFound, as in @pikku/redis
// (which also reads a hash holding only a stray field as not found).
func (s *ChannelStore) readChannel(ctx context.Context, channelID string, extra ...string) (channelHash, error) {
	if err := checkID(channelID); err != nil {
		return channelHash{}, err
	}
	args := make([]any, 0, 5+len(extra))
	args = append(args, s.c.keysOf(channelID).channel(channelID), fieldChannelID, fieldChannelName, fieldOpeningData, fieldCreatedAt)
	for _, f := range extra {
		args = append(args, f)
	}
	vals, err := redis.ByteSlices(s.c.do(ctx, "HMGET", args...))
	if err != nil {
		return channelHash{}, onKey(args[0].(string), err)
	}
	if len(vals) != len(args)-1 {
		return channelHash{}, fmt.Errorf("HMGET replied with %d values, want %d", len(vals), len(args)-1)
	}
	h, err := channelFields(channelID, vals[:4])
	h.extra = vals[4:]
	return h, err
}

// channelFields reads the four fields AddChannel writes, in the order
// channelId, channelName, openingData, createdAt (nil when absent). A hash
// without channelId is ErrChannelNotFound.
func channelFields(channelID string, vals [][]byte) (channelHash, error) {
	if len(vals[0]) == 0 {
		return channelHash{}, notFound(channelID)
	}
	h := channelHash{id: string(vals[0]), name: string(vals[1])}
	data, ok, err := jsonField(channelID, fieldOpeningData, vals[2])
	if err != nil {
		return channelHash{}, err
	}
	if !ok {
		data = emptyObject()
	}
	h.openingData = data
	if ms, err := strconv.ParseInt(string(vals[3]), 10, 64); err == nil {
		h.createdAt = time.UnixMilli(ms)
	}
	return h, nil
}

// jsonField checks a stored JSON field of a channel (see storedJSON).
func jsonField(channelID, field string, v []byte) (json.RawMessage, bool, error) {
	return storedJSON("channel", channelID, field, v)
}

// storedJSON checks stored JSON text: absent or empty is (nil, false), as
// in @pikku/redis; text that is not JSON is an error naming whose it is
// (kind and id) and what, rather than bytes a caller would fail to decode
// later.
func storedJSON(kind, id, what string, v []byte) (json.RawMessage, bool, error) {
	if len(v) == 0 {
		return nil, false, nil
	}
	if !json.Valid(v) {
		return nil, false, fmt.Errorf("%s %s: stored %s is not JSON", kind, id, what)
	}
	return v, true, nil
}

// EventHubStore keeps the subscriptions of channels to topics in both
// directions: a set of channel ids per topic and a set of topics per
// channel, always changed together. It is safe for concurrent use.
type EventHubStore struct {
	c *conn
}

// NewEventHubStore returns a store over the caller's pool (a *redis.Pool
// or a *redisc.Cluster, as NewChannelStore says). Close does not close
// that pool.
func NewEventHubStore(pool Pool, opts ...Option) *EventHubStore {
	return &EventHubStore{c: connOver(pool, opts)}
}

// OpenEventHubStore returns a store with a pool of its own, dialled from a
// redis:// or rediss:// URL, from Redis Sentinel with a redis+sentinel://
// URL, or from Redis Cluster with a redis+cluster:// URL, as
// OpenChannelStore says. Close closes that pool.
// Nothing is dialled until the first call.
func OpenEventHubStore(rawURL string, opts ...Option) (*EventHubStore, error) {
	c, err := openConn(rawURL, opts)
	if err != nil {
		return nil, err
	}
	return &EventHubStore{c: c}, nil
}

// Init pings Redis, loads every script and checks the server's
// maxmemory-policy, as ChannelStore.Init does. It is optional.
func (s *EventHubStore) Init(ctx context.Context) error {
	return wrap("init", s.c.init(ctx))
}

// Close stops the store: later calls return ErrClosed. It closes the pool
// only if the store opened it. Closing twice is harmless.
func (s *EventHubStore) Close() error { return s.c.close() }

// GetChannelIDsForTopic returns the ids of the channels subscribed to
// topic, in no particular order; an empty, non-nil slice for an unknown
// topic. In the sharded layout (WithShards) it reads the topic's set in
// every shard, concurrently, and returns them together (a channel is in
// the set of its own shard only); the first error ends the read.
func (s *EventHubStore) GetChannelIDsForTopic(ctx context.Context, topic string) ([]string, error) {
	const op = "get channel ids for topic"
	if err := checkTopic(topic); err != nil {
		return nil, wrap(op, err)
	}
	members := func(ctx context.Context, k keys) ([]string, error) {
		// redis.Strings turns the empty array of an unknown topic into
		// an empty, non-nil slice.
		key := k.topic(topic)
		ids, err := s.c.strings(ctx, "SMEMBERS", key)
		return ids, onKey(key, err)
	}
	all := s.c.shardKeyList()
	if len(all) == 1 {
		ids, err := members(ctx, all[0])
		if err != nil {
			return nil, wrap(op, err)
		}
		return ids, nil
	}
	parts := make([][]string, len(all))
	err := s.c.eachShardAtOnce(ctx, func(ctx context.Context, i int, k keys) error {
		var err error
		parts[i], err = members(ctx, k)
		return err
	})
	if err != nil {
		return nil, wrap(op, err)
	}
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	ids := make([]string, 0, n)
	for _, p := range parts {
		ids = append(ids, p...)
	}
	return ids, nil
}

// scanPageSize is the COUNT hint of each SSCAN: about how many ids one
// page of ScanChannelIDsForTopic holds.
const scanPageSize = 1000

// ScanChannelIDsForTopic returns the ids of the channels subscribed to
// topic as an iterator that reads them from Redis a page at a time (SSCAN,
// about 1,000 ids a round trip), so that memory stays flat however large
// the topic: for fanning a message out to a topic of many thousands.
//
// SSCAN's guarantees hold: an id subscribed for the whole iteration comes
// at least once; one subscribed or unsubscribed meanwhile may or may not
// come; and an id may come twice if Redis resizes the set mid-iteration
// (a topic small enough for Redis's compact encoding comes in one page,
// exactly once each). In the sharded layout (WithShards) it walks the
// topic's set in each shard in turn, with the same guarantees (a channel
// is in the set of its own shard only). On an error the iterator yields
// ("", err) once and stops. Stopping early (break) sends nothing more.
func (s *EventHubStore) ScanChannelIDsForTopic(ctx context.Context, topic string) iter.Seq2[string, error] {
	const op = "scan channel ids for topic"
	return func(yield func(string, error) bool) {
		if err := checkTopic(topic); err != nil {
			yield("", wrap(op, err))
			return
		}
		for _, k := range s.c.shardKeyList() {
			key := k.topic(topic)
			cursor := "0"
			for {
				var ids []string
				var err error
				cursor, ids, err = scanPage(s.c.do(ctx, "SSCAN", key, cursor, "COUNT", scanPageSize))
				if err != nil {
					yield("", wrap(op, onKey(key, err)))
					return
				}
				for _, id := range ids {
					if !yield(id, nil) {
						return
					}
				}
				if cursor == "0" {
					break
				}
			}
		}
	}
}

// scanPage reads one page of a SCAN-family reply: the next cursor ("0"
// at the end) and the page's items.
func scanPage(reply any, err error) (cursor string, items []string, _ error) {
	page, err := redis.Values(reply, err)
	if err == nil && len(page) != 2 {
		err = fmt.Errorf("scan replied with %d elements, want 2", len(page))
	}
	if err == nil {
		cursor, err = redis.String(page[0], nil)
	}
	if err == nil {
		items, err = redis.Strings(page[1], nil)
	}
	return cursor, items, err
}

// Subscribe subscribes a channel to a topic, both directions in one atomic
// script. It returns true, also when the channel was already subscribed.
// With WithRequireChannel it subscribes only a channel that exists, and
// returns ErrChannelNotFound, writing nothing, for one that does not.
func (s *EventHubStore) Subscribe(ctx context.Context, topic, channelID string) (bool, error) {
	return s.changeSubscription(ctx, "subscribe", subscribeScript, topic, channelID, s.c.opts().requireChannel)
}

// Unsubscribe removes a channel from a topic, both directions in one
// atomic script. It returns true only if the channel was subscribed.
func (s *EventHubStore) Unsubscribe(ctx context.Context, topic, channelID string) (bool, error) {
	return s.changeSubscription(ctx, "unsubscribe", unsubscribeScript, topic, channelID, false)
}

// changeSubscription runs subscribe.lua or unsubscribe.lua. With
// requireChannel the channel hash goes as a third key, and the script's 0
// then means the channel does not exist.
func (s *EventHubStore) changeSubscription(ctx context.Context, op string, sc *script, topic, channelID string, requireChannel bool) (bool, error) {
	if err := checkTopic(topic); err != nil {
		return false, wrap(op, err)
	}
	if err := checkID(channelID); err != nil {
		return false, wrap(op, err)
	}
	args := make([]any, 4, 7)
	k := s.c.keysOf(channelID)
	args[2], args[3] = k.topic(topic), k.subs(channelID)
	if requireChannel {
		args = append(args, k.channel(channelID))
	}
	numKeys := len(args) - 2
	args = append(args, channelID, topic)
	n, err := redis.Int(sc.run(ctx, s.c, numKeys, args))
	if err != nil {
		return false, wrap(op, err)
	}
	if requireChannel && n != 1 {
		return false, wrap(op, notFound(channelID))
	}
	return n == 1, nil
}
