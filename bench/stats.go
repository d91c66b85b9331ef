package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// summary is the median, min and max of a series of measurements, in the
// series' unit (milliseconds for times, bytes for sizes).
type summary struct {
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	N      int       `json:"n"`
	Values []float64 `json:"values"`
}

// summarize fails on an empty series rather than invent a figure.
func summarize(values []float64) (summary, error) {
	if len(values) == 0 {
		return summary{}, fmt.Errorf("no measurements")
	}
	s := slices.Clone(values)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return summary{Median: med, Min: s[0], Max: s[n-1], N: n, Values: slices.Clone(values)}, nil
}

// millis is d in milliseconds, to the microsecond.
func millis(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Microsecond)) / 1000 }

func summarizeDurations(ds []time.Duration) (summary, error) {
	v := make([]float64, len(ds))
	for i, d := range ds {
		v[i] = millis(d)
	}
	return summarize(v)
}
