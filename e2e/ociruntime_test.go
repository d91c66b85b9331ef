package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosproject/nos/internal/home"
	"github.com/nosproject/nos/kernel/kbuild"
)

// nos-runtime's tests drive the runtime as its callers do: runc's command
// line (create, start, state, kill, delete) with the pid-file process
// reaped by a subreaper, as conmon and containerd's shim are; then podman
// with --runtime.

// reaperEnv makes the test binary the subreaper of a lifecycle script
// (ociReaper): the supervisor create leaves behind is its child to reap,
// and the test process itself stays no one's subreaper.
const reaperEnv = "NOS_E2E_OCI_REAPER"

func init() {
	if os.Getenv(reaperEnv) != "" {
		os.Exit(ociReaper(strings.Split(os.Getenv(reaperEnv), "\x1f")))
	}
}

// ociReaper runs RUNTIME ROOT BUNDLE ID STEP...: each step is create,
// start, state, wait-output:TEXT, kill:SIG, wait (the pid-file process's
// exit status), sh:COMMAND or delete; it prints one line per step.
// create-tty creates with --console-socket (the test listens, receives
// the master and copies its output to app.out), then type:TEXT writes
// TEXT into the master (\r ends a line, as a terminal sends it) and
// resize:ROWSxCOLS sizes it; create-stdin:TEXT creates with a pipe
// holding TEXT as stdin (an engine's -i); ps prints ps --format json.
func ociReaper(args []string) int {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Println("subreaper:", err)
		return 1
	}
	rt, root, bundle, id := args[0], args[1], args[2], args[3]
	out := filepath.Join(bundle, "app.out")
	pidFile := filepath.Join(bundle, "pid")
	runtime := func(a ...string) (string, error) {
		cmd := exec.Command(rt, append([]string{"--root", root}, a...)...)
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	pid := 0
	var master *os.File
	for _, step := range args[4:] {
		began := time.Now()
		switch name, arg, _ := strings.Cut(step, ":"); name {
		case "create":
			f, err := os.Create(out)
			if err != nil {
				fmt.Println("create:", err)
				return 1
			}
			cmd := exec.Command(rt, "--root", root, "create", "--bundle", bundle, "--pid-file", pidFile, id)
			cmd.Stdout, cmd.Stderr = f, f
			err = cmd.Run()
			f.Close()
			b, _ := os.ReadFile(pidFile)
			pid, _ = strconv.Atoi(string(b))
			fmt.Printf("create: err=%v pid=%v took=%dms\n", err, pid > 0, time.Since(began).Milliseconds())
		case "create-tty":
			m, err := createTTY(rt, root, bundle, pidFile, id, out)
			b, _ := os.ReadFile(pidFile)
			pid, _ = strconv.Atoi(string(b))
			master = m
			fmt.Printf("create-tty: err=%v pid=%v master=%v took=%dms\n", err, pid > 0, m != nil, time.Since(began).Milliseconds())
		case "create-stdin":
			f, err := os.Create(out)
			if err != nil {
				fmt.Println("create-stdin:", err)
				return 1
			}
			cmd := exec.Command(rt, "--root", root, "create", "--bundle", bundle, "--pid-file", pidFile, id)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(arg), f, f
			err = cmd.Run()
			f.Close()
			b, _ := os.ReadFile(pidFile)
			pid, _ = strconv.Atoi(string(b))
			fmt.Printf("create-stdin: err=%v pid=%v took=%dms\n", err, pid > 0, time.Since(began).Milliseconds())
		case "type":
			_, err := master.Write([]byte(strings.ReplaceAll(arg, `\r`, "\r")))
			fmt.Printf("type: err=%v\n", err)
		case "resize":
			var r, c uint16
			_, _ = fmt.Sscanf(arg, "%dx%d", &r, &c)
			err := unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: r, Col: c})
			fmt.Printf("resize: err=%v\n", err)
		case "ps":
			o, err := runtime("ps", "--format", "json", id)
			var pids []int
			jerr := json.Unmarshal([]byte(o), &pids)
			fmt.Printf("ps: err=%v json=%v pids=%d first-is-pid=%v\n", err, jerr, len(pids), len(pids) > 0 && pids[0] == pid)
			o, _ = runtime("ps", id)
			fmt.Printf("ps table:\n%s", o)
		case "start":
			o, err := runtime("start", id)
			fmt.Printf("start: err=%v %s took=%dms\n", err, strings.TrimSpace(o), time.Since(began).Milliseconds())
		case "state":
			o, err := runtime("state", id)
			var st struct{ Status string }
			_ = json.Unmarshal([]byte(o), &st)
			fmt.Printf("state: %s err=%v\n", st.Status, err)
		case "wait-output":
			for time.Since(began) < 2*time.Minute {
				if b, _ := os.ReadFile(out); strings.Contains(string(b), arg) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			fmt.Printf("wait-output: took=%dms\n", time.Since(began).Milliseconds())
		case "kill":
			o, err := runtime("kill", id, arg)
			fmt.Printf("kill: err=%v %s\n", err, strings.TrimSpace(o))
		case "wait":
			var ws syscall.WaitStatus
			_, err := syscall.Wait4(pid, &ws, 0, nil)
			fmt.Printf("wait: exit=%d signaled=%v err=%v\n", ws.ExitStatus(), ws.Signaled(), err)
		case "sh": // a shell command while the container runs (ociruntime_net_test.go)
			o, err := exec.Command("sh", "-c", arg).CombinedOutput()
			fmt.Printf("sh: err=%v %s took=%dms\n", err, strings.TrimSpace(string(o)), time.Since(began).Milliseconds())
		case "delete":
			o, err := runtime("delete", id)
			fmt.Printf("delete: err=%v %s\n", err, strings.TrimSpace(o))
		}
	}
	return 0
}

