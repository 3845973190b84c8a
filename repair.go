package pikkuredis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/gomodule/redigo/redis"
)

// Repair of index sets: topic members whose channel hash is gone are left
// by @pikku/redis's removeChannels (it deletes the hash and the subs set
// but not the id in each topic set) and by a Subscribe racing a
// RemoveChannels. Nothing else ever removes them, so the topic sets grow
// and fan-outs look up channels that do not exist.

// Defaults of RepairOptions.
const (
	DefaultRepairMaxSets   = 1000 // RepairOptions.MaxSets
	DefaultRepairMaxListed = 1000 // RepairOptions.MaxListed
	repairBatch            = 100  // members checked per repair_set call
)

// RepairOptions says what one Repair call may do. The zero value is
// refused: ChannelsKeptByChannelStore must be set.
type RepairOptions struct {
	// ChannelsKeptByChannelStore is the caller's statement that every
	// channel on this prefix is added with a ChannelStore (pikkuredis or
	// @pikku/redis) and lives as long as its hash: Repair treats a
	// subscription whose channel hash has no channelId as orphaned and
	// removes it. Where channels are subscribed without ever being
	// added (EventHubStore alone), Repair would remove live
	// subscriptions; it refuses to run unless this is true.
	ChannelsKeptByChannelStore bool
	// DryRun finds and reports orphans and removes nothing.
	DryRun bool
	// Cursor resumes a repair where the previous call stopped
	// (RepairReport.Cursor); "" starts from the beginning.
	Cursor string
	// MaxSets is the most topic and subs sets one call examines
	// (default DefaultRepairMaxSets); the call stops at the end of the
	// SCAN page where it reaches it. Each set is examined whole, its
	// members checked 100 per script call.
	MaxSets int
	// MaxListed is the most orphans listed in RepairReport.Orphans
	// (default DefaultRepairMaxListed); all are counted.
	MaxListed int
}

// RepairReport says what one Repair call found and did.
type RepairReport struct {
	// Cursor is where to resume (RepairOptions.Cursor); "0" when Done.
	Cursor string
	// Done is true when the whole prefix has been examined.
	Done bool
	// SetsExamined counts the topic and subs sets examined.
	SetsExamined int
	// MembersChecked counts the set members checked.
	MembersChecked int
	// Found counts orphaned subscriptions (a topic and a channel id whose
	// channel hash is gone). A repair removes each from both sets, so it
	// is found once; a dry run removes nothing, and counts (and lists) one
	// that is in both sets twice, once from each.
	Found int
	// Removed counts the orphaned subscriptions removed, both directions
	// each; 0 in a dry run.
	Removed int
	// Orphans lists the first MaxListed orphans found.
	Orphans []Subscription
}

// Subscription is one topic membership of a channel.
type Subscription struct {
	Topic     string
	ChannelID string
}

