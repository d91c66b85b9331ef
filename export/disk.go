package export

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/nosproject/nos/bootable"
	"github.com/nosproject/nos/guestapi"
	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/initramfs"
	"github.com/nosproject/nos/internal/fsutil"
)

// CloudFeature is the kernel feature a disk export needs (kernel/config/
// cloud.config): UEFI, PCI, the clouds' disks and NICs, DMI.
const CloudFeature = "cloud"

// ErrNoCloudKernel: the image's kernel cannot boot from an exported disk.
var ErrNoCloudKernel = errors.New("image's kernel cannot boot from a UEFI disk")

// Disk is what a disk export is made of.
type Disk struct {
	// Format is one of DiskFormats.
	Format string
	// Output is the file to write.
	Output string
	// Force replaces Output if it exists.
	Force bool
	// Name is the guest's hostname unless the platform or user-data names
	// one; "" is the image's name.
	Name string
}

// The disk's layout: a GPT disk (protective MBR, 1 MiB before the first
// partition) holding an EFI system partition and, when the image has a
// root disk, the root filesystem as the second partition, named
// RootPartLabel so that the guest finds it on any bus.
const (
	RootPartLabel = "nos-root"
	espLabel      = "EFI System"
	mib           = 1 << 20
	gib           = 1 << 30
	sectorSize    = 512
	// minESP keeps the FAT32 system partition above the 65,525 clusters
	// below which firmware (edk2 among them) takes FAT32 for FAT16 and
	// refuses it: at 512-byte clusters, which is what a FAT32 of this
	// size gets, 64 MiB is about 130,000 clusters.
	minESP = 64 * mib
	// bootPath is where UEFI firmware looks on removable media and on a
	// disk with no boot entries, which is every cloud's first boot.
	bootPath = "/EFI/BOOT/BOOTX64.EFI"
)

// fixedTime is the time of every file an export writes (the GCE tar's
// disk.raw, the system partition's entries): a disk export is
// reproducible, and FAT has no time before 1980.
var fixedTime = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

// diskFormat turns the raw GPT disk into what one platform imports.
type diskFormat interface {
	// diskSize is the raw disk's size for a layout needing n bytes.
	diskSize(n int64) int64
	// write writes the raw disk at raw into the file dst (which does not
	// exist yet); it may move raw.
	write(ctx context.Context, raw, dst string) error
	// describe says, for the command's output, what was written and how
	// it is used.
	describe(out string) string
}

// diskFormats are the formats of WriteDisk, by name.
var diskFormats = map[string]diskFormat{
	"raw":   rawDisk{},
	"aws":   awsDisk{},
	"qcow2": qemuImg{format: "qcow2", opts: "compat=1.1"},
	"vmdk":  qemuImg{format: "vmdk", opts: "subformat=streamOptimized", fixCID: true},
	"vhd":   vhdFixed{},
	"gce":   gceTar{},
}

