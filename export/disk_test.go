package export

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/pe"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition/gpt"
)

func TestBuildUKI(t *testing.T) {
	stub, err := ReadUKIStub()
	if err != nil {
		t.Fatal(err) // CI installs systemd-boot-efi
	}
	linux := bytes.Repeat([]byte("K"), 3<<20+17)
	initrd := bytes.Repeat([]byte("I"), 1<<20+5)
	uki, err := BuildUKI(stub, []Section{
		{Name: ".osrel", Data: []byte("ID=nos\n")},
		{Name: ".cmdline", Data: []byte("console=ttyS0\x00")},
		{Name: ".linux", Data: linux},
		{Name: ".initrd", Data: initrd},
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := pe.NewFile(bytes.NewReader(uki))
	if err != nil {
		t.Fatalf("the UKI is not a PE file: %v", err)
	}
	opt := f.OptionalHeader.(*pe.OptionalHeader64)
	want := map[string][]byte{".osrel": []byte("ID=nos\n"), ".cmdline": []byte("console=ttyS0\x00"), ".linux": linux, ".initrd": initrd}
	var end uint32
	for i, s := range f.Sections {
		if s.VirtualAddress < end {
			t.Errorf("section %s at %#x overlaps the one before (ends %#x)", s.Name, s.VirtualAddress, end)
		}
		if _, ours := want[s.Name]; ours && (s.VirtualAddress%opt.SectionAlignment != 0 || s.Offset%opt.FileAlignment != 0) {
			t.Errorf("section %s misaligned: va %#x, offset %#x", s.Name, s.VirtualAddress, s.Offset)
		}
		end = s.VirtualAddress + s.VirtualSize
		if w, ok := want[s.Name]; ok {
			if i < 8 {
				t.Errorf("section %s is not after the stub's", s.Name)
			}
			got, err := io.ReadAll(io.LimitReader(s.Open(), int64(s.VirtualSize)))
			if err != nil || !bytes.Equal(got, w) {
				t.Errorf("section %s: %d bytes, want %d (%v)", s.Name, len(got), len(w), err)
			}
			delete(want, s.Name)
		}
	}
	if len(want) > 0 {
		t.Errorf("sections missing: %v", want)
	}
	if opt.SizeOfImage < end {
		t.Errorf("SizeOfImage %#x < end of sections %#x", opt.SizeOfImage, end)
	}
	// The stub's own sections are untouched.
	if !bytes.Equal(uki[0x400:0x11400], stub[0x400:0x11400]) {
		t.Error("the stub's sections changed")
	}
	if _, err := BuildUKI([]byte("not a PE file at all, not even close......................."), nil); err == nil {
		t.Error("BuildUKI took a non-PE stub")
	}
}

// TestWriteGPT: the layout is what firmware and the guest look for, and
// the same inputs give the same bytes.
func TestWriteGPT(t *testing.T) {
	dir := t.TempDir()
	uki := bytes.Repeat([]byte("U"), 5<<20+3)
	root := filepath.Join(dir, "root.erofs")
	rootData := bytes.Repeat([]byte("R"), 3<<20+1)
	if err := os.WriteFile(root, rootData, 0o644); err != nil {
		t.Fatal(err)
	}
	var sums [][32]byte
	for i := range 2 {
		p := filepath.Join(dir, "disk"+string(rune('a'+i)))
		if err := writeGPT(context.Background(), p, uki, root, "sha256:abc", rawDisk{}.diskSize); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(b)%mib != 0 {
			t.Errorf("disk of %d bytes: not whole MiB", len(b))
		}
		sums = append(sums, sha256.Sum256(b))
		if i > 0 {
			continue
		}
		d, err := diskfs.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		tab, err := d.GetPartitionTable()
		if err != nil {
			t.Fatal(err)
		}
		parts := tab.(*gpt.Table).Partitions
		if len(parts) != 2 || parts[0].Type != gpt.EFISystemPartition || parts[1].Name != RootPartLabel || parts[1].Type != gpt.LinuxRootX86_64 {
			t.Fatalf("partitions: %+v", parts)
		}
		if parts[0].Size < minESP {
			t.Errorf("ESP of %d bytes", parts[0].Size)
		}
		fs, err := d.GetFilesystem(1)
		if err != nil {
			t.Fatal(err)
		}
		f, err := fs.OpenFile(bootPath, os.O_RDONLY)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(f)
		if !bytes.Equal(got, uki) {
			t.Errorf("%s: %d bytes, want the UKI's %d", bootPath, len(got), len(uki))
		}
		// FAT32's boot sector: enough clusters that firmware takes it for
		// FAT32 (at least 65,525).
		esp := b[parts[0].Start*sectorSize:]
		perCluster := int64(esp[13])
		reserved := int64(binary.LittleEndian.Uint16(esp[14:]))
		fats := int64(esp[16])
		total := int64(binary.LittleEndian.Uint32(esp[32:]))
		fatSize := int64(binary.LittleEndian.Uint32(esp[36:]))
		if clusters := (total - reserved - fats*fatSize) / perCluster; clusters < 65525 {
			t.Errorf("FAT32 of %d clusters: edk2 wants at least 65,525", clusters)
		}
		// dosfstools' checker finds nothing wrong with it.
		espFile := filepath.Join(dir, "esp")
		if err := os.WriteFile(espFile, esp[:parts[0].Size], 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("fsck.fat", "-n", espFile).CombinedOutput(); err != nil {
			t.Errorf("fsck.fat -n: %v\n%s", err, out)
		}
		rootAt := int64(parts[1].Start) * sectorSize
		if !bytes.Equal(b[rootAt:rootAt+int64(len(rootData))], rootData) {
			t.Error("root partition does not hold the root disk")
		}
	}
	if sums[0] != sums[1] {
		a, _ := os.ReadFile(filepath.Join(dir, "diska"))
		b, _ := os.ReadFile(filepath.Join(dir, "diskb"))
		n := 0
		for i := range a {
			if a[i] != b[i] {
				if n < 5 {
					t.Logf("byte %#x: %#x vs %#x", i, a[i], b[i])
				}
				n++
			}
		}
		t.Errorf("two exports of the same inputs differ in %d bytes", n)
	}
}

func TestVHDFooter(t *testing.T) {
	f := VHDFooter(65*mib, [16]byte{1, 2, 3})
	if string(f[:8]) != "conectix" || binary.BigEndian.Uint32(f[60:]) != 2 || binary.BigEndian.Uint64(f[48:]) != 65*mib {
		t.Errorf("footer fields wrong: % x", f[:72])
	}
	var sum uint32
	for i, b := range f {
		if i < 64 || i >= 68 {
			sum += uint32(b)
		}
	}
	if ^sum != binary.BigEndian.Uint32(f[64:]) {
		t.Error("bad checksum")
	}
	// The specification's algorithm on a 127 MiB disk: 260096 sectors,
	// under 65535*16*63, gives 17 sectors per track first.
	c, h, s := vhdGeometry(127 * mib)
	if int64(c)*int64(h)*int64(s) > 127*mib/512 || c == 0 {
		t.Errorf("geometry %d/%d/%d exceeds the disk", c, h, s)
	}
}

// TestVHDSize: the size a VHD gets is whole MiB and exactly its geometry,
// never much more than asked.
func TestVHDSize(t *testing.T) {
	for _, n := range []int64{1, 66 * mib, 66*mib + 1, 200 * mib, 3 * gib, 40 * gib, 200 * gib} {
		got := vhdFixed{}.diskSize(n)
		c, h, s := vhdGeometry(got)
		exact := int64(c)*int64(h)*int64(s)*512 == got || got >= 65535*16*255*512
		if got < n || got%mib != 0 || !exact || got-n > 256*mib {
			t.Errorf("diskSize(%d) = %d (CHS %d/%d/%d)", n, got, c, h, s)
		}
	}
}

// qemu-img writes the VMDK's random CID with %x: seven digits or fewer one
// time in sixteen, moving the rest of the descriptor. Whatever qemu-img
// wrote, the fixed file is the same, and qemu-img still reads it.
func TestFixVMDKCID(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Fatal("qemu-img is missing (apt-get install qemu-utils)")
	}
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(raw, bytes.Repeat([]byte("nos disk "), 1<<18), 0o644); err != nil {
		t.Fatal(err)
	}
	var sums []string
	for i, cid := range []string{"", "abcdef1", "1", "0badcafe"} {
		// The extent's file name is in the descriptor: the same each time.
		if err := os.Mkdir(filepath.Join(dir, fmt.Sprint(i)), 0o755); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, fmt.Sprint(i), "out")
		if out, err := exec.Command("qemu-img", "convert", "-q", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", raw, out).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img: %v: %s", err, out)
		}
		if cid != "" {
			setVMDKCID(t, out, cid)
		}
		if err := fixVMDKCID(out); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("qemu-img", "check", "-f", "vmdk", out).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img check after the fix: %v: %s", err, out)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, fmt.Sprintf("%x", sha256.Sum256(b)))
		if !bytes.Contains(b[:64<<10], []byte("\nCID=")) || bytes.Contains(b[:64<<10], []byte("\nCID="+cid+"\n")) && cid != "" {
			t.Errorf("CID %q was not replaced", cid)
		}
	}
	for i := range sums {
		if sums[i] != sums[0] {
			t.Errorf("fixed VMDK %d differs from the first", i)
		}
	}
}

// setVMDKCID rewrites the descriptor at sector 1 with another CID, as
// qemu-img would have written it.
func setVMDKCID(t *testing.T, path, cid string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	desc := b[512 : 512+20*512]
	text, _, _ := bytes.Cut(desc, []byte{0})
	i := bytes.Index(text, []byte("\nCID=")) + 5
	j := i + bytes.IndexByte(text[i:], '\n')
	text = slices.Concat(text[:i], []byte(cid), text[j:])
	copy(desc, append(text, make([]byte, len(desc)-len(text))...))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
