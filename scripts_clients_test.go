package pikkuredis_test

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pikkujs/pikkuredis"
)

// The scripts are an interface of their own: other languages load the
// files in scripts/ and call them by their header contract. Every script
// is run here from two clients that are not this package, redis-cli
// --eval and ioredis's defineCommand on Node.js, and must have the effects
// the Go tests check for the operation built on it.

// scriptClient runs one script call and returns its reply as text: an
// integer or string as it is, an array one element per line, a nil (a nil
// element of an array) as the empty string, which is how redis-cli prints
// it.
type scriptClient struct {
	name string
	run  func(t *testing.T, script string, keys, args []string) string
}

// needRedisCLI returns redis-cli; it skips under -short (the calls need
// Redis) and fails when redis-cli is not installed.
func needRedisCLI(t testing.TB) string {
	t.Helper()
	needRedis(t)
	return needTool(t, "redis-cli", "these tests run the scripts with redis-cli", "apt-get install redis-tools")
}

func redisCLIClient(t *testing.T) scriptClient {
	cli := needRedisCLI(t)
	return scriptClient{"redis-cli", func(t *testing.T, script string, keys, args []string) string {
		t.Helper()
		argv := []string{"-u", redisURL, "--eval", filepath.Join("scripts", script+".lua")}
		argv = append(append(append(argv, keys...), ","), args...)
		out, err := exec.Command(cli, argv...).CombinedOutput()
		require.NoError(t, err, "redis-cli %q: %s", argv, out)
		// Not a terminal, so redis-cli prints raw: the elements of an
		// array one a line, a nil as an empty line, and a newline at the
		// end. Only that last one goes: an array that ends in nils keeps
		// their lines.
		return strings.TrimSuffix(string(out), "\n")
	}}
}

func nodeClient(t *testing.T) scriptClient {
	d := startNode(t)
	return scriptClient{"node ioredis", func(t *testing.T, script string, keys, args []string) string {
		t.Helper()
		file, err := filepath.Abs(filepath.Join("scripts", script+".lua"))
		require.NoError(t, err)
		res, _, err := d.do(t, map[string]any{
			"op": "script", "url": redisURL, "file": file,
			"numberOfKeys": len(keys), "keys": keys, "args": args,
		})
		require.NoError(t, err, "%s via ioredis", script)
		var v any
		require.NoError(t, json.Unmarshal(res, &v))
		return replyText(v)
	}}
}

func replyText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case string:
		return x
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = replyText(e)
		}
		return strings.Join(parts, "\n")
	default:
		return "<unexpected " + string(must(json.Marshal(v))) + ">"
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

type scriptStep struct {
	keys, args []string
	want       string // or "re:" and a regular expression, for a reply that holds the time
}

// scriptCase is one script called as its header says, with the effects
// checked on the keys it was given.
type scriptCase struct {
	script string
	name   string
	setup  func(t *testing.T, c redis.Conn, p string)
	steps  func(p string) []scriptStep
	check  func(t *testing.T, c redis.Conn, p string)
}

func mustDo(t *testing.T, c redis.Conn, cmd string, args ...any) any {
	t.Helper()
	v, err := c.Do(cmd, args...)
	require.NoError(t, err, "%s %v", cmd, args)
	return v
}

func members(t *testing.T, c redis.Conn, key string) []string {
	t.Helper()
	m, err := redis.Strings(c.Do("SMEMBERS", key))
	require.NoError(t, err)
	return m
}

