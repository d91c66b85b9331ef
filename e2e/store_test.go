package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestReproducibleBuilds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	first := e.build("hello", "./examples/hello")
	second := e.build("hello", "./examples/hello")
	other := newEnv(t)
	third := other.build("hello", "./examples/hello")
	if !strings.HasPrefix(first, "sha256:") || first != second || first != third {
		t.Fatalf("same inputs, different digests: %s %s %s", first, second, third)
	}
	// A prebuilt static executable is packaged as it is; an import path works too.
	elf := filepath.Join(t.TempDir(), "hello")
	goBuild(t, elf, "amd64", "./examples/hello")
	d := e.build("hello-elf", elf)
	if d == first {
		t.Fatalf("an ELF built with other flags gave the same digest as the package")
	}
	r := e.run("--rm", "hello-elf")
	if r.code != 0 || r.stdout != "Hello, world!\n" {
		t.Fatalf("prebuilt ELF image: %v", r)
	}
	e.build("hello-imp", "github.com/nosproject/nos/examples/hello")
}

func TestImageCommands(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	digest := e.build("hello", "./examples/hello", "--port", "8080", "--memory", "128m", "-e", "A=1", "--arg", "x")
	e.build("httpserver", "./examples/httpserver")

	r := e.nos("images")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "NAME") || !strings.Contains(r.stdout, "hello") || !strings.Contains(r.stdout, digest[7:19]) {
		t.Fatalf("images: %v", r)
	}
	if r := e.nos("tag", "hello", "hello:v2"); r.code != 0 {
		t.Fatalf("tag: %v", r)
	}
	r = e.nos("inspect", "hello:v2")
	var got []struct {
		Digest string
		Config struct {
			Entrypoint   []string
			Args         []string
			Env          []string
			ExposedPorts []string
			MemoryMiB    int
			Kernel       struct{ Digest string }
		}
		Manifest struct {
			Layers []struct{ Digest, MediaType string }
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || len(got) != 1 {
		t.Fatalf("inspect output is not JSON: %v\n%v", err, r)
	}
	c := got[0].Config
	if l := got[0].Manifest.Layers; len(l) != 2 || c.Kernel.Digest == "" || c.Kernel.Digest != l[0].Digest {
		t.Fatalf("the image must record the exact kernel it boots: config %q, layers %+v", c.Kernel.Digest, l)
	}
	if got[0].Digest != digest || c.MemoryMiB != 128 || len(c.ExposedPorts) != 1 || c.ExposedPorts[0] != "8080/tcp" || !slices.Contains(c.Env, "A=1") || !slices.Contains(c.Env, "ZONEINFO=/usr/share/zoneinfo.zip") || c.Args[0] != "x" || c.Entrypoint[0] != "/app/hello" {
		t.Fatalf("inspect: %+v", got[0])
	}
	// Digest prefixes resolve.
	if r := e.nos("inspect", digest[7:19]); r.code != 0 {
		t.Fatalf("inspect by digest prefix: %v", r)
	}
	blobs := func() int {
		ents, err := os.ReadDir(filepath.Join(e.home, "images", "blobs", "sha256"))
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	n := blobs()
	// Removing one of two tags keeps the blobs; removing the last frees them
	// except the kernel, which httpserver still uses.
	if r := e.nos("rmi", "hello:v2"); r.code != 0 || blobs() != n {
		t.Fatalf("rmi of one tag: %v, blobs %d -> %d", r, n, blobs())
	}
	if r := e.nos("rmi", "hello"); r.code != 0 || blobs() != n-3 || !strings.Contains(r.stdout, "Deleted: sha256:") {
		t.Fatalf("rmi of the last tag: %v, blobs %d -> %d", r, n, blobs())
	}
	if r := e.nos("images", "-q"); strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("images after rmi: %v", r)
	}
	if r := e.nos("system", "prune"); r.code != 0 {
		t.Fatalf("prune: %v", r)
	}
}
