package image

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestAnnotations(t *testing.T) {
	c := Config{
		Entrypoint: []string{"/app/web", "-v"}, Args: []string{"a b"}, ExposedPorts: []string{"8080/tcp", "53/udp"},
		Kernel: KernelInfo{Version: "6.1.0", Features: []string{"net", "blk"}}, RootFS: "erofs",
	}
	got := Annotations(c, time.Date(2026, 11, 27, 13, 59, 19, 5, time.FixedZone("x", 3600)))
	want := map[string]string{
		AnnotationCreated:        "2026-11-27T12:59:19Z",
		AnnotationKernelVersion:  "6.1.0",
		AnnotationKernelFeatures: "net,blk",
		AnnotationEntrypoint:     `["/app/web","-v","a b"]`,
		AnnotationPorts:          "8080/tcp,53/udp",
		AnnotationRootFS:         "erofs",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Annotations mismatch (-want +got):\n%s", diff)
	}
	if got := Annotations(Config{}, time.Time{}); len(got) != 0 {
		t.Errorf("an empty config has annotations: %v", got)
	}
}
