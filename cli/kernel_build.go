package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nosproject/nos/internal/home"

	"github.com/spf13/cobra"

	"github.com/nosproject/nos/kernel"
	"github.com/nosproject/nos/kernel/config"
	"github.com/nosproject/nos/kernel/kbuild"
)

// featureSet is a --features list without blanks and "none".
func featureSet(list []string) []string {
	set := []string{}
	for _, f := range list {
		if f = strings.TrimSpace(f); f != "" && f != "none" {
			set = append(set, f)
		}
	}
	return set
}

// builtKernelCache is where nos keeps the kernels it built or imported.
func builtKernelCache(dir string) kbuild.Cache {
	return kbuild.Cache{Dir: home.Layout{Root: dir}.BuiltKernels()}
}

// kernelSelector chooses kernels among nos's caches and the host's
// ($NOS_BOOT_DIR replaces /boot), building one with progress on stderr
// (and the build tools installed as nos kernel build does) when features
// were asked for that no built kernel has.
func kernelSelector(e *env, home string) kbuild.Selector {
	built := builtKernelCache(home)
	return kbuild.Selector{
		Built:      built,
		FetchedDir: kernelCache(home),
		BootDir:    os.Getenv("NOS_BOOT_DIR"),
		Progress:   e.stderr,
		Build: func(ctx context.Context, features []string) (*kernel.Kernel, error) {
			res, err := buildKernel(ctx, e, built, kbuild.Options{Features: features, Progress: e.stderr}, true)
			if err != nil {
				return nil, err
			}
			return res.Entry.Kernel(), nil
		},
	}
}

func newKernelBuildCmd(e *env) *cobra.Command {
	var (
		source    string
		features  []string
		jobs      int
		noInstall bool
	)
	cmd := &cobra.Command{
		Use:   "build",
		Short: "Build nos's own module-free kernel with the features images need",
		Long: `Build compiles a Linux kernel made for nos machines: no modules, only the
drivers and system calls nos guests use, configured with make tinyconfig and
the configuration fragments built into nos (a base, plus --features). It
checks that the kernel kept every option the fragments set.

The source is Debian's linux-source tarball in /usr/src unless --source names
a kernel source directory or tarball. Missing build tools and the source
package are installed with apt-get when nos runs as root; otherwise the error
names them. The kernel is kept in nos's cache, keyed by its source, its
configuration and the compiler, so building it again is instant. nos build
then picks, for each image, the built kernel having the features the image
needs (--features of nos build, net by default): one with exactly those
first, else the one with the fewest extra; --kernel still overrides.

Several feature sets given as arguments (each comma-separated, 'none' for
the base alone) are built one after another in one extracted source, fewest
options first, so that each later kernel compiles only what its options
change; the last one named becomes the default.

Features: ` + strings.Join(config.Features(), ", ") + ` ('none' for the base alone).
Without net, images get no NIC, and -p, --port and health checks are refused.`,
		Example: `  nos kernel build
  nos kernel build --features net,vsock
  nos kernel build none net,blk net        # three kernels, net the default
  nos kernel build --source ~/src/linux-6.1 -j 8`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			home, err := e.homeDir()
			if err != nil {
				return err
			}
			if jobs < 0 {
				return fmt.Errorf("--jobs %d: want a positive number", jobs)
			}
			o := kbuild.Options{Source: source, Jobs: jobs, Progress: e.stderr}
			var sets [][]string
			switch {
			case len(args) > 0 && cmd.Flags().Changed("features"):
				return fmt.Errorf("feature sets given both as arguments and with --features: use one")
			case len(args) > 0:
				for _, a := range args {
					sets = append(sets, featureSet(strings.Split(a, ",")))
				}
			case cmd.Flags().Changed("features"):
				sets = [][]string{featureSet(features)}
			default:
				sets = [][]string{nil}
			}
			results, err := buildKernels(cmd.Context(), e, builtKernelCache(home), o, sets, !noInstall)
			if err != nil {
				return err
			}
			for _, res := range results {
				k := res.Entry
				feats := config.Describe(k.Features)
				if res.Cached {
					fmt.Fprintf(e.stderr, "kernel %s (features %s) was built already; nos build picks it for images needing exactly these features\n", k.Version, feats)
				} else {
					fmt.Fprintf(e.stderr, "built kernel %s (features %s, %s) in %s; nos build picks it for images needing exactly these features\n", k.Version, feats, humanSize(fileSize(k.Path())), time.Duration(k.BuildSeconds)*time.Second)
				}
				if !slices.Contains(k.Features, "net") {
					fmt.Fprintln(e.stderr, "note: this kernel has no networking: its images get no NIC, and -p, --port and health checks are refused")
				}
				fmt.Fprintf(e.stdout, "%s\t%s\t%s\n", k.ShortID(), k.Version, k.Path())
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&source, "source", "", "kernel source directory or tarball (default: the newest "+kbuild.DefaultSourceGlob+")")
	fl.StringSliceVar(&features, "features", config.DefaultFeatures, "features to build in besides the base, comma-separated: "+strings.Join(config.Features(), ", ")+", or none")
	fl.IntVarP(&jobs, "jobs", "j", 0, "parallel compile jobs (default: the number of CPUs)")
	fl.BoolVar(&noInstall, "no-install", false, "never install missing packages, only name them")
	return cmd
}

func newKernelLsCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List the kernels nos can use: built, imported, fetched and the host's",
		Long: `Ls lists the kernels nos knows: those it built (nos kernel build) or imported
(nos kernel import), those it fetched (nos kernel fetch) and the host's own in
/boot. The one nos build uses for an image with the default features (net)
is marked with *. It fails when
kernels are listed but none is usable; an empty list is not an error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			home, err := e.homeDir()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			built, err := builtKernelCache(home).List()
			if err != nil {
				return err
			}
			fetched, err := kernel.Cache{Dir: kernelCache(home)}.List(ctx)
			if err != nil {
				return err
			}
			host, err := kernel.Host{BootDir: os.Getenv("NOS_BOOT_DIR")}.List(ctx)
			if err != nil {
				return err
			}
			def, defErr := kernelSelector(e, home).Default(config.DefaultFeatures).Find(ctx)
			mark := func(path string) string {
				if def != nil && def.Path == path {
					return "*"
				}
				return ""
			}
			w := tabwriter.NewWriter(e.stdout, 0, 0, 3, ' ', 0)
			fmt.Fprintln(w, "DEFAULT\tID\tVERSION\tORIGIN\tFEATURES\tSIZE\tPATH")
			for _, k := range built {
				feats := "-"
				if k.Origin == kbuild.OriginBuilt {
					feats = config.Describe(k.Features)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", mark(k.Path()), k.ShortID(), orDash(k.Version), k.Origin, feats, humanSize(fileSize(k.Path())), k.Path())
			}
			for _, k := range append(fetched, host...) {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", mark(k.Path), "-", orDash(k.Version), k.Origin, "-", humanSize(fileSize(k.Path)), k.Path)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			if len(built)+len(fetched)+len(host) == 0 && errors.Is(defErr, kernel.ErrNoKernel) {
				return nil // no kernels is an empty list, not an error
			}
			return defErr
		},
	}
}

func newKernelRmCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "rm ID|VERSION...",
		Short: "Remove built, imported or fetched kernels from nos's cache",
		Long: `Rm removes kernels nos built or imported (named by an ID or a unique prefix
of one, as nos kernel ls shows) or fetched (named by version). Images keep
the kernel they were built with. The host's kernels are never removed.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			home, err := e.homeDir()
			if err != nil {
				return err
			}
			var errs []error
			for _, ref := range args {
				if err := removeKernel(home, ref); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintln(e.stdout, ref)
			}
			return errors.Join(errs...)
		},
	}
}

