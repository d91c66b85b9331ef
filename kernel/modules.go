package kernel

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Module is a loadable kernel module file.
type Module struct {
	// Name is the module's name, e.g. "virtio_mmio".
	Name string
	// Path is the absolute path of the module file on the host.
	Path string
	// RelPath is Path relative to the modules directory, e.g.
	// "kernel/drivers/virtio/virtio_mmio.ko".
	RelPath string
	// Depends lists the modules this one needs, from its .modinfo.
	Depends []string
}

// moduleExts are the module file extensions Modules indexes.
var moduleExts = []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"}

// Modules returns the module files to load, dependencies first, so that
// the modules named in want are available. modulesDir is a kernel's
// lib/modules/<version> directory.
//
// Modules listed in modules.builtin need no file and are left out. Every
// other wanted module, and recursively each module it depends on, must be a
// module file under modulesDir. The order is deterministic: among modules
// whose dependencies are already loaded, the one with the smallest name
// comes first. A dependency cycle is an error.
func Modules(modulesDir string, want []string) ([]Module, error) {
	if len(want) == 0 {
		return nil, nil
	}
	if modulesDir == "" {
		return nil, errors.New("modules: kernel has no modules directory")
	}
	idx, err := newModIndex(modulesDir)
	if err != nil {
		return nil, fmt.Errorf("modules: %w", err)
	}
	builtin, err := readBuiltin(idx.dir)
	if err != nil {
		return nil, fmt.Errorf("modules: %w", err)
	}
	mods, err := collect(idx, builtin, want)
	if err != nil {
		return nil, fmt.Errorf("modules: %w", err)
	}
	order, err := loadOrder(mods)
	if err != nil {
		return nil, fmt.Errorf("modules: %w", err)
	}
	return order, nil
}

// normalizeName turns a module or file name into the kernel's spelling.
func normalizeName(s string) string {
	return strings.ReplaceAll(s, "-", "_")
}

// moduleFileName returns the module name for a module file name such as
// "virtio-rng.ko.xz", and whether it is a module file at all.
func moduleFileName(file string) (string, bool) {
	for _, ext := range moduleExts {
		if base, ok := strings.CutSuffix(file, ext); ok && base != "" {
			return normalizeName(base), true
		}
	}
	return "", false
}

// modIndex finds module files by name, reading .modinfo lazily.
type modIndex struct {
	dir     string
	files   []string           // every module file, relative to dir, in walk order
	byFile  map[string]string  // name from the file name -> first file with it
	loaded  map[string]*Module // file -> its module, once read
	byName  map[string]*Module // .modinfo name -> first module with it
	scanned bool               // whether every file has been read
}

