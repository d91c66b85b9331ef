package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The -instances mode measures detached instances (`nos run -d`): what
// each costs the host while idle, how long run -d and stop take, and how
// many idle instances this machine takes before boots slow down. See
// instOptions and the package comment.

type instOptions struct {
	overheadN  int           // instances measured at once for the overhead
	smallMiB   int           // the smaller guest memory (-m) of the overhead and capacity runs
	probeMiB   []int         // guest memory sizes tried once, to record whether the example boots
	settle     time.Duration // wait after the last instance answered, before idle figures
	idleWindow time.Duration // CPU measurement window of idle instances
	capMax     int           // capacity: most instances
	capTime    time.Duration // capacity: longest time, checked before each start
	capWindow  time.Duration // capacity: CPU window after each instance answered
}

// instReport is everything the -instances mode measured.
type instReport struct {
	Date    time.Time `json:"date"`
	Runs    int       `json:"runs"`
	App     string    `json:"app"`
	Machine machine   `json:"machine"`
	// THP is /sys/kernel/mm/transparent_hugepage/enabled: QEMU asks for
	// huge pages for guest RAM, which the host grants in "madvise" and
	// "always" modes.
	THP        string `json:"host_transparent_hugepage"`
	ClockTicks int    `json:"clock_ticks_per_second"`
	// OtherQEMU counts qemu-system-x86_64 processes on the host that the
	// benchmark did not start (other users' VMs), before and after.
	OtherQEMUStart int `json:"other_qemu_processes_start"`
	OtherQEMUEnd   int `json:"other_qemu_processes_end"`

	Lifecycle lifecycle    `json:"lifecycle"`
	Overhead  []overhead   `json:"overhead"`
	Probes    []memProbe   `json:"memory_probes"`
	Capacity  capacityRuns `json:"capacity"`
}

// lifecycle is N runs of one instance at a time: run -d, first 200, stop.
type lifecycle struct {
	MemMiB    int     `json:"guest_memory_mib"`
	RunReturn summary `json:"run_d_return_ms"`
	Ready     summary `json:"run_d_to_first_http_200_ms"`
	Stop      summary `json:"stop_return_ms"`
}

// overhead is M idle instances of one memory size, running together.
type overhead struct {
	MemMiB    int          `json:"guest_memory_mib"`
	SettleMs  float64      `json:"settle_ms"`
	WindowMs  float64      `json:"cpu_window_ms"`
	RunReturn summary      `json:"run_d_return_ms"`
	Ready     summary      `json:"run_d_to_first_http_200_ms"`
	Instances []instSample `json:"instances"`
	// Summaries over the instances, in KiB and % of one core.
	MonitorRSS  summary `json:"monitor_vm_rss_kib"`
	MonitorPss  summary `json:"monitor_pss_kib"`
	MonitorCPU  summary `json:"monitor_cpu_pct_of_one_core"`
	QEMURSS     summary `json:"qemu_vm_rss_kib"`
	QEMUPss     summary `json:"qemu_pss_kib"`
	GuestRAMRSS summary `json:"qemu_guest_ram_rss_kib"`
	TCGRSS      summary `json:"qemu_tcg_buffer_rss_kib"`
	OtherRSS    summary `json:"qemu_other_rss_kib"`
	QEMUCPU     summary `json:"qemu_cpu_pct_of_one_core"`
	// HostBusyPct is the whole host's busy time over the window, in % of
	// all cores; it includes whatever else ran.
	HostBusyPct float64 `json:"host_busy_pct_all_cores"`
	Load        string  `json:"load_avg_after_window"`
	// Stop is `nos stop` of each instance in turn, with the others still
	// running.
	Stop summary `json:"stop_return_ms"`
}

type instSample struct {
	Name       string       `json:"name"`
	MonitorPID int          `json:"monitor_pid"`
	QEMUPID    int          `json:"qemu_pid"`
	UpMs       float64      `json:"served_for_ms_at_window_start"`
	Monitor    procMem      `json:"monitor"`
	QEMU       procMem      `json:"qemu"`
	Split      qemuMemSplit `json:"qemu_split"`
	QEMUCPU    float64      `json:"qemu_cpu_pct_of_one_core"`
	MonitorCPU float64      `json:"monitor_cpu_pct_of_one_core"`
}