// Repair removes the subscriptions whose channel no longer exists from
// the store prefix's topic and subs sets, both directions. It SCANs the
// prefix's sets, at most opts.MaxSets per call, and checks each member
// inside a script (repair_set.lua), so a channel added since the set was
// read is never touched; call it again with the returned Cursor until
// Done. opts.ChannelsKeptByChannelStore must be true: see RepairOptions.
//
// On Redis Cluster it scans every master in turn, and the Cursor,
// "master:cursor", names the master (by its place in the cluster's list of
// masters) and where in it to resume; should the masters change between
// two calls, a resumed repair may pass over part of one: start again from
// "" to be sure to have seen every set. On a single server the Cursor is
// SCAN's own. In the sharded layout (WithShards) it examines the sets of
// every shard of this store's n, each with its shard's keys.
//
// It needs the SCAN command, which Redis ACLs cannot limit to a prefix:
// run it as a maintenance user, not as a tenant's store user. Keys of a
// prefix that starts with this prefix and ":" (such as "pikku:a" for
// "pikku") can look like this prefix's topics; such prefixes cannot be
// told apart in the @pikku/redis layout and must not share a Redis.
func (s *EventHubStore) Repair(ctx context.Context, opts RepairOptions) (RepairReport, error) {
	const op = "repair"
	if !opts.ChannelsKeptByChannelStore {
		return RepairReport{}, wrap(op, invalid("RepairOptions.ChannelsKeptByChannelStore must be true: Repair removes every subscription whose channel hash is missing, which is right only where channels are kept by a ChannelStore"))
	}
	if opts.MaxSets < 1 {
		opts.MaxSets = DefaultRepairMaxSets
	}
	if opts.MaxListed < 1 {
		opts.MaxListed = DefaultRepairMaxListed
	}
	if opts.Cursor == "" {
		opts.Cursor = "0"
	}
	if err := s.c.usable(); err != nil {
		return RepairReport{Cursor: opts.Cursor}, wrap(op, err)
	}
	perMaster := isCluster(s.c.t)
	start, cursor, err := parseRepairCursor(opts.Cursor, perMaster)
	if err != nil {
		return RepairReport{Cursor: opts.Cursor}, wrap(op, err)
	}
	r := repairer{s: s, opts: opts, report: RepairReport{Cursor: opts.Cursor}}
	master := -1
	err = s.c.eachMaster(ctx, func(do doFunc) error {
		master++
		switch {
		case master < start:
			return nil // done by an earlier call
		case master > start:
			cursor = "0"
		}
		return r.scanMaster(ctx, do, master, cursor, perMaster)
	})
	if err == errRepairPaused {
		return r.report, nil
	}
	if err != nil {
		return r.report, wrap(op, err)
	}
	r.report.Cursor, r.report.Done = "0", true
	return r.report, nil
}

// errRepairPaused ends a Repair call's walk over the masters once it has
// examined MaxSets sets: not an error, the Cursor says where to resume.
var errRepairPaused = errors.New("repair paused")

// parseRepairCursor reads RepairOptions.Cursor: "master:cursor" on a
// cluster (perMaster), SCAN's cursor alone on one server; "0" starts
// either from the beginning.
func parseRepairCursor(s string, perMaster bool) (master int, cursor string, err error) {
	if !perMaster || s == "0" {
		return 0, s, nil
	}
	m, c, ok := strings.Cut(s, ":")
	master, err = strconv.Atoi(m)
	if !ok || err != nil || master < 0 || c == "" {
		return 0, "", invalid("RepairOptions.Cursor %q is not a cursor of Repair on Redis Cluster (master:cursor)", s)
	}
	return master, c, nil
}

// scanMaster examines the sets of one master from cursor on, until the
// master is done (nil) or the call has examined MaxSets sets
// (errRepairPaused, r.report.Cursor set to resume there).
func (r *repairer) scanMaster(ctx context.Context, do doFunc, master int, cursor string, perMaster bool) error {
	k := r.s.c.key()
	pattern := globEscape(k.prefix) + ":*"
	if r.s.c.shards() > 0 {
		pattern = globEscape(k.prefix) + ":{*}:*"
	}
	if perMaster {
		r.report.Cursor = strconv.Itoa(master) + ":" + cursor
	}
	for {
		if r.report.SetsExamined >= r.opts.MaxSets {
			r.report.Cursor = cursor
			if perMaster {
				r.report.Cursor = strconv.Itoa(master) + ":" + cursor
			}
			return errRepairPaused
		}
		var setKeys []string
		var err error
		cursor, setKeys, err = scanPage(do(ctx, "SCAN", cursor, "MATCH", pattern, "COUNT", min(r.opts.MaxSets, 1000), "TYPE", "set"))
		if err != nil {
			return err
		}
		for _, key := range setKeys {
			sk, ok := r.shardOfKey(key)
			if !ok {
				continue // a set that is not ours
			}
			topicPrefix, subsPrefix := sk.topic(""), sk.subs("")
			switch {
			case strings.HasPrefix(key, topicPrefix):
				err = r.set(ctx, sk, key, "topic", key[len(topicPrefix):])
			case strings.HasPrefix(key, subsPrefix):
				err = r.set(ctx, sk, key, "subs", key[len(subsPrefix):])
			default:
				continue // a set that is not ours
			}
			if err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
			r.report.SetsExamined++
		}
		// Every set of the page is done: resume after it. (On an error
		// above, Cursor still names this page, and examining a set twice
		// is harmless.)
		if cursor == "0" {
			return nil
		}
		r.report.Cursor = cursor
		if perMaster {
			r.report.Cursor = strconv.Itoa(master) + ":" + cursor
		}
	}
}

