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
	Ops       int     `json:"ops"`   // calls recorded (ended in the measured window)
	Calls     int     `json:"calls"` // calls made, warm-up included
	Seconds   float64 `json:"seconds"`
	OpsPerSec float64 `json:"opsPerSec"`
	P50us     float64 `json:"p50us"`
	P99us     float64 `json:"p99us"`
	// ServerCPU is the CPU time redis-server spent meanwhile, in seconds
	// (redis-cli --pipe only).
	ServerCPU float64 `json:"-"`
}

// errNoCalls is a cell in which no call ended inside the measured window:
// calls that each take longer than the window on a busy machine can do
// that, or a RemoveChannels cell that ran out of seeded channels during
// the warm-up.
var errNoCalls = errors.New("no call was recorded")

// timing is the measured window of a run: callers call back to back for
// warmup (not recorded; longer if a caller has not completed a call by
// then), then for duration.
type timing struct {
	warmup, duration time.Duration
}

// measure runs call from callers goroutines, as a Go server's request
// handlers would: each caller calls back to back until the measured
// window ends. The warm-up lasts tm.warmup and, beyond that, until every
// caller has completed a call: callers that all start at once finish
// their first calls together, which for a slow call (a 100,000-id read
// behind 63 others) would otherwise be all the window sees. Calls that
// end inside the window are recorded, wherever they started, and
// throughput is recorded calls over the window's duration: in steady
// state as many calls end in a stretch of time as the clients complete.
// bench.mjs counts by the same rules. With limit > 0 only calls
// 0..limit-1 are made (RemoveChannels removes each seeded channel once);
// a cell that runs out of them ends early, and its throughput is taken
// over the time to the end of its last recorded call.
// callTimeout bounds each measured call.
const callTimeout = time.Minute

func measure(ctx context.Context, callers int, tm timing, limit int, call func(ctx context.Context, k int) error) (result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next      atomic.Int64
		ranOut    atomic.Bool
		firstDone atomic.Int64                 // callers that completed a call
		window    atomic.Pointer[[2]time.Time] // start and end, once the warm-up is over
		mu        sync.Mutex
		samples   []time.Duration
		lastEnd   time.Time
		calls     int
		failed    error
		wg        sync.WaitGroup
	)
	warmEnd := time.Now().Add(tm.warmup)
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
					ranOut.Store(true)
					return
				}
				t0 := time.Now()
				if w := window.Load(); w != nil && !t0.Before(w[1]) {
					return
				}
				// A call has a minute at most: a client that stops
				// answering (rueidis once did, at 64 callers of a
				// 100,000-id topic on a loaded machine) fails the cell
				// instead of hanging the run.
				cctx, ccancel := context.WithTimeout(ctx, callTimeout)
				err := call(cctx, k)
				ccancel()
				if err != nil {
					mu.Lock()
					if failed == nil && !errors.Is(err, context.Canceled) {
						failed = err
					}
					mu.Unlock()
					cancel()
					return
				}
				t1 := time.Now()
				if myCalls++; myCalls == 1 && firstDone.Add(1) == int64(callers) {
					// The last caller's first call: the window starts now,
					// or when the warm-up's time is up.
					from := t1
					if from.Before(warmEnd) {
						from = warmEnd
					}
					window.Store(&[2]time.Time{from, from.Add(tm.duration)})
				}
				if w := window.Load(); w != nil && !t1.Before(w[0]) && !t1.After(w[1]) {
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
		return result{}, fmt.Errorf("%w (ran out of seeded data during the warm-up, or one call outlasts the window?)", errNoCalls)
	}
	slices.Sort(samples)
	secs := tm.duration.Seconds()
	if ranOut.Load() {
		secs = lastEnd.Sub(window.Load()[0]).Seconds()
	}
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
