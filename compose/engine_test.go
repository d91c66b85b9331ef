package compose

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nosproject/nos/instance"
)

// fake is a Backend in memory. Instances start running (healthy when
// they have a health check) unless exit says otherwise; every call is
// logged in calls.
type fake struct {
	mu       sync.Mutex
	images   map[string]string // ref → digest
	ins      map[string]*instance.Instance
	networks map[string]bool
	volumes  map[string]bool
	calls    []string
	n        int
	// exit, per service, makes its instance end at once with that code.
	exit map[string]int
	// unhealthy services' health checks fail.
	unhealthy map[string]bool
}

var _ Backend = (*fake)(nil)

func newFake() *fake {
	return &fake{images: map[string]string{}, ins: map[string]*instance.Instance{}, networks: map[string]bool{}, volumes: map[string]bool{}, exit: map[string]int{}, unhealthy: map[string]bool{}}
}

func (f *fake) call(format string, args ...any) {
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func (f *fake) ImageDigest(ctx context.Context, ref string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d, ok := f.images[ref]; ok {
		return d, nil
	}
	return "", fmt.Errorf("image %s: %w", ref, ErrNoImage)
}

func (f *fake) Build(ctx context.Context, b Build) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("build %s", b.Tag)
	f.images[b.Tag] = "sha256:built-" + b.Tag
	return f.images[b.Tag], nil
}

func (f *fake) Instances(ctx context.Context, project string) ([]*instance.Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*instance.Instance
	for _, id := range slices.Sorted(maps.Keys(f.ins)) {
		if in := f.ins[id]; in.Config.Labels[LabelProject] == project {
			c := *in
			out = append(out, &c)
		}
	}
	return out, nil
}

func (f *fake) Get(ctx context.Context, id string) (*instance.Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, ok := f.ins[id]
	if !ok {
		return nil, instance.ErrNotFound
	}
	c := *in
	return &c, nil
}

func (f *fake) Create(ctx context.Context, o instance.Options) (*instance.Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, in := range f.ins {
		if in.Config.Name == o.Name {
			return nil, instance.ErrNameInUse
		}
	}
	f.n++
	id := fmt.Sprintf("%064d", f.n)
	f.call("create %s", o.Name)
	for _, v := range o.Volumes {
		f.volumes[v.Name] = true
	}
	in := &instance.Instance{Config: instance.Config{ID: id, Name: o.Name, Image: o.Image, ImageDigest: f.images[o.Image], Labels: maps.Clone(o.Labels), Health: o.Health, StopTimeout: o.StopTimeout},
		State: instance.State{Status: instance.StatusCreated}}
	f.ins[id] = in
	return in, nil
}

func (f *fake) Start(ctx context.Context, in *instance.Instance) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur := f.ins[in.Config.ID]
	f.call("start %s", cur.Config.Name)
	svc := cur.Config.Labels[LabelService]
	if code, ok := f.exit[svc]; ok {
		cur.MonitorAlive, cur.State.Status, cur.State.ExitCode = false, instance.StatusExited, code
		return nil
	}
	cur.MonitorAlive, cur.State.Status = true, instance.StatusRunning
	if cur.Config.Health != nil {
		st := instance.HealthHealthy
		if f.unhealthy[svc] {
			st = instance.HealthUnhealthy
		}
		cur.State.Health = &instance.HealthState{Status: st}
	}
	return nil
}

func (f *fake) Stop(ctx context.Context, in *instance.Instance, timeout time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur := f.ins[in.Config.ID]
	f.call("stop %s", cur.Config.Name)
	cur.MonitorAlive, cur.State.Status = false, instance.StatusExited
	return nil
}

func (f *fake) Remove(ctx context.Context, in *instance.Instance) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("rm %s", in.Config.Name)
	delete(f.ins, in.Config.ID)
	return nil
}

func (f *fake) NetworkExists(ctx context.Context, name string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.networks[name], nil
}

func (f *fake) CreateNetwork(ctx context.Context, n Network) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("network create %s", n.Name)
	f.networks[n.Name] = true
	return nil
}

func (f *fake) RemoveNetwork(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("network rm %s", name)
	delete(f.networks, name)
	return nil
}

