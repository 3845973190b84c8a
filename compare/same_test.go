package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/pikkujs/pikkuredis/internal/redisserver"
)

// TestSameCommands checks what makes the comparison fair: for the first
// calls of every operation, rueidis, go-redis and redis-cli --pipe (the
// recorder's commands) make Redis run the very commands the store makes
// it run, scripts' own commands included, as MONITOR shows them (the key
// prefix, the createdAt time and the case of command names aside).
func TestSameCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts redis-server")
	}
	// Without redis-server this fails, saying how to install it: a skip
	// would print ok for a comparison nobody checked.
	rs, err := redisserver.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := openServer(ctx, rs.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.close()
	scripts, err := readScripts("../scripts")
	if err != nil {
		t.Fatal(err)
	}
	g, err := openGoStores(ctx, rs.URL, "cmpt:store")
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	ru, err := openRueidis(ctx, rs.URL, "cmpt:rueidis", scripts)
	if err != nil {
		t.Fatal(err)
	}
	defer ru.close()
	gr, err := openGoRedis(ctx, rs.URL, "cmpt:goredis", scripts)
	if err != nil {
		t.Fatal(err)
	}
	defer gr.close()
	for _, ping := range []func(context.Context, int) error{ru.ping, gr.ping} {
		if err := prime(ctx, 4, ping); err != nil {
			t.Fatal(err)
		}
	}
	pl, err := newPipeLimits(srv, "cmpt", scripts, timing{duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer pl.close()

	mon := startMonitor(t, rs.URL)
	const calls = 3
	for _, op := range operations {
		var want []string
		for _, who := range []struct {
			name, prefix string
			s            stores // nil: redis-cli --pipe
		}{{"store", "cmpt:store", g}, {"rueidis", "cmpt:rueidis", ru}, {"go-redis", "cmpt:goredis", gr}, {"--pipe", "cmpt:pipe", nil}} {
			var got []string
			if who.s == nil {
				path, cmds, err := pl.prepare(ctx, op, standardLayout(who.prefix), calls)
				if err != nil {
					t.Fatal(err)
				}
				got = mon.during(t, srv, func() error { _, err := pl.send(ctx, op, path, cmds); return err }, who.prefix)
			} else {
				if op.seed != nil {
					if err := op.seed(ctx, seeder{srv, standardLayout(who.prefix)}, calls); err != nil {
						t.Fatal(err)
					}
				}
				got = mon.during(t, srv, func() error {
					for k := 0; k < calls; k++ {
						if err := op.call(ctx, who.s, k); err != nil {
							return err
						}
					}
					return nil
				}, who.prefix)
			}
			if who.s == g {
				want = got
				if len(want) < calls {
					t.Fatalf("%s: the store sent %d commands for %d calls: %q", op.name, len(want), calls, want)
				}
				continue
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("%s: %s sent\n\t%s\nthe store\n\t%s", op.name, who.name, strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
			}
		}
	}
}

// monitor is a MONITOR connection: every command Redis runs, one line
// each.
type monitor struct {
	lines chan string
}

func startMonitor(t *testing.T, url string) *monitor {
	c, err := redis.DialURL(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Do("MONITOR"); err != nil {
		t.Fatal(err)
	}
	m := &monitor{lines: make(chan string, 100_000)}
	go func() {
		defer close(m.lines)
		for {
			line, err := redis.String(c.Receive())
			if err != nil {
				return
			}
			m.lines <- line
		}
	}()
	return m
}

var (
	monitorHead = regexp.MustCompile(`^[0-9.]+ \[[^]]*\] `)
	millis      = regexp.MustCompile(`"1[0-9]{12}"`)
	commandName = regexp.MustCompile(`^(lua: )?"[a-z]+"`)
)

// during runs fn and returns the commands Redis ran meanwhile that name
// prefix, the prefix and times made alike; and the commands of scripts.
func (m *monitor) during(t *testing.T, srv *server, fn func() error, prefix string) []string {
	t.Helper()
	mark := func(s string) {
		if _, err := srv.do(context.Background(), "ECHO", s); err != nil {
			t.Fatal(err)
		}
		for line := range m.lines {
			if strings.Contains(line, `"ECHO" "`+s+`"`) {
				return
			}
		}
		t.Fatal("MONITOR ended")
	}
	mark("start")
	if err := fn(); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.do(context.Background(), "ECHO", "end"); err != nil {
		t.Fatal(err)
	}
	var out []string
	for line := range m.lines {
		if strings.Contains(line, `"ECHO" "end"`) {
			return out
		}
		// Only the implementation's own commands and its scripts': not
		// the seeds (sent by the runner, outside the prefix-free "lua"
		// client, but before the start mark), nor INFO, PING, ECHO.
		if !strings.Contains(line, prefix+":") {
			continue
		}
		line = monitorHead.ReplaceAllStringFunc(line, func(h string) string {
			if strings.Contains(h, "lua]") {
				return "lua: "
			}
			return ""
		})
		line = strings.ReplaceAll(strings.ReplaceAll(line, prefix+":", "P:"), `"`+prefix+`"`, `"P"`)
		// go-redis writes command names in lower case.
		line = commandName.ReplaceAllStringFunc(line, func(name string) string {
			head, cmd, _ := strings.Cut(name, `"`)
			return head + `"` + strings.ToUpper(cmd)
		})
		out = append(out, millis.ReplaceAllString(line, `"<ms>"`))
	}
	t.Fatal("MONITOR ended")
	return nil
}
