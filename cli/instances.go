package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/nosproject/nos/guestapi"
	"github.com/nosproject/nos/instance"
)

// monitorVerb is the hidden verb the per-instance monitor process runs.
const monitorVerb = instance.MonitorVerb

func (e *env) instances() (*instance.Instances, error) {
	h, err := e.layout()
	if err != nil {
		return nil, err
	}
	return instance.Open(h)
}

// eachInstance runs fn on every named instance, reporting each failure on
// its own line and failing the command if any failed, as docker does.
func eachInstance(e *env, refs []string, fn func(is *instance.Instances, in *instance.Instance) error) error {
	return eachRef(e, refs, func(is *instance.Instances, ref string) error {
		in, err := is.Get(ref)
		if err != nil {
			return err
		}
		return fn(is, in)
	})
}

// eachRef runs fn on every reference, as eachInstance does, for verbs that
// resolve the reference themselves (under a lock).
func eachRef(e *env, refs []string, fn func(is *instance.Instances, ref string) error) error {
	is, err := e.instances()
	if err != nil {
		return err
	}
	failed := 0
	for _, ref := range refs {
		if err := fn(is, ref); err != nil {
			failed++
			fmt.Fprintln(e.stderr, "nos: "+oneLine(err.Error()))
		}
	}
	if failed > 0 {
		return &exitError{code: 1}
	}
	return nil
}

func newMonitorCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:    monitorVerb + " ID",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := e.layout()
			if err != nil {
				return err
			}
			// The monitor outlives the command that started it; it ends
			// when its instance does, not on the terminal's signals.
			return instance.MonitorMain(context.Background(), h, args[0])
		},
	}
}

// psRow is one line of `nos ps`, also the data --format templates see.
type psRow struct {
	ID           string `json:"ID"`
	Image        string `json:"Image"`
	Command      string `json:"Command"`
	Created      string `json:"CreatedAt"`
	Status       string `json:"Status"`
	State        string `json:"State"`
	Ports        string `json:"Ports"`
	Names        string `json:"Names"`
	RestartCount int    `json:"RestartCount"`
	Mounts       string `json:"Mounts"`
}

func newPsCmd(e *env) *cobra.Command {
	var all, quiet bool
	var format string
	cmd := &cobra.Command{
		Use:   "ps",
		Short: "List instances",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			is, err := e.instances()
			if err != nil {
				return err
			}
			list, err := is.List()
			if err != nil {
				return err
			}
			var rows []psRow
			for _, in := range list {
				if !all && !in.Running() {
					continue
				}
				rows = append(rows, makePsRow(in))
			}
			if quiet {
				for _, r := range rows {
					fmt.Fprintln(e.stdout, r.ID)
				}
				return nil
			}
			if format != "" {
				return printFormatted(e.stdout, format, rows)
			}
			w := tabwriter.NewWriter(e.stdout, 0, 0, 3, ' ', 0)
			fmt.Fprintln(w, "ID\tIMAGE\tSTATUS\tPORTS\tNAME")
			for _, r := range rows {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.Image, r.Status, r.Ports, r.Names)
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "show all instances, not only running ones")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print IDs only")
	cmd.Flags().StringVar(&format, "format", "", "format with a Go template (fields: .ID .Image .Command .CreatedAt .Status .State .Ports .Names .RestartCount) or 'json'")
	return cmd
}

func makePsRow(in *instance.Instance) psRow {
	var ports []string
	for _, f := range in.Config.Publish {
		ip := f.HostIP
		if ip == "" {
			ip = "0.0.0.0"
		}
		ports = append(ports, fmt.Sprintf("%s:%d->%d/%s", ip, f.HostPort, f.GuestPort, f.Proto))
	}
	var mounts []string
	for _, v := range in.Config.Volumes {
		mounts = append(mounts, v.String())
	}
	for _, b := range in.Config.Binds {
		mounts = append(mounts, b.String())
	}
	return psRow{
		Mounts:       strings.Join(mounts, ","),
		ID:           in.Config.ID[:12],
		Image:        in.Config.Image,
		Command:      strings.Join(in.Config.Entrypoint, " "),
		Created:      in.Config.Created.Format(time.RFC3339),
		Status:       statusText(in),
		State:        in.State.Status,
		Ports:        strings.Join(ports, ", "),
		Names:        in.Config.Name,
		RestartCount: in.State.RestartCount,
	}
}

