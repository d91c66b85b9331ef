// Package cli is the nos command line: a cobra root and one file per verb.
// Each verb parses its flags into an options struct, calls one library
// function and prints the result to the command's output streams, so the
// whole CLI can run in process (tests do).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/nosproject/nos/internal/home"
	"github.com/nosproject/nos/store"
)

// exitError carries a process exit code out of a verb, as `nos run` needs.
type exitError struct {
	code int
	err  error // nil: nothing to print
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// env is what every verb shares: where nos keeps its data and how to log.
type env struct {
	home   string
	debug  bool
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

func (e *env) logger() *slog.Logger {
	level := slog.LevelInfo
	if e.debug {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level, ReplaceAttr: dropTime}))
}

func dropTime(groups []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey && len(groups) == 0 {
		return slog.Attr{}
	}
	return a
}

func (e *env) homeDir() (string, error) {
	if e.home != "" {
		return e.home, nil
	}
	l, err := home.Default()
	return l.Root, err
}

// layout is nos's data directory.
func (e *env) layout() (home.Layout, error) {
	dir, err := e.homeDir()
	return home.Layout{Root: dir}, err
}

// store opens the image store under the nos home directory.
func (e *env) store() (*store.Store, error) {
	l, err := e.layout()
	if err != nil {
		return nil, err
	}
	return store.Open(l.Images())
}

// Execute runs the nos command line with args and returns the exit code.
func Execute(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRoot(e)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var xe *exitError
	if errors.As(err, &xe) {
		if xe.err != nil {
			fmt.Fprintln(stderr, "nos: "+oneLine(xe.err.Error())+resourceHint(xe.err))
		}
		return xe.code
	}
	fmt.Fprintln(stderr, "nos: "+oneLine(err.Error())+resourceHint(err))
	return 1
}

// resourceHint says what to do about an error that comes from a limit
// of the host rather than from the input: open files exhausted.
func resourceHint(err error) string {
	if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || strings.Contains(err.Error(), "too many open files") {
		var rl syscall.Rlimit
		if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil {
			return fmt.Sprintf(" (nos may open %d files: raise the limit, e.g. ulimit -n 4096)", rl.Cur)
		}
		return " (raise the open-file limit, e.g. ulimit -n 4096)"
	}
	return ""
}

// checkTempDir refuses a temporary directory nos cannot write in, before
// a build has made anything.
func checkTempDir() error {
	dir := os.TempDir()
	f, err := os.CreateTemp(dir, ".nos-probe-*")
	if err != nil {
		return fmt.Errorf("the temporary directory %s is not writable (%v): set TMPDIR to a writable directory, or unset it for /tmp", dir, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

func oneLine(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", "; ") }

func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "nos",
		Short: "Build applications into minimal VM images and run them",
		Long: `nos compiles an application into a minimal bootable image - a Linux kernel,
a small pure-Go init and the application, nothing else - and runs it under
QEMU with a docker-like command line.`,
		SilenceUsage: true,
		// Parse each parent's own flags before its subcommand: nos compose
		// -f FILE logs -f, as docker compose has them.
		TraverseChildren:           true,
		SuggestionsMinimumDistance: 2,
		// Traversing, cobra no longer refuses an unknown verb itself.
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += "; did you mean " + strings.Join(s, ", ") + "?"
			}
			return errors.New(msg)
		},
		RunE:          func(cmd *cobra.Command, args []string) error { return cmd.Help() },
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, args []string) {
			if e.home == "" {
				e.home = os.Getenv("NOS_HOME")
			}
		},
	}
	root.PersistentFlags().StringVar(&e.home, "home", "", "nos data directory (default $NOS_HOME, $XDG_DATA_HOME/nos or ~/.local/share/nos)")
	root.PersistentFlags().BoolVarP(&e.debug, "debug", "D", false, "print debug messages")
	root.AddCommand(
		newBuildCmd(e),
		newRunCmd(e),
		newPsCmd(e),
		newLogsCmd(e),
		newStopCmd(e),
		newKillCmd(e),
		newStartCmd(e),
		newRestartCmd(e),
		newRmCmd(e),
		newWaitCmd(e),
		newAttachCmd(e),
		newExecCmd(e),
		newMonitorCmd(e),
		newImagesCmd(e),
		newRmiCmd(e),
		newTagCmd(e),
		newPushCmd(e),
		newPullCmd(e),
		newLoginCmd(e),
		newLogoutCmd(e),
		newSaveCmd(e),
		newLoadCmd(e),
		newInspectCmd(e),
		newSBOMCmd(e),
		newExportCmd(e),
		newKernelCmd(e),
		newSystemCmd(e),
		newVolumeCmd(e),
		newNetworkCmd(e),
		newComposeCmd(e),
		newSignCmd(e),
		newVerifyCmd(e),
		newResolverCmd(e),
		newVersionCmd(e),
	)
	return root
}