var scriptCases = []scriptCase{
	{
		script: "subscribe", name: "both sets, idempotent",
		steps: func(p string) []scriptStep {
			k := []string{p + ":topic:news", p + ":subs:c1"}
			return []scriptStep{{k, []string{"c1", "news"}, "1"}, {k, []string{"c1", "news"}, "1"}}
		},
		check: func(t *testing.T, c redis.Conn, p string) {
			assert.Equal(t, []string{"c1"}, members(t, c, p+":topic:news"))
			assert.Equal(t, []string{"news"}, members(t, c, p+":subs:c1"))
		},
	},
	{
		script: "subscribe", name: "only an existing channel, given its hash",
		setup: func(t *testing.T, c redis.Conn, p string) {
			mustDo(t, c, "HSET", p+":channel:c1", "channelId", "c1")
			mustDo(t, c, "HSET", p+":channel:stray", "userSession", "{}")
		},
		steps: func(p string) []scriptStep {
			return []scriptStep{
				{[]string{p + ":topic:news", p + ":subs:ghost", p + ":channel:ghost"}, []string{"ghost", "news"}, "0"},
				{[]string{p + ":topic:news", p + ":subs:stray", p + ":channel:stray"}, []string{"stray", "news"}, "0"},
				{[]string{p + ":topic:news", p + ":subs:c1", p + ":channel:c1"}, []string{"c1", "news"}, "1"},
			}
		},
		check: func(t *testing.T, c redis.Conn, p string) {
			assert.Equal(t, []string{"c1"}, members(t, c, p+":topic:news"))
			assert.ElementsMatch(t, []string{p + ":channel:c1", p + ":channel:stray", p + ":subs:c1", p + ":topic:news"}, scanKeys(t, c, p),
				"nothing written for the missing channels")
		},
	},
	{
		script: "unsubscribe", name: "both sets, true then false",
		setup: func(t *testing.T, c redis.Conn, p string) {
			mustDo(t, c, "SADD", p+":topic:news", "c1", "c2")
			mustDo(t, c, "SADD", p+":subs:c1", "news", "sport")
		},
		steps: func(p string) []scriptStep {
			k := []string{p + ":topic:news", p + ":subs:c1"}
			return []scriptStep{{k, []string{"c1", "news"}, "1"}, {k, []string{"c1", "news"}, "0"}}
		},
		check: func(t *testing.T, c redis.Conn, p string) {
			assert.Equal(t, []string{"c2"}, members(t, c, p+":topic:news"))
			assert.Equal(t, []string{"sport"}, members(t, c, p+":subs:c1"))
		},
	},
	{
		script: "set_channel_field", name: "set, clear, missing channel",
		setup: func(t *testing.T, c redis.Conn, p string) {
			mustDo(t, c, "HSET", p+":channel:c1", "channelId", "c1", "channelName", "chat", "userSession", `{"old":1}`)
		},
		steps: func(p string) []scriptStep {
			k, ghost := []string{p + ":channel:c1"}, []string{p + ":channel:ghost"}
			return []scriptStep{
				{k, []string{"userSession", `{"userId":"u1"}`}, "1"},
				{k, []string{"pikkuUserId", "u1"}, "1"},
				{k, []string{"state", `{"step":1}`}, "1"},
				{k, []string{"state", ""}, "1"},
				{k, []string{"userSession", ""}, "1"},
				{k, []string{"userSession", `{"userId":"u2"}`}, "1"},
				{ghost, []string{"userSession", `{"userId":"u1"}`}, "0"},
				{ghost, []string{"state", ""}, "0"},
			}
		},
		check: func(t *testing.T, c redis.Conn, p string) {
			h, err := redis.StringMap(c.Do("HGETALL", p+":channel:c1"))
			require.NoError(t, err)
			assert.Equal(t, map[string]string{
				"channelId": "c1", "channelName": "chat", "userSession": `{"userId":"u2"}`, "pikkuUserId": "u1",
			}, h, "state set then cleared, session cleared then set")
			n, err := redis.Int(c.Do("EXISTS", p+":channel:ghost"))
			require.NoError(t, err)
			assert.Equal(t, 0, n, "nothing written for a missing channel")
		},
	},
	{
		script: "remove_channels", name: "every trace, within the budget",
		setup: func(t *testing.T, c redis.Conn, p string) {
			for _, id := range []string{"c1", "c2", "c3"} {
				mustDo(t, c, "HSET", p+":channel:"+id, "channelId", id)
				for _, topic := range []string{"news", "sport", "a:b"} {
					mustDo(t, c, "SADD", p+":topic:"+topic, id)
					mustDo(t, c, "SADD", p+":subs:"+id, topic)
				}
			}
			mustDo(t, c, "SADD", p+":topic:news", "other")
		},
		steps: func(p string) []scriptStep {
			var k []string
			for _, id := range []string{"c1", "c2", "c3", "never-existed"} {
				k = append(k, p+":channel:"+id, p+":subs:"+id)
			}
			return []scriptStep{
				// A budget of 4 memberships takes c1 (3) and stops before c2.
				{k[:6], []string{p, "4", "c1", "c2", "c3"}, "1"},
				// An id that does not exist counts as removed.
				{k[2:], []string{p, "0", "c2", "c3", "never-existed"}, "3"},
			}
		},
		check: func(t *testing.T, c redis.Conn, p string) {
			assert.Equal(t, []string{p + ":topic:news"}, scanKeys(t, c, p), "only the other channel's topic set is left")
			assert.Equal(t, []string{"other"}, members(t, c, p+":topic:news"))
		},
	},
	{
		script: "get_channel_with_session", name: "channel and its user's session, nil where absent",
		setup: func(t *testing.T, c redis.Conn, p string) {
			hash := func(id string, fields ...any) {
				mustDo(t, c, "HSET", append([]any{p + ":channel:" + id, "channelId", id, "channelName", "chat",
					"openingData", `{"room":"` + id + `"}`, "createdAt", "1767225600000"}, fields...)...)
			}
			hash("c1", "pikkuUserId", "u1")
			hash("no-user", "userSession", `{"userId":"u1"}`)
			hash("no-session", "pikkuUserId", "u-none")
			mustDo(t, c, "HSET", p+":channel:stray", "pikkuUserId", "u1") // no channelId
			// The session as the SessionStore writes it.
			ss, err := pikkuredis.OpenSessionStore(redisURL, pikkuredis.WithKeyPrefix(p))
			require.NoError(t, err)
			defer ss.Close()
			require.NoError(t, ss.Set(context.Background(), "u1", map[string]any{"userId": "u1", "role": "admin"}))
		},
		steps: func(p string) []scriptStep {
			call := func(id, want string) scriptStep {
				return scriptStep{[]string{p + ":channel:" + id}, []string{p}, want}
			}
			return []scriptStep{
				call("c1", "c1\nchat\n{\"room\":\"c1\"}\n1767225600000\nu1\n{\"role\":\"admin\",\"userId\":\"u1\"}"),
				// No pikkuUserId: no session, whatever the hash holds.
				call("no-user", "no-user\nchat\n{\"room\":\"no-user\"}\n1767225600000\n\n"),
				// A user without a session key.
				call("no-session", "no-session\nchat\n{\"room\":\"no-session\"}\n1767225600000\nu-none\n"),
				// Missing: 6 nils. A hash without a channelId is no
				// channel, and its user's session is not read.
				call("ghost", "\n\n\n\n\n"),
				call("stray", "\n\n\n\nu1\n"),
			}
		},
		check: func(t *testing.T, c redis.Conn, p string) {
			assert.ElementsMatch(t, []string{p + ":channel:c1", p + ":channel:no-user", p + ":channel:no-session",
				p + ":channel:stray", p + ":session:u1"}, scanKeys(t, c, p), "nothing written")
			assert.Equal(t, `{"role":"admin","userId":"u1"}`, must(redis.String(c.Do("GET", p+":session:u1"))))
		},
	},
}

