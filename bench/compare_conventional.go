package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nosproject/nos/vmm"
)

// Variant c of -compare, the conventional VM: a minimal Debian root file
// system made by debootstrap, with Debian's cloud kernel and its
// initramfs-tools initrd, systemd as init, systemd-networkd configuring the
// NIC by DHCP and the example as a systemd service. QEMU boots it with
// direct kernel boot (no bootloader) from a virtio disk.
//
// The root file system is built once and cached outside the repository,
// keyed by convRecipe, the suite and the package list; the application
// binary is copied into it on every run, so it is not part of the key.

// convRecipe names the build recipe below; change it whenever the recipe
// changes, so that cached root file systems are rebuilt.
const convRecipe = "conventional-v1"

// convPackages are installed besides debootstrap's minbase variant: udev,
// without which systemd-networkd never sees the NIC, and the kernel.
var convPackages = []string{"systemd-sysv", "udev", "linux-image-cloud-amd64"}

const (
	convHostname = "bench-conventional"
	convAppPath  = "/usr/local/bin/httpserver"
	convUnit     = "httpserver.service"
	// convCmdline boots the root file system read-write from the virtio
	// disk with the console on the serial port.
	convCmdline = "root=/dev/vda rw console=ttyS0"
)

// convEntry describes a cached root file system; it is stored beside it.
type convEntry struct {
	Key           string    `json:"key"`
	Recipe        string    `json:"recipe"`
	Suite         string    `json:"suite"`
	Packages      []string  `json:"packages"`
	KernelVersion string    `json:"kernel_version"`
	Built         time.Time `json:"built"`
	BuildSeconds  float64   `json:"build_seconds"`

	dir string
}

func (e *convEntry) rootfs() string { return filepath.Join(e.dir, "rootfs") }
func (e *convEntry) kernel() string {
	return filepath.Join(e.rootfs(), "boot", "vmlinuz-"+e.KernelVersion)
}
func (e *convEntry) initrd() string {
	return filepath.Join(e.rootfs(), "boot", "initrd.img-"+e.KernelVersion)
}

// convKey digests what the cached root file system depends on.
func convKey(recipe, suite string, packages []string) string {
	h := sha256.New()
	fmt.Fprintf(h, "recipe %s\nsuite %s\narch amd64\npackages %s\n", recipe, suite, strings.Join(packages, ","))
	return hex.EncodeToString(h.Sum(nil))[:24]
}

// benchCacheDir is $XDG_CACHE_HOME/nos-bench, else ~/.cache/nos-bench.
func benchCacheDir() (string, error) {
	if d := os.Getenv("XDG_CACHE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "nos-bench"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding a cache directory: %w", err)
	}
	return filepath.Join(home, ".cache", "nos-bench"), nil
}

// conventionalRootfs returns the cached root file system, building it
// first when there is none for the current key.
func conventionalRootfs(ctx context.Context) (*convEntry, bool, error) {
	mirror, err := hostMirror()
	if err != nil {
		return nil, false, err
	}
	base, err := benchCacheDir()
	if err != nil {
		return nil, false, err
	}
	base = filepath.Join(base, "conventional")
	key := convKey(convRecipe, mirror.Suite, convPackages)
	dir := filepath.Join(base, key)
	if e, err := loadConvEntry(dir); err == nil {
		progress("conventional VM: cached root file system %s (suite %s, kernel %s)", dir, e.Suite, e.KernelVersion)
		return e, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("cached root file system %s: %w (remove the directory to rebuild it)", dir, err)
	}
	e, err := buildConventional(ctx, base, key, mirror)
	return e, true, err
}

func loadConvEntry(dir string) (*convEntry, error) {
	b, err := os.ReadFile(filepath.Join(dir, "entry.json"))
	if err != nil {
		return nil, err
	}
	var e convEntry
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, err
	}
	e.dir = dir
	for _, p := range []string{e.kernel(), e.initrd()} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("incomplete entry: %w", err)
		}
	}
	return &e, nil
}

