package pikkuredis

import (
	"time"

	"github.com/gomodule/redigo/redis"
)

// Defaults. Each can be changed with the option named beside it.
const (
	DefaultKeyPrefix       = "pikku"          // WithKeyPrefix
	DefaultPoolSize        = 64               // WithPoolSize
	DefaultRemoveChunkSize = 100              // WithRemoveChunkSize
	DefaultConnectTimeout  = 5 * time.Second  // WithDialOptions(redis.DialConnectTimeout(...))
	DefaultIOTimeout       = 10 * time.Second // WithDialOptions(redis.DialReadTimeout(...), redis.DialWriteTimeout(...))
)

// Option configures a store. Options that shape the connection pool (pool
// size, dial options) apply only to stores that own their pool, that is to
// OpenChannelStore and OpenEventHubStore; a caller's pool is used as given.
type Option func(*config)

type config struct {
	prefix          string
	poolSize        int
	removeChunkSize int
	dialOptions     []redis.DialOption
}

func newConfig(opts []Option) config {
	c := config{
		prefix:          DefaultKeyPrefix,
		poolSize:        DefaultPoolSize,
		removeChunkSize: DefaultRemoveChunkSize,
	}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
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

// WithPoolSize sets the most connections an owned pool opens at once
// (default DefaultPoolSize). Callers beyond that wait for a free connection
// until their context ends. Values below 1 keep the default.
func WithPoolSize(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.poolSize = n
		}
	}
}

// WithDialOptions adds redigo dial options (TLS config, client name,
// timeouts, a password the URL does not carry...) to the connections of an
// owned pool. This is the Go form of the "RedisOptions config" of
// @pikku/redis. They are applied after the defaults (DefaultConnectTimeout
// and DefaultIOTimeout), so they override them; a password, user, database
// or TLS choice written in the URL takes precedence over the same option.
func WithDialOptions(opts ...redis.DialOption) Option {
	return func(c *config) { c.dialOptions = append(c.dialOptions, opts...) }
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
