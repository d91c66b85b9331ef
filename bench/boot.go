package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	pollInterval   = 20 * time.Millisecond
	attemptTimeout = time.Second
	maxInFlight    = 64
	bootTimeout    = 3 * time.Minute
	// stopTimeout is well above nos's own 10 s grace period, after which
	// it forces the VM off (and exits 137, which the benchmark rejects).
	stopTimeout = time.Minute
)

// appStarted is what the example logs, through nos's stderr, once it
// listens: it splits the boot into "the application runs" and "the host
// reaches it".
const appStarted = "listening on"

// bootTimes are the run figures: times in milliseconds, RSS in KiB.
type bootTimes struct {
	Listening summary `json:"exec_to_app_listening_ms"`
	Ready     summary `json:"exec_to_first_http_200_ms"`
	Stop      summary `json:"sigint_to_exit_ms"`
	// QEMURSS is nil when it could not be read; RSSNote then says why.
	QEMURSS *summary `json:"qemu_peak_rss_kib,omitempty"`
	RSSNote string   `json:"qemu_peak_rss_note,omitempty"`
}

// oneRun is one boot's measurements.
type oneRun struct {
	listening   time.Duration
	ready, stop time.Duration
	hwmKiB      int64 // 0: not read
	hwmErr      error
}

// bootTimes boots the example n times.
func (h *harness) bootTimes(ctx context.Context, n int) (bootTimes, error) {
	var listening, ready, stop []time.Duration
	var rss []float64
	var res bootTimes
	for i := range n {
		r, err := h.bootOnce(ctx)
		if err != nil {
			return res, fmt.Errorf("run %d/%d: %w", i+1, n, err)
		}
		listening = append(listening, r.listening)
		ready, stop = append(ready, r.ready), append(stop, r.stop)
		if r.hwmErr != nil && res.RSSNote == "" {
			res.RSSNote = r.hwmErr.Error()
		}
		if r.hwmErr == nil {
			rss = append(rss, float64(r.hwmKiB))
		}
		progress("run %d/%d: app listening after %v, first HTTP 200 after %v, stopped %v after SIGINT", i+1, n,
			r.listening.Round(time.Millisecond), r.ready.Round(time.Millisecond), r.stop.Round(time.Millisecond))
	}
	var err error
	if res.Listening, err = summarizeDurations(listening); err != nil {
		return res, err
	}
	if res.Ready, err = summarizeDurations(ready); err != nil {
		return res, err
	}
	if res.Stop, err = summarizeDurations(stop); err != nil {
		return res, err
	}
	// Peak RSS is optional, but a partial series would mislead: all or none.
	if len(rss) == n {
		s, err := summarize(rss)
		if err != nil {
			return res, err
		}
		res.QEMURSS = &s
	}
	return res, nil
}

// running is a `nos run` in progress.
type running struct {
	cmd      *exec.Cmd
	stdout   bytes.Buffer // read only after done
	stderr   *watchWriter
	done     chan struct{}
	exitedAt time.Time
	waitErr  error
	qemuPID  int
}

// bootOnce starts the example on a free port, waits for its first 200,
// then stops it with SIGINT.
func (h *harness) bootOnce(ctx context.Context) (oneRun, error) {
	return h.bootImage(ctx, appImage)
}

// bootImage is bootOnce for an image of the example, with extra flags for
// nos run.
func (h *harness) bootImage(ctx context.Context, image string, runFlags ...string) (oneRun, error) {
	var res oneRun
	port, err := freePort()
	if err != nil {
		return res, err
	}
	start := time.Now()
	r, err := h.startRun(port, image, runFlags...)
	if err != nil {
		return res, err
	}
	pctx, cancel := context.WithTimeout(ctx, bootTimeout)
	defer cancel()
	up, err := pollHTTP(pctx, fmt.Sprintf("http://127.0.0.1:%d/", port), r.done)
	if err != nil {
		r.abort()
		return res, r.explain(fmt.Errorf("waiting for HTTP 200 on port %d: %w", port, err))
	}
	res.ready = up.Sub(start)
	seen, ok := r.stderr.seen()
	if !ok {
		r.abort()
		return res, r.explain(fmt.Errorf("the application answered but never logged %q", appStarted))
	}
	res.listening = seen.Sub(start)
	res.hwmKiB, res.hwmErr = r.qemuPeakRSS()
	res.stop, err = r.stop()
	return res, err
}

// startRun execs `nos run` of an image of the example, publishing its port
// on port.
func (h *harness) startRun(port int, image string, runFlags ...string) (*running, error) {
	r := &running{done: make(chan struct{}), stderr: &watchWriter{marker: []byte(appStarted)}}
	args := append([]string{"run", "--accel", h.accel, "-p", fmt.Sprintf("%d:%d", port, appPort)}, runFlags...)
	r.cmd = exec.Command(h.nos, append(args, image)...)
	r.cmd.Dir, r.cmd.Env = h.root, h.env
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, r.stderr
	if err := r.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting nos run: %w", err)
	}
	go func() {
		r.waitErr = r.cmd.Wait()
		r.exitedAt = time.Now()
		close(r.done)
	}()
	return r, nil
}

