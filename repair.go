package pikkuredis

import (
	"context"
	"fmt"
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
// It needs the SCAN command, which Redis ACLs cannot limit to a prefix:
// run it as a maintenance user, not as a tenant's store user. SCAN walks
// one server, so Repair does not support Redis Cluster yet. Keys of a
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
	cursor := opts.Cursor
	if cursor == "" {
		cursor = "0"
	}
	if err := s.c.usable(); err != nil {
		return RepairReport{Cursor: cursor}, wrap(op, err)
	}
	k := s.c.key()
	topicPrefix, subsPrefix := k.topic(""), k.subs("")
	pattern := globEscape(k.prefix) + ":*"
	r := repairer{s: s, opts: opts, report: RepairReport{Cursor: cursor}}
	for r.report.SetsExamined < opts.MaxSets {
		var setKeys []string
		var err error
		cursor, setKeys, err = scanPage(s.c.do(ctx, "SCAN", cursor, "MATCH", pattern, "COUNT", min(opts.MaxSets, 1000), "TYPE", "set"))
		if err != nil {
			return r.report, wrap(op, err)
		}
		for _, key := range setKeys {
			var err error
			switch {
			case strings.HasPrefix(key, topicPrefix):
				err = r.set(ctx, key, "topic", key[len(topicPrefix):])
			case strings.HasPrefix(key, subsPrefix):
				err = r.set(ctx, key, "subs", key[len(subsPrefix):])
			default:
				continue // a set that is not ours
			}
			if err != nil {
				return r.report, wrap(op, fmt.Errorf("%s: %w", key, err))
			}
			r.report.SetsExamined++
		}
		// Every set of the page is done: resume after it. (On an error
		// above, Cursor still names this page, and examining a set twice
		// is harmless.)
		r.report.Cursor = cursor
		if cursor == "0" {
			r.report.Done = true
			break
		}
	}
	return r.report, nil
}

type repairer struct {
	s      *EventHubStore
	opts   RepairOptions
	report RepairReport
}

// set checks every member of one topic set (kind "topic", name the topic)
// or subs set (kind "subs", name the channel id).
func (r *repairer) set(ctx context.Context, key, kind, name string) error {
	c := r.s.c
	if kind == "subs" {
		// A read first, to skip the members of a live channel; the
		// script checks again before it removes anything.
		channelKey := c.key().channel(name)
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
			args = append(args, nil, nil, key, c.key().prefix, kind, name, dry)
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
