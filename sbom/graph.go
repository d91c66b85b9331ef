package sbom

import (
	"cmp"
	"slices"
	"strings"

	"github.com/package-url/packageurl-go"

	"github.com/nosproject/nos/image"
)

// kind is what a node of the graph stands for.
type kind int

const (
	kindImage kind = iota
	kindKernel
	kindSource
	kindProgram
	kindModule
	kindDeb
	kindFile
)

// node is one component of the bill of materials, in the terms both
// formats share; the encoders only translate.
type node struct {
	id            string // unique and stable: the encoders derive their identifiers from it
	kind          kind
	name, version string
	purl          string
	path          string // a file's or program's guest path
	sha1, sha256  string
	props         []prop
	// contains and dependsOn are ids of other nodes.
	contains, dependsOn []string
}

type prop struct{ name, value string }

// graph is an inventory as nodes: the image first, then the kernel, the
// source image, programs, modules, packages and files, each group sorted.
type graph struct {
	nodes []*node
	notes []string
}

func (g *graph) root() *node { return g.nodes[0] }

func newGraph(inv *Inventory) *graph {
	g := &graph{}
	c := inv.Config
	img := &node{id: "image", kind: kindImage, name: inv.Name + ":" + inv.Tag, version: inv.Digest,
		purl:   purl("oci", "", inv.Name, inv.Digest, packageurl.Qualifiers{{Key: "tag", Value: inv.Tag}}),
		sha256: strings.TrimPrefix(inv.Digest, "sha256:")}
	if len(c.Entrypoint) > 0 {
		img.props = append(img.props, prop{"nos:entrypoint", strings.Join(c.Entrypoint, " ")})
	}
	g.nodes = append(g.nodes, img)

	k := &node{id: "kernel", kind: kindKernel, name: "linux", version: c.Kernel.Version, sha256: strings.TrimPrefix(c.Kernel.Digest, "sha256:")}
	k.props = append(k.props, prop{"nos:kernel:origin", c.Kernel.Origin})
	switch {
	case c.Kernel.Features != nil:
		k.props = append(k.props, prop{"nos:kernel:features", strings.Join(append([]string{"base"}, c.Kernel.Features...), ",")})
	default:
		k.props = append(k.props, prop{"nos:kernel:features", "unknown (not built by nos)"})
	}
	if c.Kernel.ConfigHash != "" {
		k.props = append(k.props, prop{"nos:kernel:configHash", c.Kernel.ConfigHash})
	}
	if len(c.Modules) > 0 {
		k.props = append(k.props, prop{"nos:kernel:modules", strings.Join(c.Modules, ",")})
	}
	g.add(img, k)

	if s := c.Source; s != nil && s.Type == "oci" {
		name := s.Ref
		if name == "" {
			name = "container image"
		}
		src := &node{id: "source", kind: kindSource, name: name, version: s.Digest, sha256: strings.TrimPrefix(s.Digest, "sha256:")}
		if s.Ref != "" {
			src.purl = ociPurl(s.Ref, s.Digest)
		}
		g.nodes = append(g.nodes, src)
		img.dependsOn = append(img.dependsOn, src.id)
	}

	modules := map[string]*node{}
	for _, p := range inv.Programs {
		pn := &node{id: "program:" + strings.ReplaceAll(p.Location, " ", "-") + ":" + p.Path, kind: kindProgram, name: p.Main.Path, version: p.Main.Version,
			purl: goPurl(p.Main.Path, p.Main.Version), path: p.Path, sha256: p.SHA256}
		if pn.name == "" {
			pn.name = p.Path
		}
		if p.Role != "" {
			pn.props = append(pn.props, prop{"nos:role", p.Role})
		}
		pn.props = append(pn.props, prop{"nos:path", p.Path}, prop{"nos:location", p.Location}, prop{"go:version", p.GoVersion})
		g.add(img, pn)
		std := Module{Path: "stdlib", Version: p.GoVersion}
		for _, m := range append([]Module{std}, p.Deps...) {
			id := "go:" + m.Path + "@" + m.Version
			if modules[id] == nil {
				modules[id] = &node{id: id, kind: kindModule, name: m.Path, version: m.Version, purl: goPurl(m.Path, m.Version)}
				if m.Sum != "" {
					modules[id].props = append(modules[id].props, prop{"go:sum", m.Sum})
				}
			}
			pn.dependsOn = append(pn.dependsOn, id)
		}
	}
	for _, id := range sortedKeys(modules) {
		g.nodes = append(g.nodes, modules[id])
	}

	debs := map[string]*node{}
	var files []*node
	fileNode := func(p string) *node {
		f := inv.Files[p]
		return &node{id: "file:" + p, kind: kindFile, name: p, path: p, sha1: f.SHA1, sha256: f.SHA256}
	}
	for _, r := range c.Packages {
		fn := fileNode(r.Path)
		files = append(files, fn)
		if r.Package == "" {
			fn.props = append(fn.props, prop{"nos:package", "unknown"})
			img.contains = append(img.contains, fn.id)
			continue
		}
		id := "deb:" + r.Package + "@" + r.Version + "?" + r.Arch
		if debs[id] == nil {
			debs[id] = &node{id: id, kind: kindDeb, name: r.Package, version: r.Version, purl: debPurl(r)}
			debs[id].props = append(debs[id].props, prop{"deb:arch", r.Arch})
			img.contains = append(img.contains, id)
		}
		debs[id].contains = append(debs[id].contains, fn.id)
	}
	for _, id := range sortedKeys(debs) {
		g.nodes = append(g.nodes, debs[id])
	}
	packaged := map[string]bool{}
	for _, fn := range files {
		packaged[fn.path] = true
	}
	for _, f := range inv.Added {
		if packaged[f.Path] {
			continue
		}
		fn := fileNode(f.Path)
		fn.props = append(fn.props, prop{"nos:added", "true"})
		files = append(files, fn)
		img.contains = append(img.contains, fn.id)
	}
	slices.SortFunc(files, func(a, b *node) int { return cmp.Compare(a.path, b.path) })
	g.nodes = append(g.nodes, files...)
	slices.Sort(img.contains)

	if c.Provenance < image.ProvenanceV1 {
		g.notes = append(g.notes, "The image predates nos recording where its files came from: the Debian packages of its libraries, the files added with --add and the kernel's configuration hash are unknown.")
	} else if c.RootFS != "" && c.Packages == nil {
		g.notes = append(g.notes, "The root disk's files came from a root directory or a container image: their packages are not listed.")
	}
	return g
}

