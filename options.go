package pikkuredis

import (
	"slices"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Defaults. Each can be changed with the option named beside it.
const (
	DefaultKeyPrefix       = "pikku"          // WithKeyPrefix
	DefaultPipelineConns   = 1                // WithPipelineConns
	DefaultPoolSize        = 64               // WithPoolSize, with WithoutAutoPipelining
	DefaultRemoveChunkSize = 100              // WithRemoveChunkSize
	DefaultConnectTimeout  = 5 * time.Second  // WithConnectTimeout
	DefaultIOTimeout       = 10 * time.Second // WithIOTimeout
)

// Option configures a store. The options that shape the connections a
// store dials itself (WithPipelineConns, WithoutAutoPipelining,
// WithPoolSize, WithConnectTimeout, WithDialOptions) are for the stores
// opened from a URL (Open*Store). A store over a caller's pool
// (New*Store) uses the pool as given, so those options would change
// nothing there: its Init and every call return ErrInvalidArgument naming
// them, and nothing is sent.
type Option func(*config)

type config struct {
	prefix          string
	pipelineConns   int // 0: a pool instead
	poolSize        int
	removeChunkSize int
	ioTimeout       time.Duration
	connectTimeout  time.Duration
	dialOptions     []redis.DialOption
	channelTTL      time.Duration // 0: no leases
	sessionTTL      time.Duration // 0: sessions never expire
	requireChannel  bool
	shards          int      // WithShards as given: 0 or 1 standard, else checked by layoutError
	shardKeys       []keys   // the keys of each shard; nil in the standard layout (layout.go)
	dialOnly        []string // the options given that shape only connections the store dials, by name
}

// dialOnlyOption records that an option shaping only the connections a
// store dials itself was given (see Option).
func (c *config) dialOnlyOption(name string) {
	if !slices.Contains(c.dialOnly, name) {
		c.dialOnly = append(c.dialOnly, name)
	}
}

func newConfig(opts []Option) config {
	c := config{
		prefix:          DefaultKeyPrefix,
		pipelineConns:   DefaultPipelineConns,
		poolSize:        DefaultPoolSize,
		removeChunkSize: DefaultRemoveChunkSize,
		ioTimeout:       DefaultIOTimeout,
		connectTimeout:  DefaultConnectTimeout,
	}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	c.shardKeys = shardKeys(c.prefix, c.shards)
	return c
}

// WithKeyPrefix sets the prefix of every key the store reads or writes
// (default "pikku", as in @pikku/redis). Use the same prefix as the
// TypeScript services that share the data. On Redis Cluster use a hash tag,
// such as "{pikku}", so that every key of the store lives in one slot.
// The prefix is used exactly as given, the empty string included.
func WithKeyPrefix(prefix string) Option {
	return func(c *config) { c.prefix = prefix }
}

// WithPipelineConns sets how many connections a store opened from a URL
// sends its calls over (default DefaultPipelineConns). Calls made at the
// same time share them: each connection writes every call queued since its
// last write in one go and reads the replies in one go (auto-pipelining),
// so a few connections carry thousands of concurrent callers and keep
// Redis, which runs commands on one thread, busy. Calls with an argument
// over 512 KiB go over one more connection, dialled on first use, so that
// a value Redis refuses (proto-max-bulk-len, client-query-buffer-limit),
// which makes it close the connection, costs no smaller call. Values below 1 keep the default.
func WithPipelineConns(n int) Option {
	return func(c *config) {
		c.dialOnlyOption("WithPipelineConns")
		if n > 0 {
			c.pipelineConns = n
		}
	}
}

// WithoutAutoPipelining makes a store opened from a URL take one pooled
// connection per call instead, as a caller's Pool is used: at most
// WithPoolSize connections, callers beyond that waiting for a free one.
// It is slower under concurrency; it suits a Redis proxy that does not
// accept pipelines, or a comparison.
func WithoutAutoPipelining() Option {
	return func(c *config) {
		c.dialOnlyOption("WithoutAutoPipelining")
		c.pipelineConns = 0
	}
}

// WithPoolSize sets the most connections an owned pool opens at once
// (default DefaultPoolSize), for a store opened WithoutAutoPipelining.
// Callers beyond that wait for a free connection until their context ends.
// Values below 1 keep the default.
func WithPoolSize(n int) Option {
	return func(c *config) {
		c.dialOnlyOption("WithPoolSize")
		if n > 0 {
			c.poolSize = n
		}
	}
}

// WithIOTimeout sets the read and write timeouts of the connections a
// store opened from a URL dials (default DefaultIOTimeout): how long a
// command may take to write, and a reply to arrive in full, counted from
// when the connection starts waiting for it, before the connection is
// declared lost (closed; its calls fail; the next call dials again). A
// reply that keeps coming but takes longer (a huge topic over a slow
// link) is cut off too. It is a backstop for a stuck or vanished server
// (a half-open TCP connection), not a per-call deadline: give each call a
// context with a deadline for that. It sets the connections'
// redis.DialReadTimeout and DialWriteTimeout (which WithDialOptions can
// override, except for the reads of the auto-pipelined connections the
// store reads itself: all but those under TLS or from the caller's own
// dial function), and it is also the longest a call without a deadline waits out a server that answers
// LOADING, on every store, one over a caller's pool included. Values
// below 1 keep the default.
func WithIOTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.ioTimeout = d
		}
	}
}

