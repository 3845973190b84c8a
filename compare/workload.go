package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/pikkujs/pikkuredis"
)

// workload holds the constants of the key recipe shared with
// interop/bench.mjs (sent to it in the hello request, so there is one
// source): call number k of an operation uses the ids and topics below.
type workload struct {
	AddChannelIDs   int    `json:"addChannelIDs"`   // AddChannel writes a{k % AddChannelIDs}
	Channels        int    `json:"channels"`        // SetUserSession, GetChannelAndSession use c{k % Channels}, seeded
	Topics          int    `json:"topics"`          // Subscribe, Unsubscribe: topic t{k % Topics} ...
	Pairs           int    `json:"pairs"`           // ... and channel c{k % Pairs}
	BigTopic        string `json:"bigTopic"`        // GetChannelIDsForTopic reads this topic ...
	BigTopicMembers int    `json:"bigTopicMembers"` // ... which holds this many ids
	RemoveSubs      int    `json:"removeSubs"`      // RemoveChannels removes r{k}, subscribed to this many topics
}

var wl = workload{
	AddChannelIDs:   10_000,
	Channels:        1_000,
	Topics:          100,
	Pairs:           10_000,
	BigTopic:        "big",
	BigTopicMembers: 100,
	RemoveSubs:      10,
}

// An operation compared between the implementations.
type operation struct {
	name   string // the Go method, and the name -ops takes
	tsName string // the @pikku/redis method, sent to bench.mjs
	limit  *shape // the redis-benchmark command shape it is compared with; nil for none
	// seed writes, through s (under one implementation's prefix), the
	// data the operation reads or removes, before it is timed. removals
	// is how many RemoveChannels calls the run may make; other operations
	// ignore it.
	seed func(ctx context.Context, s seeder, removals int) error
	// call makes call number k through the Go stores.
	call func(ctx context.Context, g *goStores, k int) error
}

type goStores struct {
	channels *pikkuredis.ChannelStore
	hub      *pikkuredis.EventHubStore
}

var operations = []*operation{
	{
		name: "AddChannel", tsName: "addChannel", limit: shapeHSET,
		call: func(ctx context.Context, g *goStores, k int) error {
			return g.channels.AddChannel(ctx, pikkuredis.Channel{
				ChannelID:   "a" + strconv.Itoa(k%wl.AddChannelIDs),
				ChannelName: "chat",
				OpeningData: map[string]string{"room": "lobby"},
			})
		},
	},
	{
		// A script in Go (it must not create a half channel), one HSET in
		// TypeScript: compared with the EVALSHA shape.
		name: "SetUserSession", tsName: "setUserSession", limit: shapeEVALSHA,
		seed: func(ctx context.Context, s seeder, _ int) error {
			return s.seedChannels(ctx, false)
		},
		call: func(ctx context.Context, g *goStores, k int) error {
			n := strconv.Itoa(k % wl.Channels)
			return g.channels.SetUserSession(ctx, "c"+n, map[string]string{"userId": "u-" + n})
		},
	},
	{
		name: "GetChannelAndSession", tsName: "getChannelAndSession", limit: shapeHMGET,
		seed: func(ctx context.Context, s seeder, _ int) error {
			return s.seedChannels(ctx, true)
		},
		call: func(ctx context.Context, g *goStores, k int) error {
			_, err := g.channels.GetChannelAndSession(ctx, "c"+strconv.Itoa(k%wl.Channels))
			return err
		},
	},
	{
		name: "Subscribe", tsName: "subscribe", limit: shapeEVALSHA,
		call: func(ctx context.Context, g *goStores, k int) error {
			_, err := g.hub.Subscribe(ctx, "t"+strconv.Itoa(k%wl.Topics), "c"+strconv.Itoa(k%wl.Pairs))
			return err
		},
	},
	{
		// Seeded with every pair, so the first Pairs calls remove one and
		// the rest find nothing: the same for both implementations.
		name: "Unsubscribe", tsName: "unsubscribe", limit: shapeEVALSHA,
		seed: func(ctx context.Context, s seeder, _ int) error {
			return s.seedPairs(ctx)
		},
		call: func(ctx context.Context, g *goStores, k int) error {
			_, err := g.hub.Unsubscribe(ctx, "t"+strconv.Itoa(k%wl.Topics), "c"+strconv.Itoa(k%wl.Pairs))
			return err
		},
	},
	{
		name: "GetChannelIDsForTopic", tsName: "getChannelIdsForTopic", limit: shapeSMEMBERS,
		seed: func(ctx context.Context, s seeder, _ int) error {
			return s.seedBigTopic(ctx)
		},
		call: func(ctx context.Context, g *goStores, _ int) error {
			ids, err := g.hub.GetChannelIDsForTopic(ctx, wl.BigTopic)
			if err == nil && len(ids) != wl.BigTopicMembers {
				err = fmt.Errorf("topic %s has %d members, want %d", wl.BigTopic, len(ids), wl.BigTopicMembers)
			}
			return err
		},
	},
	{
		// One channel of RemoveSubs subscriptions per call. @pikku/redis
		// deletes the hash and the subs set only; pikkuredis also takes the
		// id out of every topic set, so it does more work per call.
		name: "RemoveChannels", tsName: "removeChannels",
		seed: func(ctx context.Context, s seeder, removals int) error {
			return s.seedRemovable(ctx, "r", "rt", removals, wl.RemoveSubs)
		},
		call: func(ctx context.Context, g *goStores, k int) error {
			return g.channels.RemoveChannels(ctx, []string{"r" + strconv.Itoa(k)})
		},
	},
}

// bulkRemoveName is the name -ops takes for the 10,000-channel removal
// with a concurrent PING; it is not a table row.
const bulkRemoveName = "BulkRemove"

// selectOps parses -ops: a comma-separated subset of the operation names
// (case-insensitive), "all" or empty for every one.
func selectOps(list string) (ops []*operation, bulk bool, err error) {
	if list == "" || strings.EqualFold(list, "all") {
		return operations, true, nil
	}
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if strings.EqualFold(name, bulkRemoveName) {
			bulk = true
			continue
		}
		found := false
		for _, op := range operations {
			if strings.EqualFold(op.name, name) {
				ops, found = append(ops, op), true
			}
		}
		if !found {
			var names []string
			for _, op := range operations {
				names = append(names, op.name)
			}
			return nil, false, fmt.Errorf("-ops: unknown operation %q (have %s, %s)", name, strings.Join(names, ", "), bulkRemoveName)
		}
	}
	return ops, bulk, nil
}