// removeKernel removes the built or imported kernel whose ID starts with
// ref, or else the fetched kernel of version ref.
func removeKernel(home, ref string) error {
	if strings.Trim(strings.ToLower(ref), "0123456789abcdef") == "" {
		_, err := builtKernelCache(home).Remove(ref)
		if err == nil || !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	err := kernel.Cache{Dir: kernelCache(home)}.Remove(ref)
	if err == nil || errors.Is(err, os.ErrPermission) {
		return err
	}
	return fmt.Errorf("no kernel %q in nos's cache (see nos kernel ls; the host's kernels are never removed)", ref)
}

func newKernelImportCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "import FILE",
		Short: "Copy a kernel image into nos's cache and make it the default",
		Long: `Import copies a kernel image (a bzImage, or an ELF vmlinux with a PVH entry
point) into nos's cache, where it becomes the kernel nos build uses by
default. The kernel must have the virtio drivers nos machines use built in:
images booting it load no modules.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			home, err := e.homeDir()
			if err != nil {
				return err
			}
			k, existed, err := builtKernelCache(home).Import(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if existed {
				fmt.Fprintf(e.stderr, "kernel %s was imported already; it is the default\n", k.ShortID())
			}
			fmt.Fprintf(e.stdout, "%s\t%s\t%s\n", k.ShortID(), orDash(k.Version), k.Path())
			return nil
		},
	}
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// buildKernel runs a kernel build, installing the packages it lacks first
// when allowed and running as root.
func buildKernel(ctx context.Context, e *env, c kbuild.Cache, o kbuild.Options, install bool) (*kbuild.Result, error) {
	res, err := buildKernels(ctx, e, c, o, [][]string{o.Features}, install)
	if err != nil {
		return nil, err
	}
	return res[0], nil
}

// buildKernels is kbuild.BuildAll, installing what it is missing first
// when install is set and nos runs as root.
func buildKernels(ctx context.Context, e *env, c kbuild.Cache, o kbuild.Options, sets [][]string, install bool) ([]*kbuild.Result, error) {
	res, err := kbuild.BuildAll(ctx, c, o, sets)
	var missing *kbuild.MissingError
	if errors.As(err, &missing) && install && os.Geteuid() == 0 {
		fmt.Fprintf(e.stderr, "kernel build: installing %s (needed: %s)\n", strings.Join(missing.Packages, " "), missing.What)
		if err := kbuild.Install(ctx, missing.Packages, e.stderr); err != nil {
			return nil, err
		}
		res, err = kbuild.BuildAll(ctx, c, o, sets)
	}
	return res, err
}
