package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// nos runs the CLI in process with NOS_HOME set to home.
func nos(t *testing.T, home string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	t.Setenv("NOS_HOME", home)
	var out, errb bytes.Buffer
	code = Execute(t.Context(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// lines splits output into lines without the final newline.
func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// wantOneErrorLine checks that stderr is exactly one "nos: ..." line
// containing want.
func wantOneErrorLine(t *testing.T, stderr, want string) {
	t.Helper()
	l := lines(stderr)
	if len(l) != 1 || !strings.HasPrefix(l[0], "nos: ") || !strings.HasSuffix(stderr, "\n") {
		t.Errorf("stderr = %q, want one line starting with \"nos: \"", stderr)
		return
	}
	if !strings.Contains(l[0], want) {
		t.Errorf("stderr = %q, want it to contain %q", stderr, want)
	}
}

func TestVersion(t *testing.T) {
	code, stdout, stderr := nos(t, t.TempDir(), "version")
	if code != 0 {
		t.Fatalf("nos version exited %d; stderr: %s", code, stderr)
	}
	if l := lines(stdout); len(l) != 1 || !strings.HasPrefix(l[0], "nos ") {
		t.Errorf("nos version printed %q, want one line starting with \"nos \"", stdout)
	}
	if stderr != "" {
		t.Errorf("nos version wrote to stderr: %q", stderr)
	}
}

func TestHelp(t *testing.T) {
	verbs := [][]string{
		{"build"}, {"run"}, {"images"}, {"rmi"}, {"tag"}, {"inspect"},
		{"kernel", "fetch"}, {"kernel", "ls"}, {"kernel", "build"}, {"kernel", "rm"}, {"kernel", "import"},
		{"system", "prune"}, {"version"}, {"kernel"}, {"system"},
		{"ps"}, {"logs"}, {"stop"}, {"kill"}, {"start"}, {"restart"}, {"rm"}, {"wait"}, {"attach"},
	}
	for _, verb := range verbs {
		t.Run(strings.Join(verb, " "), func(t *testing.T) {
			home := t.TempDir()
			code, stdout, stderr := nos(t, home, append(slices.Clone(verb), "--help")...)
			if code != 0 {
				t.Fatalf("nos %s --help exited %d; stderr: %s", strings.Join(verb, " "), code, stderr)
			}
			l := lines(stdout)
			i := slices.Index(l, "Usage:")
			if i < 0 || i+1 >= len(l) {
				t.Fatalf("nos %s --help printed no Usage section:\n%s", strings.Join(verb, " "), stdout)
			}
			if want := "  nos " + strings.Join(verb, " "); !strings.HasPrefix(l[i+1], want) {
				t.Errorf("usage line %q, want it to start with %q", l[i+1], want)
			}
			if stderr != "" {
				t.Errorf("nos %s --help wrote to stderr: %q", strings.Join(verb, " "), stderr)
			}
			wantEmptyDir(t, home)
		})
	}
}

func TestUnknownVerb(t *testing.T) {
	for _, tc := range []struct{ verb, want string }{
		{"frobnicate", `unknown command "frobnicate"`},
		// Cobra suggests "build" on lines of their own; still one line.
		{"buld", "build"},
	} {
		code, stdout, stderr := nos(t, t.TempDir(), tc.verb, "x")
		if code == 0 {
			t.Fatalf("nos %s exited 0", tc.verb)
		}
		wantOneErrorLine(t, stderr, tc.want)
		if stdout != "" {
			t.Errorf("stdout = %q, want nothing", stdout)
		}
	}
}

func TestRunBadFlags(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string // in the error line
	}{
		{"-p without host port", []string{"-p", "80"}, "HOSTPORT:GUESTPORT"},
		{"-p port out of range", []string{"-p", "99999:80"}, "not a port number"},
		{"-p protocol", []string{"-p", "8080:80/sctp"}, "tcp or udp"},
		{"-p host IP", []string{"-p", "example.com:8080:80"}, "IPv4"},
		{"second -p bad", []string{"-p", "8080:80", "--publish", "x"}, `-p "x"`},
		{"-e empty key", []string{"-e", "=value"}, "KEY=VALUE"},
		{"-e space in key", []string{"--env", "A B=1"}, "KEY=VALUE"},
		{"--memory garbage", []string{"--memory", "lots"}, "memory"},
		{"--memory too little", []string{"-m", "4m"}, "below"},
		{"--memory negative", []string{"--memory=-1g"}, "memory"},
		{"--memory NaN", []string{"--memory", "NaN"}, "memory"},
		{"--cpus -1", []string{"--cpus", "-1"}, "--cpus -1"},
		{"--cpus too many", []string{"--cpus", "65"}, "--cpus 65"},
		{"--name with a space", []string{"--name", "bad name"}, "--name"},
		{"--name starting with -", []string{"--name=-x"}, "--name"},
		{"--time negative", []string{"--time", "-1"}, "--time"},
		{"--tmpfs-size garbage", []string{"--tmpfs-size", "big"}, "--tmpfs-size"},
		{"--tmpfs-size zero", []string{"--tmpfs-size", "0"}, "--tmpfs-size"},
		{"--tmpfs relative", []string{"--tmpfs", "scratch"}, "absolute, clean path"},
		{"--tmpfs root", []string{"--tmpfs", "/"}, "absolute, clean path"},
		{"--tmpfs dotdot", []string{"--tmpfs", "/a/../etc"}, "absolute, clean path"},
		{"--tmpfs /proc", []string{"--tmpfs", "/proc/x"}, "outside /proc"},
		{"--tmpfs bad size", []string{"--tmpfs", "/scratch:size=lots"}, "size=lots"},
		{"--tmpfs bad mode", []string{"--tmpfs", "/scratch:mode=999"}, "mode=999"},
		{"--tmpfs unknown option", []string{"--tmpfs", "/scratch:size=1m,exec"}, `unknown option "exec"`},
		{"--tmpfs empty options", []string{"--tmpfs", "/scratch:"}, "unknown option"},
		{"--tmpfs twice", []string{"--tmpfs", "/a", "--tmpfs", "/a:size=1m"}, "given twice"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			home := t.TempDir()
			args := append(append([]string{"run"}, tc.args...), "someimage")
			code, stdout, stderr := nos(t, home, args...)
			if code != 125 {
				t.Errorf("nos %q exited %d, want 125; stderr: %s", args, code, stderr)
			}
			wantOneErrorLine(t, stderr, tc.want)
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
			wantEmptyDir(t, home)
		})
	}
}

// Flags after IMAGE are the application's: a bad -p there is not nos's.
func TestRunFlagsAfterImage(t *testing.T) {
	code, stdout, stderr := nos(t, t.TempDir(), "run", "nosuchimage", "-p", "bad", "--cpus", "-1")
	if code != 125 {
		t.Errorf("exit code %d, want 125; stderr: %s", code, stderr)
	}
	wantOneErrorLine(t, stderr, "not found")
	if stdout != "" {
		t.Errorf("stdout = %q, want nothing", stdout)
	}
}

func TestImagesEmpty(t *testing.T) {
	code, stdout, stderr := nos(t, t.TempDir(), "images")
	if code != 0 {
		t.Fatalf("nos images exited %d; stderr: %s", code, stderr)
	}
	l := lines(stdout)
	if len(l) != 1 {
		t.Fatalf("nos images on an empty store printed %q, want just the header", stdout)
	}
	if got, want := strings.Fields(l[0]), []string{"NAME", "TAG", "DIGEST", "SIZE", "CREATED"}; !slices.Equal(got, want) {
		t.Errorf("header %q, want the columns %q", l[0], want)
	}
	if stderr != "" {
		t.Errorf("stderr = %q, want nothing", stderr)
	}

	code, stdout, _ = nos(t, t.TempDir(), "images", "-q")
	if code != 0 || stdout != "" {
		t.Errorf("nos images -q on an empty store: exit %d, output %q, want 0 and nothing", code, stdout)
	}
}

func TestRmiNotFound(t *testing.T) {
	code, stdout, stderr := nos(t, t.TempDir(), "rmi", "nosuch")
	if code == 0 {
		t.Fatal("nos rmi nosuch exited 0")
	}
	wantOneErrorLine(t, stderr, "not found")
	if stdout != "" {
		t.Errorf("stdout = %q, want nothing", stdout)
	}
}

func TestBuildBadTag(t *testing.T) {
	home := t.TempDir()
	code, stdout, stderr := nos(t, home, "build", "-t", "Bad Name", "./examples/hello")
	if code == 0 {
		t.Fatal("nos build -t \"Bad Name\" exited 0")
	}
	wantOneErrorLine(t, stderr, "invalid reference")
	if stdout != "" {
		t.Errorf("stdout = %q, want nothing", stdout)
	}
	wantEmptyDir(t, home)
}

// wantEmptyDir checks that a command that failed early left nos's home alone.
func wantEmptyDir(t *testing.T, dir string) {
	t.Helper()
	var found []string
	_ = filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if p != dir {
			found = append(found, p)
		}
		return err
	})
	if len(found) > 0 {
		t.Errorf("the command created %q in nos's home", found)
	}
}

// TestKernelLsEmpty: with no kernels anywhere, nos kernel ls prints the
// header alone and succeeds.
func TestKernelLsEmpty(t *testing.T) {
	home := t.TempDir()
	t.Setenv("NOS_BOOT_DIR", t.TempDir())
	code, stdout, stderr := nos(t, home, "kernel", "ls")
	if code != 0 || stderr != "" {
		t.Fatalf("nos kernel ls exited %d, stderr %q", code, stderr)
	}
	if l := lines(stdout); len(l) != 1 || !strings.HasPrefix(l[0], "DEFAULT") {
		t.Errorf("nos kernel ls printed %q, want the header alone", stdout)
	}
}
