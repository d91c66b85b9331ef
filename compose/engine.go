package compose

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nosproject/nos/instance"
)

// ErrNoImage: the image is not in the store (Backend.ImageDigest).
var ErrNoImage = errors.New("no such image")

// ErrDependency: a service a dependent waits for failed its condition.
var ErrDependency = errors.New("dependency failed")

// Backend is what the engine needs of nos: images, instances, networks
// and volumes. The CLI implements it on the instance, store and assemble
// packages; tests with a fake.
type Backend interface {
	// ImageDigest is the manifest digest of an image in the store, or an
	// error wrapping ErrNoImage.
	ImageDigest(ctx context.Context, ref string) (string, error)
	// Build makes b's image, as nos build does, and returns its digest.
	Build(ctx context.Context, b Build) (string, error)
	// Instances lists the project's instances (by LabelProject).
	Instances(ctx context.Context, project string) ([]*instance.Instance, error)
	// Get reads one instance again.
	Get(ctx context.Context, id string) (*instance.Instance, error)
	Create(ctx context.Context, o instance.Options) (*instance.Instance, error)
	Start(ctx context.Context, in *instance.Instance) error
	Stop(ctx context.Context, in *instance.Instance, timeout time.Duration) error
	Remove(ctx context.Context, in *instance.Instance) error
	// NetworkExists, CreateNetwork and RemoveNetwork manage private networks.
	NetworkExists(ctx context.Context, name string) (bool, error)
	CreateNetwork(ctx context.Context, n Network) error
	RemoveNetwork(ctx context.Context, name string) error
	// VolumeExists and RemoveVolume manage named volumes (instance
	// creation makes the missing ones).
	VolumeExists(ctx context.Context, name string) (bool, error)
	RemoveVolume(ctx context.Context, name string) error
	// Logs copies an instance's output; follow keeps on until it stops.
	Logs(ctx context.Context, in *instance.Instance, stdout, stderr io.Writer, follow bool) error
}

// Engine runs plans on a backend, reporting what it does to Out.
type Engine struct {
	B   Backend
	Out io.Writer
	// Poll is how often a dependency's condition is checked (default 250ms).
	Poll time.Duration
}

func (e *Engine) report(kind, name, what string) {
	if e.Out != nil {
		fmt.Fprintf(e.Out, "%s %s  %s\n", kind, name, what)
	}
}

// UpOptions tune Up.
type UpOptions struct {
	Services []string // only these and their dependencies; none: all
	// Build rebuilds the images of services with build:, even if present.
	Build bool
	// RemoveOrphans removes the project's instances of services the file
	// no longer has; otherwise they are reported.
	RemoveOrphans bool
	// Accel is the accelerator new instances boot with ("" is auto).
	Accel string
}

// Up makes the project's networks and instances match the plan, in
// dependency order, waiting for each service's conditions before starting
// the services that depend on it. What already matches is left alone: a
// running instance with the same config hash and image, a stopped one is
// started; one whose hash or image changed is recreated.
func (e *Engine) Up(ctx context.Context, p *Plan, o UpOptions) error {
	services, err := p.Select(o.Services)
	if err != nil {
		return err
	}
	if err := e.checkExternal(ctx, p, services); err != nil {
		return err
	}
	// Images first, as docker compose builds before it runs anything: a
	// build that fails leaves the project as it was.
	images := map[string][2]string{} // service → reference, digest
	for _, s := range services {
		ref, digest, err := e.image(ctx, s, o.Build)
		if err != nil {
			return fmt.Errorf("service %s: %w", s.Name, err)
		}
		images[s.Name] = [2]string{ref, digest}
	}
	if err := e.ensureNetworks(ctx, p, services); err != nil {
		return err
	}
	existing, err := e.B.Instances(ctx, p.Project)
	if err != nil {
		return err
	}
	if err := e.orphans(ctx, p, existing, o.RemoveOrphans); err != nil {
		return err
	}
	ids := map[string]string{} // service → instance ID
	for _, s := range services {
		for _, d := range s.DependsOn {
			if err := e.wait(ctx, s.Name, d, ids[d.Service]); err != nil {
				return err
			}
		}
		img := images[s.Name]
		id, err := e.upService(ctx, s, img[0], img[1], ofService(existing, s.Name), o)
		if err != nil {
			return fmt.Errorf("service %s: %w", s.Name, err)
		}
		ids[s.Name] = id
	}
	return nil
}

