package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// snapshot records every file of a nos home's image store with its hash.
func snapshot(t *testing.T, home string) map[string]string {
	t.Helper()
	files := map[string]string{}
	root := filepath.Join(home, "images")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "lock" {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		rel, _ := filepath.Rel(root, p)
		files[rel] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return files
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.build("hello", "./examples/hello")

	tmp := t.TempDir()
	armELF := filepath.Join(tmp, "hello-arm64")
	goBuild(t, armELF, "arm64", "./examples/hello")
	emptyBoot := t.TempDir()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := strconv.Itoa(busy.Addr().(*net.TCPAddr).Port)
	noQEMU := t.TempDir() // a PATH without QEMU

	cases := []struct {
		name string
		args []string
		env  []string
		want string // in the one-line error
	}{
		{"not a main package", []string{"build", "--kernel", kernelPath, "./image"}, nil, "not a main package"},
		{"needs cgo", []string{"build", "--kernel", kernelPath, "./e2e/testdata/cgo"}, nil, "needs cgo"},
		{"no such package", []string{"build", "--kernel", kernelPath, "./no/such/dir"}, nil, "no/such/dir"},
		{"wrong architecture", []string{"build", "--kernel", kernelPath, armELF}, nil, "wrong architecture"},
		{"rootfs without entrypoint", []string{"build", "--kernel", kernelPath, "--rootfs", "./examples"}, nil, "needs --entrypoint"},
		{"two sources", []string{"build", "--kernel", kernelPath, "--rootfs", "./examples", "--from-oci", "x"}, nil, "give one of"},
		{"unknown capability", []string{"build", "--kernel", kernelPath, "--cap-add", "FLY", "./examples/hello"}, nil, "unknown capability"},
		{"unknown user", []string{"build", "--kernel", kernelPath, "--user", "www-data", "./examples/hello"}, nil, "not in the image's /etc/passwd"},
		{"missing program", []string{"build", "--kernel", kernelPath, "/no/such/program"}, nil, "/no/such/program"},
		{"not a kernel", []string{"build", "--kernel", "/etc/hostname", "./examples/hello"}, nil, "not a kernel"},
		{"no kernel", []string{"build", "./examples/hello"}, []string{"NOS_BOOT_DIR=" + emptyBoot}, "nos kernel fetch"},
		{"bad tag", []string{"build", "--kernel", kernelPath, "-t", "Bad Name", "./examples/hello"}, nil, "invalid reference"},
		{"bad build memory", []string{"build", "--kernel", kernelPath, "--memory", "lots", "./examples/hello"}, nil, "memory"},
		{"image not found", []string{"run", "--accel", "tcg", "nosuchimage"}, nil, "not found"},
		{"malformed -p", []string{"run", "--accel", "tcg", "-p", "80", "hello"}, nil, "HOSTPORT:GUESTPORT"},
		{"malformed -p port", []string{"run", "--accel", "tcg", "-p", "99999:80", "hello"}, nil, "not a port number"},
		{"malformed -p proto", []string{"run", "--accel", "tcg", "-p", "8080:80/sctp", "hello"}, nil, "tcp or udp"},
		{"malformed -e", []string{"run", "--accel", "tcg", "-e", "=value", "hello"}, nil, "KEY=VALUE"},
		{"malformed --memory", []string{"run", "--accel", "tcg", "--memory", "12x", "hello"}, nil, "memory"},
		{"too little memory", []string{"run", "--accel", "tcg", "--memory", "4m", "hello"}, nil, "below"},
		// Debian's kernel decompresses from 16 MiB over 51 MiB: hello's
		// initramfs at the top of 24 MiB would be overwritten.
		{"memory too small to load", []string{"run", "--accel", "tcg", "--memory", "24m", "hello"}, nil, "too small for image hello"},
		{"bad accel", []string{"run", "--accel", "warp", "hello"}, nil, "auto, kvm or tcg"},
		{"host port in use", []string{"run", "--accel", "tcg", "-p", "127.0.0.1:" + busyPort + ":80", "hello"}, nil, "already in use"},
		{"QEMU missing", []string{"run", "--accel", "tcg", "hello"}, []string{"PATH=" + noQEMU}, "apt-get install qemu-system-x86"},
		{"rmi unknown", []string{"rmi", "hello", "nosuchimage"}, nil, "not found"},
		{"tag unknown", []string{"tag", "nosuchimage", "other"}, nil, "not found"},
		{"inspect unknown", []string{"inspect", "nosuchimage"}, nil, "not found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := snapshot(t, e.home)
			ce := &nosEnv{t: t, home: e.home, env: append(append([]string(nil), e.env...), c.env...)}
			r := ce.nos(c.args...)
			if r.code == 0 {
				t.Fatalf("want failure, got %v", r)
			}
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "nos: ") || !strings.Contains(last, c.want) {
				t.Errorf("want a one-line error mentioning %q, got stderr:\n%s", c.want, r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout should be empty on error, got %q", r.stdout)
			}
			if diff := cmp.Diff(before, snapshot(t, e.home)); diff != "" {
				t.Errorf("store changed (-before +after):\n%s", diff)
			}
		})
	}
}

func goBuild(t *testing.T, out, arch, pkg string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
}
