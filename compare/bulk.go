package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/gomodule/redigo/redis"
)

const (
	bulkChannels = 10_000
	bulkSubs     = 10
)

// bulkResult is one RemoveChannels of bulkChannels channels through the Go
// store, with the latency another client saw meanwhile.
type bulkResult struct {
	ChannelsPerSec float64
	Pings          int
	PingP50us      float64
	PingP99us      float64
	PingMaxus      float64
}

// bulkRemove seeds bulkChannels channels of bulkSubs subscriptions each and
// removes them in one RemoveChannels call, while a second, plain connection
// sends PINGs back to back: their latency is how long the removal's
// scripts make every other client of that Redis wait.
func bulkRemove(ctx context.Context, srv *server, g *goStores, prefix string) (bulkResult, error) {
	if err := (seeder{srv, standardLayout(prefix)}).seedRemovable(ctx, "bulk", "bt", bulkChannels, bulkSubs); err != nil {
		return bulkResult{}, err
	}
	ids := make([]string, bulkChannels)
	for i := range ids {
		ids[i] = "bulk" + strconv.Itoa(i)
	}
	pc, err := redis.DialURLContext(ctx, srv.url, redis.DialReadTimeout(10*time.Second))
	if err != nil {
		return bulkResult{}, fmt.Errorf("bulk remove: dial the PING connection: %w", err)
	}
	defer pc.Close()

	type ping struct {
		at  time.Time
		lat time.Duration
	}
	var (
		pings   []ping
		pingErr error
		stop    = make(chan struct{})
		wg      sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			t0 := time.Now()
			if _, err := pc.Do("PING"); err != nil {
				pingErr = err
				return
			}
			pings = append(pings, ping{t0, time.Since(t0)})
		}
	}()
	time.Sleep(20 * time.Millisecond) // let the pinger get going first
	start := time.Now()
	err = g.channels.RemoveChannels(ctx, ids)
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()
	if err != nil {
		return bulkResult{}, fmt.Errorf("bulk remove of %d channels: %w", bulkChannels, err)
	}
	if pingErr != nil {
		return bulkResult{}, fmt.Errorf("bulk remove: PING: %w", pingErr)
	}
	// The removal must have taken the ids out of the topic sets too.
	if left, err := redis.Int(srv.do(ctx, "SCARD", prefix+":topic:bt0")); err != nil || left != 0 {
		return bulkResult{}, fmt.Errorf("bulk remove: topic bt0 still holds %d ids after the removal (%v)", left, err)
	}

	// Only the PINGs sent while the removal ran.
	var lat []time.Duration
	for _, p := range pings {
		if !p.at.Before(start) && p.at.Before(start.Add(elapsed)) {
			lat = append(lat, p.lat)
		}
	}
	res := bulkResult{ChannelsPerSec: bulkChannels / elapsed.Seconds(), Pings: len(lat)}
	if len(lat) > 0 {
		slices.Sort(lat)
		res.PingP50us = micros(percentile(lat, 0.50))
		res.PingP99us = micros(percentile(lat, 0.99))
		res.PingMaxus = micros(lat[len(lat)-1])
	}
	return res, nil
}
