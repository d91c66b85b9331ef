package store

import (
	"os/exec"
	"strings"
	"testing"
)

// TestStoreDependencies keeps the store below the stages that use it: it
// knows images as blobs and references, never how they are assembled or
// run.
func TestStoreDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "github.com/nosproject/nos/store").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	forbidden := []string{
		"github.com/nosproject/nos/assemble",
		"github.com/nosproject/nos/instance",
		"github.com/nosproject/nos/vmm",
		"github.com/nosproject/nos/cli",
		"github.com/nosproject/nos/kernel",
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if pkg == f || strings.HasPrefix(pkg, f+"/") {
				t.Errorf("store depends on %s", pkg)
			}
		}
	}
}
