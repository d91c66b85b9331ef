package compose

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/instance"
	"github.com/nosproject/nos/vmm"
)

// Errors callers test with errors.Is.
var (
	// ErrBadInput: the Compose file is malformed, or asks for what nos
	// cannot do (with --strict: any key nos does not support).
	ErrBadInput = errors.New("invalid compose project")
	// ErrCycle: services depend on each other in a circle.
	ErrCycle = errors.New("depends_on cycle")
	// ErrUnknownService: a service named on the command line is not in
	// the file.
	ErrUnknownService = errors.New("no such service")
)

// Labels nos compose sets on every instance, as docker compose does.
const (
	LabelProject = "com.docker.compose.project"
	LabelService = "com.docker.compose.service"
	LabelNumber  = "com.docker.compose.container-number"
	LabelHash    = "com.docker.compose.config-hash"
)

// Conditions of depends_on.
const (
	ConditionStarted   = types.ServiceConditionStarted
	ConditionHealthy   = types.ServiceConditionHealthy
	ConditionCompleted = types.ServiceConditionCompletedSuccessfully
)

// Plan is a project translated for nos: what up creates, in order.
type Plan struct {
	Project string `json:"project"`
	// Services are in start order: each after the services it depends on.
	Services []Service `json:"services"`
	Networks []Network `json:"networks,omitempty"`
	Volumes  []Volume  `json:"volumes,omitempty"`
	// Warnings name what the file asks for that nos ignores.
	Warnings []string `json:"warnings,omitempty"`
}

// Service is one service's instance, and what it needs first.
type Service struct {
	Name string `json:"name"`
	// Image is the image the instance runs: the file's image, or the tag
	// of the image built from Build.
	Image string `json:"image"`
	// Build, when set, makes Image: always when the file has build:, and
	// when the file's image is not in the store (a container image
	// reference, built with --from-oci).
	Build *Build `json:"build,omitempty"`
	// BuildAlways is true for build: (the image is built when missing, or
	// with up --build); false for an image built only when the store does
	// not have it.
	BuildAlways bool         `json:"buildAlways,omitempty"`
	DependsOn   []Dependency `json:"dependsOn,omitempty"`
	// Hash is the hash of the resolved configuration (Options without the
	// hash label, Image, Build), kept in the LabelHash label.
	Hash    string           `json:"hash"`
	Options instance.Options `json:"options"`
}

// Build is how a service's image is made, as nos build makes it.
type Build struct {
	// Context is a Go main package's directory or a program's path (an
	// absolute path); FromOCI a container image reference. One is set.
	Context string `json:"context,omitempty"`
	FromOCI string `json:"fromOCI,omitempty"`
	// Tag is the image's name:tag in the store.
	Tag string `json:"tag"`
	// Needs are the kernel features the image needs (blk for volumes);
	// nil for the default.
	Needs []string `json:"needs,omitempty"`
}

// Dependency is one depends_on entry.
type Dependency struct {
	Service   string `json:"service"`
	Condition string `json:"condition"`
	Required  bool   `json:"required"`
}

// Network is a network the project uses.
type Network struct {
	Key      string `json:"key"`  // its name in the file
	Name     string `json:"name"` // the nos network: <project>_<key>, or the external name
	External bool   `json:"external,omitempty"`
	Subnet   string `json:"subnet,omitempty"`
	Gateway  string `json:"gateway,omitempty"`
	Internal bool   `json:"internal,omitempty"`
}

// Volume is a named volume the project uses.
type Volume struct {
	Key      string `json:"key"`
	Name     string `json:"name"` // <project>_<key>, or the external name
	External bool   `json:"external,omitempty"`
}

// TranslateOptions tune Translate.
type TranslateOptions struct {
	// Strict makes a key nos does not support an error instead of a warning.
	Strict bool
}