// statusText says how an instance is, as docker's STATUS column does.
func statusText(in *instance.Instance) string {
	s := in.State
	switch s.Status {
	case instance.StatusRunning:
		t := "Up " + duration(time.Since(s.StartedAt))
		if s.Health != nil {
			t += " (" + s.Health.Status + ")"
		}
		return t
	case instance.StatusRestarting:
		return fmt.Sprintf("Restarting (%d) %s ago", s.ExitCode, duration(time.Since(s.FinishedAt)))
	case instance.StatusExited:
		return fmt.Sprintf("Exited (%d) %s ago", s.ExitCode, duration(time.Since(s.FinishedAt)))
	case instance.StatusCrashed:
		return fmt.Sprintf("Crashed (%s) %s ago", crashText(s), duration(time.Since(s.FinishedAt)))
	}
	return "Created"
}

// crashText is the short reason ps shows for a crashed instance.
func crashText(s instance.State) string {
	hv := s.Hypervisor
	if hv == "" {
		hv = "hypervisor"
	}
	switch s.CrashKind {
	case instance.CrashKernelPanic:
		return "kernel panic"
	case instance.CrashHypervisorKilled:
		return hv + " killed"
	case instance.CrashHypervisorFailed:
		return hv + " failed"
	case instance.CrashMonitorDied:
		return "monitor died"
	case instance.CrashSetupFailed:
		return "setup failed"
	case instance.CrashGuestError:
		return "guest error"
	case instance.CrashBootTimeout:
		return "boot timed out"
	}
	return "no exit code"
}

func duration(d time.Duration) string {
	switch {
	case d < 0:
		return "0 seconds"
	case d < time.Minute:
		return plural(int(d/time.Second), "second")
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute")
	case d < 48*time.Hour:
		return plural(int(d/time.Hour), "hour")
	}
	return plural(int(d/(24*time.Hour)), "day")
}

func newLogsCmd(e *env) *cobra.Command {
	var o instance.LogOptions
	var tail string
	var console bool
	cmd := &cobra.Command{
		Use:   "logs [flags] INSTANCE",
		Short: "Show an instance's application output (kept across restarts and after exit)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			is, err := e.instances()
			if err != nil {
				return err
			}
			in, err := is.Get(args[0])
			if err != nil {
				return err
			}
			if console {
				return copyFile(e.stdout, filepath.Join(in.Dir, "console.log"))
			}
			if o.Tail, err = parseTail(tail); err != nil {
				return err
			}
			return instance.Logs(cmd.Context(), in, e.stdout, e.stderr, o)
		},
	}
	cmd.Flags().BoolVarP(&o.Follow, "follow", "f", false, "keep printing new output until the instance stops")
	cmd.Flags().StringVarP(&tail, "tail", "n", "all", "show only the last N lines")
	cmd.Flags().BoolVarP(&o.Timestamps, "timestamps", "t", false, "prefix each line with its time")
	cmd.Flags().BoolVar(&console, "console", false, "show the guest's serial console (kernel messages) instead")
	return cmd
}

func parseTail(s string) (int, error) {
	if s == "all" || s == "" {
		return -1, nil
	}
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil || n < 0 || fmt.Sprint(n) != s {
		return 0, fmt.Errorf("--tail %q: want a number of lines or \"all\"", s)
	}
	return n, nil
}

func copyFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

func newStopCmd(e *env) *cobra.Command {
	var secs int
	cmd := &cobra.Command{
		Use:   "stop [-t SECONDS] INSTANCE...",
		Short: "Stop instances gracefully: SIGTERM to the application, then force off",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if secs < 0 {
				return fmt.Errorf("--time %d: want 0 or more seconds", secs)
			}
			return eachInstance(e, args, func(is *instance.Instances, in *instance.Instance) error {
				if err := instance.Stop(cmd.Context(), in, stopTimeout(cmd, secs, in)); err != nil {
					return err
				}
				fmt.Fprintln(e.stdout, args0(in))
				return nil
			})
		},
	}
	cmd.Flags().IntVarP(&secs, "time", "t", 10, "seconds to wait before forcing the VM off (default: the instance's)")
	return cmd
}

// args0 is how docker echoes an instance back: by name if it has one.
func args0(in *instance.Instance) string {
	if in.Config.Name != "" {
		return in.Config.Name
	}
	return in.Config.ID[:12]
}

