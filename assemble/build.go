package assemble

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/klauspost/compress/gzip"

	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/initramfs"
	"github.com/nosproject/nos/internal/fsutil"
	"github.com/nosproject/nos/kernel"
	"github.com/nosproject/nos/kernel/config"
	"github.com/nosproject/nos/store"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Options say what to build and how the image should run by default.
type Options struct {
	// Source is a Go main package (a directory, ./cmd/x or an import path,
	// resolved in Dir) or the path of a static Linux amd64 executable.
	Source string
	// Dir is where Go package paths are resolved; "" is the current directory.
	Dir string
	// Name and Tag name the image; Name defaults to the program's name.
	Name, Tag string

	Args      []string
	Env       []string // KEY=VALUE
	Ports     []string // exposed, "80" or "80/tcp"
	MemoryMiB int
	CPUs      int
	WorkDir   string

	// Kernel finds the kernel to boot.
	Kernel kernel.Finder
	// Needs lists the kernel features the application needs (see
	// kernel/config), nil for the default. Without "net" the image gets no
	// network even on a kernel that has one.
	Needs []string
	// KernelFor, when set, replaces Kernel: it finds a kernel with the
	// features the image needs (Needs, or the default for its kind: net,
	// and blk for a root disk).
	KernelFor func(needs []string) kernel.Finder
	// KernelArgs are appended to the kernel command line.
	KernelArgs []string

	// Rootfs is a directory holding the application's root filesystem,
	// and FromOCI a container image reference (see package oci); with
	// either, Source is empty and the files go on a root disk.
	Rootfs, FromOCI string
	// Adds are HOST_PATH[:GUEST_PATH] files or directories to add.
	Adds []string
	// Entrypoint replaces the program's path (or the container image's
	// entrypoint) as the command.
	Entrypoint []string
	// User is who the application runs as: USER[:GROUP], by name (looked
	// up in the image's /etc/passwd) or number.
	User string
	// Caps are the capabilities the application keeps (none by default).
	Caps []string
	// Init is the path of the nos-init binary (see FindInit).
	Init string
	// Created is recorded in the store's index, not in the image, so that
	// it does not change the digest; zero means now.
	Created time.Time
	Log     *slog.Logger
}

// Result describes a stored image.
type Result struct {
	Name, Tag string
	Digest    string
	Size      int64
	Kernel    *kernel.Kernel
}

// Modules nos loads on a modular kernel: the virtio transport and the
// devices nos machines have. What they depend on comes along.
var wantedModules = []string{"virtio_mmio", "virtio_console", "virtio_net", "virtio_rng"}

// rootDiskModules are what a modular kernel needs to mount a root disk.
var rootDiskModules = []string{"virtio_blk", "erofs"}

// DefaultCmdline is the kernel command line of nos images: the console on
// the serial port (kept in a log, not shown to the user), quiet (warnings,
// errors and panics only: every byte through the emulated UART costs boot
// time; --kernel-arg loglevel=7 brings the messages back), reboot on panic
// (QEMU runs with -no-reboot, so a panic ends the VM and is reported), no
// legacy BSD ptys (pty.legacy_count=0: creating the default 256 pairs was
// the slowest step of the kernel's boot, 157 ms of initcalls under TCG;
// Unix98 ptys remain), and no waiting for a root device: the initramfs is
// the root.
const DefaultCmdline = "console=ttyS0 quiet panic=-1 random.trust_cpu=on pty.legacy_count=0"

