package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/nosproject/nos/kernel/config"
)

// A bootVariant is one way of building and running the example whose boot
// time -boot-options compares with the others.
type bootVariant struct {
	Name  string   `json:"name"`
	Build []string `json:"nos_build_flags"`
	Run   []string `json:"nos_run_flags,omitempty"`
	image string
}

type bootOptionsReport struct {
	Date     time.Time        `json:"date"`
	Runs     int              `json:"runs"`
	Machine  machine          `json:"machine"`
	Kernel   string           `json:"kernel"`
	Variants []variantFigures `json:"variants"`
}

type variantFigures struct {
	bootVariant
	ImageBytes int64   `json:"image_bytes"`
	Listening  summary `json:"exec_to_app_listening_ms"`
	Ready      summary `json:"exec_to_first_http_200_ms"`
}

// bootVariants are the choices of issue 4's fast boot path, each against
// the one before: the kernel's boot messages on the serial console
// (loglevel=7, after the images' default quiet) or not, the compressed
// bzImage or the ELF vmlinux through its PVH entry (no decompression, no
// real-mode setup), and one vCPU or two.
func bootVariants(bz, vmlinux string) []bootVariant {
	vs := []bootVariant{
		{Name: "bzImage, boot messages", Build: []string{"--kernel", bz, "--kernel-arg", "loglevel=7"}},
		{Name: "bzImage, quiet", Build: []string{"--kernel", bz}},
		{Name: "bzImage, quiet, 2 vCPUs", Build: []string{"--kernel", bz}, Run: []string{"--cpus", "2"}},
	}
	if vmlinux != "" {
		vs = append(vs,
			bootVariant{Name: "PVH vmlinux, boot messages", Build: []string{"--kernel", vmlinux, "--kernel-arg", "loglevel=7"}},
			bootVariant{Name: "PVH vmlinux, quiet (nos's default)", Build: []string{"--kernel", vmlinux}})
	}
	for i := range vs {
		vs[i].image = fmt.Sprintf("variant%d", i)
	}
	return vs
}

// runBootOptions builds the example once per variant (untimed) and boots
// the variants in turn, round after round, so that changes in the
// machine's load hit them all alike.
func runBootOptions(ctx context.Context, o options) error {
	h, err := newHarness(ctx, o)
	if err != nil {
		return err
	}
	defer h.close()
	e, err := builtKernel(config.DefaultFeatures)
	if err != nil {
		return fmt.Errorf("-boot-options compares boots of nos's own kernel: %w (run `make kernel`)", err)
	}
	rep := &bootOptionsReport{Date: time.Now().UTC(), Runs: o.runs, Kernel: e.Version + " " + e.ShortID()}
	if rep.Machine, err = h.hostInfo(ctx); err != nil {
		return err
	}
	vs := bootVariants(e.Path(), e.VmlinuxPath())
	for _, v := range vs {
		args := append(append([]string{"build", "-t", v.image}, v.Build...), appPkg)
		if _, err := h.runNos(ctx, args...); err != nil {
			return fmt.Errorf("variant %q: %w", v.Name, err)
		}
	}
	listening := make([][]time.Duration, len(vs))
	ready := make([][]time.Duration, len(vs))
	for round := range o.runs {
		for i, v := range vs {
			r, err := h.bootImage(ctx, v.image, v.Run...)
			if err != nil {
				return fmt.Errorf("variant %q, run %d: %w", v.Name, round+1, err)
			}
			listening[i] = append(listening[i], r.listening)
			ready[i] = append(ready[i], r.ready)
			progress("round %d/%d, %s: first HTTP 200 after %v", round+1, o.runs, v.Name, r.ready.Round(time.Millisecond))
		}
	}
	for i, v := range vs {
		im, err := h.inspect(ctx, v.image)
		if err != nil {
			return err
		}
		f := variantFigures{bootVariant: v, ImageBytes: im.Size}
		if f.Listening, err = summarizeDurations(listening[i]); err != nil {
			return err
		}
		if f.Ready, err = summarizeDurations(ready[i]); err != nil {
			return err
		}
		rep.Variants = append(rep.Variants, f)
	}
	rep.Machine.LoadEnd = loadAvg()
	if o.json {
		return writeJSON(os.Stdout, rep)
	}
	return writeBootOptions(os.Stdout, rep)
}

func writeBootOptions(w io.Writer, rep *bootOptionsReport) error {
	b, _ := json.Marshal(rep.Machine)
	fmt.Fprintf(w, "machine: %s\nkernel: %s; %d rounds, variants alternating; medians [min–max]\n\n", b, rep.Kernel, rep.Runs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "variant\timage\texec → app listening\texec → first HTTP 200")
	for _, v := range rep.Variants {
		fmt.Fprintf(tw, "%s\t%s\t%s [%s–%s]\t%s [%s–%s]\n", v.Name, mib(v.ImageBytes),
			ms(v.Listening.Median), ms(v.Listening.Min), ms(v.Listening.Max),
			ms(v.Ready.Median), ms(v.Ready.Min), ms(v.Ready.Max))
	}
	return tw.Flush()
}
