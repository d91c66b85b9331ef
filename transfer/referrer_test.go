package transfer

import (
	"encoding/json"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestReferrerManifest(t *testing.T) {
	subject := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("image"), Size: 1234, ArtifactType: "ignored"}
	raw, err := ReferrerManifest("application/spdx+json", []byte(`{"spdxVersion":"SPDX-2.3"}`), subject)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := ReferrerManifest("application/spdx+json", []byte(`{"spdxVersion":"SPDX-2.3"}`), subject)
	if string(raw) != string(again) {
		t.Error("the same artefact gave two manifests")
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if m.SchemaVersion != 2 || m.ArtifactType != "application/spdx+json" || m.Config.MediaType != ocispec.MediaTypeEmptyJSON ||
		m.Config.Digest != digest.FromString("{}") || len(m.Layers) != 1 || m.Subject == nil ||
		m.Subject.Digest != subject.Digest || m.Subject.Size != 1234 || m.Subject.ArtifactType != "" {
		t.Errorf("manifest %s", raw)
	}
}
