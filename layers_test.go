package nos_test

// The layers of nos, enforced: like go-containerregistry's depcheck, this
// test fails when a package imports one it must not know. The flow is one
// way — source → assemble → store → bootable → vmm → instance → cli — and
// the contracts (image, guestapi) and low-level helpers (internal/...)
// know none of it. guest/deps_test.go keeps the guest init itself free of
// every host package.

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const module = "github.com/nosproject/nos/"

// forbidden maps a package (and its subpackages) to the nos packages it
// must not depend on, directly or not.
var forbidden = map[string][]string{
	"image":             {"assemble", "build", "store", "bootable", "vmm", "instance", "internal/cli", "cli", "kernel", "oci"},
	"guestapi":          {"assemble", "build", "store", "bootable", "vmm", "instance", "internal/cli", "cli", "kernel", "oci", "image"},
	"store":             {"assemble", "build", "bootable", "vmm", "instance", "internal/cli", "cli", "kernel", "oci"},
	"internal/fsutil":   {"assemble", "build", "store", "bootable", "vmm", "instance", "internal/cli", "cli", "kernel", "oci", "image"},
	"internal/lockfile": {"assemble", "build", "store", "bootable", "vmm", "instance", "internal/cli", "cli", "kernel", "oci", "image"},
	"internal/home":     {"assemble", "build", "store", "bootable", "vmm", "instance", "internal/cli", "cli", "kernel", "oci", "image"},
	"bootable":          {"assemble", "build", "vmm", "instance", "internal/cli", "cli"},
	"vmm":               {"assemble", "build", "store", "bootable", "instance", "internal/cli", "cli", "kernel", "oci", "image"},
	"kernel":            {"assemble", "build", "store", "bootable", "vmm", "instance", "internal/cli", "cli"},
	"oci":               {"assemble", "build", "store", "bootable", "vmm", "instance", "internal/cli", "cli", "kernel"},
	"assemble":          {"bootable", "vmm", "instance", "internal/cli", "cli"},
	"build":             {"bootable", "vmm", "instance", "internal/cli", "cli"},
	"instance":          {"assemble", "build", "internal/cli", "cli", "oci"},
}

func TestLayers(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}: {{join .Deps \" \"}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, deps, _ := strings.Cut(line, ": ")
		rel, ok := strings.CutPrefix(pkg, module)
		if !ok {
			continue
		}
		for layer, bad := range forbidden {
			if rel != layer && !strings.HasPrefix(rel, layer+"/") {
				continue
			}
			seen++
			for _, d := range strings.Fields(deps) {
				drel, ok := strings.CutPrefix(d, module)
				if !ok {
					continue
				}
				for _, b := range bad {
					if drel == b || strings.HasPrefix(drel, b+"/") {
						t.Errorf("%s depends on %s: the %s layer must not know %s", rel, drel, layer, b)
					}
				}
			}
		}
	}
	if seen < 10 {
		t.Fatalf("only %d packages matched a layer: the rules name packages that moved", seen)
	}
}

// printers may write to the terminal: the CLI, the mains, the guest init
// (its console), the benchmarks and tests. Every other package is a
// library: it returns errors and takes writers or a logger.
var printers = []string{"cmd", "internal/cli", "cli", "guest", "bench", "e2e", "examples"}

// printing matches what writes to the terminal: fmt.Print*, the standard
// streams, the log package's printers and the builtin print/println.
var printing = regexp.MustCompile(`\bfmt\.Print|\bos\.Std(out|err)\b|\blog\.(Print|Fatal|Panic)|(^|[^\w.])print(ln)?\(`)

func TestOnlyTheCLIPrints(t *testing.T) {
	err := filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != "." && strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			for _, pr := range printers {
				if p == pr || strings.HasPrefix(p, pr+"/") {
					return filepath.SkipDir
				}
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if m := printing.Find(src); m != nil {
			t.Errorf("%s uses %s: only the CLI prints; return an error or take an io.Writer or *slog.Logger", p, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