// shardOfKey returns the keys of the shard a key found by SCAN belongs to:
// the store's keys in the standard layout; in the sharded layout the
// shard whose prefix, {prefix}:{tag}, begins the key, if it is one of
// this store's n.
func (r *repairer) shardOfKey(key string) (keys, bool) {
	c := r.s.c
	if c.shards() == 0 {
		return c.key(), true
	}
	// The prefix holds no brace, and a tag is digits: the first '}'
	// after the prefix ends the tag.
	rest := key[len(c.key().prefix):]
	end := strings.IndexByte(rest, '}')
	if !strings.HasPrefix(rest, ":{") || end < 0 {
		return keys{}, false
	}
	shardPrefix := key[:len(key)-len(rest)+end+1]
	for _, k := range c.shardKeyList() {
		if k.prefix == shardPrefix {
			return k, true
		}
	}
	return keys{}, false
}

type repairer struct {
	s      *EventHubStore
	opts   RepairOptions
	report RepairReport
}

// set checks every member of one topic set (kind "topic", name the topic)
// or subs set (kind "subs", name the channel id), of the shard whose keys
// are k (the store's keys in the standard layout).
func (r *repairer) set(ctx context.Context, k keys, key, kind, name string) error {
	c := r.s.c
	if kind == "subs" {
		// A read first, to skip the members of a live channel; the
		// script checks again before it removes anything.
		channelKey := k.channel(name)
		n, err := redis.Int(c.do(ctx, "HEXISTS", channelKey, fieldChannelID))
		if err != nil {
			return onKey(channelKey, err)
		}
		if n == 1 {
			return nil
		}
	}
	dry := "0"
	if r.opts.DryRun {
		dry = "1"
	}
	cursor := "0"
	for {
		var members []string
		var err error
		cursor, members, err = scanPage(c.do(ctx, "SSCAN", key, cursor, "COUNT", scanPageSize))
		if err != nil {
			return onKey(key, err)
		}
		for len(members) > 0 {
			batch := members[:min(repairBatch, len(members))]
			members = members[len(batch):]
			args := make([]any, 0, 7+len(batch))
			args = append(args, nil, nil, key, k.prefix, kind, name, dry)
			for _, m := range batch {
				args = append(args, m)
			}
			orphans, err := redis.Strings(repairSetScript.run(ctx, c, 1, args))
			if err != nil {
				return err
			}
			r.report.MembersChecked += len(batch)
			for _, m := range orphans {
				sub := Subscription{Topic: name, ChannelID: m}
				if kind == "subs" {
					sub = Subscription{Topic: m, ChannelID: name}
				}
				r.found(sub)
			}
		}
		if cursor == "0" {
			return nil
		}
	}
}

func (r *repairer) found(sub Subscription) {
	r.report.Found++
	if !r.opts.DryRun {
		r.report.Removed++
	}
	if len(r.report.Orphans) < r.opts.MaxListed {
		r.report.Orphans = append(r.report.Orphans, sub)
	}
}

// globEscape escapes the characters SCAN MATCH treats as a pattern, so
// that a prefix matches only itself.
func globEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