// Image compiles and packages the application and stores the image.
func Image(ctx context.Context, st *store.Store, o Options) (*Result, error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.Init == "" {
		return nil, fmt.Errorf("no nos-init given: %w", ErrInitMissing)
	}
	if err := checkStaticELF(o.Init); err != nil {
		return nil, fmt.Errorf("nos-init at %s is unusable: %w", o.Init, err)
	}
	cfg, err := configFromOptions(o)
	if err != nil {
		return nil, err
	}

	tmp, err := os.MkdirTemp("", "nos-build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	src, err := classify(o)
	if err != nil {
		return nil, err
	}
	needs := o.Needs
	if needs == nil {
		needs = []string{"net"}
	}
	if src.tree() {
		if o.Needs == nil {
			needs = []string{"blk", "net"}
		} else if !slices.Contains(needs, "blk") {
			return nil, fmt.Errorf("--features %s: this image's files go on a root disk, which needs the blk feature: add it: %w", config.Describe(needs), ErrBadSource)
		}
	}
	finder := o.Kernel
	if o.KernelFor != nil {
		finder = o.KernelFor(needs)
	}
	if finder == nil {
		return nil, fmt.Errorf("no kernel given: %w", ErrBadSource)
	}

	var app, name, rootDisk string
	goApp := false
	if src.tree() {
		var st *stage
		if st, err = newStage(filepath.Join(tmp, "root")); err != nil {
			return nil, err
		}
		defer st.close()
		if name, err = fillTree(ctx, st, src, o, &cfg, tmp); err != nil {
			return nil, err
		}
		rootDisk = filepath.Join(tmp, "rootfs.erofs")
		log.Debug("making the root disk", "tree", st.dir)
		if err := mkfsErofs(ctx, st.dir, rootDisk, st.root); err != nil {
			return nil, err
		}
		cfg.RootFS = "erofs"
	} else {
		o.Source = src.path
		if app, name, err = program(ctx, o, tmp, log); err != nil {
			return nil, err
		}
		if o.User != "" {
			u, err := resolveUser(o.User, []byte(etcFiles["passwd"]), []byte(etcFiles["group"]))
			if err != nil {
				return nil, err
			}
			cfg.User = u
		}
		// Go programs read time zones from one zip file (ZONEINFO),
		// which takes far less guest memory than hundreds of small files.
		goApp = isGoBinary(app)
		if goApp && !hasEnv(cfg.Env, "ZONEINFO") {
			cfg.Env = append([]string{"ZONEINFO=" + zoneinfoZip}, cfg.Env...)
		}
		if len(cfg.Entrypoint) == 0 {
			cfg.Entrypoint = []string{"/app/" + name}
		}
	}
	if o.Name == "" {
		o.Name = name
	}
	if o.Tag == "" {
		o.Tag = image.DefaultTag
	}
	if _, _, err := store.ParseReference(o.Name + ":" + o.Tag); err != nil {
		return nil, fmt.Errorf("%w (name the image with -t)", err)
	}

	k, err := finder.Find(ctx)
	if err != nil {
		return nil, err
	}
	log.Debug("kernel", "version", k.Version, "path", k.Path, "origin", k.Origin)
	var mods []kernel.Module
	if k.ModulesDir != "" {
		want := wantedModules
		if rootDisk != "" {
			want = append(slices.Clone(want), rootDiskModules...)
		}
		if mods, err = kernel.Modules(k.ModulesDir, want); err != nil {
			return nil, fmt.Errorf("kernel %s: %w", k.Version, err)
		}
	} else if rootDisk != "" && k.Features != nil && !slices.Contains(k.Features, "blk") {
		return nil, fmt.Errorf("kernel %s has no block devices (features %s): this image needs one built with `nos kernel build --features net,blk`: %w", k.Version, config.Describe(k.Features), ErrBadSource)
	}

	cfg.Kernel = image.KernelInfo{Version: k.Version, Origin: k.Origin, Features: k.Features, NoNetwork: !k.HasNetwork()}
	cfg.Needs = o.Needs
	if cfg.Kernel.NoNetwork && len(cfg.ExposedPorts) > 0 {
		return nil, fmt.Errorf("--port %s: kernel %s has no networking; build one with `nos kernel build --features net`: %w", cfg.ExposedPorts[0], k.Version, ErrBadSource)
	}
	if needs != nil && !slices.Contains(needs, "net") {
		if len(cfg.ExposedPorts) > 0 {
			return nil, fmt.Errorf("--port %s: the image declares it needs no networking (--features %s); add net: %w", cfg.ExposedPorts[0], config.Describe(needs), ErrBadSource)
		}
		cfg.Kernel.NoNetwork = true
	}
	for _, m := range mods {
		cfg.Modules = append(cfg.Modules, m.Name)
	}

	initrd := filepath.Join(tmp, "initramfs")
	appPath := ""
	if app != "" {
		appPath = "/app/" + name
	}
	if err := writeInitramfs(initrd, o.Init, app, appPath, mods, goApp, o.Adds); err != nil {
		return nil, err
	}
	log.Debug("initramfs written", "path", initrd)
	return commit(ctx, st, o, cfg, k, initrd, rootDisk)
}

// program returns the host path of the executable to package and its name.
func program(ctx context.Context, o Options, tmp string, log *slog.Logger) (path, name string, err error) {
	if o.Source == "" {
		return "", "", fmt.Errorf("nothing to build: give a Go main package or an executable: %w", ErrBadSource)
	}
	if fi, err := os.Stat(o.Source); err == nil && fi.Mode().IsRegular() {
		if err := checkStaticELF(o.Source); err != nil {
			return "", "", err
		}
		return o.Source, defaultName(o.Source), nil
	}
	p, err := listPackage(ctx, o.Dir, o.Source)
	if err != nil {
		return "", "", err
	}
	name = defaultName(p.ImportPath)
	out := filepath.Join(tmp, "app")
	start := time.Now()
	if err := goBuild(ctx, o.Dir, p, out); err != nil {
		return "", "", err
	}
	log.Debug("go build", "package", p.ImportPath, "took", time.Since(start))
	return out, name, nil
}

func configFromOptions(o Options) (image.Config, error) {
	cfg := image.Config{
		Args:          o.Args,
		Env:           o.Env,
		WorkingDir:    o.WorkDir,
		MemoryMiB:     o.MemoryMiB,
		CPUs:          o.CPUs,
		KernelCmdline: DefaultCmdline,
	}
	if cfg.MemoryMiB == 0 {
		cfg.MemoryMiB = image.DefaultMemoryMiB
	}
	if cfg.CPUs == 0 {
		cfg.CPUs = image.DefaultCPUs
	}
	cfg.Entrypoint = o.Entrypoint
	for _, c := range o.Caps {
		norm, err := image.ParseCap(c)
		if err != nil {
			return cfg, fmt.Errorf("--cap-add %s: %w: %w", c, err, ErrBadSource)
		}
		if !slices.Contains(cfg.Caps, norm) {
			cfg.Caps = append(cfg.Caps, norm)
		}
	}
	for _, a := range o.KernelArgs {
		if a == "" || strings.ContainsFunc(a, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '"' }) {
			return cfg, fmt.Errorf("--kernel-arg %q: want one argument without spaces or quotes, e.g. loglevel=7: %w", a, ErrBadSource)
		}
		if k, _, _ := strings.Cut(a, "="); k == "init" || k == "rdinit" {
			return cfg, fmt.Errorf("--kernel-arg %q: nos-init must be the first process; give the program as SOURCE instead: %w", a, ErrBadSource)
		}
		cfg.KernelCmdline += " " + a
	}
	for _, kv := range o.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return cfg, fmt.Errorf("--env %q: want KEY=VALUE: %w", kv, ErrBadSource)
		}
	}
	for _, p := range o.Ports {
		norm, err := image.ParsePort(p)
		if err != nil {
			return cfg, err
		}
		cfg.ExposedPorts = append(cfg.ExposedPorts, norm)
	}
	return cfg, nil
}