// createTTY runs create --console-socket as conmon does: it listens on a
// unix socket, receives the terminal's master (SCM_RIGHTS) and copies
// what the master reads to out.
func createTTY(rt, root, bundle, pidFile, id, out string) (*os.File, error) {
	sock := filepath.Join(bundle, "console.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	got := make(chan *os.File, 1)
	go func() {
		defer close(got)
		c, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		defer c.Close()
		buf, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(4))
		_, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		if err != nil {
			return
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) != 1 {
			return
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 1 {
			return
		}
		got <- os.NewFile(uintptr(fds[0]), "ptmx")
	}()
	f, err := os.Create(out)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(rt, "--root", root, "create", "--bundle", bundle, "--console-socket", sock, "--pid-file", pidFile, id)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Run(); err != nil {
		f.Close()
		return nil, err
	}
	m := <-got
	if m == nil {
		f.Close()
		return nil, fmt.Errorf("no master came over the console socket")
	}
	go func() {
		defer f.Close()
		_, _ = io.Copy(f, m)
	}()
	return m, nil
}

// ociKernel is the guest kernel nos-runtime boots: the nos-built kernel
// with blk (virtiofs) and net, as nos-runtime finds it by default.
func ociKernel(t *testing.T) string {
	t.Helper()
	l, err := home.Default()
	if err != nil {
		t.Fatal(err)
	}
	e, err := kbuild.Cache{Dir: l.BuiltKernels()}.Match([]string{"blk", "net"})
	if err != nil {
		t.Fatalf("nos-runtime boots a nos-built kernel with virtiofs: %v; run `nos kernel build --features net,blk` (make test-deps)", err)
	}
	return e.Path()
}

// runtimeBin links nos-runtime to the test's nos, as it is installed.
func runtimeBin(t *testing.T) string {
	t.Helper()
	p := filepath.Join(binDir, "nos-runtime")
	if err := os.Symlink("nos", p); err != nil && !os.IsExist(err) {
		t.Fatal(err)
	}
	return p
}

// ociRootfs makes a rootfs holding the static test program as /bin/ocihello.
func ociRootfs(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "etc", "marker"), "from the rootfs", 0o644)
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "bin", "ocihello"), "./e2e/testdata/ocihello")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building ocihello: %v\n%s", err, out)
	}
}

func ociBundle(t *testing.T, args ...string) string {
	t.Helper()
	b := t.TempDir()
	ociRootfs(t, filepath.Join(b, "rootfs"))
	cfg := map[string]any{
		"ociVersion": "1.0.2",
		"root":       map[string]any{"path": "rootfs"},
		"hostname":   "ocitest",
		"process": map[string]any{
			"args": append([]string{"/bin/ocihello"}, args...), "cwd": "/etc",
			"env":  []string{"PATH=/bin", "FOO=bar"},
			"user": map[string]any{"uid": 1000, "gid": 1000},
		},
		"linux": map[string]any{"resources": map[string]any{"memory": map[string]any{"limit": 128 << 20}}},
	}
	b2, _ := json.Marshal(cfg)
	writeFile(t, filepath.Join(b, "config.json"), string(b2), 0o644)
	return b
}

