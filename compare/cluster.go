package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/mna/redisc"

	"github.com/pikkujs/pikkuredis"
	"github.com/pikkujs/pikkuredis/internal/redisserver"
)

// clusterBench is the Go stores on a Redis Cluster the runner starts
// itself: 3 masters and 3 replicas on this machine's loopback, the same
// redis-server as the single server. The stores are opened from the
// cluster's redis+cluster:// URL with default options but the layout, so
// they auto-pipeline per master.
type clusterBench struct {
	cl      *redisserver.Cluster
	masters []*server // a plain connection to each master: statistics, clean-up
	g       *goStores
	prefix  string
	layout  layout
	// slotMaster is the master of each slot, an index into masters: the
	// cluster's slots stay where they are while the runner runs.
	slotMaster [redisc.HashSlots]int
}

// startCluster starts the cluster and opens the Go stores on it, in the
// sharded layout, WithShards(shards), with the prefix {base}:cluster; or,
// for shards 0 or 1, with the hash-tag prefix {base}:cluster, which puts
// every key in one slot, on one master.
func startCluster(ctx context.Context, base string, shards int) (*clusterBench, error) {
	// A node timeout well above the tests' 1 s: on a busy 2-core machine
	// a master serving 64 callers' 100,000-id reads can miss heartbeats
	// for that long, and a failover in the middle of a cell would end the
	// run with CLUSTERDOWN. Nothing here fails a node on purpose.
	cl, err := redisserver.StartCluster(redisserver.ClusterConfig{NodeTimeout: 5 * time.Second})
	if err != nil {
		if errors.Is(err, redisserver.ErrNotInstalled) {
			err = fmt.Errorf("%w; -cluster=false leaves the cluster out", err)
		}
		return nil, fmt.Errorf("start a Redis Cluster: %w", err)
	}
	c := &clusterBench{cl: cl}
	var opts []pikkuredis.Option
	if shards >= 2 {
		c.prefix = base + ":cluster"
		c.layout = shardedLayout(c.prefix, shards)
		opts = append(opts, pikkuredis.WithShards(shards))
	} else {
		c.prefix = "{" + base + "}:cluster"
		c.layout = standardLayout(c.prefix)
	}
	masters, err := cl.Masters()
	if err != nil {
		c.close()
		return nil, fmt.Errorf("the cluster's masters: %w", err)
	}
	for _, m := range masters {
		s, err := openServer(ctx, m.URL)
		if err != nil {
			c.close()
			return nil, fmt.Errorf("cluster master: %w", err)
		}
		c.masters = append(c.masters, s)
	}
	if err := c.readSlots(ctx); err != nil {
		c.close()
		return nil, fmt.Errorf("the cluster's slot map: %w", err)
	}
	if c.g, err = openGoStores(ctx, cl.URL(), c.prefix, opts...); err != nil {
		c.close()
		return nil, fmt.Errorf("on the cluster: %w", err)
	}
	if err := c.checkLayout(ctx); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// checkLayout checks that the runner's seeds would land where the stores
// look: it writes a channel and a subscription through the stores, finds
// them where layout says, and removes them.
func (c *clusterBench) checkLayout(ctx context.Context) error {
	const id, topic = "layout-check", "layout-check"
	err := c.g.channels.AddChannel(ctx, pikkuredis.Channel{ChannelID: id, ChannelName: "chat"})
	if err == nil {
		_, err = c.g.hub.Subscribe(ctx, topic, id)
	}
	if err != nil {
		return fmt.Errorf("check the cluster's key layout: %w", err)
	}
	for _, q := range [][]any{{"EXISTS", c.layout.channel(id)}, {"SISMEMBER", c.layout.topic(topic, id), id}} {
		n, err := redis.Int(c.do(ctx, q[0].(string), q[1:]...))
		if err != nil {
			return fmt.Errorf("check the cluster's key layout: %w", err)
		}
		if n != 1 {
			return fmt.Errorf("check the cluster's key layout: %s %s found nothing: the runner's copy of the layout (compare/layout.go) no longer matches the stores'", q[0], q[1])
		}
	}
	if err := c.g.channels.RemoveChannels(ctx, []string{id}); err != nil {
		return fmt.Errorf("check the cluster's key layout: %w", err)
	}
	return nil
}

// do sends one command to the master of its key's slot (args[0]).
func (c *clusterBench) do(ctx context.Context, cmd string, args ...any) (any, error) {
	key, _ := args[0].(string)
	return c.masters[c.slotMaster[redisc.Slot(key)]].do(ctx, cmd, args...)
}

// stats sums the statistics of the masters.
func (c *clusterBench) stats(ctx context.Context) (serverStats, error) {
	var sum serverStats
	for _, m := range c.masters {
		st, err := m.stats(ctx)
		if err != nil {
			return serverStats{}, fmt.Errorf("cluster master: %w", err)
		}
		sum = sum.add(st)
	}
	return sum, nil
}

// deleteKeys removes the stores' keys from every master, one UNLINK per
// key: a master's keys are in many slots, which one UNLINK cannot take.
func (c *clusterBench) deleteKeys(ctx context.Context) error {
	for _, m := range c.masters {
		err := m.scanKeys(ctx, c.prefix, func(keys []any) error {
			p := &pipe{s: m}
			for _, k := range keys {
				p.send("UNLINK", k)
			}
			return p.flush()
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (c *clusterBench) close() {
	if c.g != nil {
		c.g.channels.Close()
		c.g.hub.Close()
	}
	for _, m := range c.masters {
		m.close()
	}
	c.cl.Close()
}

// pipeline sends each command to the master of its key's slot, pipelined
// per master (see seeder).
func (c *clusterBench) pipeline(ctx context.Context, what string, fill func(p sender)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &routedPipe{c: c, pipes: make([]*pipe, len(c.masters))}
	for i, m := range c.masters {
		r.pipes[i] = &pipe{s: m}
	}
	fill(r)
	for _, p := range r.pipes {
		if err := p.flush(); err != nil {
			return fmt.Errorf("seed %s on the cluster: %w", what, err)
		}
	}
	return nil
}

// routedPipe is a pipe per master, each command sent on the pipe of the
// master of its key's slot.
type routedPipe struct {
	c     *clusterBench
	pipes []*pipe
}

func (r *routedPipe) send(cmd string, args ...any) {
	key, _ := args[0].(string) // the seeds' keys are strings
	r.pipes[r.c.slotMaster[redisc.Slot(key)]].send(cmd, args...)
}

// readSlots reads which master serves each slot (CLUSTER SLOTS), as an
// index into c.masters.
func (c *clusterBench) readSlots(ctx context.Context) error {
	byAddr := map[string]int{}
	for i, m := range c.masters {
		u, err := url.Parse(m.url)
		if err != nil {
			return err
		}
		byAddr[u.Host] = i
	}
	ranges, err := redis.Values(c.masters[0].do(ctx, "CLUSTER", "SLOTS"))
	if err != nil {
		return err
	}
	covered := 0
	for _, rg := range ranges {
		// [first slot, last slot, [ip, port, id], replicas...]
		f, err := redis.Values(rg, nil)
		if err != nil || len(f) < 3 {
			return fmt.Errorf("CLUSTER SLOTS: unexpected entry %v", rg)
		}
		first, err1 := redis.Int(f[0], nil)
		last, err2 := redis.Int(f[1], nil)
		node, err3 := redis.Values(f[2], nil)
		if err := errors.Join(err1, err2, err3); err != nil || len(node) < 2 {
			return fmt.Errorf("CLUSTER SLOTS: unexpected entry %v", rg)
		}
		ip, _ := redis.String(node[0], nil)
		port, _ := redis.Int(node[1], nil)
		i, ok := byAddr[net.JoinHostPort(ip, strconv.Itoa(port))]
		if !ok {
			return fmt.Errorf("CLUSTER SLOTS: slots %d-%d are served by %s:%d, not one of the masters", first, last, ip, port)
		}
		for s := first; s <= last; s++ {
			c.slotMaster[s] = i
		}
		covered += last - first + 1
	}
	if covered != redisc.HashSlots {
		return fmt.Errorf("CLUSTER SLOTS: %d slots of %d served", covered, redisc.HashSlots)
	}
	return nil
}
