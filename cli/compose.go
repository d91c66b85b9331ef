package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/nosproject/nos/assemble"
	"github.com/nosproject/nos/compose"
	"github.com/nosproject/nos/instance"
	"github.com/nosproject/nos/network"
	"github.com/nosproject/nos/store"
	"github.com/nosproject/nos/volume"
)

// composeFlags are the flags every compose verb shares.
type composeFlags struct {
	files    []string
	project  string
	profiles []string
	strict   bool
}

func newComposeCmd(e *env) *cobra.Command {
	var f composeFlags
	cmd := &cobra.Command{
		Use:   "compose [-f FILE] [-p NAME] COMMAND",
		Short: "Run a whole application from a Compose file: up, down, ps, logs, stop, start, restart, config",
		Long: `Compose reads a Compose file (compose.yaml, compose.yml, docker-compose.yml or
docker-compose.yaml in the current directory, or -f FILE) and runs each
service as a nos instance named PROJECT-SERVICE-1, on private networks
(PROJECT_default unless the file names others) where services find each
other by service name, with named volumes PROJECT_NAME. The project name is
-p, else the file's name:, else the directory's name.

Keys nos does not support are named on stderr and ignored (--strict: an
error). Private networks need root or CAP_NET_ADMIN.`,
		Example: `  nos compose up -d
  nos compose -f app.yaml -p shop ps
  nos compose logs -f web
  nos compose down -v`,
	}
	// Like docker compose's, these go before the verb (nos compose -f FILE
	// logs -f): the root traverses children, so a parent's own flags parse.
	pf := cmd.Flags()
	pf.StringArrayVarP(&f.files, "file", "f", nil, "Compose file (repeatable: merged in order; default: compose.yaml in the current directory)")
	pf.StringVarP(&f.project, "project-name", "p", "", "project name (default: the file's name:, else the directory's name)")
	pf.StringArrayVar(&f.profiles, "profile", nil, "enable a profile (repeatable)")
	pf.BoolVar(&f.strict, "strict", false, "fail on keys nos does not support instead of ignoring them")
	cmd.AddCommand(
		newComposeUpCmd(e, &f),
		newComposeDownCmd(e, &f),
		newComposePsCmd(e, &f),
		newComposeLogsCmd(e, &f),
		newComposeStopCmd(e, &f),
		newComposeStartCmd(e, &f),
		newComposeRestartCmd(e, &f),
		newComposeConfigCmd(e, &f),
	)
	return cmd
}

// logrusLine prints compose-go's own warnings (an obsolete version: key)
// as nos prints its warnings.
type logrusLine struct{}

func (logrusLine) Format(en *logrus.Entry) ([]byte, error) {
	return []byte("nos: compose: " + en.Message + "\n"), nil
}

// load reads the project and translates it; warnings go to stderr when
// warn is set.
func (f *composeFlags) load(cmd *cobra.Command, e *env, warn bool) (*types.Project, *compose.Plan, error) {
	logrus.SetOutput(e.stderr)
	logrus.SetFormatter(logrusLine{})
	logrus.SetLevel(logrus.WarnLevel)
	if !warn {
		logrus.SetOutput(io.Discard)
	}
	wd, err := os.Getwd()
	if err != nil {
		return nil, nil, err
	}
	env := os.Environ()
	if len(f.profiles) == 0 {
		if p := os.Getenv("COMPOSE_PROFILES"); p != "" {
			f.profiles = strings.Split(p, ",")
		}
	}
	p, err := compose.Load(cmd.Context(), compose.LoadOptions{Dir: wd, Files: f.files, Name: f.project, Env: env, Profiles: f.profiles})
	if err != nil {
		return nil, nil, err
	}
	plan, err := compose.Translate(p, compose.TranslateOptions{Strict: f.strict})
	if err != nil {
		return nil, nil, err
	}
	if warn {
		for _, w := range plan.Warnings {
			fmt.Fprintln(e.stderr, "nos: compose: "+w)
		}
	}
	return p, plan, nil
}

