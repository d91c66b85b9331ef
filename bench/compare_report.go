package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// compareReport is everything -compare measured.
type compareReport struct {
	Date      time.Time `json:"date"`
	Runs      int       `json:"runs"`
	App       string    `json:"app"`
	AppBinary appBinary `json:"app_binary"`
	Machine   machine   `json:"machine"`
	// GuestMemMiB is the memory of the timed boots, the nos images' default.
	GuestMemMiB    int                `json:"guest_memory_mib"`
	MemBoots       int                `json:"memory_boots_per_size"`
	LoadAfterBoots string             `json:"load_after_boots"`
	Variants       []cmpVariantReport `json:"variants"`
	Ratios         []ratioReport      `json:"ratios"`
	Targets        []targetReport     `json:"targets"`
}

// cmpVariantReport is one cmpVariant's figures.
type cmpVariantReport struct {
	ID           string     `json:"id"`
	Name         string     `json:"name"`
	Kernel       string     `json:"kernel"`
	How          string     `json:"how"`
	Clock        string     `json:"clock"`
	Boot         summary    `json:"boot_ms"`
	Size         cmpSize    `json:"size"`
	Memory       *memResult `json:"min_memory,omitempty"`
	Conventional *convInfo  `json:"conventional,omitempty"`
}

// cmpSize is a variant's size on disk: Bytes is what the ratios use.
type cmpSize struct {
	Bytes int64         `json:"bytes"`
	What  string        `json:"what"`
	Parts []cmpSizePart `json:"parts"`
}

type cmpSizePart struct {
	Name  string `json:"name"`
	Bytes int64  `json:"bytes"`
}

// convInfo describes the conventional VM's system.
type convInfo struct {
	Suite        string `json:"suite"`
	Packages     string `json:"packages"`
	Service      string `json:"service"`
	Network      string `json:"network"`
	Cache        string `json:"cache_dir"`
	BuiltThisRun bool   `json:"built_this_run"`
}

// ratioReport is a over another variant: median boot times, sizes and
// minimum memory. Below 1, a is faster or smaller.
type ratioReport struct {
	Name   string  `json:"name"`
	Boot   float64 `json:"boot_time"`
	Size   float64 `json:"size"`
	Memory float64 `json:"min_memory,omitempty"` // 0: not measured
	// MemoryAtMost says a's minimum memory is nos's floor, so the ratio
	// is an upper bound of the guest's own.
	MemoryAtMost bool `json:"min_memory_upper_bound,omitempty"`
}

func compareRatios(a, c, d *cmpVariantReport) []ratioReport {
	var out []ratioReport
	for _, o := range []*cmpVariantReport{c, d} {
		r := ratioReport{Name: a.ID + "/" + o.ID, Boot: a.Boot.Median / o.Boot.Median, Size: float64(a.Size.Bytes) / float64(o.Size.Bytes)}
		if a.Memory != nil && o.Memory != nil {
			r.Memory = float64(a.Memory.MinMiB) / float64(o.Memory.MinMiB)
			r.MemoryAtMost = a.Memory.FloorHit
		}
		out = append(out, r)
	}
	return out
}

// targetReport is one of issue 4's targets and whether this run met it.
type targetReport struct {
	Target  string `json:"target"`
	Verdict string `json:"verdict"` // met, missed or not measured
	Detail  string `json:"detail"`
}

// Issue 4's targets.
const (
	targetBootFactor  = 10.0 // a boots at least this many times faster than c
	targetFloorFactor = 1.5  // a within this factor of d
	targetMemMiB      = 24   // a's minimum memory at most this
	targetSizeFactor  = 30.0 // a's image at least this many times smaller than c's
)

