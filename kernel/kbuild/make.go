package kbuild

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// tailLines is how much of make's output a failure shows.
const tailLines = 30

// MakeError is a failed make run: the first error the compiler reported
// and the tail of the output.
type MakeError struct {
	Target string
	Err    error
	// FirstError is the first output line that reports an error, if any.
	FirstError string
	// Tail holds the last lines of make's output.
	Tail []string
}

func (e *MakeError) Error() string {
	msg := fmt.Sprintf("make %s: %v", e.Target, e.Err)
	if e.FirstError != "" {
		msg += ": " + e.FirstError
	} else if len(e.Tail) > 0 {
		msg += ": " + e.Tail[len(e.Tail)-1]
	}
	return msg
}

func (e *MakeError) Unwrap() error { return e.Err }

// maker runs kbuild targets for one source tree and output directory.
type maker struct {
	src, out string
	jobs     int
	env      []string // KBUILD_* settings, added to the environment
	progress io.Writer
	// every is how many build steps pass between progress lines, and
	// heartbeat the longest silence when steps are slow (linking).
	every     int
	heartbeat time.Duration
}

// run runs make with targets. With counting set, it reports build steps
// (kbuild's "  CC      path" lines) on m.progress as it goes; failures
// show the tail of the output there too.
func (m *maker) run(ctx context.Context, counting bool, targets ...string) error {
	args := []string{"-C", m.src, "O=" + m.out, "ARCH=x86_64", "-j" + strconv.Itoa(max(m.jobs, 1))}
	args = append(args, targets...)
	cmd := exec.CommandContext(ctx, "make", args...)
	cmd.Env = append(append(cmd.Environ(), "LC_ALL=C"), m.env...)
	// make's compilers must die with it: kill the whole process group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	out := &outputWatcher{tail: make([]string, 0, tailLines)}
	if counting {
		out.report = m.report
	}
	cmd.Stdout, cmd.Stderr = out, out

	start := time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	if counting && m.heartbeat > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(m.heartbeat)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					out.beat(m.heartbeat, func(steps int, last string) {
						fmt.Fprintf(m.progress, "kernel build: %d steps, %s, still at %s\n", steps, round(time.Since(start)), last)
					})
				}
			}
		}()
	}
	err := cmd.Run()
	close(stop)
	wg.Wait()
	out.flush()
	if counting && err == nil {
		fmt.Fprintf(m.progress, "kernel build: %d steps done in %s\n", out.steps, round(time.Since(start)))
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		tail := out.lastLines()
		if len(tail) > 0 {
			fmt.Fprintf(m.progress, "kernel build: make %s failed; the last %d lines of its output:\n", strings.Join(targets, " "), len(tail))
			for _, l := range tail {
				fmt.Fprintln(m.progress, "  | "+l)
			}
		}
		return &MakeError{Target: strings.Join(targets, " "), Err: err, FirstError: out.firstError, Tail: tail}
	}
	return nil
}

// report prints a progress line every m.every steps.
func (m *maker) report(steps int, line string, elapsed time.Duration) {
	if m.every > 0 && steps%m.every == 0 {
		fmt.Fprintf(m.progress, "kernel build: %d steps, %s, at %s\n", steps, round(elapsed), line)
	}
}

func round(d time.Duration) time.Duration { return d.Round(time.Second) }

// stepRE matches kbuild's quiet-mode lines: two spaces, a tag such as CC,
// AS, LD or HOSTCC, and what it works on.
var stepRE = regexp.MustCompile(`^  ([A-Z][A-Z0-9_]*) +(\S.*)$`)

// errorRE matches compiler and make error lines.
var errorRE = regexp.MustCompile(`(?i)(\berror:|\*\*\* |fatal error|undefined reference)`)

// outputWatcher receives make's combined output, counts build steps and
// keeps the first error and the last lines.
type outputWatcher struct {
	mu         sync.Mutex
	partial    []byte
	steps      int
	lastStep   string
	lastReport time.Time
	start      time.Time
	firstError string
	tail       []string // ring of the last tailLines lines
	next       int
	report     func(steps int, line string, elapsed time.Duration)
}

func (w *outputWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.start.IsZero() {
		w.start = time.Now()
		w.lastReport = w.start
	}
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		w.line(string(w.partial[:i]))
		w.partial = w.partial[i+1:]
	}
	return len(p), nil
}

// flush processes a last line without a newline.
func (w *outputWatcher) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) > 0 {
		w.line(string(w.partial))
		w.partial = nil
	}
}

func (w *outputWatcher) line(l string) {
	l = strings.TrimRight(l, "\r")
	if len(w.tail) < cap(w.tail) {
		w.tail = append(w.tail, l)
	} else {
		w.tail[w.next] = l
		w.next = (w.next + 1) % len(w.tail)
	}
	if w.firstError == "" && errorRE.MatchString(l) {
		w.firstError = strings.TrimSpace(l)
	}
	if m := stepRE.FindStringSubmatch(l); m != nil {
		w.steps++
		w.lastStep = m[1] + " " + m[2]
		if w.report != nil {
			w.lastReport = time.Now()
			w.report(w.steps, w.lastStep, time.Since(w.start))
		}
	}
}

// beat calls say when no step was reported for at least quiet.
func (w *outputWatcher) beat(quiet time.Duration, say func(steps int, last string)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lastStep == "" || time.Since(w.lastReport) < quiet {
		return
	}
	w.lastReport = time.Now()
	say(w.steps, w.lastStep)
}

// lastLines returns the kept lines, oldest first.
func (w *outputWatcher) lastLines() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append(append([]string(nil), w.tail[w.next:]...), w.tail[:w.next]...)
}
