package main

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/pikkujs/pikkuredis"
)

// stores is what the operations call: the methods of pikkuredis's two
// stores, with their signatures. The store itself (goStores) and each Go
// peer (peers.go) implement it, so that every Go implementation runs the
// same calls with the same arguments and returns the same Go types.
type stores interface {
	AddChannel(ctx context.Context, ch pikkuredis.Channel) error
	SetUserSession(ctx context.Context, channelID string, session any) error
	GetChannelAndSession(ctx context.Context, channelID string) (pikkuredis.ChannelAndSession, error)
	Subscribe(ctx context.Context, topic, channelID string) (bool, error)
	Unsubscribe(ctx context.Context, topic, channelID string) (bool, error)
	GetChannelIDsForTopic(ctx context.Context, topic string) ([]string, error)
	RemoveChannels(ctx context.Context, channelIDs []string) error
}

// goStores is pikkuredis: a ChannelStore and an EventHubStore.
type goStores struct {
	channels *pikkuredis.ChannelStore
	hub      *pikkuredis.EventHubStore
}

var _ stores = (*goStores)(nil)

func (g *goStores) AddChannel(ctx context.Context, ch pikkuredis.Channel) error {
	return g.channels.AddChannel(ctx, ch)
}

func (g *goStores) SetUserSession(ctx context.Context, channelID string, session any) error {
	return g.channels.SetUserSession(ctx, channelID, session)
}

func (g *goStores) GetChannelAndSession(ctx context.Context, channelID string) (pikkuredis.ChannelAndSession, error) {
	return g.channels.GetChannelAndSession(ctx, channelID)
}

func (g *goStores) Subscribe(ctx context.Context, topic, channelID string) (bool, error) {
	return g.hub.Subscribe(ctx, topic, channelID)
}

func (g *goStores) Unsubscribe(ctx context.Context, topic, channelID string) (bool, error) {
	return g.hub.Unsubscribe(ctx, topic, channelID)
}

func (g *goStores) GetChannelIDsForTopic(ctx context.Context, topic string) ([]string, error) {
	return g.hub.GetChannelIDsForTopic(ctx, topic)
}

func (g *goStores) RemoveChannels(ctx context.Context, channelIDs []string) error {
	return g.channels.RemoveChannels(ctx, channelIDs)
}

func (g *goStores) close() {
	g.channels.Close()
	g.hub.Close()
}

// The commands the store sends, which the peers and the --pipe limit send
// too (see store.go and scripts/*.lua): the fields of a channel hash in
// the order of the store's HMGET, and the arguments of its RemoveChannels.
var readFields = []string{"channelId", "channelName", "openingData", "createdAt", "userSession"}

const (
	removeChunk  = 100  // ids per remove_channels call (the store's default WithRemoveChunkSize)
	removeBudget = 1000 // topic memberships per call: 10 per id of a full chunk, as the store sends
)

// The scripts the peers and the --pipe limit call by EVALSHA, by file name.
const (
	scriptSetField    = "set_channel_field"
	scriptClearField  = "clear_channel_field"
	scriptSubscribe   = "subscribe"
	scriptUnsubscribe = "unsubscribe"
	scriptRemove      = "remove_channels"
)

// luaFile is one of the library's Lua files, read from scripts/: the peers
// call the same files the store embeds.
type luaFile struct {
	name, src, sha string
}

// readScripts reads the scripts the peers use from dir and checks that
// each is the file the store runs (the same SHA-1 as ScriptSHAs).
func readScripts(dir string) (map[string]luaFile, error) {
	out := map[string]luaFile{}
	for _, name := range []string{scriptSetField, scriptClearField, scriptSubscribe, scriptUnsubscribe, scriptRemove} {
		src, err := os.ReadFile(filepath.Join(dir, name+".lua"))
		if err != nil {
			return nil, fmt.Errorf("read script: %w", err)
		}
		sha := sha1Hex(src)
		if want := pikkuredis.ScriptSHAs()[name]; sha != want {
			return nil, fmt.Errorf("%s.lua in %s has sha %s, the store runs %s: not the same file", name, dir, sha, want)
		}
		out[name] = luaFile{name: name, src: string(src), sha: sha}
	}
	return out, nil
}

// encodeJSON is the JSON text of opening data or a session, as a Go
// program would write it with encoding/json; nil is "no value".
func encodeJSON(what string, v any) (string, error) {
	if v == nil {
		return "", nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	return string(b), nil
}

// field is one value of an HMGET reply: ok false for a missing field.
type field struct {
	s  string
	ok bool
}

// decodeChannel turns the five values of the store's HMGET (readFields)
// into what GetChannelAndSession returns, as the store does: a hash
// without channelId is ErrChannelNotFound, stored JSON is checked and
// absent JSON is {}, createdAt is milliseconds since the Unix epoch.
func decodeChannel(channelID string, v *[5]field) (pikkuredis.ChannelAndSession, error) {
	if !v[0].ok || v[0].s == "" {
		return pikkuredis.ChannelAndSession{}, fmt.Errorf("%w: %s", pikkuredis.ErrChannelNotFound, channelID)
	}
	ch := pikkuredis.ChannelAndSession{ChannelID: v[0].s, ChannelName: v[1].s}
	var err error
	if ch.OpeningData, err = storedJSON(channelID, "openingData", v[2]); err != nil {
		return pikkuredis.ChannelAndSession{}, err
	}
	if ch.Session, err = storedJSON(channelID, "userSession", v[4]); err != nil {
		return pikkuredis.ChannelAndSession{}, err
	}
	if ms, err := strconv.ParseInt(v[3].s, 10, 64); err == nil {
		ch.CreatedAt = time.UnixMilli(ms)
	}
	return ch, nil
}

func sha1Hex(b []byte) string {
	sum := sha1.Sum(b)
	return hex.EncodeToString(sum[:])
}

func storedJSON(channelID, name string, f field) (json.RawMessage, error) {
	if !f.ok || f.s == "" {
		return json.RawMessage{'{', '}'}, nil
	}
	b := []byte(f.s)
	if !json.Valid(b) {
		return nil, fmt.Errorf("channel %s: stored %s is not JSON", channelID, name)
	}
	return b, nil
}

// removeArgs are the keys and arguments of one remove_channels call for
// ids, as the store sends them: the hash and subs set of each id; the
// prefix, the budget, the ids.
func removeArgs(l layout, ids []string) (keys, args []string) {
	keys = make([]string, 0, 2*len(ids))
	args = make([]string, 0, 2+len(ids))
	args = append(args, l.prefix, strconv.Itoa(removeBudget))
	for _, id := range ids {
		keys = append(keys, l.channel(id), l.subs(id))
		args = append(args, id)
	}
	return keys, args
}

// removeInChunks calls one remove_channels script call per chunk of at
// most removeChunk ids, as the store does, going on from where the
// script stopped (it returns how many of the ids it removed).
func removeInChunks(ids []string, call func(chunk []string) (int64, error)) error {
	for done := 0; done < len(ids); {
		chunk := ids[done:min(done+removeChunk, len(ids))]
		n, err := call(chunk)
		if err != nil {
			return fmt.Errorf("remove channels: %w", err)
		}
		if n < 1 || n > int64(len(chunk)) {
			return fmt.Errorf("remove channels: the script removed %d of %d channels", n, len(chunk))
		}
		done += int(n)
	}
	return nil
}
