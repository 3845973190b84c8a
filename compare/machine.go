package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"
)

// machine describes where the figures were measured.
type machine struct {
	cpu                   string
	nproc                 int
	goVersion, node       string
	ioredis, pikkuRedis   string
	redis, redisBenchmark string
	rueidis, goRedis      string // the peers' module versions
	date                  string
	cluster               string // what the Cluster column ran on; empty without it
	runs                  int
	duration              time.Duration
}

func describeMachine(ctx context.Context, srv *server, v nodeVersions, cfg config) (machine, error) {
	redisVersion, err := srv.version(ctx)
	if err != nil {
		return machine{}, err
	}
	return machine{
		cpu:            cpuModel(),
		nproc:          runtime.NumCPU(),
		goVersion:      runtime.Version(),
		node:           v.Node,
		ioredis:        v.IORedis,
		pikkuRedis:     v.PikkuRedis,
		redis:          redisVersion,
		redisBenchmark: benchmarkVersion(),
		rueidis:        moduleVersion("github.com/redis/rueidis"),
		goRedis:        moduleVersion("github.com/redis/go-redis/v9"),
		date:           time.Now().UTC().Format("2006-01-02 15:04 MST"),
		runs:           cfg.runs,
		duration:       cfg.tm.duration,
	}, nil
}

func (m machine) oneLine() string {
	return fmt.Sprintf("%s, %d CPUs; Go %s (rueidis %s, go-redis %s); Node.js %s (ioredis %s, @pikku/redis %s); redis-server %s; %s",
		m.cpu, m.nproc, m.goVersion, m.rueidis, m.goRedis, m.node, m.ioredis, m.pikkuRedis, m.redis, m.redisBenchmark)
}

// moduleVersion is the version of a module built into the runner, from
// its build information (go.mod's, since compare/ is a module of its own).
func moduleVersion(path string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == path {
				return d.Version
			}
		}
	}
	return "unknown"
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}
