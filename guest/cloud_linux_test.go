package guest

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/nosproject/nos/guestapi"
)

func TestApplyUserData(t *testing.T) {
	base := func() *guestapi.Config {
		return &guestapi.Config{Argv: []string{"/app/web", "-addr", ":8080"}, EntrypointLen: 1, Env: []string{"PATH=/bin", "GREETING=hi"}, Hostname: "web"}
	}
	for _, tc := range []struct {
		name, ud string
		want     *guestapi.Config
	}{
		{"none", "", base()},
		{"cloud-config", "#cloud-config\npackages: [nginx]\n", base()},
		{"bad json", `{"env": ["A"]}`, base()},
		{"unknown field", `{"envs": []}`, base()},
		{"nos", "#nos-config\n" + `{"env":["GREETING=hello"],"args":["-addr",":9090"],"hostname":"web-2"}`,
			&guestapi.Config{Argv: []string{"/app/web", "-addr", ":9090"}, EntrypointLen: 1, Env: []string{"PATH=/bin", "GREETING=hello"}, Hostname: "web-2"}},
		{"long fqdn", `{"hostname":"a123456789012345678901234567890.b123456789012345678901234567890.example.com"}`,
			func() *guestapi.Config { c := base(); c.Hostname = "a123456789012345678901234567890"; return c }()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base()
			applyUserData(cfg, []byte(tc.ud), "test")
			if d := cmp.Diff(tc.want, cfg); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestDescribeUserData(t *testing.T) {
	args := []string{"x"}
	got := describeUserData(&guestapi.UserData{Env: []string{"SECRET=hunter2", "B=1"}, Args: &args, Hostname: "h"})
	if got != "env SECRET,B, 1 args, hostname h" {
		t.Errorf("got %q", got)
	}
	if got := describeUserData(&guestapi.UserData{}); got != "no change" {
		t.Errorf("got %q", got)
	}
}