// buildConventional runs debootstrap into a temporary directory under base,
// configures the result and renames it into place as base/key. A failed
// build leaves nothing behind.
func buildConventional(ctx context.Context, base, key string, mirror aptSource) (_ *convEntry, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("building the conventional VM needs root (debootstrap, device nodes, file ownership): run the benchmark as root")
	}
	if err := ensureDebootstrap(ctx); err != nil {
		return nil, err
	}
	for _, tool := range []struct{ bin, pkg string }{{"mke2fs", "e2fsprogs"}, {"qemu-img", "qemu-utils"}} {
		if _, err := exec.LookPath(tool.bin); err != nil {
			return nil, fmt.Errorf("%s not found: install it with `apt-get install %s`", tool.bin, tool.pkg)
		}
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return nil, err
	}
	removeStaleBuilds(base)
	tmp, err := os.MkdirTemp(base, ".build-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if rerr := removeBuildDir(tmp); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
	}()
	rootfs := filepath.Join(tmp, "rootfs")
	logPath := filepath.Join(tmp, "debootstrap.log")
	args := []string{"--variant=minbase", "--include=" + strings.Join(convPackages, ","), mirror.Suite, rootfs, mirror.URI}
	progress("conventional VM: building the root file system (debootstrap %s, the host's mirror from %s; about 1-3 minutes), log %s",
		strings.Join(args[:3], " "), mirror.Origin, logPath)
	start := time.Now()
	if err := runLogged(ctx, logPath, "debootstrap", args...); err != nil {
		return nil, err
	}
	took := time.Since(start)
	version, err := installedKernel(rootfs)
	if err != nil {
		return nil, err
	}
	if err := configureConventional(rootfs); err != nil {
		return nil, fmt.Errorf("configuring the conventional root file system: %w", err)
	}
	e := &convEntry{Key: key, Recipe: convRecipe, Suite: mirror.Suite, Packages: convPackages, KernelVersion: version,
		Built: time.Now().UTC(), BuildSeconds: took.Seconds()}
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(tmp, "entry.json"), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	if err := checkNoMounts(tmp); err != nil {
		return nil, err
	}
	dir := filepath.Join(base, key)
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("putting the root file system into the cache: %w", err)
	}
	e.dir = dir
	progress("conventional VM: built in %v, cached in %s", took.Round(time.Second), dir)
	return e, nil
}

// ensureDebootstrap installs debootstrap when it is missing.
func ensureDebootstrap(ctx context.Context) error {
	if _, err := exec.LookPath("debootstrap"); err == nil {
		return nil
	}
	progress("conventional VM: installing debootstrap (apt-get install -y debootstrap)")
	cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "debootstrap")
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("installing debootstrap: %w\n%s", err, tailLines(string(out), 10))
	}
	return nil
}

// runLogged runs a command with its output in logPath, killing its whole
// process group when ctx ends (debootstrap runs chroots and dpkg).
func runLogged(ctx context.Context, logPath, name string, args ...string) error {
	log, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(logPath)
		return fmt.Errorf("%s: %w\n%s", name, err, tailLines(string(b), 15))
	}
	return nil
}

// installedKernel returns the version of the one kernel in rootfs/boot.
func installedKernel(rootfs string) (string, error) {
	matches, err := filepath.Glob(filepath.Join(rootfs, "boot", "vmlinuz-*"))
	if err != nil {
		return "", err
	}
	if len(matches) != 1 {
		return "", fmt.Errorf("the root file system has %d kernels in /boot, want exactly 1", len(matches))
	}
	v := strings.TrimPrefix(filepath.Base(matches[0]), "vmlinuz-")
	if _, err := os.Stat(filepath.Join(rootfs, "boot", "initrd.img-"+v)); err != nil {
		return "", fmt.Errorf("the root file system has no initrd for kernel %s: %w", v, err)
	}
	return v, nil
}