// DiskFormats returns the disk formats' names, sorted.
func DiskFormats() []string {
	var names []string
	for n := range diskFormats {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// IsDiskFormat reports whether format is one of DiskFormats.
func IsDiskFormat(format string) bool { _, ok := diskFormats[format]; return ok }

// CheckDiskBootable says why im cannot boot from an exported disk: its
// init must configure itself from DHCP and metadata, and its kernel must
// be one of nos's built with the cloud feature (an EFI stub, PCI and the
// clouds' drivers built in).
func CheckDiskBootable(im *bootable.Image) error {
	k := im.Config.Kernel
	if k.Features == nil || !slices.Contains(k.Features, CloudFeature) {
		have := "a kernel nos did not build"
		if k.Features != nil {
			have = "features " + describeFeatures(k.Features)
		}
		return fmt.Errorf("its kernel %s (%s) lacks the cloud feature: rebuild the image with `nos build --features blk,cloud,net ...` (nos builds that kernel the first time, about 10 minutes): %w", k.Version, have, ErrNoCloudKernel)
	}
	if im.Config.InitAPI < image.InitAPIDisk {
		return fmt.Errorf("its nos-init cannot configure itself from DHCP and metadata (made by an older nos): rebuild it with this nos: %w", ErrCannotBoot)
	}
	return nil
}

func describeFeatures(fs []string) string {
	if len(fs) == 0 {
		return "none"
	}
	return strings.Join(fs, ",")
}

// DiskGuestConfig is the standalone config an exported disk's guest
// starts from: the image's command, environment and user; its address by
// DHCP on the first NIC; the root partition by its label. Platform
// metadata and user-data change it at boot (guestapi.UserData).
func DiskGuestConfig(im *bootable.Image, name string) *guestapi.Config {
	c := im.Config
	g := &guestapi.Config{
		Argv:          append(slices.Clone(c.Entrypoint), c.Args...),
		EntrypointLen: len(c.Entrypoint),
		Env:           c.Env,
		WorkingDir:    c.WorkingDir,
		Hostname:      name,
		User:          c.User,
		Caps:          c.Caps,
	}
	if !c.Kernel.NoNetwork {
		// No name: the first NIC that appears, whatever its driver.
		g.Network = &guestapi.Network{DHCP: true}
	}
	if c.RootFS != "" {
		g.Root = &guestapi.Root{PartLabel: RootPartLabel, FSType: c.RootFS, Writable: true}
	}
	return g
}

// WriteDisk exports im as a bootable UEFI disk in d.Format at d.Output
// (kernelPath is the image's kernel as a file, used when the image has no
// separate UEFI boot image, bootable.Image.EFIKernel):
// a GPT disk whose EFI system partition holds a Unified Kernel Image
// (systemd's stub, the image's kernel, its command line, and its
// initramfs followed by the standalone config) as \EFI\BOOT\BOOTX64.EFI,
// and the root filesystem, when the image has one, as a second
// partition. The same image always gives the same bytes. Nothing is left
// at d.Output when it fails.
func WriteDisk(ctx context.Context, im *bootable.Image, kernelPath string, d Disk) (err error) {
	f, ok := diskFormats[d.Format]
	if !ok {
		return fmt.Errorf("--format %q: want one of %s: %w", d.Format, strings.Join(DiskFormats(), ", "), ErrBadOption)
	}
	if err := CheckDiskBootable(im); err != nil {
		return err
	}
	if _, err := os.Lstat(d.Output); err == nil && !d.Force {
		return fmt.Errorf("%s: %w", d.Output, ErrExistsFile)
	}
	name := d.Name
	if name == "" {
		name = "nos"
	}
	uki, err := imageUKI(ctx, im, kernelPath, DiskGuestConfig(im, name))
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(d.Output), "."+filepath.Base(d.Output)+".*")
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer os.RemoveAll(tmp)
	raw := filepath.Join(tmp, "disk.raw")
	seed := im.Ref.Manifest.Digest.String()
	if err := writeGPT(ctx, raw, uki, im.RootDisk, seed, f.diskSize); err != nil {
		return err
	}
	out := filepath.Join(tmp, "out")
	if err := f.write(ctx, raw, out); err != nil {
		return err
	}
	if err := os.Chmod(out, 0o644); err != nil {
		return err
	}
	if err := os.Rename(out, d.Output); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// ErrExistsFile: the output file exists and Force was not given.
var ErrExistsFile = errors.New("output file exists (use --force to replace it)")

// DescribeDisk says what WriteDisk wrote at out in format, and how a user
// takes it further.
func DescribeDisk(format, out string) string { return diskFormats[format].describe(out) }

// imageUKI makes the Unified Kernel Image of im: systemd's stub with
// .osrel, .cmdline, .linux and .initrd sections.
func imageUKI(ctx context.Context, im *bootable.Image, kernelPath string, cfg *guestapi.Config) ([]byte, error) {
	stub, err := ReadUKIStub()
	if err != nil {
		return nil, err
	}
	if im.EFIKernel != "" {
		kernelPath = im.EFIKernel
	}
	if !fsutil.IsEFI(kernelPath) {
		return nil, fmt.Errorf("its kernel %s has no EFI stub: rebuild the image with `nos build --features blk,cloud,net ...`: %w", im.Config.Kernel.Version, ErrNoCloudKernel)
	}
	kernel, err := os.ReadFile(kernelPath)
	if err != nil {
		return nil, err
	}
	var initrd bytes.Buffer
	if err := writeInitrdTo(ctx, &initrd, im.Initrd, cfg); err != nil {
		return nil, err
	}
	osrel := fmt.Sprintf("ID=nos\nNAME=nos\nPRETTY_NAME=\"nos image %s:%s\"\nIMAGE_ID=%s\nIMAGE_VERSION=%s\n",
		im.Ref.Name, im.Ref.Tag, im.Ref.Name, im.Ref.Manifest.Digest.Encoded()[:12])
	return BuildUKI(stub, []Section{
		{Name: ".osrel", Data: []byte(osrel)},
		{Name: ".cmdline", Data: []byte(im.Config.KernelCmdline + "\x00")},
		{Name: ".linux", Data: kernel},
		{Name: ".initrd", Data: initrd.Bytes()},
	})
}

// writeInitrdTo writes the image's initramfs followed by an archive
// holding cfg at guestapi.StandaloneConfig, compressed as the image's is:
// the image's kernel unpacks that.
func writeInitrdTo(ctx context.Context, w io.Writer, base string, cfg *guestapi.Config) error {
	a, err := standaloneArchive(cfg)
	if err != nil {
		return err
	}
	comp, err := compressionOf(base)
	if err != nil {
		return err
	}
	if err := copyInto(ctx, w, base); err != nil {
		return err
	}
	_, err = a.WriteCompressed(w, comp)
	return err
}

// compressionOf tells how the initramfs at path is compressed.
func compressionOf(path string) (initramfs.Compression, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	head := make([]byte, 4)
	n, _ := io.ReadFull(f, head)
	c, ok := initramfs.Detect(head[:n])
	if !ok {
		return 0, fmt.Errorf("the image's initramfs is neither LZ4 nor gzip (starts % x): build the image again", head[:n])
	}
	return c, nil
}

func standaloneArchive(cfg *guestapi.Config) (*initramfs.Archive, error) {
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	var a initramfs.Archive
	if err := a.AddFile(guestapi.StandaloneConfig, 0o600, b); err != nil {
		return nil, err
	}
	return &a, nil
}

// stableGUID derives a GUID from the image and a purpose: the same
// image always gets the same disk and partition GUIDs.
func stableGUID(seed, what string) string {
	h := sha256.Sum256([]byte("nos-disk:" + seed + ":" + what))
	h[6] = h[6]&0x0f | 0x80
	h[8] = h[8]&0x3f | 0x80
	return strings.ToUpper(fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16]))
}

