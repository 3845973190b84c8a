package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/pikkujs/pikkuredis"
)

// pipeLimits measures the physical limit of each operation: redis-cli
// --pipe sending the very commands the store sends for calls 0..n-1 of the
// operation (the same EVALSHA with the same keys and arguments, under a
// prefix of its own, on data seeded as for the implementations) on one
// connection, as fast as Redis reads them, and reading the replies as they
// come. That is as many calls as Redis can serve with no client work at
// all (redis-cli only counts the replies), on this machine, where
// redis-cli has the other core.
type pipeLimits struct {
	srv      *server
	conn     []string // redis-cli flags that reach srv
	prefix   string
	scripts  map[string]luaFile
	tm       timing
	dir      string             // where the command files are written
	estimate map[string]float64 // calls/s seen last time, by operation
}

func newPipeLimits(srv *server, base string, scripts map[string]luaFile, tm timing) (*pipeLimits, error) {
	if _, err := exec.LookPath("redis-cli"); err != nil {
		return nil, fmt.Errorf("redis-cli is not on PATH (it comes with redis-server; Debian/Ubuntu: apt-get install redis-tools): %w", err)
	}
	conn, err := srv.toolArgs(true)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pikkucmp-pipe-")
	if err != nil {
		return nil, fmt.Errorf("redis-cli --pipe: %w", err)
	}
	return &pipeLimits{srv: srv, conn: conn, prefix: base + ":pipe", scripts: scripts, tm: tm, dir: dir, estimate: map[string]float64{}}, nil
}

func (p *pipeLimits) close() { os.RemoveAll(p.dir) }

// measure sends about -duration's worth of op's commands: as many as the
// rate seen last time takes, or the first time as many as a fifth of
// that at hint calls/s (the fastest implementation's rate) and then more
// until a run lasts at least three quarters of -duration: a short run
// would be mostly redis-cli's start-up.
func (p *pipeLimits) measure(ctx context.Context, op *operation, hint float64) (result, error) {
	d := p.tm.duration.Seconds()
	n := int(hint * d / 5)
	if rate, ok := p.estimate[op.name]; ok {
		n = int(rate * d)
	}
	for try := 0; ; try++ {
		res, err := p.run(ctx, op, max(10, n))
		if err != nil {
			return result{}, err
		}
		if res.Seconds >= 0.75*d || try == 4 {
			p.estimate[op.name] = res.OpsPerSec
			return res, nil
		}
		n = int(float64(res.Ops) * min(20, d/res.Seconds))
	}
}

// run seeds what op needs for n calls, writes the commands of calls
// 0..n-1 to a file, and times redis-cli --pipe sending it.
func (p *pipeLimits) run(ctx context.Context, op *operation, n int) (result, error) {
	l := standardLayout(p.prefix)
	path, cmds, err := p.prepare(ctx, op, l, n)
	if err != nil {
		return result{}, err
	}
	defer os.Remove(path)
	res, err := p.send(ctx, op, path, cmds)
	if err == nil && op.method == "RemoveChannels" {
		err = p.checkRemoved(ctx, l)
	}
	if err != nil {
		return result{}, fmt.Errorf("redis-cli --pipe %s: %w", op.name, err)
	}
	res.Ops, res.Calls, res.OpsPerSec = n, n, float64(n)/res.Seconds
	return res, nil
}

// prepare seeds what op needs for n calls and writes their commands to
// a file; it returns the file's path and how many commands it holds.
func (p *pipeLimits) prepare(ctx context.Context, op *operation, l layout, n int) (string, int64, error) {
	if op.seed != nil {
		if err := op.seed(ctx, seeder{p.srv, l}, n); err != nil {
			return "", 0, fmt.Errorf("redis-cli --pipe %s: %w", op.name, err)
		}
	}
	path, cmds, err := p.write(ctx, op, l, n)
	if err != nil {
		return "", 0, fmt.Errorf("redis-cli --pipe %s: %w", op.name, err)
	}
	return path, cmds, nil
}

