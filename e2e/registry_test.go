package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"
)

// testRegistry is Debian's docker-registry serving a temporary directory
// on a loopback port.
type testRegistry struct {
	addr string
	data string // its storage root
	log  string // its log file, access log included
}

// startRegistryWith runs docker-registry with the extra YAML config
// (e.g. an auth section) until the test ends.
func startRegistryWith(t *testing.T, extra string) testRegistry {
	t.Helper()
	bin := needProgram(t, "docker-registry")
	dir := t.TempDir()
	r := testRegistry{addr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), data: filepath.Join(dir, "data"), log: filepath.Join(dir, "registry.log")}
	conf := filepath.Join(dir, "config.yml")
	writeFile(t, conf, fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n%s", r.data, r.addr, extra), 0o644)
	logf, err := os.Create(r.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting docker-registry: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		logf.Close()
	})
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get("http://" + r.addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return r
			}
		}
		select {
		case <-exited:
		case <-time.After(100 * time.Millisecond):
			if time.Now().Before(deadline) {
				continue
			}
		}
		b, _ := os.ReadFile(r.log)
		t.Fatalf("docker-registry did not answer on %s: %v\n%s", r.addr, err, b)
	}
}

// blobGets counts the blob downloads in the registry's access log.
func (r testRegistry) blobGets(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(r.log)
	if err != nil {
		t.Fatal(err)
	}
	return len(regexp.MustCompile(`"GET /v2/[^ ]*/blobs/sha256:`).FindAll(b, -1))
}

// blobFile is where the registry keeps blob d.
func (r testRegistry) blobFile(d string) string {
	hex := strings.TrimPrefix(d, "sha256:")
	return filepath.Join(r.data, "docker", "registry", "v2", "blobs", "sha256", hex[:2], hex, "data")
}

// registryEnv is a fresh nos home whose docker config is a temporary
// directory, so that nothing touches the real ~/.docker.
func registryEnv(t *testing.T) *nosEnv {
	t.Helper()
	e := newEnv(t)
	e.env = append(e.env, "DOCKER_CONFIG="+t.TempDir())
	return e
}

// nosInput runs nos with stdin.
func (e *nosEnv) nosInput(stdin string, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, nosBin, args...)
	cmd.Dir, cmd.Env, cmd.Stdin = repoRoot, e.env, strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var xe *exec.ExitError
	if errors.As(err, &xe) {
		r.code = xe.ExitCode()
	} else if err != nil {
		e.t.Fatalf("nos %v: %v", args, err)
	}
	return r
}

// imageDigest is the manifest digest of a stored image.
func (e *nosEnv) imageDigest(ref string) string {
	e.t.Helper()
	var got []struct{ Digest string }
	r := e.nos("inspect", ref)
	if r.code != 0 || jsonUnmarshal(r.stdout, &got) != nil || len(got) != 1 {
		e.t.Fatalf("inspect %s: %v", ref, r)
	}
	return got[0].Digest
}

// oneLineError checks that a failed nos command said why in one line.
func oneLineError(t *testing.T, what string, r result, want ...string) {
	t.Helper()
	last := lastLine(r.stderr)
	if r.code == 0 || !strings.HasPrefix(last, "nos: ") || strings.Count(strings.TrimSpace(r.stderr), "\n") > 2 {
		t.Fatalf("%s: want a one-line nos: error, got %v", what, r)
	}
	for _, w := range want {
		if !strings.Contains(last, w) {
			t.Errorf("%s: the error does not say %q: %s", what, w, last)
		}
	}
}

var pushedDigest = regexp.MustCompile(`digest: (sha256:[0-9a-f]{64}) size: \d+`)

