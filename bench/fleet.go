package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A fleet is the detached instances (`nos run -d`) the benchmark started.
// It knows every instance ID it was given and every monitor and QEMU PID it
// saw, so that cleanup can remove them all and prove nothing is left.

type fleet struct {
	h *harness

	mu      sync.Mutex
	ids     map[string]bool // started and not yet removed
	cleaned bool
	cleanup error
}

func newFleet(h *harness) *fleet { return &fleet{h: h, ids: map[string]bool{}} }

// inst is one detached instance.
type inst struct {
	id, name   string
	port       int
	memMiB     int // as requested; 0: the image's default
	monitorPID int
	qemuPID    int
	// runReturn is how long `nos run -d` took to return; ready is the time
	// from just before its exec to the first HTTP 200, read in full.
	runReturn, ready time.Duration
	readyAt          time.Time
}

// instInfo is the part of `nos inspect INSTANCE` the benchmark reads.
type instInfo struct {
	ID           string `json:"ID"`
	MonitorAlive bool   `json:"MonitorAlive"`
	Config       struct {
		MemoryMiB int    `json:"memoryMiB"`
		Accel     string `json:"accel"`
	} `json:"Config"`
	State struct {
		Status     string `json:"status"`
		MonitorPID int    `json:"monitorPid"`
		QEMUPID    int    `json:"vmPid"`
		ExitCode   int    `json:"exitCode"`
		Error      string `json:"error"`
	} `json:"State"`
}

func (h *harness) inspectInstance(ctx context.Context, id string) (instInfo, error) {
	out, err := h.runNos(ctx, "inspect", id)
	if err != nil {
		return instInfo{}, err
	}
	return parseInstInfo([]byte(out), id)
}

func parseInstInfo(b []byte, id string) (instInfo, error) {
	var all []instInfo
	if err := json.Unmarshal(b, &all); err != nil {
		return instInfo{}, fmt.Errorf("decoding nos inspect output: %w", err)
	}
	if len(all) != 1 || all[0].ID != id {
		return instInfo{}, fmt.Errorf("nos inspect %s: got %d results, want that one instance", id[:12], len(all))
	}
	return all[0], nil
}

var instanceID = regexp.MustCompile(`^[0-9a-f]{64}$`)

// start runs `nos run -d` of the example with its own published port and
// waits for its first HTTP 200. memMiB 0 keeps the image's memory size.
// It fails if the instance stops first or does not answer within
// bootTimeout; the instance is tracked for cleanup either way.
func (f *fleet) start(ctx context.Context, name string, memMiB int) (*inst, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	in := &inst{name: name, port: port, memMiB: memMiB}
	args := []string{"run", "-d", "--accel", f.h.accel, "--name", name, "-p", fmt.Sprintf("%d:%d", port, appPort)}
	if memMiB > 0 {
		args = append(args, "-m", fmt.Sprintf("%dm", memMiB))
	}
	args = append(args, appImage)
	start := time.Now()
	out, err := f.h.runNos(ctx, args...)
	in.runReturn = time.Since(start)
	if err != nil {
		return nil, err
	}
	in.id = strings.TrimSpace(out)
	if !instanceID.MatchString(in.id) {
		return nil, fmt.Errorf("nos run -d printed %q, want an instance ID", out)
	}
	f.track(in.id)

	up, perr, ierr := f.pollWhileAlive(ctx, in, fmt.Sprintf("http://127.0.0.1:%d/", port), bootTimeout)
	exited := errors.Is(perr, errMonitorExited)
	if ierr != nil {
		return in, fmt.Errorf("instance %s: %w", name, ierr)
	}
	if perr != nil {
		if exited {
			perr = errors.New("the instance's monitor exited before the application answered")
		}
		return in, f.explain(ctx, in, fmt.Errorf("instance %s: waiting for HTTP 200 on port %d: %w", name, port, perr))
	}
	in.ready, in.readyAt = up.Sub(start), up
	return in, nil
}