// configureConventional sets up the root file system as a small server VM
// is: hostname, fstab, DHCP by systemd-networkd, the application as a
// service started at boot, and no downloaded packages left in apt's cache.
func configureConventional(rootfs string) error {
	sys := filepath.Join(rootfs, "etc", "systemd", "system")
	files := []struct {
		path, content string
	}{
		{"etc/hostname", convHostname + "\n"},
		{"etc/hosts", "127.0.0.1\tlocalhost\n127.0.1.1\t" + convHostname + "\n"},
		{"etc/fstab", "/dev/vda\t/\text4\terrors=remount-ro\t0\t1\n"},
		// QEMU's user network's DNS proxy, instead of the host's resolver.
		{"etc/resolv.conf", "nameserver " + vmm.UserNetDNS + "\n"},
		{"etc/systemd/network/50-dhcp.network", "[Match]\nName=en*\n\n[Network]\nDHCP=yes\n"},
		{"etc/systemd/system/" + convUnit, "[Unit]\nDescription=Benchmark HTTP server (" + appPkg + ")\nAfter=network.target\n\n" +
			"[Service]\nExecStart=" + convAppPath + "\nRestart=on-failure\n\n[Install]\nWantedBy=multi-user.target\n"},
	}
	for _, f := range files {
		p := filepath.Join(rootfs, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		_ = os.Remove(p) // resolv.conf may be a link
		if err := os.WriteFile(p, []byte(f.content), 0o644); err != nil {
			return err
		}
	}
	// What `systemctl enable` would do, without running systemd in a chroot.
	links := []struct{ dir, name, target string }{
		{"multi-user.target.wants", "systemd-networkd.service", "/lib/systemd/system/systemd-networkd.service"},
		{"sockets.target.wants", "systemd-networkd.socket", "/lib/systemd/system/systemd-networkd.socket"},
		{"network-online.target.wants", "systemd-networkd-wait-online.service", "/lib/systemd/system/systemd-networkd-wait-online.service"},
		{".", "dbus-org.freedesktop.network1.service", "/lib/systemd/system/systemd-networkd.service"},
		{"multi-user.target.wants", convUnit, "/etc/systemd/system/" + convUnit},
	}
	for _, l := range links {
		if _, err := os.Stat(filepath.Join(rootfs, l.target)); err != nil {
			return fmt.Errorf("enabling %s: %w", l.name, err)
		}
		d := filepath.Join(sys, l.dir)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		p := filepath.Join(d, l.name)
		_ = os.Remove(p)
		if err := os.Symlink(l.target, p); err != nil {
			return err
		}
	}
	// apt-get clean: the downloaded packages are not part of the system.
	debs, _ := filepath.Glob(filepath.Join(rootfs, "var", "cache", "apt", "archives", "*.deb"))
	for _, d := range debs {
		if err := os.Remove(d); err != nil {
			return err
		}
	}
	return nil
}

// installApp copies the application binary into the cached root file
// system, replacing the previous run's.
func installApp(rootfs, app string) error {
	dst := filepath.Join(rootfs, convAppPath)
	tmp := dst + ".new"
	if err := copyFile(app, tmp, 0o755); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// convDisk is the conventional VM's disk, made for this run.
type convDisk struct {
	Raw, QCOW2 string
	// RawBytes is the raw image's size, RawUsed the blocks it occupies
	// (as du counts them), QCOW2Bytes the qcow2 file's size and FilesBytes
	// the total size of the regular files in the root file system.
	RawBytes, RawUsed, QCOW2Bytes, FilesBytes int64
}

// makeDisk writes the root file system into a new ext4 image (mke2fs -d,
// no loop mount needed) and converts it to qcow2.
func makeDisk(ctx context.Context, rootfs, dir string) (convDisk, error) {
	var d convDisk
	files, err := treeBytes(rootfs)
	if err != nil {
		return d, err
	}
	d.FilesBytes = files
	// Room to spare, as a real disk has: at least 1 GiB, twice the files.
	size := max(int64(1)<<30, 2*files)
	size = (size + (1<<20 - 1)) &^ (1<<20 - 1)
	d.Raw, d.QCOW2 = filepath.Join(dir, "conventional.raw"), filepath.Join(dir, "conventional.qcow2")
	if _, err := output(ctx, "", nil, "mke2fs", "-q", "-F", "-t", "ext4", "-L", "root", "-d", rootfs, d.Raw, strconv.FormatInt(size>>20, 10)+"M"); err != nil {
		return d, err
	}
	if _, err := output(ctx, "", nil, "qemu-img", "convert", "-O", "qcow2", d.Raw, d.QCOW2); err != nil {
		return d, err
	}
	var st syscall.Stat_t
	if err := syscall.Stat(d.Raw, &st); err != nil {
		return d, err
	}
	d.RawBytes, d.RawUsed = st.Size, st.Blocks*512
	if d.QCOW2Bytes, err = fileSize(d.QCOW2); err != nil {
		return d, err
	}
	return d, nil
}

// treeBytes sums the sizes of the regular files under dir.
func treeBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if de.Type().IsRegular() {
			fi, err := de.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	return n, err
}

// convArgs is the conventional VM's QEMU argv: a q35 PC, direct kernel
// boot of the distribution kernel and initrd from the disk's /boot, the
// disk on virtio-blk, virtio-net (PCI) on QEMU's user network with the
// application's port forwarded, and the serial console on stdout.
func convArgs(accel string, memMiB int, kernel, initrd, disk string, port int) []string {
	cpu := "max"
	if accel == vmm.AccelKVM {
		cpu = "host"
	}
	return []string{
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-M", "q35", "-accel", accel, "-cpu", cpu, "-smp", "1", "-m", strconv.Itoa(memMiB) + "M",
		"-kernel", kernel, "-initrd", initrd, "-append", convCmdline,
		"-drive", "file=" + escapeOpt(disk) + ",if=virtio,format=qcow2",
		"-netdev", fmt.Sprintf("user,id=n0,hostfwd=tcp:127.0.0.1:%d-:%d", port, appPort),
		"-device", "virtio-net-pci,netdev=n0",
		"-chardev", "file,id=console,path=/dev/stdout",
		"-serial", "chardev:console",
	}
}

func escapeOpt(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// bootConventional boots the conventional VM once from a fresh copy-on-
// write overlay of its disk (every boot starts from the same disk) and
// waits for the first HTTP 200, at most timeout. The time runs from just
// before QEMU's exec. A boot that does not serve in time is a failed boot,
// not an error.
func (c *compare) bootConventional(ctx context.Context, memMiB int, timeout time.Duration) (bootOutcome, error) {
	c.overlays++
	overlay := filepath.Join(c.h.tmp, fmt.Sprintf("conventional-run%d.qcow2", c.overlays))
	if _, err := output(ctx, "", nil, "qemu-img", "create", "-q", "-f", "qcow2", "-b", c.disk.QCOW2, "-F", "qcow2", overlay); err != nil {
		return bootOutcome{}, err
	}
	defer os.Remove(overlay)
	port, err := freePort()
	if err != nil {
		return bootOutcome{}, err
	}
	v, err := c.procs.start(convArgs(c.h.accel, memMiB, c.conv.kernel(), c.conv.initrd(), overlay, port), "")
	if err != nil {
		return bootOutcome{}, err
	}
	defer v.kill()
	ended := make(chan struct{})
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-v.done:
		case <-v.serial.panic:
		case <-stop:
			return
		}
		close(ended)
	}()
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	up, err := pollHTTP(pctx, fmt.Sprintf("http://127.0.0.1:%d/", port), ended)
	if err == nil {
		return bootOutcome{OK: true, Took: up.Sub(v.start)}, nil
	}
	if ctx.Err() != nil {
		return bootOutcome{}, ctx.Err()
	}
	return failedBoot(v, timeout), nil
}

// failedBoot says why a directly started VM did not get ready.
func failedBoot(v *directVM, timeout time.Duration) bootOutcome {
	why := fmt.Sprintf("not ready within %v", timeout.Round(time.Second))
	switch {
	case closed(v.serial.panic):
		why = "kernel panic: " + lastLineWith(v.serial.String(), panicText)
	case v.exited():
		why = "QEMU exited"
		if v.waitErr != nil {
			why += " (" + v.waitErr.Error() + ")"
		}
	}
	return bootOutcome{Note: why, Detail: v.describe()}
}

// lastLineWith returns the last line of s containing sub.
func lastLineWith(s, sub string) string {
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var last string
	for sc.Scan() {
		if strings.Contains(sc.Text(), sub) {
			last = strings.TrimSpace(sc.Text())
		}
	}
	return last
}

// removeStaleBuilds removes build directories of interrupted runs that
// are more than a day old (a younger one may be another run's).
func removeStaleBuilds(base string) {
	ents, _ := os.ReadDir(base)
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), ".build-") {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > 24*time.Hour {
			if err := removeBuildDir(filepath.Join(base, e.Name())); err != nil {
				progress("conventional VM: leaving %s: %v", e.Name(), err)
			}
		}
	}
}

// removeBuildDir removes a build directory, but never while anything is
// mounted below it (debootstrap mounts /proc and /sys in the target, and
// in some containers binds the host's /dev): it unmounts those first and
// refuses if that fails.
func removeBuildDir(dir string) error {
	mounts, err := mountsUnder(dir)
	if err != nil {
		return fmt.Errorf("not removing %s: %w", dir, err)
	}
	for _, m := range mounts { // deepest first
		_ = syscall.Unmount(m, syscall.MNT_DETACH)
	}
	if err := checkNoMounts(dir); err != nil {
		return fmt.Errorf("not removing %s: %w", dir, err)
	}
	return os.RemoveAll(dir)
}

func checkNoMounts(dir string) error {
	mounts, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	if len(mounts) > 0 {
		return fmt.Errorf("file systems still mounted under it: %s", strings.Join(mounts, ", "))
	}
	return nil
}

// mountsUnder lists the mount points at or below dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	return parseMountsUnder(string(b), dir), nil
}

func parseMountsUnder(mountinfo, dir string) []string {
	dir = filepath.Clean(dir)
	var out []string
	for _, line := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMountinfo(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of
// /proc/self/mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
