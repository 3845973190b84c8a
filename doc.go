// Package pikkuredis keeps the realtime state of Pikku servers in Redis:
// the Go counterpart of the TypeScript package @pikku/redis, with the
// same keys and the same bytes in them, so that Go and TypeScript servers
// share one Redis (the layout is in docs/layout.md of the repository).
//
// # The three stores
//
//   - ChannelStore: one hash per open websocket channel (its id, name,
//     the JSON it was opened with, its user session or Pikku user id and
//     state, its creation time); with WithChannelTTL, a lease per channel
//     so that the channels of a crashed server go.
//   - EventHubStore: which channels are subscribed to which topics, in
//     both directions, for the fan-out of a topic and the cleanup of a
//     channel.
//   - SessionStore: the session of each Pikku user (@pikku/redis 0.12.18's
//     RedisSessionStore).
//
// Every change that touches more than one key is one Lua script (scripts/,
// one file per operation), so that it is atomic: RemoveChannels removes a
// channel's hash, its subscriptions and its id from every topic set in
// one step, which @pikku/redis does not. Typed, TypedState and
// TypedSessionStore are views that encode and decode Go types.
//
// # Call order
//
// Open a store from a URL, which makes it own its connections:
//
//	cs, err := pikkuredis.OpenChannelStore("redis://localhost:6379")
//	...
//	defer cs.Close()
//	err = cs.Init(ctx) // optional: PING, load the scripts, check the eviction policy
//	err = cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c1", ChannelName: "chat"})
//
// Open*Store dials nothing; the first call (or Init) does. Its calls are
// auto-pipelined over one connection by default (WithPipelineConns), which
// carries thousands of concurrent callers; the URL forms are redis://,
// rediss:// (TLS), redis+sentinel:// and redis+cluster://. Or give a store
// a pool of your own, *redis.Pool or *redisc.Cluster, with
// NewChannelStore, NewEventHubStore or NewSessionStore: Close then leaves
// the pool open. Init is optional either way (a script missing on the
// server is loaded by the call that needs it), but it fails early on a
// server that cannot be reached or whose eviction policy would delete the
// index sets. Every method is safe for concurrent use; every call is
// bounded by its context.
//
// # Errors
//
// Every error but ErrClosed and ErrChannelNotFound (which names the
// channel) names the operation ("pikkuredis: subscribe: ..."), and
// matches, with errors.Is, one of these (only a dial cut short by the
// caller's context matches two):
//   - ErrInvalidArgument: the input, or the store's options, were
//     refused before anything was sent; nothing was written.
//   - ErrChannelNotFound, ErrWrongType, ErrEvictionPolicy: Redis's state
//     says no. A script's or a command's own error reply is found with
//     errors.As as a redis.Error (github.com/gomodule/redigo/redis).
//   - ErrConnection: the connection failed (the dial, "connect to redis:
//     ...", a connection lost before the reply, an I/O timeout, a retired
//     connection). The call may have run; every operation is safe to call
//     again (ErrConnection's doc says what a second call returns). A dial
//     refused for good (a wrong password, TLS that cannot verify the
//     server) reads "connect to redis: ..." but is not ErrConnection.
//   - context.Canceled, context.DeadlineExceeded: the caller's context
//     ended; as with ErrConnection, the call may have run. A context that
//     ended while the call waited for a dial is ErrConnection too.
//   - ErrClosed: the store was closed.
//
// A Redis restart, SCRIPT FLUSH or failover is recovered within the call
// where it can be (NOSCRIPT reloads the script; READONLY, LOADING,
// MOVED and ASK send the call again where it was not run) and is
// otherwise one of the above, never a panic or a half-written change.
//
// # Examples
//
// The runnable examples show each part: Example (the flow of a websocket
// server), ExampleNewEventHubStore (a caller's pool), ExampleNewTyped and
// ExampleNewTypedState (Go types), ExampleSessionStore,
// ExampleChannelStore_GetChannelWithSession, ExampleWithChannelTTL
// (leases), ExampleEventHubStore_Repair, ExampleOpenChannelStore_sentinel
// and ExampleEventHubStore_ScanChannelIDsForTopic (large topics).
package pikkuredis