// leaseCases are the scripts of WithChannelTTL and Repair.
var leaseCases = []scriptCase{
	{
		script: "clear_channel_field", name: "clear, absent field, missing channel, bad field",
		setup: func(t *testing.T, c redis.Conn, p string) {
			mustDo(t, c, "HSET", p+":channel:c1", "channelId", "c1", "userSession", `{"u":1}`, "state", "1")
		},
		steps: func(p string) []scriptStep {
			k, ghost := []string{p + ":channel:c1"}, []string{p + ":channel:ghost"}
			return []scriptStep{
				{k, []string{"userSession"}, "1"},
				{k, []string{"pikkuUserId"}, "1"},
				{ghost, []string{"state"}, "0"},
			}
		},
		check: func(t *testing.T, c redis.Conn, p string) {
			h, err := redis.StringMap(c.Do("HGETALL", p+":channel:c1"))
			require.NoError(t, err)
			assert.Equal(t, map[string]string{"channelId": "c1", "state": "1"}, h)
			assert.ElementsMatch(t, []string{p + ":channel:c1"}, scanKeys(t, c, p), "nothing written for a missing channel")
		},
	},
	{
		script: "add_channel", name: "hash and lease from the server clock",
		setup: func(t *testing.T, c redis.Conn, p string) {
			mustDo(t, c, "HSET", p+":channel:c1", "userSession", `{"u":1}`)
		},
		steps: func(p string) []scriptStep {
			return []scriptStep{{keys: []string{p + ":channel:c1", p + ":leases"},
				args: []string{"c1", "chat", `{"a":1}`, "1767225600000", "60000"}, want: `re:^\d{13}$`}}
		},
		check: func(t *testing.T, c redis.Conn, p string) {
			h, err := redis.StringMap(c.Do("HGETALL", p+":channel:c1"))
			require.NoError(t, err)
			assert.Equal(t, map[string]string{"channelId": "c1", "channelName": "chat", "openingData": `{"a":1}`,
				"createdAt": "1767225600000", "userSession": `{"u":1}`}, h, "the session is kept")
			assertLeaseIn(t, c, p, "c1", 60*time.Second)
		},
	},
	{
		script: "touch_channels", name: "live channels extended, gone ones returned",
		setup: func(t *testing.T, c redis.Conn, p string) {
			mustDo(t, c, "HSET", p+":channel:c1", "channelId", "c1")
			mustDo(t, c, "ZADD", p+":leases", 1, "c1", 1, "ghost")
		},
		steps: func(p string) []scriptStep {
			return []scriptStep{{[]string{p + ":leases", p + ":channel:c1", p + ":channel:ghost"}, []string{"60000", "c1", "ghost"}, "ghost"}}
		},
		check: func(t *testing.T, c redis.Conn, p string) {
			assertLeaseIn(t, c, p, "c1", 60*time.Second)
			score, err := redis.Int64(c.Do("ZSCORE", p+":leases", "ghost"))
			require.NoError(t, err)
			assert.Equal(t, int64(1), score, "a gone channel's lease is left for the sweep")
		},
	},
	{
		script: "sweep_expired", name: "expired channels with every trace, live ones kept",
		setup: func(t *testing.T, c redis.Conn, p string) {
			for _, id := range []string{"c1", "c2", "live"} {
				mustDo(t, c, "HSET", p+":channel:"+id, "channelId", id)
				for _, topic := range []string{"news", "a:b"} {
					mustDo(t, c, "SADD", p+":topic:"+topic, id)
					mustDo(t, c, "SADD", p+":subs:"+id, topic)
				}
			}
			far := time.Now().Add(time.Hour).UnixMilli()
			mustDo(t, c, "ZADD", p+":leases", 1, "c1", 2, "c2", 3, "ghost", far, "live")
		},
		steps: func(p string) []scriptStep {
			k := []string{p + ":leases"}
			return []scriptStep{
				// A limit of 2 takes c1 and c2 and says more may remain.
				{k, []string{p, "2", "0"}, "2\n1"},
				// The ghost's lease goes; it had no hash, so it is not counted.
				{k, []string{p, "2", "0"}, "0\n0"},
			}
		},
		check: func(t *testing.T, c redis.Conn, p string) {
			assert.ElementsMatch(t, []string{p + ":channel:live", p + ":leases", p + ":subs:live", p + ":topic:a:b", p + ":topic:news"}, scanKeys(t, c, p))
			assert.Equal(t, []string{"live"}, members(t, c, p+":topic:news"))
			assert.Equal(t, []string{"live"}, must(redis.Strings(c.Do("ZRANGE", p+":leases", 0, -1))))
		},
	},
	{
		script: "repair_set", name: "orphans out of both directions, dry run first",
		setup: func(t *testing.T, c redis.Conn, p string) {
			mustDo(t, c, "HSET", p+":channel:c1", "channelId", "c1")
			mustDo(t, c, "SADD", p+":topic:news", "c1", "gone")
			mustDo(t, c, "SADD", p+":topic:sport", "gone")
			mustDo(t, c, "SADD", p+":subs:c1", "news")
			mustDo(t, c, "SADD", p+":subs:gone", "news", "sport")
		},
		steps: func(p string) []scriptStep {
			news := []string{p + ":topic:news"}
			return []scriptStep{
				{news, []string{p, "topic", "news", "1", "c1", "gone", "never"}, "gone"},
				{news, []string{p, "topic", "news", "0", "c1", "gone", "never"}, "gone"},
				// news left subs:gone with the step above.
				{[]string{p + ":subs:gone"}, []string{p, "subs", "gone", "0", "news", "sport"}, "sport"},
				{[]string{p + ":subs:c1"}, []string{p, "subs", "c1", "0", "news"}, ""},
			}
		},
		check: func(t *testing.T, c redis.Conn, p string) {
			assert.ElementsMatch(t, []string{p + ":channel:c1", p + ":subs:c1", p + ":topic:news"}, scanKeys(t, c, p))
			assert.Equal(t, []string{"c1"}, members(t, c, p+":topic:news"))
		},
	},
}

