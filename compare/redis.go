package main

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/pikkujs/pikkuredis/internal/redisserver"
	"github.com/pikkujs/pikkuredis/internal/redisurl"
)

// server is the Redis every measurement runs against, with one plain
// connection of the runner's own for seeding, statistics and clean-up.
type server struct {
	url     string
	started *redisserver.Server // nil when -redis named an existing server
	admin   redis.Conn
}

// openServer starts a private redis-server (persistence off, in a temporary
// directory, on a free loopback port) when rawURL is empty, or uses the
// server rawURL names, where the runner touches only keys under its own
// random prefix and never flushes anything.
func openServer(ctx context.Context, rawURL string) (*server, error) {
	s := &server{url: rawURL}
	// Checked here: redigo's own errors for a bad URL quote it whole,
	// password included.
	if err := redisurl.Check(rawURL); rawURL != "" && err != nil {
		return nil, fmt.Errorf("-redis: %w", err)
	}
	if rawURL == "" {
		rs, err := redisserver.Start()
		if err != nil {
			return nil, fmt.Errorf("start a private redis-server: %w", err)
		}
		s.started, s.url = rs, rs.URL
	}
	c, err := redis.DialURLContext(ctx, s.url, redis.DialConnectTimeout(5*time.Second))
	if err != nil {
		s.close()
		return nil, fmt.Errorf("connect to %s: %w", redisurl.Redact(s.url), err)
	}
	s.admin = c
	return s, nil
}

// close closes the connection and stops (and deletes the directory of) a
// server the runner started.
func (s *server) close() {
	if s.admin != nil {
		s.admin.Close()
	}
	if s.started != nil {
		s.started.Stop()
	}
}

func (s *server) do(ctx context.Context, cmd string, args ...any) (any, error) {
	reply, err := redis.DoContext(s.admin, ctx, cmd, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	return reply, nil
}

// info returns the fields of one INFO section.
func (s *server) info(ctx context.Context, section string) (map[string]string, error) {
	text, err := redis.String(s.do(ctx, "INFO", section))
	if err != nil {
		return nil, err
	}
	fields := map[string]string{}
	for _, line := range strings.Split(text, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = v
		}
	}
	return fields, nil
}

func (s *server) version(ctx context.Context) (string, error) {
	f, err := s.info(ctx, "server")
	if err != nil {
		return "", err
	}
	return f["redis_version"], nil
}

// errorKinds counts the error replies the server sent, by their first
// word (INFO errorstats: ERR, NOSCRIPT, WRONGTYPE, ...).
func (s *server) errorKinds(ctx context.Context) (map[string]int64, error) {
	f, err := s.info(ctx, "errorstats")
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for k, v := range f {
		kind, ok := strings.CutPrefix(k, "errorstat_")
		count, ok2 := strings.CutPrefix(v, "count=")
		if !ok || !ok2 {
			continue
		}
		n, err := strconv.ParseInt(count, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("INFO errorstats %s: %w", k, err)
		}
		out[kind] = n
	}
	return out, nil
}

// cpu is the CPU time the server process has used, user and system, in
// seconds (INFO cpu): its main thread's work and its I/O.
func (s *server) cpu(ctx context.Context) (float64, error) {
	f, err := s.info(ctx, "cpu")
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, name := range []string{"used_cpu_user", "used_cpu_sys"} {
		v, err := strconv.ParseFloat(f[name], 64)
		if err != nil {
			return 0, fmt.Errorf("INFO cpu %s: %w", name, err)
		}
		sum += v
	}
	return sum, nil
}

// serverStats are server-wide counters read around a measurement: socket
// reads, compared with the calls the client made, show how much it
// pipelined, and error replies must stay at zero (redis-benchmark counts a
// NOSCRIPT reply as a request served). (Commands are not compared with
// reads: Redis counts the commands a script runs too.) infos is how many
// servers were asked: each asking INFO costs one read of its own.
type serverStats struct{ reads, errors, infos int64 }

func (s *server) stats(ctx context.Context) (serverStats, error) {
	f, err := s.info(ctx, "stats")
	if err != nil {
		return serverStats{}, err
	}
	st := serverStats{infos: 1}
	for name, dst := range map[string]*int64{
		"total_reads_processed": &st.reads,
		"total_error_replies":   &st.errors,
	} {
		if *dst, err = strconv.ParseInt(f[name], 10, 64); err != nil {
			return serverStats{}, fmt.Errorf("INFO stats %s: %w", name, err)
		}
	}
	return st, nil
}