// WithConnectTimeout sets how long a store opened from a URL waits for
// the TCP connect of each dial (default DefaultConnectTimeout). A dial
// (connect, TLS handshake, AUTH, SELECT) also ends with its context: on a
// WithoutAutoPipelining store that is the caller's; an auto-pipelined
// store dials aside, for every call queued meanwhile, so its dial ends
// with this timeout, the TLS handshake's own 10 s, or Close, while each
// caller leaves when its own context ends. The store dials the
// TCP connection itself (to check idle connections and bound the TLS
// handshake), so redis.DialConnectTimeout and redis.DialKeepAlive given
// to WithDialOptions have no effect: use this. Values below 1 keep the
// default.
func WithConnectTimeout(d time.Duration) Option {
	return func(c *config) {
		c.dialOnlyOption("WithConnectTimeout")
		if d > 0 {
			c.connectTimeout = d
		}
	}
}

// WithDialOptions adds redigo dial options (TLS config, client name,
// timeouts, a password the URL does not carry...) to the connections of an
// owned pool. This is the Go form of the "RedisOptions config" of
// @pikku/redis. They are applied after the defaults (WithIOTimeout), so
// they override them; a password, user, database or TLS choice written in
// the URL takes precedence over the same option. The TCP connect is the
// store's own (WithConnectTimeout): redis.DialConnectTimeout and
// redis.DialKeepAlive have no effect, and a redis.DialContextFunc or
// DialNetDial replaces the store's dial, whose connections then lose the
// idle check, the stall check, the handshake bounded by the context (see
// DialURLContext) and, when auto-pipelined, the store's own reply reader
// (redigo then reads their replies, with three allocations per element
// of an array reply). A redis.DialReadTimeout here applies to the
// connections redigo reads (pooled ones, TLS, the caller's own dial
// function), not to the auto-pipelined connections the store reads
// itself, which read with WithIOTimeout.
func WithDialOptions(opts ...redis.DialOption) Option {
	return func(c *config) {
		c.dialOnlyOption("WithDialOptions")
		c.dialOptions = append(c.dialOptions, opts...)
	}
}

