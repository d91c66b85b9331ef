package nos_test

// The layers of nos, enforced: like go-containerregistry's depcheck, this
// test fails when a package imports one it must not know. The flow is one
// way — source → assemble → store → bootable → instance → vmm, with cli on top,
// and transfer beside the store moving its images out and in — and
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

// Groups of packages the rules name.
var (
	top      = []string{"cli", "cmd"}
	running  = []string{"instance", "vmm", "bootable"}
	building = []string{"assemble", "oci", "initramfs"}
	contract = []string{"image", "guestapi"}
)

func join(groups ...[]string) []string {
	var out []string
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

// forbidden maps a package (and its subpackages) to the nos packages it
// must not depend on, directly or not.
var forbidden = map[string][]string{
	// The contracts and the low-level helpers know nothing of nos.
	"image":             join(top, running, building, []string{"store", "kernel"}),
	"guestapi":          join(top, running, building, []string{"store", "kernel", "image"}),
	"internal/fsutil":   join(top, running, building, contract, []string{"store", "kernel"}),
	"internal/lockfile": join(top, running, building, contract, []string{"store", "kernel"}),
	"internal/home":     join(top, running, building, contract, []string{"store", "kernel"}),
	"internal/units":    join(top, running, building, contract, []string{"store", "kernel"}),
	"internal/initrdz":  join(top, running, building, contract, []string{"store", "kernel"}),
	"internal/registry": join(top, running, building, contract, []string{"store", "kernel", "transfer"}),
	// The store holds images; it neither makes nor runs them.
	"store": join(top, running, building, []string{"kernel"}),
	// Transfers move stored images to registries and archives and back;
	// they neither make nor run them, nor know the CLI.
	"transfer": join(top, running, building, []string{"kernel"}),
	// Kernels are found and built without knowing images' assembly or runs.
	"kernel": join(top, running, building, []string{"store"}),
	// Assembling an image knows nothing of running one.
	"assemble":  join(top, running),
	"oci":       join(top, running, []string{"assemble", "store", "kernel"}),
	"initramfs": join(top, running, []string{"assemble", "oci", "store", "kernel"}),
	// bootable reads the store; the hypervisor layer knows neither images
	// nor instances, only machines.
	"bootable": join(top, building, []string{"instance", "vmm"}),
	"vmm":      join(top, building, []string{"instance", "bootable", "store", "kernel", "image"}),
	// Networks (records, bridges, resolver, proxy) serve instances and
	// know none of them, nor images or machines.
	"network": join(top, running, building, contract, []string{"store", "kernel"}),
	// Compose translates a file into instance options and drives instances,
	// networks and volumes through an interface: it neither assembles
	// images nor knows the CLI.
	"compose": join(top, building),
	// Signatures know keys, payloads and OCI images, nothing of nos's own.
	"signature": join(top, running, building, contract, []string{"store", "kernel", "network"}),
	// A bill of materials reads stored images: it neither builds, runs
	// nor pushes them.
	"sbom": join(top, building, []string{"instance", "vmm", "network", "volume"}),
	// Exports write stored images out for other engines: they neither
	// assemble images nor run instances, nor print.
	"export": join(top, []string{"assemble", "oci", "instance", "network", "volume", "compose"}),
	// Instances run images, they do not assemble them.
	"instance": join(top, building),
	// nos-runtime runs OCI bundles as machines: it knows neither the CLI
	// nor exports, compose or transfers (it borrows instance's kernel
	// command line, which brings instance's own dependencies).
	"ociruntime": join(top, []string{"compose", "export", "transfer"}),
	// The guest init is checked more strictly by guest/deps_test.go.
	"guest": join(top, running, building, []string{"store", "kernel"}),
}

func TestLayers(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}: {{join .Deps \" \"}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	seen := map[string]int{}
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
			seen[layer]++
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
	for layer := range forbidden {
		if seen[layer] == 0 {
			t.Errorf("no package %s: the rule names a package that moved", layer)
		}
	}
}

// printers may write to the terminal: the CLI, the mains, the guest init
// (its console), the benchmarks and tests. Every other package is a
// library: it returns errors and takes writers or a logger.
var printers = []string{"cmd", "cli", "guest", "bench", "e2e", "examples"}

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