// memProbe is one attempt to run the example with a given guest memory.
type memProbe struct {
	MemMiB  int     `json:"guest_memory_mib"`
	Served  bool    `json:"served_http_200"`
	ReadyMs float64 `json:"run_d_to_first_http_200_ms,omitempty"`
	Outcome string  `json:"outcome"`
}

type capacityRuns struct {
	MemMiB      int       `json:"guest_memory_mib"`
	Max         int       `json:"max_instances"`
	TimeLimitMs float64   `json:"time_limit_ms"`
	WindowMs    float64   `json:"cpu_window_ms"`
	Steps       []capStep `json:"steps"`
	// Reason says why starting more ended.
	Reason string `json:"stop_reason"`
	// ThresholdMs is twice the first instance's time to first 200;
	// WithinThreshold counts the instances that answered within it, in
	// the order started, before the first that did not.
	ThresholdMs     float64 `json:"threshold_ms"`
	WithinThreshold int     `json:"instances_within_threshold"`
	// Final is all running instances idle together at the end.
	Final             finalIdle `json:"final_idle"`
	MemAvailableStart int64     `json:"mem_available_start_kib"`
	DurationMs        float64   `json:"duration_ms"`
}

type capStep struct {
	N         int     `json:"n"`
	RunReturn float64 `json:"run_d_return_ms,omitempty"`
	Ready     float64 `json:"run_d_to_first_http_200_ms,omitempty"`
	Failed    string  `json:"failed,omitempty"`
	// Load is the load average right after the first 200.
	Load string `json:"load_avg"`
	// Over the window after the first 200: the host's busy time in % of
	// all cores, and the CPU of all the benchmark's QEMUs together, in %
	// of one core.
	HostBusyPct  float64 `json:"host_busy_pct_all_cores"`
	AllQEMUPct   float64 `json:"all_qemu_cpu_pct_of_one_core"`
	MemAvailable int64   `json:"mem_available_kib"`
}

type finalIdle struct {
	Running     int     `json:"instances"`
	SettleMs    float64 `json:"settle_ms"`
	WindowMs    float64 `json:"cpu_window_ms"`
	QEMUCPU     summary `json:"qemu_cpu_pct_of_one_core"`
	QEMURSS     summary `json:"qemu_vm_rss_kib"`
	MonitorRSS  summary `json:"monitor_vm_rss_kib"`
	AllQEMUPct  float64 `json:"all_qemu_cpu_pct_of_one_core"`
	HostBusyPct float64 `json:"host_busy_pct_all_cores"`
	Load        string  `json:"load_avg"`
}

// runInstances is the -instances mode. The instances go, and the absence
// of their processes is checked, before any figure is printed; a failure
// there fails the run.
func runInstances(ctx context.Context, o options) error {
	h, err := newHarness(ctx, o)
	if err != nil {
		return err
	}
	defer h.close()
	f := newFleet(h)
	defer f.Cleanup() // on a panic; the normal path calls it below
	rep, err := h.measureInstances(ctx, f)
	cerr := f.Cleanup()
	if err != nil {
		return errors.Join(err, cerr)
	}
	if cerr != nil {
		return cerr
	}
	if rep.OtherQEMUEnd, err = otherQEMUs(h.home); err != nil {
		return err
	}
	if o.json {
		return writeJSON(os.Stdout, rep)
	}
	return writeInstancesTable(os.Stdout, rep)
}

