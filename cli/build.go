package cli

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/nosproject/nos/internal/home"

	"github.com/spf13/cobra"

	"github.com/nosproject/nos/assemble"
	"github.com/nosproject/nos/instance"
	"github.com/nosproject/nos/kernel/config"
	"github.com/nosproject/nos/kernel/kbuild"
	"github.com/nosproject/nos/store"
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
	rootfs     string
	rootDisk   bool
	fromOCI    string
	adds       []string
	entrypoint string
	user       string
	caps       []string
	noExec     bool
}

func newBuildCmd(e *env) *cobra.Command {
	var f buildFlags
	var reproduce bool
	cmd := &cobra.Command{
		Use:   "build [flags] SOURCE | --rootfs DIR | --from-oci REF",
		Short: "Build a Go program, any Linux program, a root directory or a container image into an image",
		Long: `Build packages an application into an image: a kernel, an initramfs with the
nos init, the application's files, and a config. It prints the image digest.

SOURCE is a Go main package (a directory, ./cmd/x, or an import path in the
current module), which is compiled, or a Linux amd64 program (a path, or a
name on PATH). A Go program or a static executable goes into the initramfs.
A dynamically linked program comes with its interpreter and every library it
needs (found as ld.so finds them); --add brings what it opens at run time
(configuration, data, NSS or gconv modules).

--rootfs DIR takes a prepared root tree (for example made by debootstrap),
with --entrypoint the command to run in it. --from-oci REF takes a container
image: an OCI layout directory, a docker save or OCI archive, or a registry
reference (credentials from ~/.docker/config.json); its entrypoint, command,
environment, working directory, user and ports become the image's.

Programs with libraries, root trees and container images go on a read-only
erofs root disk (made with mkfs.erofs, from erofs-utils): the guest reads
the files it uses from the disk instead of holding all of them in memory,
and needs a kernel with the blk feature. The application runs as --user (or
the container image's user) with no capabilities but those of --cap-add.`,
		Example: `  nos build -t hello ./examples/hello
  nos build -t web:v1 --port 8080 -e GREETING=hi ./examples/httpserver
  nos build -t nginx --add ./nginx.conf:/etc/nginx/nginx.conf --entrypoint '["/usr/sbin/nginx","-g","daemon off;"]' /usr/sbin/nginx
  nos build -t app --from-oci localhost:5000/app:1.0 --user 1000
  nos build -t debian --rootfs ./rootfs --entrypoint /usr/bin/python3 --arg -m --arg http.server`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			source := ""
			if len(args) == 1 {
				source = args[0]
			}
			if err := checkTempDir(); err != nil {
				return err
			}
			o, err := f.options(e, source, cmd.Flags().Changed("features"))
			if err != nil {
				return err
			}
			st, err := e.store()
			if err != nil {
				return err
			}
			res, err := assemble.Image(cmd.Context(), st, o)
			if err != nil {
				return err
			}
			for _, w := range res.Warnings {
				fmt.Fprintf(e.stderr, "nos: warning: %s\n", w)
			}
			fmt.Fprintf(e.stderr, "built %s:%s (%s, kernel %s)\n", res.Name, res.Tag, humanSize(res.Size), res.Kernel.Version)
			fmt.Fprintln(e.stdout, res.Digest)
			if reproduce {
				return reproduceBuild(cmd.Context(), e, o, res.Digest)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&reproduce, "reproduce", false, "build the image a second time, from the same inputs into an empty store, and fail unless the digests are the same")
	fl.StringVarP(&f.tag, "tag", "t", "", "image name and optional tag, name[:tag] (default: the program's name, tag latest)")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "set an environment variable in the image, KEY=VALUE (repeatable)")
	fl.StringArrayVar(&f.args, "arg", nil, "default argument for the application (repeatable, in order)")
	fl.StringArrayVar(&f.ports, "port", nil, "port the application listens on, PORT[/tcp|/udp] (repeatable)")
	fl.StringVarP(&f.memory, "memory", "m", "", "default guest memory, e.g. 256m or 1g")
	fl.IntVar(&f.cpus, "cpus", 0, "default number of virtual CPUs")
	fl.StringVarP(&f.workdir, "workdir", "w", "", "working directory of the application in the guest")
	fl.StringVar(&f.kernel, "kernel", "", "kernel to boot: a file, or the ID of a kernel nos built or imported (default: a built kernel with the --features, then the one nos fetched, then the newest in /boot)")
	fl.StringSliceVar(&f.features, "features", config.DefaultFeatures, "kernel features the application needs: "+strings.Join(config.Features(), ", ")+", or none (default net, and net,blk for a root disk); nos picks a kernel built with them, and builds one when they are given and none exists")
	fl.StringArrayVar(&f.kernelArgs, "kernel-arg", nil, "extra kernel command-line argument, e.g. loglevel=7 (repeatable)")
	fl.StringVar(&f.rootfs, "rootfs", "", "build from this root directory tree (with --entrypoint)")
	fl.BoolVar(&f.rootDisk, "root-disk", false, "put a Go program or static executable on a read-only root disk instead of the initramfs: less guest memory, a larger image, the kernel with block devices")
	fl.StringVar(&f.fromOCI, "from-oci", "", "build from a container image: OCI layout directory, docker save/OCI tarball, or registry reference")
	fl.StringArrayVar(&f.adds, "add", nil, "add a host file or directory, HOST_PATH[:GUEST_PATH] (repeatable)")
	fl.StringVar(&f.entrypoint, "entrypoint", "", `command to run, as a JSON array ('["/bin/app","-v"]') or words`)
	fl.StringVarP(&f.user, "user", "u", "", "user the application runs as, USER[:GROUP] by name or number (default: the container image's, else root)")
	fl.BoolVar(&f.noExec, "no-exec", false, "refuse nos exec in instances of the image (its init refuses too)")
	fl.StringArrayVar(&f.caps, "cap-add", nil, "capability the application keeps, e.g. NET_BIND_SERVICE (repeatable; default none)")
	return cmd
}