// writeGPT writes the raw disk: GPT, the system partition holding uki,
// the root filesystem's bytes when rootDisk is set.
func writeGPT(ctx context.Context, path string, uki []byte, rootDisk, seed string, size func(int64) int64) error {
	espSize := max(int64(minESP), alignUp64(int64(len(uki))+int64(len(uki))/20+mib, mib))
	for !fatFits(espSize) {
		espSize += mib
	}
	var rootSize int64
	if rootDisk != "" {
		st, err := os.Stat(rootDisk)
		if err != nil {
			return err
		}
		rootSize = alignUp64(st.Size(), mib)
	}
	// 1 MiB before the first partition; 1 MiB after the last one holds
	// the backup GPT (33 sectors) and rounds the disk to MiB.
	need := mib + espSize + rootSize + mib
	total := size(need)
	d, err := diskfs.Create(path, total, diskfs.SectorSizeDefault)
	if err != nil {
		return fmt.Errorf("export: creating the disk: %w", err)
	}
	closed := false
	defer func() {
		if !closed {
			d.Close()
		}
	}()
	espStart := uint64(mib / sectorSize)
	espEnd := espStart + uint64(espSize/sectorSize) - 1
	parts := []*gpt.Partition{{
		Index: 1, Start: espStart, End: espEnd, Type: gpt.EFISystemPartition,
		Name: espLabel, GUID: stableGUID(seed, "esp"),
	}}
	if rootDisk != "" {
		start := espEnd + 1
		parts = append(parts, &gpt.Partition{
			Index: 2, Start: start, End: start + uint64(rootSize/sectorSize) - 1, Type: gpt.LinuxRootX86_64,
			Name: RootPartLabel, GUID: stableGUID(seed, "root"),
		})
	}
	table := &gpt.Table{
		LogicalSectorSize: sectorSize, PhysicalSectorSize: sectorSize, ProtectiveMBR: true,
		GUID: stableGUID(seed, "disk"), Partitions: parts,
	}
	if err := d.Partition(table); err != nil {
		return fmt.Errorf("export: partitioning: %w", err)
	}
	fs, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 1, FSType: filesystem.TypeFat32, VolumeLabel: "ESP", Reproducible: true})
	if err != nil {
		return fmt.Errorf("export: system partition: %w", err)
	}
	for _, dir := range []string{"/EFI", "/EFI/BOOT"} {
		if err := fs.Mkdir(dir); err != nil {
			return fmt.Errorf("export: system partition: %w", err)
		}
	}
	f, err := fs.OpenFile(bootPath, os.O_CREATE|os.O_RDWR)
	if err != nil {
		return fmt.Errorf("export: system partition: %w", err)
	}
	if _, err := f.Write(uki); err != nil {
		return fmt.Errorf("export: writing %s: %w", bootPath, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if rootDisk != "" {
		if err := ctx.Err(); err != nil {
			return err
		}
		r, err := os.Open(rootDisk)
		if err != nil {
			return err
		}
		defer r.Close()
		st, err := r.Stat()
		if err != nil {
			return err
		}
		// The partition is whole MiB; what the filesystem does not fill
		// is zeros.
		pad := io.LimitReader(zeros{}, rootSize-st.Size())
		if _, err := d.WritePartitionContents(2, io.MultiReader(ctxReader{ctx, r}, pad)); err != nil {
			return fmt.Errorf("export: root partition: %w", err)
		}
	}
	closed = true
	if err := d.Close(); err != nil {
		return err
	}
	return fixFATTimes(path, int64(espStart)*sectorSize)
}

// fixFATTimes sets every time in the system partition's directories to
// 1980-01-01 00:00: go-diskfs stamps directory entries (the volume label,
// "." and "..") with the time they were made, and an export must be the
// same bytes every time. It also points ".." entries that lead to the
// root at cluster 0, as the FAT specification says. The partition is the FAT32 nos just wrote at
// offset off of the disk at path; the walk follows each directory's
// cluster chain, and only nos's own few directories exist.
func fixFATTimes(path string, off int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	bs := make([]byte, sectorSize)
	if _, err := f.ReadAt(bs, off); err != nil {
		return err
	}
	bps := int64(binary.LittleEndian.Uint16(bs[11:]))
	spc := int64(bs[13])
	reserved := int64(binary.LittleEndian.Uint16(bs[14:]))
	nfats := int64(bs[16])
	fatSectors := int64(binary.LittleEndian.Uint32(bs[36:]))
	rootCluster := binary.LittleEndian.Uint32(bs[44:])
	if bps != sectorSize || spc == 0 || nfats == 0 {
		return fmt.Errorf("export: unexpected FAT32 layout")
	}
	fatAt := off + reserved*bps
	dataAt := fatAt + nfats*fatSectors*bps
	clusterSize := spc * bps
	next := func(c uint32) (uint32, error) {
		var b [4]byte
		if _, err := f.ReadAt(b[:], fatAt+int64(c)*4); err != nil {
			return 0, err
		}
		return binary.LittleEndian.Uint32(b[:]) & 0x0fffffff, nil
	}
	const date1980 = 1<<5 | 1 // day 1 of month 1 of 1980
	seen := map[uint32]bool{}
	dirs := []uint32{rootCluster}
	for len(dirs) > 0 {
		c := dirs[0]
		dirs = dirs[1:]
		for ; c >= 2 && c < 0x0ffffff7 && !seen[c]; c, err = next(c) {
			seen[c] = true
			buf := make([]byte, clusterSize)
			at := dataAt + int64(c-2)*clusterSize
			if _, err := f.ReadAt(buf, at); err != nil {
				return err
			}
			for e := 0; e+32 <= len(buf); e += 32 {
				ent := buf[e : e+32]
				if ent[0] == 0 || ent[0] == 0xe5 || ent[11]&0x0f == 0x0f {
					continue // free, deleted, or a long-name part
				}
				ent[13] = 0
				binary.LittleEndian.PutUint16(ent[14:], 0)
				binary.LittleEndian.PutUint16(ent[16:], date1980)
				binary.LittleEndian.PutUint16(ent[18:], date1980)
				binary.LittleEndian.PutUint16(ent[22:], 0)
				binary.LittleEndian.PutUint16(ent[24:], date1980)
				name := string(ent[0:11])
				cluster := uint32(binary.LittleEndian.Uint16(ent[20:]))<<16 | uint32(binary.LittleEndian.Uint16(ent[26:]))
				if name == "..         " && cluster == rootCluster {
					// A ".." that leads to the root directory holds
					// cluster 0 (Microsoft's FAT specification); go-diskfs
					// writes the root's cluster, which fsck.fat rejects.
					binary.LittleEndian.PutUint16(ent[20:], 0)
					binary.LittleEndian.PutUint16(ent[26:], 0)
				}
				if ent[11]&0x10 != 0 && name != ".          " && name != "..         " {
					dirs = append(dirs, cluster)
				}
			}
			if _, err := f.WriteAt(buf, at); err != nil {
				return err
			}
		}
		if err != nil {
			return err
		}
	}
	return f.Close()
}

// fatFits reports whether the FAT32 go-diskfs makes in size bytes has a
// FAT entry for every cluster. Its closed-form sizing of the FAT (v1.9.4)
// comes out two entries short for some sizes (64 MiB is one: 129,024
// clusters, 129,022 entries, which fsck.fat rejects); this mirrors that
// sizing, with its cluster sizes, so that WriteDisk can step past them.
func fatFits(size int64) bool {
	spc := int64(1) // 512-byte clusters up to 260 MB
	switch {
	case size > 260*1000*1000 && size <= 8*gib:
		spc = 8
	case size > 8*gib:
		return false // a system partition is never this large
	}
	const reserved = 32
	total := size / sectorSize
	denom := sectorSize*spc + 8
	fatSectors := (4*(total-reserved) + denom - 1) / denom
	clusters := (total - reserved - 2*fatSectors) / spc
	return fatSectors*sectorSize/4 >= clusters+2
}

func alignUp64(v, a int64) int64 { return (v + a - 1) / a * a }

// rawDisk: the raw GPT disk, sized in whole MiB.
type rawDisk struct{}

func (rawDisk) diskSize(n int64) int64                         { return alignUp64(n, mib) }
func (rawDisk) write(_ context.Context, raw, dst string) error { return os.Rename(raw, dst) }
func (rawDisk) describe(out string) string {
	return out + ": a raw UEFI disk (GPT); boot it with UEFI firmware, e.g. qemu-system-x86_64 -machine q35 -bios /usr/share/ovmf/OVMF.fd -drive file=" + out + ",format=raw,if=virtio"
}

// awsDisk: a raw disk for EC2's snapshot import; the boot mode is set
// when the image is registered.
type awsDisk struct{ rawDisk }

func (awsDisk) describe(out string) string {
	return out + ": a raw UEFI disk for EC2. Upload it and register it with UEFI boot:\n" +
		"  aws s3 cp " + out + " s3://BUCKET/" + filepath.Base(out) + "\n" +
		"  aws ec2 import-snapshot --disk-container Format=RAW,UserBucket={S3Bucket=BUCKET,S3Key=" + filepath.Base(out) + "}\n" +
		"  aws ec2 register-image --name NAME --boot-mode uefi --architecture x86_64 --ena-support --root-device-name /dev/xvda --block-device-mappings DeviceName=/dev/xvda,Ebs={SnapshotId=SNAP}"
}

// qemuImg converts with qemu-img, the real tool for these formats.
type qemuImg struct {
	format, opts string
	// fixCID replaces the random content ID qemu-img puts in a VMDK
	// descriptor with one derived from the disk, for reproducibility.
	fixCID bool
}

func (q qemuImg) diskSize(n int64) int64 { return alignUp64(n, mib) }

func (q qemuImg) write(ctx context.Context, raw, dst string) error {
	args := []string{"convert", "-q", "-f", "raw", "-O", q.format}
	if q.opts != "" {
		args = append(args, "-o", q.opts)
	}
	out, err := exec.CommandContext(ctx, "qemu-img", append(args, raw, dst)...).CombinedOutput()
	if errors.Is(err, exec.ErrNotFound) {
		return fmt.Errorf("export: qemu-img is missing (apt-get install qemu-utils)")
	}
	if err != nil {
		return fmt.Errorf("export: qemu-img convert to %s: %v: %s", q.format, err, bytes.TrimSpace(out))
	}
	if q.fixCID {
		return fixVMDKCID(dst)
	}
	return nil
}

func (q qemuImg) describe(out string) string {
	switch q.format {
	case "vmdk":
		return out + ": a stream-optimised VMDK UEFI disk (VMware, VirtualBox, EC2's import-image)"
	}
	return out + ": a " + q.format + " UEFI disk (libvirt, KubeVirt, OpenStack); boot it with UEFI firmware on a q35 machine"
}

// fixVMDKCID rewrites "CID=..." in the VMDK's embedded descriptor with a
// value hashed from the rest of the descriptor and the file's size. qemu-img
// writes a random CID with %x, so that its width (and the place of
// everything after it) varies too: nos writes the whole descriptor again,
// the CID as eight hex digits, padded with zeros to the descriptor's area
// as the sparse header gives it.
func fixVMDKCID(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	var hdr [44]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		return fmt.Errorf("export: reading the VMDK header: %w", err)
	}
	off := binary.LittleEndian.Uint64(hdr[28:]) * 512
	size := binary.LittleEndian.Uint64(hdr[36:]) * 512
	if string(hdr[:4]) != "KDMV" || off == 0 || size == 0 || size > 1<<20 {
		return fmt.Errorf("export: qemu-img wrote no VMDK sparse header with a descriptor")
	}
	desc := make([]byte, size)
	if _, err := f.ReadAt(desc, int64(off)); err != nil {
		return fmt.Errorf("export: reading the VMDK descriptor: %w", err)
	}
	text, _, _ := bytes.Cut(desc, []byte{0})
	i := bytes.Index(text, []byte("\nCID="))
	if i < 0 {
		return fmt.Errorf("export: no CID in the VMDK descriptor")
	}
	before, rest := text[:i+5], text[i+5:]
	j := bytes.IndexByte(rest, '\n')
	if j < 0 {
		return fmt.Errorf("export: no end to the VMDK descriptor's CID line")
	}
	after := rest[j:]
	st, err := f.Stat()
	if err != nil {
		return err
	}
	h := sha256.New()
	h.Write(before)
	h.Write(after)
	fmt.Fprintf(h, "%d", st.Size())
	cid := fmt.Sprintf("%08x", binary.BigEndian.Uint32(h.Sum(nil)))
	out := slices.Concat(before, []byte(cid), after)
	if uint64(len(out)) > size {
		return fmt.Errorf("export: the VMDK descriptor does not fit its area")
	}
	if _, err := f.WriteAt(append(out, make([]byte, int(size)-len(out))...), int64(off)); err != nil {
		return err
	}
	return f.Close()
}

