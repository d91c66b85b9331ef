package compose

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nosproject/nos/instance"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// planFor loads a testdata file as project "demo" and translates it.
func planFor(t *testing.T, file string) (*Plan, error) {
	t.Helper()
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	p, err := Load(context.Background(), LoadOptions{Dir: dir, Files: []string{filepath.Join(dir, file)}, Name: "demo", Env: []string{}})
	if err != nil {
		return nil, err
	}
	return Translate(p, TranslateOptions{})
}

var hashRE = regexp.MustCompile(`("hash": |"com\.docker\.compose\.config-hash": )"[0-9a-f]{64}"`)

// TestGoldenPlans: each testdata/*.yaml translates into the plan in its
// .golden file (paths of testdata written $DIR).
func TestGoldenPlans(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.yaml")
	if len(files) == 0 {
		t.Fatal("no testdata")
	}
	dir, _ := filepath.Abs("testdata")
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			plan, err := planFor(t, name)
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.MarshalIndent(plan, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			// The config hash covers absolute paths (the build context,
			// bind sources): the golden file holds a placeholder;
			// TestHashChangesWithConfig and the recreate tests check hashes.
			got := strings.ReplaceAll(string(b), dir, "$DIR") + "\n"
			got = hashRE.ReplaceAllString(got, `${1}"$$HASH"`)
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (go test -update writes it)", err)
			}
			if d := cmp.Diff(string(want), got); d != "" {
				t.Errorf("plan differs from %s (-want +got):\n%s", golden, d)
			}
		})
	}
}

