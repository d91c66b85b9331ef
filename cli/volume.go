package cli

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/nosproject/nos/instance"
	"github.com/nosproject/nos/volume"
)

func (e *env) volumes() (*volume.Store, error) {
	l, err := e.layout()
	if err != nil {
		return nil, err
	}
	return volume.Open(l.Volumes())
}

// volumeRow is one volume as ls and inspect show it.
type volumeRow struct {
	Name             string    `json:"Name"`
	Driver           string    `json:"Driver"`
	Mountpoint       string    `json:"Mountpoint"` // the disk image on the host
	Size             int64     `json:"Size"`       // apparent size, bytes
	SizeOnDisk       int64     `json:"SizeOnDisk"` // allocated, bytes
	CreatedAt        time.Time `json:"CreatedAt"`
	Clean            bool      `json:"Clean"`
	LastCleanUnmount time.Time `json:"LastCleanUnmount,omitzero"`
	Attached         bool      `json:"Attached"`
	UsedBy           []string  `json:"UsedBy"`
}

func makeVolumeRow(v *volume.Volume, users []*instance.Instance) volumeRow {
	r := volumeRow{Name: v.Name, Driver: "local", Mountpoint: v.Disk(), Size: v.Size, SizeOnDisk: v.DiskUsage(),
		CreatedAt: v.Created, Clean: v.Clean, LastCleanUnmount: v.LastCleanUnmount, Attached: v.Attached(), UsedBy: []string{}}
	for _, in := range users {
		r.UsedBy = append(r.UsedBy, args0(in))
	}
	return r
}

func newVolumeCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "volume", Short: "Manage named volumes: ext4 disks that outlive instances"}
	var size, from string
	create := &cobra.Command{
		Use:   "create [--size 10g] [--from DIR|TARBALL] NAME",
		Short: "Create a named volume (a sparse ext4 disk image, made by mke2fs)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o := volume.CreateOptions{From: from}
			if size != "" {
				n, err := volume.ParseSize(size)
				if err != nil {
					return fmt.Errorf("--%w", err)
				}
				o.Size = n
			}
			st, err := e.volumes()
			if err != nil {
				return err
			}
			v, err := st.Create(cmd.Context(), args[0], o)
			if err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, v.Name)
			return nil
		},
	}
	create.Flags().StringVar(&size, "size", "", "size of the volume, e.g. 512m or 10g (default 10g; sparse: it takes only what is written)")
	create.Flags().StringVar(&from, "from", "", "populate the volume from a host directory or tar archive")

	var format string
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List volumes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			rows, err := volumeRows(e, nil)
			if err != nil {
				return err
			}
			if format != "" {
				return printFormatted(e.stdout, format, rows)
			}
			w := tabwriter.NewWriter(e.stdout, 0, 0, 3, ' ', 0)
			fmt.Fprintln(w, "NAME\tSIZE\tON DISK\tUSED BY")
			for _, r := range rows {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.Name, humanSize(r.Size), humanSize(r.SizeOnDisk), strings.Join(r.UsedBy, ","))
			}
			return w.Flush()
		},
	}
	ls.Flags().StringVar(&format, "format", "", "Go template or json")

	var iformat string
	inspect := &cobra.Command{
		Use:   "inspect NAME...",
		Short: "Show volumes as JSON: size, size on disk, instances using them, last clean unmount",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rows, err := volumeRows(e, args)
			if err != nil {
				return err
			}
			return printInspected(e.stdout, iformat, rows)
		},
	}
	inspect.Flags().StringVarP(&iformat, "format", "f", "", "Go template or json")

	var force bool
	rm := &cobra.Command{
		Use:   "rm [-f] NAME...",
		Short: "Remove volumes no instance uses (-f: also those only stopped instances name)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := e.volumes()
			if err != nil {
				return err
			}
			is, err := e.instances()
			if err != nil {
				return err
			}
			var failed error
			for _, name := range args {
				if err := removeVolume(cmd, st, is, name, force); err != nil {
					fmt.Fprintln(e.stderr, "nos: "+oneLine(err.Error()))
					failed = &exitError{code: 1}
					continue
				}
				fmt.Fprintln(e.stdout, name)
			}
			return failed
		},
	}
	rm.Flags().BoolVarP(&force, "force", "f", false, "remove even when stopped instances name the volume")

	prune := &cobra.Command{
		Use:   "prune",
		Short: "Remove every volume no instance names",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			names, err := pruneVolumes(cmd, e)
			if err != nil {
				return err
			}
			for _, n := range names {
				fmt.Fprintln(e.stdout, n)
			}
			return nil
		},
	}
	cmd.AddCommand(create, ls, inspect, rm, prune)
	return cmd
}

// volumeRows describes the named volumes (all of them when names is nil).
func volumeRows(e *env, names []string) ([]volumeRow, error) {
	st, err := e.volumes()
	if err != nil {
		return nil, err
	}
	is, err := e.instances()
	if err != nil {
		return nil, err
	}
	var vols []*volume.Volume
	if names == nil {
		if vols, err = st.List(); err != nil {
			return nil, err
		}
	}
	for _, n := range names {
		v, err := st.Get(n)
		if err != nil {
			return nil, err
		}
		vols = append(vols, v)
	}
	rows := []volumeRow{}
	for _, v := range vols {
		users, err := is.VolumeUsers(v.Name)
		if err != nil {
			return nil, err
		}
		rows = append(rows, makeVolumeRow(v, users))
	}
	return rows, nil
}

func removeVolume(cmd *cobra.Command, st *volume.Store, is *instance.Instances, name string, force bool) error {
	users, err := is.VolumeUsers(name)
	if err != nil {
		return err
	}
	for _, in := range users {
		if in.Running() {
			return fmt.Errorf("volume %s is used by running instance %s: stop it first: %w", name, args0(in), volume.ErrInUse)
		}
	}
	if len(users) > 0 && !force {
		var refs []string
		for _, in := range users {
			refs = append(refs, args0(in))
		}
		return fmt.Errorf("volume %s is used by instances %s: remove them (nos rm) or use volume rm -f: %w", name, strings.Join(refs, ", "), volume.ErrInUse)
	}
	return st.Remove(cmd.Context(), name)
}

// pruneVolumes removes the volumes no instance names, and what killed
// creates left.
func pruneVolumes(cmd *cobra.Command, e *env) ([]string, error) {
	st, err := e.volumes()
	if err != nil {
		return nil, err
	}
	is, err := e.instances()
	if err != nil {
		return nil, err
	}
	if err := st.PruneLeftovers(cmd.Context()); err != nil {
		return nil, err
	}
	vols, err := st.List()
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, v := range vols {
		users, err := is.VolumeUsers(v.Name)
		if err != nil {
			return removed, err
		}
		if len(users) > 0 {
			continue
		}
		if err := st.Remove(cmd.Context(), v.Name); err != nil {
			if errors.Is(err, volume.ErrInUse) {
				continue
			}
			return removed, err
		}
		removed = append(removed, v.Name)
	}
	return removed, nil
}
