package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// -network measures the path from the host to a guest's published port
// through each user-mode proxy nos can use (issue 15, item 5): nginx and
// redis from the host's Debian packages as nos images, one instance per
// proxy and round, rounds interleaved (slirp, passt, slirp, ...), loaded
// by the same clients as -software. A tap on a bridge is not measured:
// this host has no /dev/vhost-net, and a bridge's guest would be a
// private address in the host's own namespace.

type networkReport struct {
	Date     time.Time      `json:"date"`
	Runs     int            `json:"runs"`
	Machine  machine        `json:"machine"`
	Kernel   string         `json:"kernel"`
	Programs []proxyFigures `json:"programs"`
}

type proxyFigures struct {
	Name   string `json:"name"`
	Client string `json:"client"`
	// Proxies maps a proxy to its figures: per request kind, the median
	// requests per second over the rounds, and the median p50/p99.
	Proxies map[string]proxyLoad `json:"proxies"`
}

type proxyLoad struct {
	RPS   map[string]summary `json:"requests_per_second"`
	P50   summary            `json:"p50_ms"`
	P99   summary            `json:"p99_ms"`
	First summary            `json:"run_to_first_reply_ms"`
}

// proxies are the user-mode proxies compared, by NOS_USER_PROXY value.
var proxies = []string{"slirp", "passt"}

func runNetwork(ctx context.Context, o options) (err error) {
	h, err := newHarness(ctx, o)
	if err != nil {
		return err
	}
	defer h.close()
	kpath, klabel, err := rootDiskKernel("-network")
	if err != nil {
		return err
	}
	rep := &networkReport{Date: time.Now().UTC(), Runs: o.runs, Kernel: klabel}
	if rep.Machine, err = h.hostInfo(ctx); err != nil {
		return err
	}
	work := filepath.Join(h.tmp, "network")
	f := newFleet(h)
	defer func() {
		if cerr := f.Cleanup(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	for _, p := range []program{nginxProgram(), redisProgram()} {
		dir := filepath.Join(work, p.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if _, err := h.runNos(ctx, append([]string{"build", "--kernel", kpath, "-t", p.name}, p.build(dir)...)...); err != nil {
			return err
		}
		fig := proxyFigures{Name: p.name, Client: p.client, Proxies: map[string]proxyLoad{}}
		loads := map[string][]load{}
		firsts := map[string][]time.Duration{}
		for r := range o.runs {
			for _, px := range proxies {
				port, id, d, err := h.startProgram(ctx, f, p, r, []string{"NOS_USER_PROXY=" + px})
				if err != nil {
					return fmt.Errorf("%s through %s: %w", p.name, px, err)
				}
				l, err := p.load(ctx, port)
				if err != nil {
					return fmt.Errorf("%s through %s: load: %w", p.name, px, err)
				}
				progress("%s round %d/%d, %s: %s", p.name, r+1, o.runs, px, loadString(l))
				loads[px] = append(loads[px], l)
				firsts[px] = append(firsts[px], d)
				if err := f.remove(ctx, &inst{id: id}, true); err != nil {
					return err
				}
			}
		}
		for _, px := range proxies {
			var pl proxyLoad
			if pl, err = summarizeLoads(loads[px]); err != nil {
				return err
			}
			if pl.First, err = summarizeDurations(firsts[px]); err != nil {
				return err
			}
			fig.Proxies[px] = pl
		}
		rep.Programs = append(rep.Programs, fig)
	}
	rep.Machine.LoadEnd = loadAvg()
	if o.json {
		return writeJSON(os.Stdout, rep)
	}
	return writeNetwork(os.Stdout, rep)
}

// summarizeLoads is the median and range of each figure over rounds.
func summarizeLoads(ls []load) (proxyLoad, error) {
	pl := proxyLoad{RPS: map[string]summary{}}
	kinds := map[string][]float64{}
	var p50, p99 []float64
	for _, l := range ls {
		for k, v := range l.RPS {
			kinds[k] = append(kinds[k], v)
		}
		p50, p99 = append(p50, l.P50), append(p99, l.P99)
	}
	var err error
	for k, vs := range kinds {
		if pl.RPS[k], err = summarize(vs); err != nil {
			return pl, err
		}
	}
	if pl.P50, err = summarize(p50); err != nil {
		return pl, err
	}
	pl.P99, err = summarize(p99)
	return pl, err
}

func writeNetwork(w io.Writer, rep *networkReport) error {
	fmt.Fprintf(w, "machine: %s, %d cores, %s, QEMU %s, accelerator %s; load %s → %s\n", rep.Machine.CPU, rep.Machine.Cores, rep.Machine.OS, rep.Machine.QEMU, rep.Machine.Accel, rep.Machine.LoadStart, rep.Machine.LoadEnd)
	fmt.Fprintf(w, "kernel %s; %d rounds, proxies interleaved; medians [min–max]\n\n", rep.Kernel, rep.Runs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "program\tproxy\treq/s\tp50 ms\tp99 ms\trun -d → first reply\tclient")
	for _, p := range rep.Programs {
		for _, px := range proxies {
			l := p.Proxies[px]
			var kinds []string
			for _, k := range slices.Sorted(maps.Keys(l.RPS)) {
				s := l.RPS[k]
				kinds = append(kinds, fmt.Sprintf("%s %.0f [%.0f–%.0f]", k, s.Median, s.Min, s.Max))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f [%.2f–%.2f]\t%.2f [%.2f–%.2f]\t%s [%s–%s]\t%s\n", p.Name, px, strings.Join(kinds, ", "),
				l.P50.Median, l.P50.Min, l.P50.Max, l.P99.Median, l.P99.Min, l.P99.Max,
				ms(l.First.Median), ms(l.First.Min), ms(l.First.Max), p.Client)
		}
	}
	return tw.Flush()
}