// identify reads the instance's PIDs from `nos inspect` and checks them
// against /proc: the monitor is `nos-monitor … --home HOME __monitor ID`
// (or `nos --home HOME __monitor ID`), QEMU is
// its child.
func (f *fleet) identify(ctx context.Context, in *inst) error {
	st, err := f.h.inspectInstance(ctx, in.id)
	if err != nil {
		return err
	}
	s := st.State
	if !st.MonitorAlive || s.Status != "running" {
		return fmt.Errorf("not running after nos run -d returned: status %q, monitor alive %v, exit code %d, error %q", s.Status, st.MonitorAlive, s.ExitCode, s.Error)
	}
	if st.Config.Accel != f.h.accel {
		return fmt.Errorf("instance runs with accel %q, want %q", st.Config.Accel, f.h.accel)
	}
	if in.memMiB > 0 && st.Config.MemoryMiB != in.memMiB {
		return fmt.Errorf("instance has %d MiB, want %d", st.Config.MemoryMiB, in.memMiB)
	}
	in.memMiB = st.Config.MemoryMiB
	if s.MonitorPID <= 0 || s.QEMUPID <= 0 {
		return fmt.Errorf("nos inspect gives monitor PID %d, QEMU PID %d", s.MonitorPID, s.QEMUPID)
	}
	argv, err := procCmdline(s.MonitorPID)
	if err != nil {
		return fmt.Errorf("monitor (pid %d): %w", s.MonitorPID, err)
	}
	if !slices.Contains(argv, "__monitor") || !slices.Contains(argv, in.id) || !slices.Contains(argv, f.h.home) {
		return fmt.Errorf("pid %d is not this instance's monitor: %q", s.MonitorPID, argv)
	}
	argv, err = procCmdline(s.QEMUPID)
	if err != nil {
		return fmt.Errorf("QEMU (pid %d): %w", s.QEMUPID, err)
	}
	if filepath.Base(argv[0]) != "qemu-system-x86_64" {
		return fmt.Errorf("pid %d is not QEMU: %q", s.QEMUPID, argv[0])
	}
	if pp, err := procPPid(s.QEMUPID); err != nil || pp != s.MonitorPID {
		return fmt.Errorf("QEMU (pid %d) has parent %d, want the monitor %d (%v)", s.QEMUPID, pp, s.MonitorPID, err)
	}
	in.monitorPID, in.qemuPID = s.MonitorPID, s.QEMUPID
	return nil
}

// ours reports whether pid is alive, not a zombie, and a process of this
// benchmark: its command line names the benchmark's private nos home (the
// monitor gets --home, QEMU the kernel path under it).
func (f *fleet) ours(pid int) bool {
	if pid <= 0 || !alive(pid) {
		return false
	}
	argv, err := procCmdline(pid)
	if err != nil {
		return false
	}
	return strings.Contains(strings.Join(argv, " "), f.h.home)
}

// checkRunning fails unless the instance's monitor and QEMU still run.
func (f *fleet) checkRunning(in *inst) error {
	if !f.ours(in.monitorPID) || !f.ours(in.qemuPID) {
		return fmt.Errorf("instance %s is no longer running (monitor %d, QEMU %d)", in.name, in.monitorPID, in.qemuPID)
	}
	return nil
}

// stop times `nos stop ID` and checks that the application exited with 0
// and that the monitor and QEMU are gone.
func (f *fleet) stop(ctx context.Context, in *inst) (time.Duration, error) {
	start := time.Now()
	_, err := f.h.runNos(ctx, "stop", in.id)
	took := time.Since(start)
	if err != nil {
		return 0, err
	}
	st, err := f.h.inspectInstance(ctx, in.id)
	if err != nil {
		return 0, err
	}
	if st.MonitorAlive || st.State.Status != "exited" || st.State.ExitCode != 0 {
		return 0, fmt.Errorf("instance %s after nos stop: status %q, exit code %d, monitor alive %v, error %q (want exited, 0)",
			in.name, st.State.Status, st.State.ExitCode, st.MonitorAlive, st.State.Error)
	}
	if f.ours(in.qemuPID) || f.ours(in.monitorPID) {
		return 0, fmt.Errorf("instance %s: QEMU (pid %d) or monitor (pid %d) still running after nos stop returned", in.name, in.qemuPID, in.monitorPID)
	}
	return took, nil
}

// remove runs `nos rm ID` (-f when force) and stops tracking it.
func (f *fleet) remove(ctx context.Context, in *inst, force bool) error {
	args := []string{"rm", in.id}
	if force {
		args = []string{"rm", "-f", in.id}
	}
	if _, err := f.h.runNos(ctx, args...); err != nil {
		return err
	}
	f.mu.Lock()
	delete(f.ids, in.id)
	f.mu.Unlock()
	return nil
}

func (f *fleet) track(id string) {
	f.mu.Lock()
	f.ids[id] = true
	f.mu.Unlock()
}

// explain adds the instance's state and the end of its logs to err.
func (f *fleet) explain(ctx context.Context, in *inst, err error) error {
	if ctx.Err() != nil {
		return err
	}
	var b strings.Builder
	if st, ierr := f.h.inspectInstance(ctx, in.id); ierr == nil {
		fmt.Fprintf(&b, "\nstate: %s, exit code %d, monitor alive %v, error %q", st.State.Status, st.State.ExitCode, st.MonitorAlive, st.State.Error)
	}
	if out, lerr := f.h.runNos(ctx, "logs", "--console", in.id); lerr == nil {
		fmt.Fprintf(&b, "\nconsole (last lines):\n%s", tailLines(out, 10))
	}
	if out, lerr := f.h.runNos(ctx, "logs", in.id); lerr == nil {
		fmt.Fprintf(&b, "\napplication output (last lines):\n%s", tailLines(out, 5))
	}
	return fmt.Errorf("%w%s", err, b.String())
}