func (f *fake) VolumeExists(ctx context.Context, name string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.volumes[name], nil
}

func (f *fake) RemoveVolume(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("volume rm %s", name)
	delete(f.volumes, name)
	return nil
}

func (f *fake) Logs(ctx context.Context, in *instance.Instance, stdout, stderr io.Writer, follow bool) error {
	fmt.Fprintf(stdout, "hello from %s\nsecond line\n", in.Config.Name)
	return nil
}

func (f *fake) takeCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

func loadPlan(t *testing.T, y string) *Plan {
	t.Helper()
	p, err := LoadBytes(context.Background(), []byte(y), "/srv/app", "demo", nil)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := Translate(p, TranslateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

const app = `
services:
  web:
    build: ./web
    depends_on:
      redis: {condition: service_healthy}
      migrate: {condition: service_completed_successfully}
  redis:
    image: redis
    volumes: [data:/data]
    healthcheck: {test: [CMD, redis-cli, ping], interval: 1s}
  migrate:
    image: migrate
volumes:
  data:
`

func newEngine(f *fake) (*Engine, *bytes.Buffer) {
	var out bytes.Buffer
	return &Engine{B: f, Out: &out, Poll: time.Millisecond}, &out
}

// TestUpOrderAndIdempotence: up creates in dependency order, waiting for
// each condition; a second up changes nothing; a changed service is
// recreated, and only it.
func TestUpOrderAndIdempotence(t *testing.T) {
	f := newFake()
	f.images["redis"], f.images["migrate"] = "sha256:r", "sha256:m"
	f.exit["migrate"] = 0
	e, out := newEngine(f)
	ctx := context.Background()
	if err := e.Up(ctx, loadPlan(t, app), UpOptions{}); err != nil {
		t.Fatal(err)
	}
	want := []string{"build demo-web", "network create demo_default", "create demo-migrate-1", "start demo-migrate-1", "create demo-redis-1", "start demo-redis-1",
		"create demo-web-1", "start demo-web-1"}
	if d := cmp.Diff(want, f.takeCalls()); d != "" {
		t.Errorf("first up (-want +got):\n%s\noutput:\n%s", d, out)
	}
	if err := e.Up(ctx, loadPlan(t, app), UpOptions{}); err != nil {
		t.Fatal(err)
	}
	// The migration has exited: up starts it again, as docker compose does.
	if d := cmp.Diff([]string{"start demo-migrate-1"}, f.takeCalls()); d != "" {
		t.Errorf("second up (-want +got):\n%s", d)
	}
	changed := strings.Replace(app, "interval: 1s", "interval: 2s", 1)
	if err := e.Up(ctx, loadPlan(t, changed), UpOptions{}); err != nil {
		t.Fatal(err)
	}
	want = []string{"start demo-migrate-1", "stop demo-redis-1", "rm demo-redis-1", "create demo-redis-1", "start demo-redis-1"}
	if d := cmp.Diff(want, f.takeCalls()); d != "" {
		t.Errorf("up after a change (-want +got):\n%s", d)
	}
	// A new image digest recreates too.
	f.images["redis"] = "sha256:r2"
	if err := e.Up(ctx, loadPlan(t, changed), UpOptions{Services: []string{"redis"}}); err != nil {
		t.Fatal(err)
	}
	want = []string{"stop demo-redis-1", "rm demo-redis-1", "create demo-redis-1", "start demo-redis-1"}
	if d := cmp.Diff(want, f.takeCalls()); d != "" {
		t.Errorf("up after a new image (-want +got):\n%s", d)
	}
}

// TestUpConditionsFail: an unhealthy dependency or a failed job stops up
// before its dependents start.
func TestUpConditionsFail(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*fake)
		want string
	}{
		{"unhealthy", func(f *fake) { f.unhealthy["redis"] = true }, "redis is unhealthy"},
		{"job failed", func(f *fake) { f.exit["migrate"] = 3 }, "migrate did not complete successfully (exit code 3)"},
		{"healthy service exited", func(f *fake) { f.exit["redis"] = 1 }, "redis stopped before it was healthy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			f.images["redis"], f.images["migrate"] = "sha256:r", "sha256:m"
			f.exit["migrate"] = 0
			tc.set(f)
			e, _ := newEngine(f)
			err := e.Up(context.Background(), loadPlan(t, app), UpOptions{})
			if !errors.Is(err, ErrDependency) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
			if slices.Contains(f.takeCalls(), "start demo-web-1") {
				t.Error("the dependent started")
			}
		})
	}
}

