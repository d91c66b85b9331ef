package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/instance"
	"github.com/nosproject/nos/store"
)

func newImagesCmd(e *env) *cobra.Command {
	var quiet bool
	var format string
	cmd := &cobra.Command{
		Use:   "images",
		Short: "List images",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := e.store()
			if err != nil {
				return err
			}
			imgs, err := st.Images(cmd.Context())
			if err != nil {
				return err
			}
			if quiet {
				for _, im := range imgs {
					fmt.Fprintln(e.stdout, shortDigest(im.Manifest.Digest.String()))
				}
				return nil
			}
			if format != "" {
				var rows []imageRow
				for _, im := range imgs {
					rows = append(rows, imageRow{Name: im.Name, Tag: im.Tag, Digest: im.Manifest.Digest.String(), ID: shortDigest(im.Manifest.Digest.String()), Size: humanSize(im.Size), Created: im.Created.Format(time.RFC3339)})
				}
				return printFormatted(e.stdout, format, rows)
			}
			w := tabwriter.NewWriter(e.stdout, 0, 0, 3, ' ', 0)
			fmt.Fprintln(w, "NAME\tTAG\tDIGEST\tSIZE\tCREATED")
			for _, im := range imgs {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", im.Name, im.Tag, shortDigest(im.Manifest.Digest.String()), humanSize(im.Size), ago(im.Created))
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print short digests only")
	cmd.Flags().StringVar(&format, "format", "", "format with a Go template (fields: .Name .Tag .Digest .ID .Size .CreatedAt) or 'json'")
	return cmd
}

// imageRow is what `nos images --format` templates see.
type imageRow struct {
	Name    string `json:"Name"`
	Tag     string `json:"Tag"`
	Digest  string `json:"Digest"`
	ID      string `json:"ID"`
	Size    string `json:"Size"`
	Created string `json:"CreatedAt"`
}

// shortDigest is the first 12 hex digits, as docker shows IDs.
func shortDigest(d string) string {
	if len(d) > 7+12 {
		return d[7 : 7+12]
	}
	return d
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return "less than a minute ago"
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute") + " ago"
	case d < 48*time.Hour:
		return plural(int(d/time.Hour), "hour") + " ago"
	default:
		return plural(int(d/(24*time.Hour)), "day") + " ago"
	}
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

func newRmiCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "rmi IMAGE [IMAGE...]",
		Short: "Remove images and the blobs no other image uses",
		Long: `Rmi removes tags: name[:tag] removes that tag; a digest or an unambiguous
digest prefix removes every tag of that image. Blobs no remaining image
refers to are deleted.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := e.store()
			if err != nil {
				return err
			}
			// Resolve everything first: a bad name must change nothing.
			for _, ref := range args {
				if _, err := st.Resolve(cmd.Context(), ref); err != nil {
					return err
				}
			}
			for _, ref := range args {
				removed, err := st.Untag(cmd.Context(), ref)
				if err != nil {
					return err
				}
				for _, im := range removed {
					fmt.Fprintf(e.stdout, "Untagged: %s:%s\n", im.Name, im.Tag)
				}
			}
			gone, freed, err := st.GC(cmd.Context())
			if err != nil {
				return err
			}
			for _, d := range gone {
				fmt.Fprintf(e.stdout, "Deleted: %s\n", d)
			}
			if len(gone) > 0 {
				fmt.Fprintf(e.stdout, "Reclaimed %s\n", humanSize(freed))
			}
			return nil
		},
	}
}

func newTagCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "tag SOURCE TARGET",
		Short: "Give an image another name:tag",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, tag, err := store.ParseReference(args[1])
			if err != nil {
				return err
			}
			st, err := e.store()
			if err != nil {
				return err
			}
			src, err := st.Resolve(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return st.Tag(cmd.Context(), name, tag, src.Manifest, time.Now())
		},
	}
}

// inspectedImage is what `nos inspect IMAGE` prints.
type inspectedImage struct {
	Name     string       `json:"name"`
	Tag      string       `json:"tag"`
	Digest   string       `json:"digest"`
	Size     int64        `json:"size"`
	Created  time.Time    `json:"created"`
	Config   image.Config `json:"config"`
	Manifest any          `json:"manifest"`
}

func newInspectCmd(e *env) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect [--format F] INSTANCE|IMAGE...",
		Short: "Show instances (config, state, ports, exit code) or images as JSON",
		Long: `Inspect shows each named instance - or, when no instance has that name or ID,
image - as JSON: for instances the config, state, monitor and QEMU PIDs,
ports, exit code, restart count and start/finish times.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out []any
			for _, ref := range args {
				v, err := inspectOne(cmd, e, ref)
				if err != nil {
					return err
				}
				out = append(out, v)
			}
			return printInspected(e.stdout, format, out)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "format each result with a Go template, e.g. '{{.State.ExitCode}}'")
	return cmd
}