// vhdFixed: a fixed VHD as Azure takes it: the raw disk, a whole number
// of MiB, followed by the 512-byte VHD footer. nos writes the footer
// itself: qemu-img's vpc driver puts the current time and a random UUID
// in it, and the same image would never give the same bytes.
type vhdFixed struct{}

// diskSize is the first whole number of MiB, from n up, that the footer's
// CHS geometry describes exactly: Azure reads the footer's current size,
// which must be whole MiB; QEMU (and older Microsoft tools) read the
// geometry, and a VHD they would see as smaller than it is loses its
// backup GPT. At most 255 MiB more for the largest disks; 17 MiB at most
// for a small one. Past 127 GiB, CHS cannot describe a disk and every
// reader takes the footer's size.
func (vhdFixed) diskSize(n int64) int64 {
	for size := alignUp64(n, mib); ; size += mib {
		if size >= 65535*16*255*512 {
			return size // past what CHS can say: every reader takes the footer's size
		}
		c, h, s := vhdGeometry(size)
		if int64(c)*int64(h)*int64(s)*512 == size {
			return size
		}
	}
}

func (vhdFixed) write(_ context.Context, raw, dst string) error {
	f, err := os.OpenFile(raw, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	h := sha256.New()
	// The UUID is derived from the GPT header, which holds the disk's
	// GUID: the same image gives the same footer.
	head := make([]byte, 2*sectorSize)
	if _, err := f.ReadAt(head, 0); err != nil {
		return err
	}
	h.Write(head)
	var uuid [16]byte
	copy(uuid[:], h.Sum(nil))
	if _, err := f.Write(VHDFooter(st.Size(), uuid)); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(raw, dst)
}

func (vhdFixed) describe(out string) string {
	return out + ": a fixed VHD UEFI disk for Azure (Hyper-V generation 2). Upload it as a page blob and make a disk:\n" +
		"  az disk create -g GROUP -n NAME --hyper-v-generation V2 --upload-type Upload --upload-size-bytes $(stat -c %s " + out + ")\n" +
		"  (then azcopy copy " + out + " <the disk's SAS URL> --blob-type PageBlob, az disk revoke-access, az vm create --attach-os-disk NAME --os-type linux)"
}

// VHDFooter is the footer of a fixed VHD of size bytes (Microsoft's
// Virtual Hard Disk Image Format Specification): cookie "conectix",
// version 1.0, no data offset (fixed), creator "nos ", the geometry
// computed as the specification's appendix says, disk type 2 (fixed),
// the one's complement checksum. Its timestamp is 0 (January 1, 2000).
func VHDFooter(size int64, uuid [16]byte) []byte {
	f := make([]byte, 512)
	copy(f[0:], "conectix")
	binary.BigEndian.PutUint32(f[8:], 2)           // features: reserved bit
	binary.BigEndian.PutUint32(f[12:], 0x00010000) // file format version 1.0
	binary.BigEndian.PutUint64(f[16:], ^uint64(0)) // data offset: none, fixed disk
	copy(f[28:], "nos ")                           // creator application
	binary.BigEndian.PutUint32(f[32:], 0x00010000) // creator version
	copy(f[36:], "Wi2k")                           // creator host OS, as Azure's tools write
	binary.BigEndian.PutUint64(f[40:], uint64(size))
	binary.BigEndian.PutUint64(f[48:], uint64(size))
	c, h, s := vhdGeometry(size)
	binary.BigEndian.PutUint16(f[56:], c)
	f[58], f[59] = h, s
	binary.BigEndian.PutUint32(f[60:], 2) // disk type: fixed
	copy(f[68:], uuid[:])
	var sum uint32
	for _, b := range f {
		sum += uint32(b)
	}
	binary.BigEndian.PutUint32(f[64:], ^sum)
	return f
}

// vhdGeometry is the CHS geometry of the VHD specification's appendix.
func vhdGeometry(size int64) (cyl uint16, heads, spt uint8) {
	sectors := size / 512
	if sectors > 65535*16*255 {
		sectors = 65535 * 16 * 255
	}
	var h, s, cth int64
	if sectors >= 65535*16*63 {
		s, h = 255, 16
		cth = sectors / s
	} else {
		s = 17
		cth = sectors / s
		h = (cth + 1023) / 1024
		if h < 4 {
			h = 4
		}
		if cth >= h*1024 || h > 16 {
			s, h = 31, 16
			cth = sectors / s
		}
		if cth >= h*1024 {
			s, h = 63, 16
			cth = sectors / s
		}
	}
	return uint16(cth / h), uint8(h), uint8(s)
}

// gceTar: what GCE imports: a gzip'd tar, GNU format, holding disk.raw,
// whose size is a whole number of GiB.
type gceTar struct{}

func (gceTar) diskSize(n int64) int64 { return alignUp64(n, gib) }

func (gceTar) write(ctx context.Context, raw, dst string) error {
	in, err := os.Open(raw)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	return writeWith(dst, func(w io.Writer) error {
		zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
		if err != nil {
			return err
		}
		tw := tar.NewWriter(zw)
		hdr := &tar.Header{
			Typeflag: tar.TypeReg, Name: "disk.raw", Size: st.Size(), Mode: 0o644,
			ModTime: fixedTime, Format: tar.FormatGNU,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, ctxReader{ctx, in}); err != nil {
			return err
		}
		if err := tw.Close(); err != nil {
			return err
		}
		return zw.Close()
	})
}

func (gceTar) describe(out string) string {
	return out + ": a GCE image archive (disk.raw in a gzip'd GNU tar). Upload it and make a UEFI image:\n" +
		"  gsutil cp " + out + " gs://BUCKET/\n" +
		"  gcloud compute images create NAME --source-uri gs://BUCKET/" + filepath.Base(out) + " --guest-os-features=UEFI_COMPATIBLE,GVNIC"
}

// ctxReader stops a long copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