func (h *harness) measureInstances(ctx context.Context, f *fleet) (*instReport, error) {
	opt := h.opts.inst
	rep := &instReport{Date: time.Now().UTC(), Runs: h.opts.runs, App: appPkg}
	var err error
	if rep.Machine, err = h.hostInfo(ctx); err != nil {
		return nil, fmt.Errorf("describing the machine: %w", err)
	}
	if rep.ClockTicks, err = clockTicks(ctx); err != nil {
		return nil, err
	}
	rep.THP, _ = readTrim("/sys/kernel/mm/transparent_hugepage/enabled")
	if rep.OtherQEMUStart, err = otherQEMUs(h.home); err != nil {
		return nil, err
	}
	progress("building the image (untimed)")
	if _, _, err := h.nosBuild(ctx); err != nil {
		return nil, fmt.Errorf("building the image: %w", err)
	}
	im, err := h.inspect(ctx, appImage)
	if err != nil {
		return nil, err
	}
	if im.Config.MemoryMiB <= 0 || im.Config.Kernel.Version == "" {
		return nil, fmt.Errorf("nos inspect %s: no memory size or kernel version in the image config", appImage)
	}
	m := &rep.Machine
	m.GuestKernel, m.GuestCmd, m.GuestMemMiB, m.GuestCPUs = im.Config.Kernel.Version, im.Config.KernelCmdline, im.Config.MemoryMiB, im.Config.CPUs

	if rep.Lifecycle, err = h.lifecycle(ctx, f, h.opts.runs); err != nil {
		return nil, fmt.Errorf("run -d and stop: %w", err)
	}
	for _, mem := range []int{0, opt.smallMiB} {
		ov, err := h.overhead(ctx, f, mem, rep.ClockTicks)
		if err != nil {
			return nil, fmt.Errorf("overhead at %s: %w", memName(mem), err)
		}
		rep.Overhead = append(rep.Overhead, ov)
	}
	for _, mem := range opt.probeMiB {
		p, err := h.probe(ctx, f, mem)
		if err != nil {
			return nil, fmt.Errorf("probe at %d MiB: %w", mem, err)
		}
		rep.Probes = append(rep.Probes, p)
	}
	if rep.Capacity, err = h.capacity(ctx, f, rep.ClockTicks); err != nil {
		return nil, fmt.Errorf("capacity: %w", err)
	}
	m.LoadEnd = loadAvg()
	return rep, nil
}

func memName(mem int) string {
	if mem == 0 {
		return "the image's memory size"
	}
	return fmt.Sprintf("-m %dm", mem)
}

// lifecycle starts, stops and removes one instance at a time, n times.
func (h *harness) lifecycle(ctx context.Context, f *fleet, n int) (lifecycle, error) {
	var lc lifecycle
	var ret, ready, stop []time.Duration
	for i := range n {
		in, err := f.start(ctx, fmt.Sprintf("bench-life-%d", i+1), 0)
		if err != nil {
			return lc, fmt.Errorf("run %d/%d: %w", i+1, n, err)
		}
		lc.MemMiB = in.memMiB
		d, err := f.stop(ctx, in)
		if err != nil {
			return lc, fmt.Errorf("run %d/%d: %w", i+1, n, err)
		}
		if err := f.remove(ctx, in, false); err != nil {
			return lc, err
		}
		ret, ready, stop = append(ret, in.runReturn), append(ready, in.ready), append(stop, d)
		progress("run -d %d/%d: returned after %v, first HTTP 200 after %v; nos stop returned after %v", i+1, n,
			in.runReturn.Round(time.Millisecond), in.ready.Round(time.Millisecond), d.Round(time.Millisecond))
	}
	var err error
	if lc.RunReturn, err = summarizeDurations(ret); err != nil {
		return lc, err
	}
	if lc.Ready, err = summarizeDurations(ready); err != nil {
		return lc, err
	}
	lc.Stop, err = summarizeDurations(stop)
	return lc, err
}

