package instance

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nosproject/nos/internal/home"

	"github.com/google/go-cmp/cmp"
)

func TestParseRestartPolicy(t *testing.T) {
	for _, c := range []struct {
		in   string
		want RestartPolicy
		err  bool
	}{
		{"", RestartPolicy{Name: RestartNo}, false},
		{"no", RestartPolicy{Name: RestartNo}, false},
		{"always", RestartPolicy{Name: RestartAlways}, false},
		{"unless-stopped", RestartPolicy{Name: RestartUnlessStopped}, false},
		{"on-failure", RestartPolicy{Name: RestartOnFailure}, false},
		{"on-failure:5", RestartPolicy{Name: RestartOnFailure, MaxRetries: 5}, false},
		{"on-failure:-1", RestartPolicy{}, true},
		{"on-failure:x", RestartPolicy{}, true},
		{"always:3", RestartPolicy{}, true},
		{"sometimes", RestartPolicy{}, true},
		{"Always", RestartPolicy{}, true},
	} {
		got, err := ParseRestartPolicy(c.in)
		if c.err {
			if !errors.Is(err, ErrBadFlag) {
				t.Errorf("%q: want ErrBadFlag, got %v", c.in, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: got %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
}

func TestShouldRestart(t *testing.T) {
	onFail3 := RestartPolicy{Name: RestartOnFailure, MaxRetries: 3}
	for _, c := range []struct {
		name     string
		p        RestartPolicy
		code     int
		crashed  bool
		stopped  bool
		restarts int
		want     bool
	}{
		{"no policy", RestartPolicy{Name: RestartNo}, 1, false, false, 0, false},
		{"always after success", RestartPolicy{Name: RestartAlways}, 0, false, false, 9, true},
		{"always but stopped", RestartPolicy{Name: RestartAlways}, 1, false, true, 0, false},
		{"unless-stopped", RestartPolicy{Name: RestartUnlessStopped}, 0, false, false, 0, true},
		{"unless-stopped stopped", RestartPolicy{Name: RestartUnlessStopped}, 0, false, true, 0, false},
		{"on-failure success", onFail3, 0, false, false, 0, false},
		{"on-failure failure", onFail3, 2, false, false, 2, true},
		{"on-failure exhausted", onFail3, 2, false, false, 3, false},
		{"on-failure crash", onFail3, 0, true, false, 0, true},
		{"on-failure unlimited", RestartPolicy{Name: RestartOnFailure}, 1, false, false, 1000, true},
	} {
		if got := c.p.ShouldRestart(c.code, c.crashed, c.stopped, c.restarts); got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

func TestBackoffGrowsToAMinute(t *testing.T) {
	var got []time.Duration
	for i := 0; i < 12; i++ {
		got = append(got, Backoff(i))
	}
	want := []time.Duration{
		100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 3200 * time.Millisecond, 6400 * time.Millisecond, 12800 * time.Millisecond,
		25600 * time.Millisecond, 51200 * time.Millisecond, time.Minute, time.Minute,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("backoff (-want +got):\n%s", diff)
	}
}

func TestTruthfulState(t *testing.T) {
	running := State{Status: StatusRunning, VMPID: 42}
	if got := truthful(running, true); got.Status != StatusRunning || got.VMPID != 42 {
		t.Errorf("live monitor: state changed: %+v", got)
	}
	got := truthful(running, false)
	if got.Status != StatusCrashed || got.VMPID != 0 || got.Error == "" {
		t.Errorf("dead monitor: want crashed with a reason, got %+v", got)
	}
	exited := State{Status: StatusExited, ExitCode: 3}
	if got := truthful(exited, false); got != exited {
		t.Errorf("exited instance changed: %+v", got)
	}
}

func TestGetByNameIDAndPrefix(t *testing.T) {
	is, err := Open(home.Layout{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{
		"abc1" + repeat("0", 60),
		"abc2" + repeat("0", 60),
		"ffff" + repeat("1", 60),
	}
	for i, id := range ids {
		cfg := Config{ID: id, Name: []string{"web", "", "db"}[i], Created: time.Unix(int64(i), 0)}
		if _, err := is.write(cfg, writeTemp(t), writeTemp(t), ""); err != nil {
			t.Fatal(err)
		}
	}
	for ref, want := range map[string]string{"web": ids[0], "db": ids[2], ids[1]: ids[1], "abc2": ids[1], "ff": ids[2]} {
		in, err := is.Get(ref)
		if err != nil || in.Config.ID != want {
			t.Errorf("Get(%q) = %v, %v; want %s", ref, in, err, want)
		}
	}
	if _, err := is.Get("abc"); !errors.Is(err, ErrAmbiguous) {
		t.Errorf("Get(abc): want ErrAmbiguous, got %v", err)
	}
	if _, err := is.Get("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(nope): want ErrNotFound, got %v", err)
	}
	list, _ := is.List()
	if len(list) != 3 || list[0].Config.ID != ids[2] {
		t.Errorf("List: want 3, newest first; got %d", len(list))
	}
	if err := checkConflicts(list, Options{Name: "web"}); !errors.Is(err, ErrNameInUse) {
		t.Errorf("a taken name: want ErrNameInUse, got %v", err)
	}
	if _, err := is.Remove(t.Context(), "web", false); err != nil {
		t.Fatalf("Remove of a stopped instance: %v", err)
	}
	if _, err := is.Get("web"); !errors.Is(err, ErrNotFound) {
		t.Errorf("removed instance still found: %v", err)
	}
}

func repeat(s string, n int) string { return strings.Repeat(s, n) }

func writeTemp(t *testing.T) string {
	t.Helper()
	f, err := osCreateTemp(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func osCreateTemp(dir string) (string, error) {
	f, err := os.CreateTemp(dir, "blob")
	if err != nil {
		return "", err
	}
	return f.Name(), f.Close()
}
