package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	"github.com/pikkujs/pikkuredis"
	"github.com/pikkujs/pikkuredis/internal/redisurl"
)

// The Go peers: what a Go team would write instead of using pikkuredis,
// on github.com/redis/rueidis or github.com/redis/go-redis/v9, each with
// its client's defaults. They send what the store sends (the same keys,
// the same commands and arguments, the same Lua files by EVALSHA, falling
// back to EVAL on NOSCRIPT as the store does, through each client's own
// script helper) and decode the replies into the same Go types, so that
// the work of a call is the same; see stores.go for what they share.

// rueidisStores is the store's operations on one rueidis client:
// rueidis.NewClient with the address (and credentials) of the URL and
// nothing else, so rueidis's defaults hold: auto-pipelining of concurrent
// calls on a shared connection per CPU-pair, RESP3.
type rueidisStores struct {
	c                              rueidis.Client
	l                              layout
	set, clear, sub, unsub, remove *rueidis.Lua
}

var _ stores = (*rueidisStores)(nil)

func openRueidis(ctx context.Context, url, prefix string, scripts map[string]luaFile) (*rueidisStores, error) {
	opt, err := rueidis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("rueidis: %s: %w", redisurl.Redact(url), err)
	}
	c, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("rueidis: connect to %s: %w", redisurl.Redact(url), err)
	}
	lua := func(name string) *rueidis.Lua { return rueidis.NewLuaScript(scripts[name].src) }
	r := &rueidisStores{c: c, l: standardLayout(prefix),
		set: lua(scriptSetField), clear: lua(scriptClearField), sub: lua(scriptSubscribe),
		unsub: lua(scriptUnsubscribe), remove: lua(scriptRemove)}
	// Loaded once up front, as the store's Init does: the first EVALSHA
	// would otherwise get NOSCRIPT, an error reply the runner counts.
	for _, f := range scripts {
		sha, err := c.Do(ctx, c.B().ScriptLoad().Script(f.src).Build()).ToString()
		if err == nil && sha != f.sha {
			err = fmt.Errorf("the server hashed it as %s, want %s", sha, f.sha)
		}
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("rueidis: load %s.lua: %w", f.name, err)
		}
	}
	return r, nil
}

func (r *rueidisStores) AddChannel(ctx context.Context, ch pikkuredis.Channel) error {
	data, err := encodeJSON("opening data", ch.OpeningData)
	if err != nil {
		return err
	}
	if data == "" {
		data = "{}"
	}
	cmd := r.c.B().Hset().Key(r.l.channel(ch.ChannelID)).FieldValue().
		FieldValue("channelId", ch.ChannelID).
		FieldValue("channelName", ch.ChannelName).
		FieldValue("openingData", data).
		FieldValue("createdAt", strconv.FormatInt(time.Now().UnixMilli(), 10)).Build()
	return r.c.Do(ctx, cmd).Error()
}

func (r *rueidisStores) SetUserSession(ctx context.Context, channelID string, session any) error {
	s, err := encodeJSON("session", session)
	if err != nil {
		return err
	}
	keys := []string{r.l.channel(channelID)}
	var res rueidis.RedisResult
	if s == "" {
		res = r.clear.Exec(ctx, r.c, keys, []string{"userSession"})
	} else {
		res = r.set.Exec(ctx, r.c, keys, []string{"userSession", s})
	}
	n, err := res.AsInt64()
	return found(channelID, n, err)
}

func (r *rueidisStores) GetChannelAndSession(ctx context.Context, channelID string) (pikkuredis.ChannelAndSession, error) {
	msgs, err := r.c.Do(ctx, r.c.B().Hmget().Key(r.l.channel(channelID)).Field(readFields...).Build()).ToArray()
	if err != nil {
		return pikkuredis.ChannelAndSession{}, err
	}
	if len(msgs) != len(readFields) {
		return pikkuredis.ChannelAndSession{}, fmt.Errorf("HMGET replied with %d values, want %d", len(msgs), len(readFields))
	}
	var v [5]field
	for i := range msgs {
		if !msgs[i].IsNil() {
			if v[i].s, err = msgs[i].ToString(); err != nil {
				return pikkuredis.ChannelAndSession{}, err
			}
			v[i].ok = true
		}
	}
	return decodeChannel(channelID, &v)
}