// overhead starts overheadN instances one after another, each answering
// before the next starts, lets them idle, reads their memory and then
// their CPU over the window, and stops them.
func (h *harness) overhead(ctx context.Context, f *fleet, mem, tck int) (overhead, error) {
	opt := h.opts.inst
	ov := overhead{SettleMs: millis(opt.settle)}
	var insts []*inst
	var ret, ready []time.Duration
	for i := range opt.overheadN {
		in, err := f.start(ctx, fmt.Sprintf("bench-idle-%s-%d", memTag(mem), i+1), mem)
		if err != nil {
			return ov, err
		}
		insts = append(insts, in)
		ov.MemMiB = in.memMiB
		ret, ready = append(ret, in.runReturn), append(ready, in.ready)
		progress("%s, instance %d/%d: run -d returned after %v, first HTTP 200 after %v", memName(mem), i+1, opt.overheadN,
			in.runReturn.Round(time.Millisecond), in.ready.Round(time.Millisecond))
	}
	progress("%d instances idle: waiting %v, then memory, then CPU over %v", len(insts), opt.settle, opt.idleWindow)
	if err := sleepCtx(ctx, opt.settle); err != nil {
		return ov, err
	}
	for _, in := range insts {
		s, err := sampleMem(f, in)
		if err != nil {
			return ov, err
		}
		ov.Instances = append(ov.Instances, s)
	}
	var pids []int
	for _, in := range insts {
		pids = append(pids, in.qemuPID, in.monitorPID)
	}
	windowStart := time.Now()
	cpu, err := cpuWindow(ctx, f, pids, opt.idleWindow, tck)
	if err != nil {
		return ov, err
	}
	ov.WindowMs, ov.HostBusyPct, ov.Load = cpu.elapsedMs, cpu.hostBusyPct, loadAvg()
	for i, in := range insts {
		s := &ov.Instances[i]
		s.QEMUCPU, s.MonitorCPU = cpu.pct[2*i], cpu.pct[2*i+1]
		s.UpMs = millis(windowStart.Sub(in.readyAt))
	}
	var stops []time.Duration
	for _, in := range insts {
		d, err := f.stop(ctx, in)
		if err != nil {
			return ov, err
		}
		if err := f.remove(ctx, in, false); err != nil {
			return ov, err
		}
		stops = append(stops, d)
	}
	return ov, ov.summarize(ret, ready, stops)
}

func memTag(mem int) string {
	if mem == 0 {
		return "default"
	}
	return strconv.Itoa(mem) + "m"
}

func (ov *overhead) summarize(ret, ready, stops []time.Duration) error {
	var err error
	if ov.RunReturn, err = summarizeDurations(ret); err != nil {
		return err
	}
	if ov.Ready, err = summarizeDurations(ready); err != nil {
		return err
	}
	if ov.Stop, err = summarizeDurations(stops); err != nil {
		return err
	}
	series := func(get func(instSample) float64) (summary, error) {
		var v []float64
		for _, s := range ov.Instances {
			v = append(v, get(s))
		}
		return summarize(v)
	}
	for _, x := range []struct {
		dst *summary
		get func(instSample) float64
	}{
		{&ov.MonitorRSS, func(s instSample) float64 { return float64(s.Monitor.VmRSS) }},
		{&ov.MonitorPss, func(s instSample) float64 { return float64(s.Monitor.Pss) }},
		{&ov.MonitorCPU, func(s instSample) float64 { return s.MonitorCPU }},
		{&ov.QEMURSS, func(s instSample) float64 { return float64(s.QEMU.VmRSS) }},
		{&ov.QEMUPss, func(s instSample) float64 { return float64(s.QEMU.Pss) }},
		{&ov.GuestRAMRSS, func(s instSample) float64 { return float64(s.Split.GuestRAM) }},
		{&ov.TCGRSS, func(s instSample) float64 { return float64(s.Split.TCG) }},
		{&ov.OtherRSS, func(s instSample) float64 { return float64(s.Split.Other) }},
		{&ov.QEMUCPU, func(s instSample) float64 { return s.QEMUCPU }},
	} {
		if *x.dst, err = series(x.get); err != nil {
			return err
		}
	}
	return nil
}

// sampleMem reads an instance's monitor and QEMU memory.
func sampleMem(f *fleet, in *inst) (instSample, error) {
	s := instSample{Name: in.name, MonitorPID: in.monitorPID, QEMUPID: in.qemuPID}
	if err := f.checkRunning(in); err != nil {
		return s, err
	}
	var err error
	if s.Monitor, err = readProcMem(in.monitorPID); err != nil {
		return s, fmt.Errorf("monitor of %s: %w", in.name, err)
	}
	if s.QEMU, err = readProcMem(in.qemuPID); err != nil {
		return s, fmt.Errorf("QEMU of %s: %w", in.name, err)
	}
	if s.Split, err = splitQEMUMem(in.qemuPID, in.memMiB); err != nil {
		return s, fmt.Errorf("QEMU of %s: %w", in.name, err)
	}
	if f.h.accel == "tcg" && !s.Split.TCGFound {
		return s, fmt.Errorf("QEMU of %s: no TCG translation buffer (anonymous rwxp mapping) found under TCG", in.name)
	}
	// The processes must not have been replaced while they were read.
	return s, f.checkRunning(in)
}