func newKillCmd(e *env) *cobra.Command {
	var sig string
	cmd := &cobra.Command{
		Use:   "kill [-s SIGNAL] INSTANCE...",
		Short: "Force instances off, or send their application a signal",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := parseSignal(sig)
			if err != nil {
				return err
			}
			return eachInstance(e, args, func(is *instance.Instances, in *instance.Instance) error {
				if err := instance.Kill(cmd.Context(), in, s); err != nil {
					return err
				}
				fmt.Fprintln(e.stdout, args0(in))
				return nil
			})
		},
	}
	cmd.Flags().StringVarP(&sig, "signal", "s", "KILL", "signal: KILL forces the VM off; others go to the application")
	return cmd
}

func parseSignal(s string) (syscall.Signal, error) {
	name := strings.ToUpper(strings.TrimPrefix(strings.ToUpper(s), "SIG"))
	if n := unix.SignalNum("SIG" + name); n != 0 {
		return n, nil
	}
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err == nil && n > 0 && n < 65 && fmt.Sprint(n) == s {
		return syscall.Signal(n), nil
	}
	return 0, fmt.Errorf("--signal %q: not a signal name or number (e.g. TERM, HUP, 9)", s)
}

func newStartCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "start INSTANCE...",
		Short: "Start stopped instances",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return eachInstance(e, args, func(is *instance.Instances, in *instance.Instance) error {
				return startAndEcho(cmd.Context(), e, in)
			})
		},
	}
}

// startAndEcho starts an instance's monitor and echoes the instance.
func startAndEcho(ctx context.Context, e *env, in *instance.Instance) error {
	if err := instance.Start(ctx, in, monitorCmd(e, in.Config.ID)); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, args0(in))
	return nil
}

func newRestartCmd(e *env) *cobra.Command {
	var secs int
	cmd := &cobra.Command{
		Use:   "restart [-t SECONDS] INSTANCE...",
		Short: "Stop and start instances",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if secs < 0 {
				return fmt.Errorf("--time %d: want 0 or more seconds", secs)
			}
			return eachInstance(e, args, func(is *instance.Instances, in *instance.Instance) error {
				if err := instance.Stop(cmd.Context(), in, stopTimeout(cmd, secs, in)); err != nil {
					return err
				}
				in, err := is.Get(in.Config.ID)
				if err != nil {
					return err
				}
				return startAndEcho(cmd.Context(), e, in)
			})
		},
	}
	cmd.Flags().IntVarP(&secs, "time", "t", 10, "seconds to wait before forcing the VM off (default: the instance's)")
	return cmd
}

// stopTimeout is -t when given, else the instance's own stop timeout.
func stopTimeout(cmd *cobra.Command, secs int, in *instance.Instance) time.Duration {
	if cmd.Flags().Changed("time") {
		return time.Duration(secs) * time.Second
	}
	return in.Config.StopTimeout
}

func newRmCmd(e *env) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rm [-f] INSTANCE...",
		Short: "Remove instances (running ones only with -f)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return eachRef(e, args, func(is *instance.Instances, ref string) error {
				in, err := is.Remove(cmd.Context(), ref, force)
				if err != nil {
					return err
				}
				fmt.Fprintln(e.stdout, args0(in))
				return nil
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill and remove running instances")
	return cmd
}

func newWaitCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "wait INSTANCE...",
		Short: "Wait until instances stop, then print their exit codes",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return eachInstance(e, args, func(is *instance.Instances, in *instance.Instance) error {
				done, err := instance.Wait(cmd.Context(), is, in)
				if err != nil {
					return err
				}
				fmt.Fprintln(e.stdout, done.State.ExitCode)
				return nil
			})
		},
	}
}

