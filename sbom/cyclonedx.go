package sbom

import (
	"crypto/sha1"
	"fmt"
	"io"

	cdx "github.com/CycloneDX/cyclonedx-go"
)

// cdxSpec is the CycloneDX version written.
const cdxSpec = cdx.SpecVersion1_6

// writeCycloneDX writes g as a CycloneDX JSON BOM: the image is the
// metadata's component, the rest are components, and the graph's edges
// are its dependencies (a container's parts and a program's modules).
func writeCycloneDX(w io.Writer, inv *Inventory, g *graph, o Options) error {
	bom := cdx.NewBOM()
	bom.SerialNumber = "urn:uuid:" + uuid5(o.namespace(), inv.Digest)
	bom.Metadata = &cdx.Metadata{
		Timestamp: o.created(),
		Tools:     &cdx.ToolsChoice{Components: &[]cdx.Component{{Type: cdx.ComponentTypeApplication, Name: o.tool()}}},
	}
	root := cdxComponent(g.root())
	bom.Metadata.Component = &root
	var props []cdx.Property
	for _, n := range g.notes {
		props = append(props, cdx.Property{Name: "nos:note", Value: n})
	}
	if len(props) > 0 {
		bom.Metadata.Properties = &props
	}
	var comps []cdx.Component
	var deps []cdx.Dependency
	for _, n := range g.nodes {
		if n != g.root() {
			comps = append(comps, cdxComponent(n))
		}
		edges := append(append([]string{}, n.contains...), n.dependsOn...)
		if len(edges) > 0 {
			deps = append(deps, cdx.Dependency{Ref: n.id, Dependencies: &edges})
		}
	}
	bom.Components = &comps
	bom.Dependencies = &deps
	enc := cdx.NewBOMEncoder(w, cdx.BOMFileFormatJSON)
	enc.SetPretty(true)
	return enc.EncodeVersion(bom, cdxSpec)
}

func cdxComponent(n *node) cdx.Component {
	c := cdx.Component{BOMRef: n.id, Name: n.name, Version: n.version, PackageURL: n.purl}
	switch n.kind {
	case kindImage, kindSource:
		c.Type = cdx.ComponentTypeContainer
	case kindKernel:
		c.Type = cdx.ComponentTypeOS
	case kindProgram:
		c.Type = cdx.ComponentTypeApplication
	case kindModule, kindDeb:
		c.Type = cdx.ComponentTypeLibrary
	case kindFile:
		c.Type = cdx.ComponentTypeFile
	}
	if n.kind == kindDeb {
		c.Supplier = &cdx.OrganizationalEntity{Name: "Debian"}
	}
	var hashes []cdx.Hash
	if n.sha1 != "" {
		hashes = append(hashes, cdx.Hash{Algorithm: cdx.HashAlgoSHA1, Value: n.sha1})
	}
	if n.sha256 != "" {
		hashes = append(hashes, cdx.Hash{Algorithm: cdx.HashAlgoSHA256, Value: n.sha256})
	}
	if len(hashes) > 0 {
		c.Hashes = &hashes
	}
	var props []cdx.Property
	for _, p := range n.props {
		props = append(props, cdx.Property{Name: p.name, Value: p.value})
	}
	if len(props) > 0 {
		c.Properties = &props
	}
	return c
}

// uuid5 is the name-based (SHA-1) UUID of name in the namespace named by
// the URL ns (RFC 9562, section 5.5), so that one image always gets the
// same serial number.
func uuid5(ns, name string) string {
	// The namespace UUID is itself the version 5 UUID of ns in the
	// RFC's URL namespace.
	urlNS := [16]byte{0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}
	space := uuid5Bytes(urlNS, ns)
	u := uuid5Bytes(space, name)
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

func uuid5Bytes(ns [16]byte, name string) [16]byte {
	h := sha1.New()
	h.Write(ns[:])
	h.Write([]byte(name))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50 // version 5
	u[8] = u[8]&0x3f | 0x80 // RFC variant
	return u
}
