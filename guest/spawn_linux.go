package guest

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// spawner starts every process the init runs for the application (the
// application itself and exec sessions) from one OS thread, whose
// capability bounding set holds only the capabilities the application
// keeps. The bounding set belongs to a thread, and a process inherits the
// one of the thread that forked it; the Go runtime forks on the calling
// goroutine's thread, and makes new threads from a template thread once one
// is locked, so none inherits this one's set.
//
// Dropping the set on every thread of the init instead
// (syscall.AllThreadsSyscall) stops the world once per capability, 41
// times: 15 to 80 ms of each boot under TCG. The init's other threads keep
// their full set; they start no program.
type spawner struct {
	jobs chan func()
}

// newSpawner starts the spawner's thread with keep (capability names) as
// its bounding set.
func newSpawner(keep []string) (*spawner, error) {
	caps, err := parseCaps(keep)
	if err != nil {
		return nil, err
	}
	kept := map[uintptr]bool{}
	for _, c := range caps {
		kept[c] = true
	}
	s := &spawner{jobs: make(chan func())}
	ready := make(chan error, 1)
	go func() {
		// Never unlocked: the thread is the spawner's for good, and a
		// goroutine that ends locked takes its thread with it.
		runtime.LockOSThread()
		for c := uintptr(0); c <= unix.CAP_LAST_CAP; c++ {
			if kept[c] {
				continue
			}
			if err := unix.Prctl(unix.PR_CAPBSET_DROP, c, 0, 0, 0); err != nil && err != unix.EINVAL {
				ready <- fmt.Errorf("dropping capability %d: %w", c, err)
				return
			}
		}
		ready <- nil
		for f := range s.jobs {
			f()
		}
	}()
	if err := <-ready; err != nil {
		return nil, err
	}
	return s, nil
}

// start is os.StartProcess, run on the spawner's thread.
func (s *spawner) start(name string, argv []string, attr *os.ProcAttr) (*os.Process, error) {
	var (
		p    *os.Process
		err  error
		done = make(chan struct{})
	)
	s.jobs <- func() {
		p, err = os.StartProcess(name, argv, attr)
		close(done)
	}
	<-done
	return p, err
}