// lifecycle runs a reaper script and returns its transcript and the app's output.
func lifecycle(t *testing.T, bundle, id string, steps ...string) (string, string) {
	t.Helper()
	root := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), reaperEnv+"="+strings.Join(append([]string{runtimeBin(t), root, bundle, id}, steps...), "\x1f"), "NOS_RUNTIME_KERNEL="+ociKernel(t))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("lifecycle: %v\n%s", err, out)
	}
	app, _ := os.ReadFile(filepath.Join(bundle, "app.out"))
	t.Logf("transcript:\n%s\napp:\n%s", out, app)
	if ents, _ := os.ReadDir(root); len(ents) > 1 { // the cached initramfs stays
		t.Errorf("delete left %d entries in the root", len(ents))
	}
	return string(out), string(app)
}

// TestOCIRuntimeLifecycle: create leaves the supervisor (state created,
// nothing runs), start runs the app in a VM whose root is the bundle's
// rootfs with config.json's args, env, cwd, user and hostname; the
// pid-file process exits with the app's code; delete cleans up.
func TestOCIRuntimeLifecycle(t *testing.T) {
	needVM(t)
	t.Parallel()
	bundle := ociBundle(t, "info", "a b")
	tr, app := lifecycle(t, bundle, "life1", "create", "state", "start", "state", "wait", "state", "delete")
	for _, want := range []string{"create: err=<nil> pid=true", "state: created", "start: err=<nil>", "state: running", "wait: exit=0 signaled=false", "state: stopped", "delete: err=<nil>"} {
		if !strings.Contains(tr, want) {
			t.Errorf("transcript lacks %q", want)
		}
	}
	for _, want := range []string{"hostname=ocitest", "uid=1000", "gid=1000", "cwd=/etc", "FOO=bar", `args=["a b"]`, "marker=from the rootfs", "to stderr"} {
		if !strings.Contains(app, want) {
			t.Errorf("the app's output lacks %q", want)
		}
	}

	bundle = ociBundle(t, "exit", "7")
	tr, _ = lifecycle(t, bundle, "life2", "create", "start", "wait", "delete")
	if !strings.Contains(tr, "wait: exit=7 ") {
		t.Errorf("exit 7 was not the pid-file process's exit code")
	}
}

// TestOCIRuntimeSignals: kill TERM reaches the app as SIGTERM through
// nos-init; kill KILL forces the VM off (137); kill before start ends the
// created container; delete of a running container needs --force.
func TestOCIRuntimeSignals(t *testing.T) {
	needVM(t)
	t.Parallel()
	bundle := ociBundle(t, "wait")
	tr, app := lifecycle(t, bundle, "sig1", "create", "start", "wait-output:waiting", "kill:TERM", "wait", "delete")
	if !strings.Contains(tr, "wait: exit=0 ") || !strings.Contains(app, "got SIGTERM") {
		t.Errorf("SIGTERM did not reach the app")
	}
	tr, _ = lifecycle(t, bundle, "sig2", "create", "start", "wait-output:waiting", "delete", "kill:KILL", "wait", "delete")
	if !strings.Contains(tr, "delete: err=exit status 1 ") || !strings.Contains(tr, "wait: exit=137 ") {
		t.Errorf("delete of a running container, or kill KILL, went wrong")
	}
	tr, _ = lifecycle(t, bundle, "sig3", "create", "kill:9", "wait", "state", "delete")
	if !strings.Contains(tr, "wait: exit=137 ") || !strings.Contains(tr, "state: stopped") {
		t.Errorf("kill of a created container went wrong")
	}
}