func evaluateTargets(a, c, d *cmpVariantReport) []targetReport {
	var out []targetReport
	// Boot: c/a >= 10.
	{
		f := c.Boot.Median / a.Boot.Median
		t := targetReport{Target: fmt.Sprintf("a boots ≥%g× faster than c", targetBootFactor)}
		need := c.Boot.Median / targetBootFactor
		if f >= targetBootFactor {
			t.Verdict = "met"
			t.Detail = fmt.Sprintf("c/a = %.1f× (medians %s and %s)", f, ms(c.Boot.Median), ms(a.Boot.Median))
		} else {
			t.Verdict = "missed"
			t.Detail = fmt.Sprintf("c/a = %.1f×, %.1f× short: a would need ≤ %s, it took %s (%s too slow)",
				f, targetBootFactor/f, ms(need), ms(a.Boot.Median), ms(a.Boot.Median-need))
		}
		out = append(out, t)
	}
	// Floor: a/d <= 1.5.
	{
		r := a.Boot.Median / d.Boot.Median
		t := targetReport{Target: fmt.Sprintf("a within %g× of d (boot)", targetFloorFactor)}
		need := d.Boot.Median * targetFloorFactor
		if r <= targetFloorFactor {
			t.Verdict = "met"
			t.Detail = fmt.Sprintf("a/d = %.2f× (medians %s and %s)", r, ms(a.Boot.Median), ms(d.Boot.Median))
		} else {
			t.Verdict = "missed"
			t.Detail = fmt.Sprintf("a/d = %.2f×: a would need ≤ %s, it took %s (%s too slow)",
				r, ms(need), ms(a.Boot.Median), ms(a.Boot.Median-need))
		}
		out = append(out, t)
	}
	// Memory: a's minimum <= 24 MiB.
	{
		t := targetReport{Target: fmt.Sprintf("minimum memory of a ≤ %d MiB", targetMemMiB)}
		m := a.Memory
		switch {
		case m == nil:
			t.Verdict, t.Detail = "not measured", "the memory search was skipped (-skip-memory)"
		case m.MinMiB <= targetMemMiB:
			t.Verdict, t.Detail = "met", fmt.Sprintf("%d MiB", m.MinMiB)
		case m.FloorHit:
			t.Verdict = "missed"
			t.Detail = fmt.Sprintf("a served at %d MiB, nos's floor: nos run refuses -m below %d MiB, so %d MiB over the target as nos stands; whether the guest itself fits in less was not measured",
				m.MinMiB, m.Floor, m.MinMiB-targetMemMiB)
		default:
			t.Verdict = "missed"
			t.Detail = fmt.Sprintf("%d MiB (%d MiB failed), %d MiB over", m.MinMiB, m.BelowMiB, m.MinMiB-targetMemMiB)
		}
		out = append(out, t)
	}
	// Size: c/a >= 30.
	{
		f := float64(c.Size.Bytes) / float64(a.Size.Bytes)
		t := targetReport{Target: fmt.Sprintf("image a ≥%g× smaller than c", targetSizeFactor)}
		need := int64(float64(c.Size.Bytes) / targetSizeFactor)
		if f >= targetSizeFactor {
			t.Verdict = "met"
			t.Detail = fmt.Sprintf("c/a = %.1f× (%s and %s)", f, mib(c.Size.Bytes), mib(a.Size.Bytes))
		} else {
			t.Verdict = "missed"
			t.Detail = fmt.Sprintf("c/a = %.1f×, %.1f× short: a would need ≤ %s, it is %s (%s too big)",
				f, targetSizeFactor/f, mib(need), mib(a.Size.Bytes), mib(a.Size.Bytes-need))
		}
		out = append(out, t)
	}
	return out
}

// fmtRatio prints a ratio, and its inverse when below 1 ("0.10 = 1/9.8").
func fmtRatio(r float64) string {
	switch {
	case r <= 0:
		return "n/a"
	case r < 1:
		return fmt.Sprintf("%.3g = 1/%.3g", r, 1/r)
	default:
		return fmt.Sprintf("%.3g", r)
	}
}

// memText describes a minimum memory result in one cell.
func memText(m *memResult) string {
	if m == nil {
		return "not measured"
	}
	switch {
	case m.FloorHit:
		return fmt.Sprintf("%d MiB (nos's floor: run -m refuses less)", m.MinMiB)
	case m.BelowTried:
		return fmt.Sprintf("%d MiB (%d fails)", m.MinMiB, m.BelowMiB)
	default:
		return fmt.Sprintf("%d MiB (%d assumed to fail, not tried)", m.MinMiB, m.BelowMiB)
	}
}