// cpuUse is a CPU measurement window.
type cpuUse struct {
	pct         []float64 // per PID, % of one core
	hostBusyPct float64   // whole host, % of all cores
	elapsedMs   float64
}

// cpuWindow measures, over d, the CPU (utime+stime) of each pid in % of one
// core, and the host's busy time in % of all cores. Every pid must be one of
// the benchmark's processes, alive from start to end.
func cpuWindow(ctx context.Context, f *fleet, pids []int, d time.Duration, tck int) (cpuUse, error) {
	read := func() ([]int64, hostCPU, time.Time, error) {
		t := time.Now()
		host, err := readHostCPU()
		if err != nil {
			return nil, host, t, err
		}
		ticks := make([]int64, len(pids))
		for i, pid := range pids {
			if !f.ours(pid) {
				return nil, host, t, fmt.Errorf("pid %d is gone", pid)
			}
			if ticks[i], err = cpuTicks(pid); err != nil {
				return nil, host, t, err
			}
		}
		return ticks, host, t, nil
	}
	t0, h0, start, err := read()
	if err != nil {
		return cpuUse{}, err
	}
	if err := sleepCtx(ctx, d); err != nil {
		return cpuUse{}, err
	}
	t1, h1, end, err := read()
	if err != nil {
		return cpuUse{}, err
	}
	secs := end.Sub(start).Seconds()
	u := cpuUse{elapsedMs: millis(end.Sub(start))}
	for i := range pids {
		u.pct = append(u.pct, round2(float64(t1[i]-t0[i])/float64(tck)/secs*100))
	}
	if dt := h1.total - h0.total; dt > 0 {
		u.hostBusyPct = round2(float64(h1.busy-h0.busy) / float64(dt) * 100)
	} else {
		return u, errors.New("/proc/stat did not advance over the CPU window")
	}
	return u, nil
}

func round2(v float64) float64 { return float64(int64(v*100+0.5)) / 100 }

// probe runs the example once with mem MiB of guest memory and records
// whether it answered; a guest that dies is a finding, not a failure.
func (h *harness) probe(ctx context.Context, f *fleet, mem int) (memProbe, error) {
	p := memProbe{MemMiB: mem}
	in, err := f.start(ctx, fmt.Sprintf("bench-probe-%dm", mem), mem)
	if ctx.Err() != nil {
		return p, ctx.Err()
	}
	if err == nil {
		p.Served, p.ReadyMs = true, millis(in.ready)
		p.Outcome = "served HTTP 200"
	} else {
		p.Outcome = oneLineErr(err)
	}
	progress("-m %dm: %s", mem, p.Outcome)
	if in != nil && in.id != "" {
		if err := f.remove(ctx, in, true); err != nil {
			return p, err
		}
	}
	return p, nil
}

// oneLineErr keeps the first line of err and the instance's state line.
func oneLineErr(err error) string {
	lines := strings.Split(err.Error(), "\n")
	out := lines[0]
	for _, l := range lines[1:] {
		if strings.HasPrefix(l, "state:") {
			out += "; " + l
		}
	}
	return out
}