func newModIndex(dir string) (*modIndex, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	idx := &modIndex{
		dir:    abs,
		byFile: make(map[string]string),
		loaded: make(map[string]*Module),
		byName: make(map[string]*Module),
	}
	err = filepath.WalkDir(abs, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name, ok := moduleFileName(d.Name())
		if !ok || d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(abs, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		idx.files = append(idx.files, rel)
		if _, dup := idx.byFile[name]; !dup {
			idx.byFile[name] = rel
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return idx, nil
}

// lookup returns the module named name, or nil when there is none. The
// .modinfo name wins over the file name: the file named after the module
// is tried first, and all files are read only when it is not that module.
func (idx *modIndex) lookup(name string) (*Module, error) {
	if m := idx.byName[name]; m != nil {
		return m, nil
	}
	if rel, ok := idx.byFile[name]; ok && idx.loaded[rel] == nil {
		m, err := idx.load(rel)
		if err != nil {
			return nil, err
		}
		if m.Name == name {
			return m, nil
		}
	}
	if !idx.scanned {
		idx.scanned = true
		for _, rel := range idx.files {
			if idx.loaded[rel] == nil {
				_, _ = idx.load(rel) // unreadable files cannot be the module sought
			}
		}
	}
	return idx.byName[name], nil
}

// load reads the .modinfo of the module file rel and records it.
func (idx *modIndex) load(rel string) (*Module, error) {
	path := filepath.Join(idx.dir, filepath.FromSlash(rel))
	data, err := OpenModule(path)
	if err != nil {
		return nil, err
	}
	info, err := ReadModinfo(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	name, _ := moduleFileName(filepath.Base(rel))
	if names := info["name"]; len(names) > 0 && names[0] != "" {
		name = normalizeName(names[0])
	}
	m := &Module{Name: name, Path: path, RelPath: rel, Depends: splitDepends(info["depends"])}
	idx.loaded[rel] = m
	if idx.byName[name] == nil {
		idx.byName[name] = m
	}
	return m, nil
}

// splitDepends parses "depends=" values: comma-separated module names.
func splitDepends(values []string) []string {
	var deps []string
	for _, v := range values {
		for _, d := range strings.Split(v, ",") {
			d = normalizeName(strings.TrimSpace(d))
			if d != "" && !slices.Contains(deps, d) {
				deps = append(deps, d)
			}
		}
	}
	return deps
}

// readBuiltin returns the names of the modules listed in modules.builtin,
// or none when the file does not exist.
func readBuiltin(dir string) (map[string]bool, error) {
	builtin := make(map[string]bool)
	f, err := os.Open(filepath.Join(dir, "modules.builtin"))
	if errors.Is(err, fs.ErrNotExist) {
		return builtin, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if name, ok := moduleFileName(filepath.Base(line)); ok {
			builtin[name] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("modules.builtin: %w", err)
	}
	return builtin, nil
}

// collect finds the modules in want and, recursively, their dependencies,
// leaving out built-in ones.
func collect(idx *modIndex, builtin map[string]bool, want []string) (map[string]*Module, error) {
	mods := make(map[string]*Module)
	var visit func(name, neededBy string) error
	visit = func(name, neededBy string) error {
		if builtin[name] || mods[name] != nil {
			return nil
		}
		m, err := idx.lookup(name)
		if err != nil {
			return err
		}
		if m == nil {
			if neededBy != "" {
				return fmt.Errorf("module %s (needed by %s) not found in %s and not built in", name, neededBy, idx.dir)
			}
			return fmt.Errorf("module %s not found in %s and not built in", name, idx.dir)
		}
		mods[name] = m
		for _, dep := range m.Depends {
			if err := visit(dep, name); err != nil {
				return err
			}
		}
		return nil
	}
	for _, name := range want {
		if err := visit(normalizeName(strings.TrimSpace(name)), ""); err != nil {
			return nil, err
		}
	}
	return mods, nil
}

// loadOrder sorts mods topologically, dependencies first and ties by
// name. Dependencies missing from mods are built in and ignored.
func loadOrder(mods map[string]*Module) ([]Module, error) {
	pending := make(map[string]int)         // module -> dependencies not yet loaded
	dependents := make(map[string][]string) // module -> modules depending on it
	var ready []string
	for name, m := range mods {
		for _, dep := range m.Depends {
			if mods[dep] != nil {
				pending[name]++
				dependents[dep] = append(dependents[dep], name)
			}
		}
		if pending[name] == 0 {
			ready = append(ready, name)
		}
	}
	order := make([]Module, 0, len(mods))
	for len(ready) > 0 {
		sort.Strings(ready)
		name := ready[0]
		ready = ready[1:]
		m := *mods[name]
		m.Depends = slices.Clone(m.Depends)
		order = append(order, m)
		for _, d := range dependents[name] {
			if pending[d]--; pending[d] == 0 {
				ready = append(ready, d)
			}
		}
	}
	if len(order) < len(mods) {
		return nil, fmt.Errorf("dependency cycle: %s", findCycle(mods, order))
	}
	return order, nil
}

// findCycle describes a dependency cycle among the modules of mods that
// are not in order, e.g. "a -> b -> a".
func findCycle(mods map[string]*Module, order []Module) string {
	left := make(map[string]bool)
	for name := range mods {
		left[name] = true
	}
	for _, m := range order {
		delete(left, m.Name)
	}
	names := make([]string, 0, len(left))
	for name := range left {
		names = append(names, name)
	}
	sort.Strings(names)
	// Every module left has a dependency left, so walking them loops.
	path := []string{names[0]}
	seen := map[string]int{names[0]: 0}
	for {
		deps := slices.Clone(mods[path[len(path)-1]].Depends)
		sort.Strings(deps)
		next := ""
		for _, d := range deps {
			if left[d] {
				next = d
				break
			}
		}
		if i, ok := seen[next]; ok {
			return strings.Join(append(path[i:], next), " -> ")
		}
		seen[next] = len(path)
		path = append(path, next)
	}
}