func (r *rueidisStores) Subscribe(ctx context.Context, topic, channelID string) (bool, error) {
	return r.change(ctx, r.sub, topic, channelID)
}

func (r *rueidisStores) Unsubscribe(ctx context.Context, topic, channelID string) (bool, error) {
	return r.change(ctx, r.unsub, topic, channelID)
}

func (r *rueidisStores) change(ctx context.Context, sc *rueidis.Lua, topic, channelID string) (bool, error) {
	n, err := sc.Exec(ctx, r.c, []string{r.l.topic(topic, channelID), r.l.subs(channelID)}, []string{channelID, topic}).AsInt64()
	return n == 1, err
}

func (r *rueidisStores) GetChannelIDsForTopic(ctx context.Context, topic string) ([]string, error) {
	ids, err := r.c.Do(ctx, r.c.B().Smembers().Key(r.l.topic(topic, "")).Build()).AsStrSlice()
	if ids == nil && err == nil {
		ids = []string{}
	}
	return ids, err
}

func (r *rueidisStores) RemoveChannels(ctx context.Context, channelIDs []string) error {
	return removeInChunks(channelIDs, func(chunk []string) (int64, error) {
		keys, args := removeArgs(r.l, chunk)
		return r.remove.Exec(ctx, r.c, keys, args).AsInt64()
	})
}

// ping asks for a key that is not there: rueidis spreads its connections'
// work by the key's slot, so that each of them is dialled.
func (r *rueidisStores) ping(ctx context.Context, k int) error {
	return r.c.Do(ctx, r.c.B().Exists().Key(r.l.prefix+":prime:"+strconv.Itoa(k)).Build()).Error()
}

func (r *rueidisStores) close() { r.c.Close() }

// goRedisStores is the store's operations on one go-redis client:
// redis.NewClient with the address (and credentials) of the URL and
// nothing else, so go-redis's defaults hold: a pool of 10 connections per
// CPU, one command per connection at a time (no pipelining), RESP3.
type goRedisStores struct {
	c                              *goredis.Client
	l                              layout
	set, clear, sub, unsub, remove *goredis.Script
}

var _ stores = (*goRedisStores)(nil)

func openGoRedis(ctx context.Context, url, prefix string, scripts map[string]luaFile) (*goRedisStores, error) {
	opt, err := goredis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("go-redis: %s: %w", redisurl.Redact(url), err)
	}
	c := goredis.NewClient(opt)
	lua := func(name string) *goredis.Script { return goredis.NewScript(scripts[name].src) }
	g := &goRedisStores{c: c, l: standardLayout(prefix),
		set: lua(scriptSetField), clear: lua(scriptClearField), sub: lua(scriptSubscribe),
		unsub: lua(scriptUnsubscribe), remove: lua(scriptRemove)}
	for _, sc := range []*goredis.Script{g.set, g.clear, g.sub, g.unsub, g.remove} {
		if err := sc.Load(ctx, c).Err(); err != nil {
			c.Close()
			return nil, fmt.Errorf("go-redis: connect to %s and load the scripts: %w", redisurl.Redact(url), err)
		}
	}
	return g, nil
}

func (g *goRedisStores) AddChannel(ctx context.Context, ch pikkuredis.Channel) error {
	data, err := encodeJSON("opening data", ch.OpeningData)
	if err != nil {
		return err
	}
	if data == "" {
		data = "{}"
	}
	return g.c.HSet(ctx, g.l.channel(ch.ChannelID),
		"channelId", ch.ChannelID,
		"channelName", ch.ChannelName,
		"openingData", data,
		"createdAt", strconv.FormatInt(time.Now().UnixMilli(), 10)).Err()
}

