package cli

import (
	"fmt"
	"os"
	"runtime/debug"

	"github.com/nosproject/nos/bootable"

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
			if withVolumes {
				names, err := pruneVolumes(cmd, e)
				for _, n := range names {
					fmt.Fprintf(e.stdout, "Removed volume %s\n", n)
				}
				return err
			}
			return nil
		},
	}
	prune.Flags().BoolVar(&withVolumes, "volumes", false, "also remove the volumes no instance names")
	cmd.AddCommand(prune)
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