// assertLeaseIn checks that a channel's lease ends about d from now.
func assertLeaseIn(t *testing.T, c redis.Conn, p, id string, d time.Duration) {
	t.Helper()
	score, err := redis.Int64(c.Do("ZSCORE", p+":leases", id))
	require.NoError(t, err)
	assert.InDelta(t, time.Now().Add(d).UnixMilli(), score, 10_000, "lease of %s", id)
}

func TestScriptsFromOtherClients(t *testing.T) {
	clients := []scriptClient{redisCLIClient(t), nodeClient(t)}
	c := dialRaw(t)
	defer c.Close()
	covered := map[string]bool{}
	for _, cl := range clients {
		for _, sc := range append(scriptCases, leaseCases...) {
			t.Run(cl.name+"/"+sc.script+"/"+sc.name, func(t *testing.T) {
				p := newPrefix(t)
				if sc.setup != nil {
					sc.setup(t, c, p)
				}
				for i, st := range sc.steps(p) {
					got := cl.run(t, sc.script, st.keys, st.args)
					if re, ok := strings.CutPrefix(st.want, "re:"); ok {
						assert.Regexp(t, re, got, "call %d", i+1)
					} else {
						assert.Equal(t, st.want, got, "call %d", i+1)
					}
				}
				sc.check(t, c, p)
			})
			covered[sc.script] = true
		}
	}
	files, err := filepath.Glob("scripts/*.lua")
	require.NoError(t, err)
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".lua")
		assert.True(t, covered[name], "%s is not called from other clients", f)
	}
}