// sub is what happened between b and a, read from the same servers: the
// reads include the second INFO's, one per server.
func (a serverStats) sub(b serverStats) serverStats {
	return serverStats{a.reads - b.reads, a.errors - b.errors, a.infos}
}

// add sums the counters of two servers (a cluster's masters).
func (a serverStats) add(b serverStats) serverStats {
	return serverStats{a.reads + b.reads, a.errors + b.errors, a.infos + b.infos}
}

// callsPerRead is how many calls Redis got per socket read of the whole
// measurement; the second INFO's own read on each server is not one of
// them. 1.0 means each call arrived alone: no pipelining.
func (a serverStats) callsPerRead(calls int) float64 {
	if a.reads <= a.infos {
		return 0
	}
	return float64(calls) / float64(a.reads-a.infos)
}

// pipe sends commands pipelined on the admin connection, reading the
// replies every batch commands so that neither side buffers a whole seed.
type pipe struct {
	s       *server
	pending int
	err     error
}

const pipeBatch = 1000

func (p *pipe) send(cmd string, args ...any) {
	if p.err != nil {
		return
	}
	if p.err = p.s.admin.Send(cmd, args...); p.err != nil {
		return
	}
	if p.pending++; p.pending >= pipeBatch {
		p.flush()
	}
}

func (p *pipe) flush() error {
	if p.err != nil || p.pending == 0 {
		return p.err
	}
	replies, err := redis.Values(p.s.admin.Do(""))
	p.pending = 0
	if err != nil {
		p.err = err
		return err
	}
	for _, r := range replies {
		if e, ok := r.(redis.Error); ok {
			p.err = e
			return e
		}
	}
	return nil
}

func (s *server) pipeline(ctx context.Context, what string, fill func(p sender)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p := &pipe{s: s}
	fill(p)
	if err := p.flush(); err != nil {
		return fmt.Errorf("seed %s: %w", what, err)
	}
	return nil
}

func nowMillis() string { return strconv.FormatInt(time.Now().UnixMilli(), 10) }

// seeder writes the data an operation needs before it is timed (see the
// key recipe in workload.go) in one implementation's key layout, with
// pipelined raw commands: on one server, or on each master of a cluster
// by the slot of each command's key.
type seeder struct {
	w writer
	l layout
}

// writer sends pipelined commands to the servers that hold their keys.
type writer interface {
	// pipeline sends the commands fill gives it, each one's key its first
	// argument, and checks every reply.
	pipeline(ctx context.Context, what string, fill func(p sender)) error
}

// sender takes one command of a pipeline.
type sender interface{ send(cmd string, args ...any) }

// members gathers the ids to add to each topic set, to send them a batch
// of SADD at a time.
type members struct {
	p    sender
	sets map[string][]any
}

func newMembers(p sender) *members { return &members{p: p, sets: map[string][]any{}} }

// add adds id to the set key, sending the set's batch when it is full.
func (m *members) add(key, id string) {
	if m.sets[key] = append(m.sets[key], id); len(m.sets[key]) == pipeBatch {
		m.flush(key)
	}
}

func (m *members) flush(key string) {
	if ids := m.sets[key]; len(ids) > 0 {
		m.p.send("SADD", append([]any{key}, ids...)...)
		m.sets[key] = ids[:0]
	}
}

// done sends what is left.
func (m *members) done() {
	for key := range m.sets {
		m.flush(key)
	}
}

// seedChannels writes channels c0..c{Channels-1} as AddChannel would, with
// a user session when withSession.
func (sd seeder) seedChannels(ctx context.Context, withSession bool) error {
	now := nowMillis()
	return sd.w.pipeline(ctx, "channels", func(p sender) {
		for i := 0; i < wl.Channels; i++ {
			id := "c" + strconv.Itoa(i)
			args := []any{sd.l.channel(id), "channelId", id, "channelName", "chat", "openingData", `{"room":"lobby"}`, "createdAt", now}
			if withSession {
				args = append(args, "userSession", `{"userId":"u-`+strconv.Itoa(i)+`"}`)
			}
			p.send("HSET", args...)
		}
	})
}

