package pikkuredis

import (
	"context"
	"encoding/json"
	"io/fs"
	"math"
	"path"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Unit tests of pure code: no Redis is needed. They run under -short, where
// TestMain does not look for one; otherwise it does, because the package's
// integration tests share the binary.

func TestKeysLayout(t *testing.T) {
	k := keys{prefix: "pikku"}
	assert.Equal(t, "pikku:channel:c1", k.channel("c1"))
	assert.Equal(t, "pikku:topic:news", k.topic("news"))
	assert.Equal(t, "pikku:subs:c1", k.subs("c1"))
	assert.Equal(t, "pikku:session:u-42", k.session("u-42"), "as @pikku/redis 0.12.18's RedisSessionStore")
	tagged := keys{prefix: "{pikku}"}
	assert.Equal(t, "{pikku}:channel:a:b", tagged.channel("a:b"))
}

func TestDefaultPrefixIsPikku(t *testing.T) {
	assert.Equal(t, "pikku", newConfig(nil).prefix)
	assert.Equal(t, "app", newConfig([]Option{WithKeyPrefix("app")}).prefix)
	assert.Equal(t, "", newConfig([]Option{WithKeyPrefix("")}).prefix, "the prefix is used as given")
	c := newConfig([]Option{WithPoolSize(0), WithRemoveChunkSize(-1), nil})
	assert.Equal(t, DefaultPoolSize, c.poolSize)
	assert.Equal(t, DefaultRemoveChunkSize, c.removeChunkSize)
}

// A session TTL is whole seconds (SET ... EX), rounded up: never shorter
// than asked, never 0.
func TestSessionTTLRoundsUpToWholeSeconds(t *testing.T) {
	for d, want := range map[time.Duration]int64{
		time.Nanosecond:                 1,
		time.Millisecond:                1,
		time.Second:                     1,
		time.Second + time.Nanosecond:   2,
		1500 * time.Millisecond:         2,
		time.Hour:                       3600,
		time.Duration(math.MaxInt64):    9223372037, // 292 years; Redis takes far more
		24*time.Hour - time.Millisecond: 86400,
	} {
		assert.Equal(t, want, ttlSeconds(d), "%v", d)
	}
	assert.Zero(t, newConfig(nil).sessionTTL, "no TTL by default")
	assert.Zero(t, newConfig([]Option{WithSessionTTL(0), WithSessionTTL(-1)}).sessionTTL)
	assert.Equal(t, time.Minute, newConfig([]Option{WithSessionTTL(time.Minute)}).sessionTTL)
}

func TestMarshalJSONLikeJSONStringify(t *testing.T) {
	cases := []struct {
		in   any
		want string
	}{
		{map[string]string{"html": "<a href='x'>&</a>"}, `{"html":"<a href='x'>&</a>"}`},
		{"line\u2028sep\u2029para", "\"line\u2028sep\u2029para\""},
		// An escaped backslash followed by the text u2028 stays as it is.
		{`\u2028`, `"\\u2028"`},
		{"\\\u2028", "\"\\\\\u2028\""},
		{json.RawMessage(` { "a" : [1, 2] } `), `{"a":[1,2]}`},
		{struct {
			B int    `json:"b"`
			A string `json:"a"`
		}{1, "x"}, `{"b":1,"a":"x"}`},
		{[]any{1.5, 1e21, "\t"}, `[1.5,1e+21,"\t"]`},
		{"", `""`},
	}
	for _, c := range cases {
		got, err := marshalJSON(c.in)
		require.NoError(t, err, "%#v", c.in)
		assert.Equal(t, c.want, string(got), "%#v", c.in)
	}
}

func TestEncodeValue(t *testing.T) {
	// What JavaScript reads as false is "no value", as in @pikku/redis.
	for _, v := range []any{nil, json.RawMessage("null"), (*int)(nil), false, 0, 0.0, math.Copysign(0, -1), "", json.RawMessage("0e3")} {
		b, err := encodeValue("x", v)
		require.NoError(t, err)
		assert.Nil(t, b, "%#v is no value", v)
	}
	for _, v := range []any{true, 1, -0.5, " ", "0", "false", map[string]int{}, []int{}, json.RawMessage(`"0"`)} {
		b, err := encodeValue("x", v)
		require.NoError(t, err)
		assert.NotNil(t, b, "%#v is a value", v)
	}
	_, err := encodeValue("session", make(chan int))
	require.ErrorIs(t, err, ErrInvalidArgument)
	assert.Contains(t, err.Error(), "session cannot be encoded as JSON")
	_, err = encodeValue("x", json.RawMessage("{bad"))
	require.ErrorIs(t, err, ErrInvalidArgument)
}

// encoding/json writes values of any depth but reads no deeper than 10000
// levels: deeper is refused when written, not found unreadable later.
func TestMarshalJSONRefusesWhatItCannotReadBack(t *testing.T) {
	nest := func(depth int) any {
		var v any = map[string]any{}
		for i := 1; i < depth; i++ {
			v = []any{v}
		}
		return v
	}
	b, err := marshalJSON(nest(maxJSONDepth))
	require.NoError(t, err)
	assert.True(t, json.Valid(b))
	_, err = marshalJSON(nest(maxJSONDepth + 1))
	require.ErrorContains(t, err, "nested more than 10000 levels deep")
	_, err = encodeValue("opening data", nest(maxJSONDepth+1))
	require.ErrorIs(t, err, ErrInvalidArgument)

	// Brackets in strings, escaped quotes and backslashes do not count.
	deepText := strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1)
	for s, want := range map[string]bool{
		deepText:                       true,
		`"\\"` + deepText:              true,  // the quote after an escaped backslash ends the string
		`["\"` + deepText + `"]`:       false, // an escaped quote ends no string
		`[{"a":"` + deepText + `"}]`:   false,
		deepText[1 : 2*maxJSONDepth+1]: false, // exactly as deep as encoding/json reads
	} {
		assert.Equal(t, want, tooDeep([]byte(s)), "%.12s", s)
	}
	b, err = marshalJSON([]any{strings.Repeat("[{", maxJSONDepth), `\"[`, nest(maxJSONDepth - 1)})
	require.NoError(t, err)
	assert.True(t, json.Valid(b))
}