// TestPodmanRunsNosRuntime: podman (through conmon) runs an image with
// --runtime nos-runtime: the output and exit code come back; run -d, stop
// (the app sees SIGTERM) and rm work. podman keeps its storage in the
// test's directories and runs with --network none (no host bridge).
func TestPodmanRunsNosRuntime(t *testing.T) {
	needVM(t)
	t.Parallel()
	pm, tarball := newPodmanRig(t, ociRootfs)
	podman, podmanCmd := pm.run, pm.cmd
	if r := podman("import", "--change", `ENTRYPOINT ["/bin/ocihello"]`, tarball, "localhost/nos-ocihello:test"); r.code != 0 {
		t.Fatalf("import: %v", r)
	}
	began := time.Now()
	r := podman("run", "--rm", "--network", "none", "-e", "FOO=bar", "localhost/nos-ocihello:test", "info")
	t.Logf("podman run --rm took %v", time.Since(began).Round(time.Millisecond))
	if r.code != 0 || !strings.Contains(r.stdout, "marker=from the rootfs") || !strings.Contains(r.stdout, "FOO=bar") || !strings.Contains(r.stderr, "to stderr") {
		t.Errorf("podman run --rm: %v", r)
	}
	// The files podman bind-mounts reach the guest as copies (with
	// --network none it makes no resolv.conf).
	r = podman("run", "--rm", "--network", "none", "--hostname", "myhost", "--add-host", "db.example:10.1.2.3", "localhost/nos-ocihello:test", "files")
	for _, want := range []string{"== /etc/hostname err=<nil>\nmyhost", "10.1.2.3\tdb.example", "== /run/.containerenv err=<nil>"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("podman run files: no %q in %v", want, r)
		}
	}
	// --ulimit, --tmpfs and -v of a host directory: rlimits set by
	// nos-init, a tmpfs in the guest, the directory shared by virtiofs.
	data := t.TempDir()
	writeFile(t, filepath.Join(data, "from-host"), "written on the host", 0o644)
	r = podman("run", "--rm", "--network", "none", "--ulimit", "nproc=500:600", "--tmpfs", "/scratch:size=8m", "-v", data+":/data", "localhost/nos-ocihello:test", "mounts")
	for _, want := range []string{"nproc=500:600", "scratch tmpfs=true size=8388608", "data=written on the host err=<nil>", "write=<nil>"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("podman run mounts: no %q in %v", want, r)
		}
	}
	if b, err := os.ReadFile(filepath.Join(data, "from-guest")); err != nil || string(b) != "written in the VM" {
		t.Errorf("the guest's write to the shared directory: %q, %v", b, err)
	}
	if r := podman("run", "--rm", "--network", "none", "localhost/nos-ocihello:test", "exit", "7"); r.code != 7 {
		t.Errorf("podman run exit 7: %v", r)
	}
	// -i: podman's stdin reaches the app, and its end is the app's EOF.
	cmd := podmanCmd("run", "-i", "--rm", "--network", "none", "localhost/nos-ocihello:test", "cat")
	cmd.Stdin = strings.NewReader("piped data\n")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "piped data\n\nEOF after 11 bytes err=<nil>") {
		t.Errorf("echo data | podman run -i cat: %v\n%s", err, out)
	}
	// Without -i the app's stdin is empty, even when podman's is not.
	cmd = podmanCmd("run", "--rm", "--network", "none", "localhost/nos-ocihello:test", "cat")
	cmd.Stdin = strings.NewReader("not for the app\n")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "EOF after 0 bytes err=<nil>") {
		t.Errorf("podman run cat (no -i): %v\n%s", err, out)
	}
	// -it on our terminal: the app's terminal has its size, gets what is
	// typed and sees its resize.
	p := runOnPTY(t, podmanCmd("run", "-it", "--rm", "--network", "none", "localhost/nos-ocihello:test", "tty"), 33, 99)
	p.waitOutput("tty rows=33 cols=99", 3*time.Minute)
	if _, err := p.master.Write([]byte("hello\r")); err != nil {
		t.Fatal(err)
	}
	p.waitOutput(`got "hello\n"`, time.Minute)
	p.resize(40, 120)
	p.waitOutput("winch rows=40 cols=120", time.Minute)
	if code := p.wait(time.Minute); code != 0 {
		t.Errorf("podman run -it: exit %d:\n%s", code, p.out.String())
	}

	r = podman("run", "-d", "--network", "none", "localhost/nos-ocihello:test", "wait")
	if r.code != 0 {
		t.Fatalf("podman run -d: %v", r)
	}
	id := strings.TrimSpace(r.stdout)
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(podman("logs", id).stdout, "waiting") && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	// podman exec: a program of the image runs beside the app, through
	// nos-runtime exec and nos-init, with its output, stdin, exit code and
	// terminal.
	if r := podman("exec", "-e", "EXTRA=1", id, "/bin/ocihello", "info"); r.code != 0 || !strings.Contains(r.stdout, "marker=from the rootfs") || !strings.Contains(r.stdout, "env EXTRA=1") || !strings.Contains(r.stdout, "env container=podman") {
		t.Errorf("podman exec info: %v", r)
	}
	if r := podman("exec", id, "/bin/ocihello", "exit", "5"); r.code != 5 {
		t.Errorf("podman exec exit 5: %v", r)
	}
	if r := podman("exec", id, "/bin/no-such-program"); r.code == 0 || !strings.Contains(r.stderr, "no-such-program") {
		t.Errorf("podman exec of a missing program: %v", r)
	}
	cmd = podmanCmd("exec", "-i", id, "/bin/ocihello", "cat")
	cmd.Stdin = strings.NewReader("to exec\n")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "to exec\n\nEOF after 8 bytes err=<nil>") {
		t.Errorf("echo data | podman exec -i cat: %v\n%s", err, out)
	}
	p = runOnPTY(t, podmanCmd("exec", "-it", id, "/bin/ocihello", "tty"), 25, 81)
	p.waitOutput("tty rows=25 cols=81", 2*time.Minute)
	if _, err := p.master.Write([]byte("typed\r")); err != nil {
		t.Fatal(err)
	}
	p.waitOutput(`got "typed\n"`, time.Minute)
	p.resize(30, 90)
	p.waitOutput("winch rows=30 cols=90", time.Minute)
	if code := p.wait(time.Minute); code != 0 {
		t.Errorf("podman exec -it: exit %d:\n%s", code, p.out.String())
	}
	if r := podman("stop", "-t", "60", id); r.code != 0 {
		t.Errorf("podman stop: %v", r)
	}
	if r := podman("inspect", "--format", "{{.State.ExitCode}}", id); strings.TrimSpace(r.stdout) != "0" {
		t.Errorf("exit code after stop: %v", r)
	}
	if r := podman("logs", id); !strings.Contains(r.stdout, "got SIGTERM") {
		t.Errorf("the app did not see SIGTERM: %v", r)
	}
	if r := podman("rm", id); r.code != 0 {
		t.Errorf("podman rm: %v", r)
	}
	// podman kill: SIGKILL forces the VM off, 137.
	r = podman("run", "-d", "--network", "none", "localhost/nos-ocihello:test", "wait")
	if r.code != 0 {
		t.Fatalf("podman run -d: %v", r)
	}
	id = strings.TrimSpace(r.stdout)
	if r := podman("kill", id); r.code != 0 {
		t.Errorf("podman kill: %v", r)
	}
	if r := podman("wait", id); strings.TrimSpace(r.stdout) != "137" {
		t.Errorf("exit code after podman kill: %v", r)
	}
	if r := podman("exec", id, "/bin/ocihello", "info"); r.code == 0 {
		t.Errorf("podman exec in a stopped container: %v", r)
	}
	if r := podman("rm", id); r.code != 0 {
		t.Errorf("podman rm: %v", r)
	}
	podman("rmi", "localhost/nos-ocihello:test")
}

