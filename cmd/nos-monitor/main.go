// Command nos-monitor is an instance's monitor, the process that runs its
// VM and supervises it, as a program of its own: nos starts it instead of
// itself (`nos __monitor`) when the two come from one build, because it
// starts several times faster than nos, whose command line links the
// libraries of every subcommand, and takes less memory while it lives.
//
//	nos-monitor --stamp STAMP --nos NOS --home DIR __monitor ID
//
// A monitor from another build than the nos that started it (a stamp that
// differs) hands over to that nos's own monitor, `NOS --home DIR
// __monitor ID`, so the instance always runs under the code that made it.
//
// The monitor starts helpers as copies of its own program, so nos-monitor
// also serves the two verbs it starts them with, as nos does: a private
// network's resolver (`--home DIR __dns NETWORK`) and a read-only share's
// virtiofsd wrapper (`__virtiofs-ro SOURCE VIRTIOFSD ARGS...`).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"syscall"

	"github.com/nosproject/nos/instance"
	"github.com/nosproject/nos/internal/buildstamp"
	"github.com/nosproject/nos/internal/home"
	"github.com/nosproject/nos/vmm/virtiofs"
)

const usage = "nos-monitor: started by nos run and nos start, not by hand: usage: nos-monitor --stamp STAMP --nos NOS --home DIR __monitor ID"

func main() {
	a := os.Args[1:]
	switch {
	case len(a) > 0 && a[0] == virtiofs.HelperVerb:
		err := virtiofs.RunHelper(a[1:]) // becomes a read-only share's daemon
		fmt.Fprintln(os.Stderr, "nos: virtiofs read-only share:", err)
		os.Exit(1)
	case len(a) == 4 && a[0] == "--home" && a[2] == instance.ResolverVerb:
		log := slog.New(slog.NewTextHandler(os.Stderr, nil))
		if err := instance.RunResolver(context.Background(), home.Layout{Root: a[1]}, a[3], log); err != nil {
			fmt.Fprintln(os.Stderr, "nos:", err)
			os.Exit(1)
		}
		return
	case len(a) != 8 || a[0] != "--stamp" || a[2] != "--nos" || a[4] != "--home" || a[6] != instance.MonitorVerb:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	stamp, nos, dir, id := a[1], a[3], a[5], a[7]
	if stamp == "" || stamp != buildstamp.Stamp {
		err := syscall.Exec(nos, []string{nos, "--home", dir, instance.MonitorVerb, id}, os.Environ())
		fmt.Fprintln(os.Stderr, "nos: starting the monitor of another build:", err)
		os.Exit(1)
	}
	// The monitor outlives the command that started it; it ends when its
	// instance does, not on the terminal's signals.
	if err := instance.MonitorMain(context.Background(), home.Layout{Root: dir}, id); err != nil {
		fmt.Fprintln(os.Stderr, "nos:", err)
		os.Exit(1)
	}
}