// engine opens what the backend needs.
// run loads the project (without repeating its warnings) and the engine,
// then does fn: the body of the verbs that act on a loaded plan.
func (f *composeFlags) run(cmd *cobra.Command, e *env, fn func(*compose.Engine, *compose.Plan) error) error {
	_, plan, err := f.load(cmd, e, false)
	if err != nil {
		return err
	}
	eng, err := e.composeEngine(cmd)
	if err != nil {
		return err
	}
	return fn(eng, plan)
}

func (e *env) composeEngine(cmd *cobra.Command) (*compose.Engine, error) {
	st, err := e.store()
	if err != nil {
		return nil, err
	}
	is, err := e.instances()
	if err != nil {
		return nil, err
	}
	vols, err := e.volumes()
	if err != nil {
		return nil, err
	}
	return &compose.Engine{B: &composeBackend{e: e, cmd: cmd, st: st, is: is, vols: vols}, Out: e.stderr}, nil
}

func newComposeUpCmd(e *env, f *composeFlags) *cobra.Command {
	var detach, build, orphans bool
	var accel string
	cmd := &cobra.Command{
		Use:   "up [-d] [--build] [SERVICE...]",
		Short: "Create and start the services (with their dependencies), in depends_on order",
		Long: `Up makes the project's networks and instances match the file: it builds the
images of services with build: that are missing (--build: always), creates
and starts each service after the services it depends on have met their
condition (service_started, service_healthy, service_completed_successfully),
leaves running instances whose configuration did not change alone, starts
stopped ones and recreates changed ones. Without -d it then shows every
service's output, prefixed with its name, until Ctrl-C, which stops them.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, plan, err := f.load(cmd, e, true)
			if err != nil {
				return err
			}
			eng, err := e.composeEngine(cmd)
			if err != nil {
				return err
			}
			if err := eng.Up(cmd.Context(), plan, compose.UpOptions{Services: args, Build: build, RemoveOrphans: orphans, Accel: accel}); err != nil {
				return err
			}
			if detach {
				return nil
			}
			fmt.Fprintln(e.stderr, "Attaching to the services' output (Ctrl-C stops them)")
			err = eng.Logs(cmd.Context(), plan, nil, e.stdout, true)
			if cmd.Context().Err() != nil {
				fmt.Fprintln(e.stderr, "Stopping")
				return eng.Stop(context.WithoutCancel(cmd.Context()), plan, nil, -1)
			}
			return err
		},
	}
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "start the services and leave them running")
	cmd.Flags().BoolVar(&build, "build", false, "build the images of services with build: even if they exist")
	cmd.Flags().BoolVar(&orphans, "remove-orphans", false, "remove instances of services the file no longer has")
	cmd.Flags().StringVar(&accel, "accel", "auto", "accelerator of new instances: auto, kvm or tcg")
	return cmd
}

func newComposeDownCmd(e *env, f *composeFlags) *cobra.Command {
	var vols, orphans bool
	cmd := &cobra.Command{
		Use:   "down [-v]",
		Short: "Stop and remove the project's instances and networks (-v: and its named volumes)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd, e, func(eng *compose.Engine, plan *compose.Plan) error {
				return eng.Down(cmd.Context(), plan, compose.DownOptions{Volumes: vols, RemoveOrphans: orphans})
			})
		},
	}
	cmd.Flags().BoolVarP(&vols, "volumes", "v", false, "also remove the named volumes the file declares (not external ones)")
	cmd.Flags().BoolVar(&orphans, "remove-orphans", false, "accepted for docker compose's sake: down removes every instance of the project")
	return cmd
}

func newComposePsCmd(e *env, f *composeFlags) *cobra.Command {
	var all, quiet bool
	var format string
	cmd := &cobra.Command{
		Use:   "ps [-a] [-q] [SERVICE...]",
		Short: "List the project's instances",
		RunE: func(cmd *cobra.Command, args []string) error {
			_, plan, err := f.load(cmd, e, false)
			if err != nil {
				return err
			}
			eng, err := e.composeEngine(cmd)
			if err != nil {
				return err
			}
			ins, err := eng.List(cmd.Context(), plan, args)
			if err != nil {
				return err
			}
			type row struct {
				psRow
				Service string `json:"Service"`
				Project string `json:"Project"`
			}
			var rows []row
			for _, in := range ins {
				if !all && !in.Running() {
					continue
				}
				rows = append(rows, row{psRow: makePsRow(in), Service: in.Config.Labels[compose.LabelService], Project: plan.Project})
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
			fmt.Fprintln(w, "NAME\tIMAGE\tSERVICE\tSTATUS\tPORTS")
			for _, r := range rows {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.Names, r.Image, r.Service, r.Status, r.Ports)
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "show stopped instances too")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print IDs only")
	cmd.Flags().StringVar(&format, "format", "", "format with a Go template (nos ps's fields and .Service, .Project) or 'json'")
	return cmd
}

func newComposeLogsCmd(e *env, f *composeFlags) *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs [-f] [SERVICE...]",
		Short: "Show the services' output, each line prefixed with its service",
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd, e, func(eng *compose.Engine, plan *compose.Plan) error {
				return eng.Logs(cmd.Context(), plan, args, e.stdout, follow)
			})
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new output until the instances stop")
	return cmd
}

func newComposeStopCmd(e *env, f *composeFlags) *cobra.Command {
	var secs int
	cmd := &cobra.Command{
		Use:   "stop [-t SECONDS] [SERVICE...]",
		Short: "Stop the services' instances, dependents first",
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd, e, func(eng *compose.Engine, plan *compose.Plan) error {
				return eng.Stop(cmd.Context(), plan, args, composeTimeout(cmd, secs))
			})
		},
	}
	cmd.Flags().IntVarP(&secs, "timeout", "t", 10, "seconds to wait before forcing the VMs off (default: each instance's stop_grace_period)")
	return cmd
}

func composeTimeout(cmd *cobra.Command, secs int) time.Duration {
	if !cmd.Flags().Changed("timeout") {
		return -1
	}
	return time.Duration(max(secs, 0)) * time.Second
}

func newComposeStartCmd(e *env, f *composeFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "start [SERVICE...]",
		Short: "Start the services' stopped instances, in depends_on order",
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd, e, func(eng *compose.Engine, plan *compose.Plan) error {
				return eng.Start(cmd.Context(), plan, args)
			})
		},
	}
}

func newComposeRestartCmd(e *env, f *composeFlags) *cobra.Command {
	var secs int
	cmd := &cobra.Command{
		Use:   "restart [-t SECONDS] [SERVICE...]",
		Short: "Stop and start the services' instances",
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd, e, func(eng *compose.Engine, plan *compose.Plan) error {
				return eng.Restart(cmd.Context(), plan, args, composeTimeout(cmd, secs))
			})
		},
	}
	cmd.Flags().IntVarP(&secs, "timeout", "t", 10, "seconds to wait before forcing the VMs off (default: each instance's stop_grace_period)")
	return cmd
}

func newComposeConfigCmd(e *env, f *composeFlags) *cobra.Command {
	var services bool
	cmd := &cobra.Command{
		Use:   "config [--services]",
		Short: "Check the file and print it resolved (interpolated, merged, normalized); unsupported keys on stderr",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, plan, err := f.load(cmd, e, true)
			if err != nil {
				return err
			}
			if services {
				for _, s := range plan.Services {
					fmt.Fprintln(e.stdout, s.Name)
				}
				return nil
			}
			b, err := p.MarshalYAML()
			if err != nil {
				return err
			}
			_, err = e.stdout.Write(b)
			return err
		},
	}
	cmd.Flags().BoolVar(&services, "services", false, "print the services' names, in start order")
	return cmd
}

// composeBackend is compose.Backend on nos's store, instances, networks
// and volumes, doing what the verbs build, run, stop, rm, network and
// volume do.
type composeBackend struct {
	e    *env
	cmd  *cobra.Command
	st   *store.Store
	is   *instance.Instances
	vols *volume.Store
}

var _ compose.Backend = (*composeBackend)(nil)

func (b *composeBackend) ImageDigest(ctx context.Context, ref string) (string, error) {
	img, err := b.st.Resolve(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("%w: %w", err, compose.ErrNoImage)
	}
	if err != nil {
		return "", err
	}
	return img.Manifest.Digest.String(), nil
}

func (b *composeBackend) Build(ctx context.Context, bd compose.Build) (string, error) {
	o := assemble.Options{Log: b.e.logger(), Needs: bd.Needs, FromOCI: bd.FromOCI}
	if bd.Context != "" {
		fi, err := os.Stat(bd.Context)
		if err != nil {
			return "", fmt.Errorf("build context: %w", err)
		}
		o.Source = bd.Context
		if fi.IsDir() {
			o.Source, o.Dir = ".", bd.Context // a Go main package, resolved in its module
		}
	}
	var err error
	if o.Name, o.Tag, err = store.ParseReference(bd.Tag); err != nil {
		return "", err
	}
	home, err := b.e.homeDir()
	if err != nil {
		return "", err
	}
	o.KernelFor = kernelSelector(b.e, home).For
	if o.Init, err = assemble.FindInit(); err != nil {
		return "", err
	}
	res, err := assemble.Image(ctx, b.st, o)
	if err != nil {
		return "", err
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(b.e.stderr, "nos: warning: %s\n", w)
	}
	return res.Digest, nil
}

func (b *composeBackend) Instances(ctx context.Context, project string) ([]*instance.Instance, error) {
	all, err := b.is.List()
	if err != nil {
		return nil, err
	}
	var out []*instance.Instance
	for _, in := range all {
		if in.Config.Labels[compose.LabelProject] == project {
			out = append(out, in)
		}
	}
	return out, nil
}

func (b *composeBackend) Get(ctx context.Context, id string) (*instance.Instance, error) {
	return b.is.Get(id)
}

func (b *composeBackend) Create(ctx context.Context, o instance.Options) (*instance.Instance, error) {
	in, note, err := instance.Create(ctx, b.st, b.is, o)
	if err != nil {
		return nil, err
	}
	if note != "" {
		fmt.Fprintln(b.e.stderr, note)
	}
	return in, nil
}

func (b *composeBackend) Start(ctx context.Context, in *instance.Instance) error {
	if err := instance.Start(ctx, in, monitorCmd(b.e, in.Config.ID)); err != nil {
		return err
	}
	if cur, err := b.is.Get(in.Config.ID); err == nil && cur.State.Status == instance.StatusCrashed {
		return fmt.Errorf("instance %s did not start: %s", cur.Config.Name, cur.State.Error)
	}
	return nil
}

func (b *composeBackend) Stop(ctx context.Context, in *instance.Instance, timeout time.Duration) error {
	return instance.Stop(ctx, in, timeout)
}

func (b *composeBackend) Remove(ctx context.Context, in *instance.Instance) error {
	_, err := b.is.Remove(ctx, in.Config.ID, true)
	return err
}

func (b *composeBackend) NetworkExists(ctx context.Context, name string) (bool, error) {
	n, err := b.is.Network(name)
	if errors.Is(err, network.ErrNotFound) {
		return false, nil
	}
	return err == nil && n.Name == name, err
}

func (b *composeBackend) CreateNetwork(ctx context.Context, n compose.Network) error {
	_, err := b.is.CreateNetwork(ctx, n.Name, network.CreateOptions{Subnet: n.Subnet, Gateway: n.Gateway, Internal: n.Internal})
	return err
}

func (b *composeBackend) RemoveNetwork(ctx context.Context, name string) error {
	_, err := b.is.RemoveNetwork(ctx, name)
	return err
}

func (b *composeBackend) VolumeExists(ctx context.Context, name string) (bool, error) {
	_, err := b.vols.Get(name)
	if errors.Is(err, volume.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

func (b *composeBackend) RemoveVolume(ctx context.Context, name string) error {
	return removeVolume(b.cmd, b.vols, b.is, name, false)
}

func (b *composeBackend) Logs(ctx context.Context, in *instance.Instance, stdout, stderr io.Writer, follow bool) error {
	return instance.Logs(ctx, in, stdout, stderr, instance.LogOptions{Tail: -1, Follow: follow})
}