func TestRegistryPushPullRun(t *testing.T) {
	t.Parallel()
	reg := startRegistryWith(t, "")
	a := registryEnv(t)
	a.build("web", "./examples/httpserver", "--port", "8080")
	ref := reg.addr + "/nos/web:1"
	r := a.nos("push", "web", ref)
	m := pushedDigest.FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil {
		t.Fatalf("push: %v", r)
	}
	digest := m[1]
	if got := a.imageDigest(ref); got != digest {
		t.Errorf("push tagged %s locally as %s, pushed %s", ref, got, digest)
	}

	b := registryEnv(t)
	r = b.nos("pull", ref)
	if r.code != 0 || !strings.Contains(r.stdout, "Digest: "+digest) || !strings.Contains(r.stdout, "Downloaded newer image") {
		t.Fatalf("pull: %v", r)
	}
	if got := b.imageDigest(ref); got != digest {
		t.Fatalf("pulled %s, pushed %s", got, digest)
	}
	port := freePort(t)
	id := b.runDetached("-p", fmt.Sprintf("127.0.0.1:%d:8080", port), ref)
	body := waitHTTP(t, nil, fmt.Sprintf("http://127.0.0.1:%d/", port), 2*time.Minute)
	if !strings.HasPrefix(body, "Hello from a nos VM\n") {
		b.dump(id)
		t.Errorf("unexpected body %q", body)
	}

	// A second pull fetches the manifest only.
	gets := reg.blobGets(t)
	r = b.nos("pull", ref)
	if r.code != 0 || !strings.Contains(r.stdout, "Image is up to date for "+ref) || reg.blobGets(t) != gets {
		t.Fatalf("second pull: %v (blob GETs %d -> %d)", r, gets, reg.blobGets(t))
	}

	// nos run pulls what the store lacks.
	c := registryEnv(t)
	port = freePort(t)
	r = c.nos("run", "-d", "--accel", accel, "-p", fmt.Sprintf("127.0.0.1:%d:8080", port), ref)
	id = strings.TrimSpace(r.stdout)
	if r.code != 0 || !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(id) || !strings.Contains(r.stderr, "Unable to find image") {
		t.Fatalf("run of an image not in the store: %v", r)
	}
	t.Cleanup(func() { c.nos("rm", "-f", id) })
	waitHTTP(t, nil, fmt.Sprintf("http://127.0.0.1:%d/", port), 2*time.Minute)
	if r := c.nos("run", "--pull", "never", "--accel", accel, "--rm", reg.addr+"/nos/absent:1"); r.code == 0 {
		t.Errorf("run --pull never of an absent image: %v", r)
	}

	// A blob corrupted in the registry's storage: the pull fails with a
	// digest error and the store is as it was.
	var layers []struct {
		Manifest struct{ Layers []struct{ Digest string } }
	}
	if err := jsonUnmarshal(b.nos("inspect", ref).stdout, &layers); err != nil || len(layers) != 1 || len(layers[0].Manifest.Layers) < 2 {
		t.Fatalf("inspect: %v", err)
	}
	blob := reg.blobFile(layers[0].Manifest.Layers[1].Digest)
	data, err := os.ReadFile(blob)
	if err != nil {
		t.Fatalf("the registry's copy of the initramfs: %v", err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(blob, data, 0o644); err != nil {
		t.Fatal(err)
	}
	d := registryEnv(t)
	d.nos("images")
	before := snapshot(t, d.home)
	r = d.nos("pull", ref)
	oneLineError(t, "pull of a corrupted blob", r, "digest mismatch", layers[0].Manifest.Layers[1].Digest)
	if diff := cmp.Diff(before, snapshot(t, d.home)); diff != "" {
		t.Errorf("a failed pull changed the store:\n%s", diff)
	}
}

func TestRegistryAuth(t *testing.T) {
	t.Parallel()
	hash, err := bcrypt.GenerateFromPassword([]byte("pass word"), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	writeFile(t, htpasswd, "u:"+string(hash)+"\n", 0o644)
	reg := startRegistryWith(t, fmt.Sprintf("auth:\n  htpasswd:\n    realm: nos-test\n    path: %s\n", htpasswd))
	e := registryEnv(t)
	e.build("web", "./examples/httpserver")
	ref := reg.addr + "/nos/web:1"

	oneLineError(t, "push without credentials", e.nos("push", "web", ref), "nos login "+reg.addr)
	oneLineError(t, "login with a wrong password", e.nosInput("wrong\n", "login", reg.addr, "-u", "u", "--password-stdin"), "refused")
	if r := e.nosInput("pass word\n", "login", reg.addr, "-u", "u", "--password-stdin"); r.code != 0 || !strings.Contains(r.stdout, "Login Succeeded") {
		t.Fatalf("login: %v", r)
	}
	var conf string
	for _, kv := range e.env {
		if v, ok := strings.CutPrefix(kv, "DOCKER_CONFIG="); ok {
			conf = filepath.Join(v, "config.json")
		}
	}
	if fi, err := os.Stat(conf); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file %s: %v, %v", conf, fi, err)
	}
	if r := e.nos("push", "web", ref); r.code != 0 {
		t.Fatalf("push after login: %v", r)
	}
	f := registryEnv(t)
	oneLineError(t, "pull without credentials", f.nos("pull", ref), "nos login")
	if r := e.nos("logout", reg.addr); r.code != 0 || !strings.Contains(r.stdout, "Removing login credentials") {
		t.Fatalf("logout: %v", r)
	}
	oneLineError(t, "push after logout", e.nos("push", "web", ref), "nos login "+reg.addr)
}

func TestSaveLoad(t *testing.T) {
	t.Parallel()
	a := registryEnv(t)
	digest := a.build("web", "./examples/httpserver")
	a.build("hello", "./examples/hello")
	archive := filepath.Join(t.TempDir(), "images.tar")
	if r := a.nos("save", "-o", archive, "web", "hello"); r.code != 0 {
		t.Fatalf("save: %v", r)
	}
	// Standard output when it is not a terminal: the same bytes.
	r := a.nos("save", "web", "hello")
	saved, err := os.ReadFile(archive)
	if err != nil || r.code != 0 || r.stdout != string(saved) {
		t.Fatalf("save to stdout differs from save -o: %v", err)
	}
	if out, err := exec.Command("tar", "tf", archive).Output(); err != nil || !strings.Contains(string(out), "oci-layout") || !strings.Contains(string(out), "index.json") || !strings.Contains(string(out), "blobs/sha256/"+strings.TrimPrefix(digest, "sha256:")) {
		t.Fatalf("tar tf: %v\n%s", err, out)
	}

	b := registryEnv(t)
	if r := b.nos("load", "-i", archive); r.code != 0 || !strings.Contains(r.stdout, "Loaded image: web:latest") || !strings.Contains(r.stdout, "Loaded image: hello:latest") {
		t.Fatalf("load: %v", r)
	}
	if got := b.imageDigest("web"); got != digest {
		t.Fatalf("loaded %s, saved %s", got, digest)
	}
	if r := b.run("--rm", "hello"); r.code != 0 || r.stdout != "Hello, world!\n" {
		t.Fatalf("the loaded image does not run: %v", r)
	}

	// One byte flipped, in a layer, in a manifest and in a tar header:
	// refused, nothing stored. (index.json itself is not content-addressed:
	// a changed tag name there cannot be told from a real one.)
	c := registryEnv(t)
	c.nos("images")
	before := snapshot(t, c.home)
	inManifest := bytes.Index(saved, []byte(`"application/vnd.nos.kernel.v1"`)) + 5
	for _, off := range []int{len(saved) / 2, inManifest, 1024 + 10} {
		bad := bytes.Clone(saved)
		bad[off] ^= 0x01
		p := filepath.Join(t.TempDir(), "bad.tar")
		if err := os.WriteFile(p, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		r := c.nos("load", "-i", p)
		oneLineError(t, fmt.Sprintf("load with byte %d flipped", off), r, "load")
		if diff := cmp.Diff(before, snapshot(t, c.home)); diff != "" {
			t.Fatalf("a refused load changed the store:\n%s", diff)
		}
	}
}

func TestRegistryBadInput(t *testing.T) {
	t.Parallel()
	e := registryEnv(t)
	e.nos("images")
	before := snapshot(t, e.home)

	closed := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	oneLineError(t, "nothing listening", e.nos("pull", closed+"/nos/web:1"), "nothing answers", closed)

	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	start := time.Now()
	oneLineError(t, "a listener that never replies", e.nos("pull", silent.Addr().String()+"/nos/web:1"), "did not answer")
	if d := time.Since(start); d > 75*time.Second {
		t.Errorf("a silent registry took %v to give up", d)
	}

	oneLineError(t, "a malformed reference", e.nos("pull", "127.0.0.1:5000/Bad Name"), "invalid reference")
	oneLineError(t, "a malformed push reference", e.nos("push", "web", "a b"), "invalid reference")

	// A plain container image in a real registry: refused with the hint.
	reg := startRegistryWith(t, "")
	plain, err := name.ParseReference(reg.addr+"/library/plain:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(plain, img); err != nil {
		t.Fatal(err)
	}
	oneLineError(t, "a container image", e.nos("pull", plain.String()), "nos build --from-oci "+plain.String())
	if r := e.nos("run", "--accel", accel, plain.String()); r.code != 125 || !strings.Contains(r.stderr, "nos build --from-oci") {
		t.Errorf("run of a container image: %v", r)
	}
	if diff := cmp.Diff(before, snapshot(t, e.home)); diff != "" {
		t.Errorf("refused pulls changed the store:\n%s", diff)
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
