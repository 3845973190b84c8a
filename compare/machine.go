package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
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
		date:           time.Now().UTC().Format("2006-01-02 15:04 MST"),
		runs:           cfg.runs,
		duration:       cfg.tm.duration,
	}, nil
}

func (m machine) oneLine() string {
	return fmt.Sprintf("%s, %d CPUs; Go %s; Node.js %s (ioredis %s, @pikku/redis %s); redis-server %s; %s",
		m.cpu, m.nproc, m.goVersion, m.node, m.ioredis, m.pikkuRedis, m.redis, m.redisBenchmark)
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