// Translate turns a loaded project into a plan. It does no I/O: what it
// cannot check (images, host directories) the engine and instance.Create
// check before anything is made.
func Translate(p *types.Project, o TranslateOptions) (*Plan, error) {
	if p == nil {
		return nil, fmt.Errorf("no project: %w", ErrBadInput)
	}
	if len(p.Services) == 0 {
		return nil, fmt.Errorf("project %s has no services: %w", p.Name, ErrBadInput)
	}
	plan := &Plan{Project: p.Name}
	plan.Warnings = append(plan.Warnings, projectWarnings(p)...)
	for _, key := range slices.Sorted(maps.Keys(p.Networks)) {
		n, warns := translateNetwork(key, p.Networks[key])
		plan.Networks = append(plan.Networks, n)
		plan.Warnings = append(plan.Warnings, warns...)
	}
	for _, key := range slices.Sorted(maps.Keys(p.Volumes)) {
		v := p.Volumes[key]
		if v.Driver == "local" {
			v.Driver = "" // the only driver nos has
		}
		plan.Volumes = append(plan.Volumes, Volume{Key: key, Name: v.Name, External: bool(v.External)})
		plan.Warnings = append(plan.Warnings, prefixed("volume "+key, unsupportedKeys("", v, volumeKeys))...)
	}
	byName := map[string]Service{}
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		s, warns, err := translateService(p, plan, p.Services[name])
		if err != nil {
			return nil, err
		}
		plan.Warnings = append(plan.Warnings, warns...)
		byName[name] = s
	}
	if err := checkConditions(byName); err != nil {
		return nil, err
	}
	order, err := Order(byName)
	if err != nil {
		return nil, err
	}
	for _, n := range order {
		plan.Services = append(plan.Services, byName[n])
	}
	if o.Strict && len(plan.Warnings) > 0 {
		return nil, fmt.Errorf("%s (--strict): %w", plan.Warnings[0], ErrBadInput)
	}
	return plan, nil
}

// InstanceName is the name of a service's n-th instance, as docker
// compose names containers.
func InstanceName(project, service string, n int) string {
	return project + "-" + service + "-" + strconv.Itoa(n)
}

var instanceNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)

func translateService(p *types.Project, plan *Plan, sc types.ServiceConfig) (Service, []string, error) {
	name := sc.Name
	bad := func(format string, args ...any) (Service, []string, error) {
		return Service{}, nil, fmt.Errorf("service %s: %s: %w", name, fmt.Sprintf(format, args...), ErrBadInput)
	}
	warns := prefixed("service "+name, unsupportedKeys("", normalizedForCheck(sc), serviceKeys))
	if n := sc.GetScale(); n != 1 {
		return bad("scale/deploy.replicas %d: nos compose runs one instance per service", n)
	}
	s := Service{Name: name}
	o := instance.Options{Name: sc.ContainerName, StopTimeout: 10 * time.Second}
	if o.Name == "" {
		o.Name = InstanceName(p.Name, name, 1)
	}
	if !instanceNameRE.MatchString(o.Name) {
		return bad("instance name %q: use letters, digits, '.', '_' and '-', at most 63 characters", o.Name)
	}
	// The image, built or not.
	switch {
	case sc.Build != nil:
		if sc.Build.Context == "" {
			return bad("build: no context")
		}
		tag := sc.Image
		if tag == "" {
			tag = p.Name + "-" + name
		}
		s.Image, s.BuildAlways = tag, true
		s.Build = &Build{Context: sc.Build.Context, Tag: tag}
	case sc.Image != "":
		s.Image = sc.Image
		s.Build = &Build{FromOCI: sc.Image, Tag: p.Name + "-" + name}
	default:
		return bad("neither image nor build: say what to run")
	}
	o.Image = s.Image
	o.Entrypoint = []string(sc.Entrypoint)
	o.Args = []string(sc.Command)
	for _, k := range slices.Sorted(maps.Keys(sc.Environment)) {
		if v := sc.Environment[k]; v != nil {
			o.Env = append(o.Env, k+"="+*v)
		}
	}
	var err error
	if o.Publish, err = publish(sc.Ports); err != nil {
		return bad("%v", err)
	}
	if err := mounts(p, sc, &o); err != nil {
		return bad("%v", err)
	}
	if err := networks(p, sc, &o); err != nil {
		return bad("%v", err)
	}
	if o.Restart, err = restartPolicy(sc); err != nil {
		return bad("%v", err)
	}
	if o.MemoryMiB, o.CPUs, err = resources(sc); err != nil {
		return bad("%v", err)
	}
	if sc.User != "" {
		if o.User, err = instance.ParseUser(sc.User); err != nil {
			return bad("user %q: want UID[:GID] in numbers (names are resolved when the image is built)", sc.User)
		}
	}
	for _, c := range sc.CapAdd {
		norm, err := image.ParseCap(c)
		if err != nil {
			return bad("cap_add %s: %v", c, err)
		}
		o.CapAdd = append(o.CapAdd, norm)
	}
	for _, name := range slices.Sorted(maps.Keys(sc.ExtraHosts)) {
		for _, ip := range sc.ExtraHosts[name] {
			h, err := instance.ParseAddHost(name + "=" + ip)
			if err != nil {
				return bad("extra_hosts %s=%s: want an IP address (services are on private networks, which cannot reach the host: host-gateway does not work there)", name, ip)
			}
			o.AddHosts = append(o.AddHosts, h)
		}
	}
	o.ReadOnlyRoot = sc.ReadOnly
	for _, t := range sc.Tmpfs {
		tm, err := instance.ParseTmpfs(t)
		if err != nil {
			return bad("tmpfs: %v", err)
		}
		o.Tmpfs = append(o.Tmpfs, tm)
	}
	if sc.StopGracePeriod != nil {
		o.StopTimeout = time.Duration(*sc.StopGracePeriod)
	}
	hc, hwarn, err := healthCheck(sc, o.Publish)
	if err != nil {
		return bad("%v", err)
	}
	if hwarn != "" {
		warns = append(warns, "service "+name+": "+hwarn)
	}
	o.Health = hc
	for _, dep := range slices.Sorted(maps.Keys(sc.DependsOn)) {
		d := sc.DependsOn[dep]
		cond := d.Condition
		if cond == "" {
			cond = ConditionStarted
		}
		switch cond {
		case ConditionStarted, ConditionHealthy, ConditionCompleted:
		default:
			return bad("depends_on %s: condition %q: want service_started, service_healthy or service_completed_successfully", dep, cond)
		}
		if _, ok := p.Services[dep]; !ok {
			if d.Required {
				return bad("depends_on %s: no such service", dep)
			}
			warns = append(warns, fmt.Sprintf("service %s: depends_on %s: no such service; not required, ignored", name, dep))
			continue
		}
		s.DependsOn = append(s.DependsOn, Dependency{Service: dep, Condition: cond, Required: d.Required})
	}
	if len(o.Volumes)+len(o.Binds) > 0 && s.Build != nil && s.Build.Context != "" {
		s.Build.Needs = []string{"net", "blk"} // a Go program mounts volumes with a blk kernel
	}
	o.Labels = maps.Clone(sc.Labels)
	if o.Labels == nil {
		o.Labels = map[string]string{}
	}
	o.Labels[LabelProject] = p.Name
	o.Labels[LabelService] = name
	o.Labels[LabelNumber] = "1"
	s.Options = o
	s.Hash = hashOf(s)
	s.Options.Labels[LabelHash] = s.Hash
	return s, warns, nil
}

