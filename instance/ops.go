package instance

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nosproject/nos/internal/lockfile"
	"github.com/nosproject/nos/vmm"
)

func randRead(b []byte) (int, error) { return rand.Read(b) }

// Start launches the instance's monitor, detached from the caller: it runs
// in its own session and survives the nos command and its terminal. monitor
// is the command that runs MonitorMain for this instance (the CLI passes
// `nos` itself). Start returns once the monitor has booted the VM or failed.
func Start(ctx context.Context, in *Instance, monitor *exec.Cmd) error {
	// One start at a time per instance; re-check liveness under the lock.
	unlock, err := lockfile.Lock(ctx, filepath.Join(in.Dir, startLock), false)
	if err != nil {
		return err
	}
	defer unlock()
	if in.MonitorAlive || lockfile.Held(filepath.Join(in.Dir, monitorLock)) {
		return fmt.Errorf("instance %s: already running: %w", displayName(in), ErrRunning)
	}
	if err := UpdateState(ctx, in.Dir, func(s *State) {
		s.StoppedByUser = false
		s.Status = StatusCreated
	}); err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(in.Dir, monitorLog), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	monitor.Stdin = nil
	monitor.Stdout = logf
	monitor.Stderr = logf
	monitor.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := monitor.Start(); err != nil {
		return fmt.Errorf("starting the monitor: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- monitor.Wait() }()

	// Wait until the monitor has left the "created" state.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case err := <-exited:
			var s State
			_ = readJSON(filepath.Join(in.Dir, stateFile), &s)
			if s.Status != StatusCreated {
				return nil // ran and already ended: its state tells how
			}
			return fmt.Errorf("the monitor failed (%v): %s", err, tailFile(filepath.Join(in.Dir, monitorLog)))
		case <-tick.C:
			var s State
			if readJSON(filepath.Join(in.Dir, stateFile), &s) == nil && s.Status != StatusCreated {
				return nil
			}
		case <-timeout:
			return errors.New("the monitor did not start the VM within 60s")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Stop asks the application to stop (SIGTERM through the init), forces the
// VM off after timeout, and waits until the instance has stopped. Restart
// policies leave a stopped instance alone.
func Stop(ctx context.Context, in *Instance, timeout time.Duration) error {
	if !in.MonitorAlive {
		return nil // already stopped: docker's stop is idempotent
	}
	if err := call(ctx, in, request{Op: opStop, Timeout: timeout}); err != nil {
		if errors.Is(err, ErrNotRunning) {
			return nil
		}
		return err
	}
	return waitMonitor(ctx, in.Dir, timeout+30*time.Second)
}

// Kill sends sig to the application; 0 or SIGKILL forces the VM off.
func Kill(ctx context.Context, in *Instance, sig syscall.Signal) error {
	if !in.MonitorAlive {
		return fmt.Errorf("instance %s: %w", displayName(in), ErrNotRunning)
	}
	if err := call(ctx, in, request{Op: opKill, Signal: int(sig)}); err != nil {
		return err
	}
	if sig == 0 || sig == syscall.SIGKILL {
		return waitMonitor(ctx, in.Dir, 30*time.Second)
	}
	return nil
}

// Wait blocks until the instance has stopped for good and returns its
// exit code.
func Wait(ctx context.Context, is *Instances, in *Instance) (*Instance, error) {
	if err := waitMonitor(ctx, in.Dir, 0); err != nil {
		return nil, err
	}
	done, err := is.read(in.Config.ID)
	if err != nil {
		return nil, err
	}
	return done, nil
}

// waitMonitor waits until the instance's monitor has exited; timeout 0
// waits as long as ctx allows.
func waitMonitor(ctx context.Context, dir string, timeout time.Duration) error {
	var deadline <-chan time.Time
	if timeout > 0 {
		deadline = time.After(timeout)
	}
	for lockfile.Held(filepath.Join(dir, monitorLock)) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("instance did not stop within %v", timeout)
		case <-time.After(25 * time.Millisecond):
		}
	}
	return nil
}

// tailFile returns the last line of a small diagnostic file.
func tailFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "no monitor log"
	}
	return vmm.LastLine(string(b), "monitor log empty")
}