// podmanRig is rootful podman with its storage in a test's directory,
// running containers with nos-runtime on the test's kernel.
type podmanRig struct {
	t       *testing.T
	dir, rt string
}

// newPodmanRig makes a rig and a tarball of a root tree fill makes, for
// podman import.
func newPodmanRig(t *testing.T, fill func(*testing.T, string)) (*podmanRig, string) {
	t.Helper()
	if _, err := exec.LookPath("podman"); err != nil {
		t.Fatal("podman is not installed (apt-get install podman; .ci/run installs it)")
	}
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	fill(t, rootfs)
	tarball := filepath.Join(dir, "rootfs.tar")
	if out, err := exec.Command("tar", "-C", rootfs, "-cf", tarball, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	return &podmanRig{t: t, dir: dir, rt: runtimeBin(t)}, tarball
}

// cmd is podman with args, not started.
func (p *podmanRig) cmd(args ...string) *exec.Cmd {
	cmd := exec.Command("podman", append([]string{"--root", filepath.Join(p.dir, "storage"), "--runroot", filepath.Join(p.dir, "run"), "--runtime", p.rt}, args...)...)
	cmd.Env = append(os.Environ(), "NOS_RUNTIME_KERNEL="+ociKernel(p.t))
	return cmd
}

// run runs podman with args and returns its output and exit code.
func (p *podmanRig) run(args ...string) result {
	cmd := p.cmd(args...)
	var so, se strings.Builder
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if x, ok := err.(*exec.ExitError); ok {
		code = x.ExitCode()
	} else if err != nil {
		p.t.Fatalf("podman %v: %v", args, err)
	}
	return result{stdout: so.String(), stderr: se.String(), code: code}
}
