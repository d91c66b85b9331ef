package sbom

import (
	"fmt"
	"io"
	"regexp"
	"strings"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx/v2/common"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"
)

const noAssertion = "NOASSERTION"

// writeSPDX writes g as an SPDX 2.3 JSON document: a package for the
// image, the kernel, the source image, each Go program, Go module and
// Debian package, and a file for each file with a known origin.
func writeSPDX(w io.Writer, inv *Inventory, g *graph, o Options) error {
	ids := spdxIDs(g)
	doc := &spdx.Document{
		SPDXVersion:       spdx.Version,
		DataLicense:       spdx.DataLicense,
		SPDXIdentifier:    "DOCUMENT",
		DocumentName:      g.root().name,
		DocumentNamespace: fmt.Sprintf("%s/%s-%s", strings.TrimRight(o.namespace(), "/"), sanitize(inv.Name), strings.TrimPrefix(inv.Digest, "sha256:")),
		DocumentComment:   strings.Join(g.notes, " "),
		CreationInfo: &spdx.CreationInfo{
			Creators: []common.Creator{{CreatorType: "Tool", Creator: o.tool()}},
			Created:  o.created(),
		},
	}
	rel := func(a, typ, b string) {
		doc.Relationships = append(doc.Relationships, &spdx.Relationship{
			RefA: common.MakeDocElementID("", string(ids[a])), RefB: common.MakeDocElementID("", string(ids[b])), Relationship: typ})
	}
	doc.Relationships = append(doc.Relationships, &spdx.Relationship{
		RefA: common.MakeDocElementID("", "DOCUMENT"), RefB: common.MakeDocElementID("", string(ids[g.root().id])), Relationship: common.TypeRelationshipDescribe})
	for _, n := range g.nodes {
		if n.kind == kindFile {
			doc.Files = append(doc.Files, spdxFile(n, ids[n.id]))
		} else {
			doc.Packages = append(doc.Packages, spdxPackage(n, ids[n.id]))
		}
	}
	for _, n := range g.nodes {
		for _, c := range n.contains {
			rel(n.id, common.TypeRelationshipContains, c)
		}
		for _, d := range n.dependsOn {
			typ := common.TypeRelationshipDependsOn
			if n.kind == kindImage && d == "source" {
				typ = common.TypeRelationshipGeneratedFrom
			}
			rel(n.id, typ, d)
		}
	}
	return spdxjson.Write(doc, w, spdxjson.Indent("  "))
}

func spdxPackage(n *node, id common.ElementID) *spdx.Package {
	p := &spdx.Package{
		PackageName:             n.name,
		PackageSPDXIdentifier:   id,
		PackageVersion:          n.version,
		PackageDownloadLocation: noAssertion,
		PackageFileName:         n.path,
		PackageComment:          propComment(n.props),
	}
	if n.sha256 != "" {
		p.PackageChecksums = []common.Checksum{{Algorithm: common.SHA256, Value: n.sha256}}
	}
	if n.purl != "" {
		p.PackageExternalReferences = []*spdx.PackageExternalReference{{Category: common.CategoryPackageManager, RefType: common.TypePackageManagerPURL, Locator: n.purl}}
	}
	switch n.kind {
	case kindImage, kindSource:
		p.PrimaryPackagePurpose = "CONTAINER"
	case kindKernel:
		p.PrimaryPackagePurpose = "OPERATING-SYSTEM"
	case kindProgram:
		p.PrimaryPackagePurpose = "APPLICATION"
	case kindModule, kindDeb:
		p.PrimaryPackagePurpose = "LIBRARY"
	}
	if n.kind == kindDeb {
		p.PackageSupplier = &common.Supplier{Supplier: "Debian", SupplierType: "Organization"}
	}
	return p
}

func spdxFile(n *node, id common.ElementID) *spdx.File {
	f := &spdx.File{
		FileName:           "." + n.path,
		FileSPDXIdentifier: id,
		FileCopyrightText:  noAssertion,
		FileComment:        propComment(n.props),
		Checksums:          []common.Checksum{},
	}
	if n.sha1 != "" {
		f.Checksums = append(f.Checksums, common.Checksum{Algorithm: common.SHA1, Value: n.sha1})
	}
	if n.sha256 != "" {
		f.Checksums = append(f.Checksums, common.Checksum{Algorithm: common.SHA256, Value: n.sha256})
	} else {
		f.FileComment = strings.TrimSpace(f.FileComment + " The file is not in the image's layers.")
	}
	return f
}

// propComment renders properties as "name: value" lines.
func propComment(props []prop) string {
	var b strings.Builder
	for _, p := range props {
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "%s: %s", p.name, p.value)
	}
	return b.String()
}

var notIDChar = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

func sanitize(s string) string {
	return strings.Trim(notIDChar.ReplaceAllString(s, "-"), "-")
}

// spdxIDs gives each node an SPDX identifier made of its id's letters,
// digits, dots and dashes, numbered when two would be the same.
func spdxIDs(g *graph) map[string]common.ElementID {
	ids := map[string]common.ElementID{}
	used := map[common.ElementID]bool{}
	for _, n := range g.nodes {
		base := common.ElementID(sanitize(n.id))
		id := base
		for i := 2; used[id]; i++ {
			id = common.ElementID(fmt.Sprintf("%s-%d", base, i))
		}
		used[id] = true
		ids[n.id] = id
	}
	return ids
}