// TestDown: down removes instances (dependents first) and networks, and
// volumes only with -v; external ones stay.
func TestDown(t *testing.T) {
	f := newFake()
	f.images["redis"], f.images["migrate"] = "sha256:r", "sha256:m"
	f.exit["migrate"] = 0
	e, _ := newEngine(f)
	ctx := context.Background()
	plan := loadPlan(t, app)
	if err := e.Up(ctx, plan, UpOptions{}); err != nil {
		t.Fatal(err)
	}
	f.takeCalls()
	if err := e.Down(ctx, plan, DownOptions{}); err != nil {
		t.Fatal(err)
	}
	want := []string{"stop demo-web-1", "rm demo-web-1", "stop demo-redis-1", "rm demo-redis-1", "rm demo-migrate-1", "network rm demo_default"}
	if d := cmp.Diff(want, f.takeCalls()); d != "" {
		t.Errorf("down (-want +got):\n%s", d)
	}
	if !f.volumes["demo_data"] {
		t.Error("down without -v removed the volume")
	}
	if err := e.Up(ctx, plan, UpOptions{}); err != nil {
		t.Fatal(err)
	}
	f.takeCalls()
	if err := e.Down(ctx, plan, DownOptions{Volumes: true}); err != nil {
		t.Fatal(err)
	}
	if c := f.takeCalls(); c[len(c)-1] != "volume rm demo_data" || f.volumes["demo_data"] {
		t.Errorf("down -v: %q", c)
	}
	if err := e.Down(ctx, plan, DownOptions{Volumes: true}); err != nil {
		t.Fatalf("down of nothing: %v", err)
	}
}

// TestExternalMissing: up refuses a missing external network before
// making anything.
func TestExternalMissing(t *testing.T) {
	f := newFake()
	f.images["x"] = "sha256:x"
	e, _ := newEngine(f)
	plan := loadPlan(t, "services:\n  a: {image: x, networks: [ext]}\nnetworks:\n  ext: {external: true, name: shared}\n")
	err := e.Up(context.Background(), plan, UpOptions{})
	if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "nos network create shared") {
		t.Errorf("got %v", err)
	}
	if c := f.takeCalls(); len(c) > 0 {
		t.Errorf("made %q", c)
	}
}

// TestStopStartLogs: stop goes dependents first, start dependencies
// first; logs prefix each line with service-number.
func TestStopStartLogs(t *testing.T) {
	f := newFake()
	f.images["redis"], f.images["migrate"] = "sha256:r", "sha256:m"
	f.exit["migrate"] = 0
	e, _ := newEngine(f)
	ctx := context.Background()
	plan := loadPlan(t, app)
	if err := e.Up(ctx, plan, UpOptions{}); err != nil {
		t.Fatal(err)
	}
	f.takeCalls()
	if err := e.Stop(ctx, plan, nil, -1); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"stop demo-web-1", "stop demo-redis-1"}, f.takeCalls()); d != "" {
		t.Errorf("stop:\n%s", d)
	}
	if err := e.Start(ctx, plan, []string{"redis"}); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"start demo-redis-1"}, f.takeCalls()); d != "" {
		t.Errorf("start redis:\n%s", d)
	}
	var b bytes.Buffer
	if err := e.Logs(ctx, plan, nil, &b, true); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"migrate-1 | hello from demo-migrate-1\n", "redis-1   | second line\n", "web-1     | hello from demo-web-1\n"} {
		if !strings.Contains(b.String(), l) {
			t.Errorf("logs lack %q:\n%s", l, b.String())
		}
	}
	if _, err := e.List(ctx, plan, []string{"nope"}); !errors.Is(err, ErrUnknownService) {
		t.Errorf("unknown service: %v", err)
	}
}