// hashOf is the hash of what a service's instance is made from; the
// accelerator, chosen per host, is not part of it.
func hashOf(s Service) string {
	o := s.Options
	o.Labels = maps.Clone(o.Labels)
	delete(o.Labels, LabelHash)
	o.Accel = ""
	b, err := json.Marshal(struct {
		Image       string
		Build       *Build
		BuildAlways bool
		Options     instance.Options
	}{s.Image, s.Build, s.BuildAlways, o})
	if err != nil {
		panic(err) // plain data always encodes
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// publish turns ports into -p forwards, through instance.ParsePublish.
func publish(ports []types.ServicePortConfig) ([]vmm.Forward, error) {
	var out []vmm.Forward
	for _, pc := range ports {
		if pc.Published == "" {
			return nil, fmt.Errorf("ports: guest port %d has no host port: nos publishes fixed host ports only, give HOST:%d", pc.Target, pc.Target)
		}
		if strings.Contains(pc.Published, "-") {
			return nil, fmt.Errorf("ports: host port range %s: give one host port per guest port", pc.Published)
		}
		spec := pc.Published + ":" + strconv.FormatUint(uint64(pc.Target), 10)
		if pc.HostIP != "" {
			spec = pc.HostIP + ":" + spec
		}
		if pc.Protocol != "" {
			spec += "/" + pc.Protocol
		}
		f, err := instance.ParsePublish(spec)
		if err != nil {
			return nil, fmt.Errorf("ports: %w", err)
		}
		out = append(out, f)
	}
	return out, nil
}

// mounts turns volumes into named volumes, host directories and tmpfs
// mounts, through instance.ParseMount and ParseTmpfs.
func mounts(p *types.Project, sc types.ServiceConfig, o *instance.Options) error {
	for _, v := range sc.Volumes {
		switch v.Type {
		case types.VolumeTypeVolume:
			if v.Source == "" {
				return fmt.Errorf("volumes: an anonymous volume on %s: nos mounts named volumes only; name it (NAME:%s) and declare it under the top-level volumes", v.Target, v.Target)
			}
			vc, ok := p.Volumes[v.Source]
			if !ok {
				return fmt.Errorf("volumes: %s is not declared under the top-level volumes", v.Source)
			}
			if err := addMount(o, "type=volume,source="+vc.Name+",target="+v.Target, v.ReadOnly); err != nil {
				return err
			}
		case types.VolumeTypeBind:
			if err := addMount(o, "type=bind,source="+v.Source+",target="+v.Target, v.ReadOnly); err != nil {
				return err
			}
		case types.VolumeTypeTmpfs:
			spec := v.Target
			var opts []string
			if v.Tmpfs != nil && v.Tmpfs.Size != 0 {
				opts = append(opts, "size="+strconv.FormatInt(int64(v.Tmpfs.Size), 10))
			}
			if v.Tmpfs != nil && v.Tmpfs.Mode != 0 {
				opts = append(opts, "mode="+strconv.FormatUint(uint64(v.Tmpfs.Mode), 8))
			}
			if len(opts) > 0 {
				spec += ":" + strings.Join(opts, ",")
			}
			t, err := instance.ParseTmpfs(spec)
			if err != nil {
				return fmt.Errorf("volumes: %w", err)
			}
			o.Tmpfs = append(o.Tmpfs, t)
		default:
			return fmt.Errorf("volumes: type %q on %s: nos mounts volumes, host directories (bind) and tmpfs", v.Type, v.Target)
		}
	}
	return nil
}

func addMount(o *instance.Options, spec string, ro bool) error {
	if strings.Contains(spec, ",,") || strings.Count(spec, ",") != 2 {
		return fmt.Errorf("volumes: %q: a comma in a name or path", spec)
	}
	if ro {
		spec += ",readonly"
	}
	m, err := instance.ParseMount(spec)
	if err != nil {
		return fmt.Errorf("volumes: %w", err)
	}
	m.AddTo(o)
	return nil
}

// networks turns the service's networks into private networks, the
// service's name an alias on each, as docker compose does.
func networks(p *types.Project, sc types.ServiceConfig, o *instance.Options) error {
	switch sc.NetworkMode {
	case "":
	case "none":
		o.NoNIC = true
		return nil
	default:
		return fmt.Errorf("network_mode %q: nos supports none, or networks", sc.NetworkMode)
	}
	for _, key := range sc.NetworksByPriority() {
		nc, ok := p.Networks[key]
		if !ok {
			return fmt.Errorf("networks: %s is not declared under the top-level networks", key)
		}
		r := instance.NetworkRequest{Name: nc.Name}
		cfg := sc.Networks[key]
		if cfg.ServiceNameAliasEnabled() {
			r.Aliases = append(r.Aliases, sc.Name)
		}
		if cfg != nil {
			r.IP = cfg.Ipv4Address
			for _, a := range cfg.Aliases {
				if !slices.Contains(r.Aliases, a) {
					r.Aliases = append(r.Aliases, a)
				}
			}
		}
		if r.IP != "" {
			if _, err := netip.ParseAddr(r.IP); err != nil {
				return fmt.Errorf("networks: %s: ipv4_address %q is not an IPv4 address", key, r.IP)
			}
		}
		o.Networks = append(o.Networks, r)
	}
	if len(o.Networks) > instance.MaxNetworks {
		return fmt.Errorf("networks: %d networks: an instance joins at most %d", len(o.Networks), instance.MaxNetworks)
	}
	return nil
}

// restartPolicy is restart:, else deploy.restart_policy.
func restartPolicy(sc types.ServiceConfig) (instance.RestartPolicy, error) {
	if sc.Restart != "" {
		return instance.ParseRestartPolicy(sc.Restart)
	}
	if sc.Deploy != nil && sc.Deploy.RestartPolicy != nil {
		rp := sc.Deploy.RestartPolicy
		switch rp.Condition {
		case "none":
			return instance.RestartPolicy{Name: instance.RestartNo}, nil
		case "on-failure":
			p := instance.RestartPolicy{Name: instance.RestartOnFailure}
			if rp.MaxAttempts != nil {
				p.MaxRetries = int(min(*rp.MaxAttempts, math.MaxInt32))
			}
			return p, nil
		case "", "any":
			return instance.RestartPolicy{Name: instance.RestartAlways}, nil
		}
		return instance.RestartPolicy{}, fmt.Errorf("deploy.restart_policy.condition %q: want none, on-failure or any", rp.Condition)
	}
	return instance.RestartPolicy{Name: instance.RestartNo}, nil
}

// resources are mem_limit and cpus, else deploy.resources.limits: memory
// in MiB (rounded up), whole virtual CPUs (rounded up).
func resources(sc types.ServiceConfig) (mib, cpus int, err error) {
	mem, c := int64(sc.MemLimit), float64(sc.CPUS)
	if sc.Deploy != nil && sc.Deploy.Resources.Limits != nil {
		l := sc.Deploy.Resources.Limits
		if mem == 0 {
			mem = int64(l.MemoryBytes)
		}
		if c == 0 {
			c = float64(l.NanoCPUs.Value())
		}
	}
	if mem < 0 || mem > 1<<40 {
		return 0, 0, fmt.Errorf("memory limit %d bytes: want 1m to 1t", mem)
	}
	if mem > 0 {
		mib = int((mem + 1<<20 - 1) >> 20)
	}
	if c < 0 || c > 64 || math.IsNaN(c) {
		return 0, 0, fmt.Errorf("cpus %v: want 0.01 to 64", c)
	}
	if c > 0 {
		cpus = int(math.Ceil(c))
	}
	return mib, cpus, nil
}

// checkConditions refuses service_healthy on a service with no health
// check nos runs: up would wait forever.
func checkConditions(byName map[string]Service) error {
	for _, n := range slices.Sorted(maps.Keys(byName)) {
		for _, d := range byName[n].DependsOn {
			if d.Condition == ConditionHealthy && byName[d.Service].Options.Health == nil {
				return fmt.Errorf("service %s: depends_on %s with condition service_healthy, but %s has no health check nos can run (an HTTP GET or a TCP connect): %w", n, d.Service, d.Service, ErrBadInput)
			}
		}
	}
	return nil
}

func translateNetwork(key string, nc types.NetworkConfig) (Network, []string) {
	n := Network{Key: key, Name: nc.Name, External: bool(nc.External), Internal: nc.Internal}
	check := nc
	if check.Driver == "bridge" {
		check.Driver = ""
	}
	if len(nc.Ipam.Config) > 0 {
		n.Subnet, n.Gateway = nc.Ipam.Config[0].Subnet, nc.Ipam.Config[0].Gateway
	}
	warns := unsupportedKeys("", check, networkKeys)
	if len(nc.Ipam.Config) > 1 {
		warns = append(warns, `key "ipam.config" has more than one pool: nos uses the first`)
	}
	return n, prefixed("network "+key, warns)
}

func projectWarnings(p *types.Project) []string {
	var out []string
	for _, k := range unsupportedKeys("", *p, projectKeys) {
		out = append(out, "top-level "+k)
	}
	return out
}

func prefixed(prefix string, ws []string) []string {
	out := make([]string, 0, len(ws))
	for _, w := range ws {
		out = append(out, prefix+": "+w)
	}
	return out
}

// Select returns the named services with everything they depend on, in
// plan order; none named: all of them.
func (p *Plan) Select(names []string) ([]Service, error) {
	if len(names) == 0 {
		return p.Services, nil
	}
	want := map[string]bool{}
	var add func(n string) error
	add = func(n string) error {
		s, ok := p.Service(n)
		if !ok {
			return fmt.Errorf("service %q: %w in project %s (services: %s)", n, ErrUnknownService, p.Project, strings.Join(p.ServiceNames(), ", "))
		}
		if want[n] {
			return nil
		}
		want[n] = true
		for _, d := range s.DependsOn {
			if err := add(d.Service); err != nil {
				return err
			}
		}
		return nil
	}
	for _, n := range names {
		if err := add(n); err != nil {
			return nil, err
		}
	}
	var out []Service
	for _, s := range p.Services {
		if want[s.Name] {
			out = append(out, s)
		}
	}
	return out, nil
}

// Service finds a service by name.
func (p *Plan) Service(name string) (Service, bool) {
	for _, s := range p.Services {
		if s.Name == name {
			return s, true
		}
	}
	return Service{}, false
}

// ServiceNames are the services' names, sorted.
func (p *Plan) ServiceNames() []string {
	var out []string
	for _, s := range p.Services {
		out = append(out, s.Name)
	}
	sort.Strings(out)
	return out
}