// TestTranslateErrors: each bad file is one error naming its cause.
func TestTranslateErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
		is               error
	}{
		{"cycle", "services:\n  a: {image: x, depends_on: [b]}\n  b: {image: x, depends_on: [a]}\n", "a -> b -> a", ErrBadInput},
		{"user name", "services:\n  a: {image: x, user: redis}\n", `user "redis": want UID[:GID]`, ErrBadInput},
		{"anonymous volume", "services:\n  a: {image: x, volumes: [/data]}\n", "anonymous volume on /data", ErrBadInput},
		{"healthy without check", "services:\n  a: {image: x, depends_on: {b: {condition: service_healthy}}}\n  b: {image: x}\n", "b has no health check nos can run", ErrBadInput},
		{"scale", "services:\n  a: {image: x, scale: 2}\n", "scale/deploy.replicas 2", ErrBadInput},
		{"network mode", "services:\n  a: {image: x, network_mode: host}\n", `network_mode "host"`, ErrBadInput},
		{"malformed", "services:\n  a:\n    image: [x\n", "line 3", ErrBadInput},
		{"bad key type", "services:\n  a:\n    image: x\n    ports: 12\n", "services.a.ports", ErrBadInput},
		{"no host port", "services:\n  a: {image: x, ports: [\"80\"]}\n", "guest port 80 has no host port", ErrBadInput},
		{"relative bind", "services:\n  a: {image: x, volumes: [\"/etc/x,y:/x\"]}\n", "comma", ErrBadInput},
		{"nothing to run", "services:\n  a: {restart: always}\n", "neither an image nor a build", ErrBadInput},
		{"unknown dependency", "services:\n  a: {image: x, depends_on: [zz]}\n", "undefined service", ErrBadInput},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := LoadBytes(context.Background(), []byte(tc.yaml), t.TempDir(), "demo", nil)
			if err == nil {
				_, err = Translate(p, TranslateOptions{})
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, tc.is) {
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestStrict: an unsupported key is an error naming it.
func TestStrict(t *testing.T) {
	p, err := LoadBytes(context.Background(), []byte("services:\n  web: {image: x, cap_drop: [ALL]}\n"), t.TempDir(), "demo", nil)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := Translate(p, TranslateOptions{})
	if err != nil || len(plan.Warnings) != 1 || plan.Warnings[0] != `service web: key "cap_drop" is not supported; ignored` {
		t.Fatalf("warnings %q, %v", plan.Warnings, err)
	}
	if _, err := Translate(p, TranslateOptions{Strict: true}); err == nil || !strings.Contains(err.Error(), `"cap_drop"`) || !errors.Is(err, ErrBadInput) {
		t.Errorf("strict: %v", err)
	}
}

// TestHashChangesWithConfig: the hash follows what the instance is made
// from, not the order of the file's maps.
func TestHashChangesWithConfig(t *testing.T) {
	hash := func(y string) string {
		p, err := LoadBytes(context.Background(), []byte(y), "/tmp", "demo", nil)
		if err != nil {
			t.Fatal(err)
		}
		plan, err := Translate(p, TranslateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return plan.Services[0].Hash
	}
	a := hash("services:\n  a: {image: x, environment: {A: '1', B: '2'}}\n")
	if b := hash("services:\n  a: {environment: {B: '2', A: '1'}, image: x}\n"); a != b {
		t.Error("the same config in another order hashes differently")
	}
	if c := hash("services:\n  a: {image: x, environment: {A: '1', B: '3'}}\n"); a == c {
		t.Error("a changed environment hashes the same")
	}
}

func TestOrder(t *testing.T) {
	svc := func(deps ...string) Service {
		s := Service{}
		for _, d := range deps {
			s.DependsOn = append(s.DependsOn, Dependency{Service: d, Condition: ConditionStarted})
		}
		return s
	}
	got, err := Order(map[string]Service{"web": svc("api", "cache"), "api": svc("db"), "db": svc(), "cache": svc(), "zeta": svc()})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"db", "api", "cache", "web", "zeta"}, got); d != "" {
		t.Error(d)
	}
	_, err = Order(map[string]Service{"a": svc("b"), "b": svc("c"), "c": svc("b"), "d": svc()})
	if !errors.Is(err, ErrCycle) || !strings.Contains(err.Error(), "b -> c -> b") {
		t.Errorf("cycle: %v", err)
	}
}

func TestSelect(t *testing.T) {
	plan, err := planFor(t, "resources.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sel, err := plan.Select([]string{"api"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range sel {
		names = append(names, s.Name)
	}
	if d := cmp.Diff([]string{"job", "api"}, names); d != "" {
		t.Error(d)
	}
	if _, err := plan.Select([]string{"nope"}); !errors.Is(err, ErrUnknownService) {
		t.Errorf("unknown service: %v", err)
	}
}

// FuzzLoad: no file, however malformed, panics the loader or the
// translation.
func FuzzLoad(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("services:\n  a: {image: x, depends_on: [a]}\n"))
	f.Add([]byte("services: {a: {image: x, healthcheck: {test: 'curl -f http://localhost:99999/'}}}"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := LoadBytes(context.Background(), b, dir, "fuzz", nil)
		if err != nil {
			return
		}
		plan, err := Translate(p, TranslateOptions{})
		if err != nil {
			return
		}
		if _, err := json.Marshal(plan); err != nil {
			t.Fatal(err)
		}
	})
}

// TestExtraHosts: extra_hosts become --add-host entries, in name order;
// an address that is not one is refused.
func TestExtraHosts(t *testing.T) {
	p, err := LoadBytes(context.Background(), []byte("services:\n  a:\n    image: x\n    extra_hosts: [\"db=192.0.2.7\", \"cache:192.0.2.8\"]\n"), t.TempDir(), "demo", nil)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := Translate(p, TranslateOptions{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []instance.HostEntry{{Name: "cache", IP: "192.0.2.8"}, {Name: "db", IP: "192.0.2.7"}}
	if got := plan.Services[0].Options.AddHosts; !slices.Equal(got, want) {
		t.Errorf("AddHosts = %v, want %v", got, want)
	}
	p, err = LoadBytes(context.Background(), []byte("services:\n  a:\n    image: x\n    extra_hosts: [\"db=not-an-ip\"]\n"), t.TempDir(), "demo", nil)
	if err == nil {
		_, err = Translate(p, TranslateOptions{})
	}
	if err == nil || !strings.Contains(err.Error(), "extra_hosts db=not-an-ip") {
		t.Errorf("a bad address: %v", err)
	}
}
