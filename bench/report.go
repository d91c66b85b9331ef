package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// report is everything the benchmark measured.
type report struct {
	Date    time.Time  `json:"date"`
	Runs    int        `json:"runs"`
	App     string     `json:"app"`
	Machine machine    `json:"machine"`
	Sizes   imageSizes `json:"image_sizes"`
	Build   buildTimes `json:"build_time"`
	Boot    bootTimes  `json:"run"`
}

// measure runs every measurement in order; the first failure ends it.
func (h *harness) measure(ctx context.Context) (*report, error) {
	rep := &report{Date: time.Now().UTC(), Runs: h.opts.runs, App: appPkg}
	var err error
	if rep.Machine, err = h.hostInfo(ctx); err != nil {
		return nil, fmt.Errorf("describing the machine: %w", err)
	}
	if err := h.warmUp(ctx); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	if err := h.measureSizes(ctx, rep); err != nil {
		return nil, fmt.Errorf("image size: %w", err)
	}
	if rep.Build, err = h.buildTimes(ctx, h.opts.runs); err != nil {
		return nil, fmt.Errorf("build time: %w", err)
	}
	if rep.Boot, err = h.bootTimes(ctx, h.opts.runs); err != nil {
		return nil, fmt.Errorf("boot time: %w", err)
	}
	rep.Machine.LoadEnd = loadAvg()
	return rep, nil
}

// measureSizes fills in the image and application sizes and what the image
// says about the guest.
func (h *harness) measureSizes(ctx context.Context, rep *report) error {
	im, err := h.inspect(ctx, appImage)
	if err != nil {
		return err
	}
	k, i, err := layerSizes(im)
	if err != nil {
		return err
	}
	rep.Sizes = imageSizes{Kernel: k, Initramfs: i, InitramfsFormat: initramfsFormat(im), Total: im.Size}
	if rep.Sizes.App, rep.Sizes.AppStripped, err = h.appSizes(ctx); err != nil {
		return err
	}
	if im.Config.Kernel.Version == "" {
		return fmt.Errorf("nos inspect %s: no kernel version in the image config", appImage)
	}
	rep.Machine.GuestKernel = im.Config.Kernel.Version
	rep.Machine.GuestCmd = im.Config.KernelCmdline
	rep.Machine.GuestMemMiB = im.Config.MemoryMiB
	rep.Machine.GuestCPUs = im.Config.CPUs
	return nil
}

func writeJSON(w io.Writer, rep any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// writeTable prints the report for people.
func writeTable(w io.Writer, rep *report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	m := rep.Machine
	p := func(format string, args ...any) { fmt.Fprintf(tw, format+"\n", args...) }
	p("nos benchmark: %s, %d timed runs each, %s", rep.App, rep.Runs, rep.Date.Format(time.RFC3339))
	p("")
	p("Machine")
	p("  CPU\t%s, %d cores, %s RAM", m.CPU, m.Cores, gib(m.MemoryBytes))
	p("  Host\t%s, Linux %s", m.OS, m.HostKernel)
	p("  QEMU\t%s", m.QEMU)
	p("  Accelerator\t%s", accelName(m.Accel))
	p("  Go\t%s", m.Go)
	p("  Guest\tkernel %s, %d MiB, %d vCPU, cmdline %q", m.GuestKernel, m.GuestMemMiB, m.GuestCPUs, m.GuestCmd)
	p("  Source\t%s", m.Source)
	p("  Load average\t%s (start), %s (end)", m.LoadStart, m.LoadEnd)
	p("")
	s := rep.Sizes
	p("Image size\tbytes\t")
	p("  kernel layer\t%d\t%s", s.Kernel, mib(s.Kernel))
	p("  initramfs layer (%s cpio)\t%d\t%s", s.InitramfsFormat, s.Initramfs, mib(s.Initramfs))
	p("  image total (layers+config+manifest)\t%d\t%s", s.Total, mib(s.Total))
	p("  app alone: go build -trimpath\t%d\t%s", s.App, mib(s.App))
	p("  app alone: stripped, as nos builds it\t%d\t%s", s.AppStripped, mib(s.AppStripped))
	p("")
	b := rep.Build
	p("Build time\tmedian\tmin\tmax")
	p("  go build (CGO_ENABLED=0 -trimpath)\t%s\t%s\t%s", ms(b.GoBuild.Median), ms(b.GoBuild.Min), ms(b.GoBuild.Max))
	p("  nos build\t%s\t%s\t%s", ms(b.NosBuild.Median), ms(b.NosBuild.Min), ms(b.NosBuild.Max))
	p("  ratio nos/go (medians)\t%.2f\t\t", b.Ratio)
	p("  distinct image digests\t%d\t\t", len(b.Digests))
	p("")
	r := rep.Boot
	p("Run (nos run --accel %s)\tmedian\tmin\tmax", m.Accel)
	p("  exec to app log %q\t%s\t%s\t%s", appStarted, ms(r.Listening.Median), ms(r.Listening.Min), ms(r.Listening.Max))
	p("  exec to first HTTP 200\t%s\t%s\t%s", ms(r.Ready.Median), ms(r.Ready.Min), ms(r.Ready.Max))
	p("  SIGINT to nos exit (graceful)\t%s\t%s\t%s", ms(r.Stop.Median), ms(r.Stop.Min), ms(r.Stop.Max))
	if r.QEMURSS != nil {
		p("  QEMU peak RSS (VmHWM)\t%s\t%s\t%s", kibMiB(r.QEMURSS.Median), kibMiB(r.QEMURSS.Min), kibMiB(r.QEMURSS.Max))
	} else {
		p("  QEMU peak RSS (VmHWM)\tn/a\tn/a\tn/a")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.QEMURSS == nil {
		fmt.Fprintf(w, "  (QEMU peak RSS not measured: %s)\n", r.RSSNote)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Individual runs, in order")
	fmt.Fprintln(w, "  go build:         "+joinValues(b.GoBuild.Values, ms))
	fmt.Fprintln(w, "  nos build:        "+joinValues(b.NosBuild.Values, ms))
	fmt.Fprintln(w, "  app listening:    "+joinValues(r.Listening.Values, ms))
	fmt.Fprintln(w, "  first HTTP 200:   "+joinValues(r.Ready.Values, ms))
	fmt.Fprintln(w, "  graceful stop:    "+joinValues(r.Stop.Values, ms))
	if r.QEMURSS != nil {
		fmt.Fprintln(w, "  QEMU peak RSS:    "+joinValues(r.QEMURSS.Values, kibMiB))
	}
	return nil
}

func accelName(a string) string {
	if a == "tcg" {
		return "tcg (software emulation: compare ratios, not absolute boot times)"
	}
	return a
}

func ms(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.2f s", v/1000)
	}
	return fmt.Sprintf("%.0f ms", v)
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func gib(n int64) string { return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30)) }

func kibMiB(kib float64) string { return fmt.Sprintf("%.0f MiB", kib/1024) }

// joinValues lists a series as the table's footnotes do.
func joinValues(vs []float64, format func(float64) string) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = format(v)
	}
	return strings.Join(parts, ", ")
}
