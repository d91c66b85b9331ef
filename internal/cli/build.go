package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nosproject/nos/build"
	"github.com/nosproject/nos/instance"
	"github.com/nosproject/nos/kernel"
	"github.com/nosproject/nos/kernel/config"
	"github.com/nosproject/nos/kernel/kbuild"
	"github.com/nosproject/nos/store"
	"github.com/spf13/cobra"
)

type buildFlags struct {
	tag        string
	env        []string
	args       []string
	ports      []string
	memory     string
	cpus       int
	workdir    string
	kernel     string
	features   []string
	kernelArgs []string
}

func newBuildCmd(e *env) *cobra.Command {
	var f buildFlags
	cmd := &cobra.Command{
		Use:   "build [flags] SOURCE",
		Short: "Build a Go main package or a static Linux executable into an image",
		Long: `Build compiles SOURCE - a Go main package (a directory, ./cmd/x, or an import
path in the current module) or a static Linux amd64 executable - into an image:
a kernel, an initramfs with the nos init and the application, and a config.
It prints the image digest; the same inputs always give the same digest.`,
		Example: `  nos build -t hello ./examples/hello
  nos build -t web:v1 --port 8080 -e GREETING=hi ./examples/httpserver`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := f.options(e, args[0], cmd.Flags().Changed("features"))
			if err != nil {
				return err
			}
			st, err := e.store()
			if err != nil {
				return err
			}
			res, err := build.Build(cmd.Context(), st, o)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "built %s:%s (%s, kernel %s)\n", res.Name, res.Tag, humanSize(res.Size), res.Kernel.Version)
			fmt.Fprintln(e.stdout, res.Digest)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.tag, "tag", "t", "", "image name and optional tag, name[:tag] (default: the program's name, tag latest)")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "set an environment variable in the image, KEY=VALUE (repeatable)")
	fl.StringArrayVar(&f.args, "arg", nil, "default argument for the application (repeatable, in order)")
	fl.StringArrayVar(&f.ports, "port", nil, "port the application listens on, PORT[/tcp|/udp] (repeatable)")
	fl.StringVarP(&f.memory, "memory", "m", "", "default guest memory, e.g. 256m or 1g")
	fl.IntVar(&f.cpus, "cpus", 0, "default number of virtual CPUs")
	fl.StringVarP(&f.workdir, "workdir", "w", "", "working directory of the application in the guest")
	fl.StringVar(&f.kernel, "kernel", "", "kernel to boot: a file, or the ID of a kernel nos built or imported (default: a built kernel with the --features, then the one nos fetched, then the newest in /boot)")
	fl.StringSliceVar(&f.features, "features", config.DefaultFeatures, "kernel features the application needs: "+strings.Join(config.Features(), ", ")+", or none; nos picks a kernel built with them, and builds one when they are given and none exists")
	fl.StringArrayVar(&f.kernelArgs, "kernel-arg", nil, "extra kernel command-line argument, e.g. loglevel=7 (repeatable)")
	return cmd
}

func (f *buildFlags) options(e *env, source string, explicitFeatures bool) (build.Options, error) {
	o := build.Options{Source: source, Args: f.args, Ports: f.ports, CPUs: f.cpus, WorkDir: f.workdir, KernelArgs: f.kernelArgs, Log: e.logger()}
	if f.tag != "" {
		name, tag, err := store.ParseReference(f.tag)
		if err != nil {
			return o, err
		}
		o.Name, o.Tag = name, tag
	}
	var err error
	if o.Env, err = parseEnvFlags(f.env); err != nil {
		return o, err
	}
	if o.MemoryMiB, err = parseMemoryFlag(f.memory); err != nil {
		return o, err
	}
	if f.cpus < 0 {
		return o, fmt.Errorf("--cpus %d: want a positive number", f.cpus)
	}
	home, err := e.homeDir()
	if err != nil {
		return o, err
	}
	if o.Needs, err = parseFeatures(f.features); err != nil {
		return o, err
	}
	built := builtKernelCache(home)
	built.Need = o.Needs
	var explicit []string
	if explicitFeatures {
		explicit = o.Needs
	}
	switch {
	case f.kernel != "":
		o.Kernel = namedKernel{arg: f.kernel, built: built, need: explicit}
	case explicitFeatures:
		o.Kernel = kernel.Chain{buildingKernel{e: e, built: built}}
	default:
		o.Kernel = defaultKernel(home, built)
	}
	if o.Init, err = build.FindInit(); err != nil {
		return o, err
	}
	return o, nil
}

// defaultKernel prefers a kernel nos built with the features the image
// needs (or the one it imported last), then a kernel nos fetched into its
// cache (made for VMs, with every feature as modules), then the host's own.
// $NOS_BOOT_DIR replaces /boot as the place to look for the host's kernels.
func defaultKernel(home string, built kbuild.Cache) kernel.Finder {
	return kernel.Chain{
		built,
		kernel.Cache{Dir: kernelCache(home)},
		kernel.Host{BootDir: os.Getenv("NOS_BOOT_DIR")},
	}
}

func kernelCache(home string) string { return filepath.Join(home, "cache", "kernels") }

func humanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// parseEnvFlags turns -e values into KEY=VALUE pairs.
func parseEnvFlags(flags []string) ([]string, error) {
	var env []string
	for _, s := range flags {
		kv, ok, err := instance.ParseEnv(s)
		if err != nil {
			return nil, err
		}
		if ok {
			env = append(env, kv)
		}
	}
	return env, nil
}

// parseMemoryFlag returns MiB, or 0 for an unset flag.
func parseMemoryFlag(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	return instance.ParseMemory(s)
}
