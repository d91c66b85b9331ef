package image

import (
	"encoding/json"
	"strings"
	"time"
)

// Annotations of a nos image's manifest as it travels through a registry
// or an archive, so that tools that know nothing of nos's config can tell
// what the artefact is. The store's own manifests carry none (the time of
// creation would change their digest); push adds them.
const (
	AnnotationKernelVersion  = "dev.nos.kernel.version"
	AnnotationKernelFeatures = "dev.nos.kernel.features"
	// AnnotationEntrypoint is the entrypoint and default arguments as a
	// JSON array.
	AnnotationEntrypoint = "dev.nos.entrypoint"
	// AnnotationPorts lists the exposed ports, "8080/tcp,53/udp".
	AnnotationPorts = "dev.nos.ports"
	// AnnotationRootFS is the root disk's type when the image has one.
	AnnotationRootFS = "dev.nos.rootfs"
)

// Annotations returns the manifest annotations describing an image with
// config c, created at created (omitted when zero). Empty values are left
// out, so equal images give equal annotations.
func Annotations(c Config, created time.Time) map[string]string {
	a := map[string]string{}
	if !created.IsZero() {
		a[AnnotationCreated] = created.UTC().Format(time.RFC3339)
	}
	if c.Kernel.Version != "" {
		a[AnnotationKernelVersion] = c.Kernel.Version
	}
	if len(c.Kernel.Features) > 0 {
		a[AnnotationKernelFeatures] = strings.Join(c.Kernel.Features, ",")
	}
	if cmd := append(append([]string(nil), c.Entrypoint...), c.Args...); len(cmd) > 0 {
		b, err := json.Marshal(cmd)
		if err == nil {
			a[AnnotationEntrypoint] = string(b)
		}
	}
	if len(c.ExposedPorts) > 0 {
		a[AnnotationPorts] = strings.Join(c.ExposedPorts, ",")
	}
	if c.RootFS != "" {
		a[AnnotationRootFS] = c.RootFS
	}
	return a
}
