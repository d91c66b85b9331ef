// Command bench measures what a nos user sees for the example HTTP server
// (./examples/httpserver): how big its image is, how long `nos build` takes
// compared with a plain `go build`, and how long `nos run` takes from exec
// to the first HTTP 200 and from Ctrl-C to exit.
//
// Usage, from the repository root (make bench runs it with -runs 7):
//
//	go run ./bench [-runs N] [-accel auto|tcg|kvm] [-kernel PATH] [-json]
//
// Method:
//
//   - nos and nos-init are built from the working tree into a temporary
//     directory, side by side as installed, with the flags of `make build`:
//     go build -trimpath, CGO_ENABLED=0, linux/amd64, and nos-init
//     stripped (-ldflags '-s -w -buildid='). Every nos command runs with
//     NOS_HOME set to a fresh temporary directory and gets the kernel
//     explicitly (--kernel: -kernel, else nos's kernel cache, else the
//     host's /boot, as the e2e tests find it). The user's nos data is
//     neither read nor changed. -accel auto is resolved once, as nos
//     resolves it, and the result is passed to every run.
//   - Image size: the kernel and initramfs layer sizes and the total
//     (manifest + config + layers) as `nos inspect` reports them; for
//     context, the size of the application alone, built by a plain
//     `go build -trimpath` and stripped as nos builds it.
//   - Build time: one untimed warm-up of each command fills the Go build
//     cache, then N timed runs of `go build -trimpath -o NEWFILE
//     ./examples/httpserver` (CGO_ENABLED=0; a new output file each time,
//     since go build skips the link when -o is up to date and nos always
//     links into a fresh directory) and of `nos build --kernel K -t
//     httpserver ./examples/httpserver`, alternating, so that changes in
//     machine load hit both alike. Each rebuild stores the same blobs
//     again, as a user's rebuild does.
//   - Run: N runs of `nos run --accel A -p PORT:8080 httpserver`, each on a
//     fresh free port. The clock starts just before exec. The time the
//     application's "listening on" log line reaches nos's stderr is noted;
//     a new GET / starts every 20 ms (1 s timeout each, several may be in
//     flight, since QEMU accepts connections on the published port before
//     the guest can answer them) and the clock stops when the first 200
//     has been read. The peak RSS (VmHWM) of nos's qemu-system-x86_64 child
//     is read then. nos then gets SIGINT, as from Ctrl-C, and the time
//     until it exits is the graceful stop time; it must exit with status 0.
//   - Figures are medians with min and max over the N runs. Any failure
//     ends the program with a non-zero status and no figures; the one
//     optional figure, QEMU's peak RSS, is shown as not measured, with the
//     reason, when /proc does not give it.
//
// With -instances it measures detached instances instead (same binaries,
// private NOS_HOME, kernel and accelerator; the image is built once,
// untimed):
//
//	go run ./bench -instances [-runs N] [-idle-instances M] [-small-memory MiB]
//	    [-probe-memory 64,96] [-settle 15s] [-idle-window 10s]
//	    [-capacity-max 24] [-capacity-time 15m] [-capacity-window 5s] [-json]
//
// It measures, in this order:
//
//   - One at a time, N times: `nos run -d --accel A --name NAME -p PORT:8080
//     httpserver`, timed until it returns (it returns once QEMU runs) and
//     until the first HTTP 200 (polled as above, from just before exec);
//     then `nos stop ID`, timed until it returns, must leave the instance
//     exited with status 0 and its monitor and QEMU gone; then `nos rm`.
//   - Overhead, at the image's memory size and again at -small-memory: M
//     instances started one after another, each answering before the next
//     starts. `nos inspect` gives each monitor and QEMU PID, checked in
//     /proc (the monitor is `nos-monitor … --home HOME __monitor ID`, QEMU its
//     child). After -settle: VmRSS, RssAnon and RssFile (/proc/PID/status)
//     and PSS (smaps_rollup) of each monitor and QEMU, and QEMU's resident
//     memory split from one read of /proc/PID/smaps into the guest RAM
//     mapping (the one anonymous rw-p mapping of exactly the guest memory
//     size), the TCG translation buffer (the one anonymous rwxp mapping)
//     and the rest. Then the CPU (utime+stime of /proc/PID/stat, in % of
//     one core) of every monitor and QEMU over -idle-window, all in the
//     same window, and the host's busy time (/proc/stat). Then each is
//     stopped, timed, with the others still running.
//   - Probes: one run -d at each -probe-memory size, recording whether the
//     example answered or how the instance ended.
//   - Capacity: instances of -small-memory started one by one, each timed
//     from run -d to its first 200, with the load average then and the CPU
//     of all the benchmark's QEMUs and of the host over -capacity-window
//     after it answered. It ends when an instance takes more than twice the
//     first's time, a start fails (run -d fails, the instance stops, or no
//     200 within 3 minutes), or -capacity-max or -capacity-time is reached;
//     then, after -settle, memory and CPU of all of them idle together.
//   - Whatever happens (failure, SIGINT, SIGTERM, SIGHUP), every instance in
//     the private home is removed with `nos rm -f`, and `pgrep -f HOME`
//     must then find no process (monitor or QEMU) of the benchmark; any it
//     finds is killed by PID and fails the run. Figures are printed only
//     after that check passed.
//
// With -compare it boots the example as a nos image with nos's kernel and
// with the distribution kernel, as a conventional Debian VM (debootstrap,
// systemd) and as a do-nothing floor, and compares boot time, size and
// minimum memory (method in compare.go; make bench-compare):
//
//	go run ./bench -compare [-runs N] [-mem-low 8] [-mem-high 512] [-mem-boots 3] [-skip-memory] [-json]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	runs      int
	accel     string
	kernel    string
	json      bool
	instances bool
	inst      instOptions
	bootOpts  bool
	software  bool
	network   bool
	compare   bool
	cmp       compareOptions
}