// seedPairs subscribes every (topic, channel) pair Unsubscribe will visit.
func (sd seeder) seedPairs(ctx context.Context) error {
	return sd.w.pipeline(ctx, "subscriptions", func(p sender) {
		m := newMembers(p)
		for k := 0; k < wl.Pairs; k++ {
			t, id := "t"+strconv.Itoa(k%wl.Topics), "c"+strconv.Itoa(k)
			m.add(sd.l.topic(t, id), id)
			p.send("SADD", sd.l.subs(id), t)
		}
		m.done()
	})
}

// seedTopic makes topic hold exactly the ids c0..c{n-1}.
func (sd seeder) seedTopic(ctx context.Context, topic string, n int) error {
	return sd.w.pipeline(ctx, "topic "+topic, func(p sender) {
		for _, key := range sd.l.topicSets(topic) {
			p.send("DEL", key)
		}
		m := newMembers(p)
		for i := 0; i < n; i++ {
			id := "c" + strconv.Itoa(i)
			m.add(sd.l.topic(topic, id), id)
		}
		m.done()
	})
}

// seedRemovable writes n channels {idPrefix}0.. in the store's layout, each
// subscribed to subs of Topics topics {topicPrefix}N, as a sequence of
// Subscribe calls would leave them. Topic members are sent in batches, so
// that seeding costs about two commands per channel.
func (sd seeder) seedRemovable(ctx context.Context, idPrefix, topicPrefix string, n, subs int) error {
	now := nowMillis()
	return sd.w.pipeline(ctx, "removable channels", func(p sender) {
		m := newMembers(p)
		for i := 0; i < n; i++ {
			id := idPrefix + strconv.Itoa(i)
			p.send("HSET", sd.l.channel(id), "channelId", id, "channelName", "chat", "openingData", `{"room":"lobby"}`, "createdAt", now)
			args := []any{sd.l.subs(id)}
			for j := 0; j < subs; j++ {
				t := topicPrefix + strconv.Itoa((i+j)%wl.Topics)
				args = append(args, t)
				m.add(sd.l.topic(t, id), id)
			}
			p.send("SADD", args...)
		}
		m.done()
	})
}

// deleteKeys removes every key under base: (the runner's random prefix),
// by SCAN and UNLINK, never by a flush.
func (s *server) deleteKeys(ctx context.Context, base string) error {
	return s.scanKeys(ctx, base, func(keys []any) error {
		_, err := s.do(ctx, "UNLINK", keys...)
		return err
	})
}

// scanKeys calls fn with each page of the keys under base: that SCAN
// returns.
func (s *server) scanKeys(ctx context.Context, base string, fn func(keys []any) error) error {
	cursor := "0"
	for {
		// Neither the prefix nor the braces of a hash tag hold a glob
		// character.
		reply, err := redis.Values(s.do(ctx, "SCAN", cursor, "MATCH", base+":*", "COUNT", 1000))
		if err != nil {
			return fmt.Errorf("clean up %s:*: %w", base, err)
		}
		var keys []any
		if _, err := redis.Scan(reply, &cursor, &keys); err != nil {
			return fmt.Errorf("clean up %s:*: %w", base, err)
		}
		if len(keys) > 0 {
			if err := fn(keys); err != nil {
				return fmt.Errorf("clean up %s:*: %w", base, err)
			}
		}
		if cursor == "0" {
			return nil
		}
	}
}

// toolArgs are the flags of redis-benchmark, or with cli of redis-cli,
// that reach the same server.
func (s *server) toolArgs(cli bool) ([]string, error) {
	u, err := url.Parse(s.url)
	if err != nil {
		return nil, fmt.Errorf("invalid redis URL %q", redisurl.Redact(s.url)) // Check passed: not reached
	}
	port := u.Port()
	if port == "" {
		port = "6379"
	}
	args := []string{"-h", u.Hostname(), "-p", port}
	if u.Scheme == "rediss" || u.Scheme == "valkeys" {
		args = append(args, "--tls")
	}
	if u.User != nil {
		if pw, ok := u.User.Password(); ok {
			if name := u.User.Username(); name != "" {
				args = append(args, "--user", name)
			}
			args = append(args, "-a", pw)
			if cli {
				args = append(args, "--no-auth-warning")
			}
		}
	}
	if db := strings.Trim(u.Path, "/"); db != "" && db != "0" {
		if cli {
			args = append(args, "-n", db)
		} else {
			args = append(args, "--dbnum", db)
		}
	}
	return args, nil
}
