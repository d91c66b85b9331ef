package cli

import (
	"fmt"
	"os"
	"runtime/debug"
	"slices"

	"github.com/nosproject/nos/bootable"
	"github.com/nosproject/nos/instance"

	digest "github.com/opencontainers/go-digest"

	"github.com/spf13/cobra"

	"github.com/nosproject/nos/kernel"
)

func newSystemCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "system", Short: "Manage nos's data"}
	var withVolumes bool
	prune := &cobra.Command{
		Use:   "prune [--volumes]",
		Short: "Remove stopped instances, networks no instance is on, blobs no image refers to and leftovers of interrupted builds (--volumes: and volumes no instance names)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := e.layout()
			if err != nil {
				return err
			}
			is, err := e.instances()
			if err != nil {
				return err
			}
			removed, err := is.Prune(cmd.Context())
			for _, id := range removed {
				fmt.Fprintf(e.stdout, "Removed instance %s\n", id)
			}
			if err != nil {
				return err
			}
			st, err := e.store()
			if err != nil {
				return err
			}
			gone, freed, err := st.GC(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Deleted %d blobs, reclaimed %s\n", len(gone), humanSize(freed))
			nets, err := is.PruneNetworks(cmd.Context())
			for _, n := range nets {
				fmt.Fprintf(e.stdout, "Removed network %s\n", n)
			}
			if err != nil {
				return err
			}
			if _, err := bootable.PruneUnpacked(h.UnpackedKernels(), func(hex string) bool {
				_, err := os.Stat(st.BlobPath(digest.NewDigestFromEncoded(digest.SHA256, hex)))
				return err == nil
			}); err != nil {
				return err
			}
			states, sfreed, err := instance.PruneSnapshots(h.Snapshots(), func(d string) bool {
				dg, err := digest.Parse(d)
				if err != nil {
					return false
				}
				_, err = os.Stat(st.BlobPath(dg))
				return err == nil
			})
			if err != nil {
				return err
			}
			if states > 0 {
				fmt.Fprintf(e.stdout, "Deleted %d saved VM states, reclaimed %s\n", states, humanSize(sfreed))
			}
			if !withVolumes {
				// What killed volume creates left, even without --volumes.
				vs, err := e.volumes()
				if err != nil {
					return err
				}
				return vs.PruneLeftovers(cmd.Context())
			}
			names, err := pruneVolumes(cmd, e)
			for _, n := range names {
				fmt.Fprintf(e.stdout, "Removed volume %s\n", n)
			}
			return err
		},
	}
	prune.Flags().BoolVar(&withVolumes, "volumes", false, "also remove the volumes no instance names")
	cmd.AddCommand(prune, newSystemCheckCmd(e))
	return cmd
}

func newSystemCheckCmd(e *env) *cobra.Command {
	var repair bool
	cmd := &cobra.Command{
		Use:   "check [--repair]",
		Short: "Verify the image store and the volumes: every blob's digest, every image's blobs, leftovers of interrupted writes",
		Long: `Check verifies, under the store's lock, that index.json parses and that
every image it lists has its manifest, config and layers; that every blob
hashes to its name; that nothing else lies among the blobs and nothing is
left in the store's tmp/; that every volume has readable metadata and
its disk; and that every instance's config.json and state.json parse. It prints one line per finding and exits 1 when damage
remains; leftovers of interrupted operations (temporary files, blobs no
image refers to, killed volume creates) are listed but are not damage:
nos system prune removes them.

With --repair it removes what is torn or unreferenced: corrupt and stray
blobs, leftovers of interrupted writes, blobs no image refers to (what
nos system prune would remove), the tags of images that lack a blob,
volumes without metadata or disk that no instance holds, and instance
directories without a readable config that no monitor holds; each line
says what it did.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := e.store()
			if err != nil {
				return err
			}
			ps, err := st.Check(cmd.Context(), repair)
			if err != nil {
				return err
			}
			vs, err := e.volumes()
			if err != nil {
				return err
			}
			vps, err := vs.Check(cmd.Context(), repair)
			if err != nil {
				return err
			}
			is, err := e.instances()
			if err != nil {
				return err
			}
			ips, err := is.Check(cmd.Context(), repair)
			if err != nil {
				return err
			}
			// Damage makes the exit code 1; leftovers (what interrupted
			// operations leave and prune removes) are listed only.
			var damaged, leftovers, fixed int
			for _, p := range slices.Concat(ps, vps, ips) {
				line := p.Kind + "\t" + p.Path + "\t" + p.Detail
				if p.Repaired != "" {
					line += "\t" + p.Repaired
				}
				fmt.Fprintln(e.stdout, line)
				switch {
				case p.Fixed():
					fixed++
				case p.Leftover:
					leftovers++
				default:
					damaged++
				}
			}
			fmt.Fprintf(e.stderr, "nos system check: %d problems, %d leftovers of interrupted operations (nos system prune removes them), %d repaired\n", damaged, leftovers, fixed)
			if damaged > 0 {
				return &exitError{code: 1, err: fmt.Errorf("system check: %d problems (nos system check --repair removes what is torn)", damaged)}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&repair, "repair", false, "remove what is torn or unreferenced, and say what was done")
	return cmd
}

func newKernelCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "kernel", Short: "Manage the kernels images boot"}
	var pkg string
	fetch := &cobra.Command{
		Use:   "fetch",
		Short: "Download Debian's cloud kernel into nos's cache (not into /boot)",
		Long: `Fetch downloads a Debian kernel package with apt-get download and unpacks it
with dpkg-deb into nos's own cache, where nos build finds it. The host's
/boot and bootloader are not touched.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			home, err := e.homeDir()
			if err != nil {
				return err
			}
			k, err := kernel.Fetch(cmd.Context(), kernelCache(home), pkg)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s\t%s\n", k.Version, k.Path)
			return nil
		},
	}
	fetch.Flags().StringVar(&pkg, "package", "linux-image-cloud-amd64", "Debian kernel package to fetch")
	cmd.AddCommand(fetch, newKernelLsCmd(e), newKernelBuildCmd(e), newKernelRmCmd(e), newKernelImportCmd(e))
	return cmd
}

// Version is set by the linker (-X) for releases; otherwise the module
// version from the build info is shown.
var Version = ""

func newVersionCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the nos version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, args []string) {
			goVersion := ""
			if bi, ok := debug.ReadBuildInfo(); ok {
				goVersion = bi.GoVersion
			}
			fmt.Fprintf(e.stdout, "nos %s (%s)\n", nosVersion(), goVersion)
		},
	}
}

// nosVersion is Version, else the module version of the build, else "dev".
func nosVersion() string {
	v := Version
	if bi, ok := debug.ReadBuildInfo(); ok && v == "" {
		v = bi.Main.Version
	}
	if v == "" || v == "(devel)" {
		v = "dev"
	}
	return v
}