// WithChannelTTL gives every channel the ChannelStore adds a lease of d:
// AddChannel records the channel's deadline (Redis's clock, TIME, plus d)
// in a sorted set, {prefix}:leases, in the same atomic step as its hash;
// TouchChannels extends the leases of live channels; SweepExpired, or
// SweepExpiredEvery in the background, removes the channels whose lease
// ran out, with all their subscriptions. A server that crashes stops
// touching its channels, and they go within d plus one sweep interval.
// Touch each channel well within d (every d/3, say). Without this option
// (the default) nothing but the @pikku/redis layout is written. Every
// store sharing a prefix should use the same choice: a channel added
// without a lease is never swept (until a TouchChannels gives it one).
// Deadlines follow the Redis server's clock: keep it synced, since a
// failover to a replica whose clock is ahead expires leases early. d is
// rounded up to whole milliseconds and capped at about 31 years; values
// below 1 keep the default, no leases.
func WithChannelTTL(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.channelTTL = d
		}
	}
}

// WithSessionTTL makes SessionStore.Set write every session with a TTL
// of d (SET ... EX), as @pikku/redis 0.12.18's RedisSessionStore does when
// given ttlSeconds: the session goes d after its last Set, and each Set
// starts the time again. Redis takes whole seconds, so d is rounded up to
// the next whole second (1500ms is 2 s, 1ms is 1 s): a session never goes
// before d. Values below 1 are ignored (the default is no TTL). Only a
// SessionStore uses it; the other stores ignore it, so one option list can
// serve all.
func WithSessionTTL(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.sessionTTL = d
		}
	}
}

// WithRequireChannel makes EventHubStore.Subscribe refuse, with
// ErrChannelNotFound and writing nothing, a channel whose hash does not
// exist, checked inside the subscribe script. A Subscribe racing a
// RemoveChannels of the same channel then cannot leave the channel's id in
// the topic set after it is gone. Use it where channels are kept by a
// ChannelStore on the same prefix; the default, as in @pikku/redis,
// subscribes any id.
func WithRequireChannel() Option {
	return func(c *config) { c.requireChannel = true }
}

// WithRemoveChunkSize sets how many channels one RemoveChannels script call
// removes at most (default DefaultRemoveChunkSize). Longer lists are cut
// into chunks so that no single script holds Redis for long. Values below 1
// keep the default.
func WithRemoveChunkSize(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.removeChunkSize = n
		}
	}
}

// WithShards(n) stores the data in the sharded layout: n shards, each with
// its own key prefix {prefix}:{tag}, where tag is a number chosen so that
// the n shards' keys fall in n evenly spaced Redis Cluster slots. A
// channel's hash, subs set, lease and memberships of topics go to the shard
// of its id, a SessionStore's session to the shard of its Pikku user id
// (the shard of an id: the first 4 bytes of its SHA-1, big-endian, modulo
// n). So every script still touches one slot and stays atomic, while the
// channels spread over every master of a cluster; a topic has one set per
// shard, and GetChannelIDsForTopic reads the n sets concurrently. It also
// works on a single Redis. See "Sharded layout" in docs/cluster.md for the key
// forms and what is atomic.
//
// n is 2 to 1024; 0 and 1 keep the standard layout of @pikku/redis (the
// default), which @pikku/redis alone can read. Every store sharing the
// data must use the same prefix and the same n, and n must never change
// on existing data: another n looks for each id in another shard, and so
// strands what was written with this one. A negative n or one over 1024, or a prefix holding '{' or '}' (it
// would become the keys' hash tag), is refused: Init and every call
// return ErrInvalidArgument and write nothing.
func WithShards(n int) Option {
	return func(c *config) { c.shards = n }
}

// dialOnlyError is why a store over a caller's pool cannot use cfg: it
// was given options that shape only connections a store dials itself;
// nil when it was not.
func dialOnlyError(cfg config) error {
	if len(cfg.dialOnly) == 0 {
		return nil
	}
	verb, it := "shapes", "it"
	if len(cfg.dialOnly) > 1 {
		verb, it = "shape", "they"
	}
	return invalid("%s only %s the connections a store opened from a URL dials (Open*Store); over a caller's pool %s would change nothing: set the pool (or the *redisc.Cluster) up instead",
		strings.Join(cfg.dialOnly, ", "), verb, it)
}