func TestCheckURL(t *testing.T) {
	for _, ok := range []string{"redis://localhost:6379", "rediss://user:pw@host:6380/2", "redis://h", "redis://:pw@h:1/0"} {
		assert.NoError(t, checkURL(ok), ok)
	}
	for _, bad := range []string{"", "localhost:6379", "http://h", "redis://h/x", "redis:h", "redis://%zz"} {
		assert.Error(t, checkURL(bad), bad)
	}
}

func TestOwnedPoolIsClosedByClose(t *testing.T) {
	cs, err := OpenChannelStore("redis://127.0.0.1:1", WithoutAutoPipelining())
	require.NoError(t, err)
	require.NoError(t, cs.Close())
	c := cs.c.t.(*poolTransport).owned.Get()
	defer c.Close()
	require.Error(t, c.Err())
	assert.Contains(t, c.Err().Error(), "closed pool", "the owned pool is closed, not merely unable to dial")
}

func TestSharedPoolIsNotClosedByClose(t *testing.T) {
	p := &redis.Pool{Dial: func() (redis.Conn, error) { return nil, assert.AnError }}
	s := NewEventHubStore(p)
	require.NoError(t, s.Close())
	assert.Nil(t, s.c.t.(*poolTransport).owned)
	c := p.Get()
	defer c.Close()
	assert.ErrorIs(t, c.Err(), assert.AnError, "the pool still dials: it was not closed")
}

// Every file in scripts/ is in the registry, and every header states its
// contract: KEYS and ARGV lines, the return value and a redis-cli example.
func TestScriptsHaveHeaderContracts(t *testing.T) {
	files, err := fs.Glob(scriptFS, "scripts/*.lua")
	require.NoError(t, err)
	registered := map[string]bool{}
	for _, s := range allScripts {
		registered[s.name] = true
	}
	require.Len(t, files, len(allScripts))
	assert.Len(t, ScriptSHAs(), len(allScripts))
	keysRE := regexp.MustCompile(`(?m)^-- KEYS\[[^\]]+\]\s+\S`)
	argvRE := regexp.MustCompile(`(?m)^-- ARGV\[[^\]]+\]\s+\S`)
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".lua")
		assert.True(t, registered[name], "%s is not in the registry", f)
		src, _ := fs.ReadFile(scriptFS, f)
		shebang, text, _ := strings.Cut(string(src), "\n")
		assert.True(t, strings.HasPrefix(shebang, "#!lua"), "%s starts with a #!lua line, so that Redis 7 applies its flags", f)
		assert.True(t, strings.HasPrefix(text, "-- "+name+".lua: "), "%s says what it does after its #!lua line", f)
		assert.Regexp(t, keysRE, text, "%s lists KEYS", f)
		assert.Regexp(t, argvRE, text, "%s lists ARGV", f)
		assert.Contains(t, text, "-- Returns: ", f)
		assert.Contains(t, text, "redis-cli --eval scripts/"+name+".lua ", f)
	}
}