func main() {
	var o options
	flag.IntVar(&o.runs, "runs", 5, "timed runs of each measurement")
	flag.StringVar(&o.accel, "accel", "auto", "accelerator for nos run: auto, tcg or kvm")
	flag.StringVar(&o.kernel, "kernel", "", "guest kernel (default: nos's kernel cache, then /boot)")
	flag.BoolVar(&o.json, "json", false, "print the report as JSON instead of a table")
	flag.BoolVar(&o.software, "software", false, "measure nginx and redis from the host's Debian packages as nos images, next to the same programs run natively")
	flag.BoolVar(&o.network, "network", false, "compare the user-mode network's proxies (QEMU's slirp, passt) for nginx and redis as nos images, loaded from the host through -p, rounds interleaved")
	flag.BoolVar(&o.bootOpts, "boot-options", false, "compare boot times of the fast-boot choices (quiet, PVH vmlinux, vCPUs) on nos's own kernel")
	flag.BoolVar(&o.instances, "instances", false, "measure detached instances (nos run -d) instead: overhead, run -d/stop times, capacity")
	flag.IntVar(&o.inst.overheadN, "idle-instances", 3, "with -instances: idle instances measured together for the overhead")
	flag.IntVar(&o.inst.smallMiB, "small-memory", 128, "with -instances: guest memory in MiB of the second overhead run and of the capacity run")
	probe := flag.String("probe-memory", "64,96", "with -instances: guest memory sizes in MiB tried once each, to record whether the example runs (empty: none)")
	flag.DurationVar(&o.inst.settle, "settle", 15*time.Second, "with -instances: wait after the last instance answered before idle figures")
	flag.DurationVar(&o.inst.idleWindow, "idle-window", 10*time.Second, "with -instances: CPU measurement window of idle instances")
	flag.IntVar(&o.inst.capMax, "capacity-max", 24, "with -instances: most instances of the capacity run")
	flag.DurationVar(&o.inst.capTime, "capacity-time", 15*time.Minute, "with -instances: time limit of the capacity run, checked before each start")
	flag.DurationVar(&o.inst.capWindow, "capacity-window", 5*time.Second, "with -instances: CPU window after each capacity instance answered")
	flag.BoolVar(&o.compare, "compare", false, "compare the example as a nos image (nos's kernel, the distribution kernel) with a conventional Debian VM and with a do-nothing floor: boot time, size, minimum memory (see compare.go)")
	flag.IntVar(&o.cmp.memLo, "mem-low", 8, "with -compare: low end of the minimum-memory search in MiB, assumed too little")
	flag.IntVar(&o.cmp.memHi, "mem-high", 512, "with -compare: high end of the minimum-memory search in MiB, must work")
	flag.IntVar(&o.cmp.memBoots, "mem-boots", 3, "with -compare: boots that must all serve for a memory size to count as working")
	flag.BoolVar(&o.cmp.skipMemory, "skip-memory", false, "with -compare: skip the minimum-memory search")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bench: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	var err error
	if o.inst.probeMiB, err = parseSizes(*probe); err != nil {
		fmt.Fprintln(os.Stderr, "bench: -probe-memory:", err)
		os.Exit(2)
	}
	// The signals cancel ctx; in -instances mode the instances are then
	// removed before the program exits.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if o.compare {
		err = runCompare(ctx, o)
	} else if o.network {
		err = runNetwork(ctx, o)
	} else if o.software {
		err = runSoftware(ctx, o)
	} else if o.bootOpts {
		err = runBootOptions(ctx, o)
	} else if o.instances {
		err = checkInstOptions(o)
		if err == nil {
			err = runInstances(ctx, o)
		}
	} else {
		err = run(ctx, o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	if o.runs < 1 {
		return fmt.Errorf("-runs %d: want at least 1", o.runs)
	}
	switch o.accel {
	case "auto", "tcg", "kvm":
	default:
		return fmt.Errorf("-accel %q: want auto, tcg or kvm", o.accel)
	}
	h, err := newHarness(ctx, o)
	if err != nil {
		return err
	}
	defer h.close()
	rep, err := h.measure(ctx)
	if err != nil {
		return err
	}
	if o.json {
		return writeJSON(os.Stdout, rep)
	}
	return writeTable(os.Stdout, rep)
}

func checkInstOptions(o options) error {
	i := o.inst
	switch {
	case o.runs < 1:
		return fmt.Errorf("-runs %d: want at least 1", o.runs)
	case o.accel != "auto" && o.accel != "tcg" && o.accel != "kvm":
		return fmt.Errorf("-accel %q: want auto, tcg or kvm", o.accel)
	case i.overheadN < 1:
		return errors.New("-idle-instances: want at least 1")
	case i.smallMiB < 16:
		return errors.New("-small-memory: want at least 16 (MiB)")
	case i.settle < 0 || i.idleWindow < time.Second || i.capWindow < time.Second:
		return errors.New("-settle must not be negative, -idle-window and -capacity-window at least 1s")
	case i.capMax < 1 || i.capTime <= 0:
		return errors.New("-capacity-max and -capacity-time: want positive values")
	}
	return nil
}

// parseSizes parses a comma-separated list of MiB counts.
func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q: want MiB counts such as 64,96", s)
		}
		out = append(out, n)
	}
	return out, nil
}
