package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// result is one measured cell: an implementation running one operation at
// one concurrency, or one redis-benchmark run.
type result struct {
	Ops       int     `json:"ops"`   // calls recorded (started in the measured window)
	Calls     int     `json:"calls"` // calls made, warm-up included
	Seconds   float64 `json:"seconds"`
	OpsPerSec float64 `json:"opsPerSec"`
	P50us     float64 `json:"p50us"`
	P99us     float64 `json:"p99us"`
}

// errNoCalls is a cell in which no call started inside the measured
// window: on a busy machine, calls that each take longer than the window
// (a 100,000-id topic read behind 63 others) can do that.
var errNoCalls = errors.New("no call was recorded")

// timing is the measured window of a run: callers call back to back for
// warmup (not recorded), then for duration.
type timing struct {
	warmup, duration time.Duration
}

// measure runs call from callers goroutines, as a Go server's request
// handlers would. Calls started inside the measured window are recorded,
// and throughput is recorded calls over the time from the window's start
// to the end of the last recorded call. bench.mjs counts by the same rules.
// With limit > 0 only calls 0..limit-1 are made (RemoveChannels removes
// each seeded channel once), and the run may end early.
func measure(ctx context.Context, callers int, tm timing, limit int, call func(ctx context.Context, k int) error) (result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next    atomic.Int64
		mu      sync.Mutex
		samples []time.Duration
		lastEnd time.Time
		calls   int
		failed  error
		wg      sync.WaitGroup
	)
	start := time.Now()
	mStart := start.Add(tm.warmup)
	mEnd := mStart.Add(tm.duration)
	for w := 0; w < callers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each caller keeps its own samples; they are merged once at
			// the end so that recording costs no lock.
			var mine []time.Duration
			var myEnd time.Time
			myCalls := 0
			defer func() {
				mu.Lock()
				samples = append(samples, mine...)
				calls += myCalls
				if myEnd.After(lastEnd) {
					lastEnd = myEnd
				}
				mu.Unlock()
			}()
			for ctx.Err() == nil {
				k := int(next.Add(1) - 1)
				if limit > 0 && k >= limit {
					return
				}
				t0 := time.Now()
				if !t0.Before(mEnd) {
					return
				}
				if err := call(ctx, k); err != nil {
					mu.Lock()
					if failed == nil && !errors.Is(err, context.Canceled) {
						failed = err
					}
					mu.Unlock()
					cancel()
					return
				}
				t1 := time.Now()
				myCalls++
				if !t0.Before(mStart) {
					mine = append(mine, t1.Sub(t0))
					myEnd = t1
				}
			}
		}()
	}
	wg.Wait()
	if failed != nil {
		return result{}, failed
	}
	if err := ctx.Err(); err != nil {
		return result{}, err
	}
	if len(samples) == 0 {
		return result{}, fmt.Errorf("%w (ran out of seeded data during the warm-up, or one call outlasts -duration?)", errNoCalls)
	}
	slices.Sort(samples)
	secs := lastEnd.Sub(mStart).Seconds()
	return result{
		Ops:       len(samples),
		Calls:     calls,
		Seconds:   secs,
		OpsPerSec: float64(len(samples)) / secs,
		P50us:     micros(percentile(samples, 0.50)),
		P99us:     micros(percentile(samples, 0.99)),
	}, nil
}

// percentile is the nearest-rank percentile of sorted samples.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// median of the values that are not NaN (a figure missing from a run is
// NaN); NaN when there are none.
func median(vals []float64) float64 {
	v := slices.DeleteFunc(slices.Clone(vals), math.IsNaN)
	if len(v) == 0 {
		return math.NaN()
	}
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}
