package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/pikkujs/pikkuredis"
)

// workload holds the constants of the key recipe shared with
// interop/bench.mjs (sent to it in the hello request, so there is one
// source): call number k of an operation uses the ids and topics below.
type workload struct {
	AddChannelIDs int `json:"addChannelIDs"` // AddChannel writes a{k % AddChannelIDs}
	Channels      int `json:"channels"`      // SetUserSession, GetChannelAndSession use c{k % Channels}, seeded
	Topics        int `json:"topics"`        // Subscribe, Unsubscribe: topic t{k % Topics} ...
	Pairs         int `json:"pairs"`         // ... and channel c{k % Pairs}
	RemoveSubs    int `json:"removeSubs"`    // RemoveChannels removes r{k}, subscribed to this many topics
}

var wl = workload{
	AddChannelIDs: 10_000,
	Channels:      1_000,
	Topics:        100,
	Pairs:         10_000,
	RemoveSubs:    10,
}

// An operation compared between the implementations.
type operation struct {
	name   string // as the table shows it, and the name -ops takes
	method string // the Go method; -ops takes it too, for every operation of that method
	tsName string // the @pikku/redis method, sent to bench.mjs ...
	tsArgs any    // ... with these arguments
	limit  *shape // the redis-benchmark command shape it is compared with; nil for none
	// pipeCmd names the command redis-cli --pipe sent for it, once it has.
	pipeCmd string
	// seed writes, through s (under one implementation's prefix), the
	// data the operation reads or removes, before it is timed. removals
	// is how many RemoveChannels calls the run may make; other operations
	// ignore it.
	seed func(ctx context.Context, s seeder, removals int) error
	// call makes call number k through one Go implementation (and, for
	// the --pipe limit, through one that writes down the commands).
	call func(ctx context.Context, s stores, k int) error
}

// topicRead is GetChannelIDsForTopic on a topic of exactly members ids
// (c0, c1, ...), checked on every call.
func topicRead(label, topic string, members int) *operation {
	return &operation{
		name: "GetChannelIDsForTopic " + label, method: "GetChannelIDsForTopic",
		tsName: "getChannelIdsForTopic", tsArgs: map[string]any{"topic": topic, "members": members},
		limit: shapeSMEMBERS(topic, members),
		seed: func(ctx context.Context, s seeder, _ int) error {
			return s.seedTopic(ctx, topic, members)
		},
		call: func(ctx context.Context, s stores, _ int) error {
			ids, err := s.GetChannelIDsForTopic(ctx, topic)
			if err == nil && len(ids) != members && !recording(s) {
				err = fmt.Errorf("topic %s has %d members, want %d", topic, len(ids), members)
			}
			return err
		},
	}
}

var operations = []*operation{
	{
		name: "AddChannel", tsName: "addChannel", limit: shapeHSET,
		call: func(ctx context.Context, s stores, k int) error {
			return s.AddChannel(ctx, pikkuredis.Channel{
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
		call: func(ctx context.Context, s stores, k int) error {
			n := strconv.Itoa(k % wl.Channels)
			return s.SetUserSession(ctx, "c"+n, map[string]string{"userId": "u-" + n})
		},
	},
	{
		name: "GetChannelAndSession", tsName: "getChannelAndSession", limit: shapeHMGET,
		seed: func(ctx context.Context, s seeder, _ int) error {
			return s.seedChannels(ctx, true)
		},
		call: func(ctx context.Context, s stores, k int) error {
			_, err := s.GetChannelAndSession(ctx, "c"+strconv.Itoa(k%wl.Channels))
			return err
		},
	},
	{
		name: "Subscribe", tsName: "subscribe", limit: shapeEVALSHA,
		call: func(ctx context.Context, s stores, k int) error {
			_, err := s.Subscribe(ctx, "t"+strconv.Itoa(k%wl.Topics), "c"+strconv.Itoa(k%wl.Pairs))
			return err
		},
	},
	{
		// Seeded with every pair, so the first Pairs calls remove one and
		// the rest find nothing: the same for every implementation.
		name: "Unsubscribe", tsName: "unsubscribe", limit: shapeEVALSHA,
		seed: func(ctx context.Context, s seeder, _ int) error {
			return s.seedPairs(ctx)
		},
		call: func(ctx context.Context, s stores, k int) error {
			_, err := s.Unsubscribe(ctx, "t"+strconv.Itoa(k%wl.Topics), "c"+strconv.Itoa(k%wl.Pairs))
			return err
		},
	},
	topicRead("400", "big", 400),
	topicRead("100k", "huge", 100_000),
	{
		// One channel of RemoveSubs subscriptions per call. @pikku/redis
		// deletes the hash and the subs set only; pikkuredis also takes the
		// id out of every topic set, so it does more work per call.
		name: "RemoveChannels", tsName: "removeChannels",
		seed: func(ctx context.Context, s seeder, removals int) error {
			return s.seedRemovable(ctx, "r", "rt", removals, wl.RemoveSubs)
		},
		call: func(ctx context.Context, s stores, k int) error {
			return s.RemoveChannels(ctx, []string{"r" + strconv.Itoa(k)})
		},
	},
}

func init() {
	for _, op := range operations {
		if op.method == "" {
			op.method = op.name
		}
	}
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
			if strings.EqualFold(op.name, name) || strings.EqualFold(op.method, name) {
				found = true
				if !slices.Contains(ops, op) {
					ops = append(ops, op)
				}
			}
		}
		if !found {
			var names []string
			for _, op := range operations {
				names = append(names, strconv.Quote(op.name))
			}
			return nil, false, fmt.Errorf("-ops: unknown operation %q (have %s, %s)", name, strings.Join(names, ", "), bulkRemoveName)
		}
	}
	return ops, bulk, nil
}