// Cleanup removes (rm -f) every instance in the benchmark's nos home,
// whether or not the benchmark got its ID, then checks with pgrep that no
// process of the benchmark is left. Survivors are killed by PID and make it
// fail. It runs once; later calls return the first result.
func (f *fleet) Cleanup() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cleaned {
		return f.cleanup
	}
	f.cleaned = true
	f.cleanup = f.doCleanup()
	return f.cleanup
}

func (f *fleet) doCleanup() error {
	// Not the benchmark's context: it may have been cancelled by a signal,
	// and the instances must go anyway.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var errs []error
	// The private nos home holds only the benchmark's instances: all of
	// them go, also those whose ID the benchmark never got. Only when the
	// list fails are the tracked IDs used instead.
	ids := make(map[string]bool)
	if out, err := f.h.runNos(ctx, "ps", "-a", "-q"); err == nil {
		for _, id := range strings.Fields(out) {
			ids[id] = true
		}
	} else {
		errs = append(errs, fmt.Errorf("listing instances: %w", err))
		for id := range f.ids {
			ids[id] = true
		}
	}
	if len(ids) > 0 {
		list := make([]string, 0, len(ids))
		for id := range ids {
			list = append(list, id)
		}
		slices.Sort(list)
		progress("cleanup: nos rm -f of %d instance(s)", len(list))
		if _, err := f.h.runNos(ctx, append([]string{"rm", "-f"}, list...)...); err != nil {
			errs = append(errs, fmt.Errorf("removing instances: %w", err))
		}
	}
	f.ids = map[string]bool{}
	// The monitors exit once QEMU is gone; give them a moment.
	var left []int
	deadline := time.Now().Add(15 * time.Second)
	for {
		var err error
		left, err = f.pgrep(ctx)
		if err != nil {
			errs = append(errs, err)
			break
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(left) > 0 {
		var desc []string
		for _, pid := range left {
			argv, _ := procCmdline(pid)
			desc = append(desc, fmt.Sprintf("%d %s", pid, strings.Join(argv, " ")))
			if f.ours(pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		errs = append(errs, fmt.Errorf("processes of the benchmark still running after nos rm -f, killed:\n%s", strings.Join(desc, "\n")))
	} else if len(errs) == 0 {
		progress("cleanup: no instances and no processes of the benchmark left (pgrep -f %s)", f.h.home)
	}
	return errors.Join(errs...)
}

// pgrep lists the processes whose command line names the benchmark's nos
// home: monitors and QEMUs.
func (f *fleet) pgrep(ctx context.Context) ([]int, error) {
	out, err := exec.CommandContext(ctx, "pgrep", "-f", "--", regexp.QuoteMeta(f.h.home)).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 {
		return nil, nil // none
	}
	if err != nil {
		return nil, fmt.Errorf("pgrep: %w", err)
	}
	var pids []int
	for _, s := range strings.Fields(string(out)) {
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("pgrep printed %q", s)
		}
		pids = append(pids, n)
	}
	return pids, nil
}

// errMonitorExited ends a poll whose instance's monitor is gone.
var errMonitorExited = errors.New("the instance's monitor exited")

// pollWhileAlive polls url for its first HTTP 200 (see pollHTTP) while it
// finds the instance's monitor and QEMU, and ends the poll early when the
// monitor exits (the VM is gone). ierr is identify's error.
func (f *fleet) pollWhileAlive(ctx context.Context, in *inst, url string, timeout time.Duration) (up time.Time, perr, ierr error) {
	exited := make(chan struct{})
	checked := make(chan error, 1)
	stopWatch := make(chan struct{})
	go func() {
		err := f.identify(ctx, in)
		checked <- err
		if err != nil {
			close(exited)
			return
		}
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if !f.ours(in.monitorPID) {
				close(exited)
				return
			}
		}
	}()
	pctx, cancel := context.WithTimeout(ctx, timeout)
	up, perr = pollHTTP(pctx, url, exited)
	cancel()
	close(stopWatch)
	ierr = <-checked
	if perr != nil {
		select {
		case <-exited:
			perr = fmt.Errorf("%w: %w", errMonitorExited, perr)
		default:
		}
	}
	return up, perr, ierr
}