// stop sends SIGINT, as Ctrl-C does, and times nos's exit. nos must exit
// with status 0 (the application's) and QEMU must be gone.
func (r *running) stop() (time.Duration, error) {
	sent := time.Now()
	if err := r.cmd.Process.Signal(os.Interrupt); err != nil {
		return 0, fmt.Errorf("sending SIGINT to nos: %w", err)
	}
	select {
	case <-r.done:
	case <-time.After(stopTimeout):
		r.abort()
		return 0, r.explain(fmt.Errorf("nos did not exit within %v of SIGINT", stopTimeout))
	}
	if r.waitErr != nil {
		return 0, r.explain(fmt.Errorf("nos run after SIGINT: %w (want exit status 0)", r.waitErr))
	}
	if r.qemuPID != 0 && alive(r.qemuPID) {
		_ = syscall.Kill(r.qemuPID, syscall.SIGKILL)
		return 0, fmt.Errorf("QEMU (pid %d) still running after nos exited; killed it", r.qemuPID)
	}
	return r.exitedAt.Sub(sent), nil
}

// abort ends a run that went wrong: SIGINT, a second SIGINT (nos then
// forces the VM off), and SIGKILL to nos and the processes it started as a
// last resort.
func (r *running) abort() {
	for _, wait := range []time.Duration{15 * time.Second, 5 * time.Second} {
		_ = r.cmd.Process.Signal(os.Interrupt)
		select {
		case <-r.done:
			return
		case <-time.After(wait):
		}
	}
	// Everything nos started, QEMU included, is in its process tree.
	procs := descendants(r.cmd.Process.Pid)
	_ = r.cmd.Process.Kill()
	for _, p := range procs {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	<-r.done
}

// explain adds nos's output to err, once nos has exited.
func (r *running) explain(err error) error {
	select {
	case <-r.done:
		status := "exit status 0"
		if r.waitErr != nil {
			status = r.waitErr.Error()
		}
		return fmt.Errorf("%w\nnos run ended: %s\nnos run stdout:\n%s\nnos run stderr:\n%s", err, status, tailLines(r.stdout.String(), 20), tailLines(r.stderr.String(), 20))
	default:
		return err
	}
}

// watchWriter keeps what is written and the time marker first appeared.
type watchWriter struct {
	marker []byte
	mu     sync.Mutex
	buf    bytes.Buffer
	at     time.Time
}

func (w *watchWriter) Write(p []byte) (int, error) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	// The marker may straddle writes: look at the tail of the buffer.
	if w.at.IsZero() {
		tail := w.buf.Bytes()[max(0, w.buf.Len()-len(p)-len(w.marker)):]
		if bytes.Contains(tail, w.marker) {
			w.at = now
		}
	}
	return len(p), nil
}

// seen returns when the marker was first written.
func (w *watchWriter) seen() (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.at, !w.at.IsZero()
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// qemuPeakRSS reads VmHWM, the peak RSS so far, of the QEMU process nos
// started.
func (r *running) qemuPeakRSS() (int64, error) {
	pid, err := findQEMU(r.cmd.Process.Pid)
	if err != nil {
		return 0, err
	}
	r.qemuPID = pid
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("reading QEMU's status: %w", err)
	}
	return parseVmHWM(string(b))
}

// pollHTTP starts a GET every pollInterval, without waiting for earlier
// ones, and returns when the first 200 arrived. It fails when exited is
// closed first or ctx ends.
func pollHTTP(ctx context.Context, url string, exited <-chan struct{}) (time.Time, error) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	client := &http.Client{
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		Timeout:   attemptTimeout,
	}
	ok := make(chan time.Time, 1)
	slots := make(chan struct{}, maxInFlight)
	attempt := func() {
		select {
		case slots <- struct{}{}:
		default:
			return // all slots waiting on a guest that does not answer yet
		}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			if get200(ctx, client, url) {
				select {
				case ok <- time.Now():
				default:
				}
			}
		}()
	}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	attempt()
	for {
		select {
		case t := <-ok:
			return t, nil
		case <-tick.C:
			attempt()
		case <-exited:
			return time.Time{}, errors.New("nos exited before the application answered")
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

// get200 reports whether GET url answered 200; the body is read in full.
func get200(ctx context.Context, client *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return false
	}
	return resp.StatusCode == http.StatusOK
}

// freePort returns a TCP port that is free on all IPv4 addresses, as
// `nos run -p PORT:...` needs.
func freePort() (int, error) {
	l, err := net.Listen("tcp4", ":0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// findQEMU finds the qemu-system-x86_64 process among pid's descendants
// (nos may run QEMU through a monitor process of its own).
func findQEMU(pid int) (int, error) {
	for _, d := range descendants(pid) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", d))
		if err != nil {
			continue
		}
		argv0, _, _ := strings.Cut(string(b), "\x00")
		if argv0 == "qemu-system-x86_64" || strings.HasSuffix(argv0, "/qemu-system-x86_64") {
			return d, nil
		}
	}
	return 0, fmt.Errorf("no qemu-system-x86_64 process under nos (pid %d) found in /proc", pid)
}

// descendants lists pid's children, grandchildren and so on, parents
// first, from /proc/PID/task/*/children.
func descendants(pid int) []int {
	var all []int
	queue := []int{pid}
	for len(queue) > 0 && len(all) < 1000 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children(p) {
			all = append(all, c)
			queue = append(queue, c)
		}
	}
	return all
}

// children lists pid's child processes.
func children(pid int) []int {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var pids []int
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				pids = append(pids, n)
			}
		}
	}
	return pids
}

// parseVmHWM returns the VmHWM line of /proc/PID/status, in KiB.
func parseVmHWM(status string) (int64, error) {
	for _, line := range strings.Split(status, "\n") {
		v, ok := strings.CutPrefix(line, "VmHWM:")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("unexpected VmHWM line %q", line)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("unexpected VmHWM line %q", line)
		}
		return n, nil
	}
	return 0, errors.New("no VmHWM in QEMU's /proc status")
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