// send times redis-cli --pipe sending the file at path, from the start
// of the process to its end (a few milliseconds of start-up and a last
// ECHO round trip are in it), and checks that each of its cmds commands
// had a reply that was not an error.
func (p *pipeLimits) send(ctx context.Context, op *operation, path string, cmds int64) (result, error) {
	in, err := os.Open(path)
	if err != nil {
		return result{}, err
	}
	defer in.Close()
	before, err := p.srv.stats(ctx)
	if err != nil {
		return result{}, err
	}
	cpu0, err := p.srv.cpu(ctx)
	if err != nil {
		return result{}, err
	}
	cmd := exec.CommandContext(ctx, "redis-cli", append(slices.Clone(p.conn), "--pipe")...)
	var out bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = in, &out, &out
	t0 := time.Now()
	runErr := cmd.Run()
	elapsed := time.Since(t0)
	cpu1, err := p.srv.cpu(ctx)
	if err != nil {
		return result{}, err
	}
	after, err := p.srv.stats(ctx)
	if err != nil {
		return result{}, err
	}
	errs, replies, ok := pipeCounts(out.String())
	switch {
	case !ok && runErr != nil:
		return result{}, fmt.Errorf("%w: %s", runErr, strings.TrimSpace(out.String()))
	case !ok:
		return result{}, fmt.Errorf("no counts in its output %q", out.String())
	// On a server the runner did not start, other clients' errors count
	// too: there only redis-cli's own count is checked.
	case errs > 0 || (p.srv.started != nil && after.errors > before.errors):
		return result{}, fmt.Errorf("%d error replies: %s", max(errs, after.errors-before.errors), firstLines(out.String(), 3))
	case replies != cmds:
		return result{}, fmt.Errorf("%d replies to %d commands", replies, cmds)
	}
	return result{Seconds: elapsed.Seconds(), ServerCPU: cpu1 - cpu0}, nil
}

// write writes the commands of calls 0..n-1 of op, in RESP, to a file, and
// returns its path and how many commands it holds.
func (p *pipeLimits) write(ctx context.Context, op *operation, l layout, n int) (string, int64, error) {
	f, err := os.CreateTemp(p.dir, "cmds-")
	if err != nil {
		return "", 0, err
	}
	rec := &recorder{w: bufio.NewWriterSize(f, 1<<20), l: l, scripts: p.scripts}
	for k := 0; k < n && err == nil; k++ {
		err = op.call(ctx, rec, k)
	}
	if err == nil {
		err = rec.w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", 0, fmt.Errorf("write the commands: %w", err)
	}
	op.pipeCmd = rec.first
	return f.Name(), rec.cmds, nil
}

// checkRemoved checks that the RemoveChannels commands removed what they
// name: r0's hash, and r0 from the first topic it was subscribed to.
func (p *pipeLimits) checkRemoved(ctx context.Context, l layout) error {
	exists, err1 := redis.Int(p.srv.do(ctx, "EXISTS", l.channel("r0")))
	member, err2 := redis.Int(p.srv.do(ctx, "SISMEMBER", l.topic("rt0", "r0"), "r0"))
	if err := cmp(err1, err2); err != nil {
		return err
	}
	if exists != 0 || member != 0 {
		return fmt.Errorf("r0 was not removed (hash %d, in topic rt0 %d): the commands do not match the seeded keys", exists, member)
	}
	return nil
}