// checkExternal refuses external networks and volumes that do not exist,
// before anything is made.
func (e *Engine) checkExternal(ctx context.Context, p *Plan, services []Service) error {
	for _, n := range usedNetworks(p, services) {
		if !n.External {
			continue
		}
		ok, err := e.B.NetworkExists(ctx, n.Name)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("network %s is declared external, but there is no network %s: create it first (nos network create %s): %w", n.Key, n.Name, n.Name, ErrBadInput)
		}
	}
	for _, v := range p.Volumes {
		if !v.External || !volumeUsed(v, services) {
			continue
		}
		ok, err := e.B.VolumeExists(ctx, v.Name)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("volume %s is declared external, but there is no volume %s: create it first (nos volume create %s): %w", v.Key, v.Name, v.Name, ErrBadInput)
		}
	}
	return nil
}

func (e *Engine) ensureNetworks(ctx context.Context, p *Plan, services []Service) error {
	for _, n := range usedNetworks(p, services) {
		if n.External {
			continue
		}
		ok, err := e.B.NetworkExists(ctx, n.Name)
		if err != nil {
			return err
		}
		if ok {
			continue
		}
		if err := e.B.CreateNetwork(ctx, n); err != nil {
			return fmt.Errorf("network %s: %w", n.Name, err)
		}
		e.report("Network", n.Name, "Created")
	}
	return nil
}

// orphans reports, or removes, instances of services the plan lacks.
func (e *Engine) orphans(ctx context.Context, p *Plan, existing []*instance.Instance, remove bool) error {
	for _, in := range existing {
		svc := in.Config.Labels[LabelService]
		if _, ok := p.Service(svc); ok {
			continue
		}
		if !remove {
			e.report("Instance", in.Config.Name, fmt.Sprintf("is an orphan (service %q is not in the file; --remove-orphans removes it)", svc))
			continue
		}
		if err := e.stopRemove(ctx, in); err != nil {
			return err
		}
	}
	return nil
}

// upService brings one service's instance to the plan, and returns its ID.
func (e *Engine) upService(ctx context.Context, s Service, ref, digest string, have []*instance.Instance, o UpOptions) (string, error) {
	var keep *instance.Instance
	for _, in := range have {
		if keep == nil && in.Config.Labels[LabelHash] == s.Hash && in.Config.ImageDigest == digest && in.Config.Name == s.Options.Name {
			keep = in
			continue
		}
		what := "Removed"
		if keep == nil {
			what = "Recreated"
		}
		if err := e.stopRemove(ctx, in); err != nil {
			return "", err
		}
		if what == "Removed" {
			e.report("Instance", in.Config.Name, what)
		}
	}
	if keep != nil {
		if keep.Running() {
			e.report("Instance", keep.Config.Name, "Running")
			return keep.Config.ID, nil
		}
		if err := e.B.Start(ctx, keep); err != nil {
			return "", err
		}
		e.report("Instance", keep.Config.Name, "Started")
		return keep.Config.ID, nil
	}
	opts := s.Options
	opts.Image, opts.Accel = ref, o.Accel
	in, err := e.B.Create(ctx, opts)
	if err != nil {
		return "", err
	}
	what := "Created"
	if len(have) > 0 {
		what = "Recreated"
	}
	e.report("Instance", in.Config.Name, what)
	if err := e.B.Start(ctx, in); err != nil {
		return "", err
	}
	e.report("Instance", in.Config.Name, "Started")
	return in.Config.ID, nil
}