func (f *buildFlags) options(e *env, source string, explicitFeatures bool) (assemble.Options, error) {
	o := assemble.Options{Source: source, Args: f.args, Ports: f.ports, CPUs: f.cpus, WorkDir: f.workdir, KernelArgs: f.kernelArgs, Log: e.logger(),
		Rootfs: f.rootfs, FromOCI: f.fromOCI, RootDisk: f.rootDisk, Adds: f.adds, User: f.user, Caps: f.caps, NoExec: f.noExec, Packages: assemble.HostPackages()}
	ep, err := assemble.ParseEntrypoint(f.entrypoint)
	if err != nil {
		return o, err
	}
	o.Entrypoint = ep
	if f.tag != "" {
		name, tag, err := store.ParseReference(f.tag)
		if err != nil {
			return o, err
		}
		o.Name, o.Tag = name, tag
	}
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
	if explicitFeatures {
		if o.Needs, err = kbuild.ParseFeatures(f.features); err != nil {
			return o, err
		}
	}
	sel := kernelSelector(e, home)
	sel.Named, sel.Explicit = f.kernel, explicitFeatures
	o.KernelFor = sel.For
	if o.Init, err = assemble.FindInit(); err != nil {
		return o, err
	}
	return o, nil
}

func kernelCache(dir string) string { return home.Layout{Root: dir}.FetchedKernels() }

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

// reproduceBuild builds o again into an empty, temporary store and
// compares the manifest digest with want.
func reproduceBuild(ctx context.Context, e *env, o assemble.Options, want string) error {
	dir, err := os.MkdirTemp("", "nos-reproduce-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st, err := store.Open(dir)
	if err != nil {
		return err
	}
	res, err := assemble.Image(ctx, st, o)
	if err != nil {
		return fmt.Errorf("--reproduce: the second build failed: %w", err)
	}
	if got := res.Digest; got != want {
		return fmt.Errorf("--reproduce: not reproducible: the second build in an empty store is %s, the first %s", got, want)
	}
	fmt.Fprintf(e.stderr, "reproduced: a second build in an empty store has the same digest %s\n", want)
	return nil
}
