package kernel

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseDepends(t *testing.T) {
	tests := map[string]struct{ out, want string }{
		"debian": {"linux-image-cloud-amd64\n  Depends: linux-image-6.1.0-56-cloud-amd64\n", "linux-image-6.1.0-56-cloud-amd64"},
		"first wins": {"linux-image-amd64\n |Depends: linux-image-6.1.0-2-amd64\n  Depends: linux-image-6.1.0-1-amd64\n",
			"linux-image-6.1.0-2-amd64"},
		"others first": {"m\n  PreDepends: linux-image-9\n  Depends: initramfs-tools\n  Depends: <linux-image-6.1.0-3-amd64>\n",
			"linux-image-6.1.0-3-amd64"},
		"recommends only": {"m\n  Recommends: linux-image-6.1.0-1-amd64\n", ""},
		"empty":           {"", ""},
	}
	for name, tt := range tests {
		if got := parseDepends([]byte(tt.out)); got != tt.want {
			t.Errorf("%s: got %q, want %q", name, got, tt.want)
		}
	}
}

func TestPackageVersion(t *testing.T) {
	tests := map[string]string{
		"linux-image-6.1.0-56-cloud-amd64":          "6.1.0-56-cloud-amd64",
		"linux-image-6.1.0-56-cloud-amd64-unsigned": "6.1.0-56-cloud-amd64",
		"linux-image-cloud-amd64":                   "",
		"linux-image-":                              "",
		"linux-headers-6.1.0-56-amd64":              "",
		"linux-image-6.1/../../etc":                 "",
	}
	for pkg, want := range tests {
		if got := packageVersion(pkg); got != want {
			t.Errorf("packageVersion(%q) = %q, want %q", pkg, got, want)
		}
	}
}

// fakeApt stands in for apt-cache, apt-get and dpkg-deb.
type fakeApt struct {
	t          *testing.T
	cacheDir   string
	depends    string // apt-cache depends output
	version    string // the kernel version the package unpacks
	unpackFail bool
	calls      []string
}

func (f *fakeApt) run(_ context.Context, dir, name string, args ...string) ([]byte, error) {
	f.calls = append(f.calls, strings.Join(append([]string{name}, args...), " "))
	switch name {
	case "apt-cache":
		return []byte(f.depends), nil
	case "apt-get":
		writeFile(f.t, dir, args[1]+"_1_amd64.deb", []byte("!<arch>\n"))
		return nil, nil
	case "dpkg-deb":
		return nil, f.unpack(dir, args)
	}
	return nil, errors.New("unexpected command " + name)
}

func (f *fakeApt) unpack(dir string, args []string) error {
	if len(args) != 3 || args[0] != "-x" || filepath.Dir(args[1]) != dir ||
		!strings.HasPrefix(args[2], filepath.Join(f.cacheDir, ".tmp-")) {
		f.t.Errorf("dpkg-deb %v: want -x <deb in %s> <cache>/.tmp-*", args, dir)
	}
	dest := args[2]
	writeFile(f.t, dest, "boot/vmlinuz-"+f.version, fakeBzImage(""))
	if f.unpackFail {
		return errors.New("dpkg-deb: boom")
	}
	writeFile(f.t, dest, "boot/config-"+f.version, nil)
	writeFile(f.t, dest, "lib/modules/"+f.version+"/modules.builtin", nil)
	return nil
}

// entries lists the names in dir.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func TestFetch(t *testing.T) {
	const v = "6.1.0-56-cloud-amd64"
	cache := filepath.Join(t.TempDir(), "kernels")
	apt := &fakeApt{t: t, cacheDir: cache, version: v,
		depends: "linux-image-cloud-amd64\n  Depends: linux-image-" + v + "\n"}
	f := fetcher{run: apt.run}
	k, err := f.fetch(context.Background(), cache, "")
	if err != nil {
		t.Fatal(err)
	}
	want := &Kernel{
		Version:    v,
		Path:       filepath.Join(cache, v, "boot/vmlinuz-"+v),
		ModulesDir: filepath.Join(cache, v, "lib/modules", v),
		ConfigPath: filepath.Join(cache, v, "boot/config-"+v),
		Origin:     "cache",
	}
	if diff := cmp.Diff(want, k); diff != "" {
		t.Errorf("fetch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{v}, entries(t, cache)); diff != "" {
		t.Errorf("cache entries (-want +got):\n%s", diff)
	}
	wantCalls := []string{"apt-cache depends linux-image-cloud-amd64", "apt-get download linux-image-" + v}
	if len(apt.calls) != 3 || !cmp.Equal(wantCalls, apt.calls[:2]) {
		t.Errorf("calls = %q, want %q then dpkg-deb", apt.calls, wantCalls)
	}
	if found, err := (Cache{Dir: cache}).Find(context.Background()); err != nil || !cmp.Equal(found, want) {
		t.Errorf("Cache.Find after fetch = %+v, %v", found, err)
	}

	// Already there: nothing downloaded.
	apt.calls = nil
	k, err = f.fetch(context.Background(), cache, "linux-image-"+v)
	if err != nil || !cmp.Equal(k, want) || len(apt.calls) != 0 {
		t.Errorf("second fetch = %+v, %v with calls %q; want the cached kernel, no calls", k, err, apt.calls)
	}
}

func TestFetchUnpackFails(t *testing.T) {
	cache := t.TempDir()
	apt := &fakeApt{t: t, cacheDir: cache, version: "6.1.0-1-amd64", unpackFail: true}
	_, err := fetcher{run: apt.run}.fetch(context.Background(), cache, "linux-image-6.1.0-1-amd64")
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("err = %v, want the dpkg-deb failure", err)
	}
	if left := entries(t, cache); len(left) != 0 {
		t.Errorf("cache holds %q after a failed fetch, want nothing", left)
	}
}

func TestFetchNotAKernelPackage(t *testing.T) {
	cache := t.TempDir()
	apt := &fakeApt{t: t, cacheDir: cache, depends: "bash\n  Depends: libc6\n"}
	_, err := fetcher{run: apt.run}.fetch(context.Background(), cache, "bash")
	if err == nil || !strings.Contains(err.Error(), "no linux-image-* dependency") {
		t.Errorf("err = %v, want no linux-image-* dependency", err)
	}
	if len(apt.calls) != 1 {
		t.Errorf("calls = %q, want apt-cache only", apt.calls)
	}
}

func TestExecRun(t *testing.T) {
	ctx := context.Background()
	_, err := execRun(ctx, "", "nos-test-no-such-command", "x")
	if err == nil || !strings.Contains(err.Error(), "nos-test-no-such-command") {
		t.Errorf("missing command: err = %v, want one naming it", err)
	}
	_, err = execRun(ctx, "", "sh", "-c", "echo noise >&2; echo one >&2; echo two >&2; echo three >&2; exit 3")
	if err == nil || !strings.HasSuffix(err.Error(), ": exit status 3: one | two | three") {
		t.Errorf("failing command: err = %v, want exit status 3 with the stderr tail", err)
	}
	dir := t.TempDir()
	out, err := execRun(ctx, dir, "pwd")
	if err != nil || strings.TrimSpace(string(out)) != dir {
		t.Errorf("pwd in %s = %q, %v", dir, out, err)
	}
}