// image finds or builds the service's image: the reference to run and its
// digest.
func (e *Engine) image(ctx context.Context, s Service, rebuild bool) (string, string, error) {
	if s.Build == nil {
		d, err := e.B.ImageDigest(ctx, s.Image)
		return s.Image, d, err
	}
	ref := s.Image
	if !s.BuildAlways {
		if d, err := e.B.ImageDigest(ctx, s.Image); err == nil {
			return s.Image, d, nil
		} else if !errors.Is(err, ErrNoImage) {
			return "", "", err
		}
		ref = s.Build.Tag // a container image, built once under the service's tag
	}
	if !rebuild {
		d, err := e.B.ImageDigest(ctx, ref)
		if err == nil {
			return ref, d, nil
		}
		if !errors.Is(err, ErrNoImage) {
			return "", "", err
		}
	}
	e.report("Image", ref, "Building")
	d, err := e.B.Build(ctx, *s.Build)
	if err != nil {
		return "", "", fmt.Errorf("building %s: %w", ref, err)
	}
	e.report("Image", ref, "Built")
	return ref, d, nil
}

// wait blocks until the dependency's instance meets the condition.
func (e *Engine) wait(ctx context.Context, dependent string, d Dependency, id string) error {
	if id == "" {
		return nil // not part of this up (not required)
	}
	poll := e.Poll
	if poll <= 0 {
		poll = 250 * time.Millisecond
	}
	reported := false
	for {
		in, err := e.B.Get(ctx, id)
		if err != nil {
			return err
		}
		ok, err := met(in, d.Condition)
		if err != nil {
			return fmt.Errorf("service %s: %w: %s %v", dependent, ErrDependency, d.Service, err)
		}
		if ok {
			if reported {
				e.report("Instance", in.Config.Name, conditionDone(d.Condition))
			}
			return nil
		}
		if !reported {
			e.report("Instance", in.Config.Name, "Waiting ("+d.Condition+")")
			reported = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
}

func conditionDone(c string) string {
	switch c {
	case ConditionHealthy:
		return "Healthy"
	case ConditionCompleted:
		return "Exited"
	}
	return "Started"
}

// met says whether in meets condition, or why it never will.
func met(in *instance.Instance, condition string) (bool, error) {
	ended := !in.MonitorAlive && (in.State.Status == instance.StatusExited || in.State.Status == instance.StatusCrashed)
	switch condition {
	case ConditionCompleted:
		if !ended {
			return false, nil
		}
		if in.State.Status == instance.StatusCrashed || in.State.ExitCode != 0 {
			return false, fmt.Errorf("did not complete successfully (exit code %d)", in.State.ExitCode)
		}
		return true, nil
	case ConditionHealthy:
		if ended {
			return false, fmt.Errorf("stopped before it was healthy (exit code %d)", in.State.ExitCode)
		}
		if h := in.State.Health; h != nil {
			switch h.Status {
			case instance.HealthHealthy:
				return true, nil
			case instance.HealthUnhealthy:
				return false, fmt.Errorf("is unhealthy: %s", h.LastOutput)
			}
		}
		return false, nil
	}
	return in.Running() || ended, nil
}

func (e *Engine) stopRemove(ctx context.Context, in *instance.Instance) error {
	if in.MonitorAlive {
		if err := e.B.Stop(ctx, in, in.Config.StopTimeout); err != nil {
			return fmt.Errorf("stopping %s: %w", in.Config.Name, err)
		}
		e.report("Instance", in.Config.Name, "Stopped")
	}
	if err := e.B.Remove(ctx, in); err != nil {
		return fmt.Errorf("removing %s: %w", in.Config.Name, err)
	}
	return nil
}

// DownOptions tune Down.
type DownOptions struct {
	Volumes       bool // also remove the project's named volumes (not external ones)
	RemoveOrphans bool // no effect: down removes every instance of the project
}

// Down stops and removes the project's instances (dependents first), then
// its networks, and with Volumes its named volumes; external networks and
// volumes stay.
func (e *Engine) Down(ctx context.Context, p *Plan, o DownOptions) error {
	ins, err := e.B.Instances(ctx, p.Project)
	if err != nil {
		return err
	}
	for _, in := range reverseOrder(p, ins) {
		if err := e.stopRemove(ctx, in); err != nil {
			return err
		}
		e.report("Instance", in.Config.Name, "Removed")
	}
	for _, n := range p.Networks {
		if n.External {
			continue
		}
		ok, err := e.B.NetworkExists(ctx, n.Name)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if err := e.B.RemoveNetwork(ctx, n.Name); err != nil {
			return fmt.Errorf("network %s: %w", n.Name, err)
		}
		e.report("Network", n.Name, "Removed")
	}
	if !o.Volumes {
		return nil
	}
	for _, v := range p.Volumes {
		if v.External {
			continue
		}
		ok, err := e.B.VolumeExists(ctx, v.Name)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if err := e.B.RemoveVolume(ctx, v.Name); err != nil {
			return fmt.Errorf("volume %s: %w", v.Name, err)
		}
		e.report("Volume", v.Name, "Removed")
	}
	return nil
}

// Stop stops the services' instances, dependents first.
func (e *Engine) Stop(ctx context.Context, p *Plan, services []string, timeout time.Duration) error {
	ins, err := e.selected(ctx, p, services)
	if err != nil {
		return err
	}
	for _, in := range reverseOrder(p, ins) {
		if !in.MonitorAlive {
			continue
		}
		t := in.Config.StopTimeout
		if timeout >= 0 {
			t = timeout
		}
		if err := e.B.Stop(ctx, in, t); err != nil {
			return fmt.Errorf("stopping %s: %w", in.Config.Name, err)
		}
		e.report("Instance", in.Config.Name, "Stopped")
	}
	return nil
}

// Start starts the services' stopped instances in dependency order,
// waiting for each condition as up does.
func (e *Engine) Start(ctx context.Context, p *Plan, services []string) error {
	sel, err := p.Select(services)
	if err != nil {
		return err
	}
	ins, err := e.B.Instances(ctx, p.Project)
	if err != nil {
		return err
	}
	ids := map[string]string{}
	for _, s := range sel {
		have := ofService(ins, s.Name)
		if len(have) == 0 {
			continue
		}
		for _, d := range s.DependsOn {
			if err := e.wait(ctx, s.Name, d, ids[d.Service]); err != nil {
				return err
			}
		}
		in := have[0]
		ids[s.Name] = in.Config.ID
		if in.MonitorAlive {
			continue
		}
		if err := e.B.Start(ctx, in); err != nil {
			return fmt.Errorf("starting %s: %w", in.Config.Name, err)
		}
		e.report("Instance", in.Config.Name, "Started")
	}
	return nil
}

// Restart stops and starts the services' instances.
func (e *Engine) Restart(ctx context.Context, p *Plan, services []string, timeout time.Duration) error {
	if err := e.Stop(ctx, p, services, timeout); err != nil {
		return err
	}
	return e.Start(ctx, p, services)
}

// List returns the project's instances of the named services (all: none
// named), in plan order; orphans last.
func (e *Engine) List(ctx context.Context, p *Plan, services []string) ([]*instance.Instance, error) {
	ins, err := e.selected(ctx, p, services)
	if err != nil {
		return nil, err
	}
	return inOrder(p, ins), nil
}

func (e *Engine) selected(ctx context.Context, p *Plan, services []string) ([]*instance.Instance, error) {
	for _, s := range services {
		if _, ok := p.Service(s); !ok {
			return nil, fmt.Errorf("service %q: %w in project %s (services: %s)", s, ErrUnknownService, p.Project, strings.Join(p.ServiceNames(), ", "))
		}
	}
	ins, err := e.B.Instances(ctx, p.Project)
	if err != nil {
		return nil, err
	}
	if len(services) == 0 {
		return ins, nil
	}
	var out []*instance.Instance
	for _, in := range ins {
		if slices.Contains(services, in.Config.Labels[LabelService]) {
			out = append(out, in)
		}
	}
	return out, nil
}

// Logs writes the output of the services' instances to w, each line
// prefixed with the instance's service and number ("web-1 | "); follow
// keeps on until every instance has stopped or ctx ends.
func (e *Engine) Logs(ctx context.Context, p *Plan, services []string, w io.Writer, follow bool) error {
	ins, err := e.List(ctx, p, services)
	if err != nil {
		return err
	}
	width := 0
	for _, in := range ins {
		width = max(width, len(prefixName(in)))
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, len(ins))
	for i, in := range ins {
		pw := &prefixWriter{w: w, mu: &mu, prefix: fmt.Sprintf("%-*s | ", width, prefixName(in))}
		run := func() {
			defer pw.flush()
			err := e.B.Logs(ctx, in, pw, pw, follow)
			if err != nil && !errors.Is(err, context.Canceled) {
				errs[i] = fmt.Errorf("%s: %w", in.Config.Name, err)
			}
		}
		if !follow {
			run()
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); run() }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// prefixName is how logs name an instance: service-number.
func prefixName(in *instance.Instance) string {
	s := in.Config.Labels[LabelService]
	n := in.Config.Labels[LabelNumber]
	if n == "" {
		n = "1"
	}
	return s + "-" + n
}

// prefixWriter prefixes every line; lines of different instances are
// written whole, under one lock.
type prefixWriter struct {
	w      io.Writer
	mu     *sync.Mutex
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := slices.Index(p.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		if err := p.line(p.buf[:i+1]); err != nil {
			return 0, err
		}
		p.buf = p.buf[i+1:]
	}
}

func (p *prefixWriter) line(l []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, err := io.WriteString(p.w, p.prefix+string(l))
	return err
}

func (p *prefixWriter) flush() {
	if len(p.buf) > 0 {
		_ = p.line(append(p.buf, '\n'))
		p.buf = nil
	}
}

func ofService(ins []*instance.Instance, service string) []*instance.Instance {
	var out []*instance.Instance
	for _, in := range ins {
		if in.Config.Labels[LabelService] == service {
			out = append(out, in)
		}
	}
	slices.SortFunc(out, func(a, b *instance.Instance) int { return number(a) - number(b) })
	return out
}

func number(in *instance.Instance) int {
	n, _ := strconv.Atoi(in.Config.Labels[LabelNumber])
	return n
}

// inOrder sorts instances by their service's place in the plan, orphans last.
func inOrder(p *Plan, ins []*instance.Instance) []*instance.Instance {
	rank := func(in *instance.Instance) int {
		for i, s := range p.Services {
			if s.Name == in.Config.Labels[LabelService] {
				return i
			}
		}
		return len(p.Services)
	}
	out := slices.Clone(ins)
	slices.SortStableFunc(out, func(a, b *instance.Instance) int {
		if d := rank(a) - rank(b); d != 0 {
			return d
		}
		return number(a) - number(b)
	})
	return out
}

func reverseOrder(p *Plan, ins []*instance.Instance) []*instance.Instance {
	out := inOrder(p, ins)
	slices.Reverse(out)
	return out
}

// usedNetworks are the plan's networks the services join.
func usedNetworks(p *Plan, services []Service) []Network {
	var out []Network
	for _, n := range p.Networks {
		for _, s := range services {
			if slices.ContainsFunc(s.Options.Networks, func(r instance.NetworkRequest) bool { return r.Name == n.Name }) {
				out = append(out, n)
				break
			}
		}
	}
	return out
}

func volumeUsed(v Volume, services []Service) bool {
	for _, s := range services {
		if slices.ContainsFunc(s.Options.Volumes, func(m instance.VolumeMount) bool { return m.Name == v.Name }) {
			return true
		}
	}
	return false
}