func newAttachCmd(e *env) *cobra.Command {
	var stdin bool
	var detachKeys string
	cmd := &cobra.Command{
		Use:   "attach [-i] INSTANCE",
		Short: "Stream a running instance's output until it stops, and with -i forward stdin (Ctrl-P Ctrl-Q or Ctrl-C detaches)",
		Long: `Attach streams a running instance's output until it stops. With -i it
also forwards stdin, to an instance started with -i. On an instance with a
terminal (run -t) our terminal goes into raw mode: keys go to the
application, and the detach keys (Ctrl-P Ctrl-Q) leave it running.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			keys, err := parseDetachKeys(detachKeys)
			if err != nil {
				return err
			}
			is, err := e.instances()
			if err != nil {
				return err
			}
			in, err := is.Get(args[0])
			if err != nil {
				return err
			}
			if !in.Running() {
				return fmt.Errorf("instance %s: %w", args[0], instance.ErrNotRunning)
			}
			if stdin && !in.Config.Stdin {
				return fmt.Errorf("instance %s: %w", args[0], instance.ErrNoStdin)
			}
			if !stdin && !in.Config.TTY {
				err = instance.Logs(cmd.Context(), in, e.stdout, e.stderr, instance.LogOptions{Tail: 0, Follow: true})
			} else {
				err = attachStream(cmd.Context(), e, in, stdin, in.Config.TTY, keys)
			}
			if errors.Is(err, context.Canceled) || errors.Is(err, errDetached) {
				return nil // detached
			}
			return err
		},
	}
	cmd.Flags().BoolVarP(&stdin, "interactive", "i", false, "forward stdin to the application (instances started with -i)")
	cmd.Flags().StringVar(&detachKeys, "detach-keys", defaultDetachKeys, "the keys that detach from an instance with a terminal (empty: none)")
	return cmd
}

func newExecCmd(e *env) *cobra.Command {
	var f struct {
		stdin, tty bool
		env        []string
		user, dir  string
		detachKeys string
	}
	cmd := &cobra.Command{
		Use:   "exec [flags] INSTANCE COMMAND [ARGS...]",
		Short: "Run a command in a running instance",
		Long: `Exec starts COMMAND in a running instance beside its application, through
the instance's init, and exits with its exit code: 126 when it cannot be
run, 127 when it is not found. COMMAND is found in the image's PATH; it is
not given to a shell (there is none unless the image has one). It runs
with the application's environment, user and working directory unless -e,
-u and -w say otherwise. Images built with --no-exec refuse it.`,
		Example: `  nos exec web ls /
  nos exec -it py python3`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ex, keys, err := execOptions(f.stdin, f.tty, f.env, f.user, f.dir, f.detachKeys, args[1:])
			if err != nil {
				return &exitError{code: instance.ExitGuestError, err: err}
			}
			if f.tty {
				ex.Rows, ex.Cols = terminalSize(e)
			}
			is, err := e.instances()
			if err != nil {
				return &exitError{code: instance.ExitGuestError, err: err}
			}
			in, err := is.Get(args[0])
			if err != nil {
				return &exitError{code: instance.ExitGuestError, err: err}
			}
			if !in.Running() {
				return &exitError{code: instance.ExitGuestError, err: fmt.Errorf("instance %s: %w", args[0], instance.ErrNotRunning)}
			}
			s, err := instance.Exec(cmd.Context(), in, ex)
			if err != nil {
				return &exitError{code: instance.ExitGuestError, err: err}
			}
			code, err := runStream(cmd.Context(), e, s, streamOptions{stdin: f.stdin, tty: f.tty, detachKeys: keys, exec: true})
			if errors.Is(err, errDetached) {
				return nil
			}
			if err != nil {
				return &exitError{code: instance.ExitGuestError, err: err}
			}
			if code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.SetInterspersed(false) // flags after INSTANCE belong to the command
	fl.BoolVarP(&f.stdin, "interactive", "i", false, "forward stdin to the command")
	fl.BoolVarP(&f.tty, "tty", "t", false, "run the command on a terminal")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "set an environment variable, KEY=VALUE, or KEY to pass the host's value (repeatable)")
	fl.StringVarP(&f.user, "user", "u", "", "run the command as UID[:GID] (default: the application's user)")
	fl.StringVarP(&f.dir, "workdir", "w", "", "the command's working directory (default: the application's)")
	fl.StringVar(&f.detachKeys, "detach-keys", defaultDetachKeys, "with -it, the keys that detach from the command, leaving it running (empty: none)")
	return cmd
}

// execOptions checks nos exec's flags and makes the request.
func execOptions(stdin, tty bool, env []string, user, dir, detachKeys string, argv []string) (guestapi.Exec, []byte, error) {
	ex := guestapi.Exec{Argv: argv, Stdin: stdin, TTY: tty, WorkingDir: dir}
	keys, err := parseDetachKeys(detachKeys)
	if err != nil {
		return ex, nil, err
	}
	if dir != "" && !strings.HasPrefix(dir, "/") {
		return ex, nil, fmt.Errorf("--workdir %q: want an absolute path", dir)
	}
	if user != "" {
		if ex.User, err = instance.ParseUser(user); err != nil {
			return ex, nil, err
		}
	}
	if ex.Env, err = parseEnvFlags(env); err != nil {
		return ex, nil, err
	}
	return ex, keys, nil
}