// Stores made without a pool, and a zero Typed, answer with an error.
func TestNoPoolIsAnErrorNotAPanic(t *testing.T) {
	ctx := context.Background()
	for name, cs := range map[string]*ChannelStore{"nil pool": NewChannelStore(nil), "zero value": {}} {
		assert.ErrorContains(t, cs.AddChannel(ctx, Channel{ChannelID: "c1"}), "no pool", name)
		assert.ErrorContains(t, cs.RemoveChannels(ctx, nil), "no pool", name)
		assert.ErrorContains(t, cs.RemoveChannels(ctx, []string{"c1"}), "no pool", name)
		_, err := cs.SweepExpired(ctx)
		assert.ErrorContains(t, err, "no pool", name)
		assert.NoError(t, cs.Close(), name)
	}
	ttl := NewChannelStore(nil, WithChannelTTL(time.Second))
	assert.ErrorContains(t, ttl.AddChannel(ctx, Channel{ChannelID: "c1"}), "no pool")
	_, err := ttl.TouchChannels(ctx, "c1")
	assert.ErrorContains(t, err, "no pool")
	var hs EventHubStore
	_, err = hs.Subscribe(ctx, "t", "c1")
	assert.ErrorContains(t, err, "no pool")
	_, err = NewEventHubStore(nil, WithRequireChannel()).Subscribe(ctx, "t", "c1")
	assert.ErrorContains(t, err, "no pool")
	_, err = hs.Repair(ctx, RepairOptions{ChannelsKeptByChannelStore: true})
	assert.ErrorContains(t, err, "no pool")
	var typed Typed[int, int]
	_, err = typed.GetChannelAndSession(ctx, "c1")
	assert.ErrorContains(t, err, "NewTyped")
	assert.ErrorContains(t, typed.AddChannel(ctx, "c1", "n", 1), "NewTyped")
}

// Every script declares its flags (Redis 7 reads them from the #!lua
// line): scripts that add data have none, so Redis refuses them as a whole
// at maxmemory, before they run, whatever commands they call in whatever
// order; scripts that only delete are allow-oom, so that a full Redis can
// still be cleaned. touch_channels is allow-oom on purpose (see its
// header): it writes at most one lease entry per live channel.
func TestScriptFlags(t *testing.T) {
	want := map[string]string{
		"subscribe": "#!lua", "set_channel_field": "#!lua", "add_channel": "#!lua",
		"clear_channel_field": "#!lua flags=allow-oom",
		"unsubscribe":         "#!lua flags=allow-oom", "remove_channels": "#!lua flags=allow-oom",
		"sweep_expired": "#!lua flags=allow-oom", "repair_set": "#!lua flags=allow-oom",
		"touch_channels":           "#!lua flags=allow-oom",
		"get_channel_with_session": "#!lua flags=no-writes",
	}
	writes := regexp.MustCompile(`redis\.p?call\('(SADD|SREM|HSET|HDEL|DEL|UNLINK|ZADD|ZREM|SET|EXPIRE|PEXPIRE)'`)
	grows := regexp.MustCompile(`redis\.call\('(SADD|HSET|ZADD|SET|LPUSH|RPUSH|HSETNX)'`)
	require.Len(t, allScripts, len(want))
	for _, s := range allScripts {
		first, body, _ := strings.Cut(s.src, "\n")
		assert.Equal(t, want[s.name], first, s.name)
		if strings.Contains(first, "allow-oom") && s.name != "touch_channels" {
			assert.NotRegexp(t, grows, body, "%s is allow-oom but adds data", s.name)
		}
		if strings.Contains(first, "no-writes") {
			assert.NotRegexp(t, writes, body, "%s is no-writes but writes", s.name)
		}
	}
}
