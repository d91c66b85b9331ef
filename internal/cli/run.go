package cli

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nosproject/nos/instance"
	"github.com/spf13/cobra"
)

type runFlags struct {
	publish []string
	env     []string
	memory  string
	cpus    int
	name    string
	accel   string
	rm      bool
	stopT   int
	entry   string
	console string
}

func newRunCmd(e *env) *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run [flags] IMAGE [ARGS...]",
		Short: "Boot an image and run its application in the foreground",
		Long: `Run boots IMAGE under QEMU and shows the application's output. It exits with
the application's exit code. Ctrl-C stops the application gracefully (it gets
SIGTERM); a second Ctrl-C forces the VM off. ARGS replace the image's default
arguments; -e adds or overrides environment variables without a rebuild and
is never put on the kernel command line.`,
		Example: `  nos run hello
  nos run -p 8080:80 -e TOKEN=s3cret web
  nos run --memory 512m --cpus 2 web --verbose`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := f.options(e, args)
			if err != nil {
				return &exitError{code: instance.ExitGuestError, err: err}
			}
			st, err := e.store()
			if err != nil {
				return &exitError{code: instance.ExitGuestError, err: err}
			}
			sigs := make(chan os.Signal, 2)
			signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
			defer signal.Stop(sigs)
			o.Interrupts = sigs
			res, err := instance.Run(cmd.Context(), st, o)
			if err != nil {
				return &exitError{code: instance.ExitGuestError, err: err}
			}
			if res.ExitCode != 0 {
				return &exitError{code: res.ExitCode}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.SetInterspersed(false) // flags after IMAGE belong to the application
	fl.StringArrayVarP(&f.publish, "publish", "p", nil, "publish a guest port on the host, [HOSTIP:]HOSTPORT:GUESTPORT[/tcp|/udp] (repeatable)")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "set an environment variable, KEY=VALUE, or KEY to pass the host's value (repeatable)")
	fl.StringVarP(&f.memory, "memory", "m", "", "guest memory, e.g. 256m or 1g (default: the image's)")
	fl.IntVar(&f.cpus, "cpus", 0, "number of virtual CPUs (default: the image's)")
	fl.StringVar(&f.name, "name", "", "name of the instance, also the guest's hostname")
	fl.StringVar(&f.accel, "accel", "auto", "accelerator: auto, kvm or tcg")
	fl.BoolVar(&f.rm, "rm", false, "remove the instance's files when it ends, even the console log of a VM that died")
	fl.StringVar(&f.console, "console-log", "", "write the guest's serial console (kernel messages) to this file")
	fl.StringVar(&f.entry, "entrypoint", "", "override the image's entrypoint (the program to run)")
	fl.IntVarP(&f.stopT, "time", "t", 10, "seconds to wait after a graceful stop before forcing the VM off")
	return cmd
}

func (f *runFlags) options(e *env, args []string) (instance.Options, error) {
	o := instance.Options{
		Image: args[0], Args: args[1:], Name: f.name, CPUs: f.cpus, Accel: f.accel, Remove: f.rm, ConsoleLog: f.console,
		StopTimeout: time.Duration(f.stopT) * time.Second,
		Stdout:      e.stdout, Stderr: e.stderr, Log: e.logger(),
	}
	if f.entry != "" {
		o.Entrypoint = []string{f.entry}
	}
	for _, s := range f.publish {
		fw, err := instance.ParsePublish(s)
		if err != nil {
			return o, err
		}
		o.Publish = append(o.Publish, fw)
	}
	var err error
	if o.Env, err = parseEnvFlags(f.env); err != nil {
		return o, err
	}
	if o.MemoryMiB, err = parseMemoryFlag(f.memory); err != nil {
		return o, err
	}
	if f.cpus < 0 || f.cpus > 64 {
		return o, fmt.Errorf("--cpus %d: want 1 to 64", f.cpus)
	}
	if f.name != "" && !validName(f.name) {
		return o, fmt.Errorf("--name %q: use letters, digits, '.', '_' and '-', starting with a letter or digit, at most 63 characters", f.name)
	}
	if f.stopT < 0 {
		return o, fmt.Errorf("--time %d: want 0 or more seconds", f.stopT)
	}
	home, err := e.homeDir()
	if err != nil {
		return o, err
	}
	o.Home = home
	return o, nil
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i, r := range s {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !alnum && (i == 0 || (r != '.' && r != '_' && r != '-')) {
			return false
		}
	}
	return true
}
