package main

import (
	"context"
	"fmt"
	"time"
)

// Minimum guest memory, by bisection: a size works when every one of
// several boots at it serves within a timeout; the search narrows the
// range between a failing low and a working high to 1 MiB.

// bootOutcome is one boot: whether it got ready in time and how long it
// took, or why not.
type bootOutcome struct {
	OK     bool
	Took   time.Duration
	Note   string // why it failed, one line
	Detail string // more, for the progress log
}

// sizeProbe tries one memory size; an error is a failure of the benchmark
// itself, not of the guest.
type sizeProbe func(ctx context.Context, mib int) (ok bool, note string, err error)

// sizeTried is one size tried.
type sizeTried struct {
	MiB  int    `json:"mib"`
	OK   bool   `json:"ok"`
	Note string `json:"note,omitempty"`
}

// memResult is what a bisection found.
type memResult struct {
	// MinMiB is the smallest size that worked.
	MinMiB int `json:"min_working_mib"`
	// BelowMiB is the largest size known not to work: one that failed,
	// or the search's low end, assumed to fail and not tried (Tried
	// false), or one below nos's floor.
	BelowMiB   int  `json:"largest_failing_mib"`
	BelowTried bool `json:"largest_failing_tried"`
	// Floor, when set, is the least memory nos accepts (nos run -m);
	// FloorHit says the search ended on it, so the guest might work with
	// less than MinMiB but nos does not allow trying.
	Floor    int         `json:"nos_floor_mib,omitempty"`
	FloorHit bool        `json:"floor_hit"`
	Boots    int         `json:"boots_per_size"`
	Timeout  float64     `json:"timeout_ms"`
	Probes   []sizeTried `json:"probes"`
}

// bisectMemory finds the smallest working size in (lo, hi]. hi is tried
// first and must work; lo is assumed to fail and is not tried. floor > 0
// raises lo to floor-1: nothing below floor can be tried.
func bisectMemory(ctx context.Context, lo, hi, floor int, probe sizeProbe) (memResult, error) {
	res := memResult{Floor: floor}
	if floor > 0 && floor-1 > lo {
		lo = floor - 1
	}
	if hi <= lo {
		return res, fmt.Errorf("memory search: high end %d MiB is not above the low end %d MiB", hi, lo)
	}
	try := func(mib int) (bool, error) {
		ok, note, err := probe(ctx, mib)
		if err != nil {
			return false, err
		}
		res.Probes = append(res.Probes, sizeTried{MiB: mib, OK: ok, Note: note})
		return ok, nil
	}
	ok, err := try(hi)
	if err != nil {
		return res, err
	}
	if !ok {
		return res, fmt.Errorf("does not work even with %d MiB, the high end of the search: %s", hi, res.Probes[0].Note)
	}
	tried := false
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		ok, err := try(mid)
		if err != nil {
			return res, err
		}
		if ok {
			hi = mid
		} else {
			lo, tried = mid, true
		}
	}
	res.MinMiB, res.BelowMiB, res.BelowTried = hi, lo, tried
	res.FloorHit = floor > 0 && hi == floor
	return res, nil
}

// allOf makes a probe of a size from a single boot: the size works when
// n boots in a row succeed; the first failure ends the probe.
func allOf(n int, boot func(ctx context.Context, mib int) (bootOutcome, error), log func(mib, i int, o bootOutcome)) sizeProbe {
	return func(ctx context.Context, mib int) (bool, string, error) {
		for i := range n {
			o, err := boot(ctx, mib)
			if err != nil {
				return false, "", err
			}
			if log != nil {
				log(mib, i, o)
			}
			if !o.OK {
				return false, fmt.Sprintf("boot %d/%d: %s", i+1, n, o.Note), nil
			}
		}
		return true, "", nil
	}
}

// probeTimeout is how long a boot may take in the memory search: four
// times the variant's median boot time, and at least least.
func probeTimeout(median time.Duration, least time.Duration) time.Duration {
	return max(least, 4*median)
}