// writeInitramfs assembles the guest's root: the init, the application,
// the kernel modules and the host files programs expect.
// A tree image's initramfs (app "") holds only the init and the modules:
// the application's files are on the root disk.
func writeInitramfs(out, initPath, app, appPath string, mods []kernel.Module, goApp bool, adds []string) error {
	var a initramfs.Archive
	add := func(err error) error {
		if err != nil {
			return fmt.Errorf("assembling initramfs: %w", err)
		}
		return nil
	}
	if err := add(a.AddHostFile(image.InitPath, initPath, 0o755)); err != nil {
		return err
	}
	if app != "" {
		if err := add(a.AddHostFile(appPath, app, 0o755)); err != nil {
			return err
		}
	}
	for _, d := range []string{"/proc", "/sys", "/dev", "/tmp", "/run", "/root", "/etc"} {
		if err := add(a.AddDir(d, fs.ModeDir|0o755)); err != nil {
			return err
		}
	}
	for name, content := range etcFiles {
		if err := add(a.AddFile("/etc/"+name, 0o644, []byte(content))); err != nil {
			return err
		}
	}
	if app != "" {
		if err := addHostExtras(&a, goApp); err != nil {
			return err
		}
		for _, spec := range adds {
			if err := addToArchive(&a, spec); err != nil {
				return err
			}
		}
	}
	var order bytes.Buffer
	for _, m := range mods {
		if err := add(addModule(&a, m)); err != nil {
			return err
		}
		fmt.Fprintln(&order, m.RelPath)
	}
	if len(mods) > 0 {
		if err := add(a.AddFile(image.ModuleOrderPath, 0o644, order.Bytes())); err != nil {
			return err
		}
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if _, err := a.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("writing initramfs: %w", err)
	}
	return f.Close()
}