// probesText lists the sizes tried, in order.
func probesText(m *memResult) string {
	var parts []string
	for _, p := range m.Probes {
		s := fmt.Sprintf("%d ok", p.MiB)
		if !p.OK {
			s = fmt.Sprintf("%d failed (%s)", p.MiB, p.Note)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// writeCompareTable prints the report for people.
func writeCompareTable(w io.Writer, rep *compareReport) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format+"\n", args...) }
	m := rep.Machine
	p("nos compared with a conventional VM: %s, %d boots of each, %s", rep.App, rep.Runs, rep.Date.Format(time.RFC3339))
	p("")
	p("Machine")
	p("  CPU\t%s, %d cores, %s RAM", m.CPU, m.Cores, gib(m.MemoryBytes))
	p("  Host\t%s, Linux %s", m.OS, m.HostKernel)
	p("  QEMU\t%s", m.QEMU)
	p("  Accelerator\t%s", accelName(m.Accel))
	p("  Go\t%s", m.Go)
	p("  Source\t%s", m.Source)
	p("  Load average\t%s (start), %s (after the boots), %s (end)", m.LoadStart, rep.LoadAfterBoots, m.LoadEnd)
	p("  Application\t%s, %d bytes, sha256 %s, %s", rep.App, rep.AppBinary.Bytes, rep.AppBinary.SHA256[:16], rep.AppBinary.Build)
	p("  Guest\t%d MiB and 1 vCPU in the timed boots", rep.GuestMemMiB)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Variants")
	for _, v := range rep.Variants {
		fmt.Fprintf(w, "  %s  %s\n      kernel: %s\n      boot: %s\n      clock: %s\n", v.ID, v.Name, v.Kernel, v.How, v.Clock)
		if ci := v.Conventional; ci != nil {
			fmt.Fprintf(w, "      system: debootstrap %s %s; %s; %s; cached in %s (built this run: %v)\n", ci.Suite, ci.Packages, ci.Service, ci.Network, ci.Cache, ci.BuiltThisRun)
		}
	}
	fmt.Fprintln(w)
	p("Boot, %d runs\tmedian\tmin\tmax", rep.Runs)
	for _, v := range rep.Variants {
		b := v.Boot
		p("  %s  %s\t%s\t%s\t%s", v.ID, v.Name, ms(b.Median), ms(b.Min), ms(b.Max))
	}
	p("")
	p("Size on disk\tbytes\t\t")
	for _, v := range rep.Variants {
		p("  %s  %s\t%d\t%s\t", v.ID, v.Size.What, v.Size.Bytes, mib(v.Size.Bytes))
		for _, part := range v.Size.Parts {
			p("        %s\t%d\t%s\t", part.Name, part.Bytes, mib(part.Bytes))
		}
	}
	p("")
	if len(rep.Variants) > 0 && rep.Variants[0].Memory != nil {
		mr := rep.Variants[0].Memory
		p("Minimum memory (%d of %d boots ready within the timeout)\tMiB\ttimeout\t", mr.Boots, mr.Boots)
		for _, v := range rep.Variants {
			if v.Memory == nil {
				continue
			}
			p("  %s  %s\t%s\t%s\t", v.ID, v.Name, memText(v.Memory), ms(v.Memory.Timeout))
		}
	} else {
		p("Minimum memory\tnot measured\t\t")
	}
	p("")
	p("Ratios (medians; below 1: a is faster or smaller)\tboot time\tsize\tmin memory")
	for _, r := range rep.Ratios {
		mem := fmtRatio(r.Memory)
		if r.MemoryAtMost && r.Memory > 0 {
			mem = "≤ " + mem
		}
		p("  %s\t%s\t%s\t%s", r.Name, fmtRatio(r.Boot), fmtRatio(r.Size), mem)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Targets")
	for _, t := range rep.Targets {
		fmt.Fprintf(w, "  %s: %s. %s\n", t.Target, strings.ToUpper(t.Verdict), t.Detail)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Individual boots, in order")
	for _, v := range rep.Variants {
		fmt.Fprintf(w, "  %s: %s\n", v.ID, joinValues(v.Boot.Values, ms))
	}
	if len(rep.Variants) > 0 && rep.Variants[0].Memory != nil {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Memory sizes tried (MiB), in order")
		for _, v := range rep.Variants {
			if v.Memory != nil {
				fmt.Fprintf(w, "  %s: %s\n", v.ID, probesText(v.Memory))
			}
		}
	}
	return nil
}
