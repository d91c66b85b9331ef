package cli

import (
	"os"
	"path/filepath"
	"testing"
)

func TestExportKubeVirtBadInput(t *testing.T) {
	home := t.TempDir()
	out := filepath.Join(t.TempDir(), "vm.yaml")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"web", "--format", "kubevirt", "-o", out}, "a KubeVirt export needs a registry reference"},
		{[]string{"web", "--format", "kubevirt", "--push", "127.0.0.1:5000/web", "-p", "8080:8080"}, "--publish is for --format libvirt"},
		{[]string{"web", "--format", "kubevirt", "--push", "127.0.0.1:5000/web", "--health-http", "/h", "--health-tcp", "80"}, "choose one"},
		{[]string{"web", "--format", "kubevirt", "--push", "127.0.0.1:5000/web", "--insecure-registry", "http://x"}, "--insecure-registry"},
		{[]string{"nosuchimage", "--format", "kubevirt", "--push", "127.0.0.1:5000/web"}, "nosuchimage"},
	} {
		code, stdout, stderr := nos(t, home, append([]string{"export"}, tc.args...)...)
		if code == 0 || stdout != "" {
			t.Errorf("export %v: exit %d, stdout %q", tc.args, code, stdout)
		}
		wantOneErrorLine(t, stderr, tc.want)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a refused export wrote its manifest")
	}
}