func (g *goRedisStores) SetUserSession(ctx context.Context, channelID string, session any) error {
	s, err := encodeJSON("session", session)
	if err != nil {
		return err
	}
	keys := []string{g.l.channel(channelID)}
	var cmd *goredis.Cmd
	if s == "" {
		cmd = g.clear.Run(ctx, g.c, keys, "userSession")
	} else {
		cmd = g.set.Run(ctx, g.c, keys, "userSession", s)
	}
	n, err := cmd.Int64()
	return found(channelID, n, err)
}

func (g *goRedisStores) GetChannelAndSession(ctx context.Context, channelID string) (pikkuredis.ChannelAndSession, error) {
	vals, err := g.c.HMGet(ctx, g.l.channel(channelID), readFields...).Result()
	if err != nil {
		return pikkuredis.ChannelAndSession{}, err
	}
	if len(vals) != len(readFields) {
		return pikkuredis.ChannelAndSession{}, fmt.Errorf("HMGET replied with %d values, want %d", len(vals), len(readFields))
	}
	var v [5]field
	for i, x := range vals {
		if x != nil {
			s, ok := x.(string)
			if !ok {
				return pikkuredis.ChannelAndSession{}, fmt.Errorf("HMGET replied with a %T", x)
			}
			v[i] = field{s, true}
		}
	}
	return decodeChannel(channelID, &v)
}

func (g *goRedisStores) Subscribe(ctx context.Context, topic, channelID string) (bool, error) {
	return g.change(ctx, g.sub, topic, channelID)
}

func (g *goRedisStores) Unsubscribe(ctx context.Context, topic, channelID string) (bool, error) {
	return g.change(ctx, g.unsub, topic, channelID)
}

func (g *goRedisStores) change(ctx context.Context, sc *goredis.Script, topic, channelID string) (bool, error) {
	n, err := sc.Run(ctx, g.c, []string{g.l.topic(topic, channelID), g.l.subs(channelID)}, channelID, topic).Int64()
	return n == 1, err
}

func (g *goRedisStores) GetChannelIDsForTopic(ctx context.Context, topic string) ([]string, error) {
	return g.c.SMembers(ctx, g.l.topic(topic, "")).Result()
}

func (g *goRedisStores) RemoveChannels(ctx context.Context, channelIDs []string) error {
	return removeInChunks(channelIDs, func(chunk []string) (int64, error) {
		keys, args := removeArgs(g.l, chunk)
		boxed := make([]any, len(args))
		for i, a := range args {
			boxed[i] = a
		}
		return g.remove.Run(ctx, g.c, keys, boxed...).Int64()
	})
}

func (g *goRedisStores) ping(ctx context.Context, _ int) error { return g.c.Ping(ctx).Err() }

func (g *goRedisStores) close() { g.c.Close() }

// found is the end of SetUserSession: the script's 0 means the channel
// does not exist.
func found(channelID string, n int64, err error) error {
	if err == nil && n == 0 {
		err = fmt.Errorf("%w: %s", pikkuredis.ErrChannelNotFound, channelID)
	}
	return err
}

// prime dials the connections a client will use with callers concurrent
// callers, before anything is measured: callers goroutines call ping for
// a while, with a new number each time. A connection's handshake can draw error replies from an older
// Redis (CLIENT SETINFO is Redis 7.2's, and both peers send it, ignoring
// the error), which the runner would otherwise count against a cell.
func prime(ctx context.Context, callers int, ping func(ctx context.Context, k int) error) error {
	pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := i; pctx.Err() == nil; k += callers {
				if err := ping(pctx, k); err != nil && pctx.Err() == nil {
					errs[i] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("dial the connections: %w", err)
		}
	}
	return ctx.Err()
}
