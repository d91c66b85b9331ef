package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	c, err := ParseBytes([]byte(`#
# Automatically generated file; DO NOT EDIT.
#
CONFIG_64BIT=y
# CONFIG_MODULES is not set
CONFIG_LOCALVERSION="-nos"
CONFIG_NR_CPUS=64
CONFIG_PHYSICAL_START=0x1000000

# a comment
CONFIG_64BIT=y
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Option{
		{"CONFIG_64BIT", "y"}, {"CONFIG_MODULES", Off}, {"CONFIG_LOCALVERSION", `"-nos"`},
		{"CONFIG_NR_CPUS", "64"}, {"CONFIG_PHYSICAL_START", "0x1000000"},
	}
	if diff := cmp.Diff(want, c.Options()); diff != "" {
		t.Errorf("options (-want +got):\n%s", diff)
	}
	wantText := "CONFIG_64BIT=y\n# CONFIG_MODULES is not set\nCONFIG_LOCALVERSION=\"-nos\"\nCONFIG_NR_CPUS=64\nCONFIG_PHYSICAL_START=0x1000000\n"
	if got := string(c.Bytes()); got != wantText {
		t.Errorf("Bytes() = %q, want %q", got, wantText)
	}
	if v, ok := c.Get("CONFIG_MODULES"); !ok || v != Off {
		t.Errorf("Get(CONFIG_MODULES) = %q, %v", v, ok)
	}
	if _, ok := c.Get("CONFIG_NET"); ok {
		t.Error("Get(CONFIG_NET) found an option that is not there")
	}
}

func TestParseErrors(t *testing.T) {
	tests := map[string]string{
		"CONFIG_A=y\nFOO=y\n":               "line 2",
		"CONFIG_A=y\nCONFIG_A=n\n":          "CONFIG_A set to n after y",
		"CONFIG_A y\n":                      "want CONFIG_NAME=value",
		"CONFIG_A=\n":                       "invalid value",
		"CONFIG_A=\"unterminated\n":         "invalid value",
		"CONFIG_A-B=y\n":                    "invalid option name",
		"CONFIG_=y\n":                       "invalid option name",
		"# CONFIG_A-B is not set\n":         "invalid option name",
		"CONFIG_A=two words\n":              "invalid value",
		"CONFIG_A=y\n\nCONFIG_B=x#y\n":      "line 3",
		"CONFIG_A=y\n# CONFIG_A is not set": "CONFIG_A set to n after y",
	}
	for in, want := range tests {
		_, err := ParseBytes([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q): err = %v, want %q", in, err, want)
		}
	}
}

func TestFragments(t *testing.T) {
	if got := Features(); !slices.Contains(got, "net") || slices.Contains(got, BaseName) {
		t.Errorf("Features() = %v, want net and not base", got)
	}
	frags, err := Fragments([]string{"vsock", " NET", "net", ""})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range frags {
		names = append(names, f.Name)
	}
	if diff := cmp.Diff([]string{"base", "net", "vsock"}, names); diff != "" {
		t.Errorf("fragment order (-want +got):\n%s", diff)
	}
	if _, err := Fragments([]string{"net", "gpu"}); err == nil || !strings.Contains(err.Error(), `unknown kernel feature "gpu" (known: `) {
		t.Errorf("unknown feature: err = %v", err)
	}
	base, err := Fragments(nil)
	if err != nil || len(base) != 1 || base[0].Name != BaseName {
		t.Errorf("Fragments(nil) = %v, %v; want the base alone", base, err)
	}
}

// TestEmbeddedFragments checks that the fragments nos ships parse, agree
// with each other, and say what the issue asks of a nos kernel.
func TestEmbeddedFragments(t *testing.T) {
	frags, err := Fragments(Features())
	if err != nil {
		t.Fatal(err)
	}
	all, err := Merge(frags)
	if err != nil {
		t.Fatal(err)
	}
	base, err := Merge(frags[:1])
	if err != nil {
		t.Fatal(err)
	}
	for name, value := range map[string]string{
		"CONFIG_MODULES": Off, "CONFIG_DEBUG_INFO": Off,
		"CONFIG_SERIAL_8250_CONSOLE": "y", "CONFIG_VIRTIO_MMIO": "y", "CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES": "y",
		"CONFIG_VIRTIO_PCI": "y", "CONFIG_VIRTIO_CONSOLE": "y", "CONFIG_HW_RANDOM_VIRTIO": "y",
		"CONFIG_DEVTMPFS": "y", "CONFIG_DEVTMPFS_MOUNT": "y", "CONFIG_TMPFS": "y",
		"CONFIG_FUTEX": "y", "CONFIG_EPOLL": "y", "CONFIG_EVENTFD": "y", "CONFIG_SIGNALFD": "y", "CONFIG_TIMERFD": "y",
		"CONFIG_PVH": "y", "CONFIG_PARAVIRT": "y", "CONFIG_KVM_GUEST": "y", "CONFIG_COMPAT_32BIT_TIME": "y",
		"CONFIG_BLK_DEV_INITRD": "y", "CONFIG_RD_GZIP": "y", "CONFIG_ACPI": "y", "CONFIG_MULTIUSER": "y",
		"CONFIG_PROC_FS": "y", "CONFIG_SYSFS": "y",
	} {
		if v, _ := base.Get(name); v != value {
			t.Errorf("base fragment: %s = %q, want %q", name, v, value)
		}
	}
	for _, name := range []string{"CONFIG_NET", "CONFIG_INET", "CONFIG_VIRTIO_NET"} {
		if _, ok := base.Get(name); ok {
			t.Errorf("base fragment sets %s; networking belongs to the net feature", name)
		}
	}
	for _, name := range []string{"CONFIG_INET", "CONFIG_UNIX", "CONFIG_VIRTIO_NET", "CONFIG_VIRTIO_BLK", "CONFIG_EXT4_FS", "CONFIG_VIRTIO_VSOCKETS"} {
		if v, _ := all.Get(name); v != "y" {
			t.Errorf("all features: %s = %q, want y", name, v)
		}
	}
}

func TestMergeConflict(t *testing.T) {
	_, err := Merge([]Fragment{
		{Name: "a", Data: []byte("CONFIG_X=y\nCONFIG_Y=y\n")},
		{Name: "b", Data: []byte("CONFIG_Y=y\n")},
		{Name: "c", Data: []byte("# CONFIG_X is not set\n")},
	})
	if err == nil || !strings.Contains(err.Error(), "fragments a and c disagree: CONFIG_X=y vs # CONFIG_X is not set") {
		t.Errorf("err = %v", err)
	}
	// A feature may turn on what the base turns off, not the reverse, and
	// two features still may not disagree.
	m, err := Merge([]Fragment{
		{Name: BaseName, Data: []byte("# CONFIG_INPUT is not set\nCONFIG_PCI=y\n")},
		{Name: "cloud", Data: []byte("CONFIG_INPUT=y\n")},
	})
	if v, _ := m.Get("CONFIG_INPUT"); err != nil || v != "y" {
		t.Errorf("base off, feature on: %v, CONFIG_INPUT=%q", err, v)
	}
	if _, err := Merge([]Fragment{
		{Name: BaseName, Data: []byte("CONFIG_PCI=y\n")},
		{Name: "cloud", Data: []byte("# CONFIG_PCI is not set\n")},
	}); err == nil {
		t.Error("a feature turned off what the base turns on")
	}
	if _, err := Merge([]Fragment{
		{Name: BaseName, Data: []byte("# CONFIG_INPUT is not set\n")},
		{Name: "a", Data: []byte("CONFIG_INPUT=y\n")},
		{Name: "b", Data: []byte("# CONFIG_INPUT is not set\n")},
	}); err == nil || !strings.Contains(err.Error(), "fragments a and b disagree") {
		t.Errorf("two features disagreeing: %v", err)
	}
	_, err = Merge([]Fragment{{Name: "bad", Data: []byte("CONFIG_X=y\nnonsense\n")}})
	if err == nil || !strings.Contains(err.Error(), "fragment bad: line 2") {
		t.Errorf("err = %v", err)
	}
}

func TestOverlay(t *testing.T) {
	base := "#\n# comment\n#\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_KERNEL_XZ=y\nCONFIG_C=\"x\""
	over := &Config{}
	over.Set("CONFIG_B", "y")
	over.Set("CONFIG_KERNEL_XZ", Off)
	over.Set("CONFIG_KERNEL_GZIP", "y")
	got := string(Overlay([]byte(base), over))
	want := "#\n# comment\n#\nCONFIG_A=y\nCONFIG_C=\"x\"\nCONFIG_B=y\n# CONFIG_KERNEL_XZ is not set\nCONFIG_KERNEL_GZIP=y\n"
	if got != want {
		t.Errorf("Overlay:\n%s\nwant:\n%s", got, want)
	}
}

// resolved is a fake .config as olddefconfig might leave it after the
// fragment below: some options kept, some dropped, one changed.
const resolved = `#
# Automatically generated file; DO NOT EDIT.
# Linux/x86 6.1.192 Kernel Configuration
#
CONFIG_64BIT=y
CONFIG_NET=y
# CONFIG_VIRTIO_NET is not set
CONFIG_NR_CPUS=8
CONFIG_LOCALVERSION="-nos"
# CONFIG_MODULES is not set
CONFIG_SLUB=y
`

const fragment = `CONFIG_64BIT=y
CONFIG_NET=y
CONFIG_VIRTIO_NET=y
CONFIG_NR_CPUS=64
CONFIG_LOCALVERSION="-nos"
# CONFIG_MODULES is not set
# CONFIG_DEBUG_INFO is not set
CONFIG_VIRTIO_VSOCKETS=y
CONFIG_NO_SUCH_THING=y
`

func TestCheck(t *testing.T) {
	want, err := ParseBytes([]byte(fragment))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseBytes([]byte(resolved))
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, s := range []string{"64BIT", "NET", "VIRTIO_NET", "NR_CPUS", "LOCALVERSION", "MODULES", "DEBUG_INFO", "VIRTIO_VSOCKETS", "SLUB"} {
		known[s] = true
	}
	err = Check(want, got, known)
	ce, ok := err.(*CheckError)
	if !ok {
		t.Fatalf("Check: err = %v, want a *CheckError", err)
	}
	var summary []string
	for _, p := range ce.Problems {
		summary = append(summary, p.String())
	}
	wantSummary := []string{
		"CONFIG_VIRTIO_NET=y (dropped: not set, its dependencies are unmet)",
		"CONFIG_NR_CPUS=64 (now 8)",
		"CONFIG_VIRTIO_VSOCKETS=y (dropped: not set, its dependencies are unmet)",
		"CONFIG_NO_SUCH_THING=y (unknown to this kernel)",
	}
	if diff := cmp.Diff(wantSummary, summary); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "4 option(s) the fragments set are not in the kernel's configuration: CONFIG_VIRTIO_NET=y") {
		t.Errorf("message = %q", msg)
	}

	// Without the symbol table, an unknown option is merely dropped.
	err = Check(want, got, nil)
	if ce, ok := err.(*CheckError); !ok || len(ce.Problems) != 4 || ce.Problems[3].Unknown {
		t.Errorf("Check without known symbols: %v", err)
	}

	// A configuration that has everything passes.
	fixed := Overlay([]byte(resolved), want)
	full, err := ParseBytes(fixed)
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(want, full, nil); err != nil {
		t.Errorf("Check on a configuration holding the fragment: %v", err)
	}
}

func TestKnownSymbols(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, text string) {
		path := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("Kconfig", "mainmenu \"Linux\"\nsource \"init/Kconfig\"\nconfig 64BIT\n\tbool \"64-bit kernel\"\n")
	write("init/Kconfig", "menuconfig NET\n\tbool \"Networking\"\nif NET\nconfig INET\n\tbool\nendif\n\thelp\n\t  config FAKE in help text is not indented alone\n")
	write("arch/x86/Kconfig.debug", "config X86_DEBUG\n\tbool\n")
	write("Documentation/Kconfig", "config DOC_ONLY\n")
	write("drivers/Makefile", "config NOT_KCONFIG\n")
	got, err := KnownSymbols(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"64BIT": true, "NET": true, "INET": true, "X86_DEBUG": true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("symbols (-want +got):\n%s", diff)
	}
	if _, err := KnownSymbols(t.TempDir()); err == nil {
		t.Error("KnownSymbols on an empty tree: no error")
	}
}