// capacity starts idle instances one by one until one takes more than
// twice the first's time to its first 200, a start fails, or the count or
// time limit is reached.
func (h *harness) capacity(ctx context.Context, f *fleet, tck int) (capacityRuns, error) {
	opt := h.opts.inst
	c := capacityRuns{MemMiB: opt.smallMiB, Max: opt.capMax, TimeLimitMs: millis(opt.capTime), WindowMs: millis(opt.capWindow)}
	var err error
	if c.MemAvailableStart, err = memAvailable(); err != nil {
		return c, err
	}
	began := time.Now()
	var running []*inst
	var first time.Duration
	for n := 1; ; n++ {
		if n > opt.capMax {
			c.Reason = fmt.Sprintf("reached the limit of %d instances", opt.capMax)
			break
		}
		if time.Since(began) >= opt.capTime {
			c.Reason = fmt.Sprintf("reached the time limit of %v", opt.capTime)
			break
		}
		step := capStep{N: n}
		in, err := f.start(ctx, fmt.Sprintf("bench-cap-%d", n), opt.smallMiB)
		if ctx.Err() != nil {
			return c, ctx.Err()
		}
		step.Load = loadAvg()
		if err != nil {
			if n == 1 {
				return c, fmt.Errorf("the first instance did not start: %w", err)
			}
			step.Failed = oneLineErr(err)
			c.Steps = append(c.Steps, step)
			c.Reason = fmt.Sprintf("instance %d failed to start or answer", n)
			progress("capacity %d: failed: %s", n, step.Failed)
			break
		}
		running = append(running, in)
		step.RunReturn, step.Ready = millis(in.runReturn), millis(in.ready)
		if n == 1 {
			first = in.ready
			c.ThresholdMs = millis(2 * first)
		}
		var pids []int
		for _, r := range running {
			pids = append(pids, r.qemuPID)
		}
		cpu, err := cpuWindow(ctx, f, pids, opt.capWindow, tck)
		if err != nil {
			return c, fmt.Errorf("instance %d: %w", n, err)
		}
		step.HostBusyPct = cpu.hostBusyPct
		for _, p := range cpu.pct {
			step.AllQEMUPct += p
		}
		step.AllQEMUPct = round2(step.AllQEMUPct)
		if step.MemAvailable, err = memAvailable(); err != nil {
			return c, err
		}
		c.Steps = append(c.Steps, step)
		progress("capacity %d: run -d %v, first HTTP 200 after %v (threshold %v), load %s; next %v: host busy %.0f%% of all cores, all QEMUs %.0f%% of one core",
			n, in.runReturn.Round(time.Millisecond), in.ready.Round(time.Millisecond), (2 * first).Round(time.Millisecond),
			step.Load, opt.capWindow, step.HostBusyPct, step.AllQEMUPct)
		if in.ready > 2*first {
			c.Reason = fmt.Sprintf("instance %d took more than twice the first's time to its first HTTP 200", n)
			break
		}
		c.WithinThreshold = n
	}
	c.DurationMs = millis(time.Since(began))
	if len(running) == 0 {
		return c, errors.New("no instance ran")
	}
	// All of them idle together.
	progress("capacity: %d instances running; waiting %v, then CPU over %v", len(running), opt.settle, opt.idleWindow)
	if err := sleepCtx(ctx, opt.settle); err != nil {
		return c, err
	}
	fi := finalIdle{Running: len(running), SettleMs: millis(opt.settle)}
	var qrss, mrss []float64
	var pids []int
	for _, in := range running {
		s, err := sampleMem(f, in)
		if err != nil {
			return c, err
		}
		qrss, mrss = append(qrss, float64(s.QEMU.VmRSS)), append(mrss, float64(s.Monitor.VmRSS))
		pids = append(pids, in.qemuPID)
	}
	cpu, err := cpuWindow(ctx, f, pids, opt.idleWindow, tck)
	if err != nil {
		return c, err
	}
	fi.WindowMs, fi.HostBusyPct, fi.Load = cpu.elapsedMs, cpu.hostBusyPct, loadAvg()
	for _, p := range cpu.pct {
		fi.AllQEMUPct += p
	}
	fi.AllQEMUPct = round2(fi.AllQEMUPct)
	if fi.QEMUCPU, err = summarize(cpu.pct); err != nil {
		return c, err
	}
	if fi.QEMURSS, err = summarize(qrss); err != nil {
		return c, err
	}
	if fi.MonitorRSS, err = summarize(mrss); err != nil {
		return c, err
	}
	c.Final = fi
	return c, nil
}

// clockTicks is the unit of /proc/PID/stat's times.
func clockTicks(ctx context.Context) (int, error) {
	out, err := exec.CommandContext(ctx, "getconf", "CLK_TCK").Output()
	if err != nil {
		return 0, fmt.Errorf("getconf CLK_TCK: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("getconf CLK_TCK printed %q", out)
	}
	return n, nil
}

// otherQEMUs counts qemu-system-x86_64 processes whose command line does
// not name the benchmark's nos home.
func otherQEMUs(home string) (int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		argv, err := procCmdline(pid)
		if err != nil || len(argv) == 0 || filepath.Base(argv[0]) != "qemu-system-x86_64" {
			continue
		}
		if !strings.Contains(strings.Join(argv, " "), home) {
			n++
		}
	}
	return n, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
