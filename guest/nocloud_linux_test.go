package guest

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// isoImage is the start of an ISO 9660 image with volume id id.
func isoImage(id string) []byte {
	b := make([]byte, superblockLen)
	d := b[isoPVDOffset:]
	d[0], d[6] = 1, 1
	copy(d[1:], "CD001")
	copy(d[isoVolIDStart:isoVolIDStart+isoVolIDLen], id+strings.Repeat(" ", isoVolIDLen-len(id)))
	return b
}

// fatImage is a FAT boot sector with label label; fat32 puts it where
// FAT32 has it.
func fatImage(label string, fat32 bool) []byte {
	b := make([]byte, 512)
	binary.LittleEndian.PutUint16(b[11:], 512)
	b[13], b[16] = 4, 2
	sig, at := 38, 43
	if fat32 {
		sig, at = 66, 71
	} else {
		binary.LittleEndian.PutUint16(b[22:], 9)
	}
	b[sig] = 0x29
	copy(b[at:at+fatLabelLen], label+strings.Repeat(" ", fatLabelLen-len(label)))
	b[510], b[511] = 0x55, 0xAA
	return b
}

func TestFSLabel(t *testing.T) {
	for _, tc := range []struct {
		name        string
		img         []byte
		label, kind string
	}{
		{"iso", isoImage("cidata"), "cidata", "iso9660"},
		{"iso upper", isoImage("CIDATA"), "CIDATA", "iso9660"},
		{"fat16", fatImage("cidata", false), "cidata", "vfat"},
		{"fat32", fatImage("CIDATA", true), "CIDATA", "vfat"},
		{"empty", nil, "", ""},
		{"zeros", make([]byte, superblockLen), "", ""},
		{"short iso", isoImage("cidata")[:isoPVDOffset+50], "", ""},
		{"fat without signature", func() []byte { b := fatImage("cidata", false); b[38] = 0; return b }(), "", ""},
		{"fat bad sector size", func() []byte { b := fatImage("cidata", false); b[11] = 7; return b }(), "", ""},
		{"iso binary label", func() []byte { b := isoImage("cidata"); b[isoPVDOffset+isoVolIDStart] = 0x01; return b }(), "", "iso9660"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			label, kind := fsLabel(bytes.NewReader(tc.img))
			if label != tc.label || kind != tc.kind {
				t.Errorf("got %q %q, want %q %q", label, kind, tc.label, tc.kind)
			}
		})
	}
	if !isCidata("CIDATA") || !isCidata("cidata") || isCidata("cidata2") {
		t.Error("isCidata")
	}
}

// TestFSLabelOfRealImages reads what genisoimage and mkfs.vfat make (CI
// installs genisoimage and dosfstools).
func TestFSLabelOfRealImages(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "user-data"), []byte("{}"), 0o644)
	os.WriteFile(filepath.Join(dir, "meta-data"), []byte("instance-id: i-1\n"), 0o644)
	for _, tool := range []string{"genisoimage", "mkfs.vfat"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the test needs %s (apt-get install genisoimage dosfstools): %v", tool, err)
		}
	}
	if p, err := exec.LookPath("genisoimage"); err == nil {
		iso := filepath.Join(dir, "cidata.iso")
		if out, err := exec.Command(p, "-quiet", "-output", iso, "-volid", "cidata", "-joliet", "-rock", filepath.Join(dir, "user-data"), filepath.Join(dir, "meta-data")).CombinedOutput(); err != nil {
			t.Fatalf("genisoimage: %v\n%s", err, out)
		}
		checkLabel(t, iso, "iso9660")
	}
	if p, err := exec.LookPath("mkfs.vfat"); err == nil {
		img := filepath.Join(dir, "cidata.img")
		os.WriteFile(img, make([]byte, 2<<20), 0o644)
		if out, err := exec.Command(p, "-n", "CIDATA", img).CombinedOutput(); err != nil {
			t.Fatalf("mkfs.vfat: %v\n%s", err, out)
		}
		checkLabel(t, img, "vfat")
	}
}

func checkLabel(t *testing.T, path, kind string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if label, k := fsLabel(f); !isCidata(label) || k != kind {
		t.Errorf("%s: got %q %q, want cidata %s", filepath.Base(path), label, k, kind)
	}
}

func TestFindCidata(t *testing.T) {
	sys, dev := t.TempDir(), t.TempDir()
	for name, img := range map[string][]byte{"vda": make([]byte, 4096), "vdb": isoImage("cidata"), "loop0": isoImage("cidata")} {
		os.Mkdir(filepath.Join(sys, name), 0o755)
		os.WriteFile(filepath.Join(dev, name), img, 0o644)
	}
	os.Mkdir(filepath.Join(sys, "sr0"), 0o755) // no node: an empty drive
	if d, kind := findCidata(sys, dev); d != filepath.Join(dev, "vdb") || kind != "iso9660" {
		t.Errorf("got %q %q", d, kind)
	}
	os.Remove(filepath.Join(dev, "vdb"))
	if d, _ := findCidata(sys, dev); d != "" {
		t.Errorf("no cidata disk (loop devices skipped): got %q", d)
	}
}

func FuzzFSLabel(f *testing.F) {
	f.Add(isoImage("cidata"))
	f.Add(fatImage("cidata", false))
	f.Add(fatImage("cidata", true))
	f.Fuzz(func(t *testing.T, b []byte) {
		label, kind := fsLabel(bytes.NewReader(b))
		if len(label) > isoVolIDLen || (label != "" && kind == "") {
			t.Fatalf("label %q kind %q", label, kind)
		}
	})
}

func TestParseMetaData(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want noCloudMeta
	}{
		{"instance-id: iid-local01\nlocal-hostname: cloudimg\n", noCloudMeta{"iid-local01", "cloudimg"}},
		{"instance-id: \"i-1\"\r\nlocal-hostname: 'web' # the name\n", noCloudMeta{"i-1", "web"}},
		{"local-hostname: web # comment\n# instance-id: no\n", noCloudMeta{"", "web"}},
		{"network:\n  instance-id: nested\ninstance-id: top\n", noCloudMeta{"top", ""}},
		{`{"instance-id": "vmi-uid", "local-hostname": "vmi-name"}`, noCloudMeta{"vmi-uid", "vmi-name"}},
		{`{"instance-id": 7}`, noCloudMeta{}},
		{"garbage\x00: \xff\n", noCloudMeta{}},
		{"local-hostname: \"unterminated\n", noCloudMeta{}},
		{"", noCloudMeta{}},
	} {
		if got := parseMetaData([]byte(tc.in)); got != tc.want {
			t.Errorf("%q: got %+v, want %+v", tc.in, got, tc.want)
		}
	}
	if got := parseMetaData([]byte("instance-id: x\n" + strings.Repeat("#", maxMetaData))); got != (noCloudMeta{}) {
		t.Errorf("oversized meta-data: %+v", got)
	}
}

func FuzzParseMetaData(f *testing.F) {
	f.Add([]byte("instance-id: iid-local01\nlocal-hostname: cloudimg\n"))
	f.Add([]byte(`{"instance-id": "a", "local-hostname": "b"}`))
	f.Add([]byte("local-hostname: 'x' # y\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m := parseMetaData(b)
		if strings.ContainsAny(m.InstanceID+m.LocalHostname, "\n") && b[0] != '{' {
			t.Fatalf("a value spans lines: %+v", m)
		}
	})
}