// addModule stores a module uncompressed, so the init can finit_module it
// without decompressors.
func addModule(a *initramfs.Archive, m kernel.Module) error {
	b, err := kernel.OpenModule(m.Path)
	if err != nil {
		return err
	}
	return a.AddFile(filepath.Join(image.ModuleDir, m.RelPath), 0o644, b)
}

// etcFiles are the few files programs look for in /etc.
var etcFiles = map[string]string{
	"passwd":        "root:x:0:0:root:/root:/nonexistent\nnobody:x:65534:65534:nobody:/nonexistent:/nonexistent\n",
	"group":         "root:x:0:\nnogroup:x:65534:\n",
	"nsswitch.conf": "hosts: files dns\n",
}

// Host files that make TLS and time zones work in the guest, when the host
// has them.
const (
	hostCABundle = "/etc/ssl/certs/ca-certificates.crt"
	hostZoneinfo = "/usr/share/zoneinfo"
	// zoneinfoZip is where Go programs find the time zones.
	zoneinfoZip = "/usr/share/zoneinfo.zip"
)

// zoneinfoSkip are the parts of the host's zoneinfo left out: right/ holds
// the zones again with leap seconds, which programs do not use unless
// told to.
var zoneinfoSkip = []string{"right"}

func addHostExtras(a *initramfs.Archive, goApp bool) error {
	if _, err := os.Stat(hostCABundle); err == nil {
		if err := a.AddHostFile(hostCABundle, hostCABundle, 0o644); err != nil {
			return fmt.Errorf("adding CA certificates: %w", err)
		}
	}
	fi, err := os.Stat(hostZoneinfo)
	if err != nil || !fi.IsDir() {
		return nil
	}
	if goApp {
		b, err := zipZoneinfo(hostZoneinfo)
		if err != nil {
			return fmt.Errorf("adding zoneinfo: %w", err)
		}
		return a.AddFile(zoneinfoZip, 0o644, b)
	}
	if err := a.AddHostTree(hostZoneinfo, hostZoneinfo, zoneinfoSkip...); err != nil {
		return fmt.Errorf("adding zoneinfo: %w", err)
	}
	return nil
}

// zipZoneinfo packs the time zone files under dir into an uncompressed zip
// as Go's time package reads it (ZONEINFO): one entry per zone name,
// aliases (symlinks) included, in a fixed order and with no times, so the
// same host files give the same bytes.
func zipZoneinfo(dir string) ([]byte, error) {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if d.IsDir() && slices.Contains(zoneinfoSkip, rel) {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			names = append(names, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(dir, name)) // follows aliases
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.EISDIR) {
				continue // a dangling or directory alias
			}
			return nil, err
		}
		if !bytes.HasPrefix(b, []byte("TZif")) {
			continue // tables such as zone.tab: not zones
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(b); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// isGoBinary reports whether the executable at path was built by Go.
func isGoBinary(path string) bool {
	_, err := buildinfo.ReadFile(path)
	return err == nil
}

func hasEnv(env []string, key string) bool {
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			return true
		}
	}
	return false
}