// inspectedInstance is what `nos inspect INSTANCE` prints.
type inspectedInstance struct {
	ID           string          `json:"ID"`
	Name         string          `json:"Name"`
	Dir          string          `json:"Dir"`
	MonitorAlive bool            `json:"MonitorAlive"`
	Config       instance.Config `json:"Config"`
	State        instance.State  `json:"State"`
	Mounts       []mountInfo     `json:"Mounts"`
}

// mountInfo is one mount as docker inspect shows it.
type mountInfo struct {
	Type        string `json:"Type"`
	Name        string `json:"Name"`
	Source      string `json:"Source"`
	Destination string `json:"Destination"`
	Mode        string `json:"Mode"`
	RW          bool   `json:"RW"`
}

func inspectOne(cmd *cobra.Command, e *env, ref string) (any, error) {
	is, err := e.instances()
	if err != nil {
		return nil, err
	}
	in, ierr := is.Get(ref)
	if ierr == nil {
		vols, err := e.volumes()
		if err != nil {
			return nil, err
		}
		ii := inspectedInstance{ID: in.Config.ID, Name: in.Config.Name, Dir: in.Dir, MonitorAlive: in.MonitorAlive, Config: in.Config, State: in.State, Mounts: []mountInfo{}}
		for _, v := range in.Config.Volumes {
			mode := "rw"
			if v.ReadOnly {
				mode = "ro"
			}
			ii.Mounts = append(ii.Mounts, mountInfo{Type: "volume", Name: v.Name, Source: vols.DiskOf(v.Name), Destination: v.Target, Mode: mode, RW: !v.ReadOnly})
		}
		for _, b := range in.Config.Binds {
			mode := "rw"
			if b.ReadOnly {
				mode = "ro"
			}
			ii.Mounts = append(ii.Mounts, mountInfo{Type: "bind", Source: b.Source, Destination: b.Target, Mode: mode, RW: !b.ReadOnly})
		}
		return ii, nil
	}
	if !errors.Is(ierr, instance.ErrNotFound) {
		return nil, ierr
	}
	st, err := e.store()
	if err != nil {
		return nil, err
	}
	im, err := inspectImage(cmd, st, ref)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%q: no such instance or image: %w", ref, err)
	}
	return im, err
}

func inspectImage(cmd *cobra.Command, st *store.Store, ref string) (inspectedImage, error) {
	im, err := st.Resolve(cmd.Context(), ref)
	if err != nil {
		return inspectedImage{}, err
	}
	man, err := st.Manifest(im.Manifest.Digest)
	if err != nil {
		return inspectedImage{}, err
	}
	b, err := st.ReadBlob(man.Config.Digest)
	if err != nil {
		return inspectedImage{}, err
	}
	ii := inspectedImage{Name: im.Name, Tag: im.Tag, Digest: im.Manifest.Digest.String(), Size: im.Size, Created: im.Created, Manifest: man}
	if err := json.Unmarshal(b, &ii.Config); err != nil {
		return ii, fmt.Errorf("image config: %w", err)
	}
	return ii, nil
}
