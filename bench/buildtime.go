package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// buildTimes are the build time figures, in milliseconds.
type buildTimes struct {
	GoBuild  summary `json:"go_build_ms"`
	NosBuild summary `json:"nos_build_ms"`
	// Ratio is the nos build median over the go build median.
	Ratio float64 `json:"ratio_of_medians"`
	// Digests are the distinct image digests the nos builds printed; one
	// means the builds were reproducible.
	Digests []string `json:"digests"`
}

// nosBuild runs `nos build` of the example and returns the digest it
// printed and how long it took.
func (h *harness) nosBuild(ctx context.Context) (string, time.Duration, error) {
	start := time.Now()
	out, err := h.runNos(ctx, "build", "--kernel", h.kernel, "-t", appImage, appPkg)
	took := time.Since(start)
	if err != nil {
		return "", 0, err
	}
	digest := strings.TrimSpace(out)
	if !strings.HasPrefix(digest, "sha256:") {
		return "", 0, fmt.Errorf("nos build printed %q, want a sha256 digest", digest)
	}
	return digest, took, nil
}

// warmUp builds once with each tool, untimed, to fill the Go build cache
// and create the image the other measurements use.
func (h *harness) warmUp(ctx context.Context) error {
	progress("warm-up: go build and nos build of %s", appPkg)
	if _, err := h.goBuild(ctx, filepath.Join(h.tmp, "app-warm"), appPkg); err != nil {
		return err
	}
	_, _, err := h.nosBuild(ctx)
	return err
}

// freshGoBuild times a plain go build of the example into a new file. go
// build skips the link when its -o target is already up to date; nos
// always builds into a fresh directory, so the baseline must too.
func (h *harness) freshGoBuild(ctx context.Context, i int) (time.Duration, error) {
	out := filepath.Join(h.tmp, fmt.Sprintf("app-%d", i))
	took, err := h.goBuild(ctx, out, appPkg)
	if err != nil {
		return 0, err
	}
	if err := os.Remove(out); err != nil {
		return 0, err
	}
	return took, nil
}

// buildTimes times n plain go builds and n nos builds, alternating.
func (h *harness) buildTimes(ctx context.Context, n int) (buildTimes, error) {
	var goT, nosT []time.Duration
	seen := map[string]bool{}
	var res buildTimes
	for i := range n {
		g, err := h.freshGoBuild(ctx, i)
		if err != nil {
			return res, err
		}
		digest, t, err := h.nosBuild(ctx)
		if err != nil {
			return res, err
		}
		goT, nosT = append(goT, g), append(nosT, t)
		if !seen[digest] {
			seen[digest] = true
			res.Digests = append(res.Digests, digest)
		}
		progress("build %d/%d: go build %v, nos build %v", i+1, n, g.Round(time.Millisecond), t.Round(time.Millisecond))
	}
	var err error
	if res.GoBuild, err = summarizeDurations(goT); err != nil {
		return res, fmt.Errorf("go build times: %w", err)
	}
	if res.NosBuild, err = summarizeDurations(nosT); err != nil {
		return res, fmt.Errorf("nos build times: %w", err)
	}
	if res.GoBuild.Median <= 0 {
		return res, fmt.Errorf("go build median is %v ms", res.GoBuild.Median)
	}
	res.Ratio = res.NosBuild.Median / res.GoBuild.Median
	return res, nil
}
