package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// writeInstancesTable prints the -instances report for people.
func writeInstancesTable(w io.Writer, rep *instReport) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	m := rep.Machine
	p := func(format string, args ...any) { fmt.Fprintf(tw, format+"\n", args...) }
	sum3 := func(s summary, f func(float64) string) string {
		return fmt.Sprintf("%s\t%s\t%s", f(s.Median), f(s.Min), f(s.Max))
	}
	p("nos benchmark, detached instances: %s, %s", rep.App, rep.Date.Format(time.RFC3339))
	p("")
	p("Machine")
	p("  CPU\t%s, %d cores, %s RAM", m.CPU, m.Cores, gib(m.MemoryBytes))
	p("  Host\t%s, Linux %s, transparent huge pages %q", m.OS, m.HostKernel, rep.THP)
	p("  QEMU\t%s", m.QEMU)
	p("  Accelerator\t%s", accelName(m.Accel))
	p("  Go\t%s", m.Go)
	p("  Guest\tkernel %s, image default %d MiB, %d vCPU, cmdline %q", m.GuestKernel, m.GuestMemMiB, m.GuestCPUs, m.GuestCmd)
	p("  Source\t%s", m.Source)
	p("  Load average\t%s (start), %s (end)", m.LoadStart, m.LoadEnd)
	p("  Other QEMUs\t%d (start), %d (end): qemu-system-x86_64 processes on the host not started by the benchmark", rep.OtherQEMUStart, rep.OtherQEMUEnd)
	p("")
	lc := rep.Lifecycle
	p("One instance at a time, %d MiB (%d runs)\tmedian\tmin\tmax", lc.MemMiB, lc.RunReturn.N)
	p("  nos run -d returns\t%s", sum3(lc.RunReturn, ms))
	p("  nos run -d to first HTTP 200\t%s", sum3(lc.Ready, ms))
	p("  nos stop returns\t%s", sum3(lc.Stop, ms))
	for _, ov := range rep.Overhead {
		p("")
		p("%d idle instances together, %d MiB guest\tmedian\tmin\tmax", len(ov.Instances), ov.MemMiB)
		p("  nos run -d returns\t%s", sum3(ov.RunReturn, ms))
		p("  nos run -d to first HTTP 200\t%s", sum3(ov.Ready, ms))
		p("  monitor VmRSS\t%s", sum3(ov.MonitorRSS, kibMiB1))
		p("  monitor PSS\t%s", sum3(ov.MonitorPss, kibMiB1))
		p("  monitor CPU, %% of one core\t%s", sum3(ov.MonitorCPU, pct))
		p("  QEMU VmRSS\t%s", sum3(ov.QEMURSS, kibMiB1))
		p("  QEMU PSS\t%s", sum3(ov.QEMUPss, kibMiB1))
		p("    guest RAM mapping (%d MiB) resident\t%s", ov.MemMiB, sum3(ov.GuestRAMRSS, kibMiB1))
		p("    TCG translation buffer resident\t%s", sum3(ov.TCGRSS, kibMiB1))
		p("    everything else resident\t%s", sum3(ov.OtherRSS, kibMiB1))
		p("  QEMU CPU, %% of one core\t%s", sum3(ov.QEMUCPU, pct))
		p("  host busy over the window, %% of all cores\t%s\t\t", pct(ov.HostBusyPct))
		p("  nos stop returns (others still running)\t%s", sum3(ov.Stop, ms))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, ov := range rep.Overhead {
		fmt.Fprintf(w, "\n%d MiB: each instance (idle for %s, then CPU over %s; load after: %s)\n", ov.MemMiB, ms(ov.SettleMs), ms(ov.WindowMs), ov.Load)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "  name\tserved for\tmonitor RSS\tmonitor PSS\tmonitor CPU\tQEMU RSS\tanon\tfile\tQEMU PSS\tguest RAM\t(huge pages)\tTCG buffer\tother\tQEMU CPU\t")
		for _, s := range ov.Instances {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", s.Name, ms(s.UpMs),
				kibMiB1(float64(s.Monitor.VmRSS)), kibMiB1(float64(s.Monitor.Pss)), pct(s.MonitorCPU),
				kibMiB1(float64(s.QEMU.VmRSS)), kibMiB1(float64(s.QEMU.RssAnon)), kibMiB1(float64(s.QEMU.RssFile)), kibMiB1(float64(s.QEMU.Pss)),
				kibMiB1(float64(s.Split.GuestRAM)), kibMiB1(float64(s.Split.GuestRAMHugePages)), kibMiB1(float64(s.Split.TCG)), kibMiB1(float64(s.Split.Other)),
				pct(s.QEMUCPU))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(rep.Probes) > 0 {
		fmt.Fprintln(w, "\nSmaller guests, one try each")
		for _, pr := range rep.Probes {
			if pr.Served {
				fmt.Fprintf(w, "  -m %dm: served HTTP 200 after %s\n", pr.MemMiB, ms(pr.ReadyMs))
			} else {
				fmt.Fprintf(w, "  -m %dm: did not serve: %s\n", pr.MemMiB, pr.Outcome)
			}
		}
	}
	c := rep.Capacity
	fmt.Fprintf(w, "\nCapacity: idle instances of %d MiB started one by one (limits: %d instances, %s; CPU over %s after each answered)\n",
		c.MemMiB, c.Max, time.Duration(c.TimeLimitMs*float64(time.Millisecond)).Round(time.Second), ms(c.WindowMs))
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "  n\trun -d returns\tfirst HTTP 200\tload avg 1/5/15 then\thost busy (all cores)\tall our QEMUs (one core)\tMemAvailable\t")
	for _, s := range c.Steps {
		if s.Failed != "" {
			fmt.Fprintf(tw, "  %d\tfailed\t\t%s\t\t\t\t\n", s.N, s.Load)
			continue
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", s.N, ms(s.RunReturn), ms(s.Ready), s.Load, pct(s.HostBusyPct), pct(s.AllQEMUPct), kibGiB(float64(s.MemAvailable)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range c.Steps {
		if s.Failed != "" {
			fmt.Fprintf(w, "  instance %d: %s\n", s.N, s.Failed)
		}
	}
	fmt.Fprintf(w, "  ended: %s, after %s\n", c.Reason, ms(c.DurationMs))
	fmt.Fprintf(w, "  threshold (2x the first instance's %s): %s; instances within it: %d\n", ms(c.ThresholdMs/2), ms(c.ThresholdMs), c.WithinThreshold)
	fmt.Fprintf(w, "  MemAvailable before the first: %s\n", kibGiB(float64(c.MemAvailableStart)))
	fi := c.Final
	fmt.Fprintf(w, "  all %d idle together (after %s, CPU over %s; load after: %s):\n", fi.Running, ms(fi.SettleMs), ms(fi.WindowMs), fi.Load)
	fmt.Fprintf(w, "    QEMU CPU per instance, %% of one core: median %s (%s-%s); all QEMUs together %s of one core; host busy %s of all cores\n",
		pct(fi.QEMUCPU.Median), pct(fi.QEMUCPU.Min), pct(fi.QEMUCPU.Max), pct(fi.AllQEMUPct), pct(fi.HostBusyPct))
	fmt.Fprintf(w, "    QEMU VmRSS per instance: median %s (%s-%s); monitor VmRSS median %s (%s-%s)\n",
		kibMiB1(fi.QEMURSS.Median), kibMiB1(fi.QEMURSS.Min), kibMiB1(fi.QEMURSS.Max),
		kibMiB1(fi.MonitorRSS.Median), kibMiB1(fi.MonitorRSS.Min), kibMiB1(fi.MonitorRSS.Max))

	fmt.Fprintln(w, "\nIndividual runs, in order")
	fmt.Fprintln(w, "  run -d returns:   "+joinValues(lc.RunReturn.Values, ms))
	fmt.Fprintln(w, "  first HTTP 200:   "+joinValues(lc.Ready.Values, ms))
	fmt.Fprintln(w, "  nos stop:         "+joinValues(lc.Stop.Values, ms))
	for _, ov := range rep.Overhead {
		fmt.Fprintf(w, "  %d MiB: run -d %s; first 200 %s; stop %s\n", ov.MemMiB,
			joinValues(ov.RunReturn.Values, ms), joinValues(ov.Ready.Values, ms), joinValues(ov.Stop.Values, ms))
	}
	return nil
}

func kibMiB1(kib float64) string { return fmt.Sprintf("%.1f MiB", kib/1024) }

func kibGiB(kib float64) string { return fmt.Sprintf("%.2f GiB", kib/(1<<20)) }

func pct(v float64) string {
	s := fmt.Sprintf("%.1f%%", v)
	return strings.Replace(s, "-0.0%", "0.0%", 1)
}
