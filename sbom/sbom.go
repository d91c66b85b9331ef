package sbom

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/nosproject/nos/bootable"
	"github.com/nosproject/nos/store"
)

// Format is an SBOM document format.
type Format string

const (
	SPDXJSON      Format = "spdx-json"
	CycloneDXJSON Format = "cyclonedx-json"
)

// Formats lists the formats, the default first.
var Formats = []Format{SPDXJSON, CycloneDXJSON}

// Media types of the formats, as an OCI referrer's artifactType and
// layer carry them.
const (
	MediaTypeSPDX      = "application/spdx+json"
	MediaTypeCycloneDX = "application/vnd.cyclonedx+json"
)

// ErrFormat is wrapped by the error of an unknown format.
var ErrFormat = errors.New("unknown SBOM format")

// ParseFormat reads a --format value; "" is SPDXJSON.
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case "", SPDXJSON:
		return SPDXJSON, nil
	case CycloneDXJSON:
		return CycloneDXJSON, nil
	}
	return "", fmt.Errorf("%q: want spdx-json or cyclonedx-json: %w", s, ErrFormat)
}

// MediaType is the format's media type.
func (f Format) MediaType() string {
	if f == CycloneDXJSON {
		return MediaTypeCycloneDX
	}
	return MediaTypeSPDX
}

// DefaultNamespace is the base URI of SPDX document namespaces, and the
// name of the namespace of CycloneDX serial numbers.
const DefaultNamespace = "https://github.com/nosproject/nos/sbom"

// Options say how the document is written.
type Options struct {
	Format Format // "" is SPDXJSON
	// Created is the document's creation time. Zero is the Unix epoch:
	// the document is then a function of the image alone (the CLI passes
	// SOURCE_DATE_EPOCH when set).
	Created time.Time
	// Namespace replaces DefaultNamespace.
	Namespace string
	// Tool names the producer, e.g. "nos-1.2.0"; "" is "nos".
	Tool string
	Read ReadOptions
}

func (o Options) namespace() string {
	if o.Namespace == "" {
		return DefaultNamespace
	}
	return o.Namespace
}

func (o Options) tool() string {
	if o.Tool == "" {
		return "nos"
	}
	return o.Tool
}

func (o Options) created() string {
	t := o.Created
	if t.IsZero() {
		t = time.Unix(0, 0)
	}
	return t.UTC().Format(time.RFC3339)
}

// Write writes the inventory's bill of materials in o.Format.
func Write(w io.Writer, inv *Inventory, o Options) error {
	f, err := ParseFormat(string(o.Format))
	if err != nil {
		return err
	}
	g := newGraph(inv)
	if f == CycloneDXJSON {
		return writeCycloneDX(w, inv, g, o)
	}
	return writeSPDX(w, inv, g, o)
}

// Generate returns the bill of materials of the image ref in st.
func Generate(ctx context.Context, st *store.Store, ref string, o Options) ([]byte, error) {
	a, err := Referrer(ctx, st, ref, o)
	if err != nil {
		return nil, err
	}
	return a.Data, nil
}

// Artifact is an SBOM ready to be attached to its image in a registry as
// an OCI referrer: a manifest whose artifactType is MediaType, with Data
// as its one layer and Subject as its subject.
type Artifact struct {
	MediaType string
	Data      []byte
	// Subject is the image manifest the SBOM describes.
	Subject ocispec.Descriptor
}

// Referrer makes the bill of materials of the image ref in st as an
// artefact for an OCI registry. It pushes nothing.
func Referrer(ctx context.Context, st *store.Store, ref string, o Options) (*Artifact, error) {
	im, err := bootable.Load(ctx, st, ref)
	if err != nil {
		return nil, err
	}
	inv, err := Read(ctx, im, o.Read)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	var b bytes.Buffer
	if err := Write(&b, inv, o); err != nil {
		return nil, err
	}
	f, _ := ParseFormat(string(o.Format))
	return &Artifact{MediaType: f.MediaType(), Data: b.Bytes(), Subject: im.Ref.Manifest}, nil
}
