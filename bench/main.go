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
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

type options struct {
	runs   int
	accel  string
	kernel string
	json   bool
}

func main() {
	var o options
	flag.IntVar(&o.runs, "runs", 5, "timed runs of each measurement")
	flag.StringVar(&o.accel, "accel", "auto", "accelerator for nos run: auto, tcg or kvm")
	flag.StringVar(&o.kernel, "kernel", "", "guest kernel (default: nos's kernel cache, then /boot)")
	flag.BoolVar(&o.json, "json", false, "print the report as JSON instead of a table")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bench: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
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