func (g *graph) add(parent, child *node) {
	g.nodes = append(g.nodes, child)
	parent.contains = append(parent.contains, child.id)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func purl(typ, namespace, name, version string, q packageurl.Qualifiers) string {
	return packageurl.NewPackageURL(typ, namespace, name, version, q, "").ToString()
}

// goPurl is pkg:golang/PATH@VERSION; a development build's "(devel)" is
// no version.
func goPurl(modPath, version string) string {
	if modPath == "" {
		return ""
	}
	if version == "(devel)" {
		version = ""
	}
	ns, name := "", modPath
	if i := strings.LastIndex(modPath, "/"); i >= 0 {
		ns, name = modPath[:i], modPath[i+1:]
	}
	return purl(packageurl.TypeGolang, ns, name, version, nil)
}

func debPurl(r image.PackageRef) string {
	var q packageurl.Qualifiers
	if r.Arch != "" {
		q = packageurl.Qualifiers{{Key: "arch", Value: r.Arch}}
	}
	return purl(packageurl.TypeDebian, "debian", r.Package, r.Version, q)
}

// ociPurl is pkg:oci/NAME@DIGEST?repository_url=REPO for a registry
// reference REPO[:TAG][@DIGEST].
func ociPurl(ref, digest string) string {
	repo, _, _ := strings.Cut(ref, "@")
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	name := repo[strings.LastIndex(repo, "/")+1:]
	return purl("oci", "", name, digest, packageurl.Qualifiers{{Key: "repository_url", Value: repo}})
}