// commit writes the blobs and the tag under the store's lock, so a
// concurrent garbage collection cannot remove blobs before they are tagged.
func commit(ctx context.Context, st *store.Store, o Options, cfg image.Config, k *kernel.Kernel, initrd, rootDisk string) (*Result, error) {
	unlock, err := st.Lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()

	kdesc, kdigest, err := writeKernelBlob(ctx, st, k, filepath.Dir(initrd))
	if err != nil {
		return nil, fmt.Errorf("storing kernel: %w", err)
	}
	idesc, err := writeFileBlob(ctx, st, initrd, image.MediaTypeInitramfs)
	if err != nil {
		return nil, fmt.Errorf("storing initramfs: %w", err)
	}
	layers := []ocispec.Descriptor{kdesc, idesc}
	if rootDisk != "" {
		rdesc, err := writeFileBlob(ctx, st, rootDisk, image.MediaTypeRootErofs)
		if err != nil {
			return nil, fmt.Errorf("storing the root disk: %w", err)
		}
		layers = append(layers, rdesc)
	}
	cfg.Kernel.Digest = kdigest
	cb, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cdesc, err := st.WriteBlobBytes(ctx, cb, image.MediaTypeConfig)
	if err != nil {
		return nil, fmt.Errorf("storing config: %w", err)
	}
	man := ocispec.Manifest{
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: image.ArtifactType,
		Config:       cdesc,
		Layers:       layers,
	}
	man.SchemaVersion = 2
	mb, err := json.Marshal(man)
	if err != nil {
		return nil, err
	}
	mdesc, err := st.WriteBlobBytes(ctx, mb, ocispec.MediaTypeImageManifest)
	if err != nil {
		return nil, fmt.Errorf("storing manifest: %w", err)
	}
	mdesc.ArtifactType = image.ArtifactType
	created := o.Created
	if created.IsZero() {
		created = time.Now()
	}
	if err := st.TagLocked(o.Name, o.Tag, mdesc, created); err != nil {
		return nil, err
	}
	return &Result{
		Name: o.Name, Tag: o.Tag,
		Digest: mdesc.Digest.String(),
		Size:   mdesc.Size + cdesc.Size + layersSize(layers),
		Kernel: k,
	}, nil
}

// writeKernelBlob stores the kernel the image boots: the ELF vmlinux when
// there is one, since booting it through its PVH entry point skips the
// decompression and real-mode setup of a bzImage (BENCHMARKS.md, "Fast boot
// path"), gzip-compressed because most of an ELF vmlinux is alignment
// padding; else the boot image as it is. It returns the layer and the
// digest of the kernel itself, uncompressed.
func writeKernelBlob(ctx context.Context, st *store.Store, k *kernel.Kernel, tmp string) (ocispec.Descriptor, string, error) {
	path := k.Vmlinux
	if path == "" && fsutil.IsELF(k.Path) {
		path = k.Path
	}
	if path == "" {
		d, err := writeFileBlob(ctx, st, k.Path, image.MediaTypeKernel)
		return d, d.Digest.String(), err
	}
	src, err := os.Open(path)
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	defer src.Close()
	gz := filepath.Join(tmp, "kernel.gz")
	out, err := os.Create(gz)
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	defer out.Close()
	h := sha256.New()
	// No name and no time in the gzip header: the same kernel always
	// gives the same blob.
	zw, err := gzip.NewWriterLevel(out, gzip.DefaultCompression)
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	if _, err := io.Copy(zw, io.TeeReader(src, h)); err != nil {
		return ocispec.Descriptor{}, "", fmt.Errorf("compressing %s: %w", path, err)
	}
	if err := zw.Close(); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	if err := out.Close(); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	d, err := writeFileBlob(ctx, st, gz, image.MediaTypeKernelGzip)
	return d, "sha256:" + hex.EncodeToString(h.Sum(nil)), err
}

func layersSize(ls []ocispec.Descriptor) int64 {
	var n int64
	for _, l := range ls {
		n += l.Size
	}
	return n
}

func writeFileBlob(ctx context.Context, st *store.Store, path, mediaType string) (ocispec.Descriptor, error) {
	f, err := os.Open(path)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer f.Close()
	return st.WriteBlob(ctx, f, mediaType)
}

// FindInit locates the nos-init binary: $NOS_INIT, then next to the
// running nos executable, then on PATH.
func FindInit() (string, error) {
	var tried []string
	if p := os.Getenv("NOS_INIT"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("NOS_INIT=%s: %w", p, err)
		}
		return p, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "nos-init")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		tried = append(tried, p)
	}
	if p, err := lookPathInit(); err == nil {
		return p, nil
	}
	tried = append(tried, "$PATH")
	return "", fmt.Errorf("looked in %s; install it next to nos with `go install github.com/nosproject/nos/cmd/nos-init@latest` (or `make install`), or set NOS_INIT: %w", strings.Join(tried, ", "), ErrInitMissing)
}

func lookPathInit() (string, error) {
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		p := filepath.Join(dir, "nos-init")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", errors.New("not on PATH")
}