func cmp(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

var pipeCountsRE = regexp.MustCompile(`errors: (\d+), replies: (\d+)`)

// pipeCounts reads the last line of redis-cli --pipe: "errors: E, replies: R".
func pipeCounts(out string) (errs, replies int64, ok bool) {
	m := pipeCountsRE.FindStringSubmatch(out)
	if m == nil {
		return 0, 0, false
	}
	errs, _ = strconv.ParseInt(m[1], 10, 64)
	replies, _ = strconv.ParseInt(m[2], 10, 64)
	return errs, replies, true
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(strings.TrimSpace(s), "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], " | ")
}

// recorder is an implementation of the operations that writes down the
// commands the store sends for each call, in RESP, instead of sending
// them: the input of redis-cli --pipe. Its replies are zero values.
type recorder struct {
	w       *bufio.Writer
	l       layout
	scripts map[string]luaFile
	cmds    int64
	first   string // the first command, for the report
	buf     []byte
}

// describe names a command for the report: "HSET 4 fields", "EVALSHA
// subscribe.lua".
func (r *recorder) describe(args []string) string {
	switch {
	case args[0] == "HSET":
		return fmt.Sprintf("HSET %d fields", (len(args)-2)/2)
	case args[0] == "HMGET":
		return fmt.Sprintf("HMGET %d fields", len(args)-2)
	case args[0] == "EVALSHA":
		for _, f := range r.scripts {
			if f.sha == args[1] {
				return "EVALSHA " + f.name + ".lua"
			}
		}
	}
	return args[0]
}

var _ stores = (*recorder)(nil)

// recording says whether s only writes the commands down.
func recording(s stores) bool {
	_, ok := s.(*recorder)
	return ok
}

func (r *recorder) send(args ...string) error {
	b := append(r.buf[:0], '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, '\r', '\n')
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, '\r', '\n')
		b = append(b, a...)
		b = append(b, '\r', '\n')
	}
	r.buf = b
	if r.cmds == 0 {
		r.first = r.describe(args)
	}
	r.cmds++
	_, err := r.w.Write(b)
	return err
}

// evalsha sends the script by its sha, as the store does.
func (r *recorder) evalsha(script string, keys []string, args ...string) error {
	cmd := append([]string{"EVALSHA", r.scripts[script].sha, strconv.Itoa(len(keys))}, keys...)
	return r.send(append(cmd, args...)...)
}

func (r *recorder) AddChannel(_ context.Context, ch pikkuredis.Channel) error {
	data, err := encodeJSON("opening data", ch.OpeningData)
	if err != nil {
		return err
	}
	if data == "" {
		data = "{}"
	}
	return r.send("HSET", r.l.channel(ch.ChannelID), "channelId", ch.ChannelID, "channelName", ch.ChannelName,
		"openingData", data, "createdAt", strconv.FormatInt(time.Now().UnixMilli(), 10))
}

func (r *recorder) SetUserSession(_ context.Context, channelID string, session any) error {
	s, err := encodeJSON("session", session)
	if err != nil {
		return err
	}
	if s == "" {
		return r.evalsha(scriptClearField, []string{r.l.channel(channelID)}, "userSession")
	}
	return r.evalsha(scriptSetField, []string{r.l.channel(channelID)}, "userSession", s)
}

func (r *recorder) GetChannelAndSession(_ context.Context, channelID string) (pikkuredis.ChannelAndSession, error) {
	return pikkuredis.ChannelAndSession{}, r.send(append([]string{"HMGET", r.l.channel(channelID)}, readFields...)...)
}

func (r *recorder) Subscribe(_ context.Context, topic, channelID string) (bool, error) {
	return true, r.evalsha(scriptSubscribe, []string{r.l.topic(topic, channelID), r.l.subs(channelID)}, channelID, topic)
}

func (r *recorder) Unsubscribe(_ context.Context, topic, channelID string) (bool, error) {
	return true, r.evalsha(scriptUnsubscribe, []string{r.l.topic(topic, channelID), r.l.subs(channelID)}, channelID, topic)
}

func (r *recorder) GetChannelIDsForTopic(_ context.Context, topic string) ([]string, error) {
	return nil, r.send("SMEMBERS", r.l.topic(topic, ""))
}

func (r *recorder) RemoveChannels(_ context.Context, channelIDs []string) error {
	// As if each call removed its whole chunk, as it does here (one id of
	// at most RemoveSubs topics, well within the budget).
	return removeInChunks(channelIDs, func(chunk []string) (int64, error) {
		keys, args := removeArgs(r.l, chunk)
		return int64(len(chunk)), r.evalsha(scriptRemove, keys, args...)
	})
}
