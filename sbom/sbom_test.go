package sbom

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/google/go-cmp/cmp"
	spdxjson "github.com/spdx/tools-golang/json"

	"github.com/nosproject/nos/bootable"
	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/initramfs"
	"github.com/nosproject/nos/store"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// fakeInventory is a small image: nos-init and an application in the
// initramfs, two libraries from Debian and one the build host's dpkg did
// not know, an added file and a kernel nos built.
func fakeInventory() *Inventory {
	return &Inventory{
		Name: "web", Tag: "latest", Digest: "sha256:" + strings.Repeat("ab", 32),
		Config: image.Config{
			Entrypoint: []string{"/usr/sbin/web", "-v"},
			RootFS:     "erofs",
			Provenance: image.ProvenanceV1,
			Kernel:     image.KernelInfo{Version: "6.1.192-nos", Origin: "built", Digest: "sha256:" + strings.Repeat("cd", 32), Features: []string{"blk", "net"}, ConfigHash: strings.Repeat("ef", 32)},
			Packages: []image.PackageRef{
				{Path: "/usr/lib/x86_64-linux-gnu/libc.so.6", Package: "libc6", Version: "2.36-9+deb12u13", Arch: "amd64"},
				{Path: "/usr/lib/x86_64-linux-gnu/libpcre2-8.so.0.11.2", Package: "libpcre2-8-0", Version: "10.42-1", Arch: "amd64"},
				{Path: "/usr/local/lib/libown.so.1"},
			},
			Added: []string{"/etc/web"},
		},
		Programs: []Program{
			{Path: "/init", Location: LocationInitramfs, Role: RoleInit, GoVersion: "go1.26.8", SHA256: strings.Repeat("01", 32),
				Main: Module{Path: "github.com/nosproject/nos", Version: "(devel)"},
				Deps: []Module{{Path: "github.com/vishvananda/netlink", Version: "v1.3.1", Sum: "h1:x"}, {Path: "golang.org/x/sys", Version: "v0.50.0", Sum: "h1:y"}}},
			{Path: "/usr/sbin/web", Location: LocationRootDisk, Role: RoleApp, GoVersion: "go1.26.8", SHA256: strings.Repeat("02", 32),
				Main: Module{Path: "example.com/web", Version: "v1.0.0"},
				Deps: []Module{{Path: "golang.org/x/sys", Version: "v0.50.0", Sum: "h1:y"}}},
		},
		Files: map[string]File{
			"/usr/lib/x86_64-linux-gnu/libc.so.6":            {Path: "/usr/lib/x86_64-linux-gnu/libc.so.6", SHA1: strings.Repeat("11", 20), SHA256: strings.Repeat("12", 32)},
			"/usr/lib/x86_64-linux-gnu/libpcre2-8.so.0.11.2": {Path: "/usr/lib/x86_64-linux-gnu/libpcre2-8.so.0.11.2", SHA1: strings.Repeat("21", 20), SHA256: strings.Repeat("22", 32)},
			"/usr/local/lib/libown.so.1":                     {Path: "/usr/local/lib/libown.so.1", SHA1: strings.Repeat("31", 20), SHA256: strings.Repeat("32", 32)},
			"/etc/web/web.conf":                              {Path: "/etc/web/web.conf", SHA1: strings.Repeat("41", 20), SHA256: strings.Repeat("42", 32)},
		},
		Added: []File{{Path: "/etc/web/web.conf", SHA1: strings.Repeat("41", 20), SHA256: strings.Repeat("42", 32)}},
	}
}

// TestGolden writes the fake image's SBOM in each format and compares it
// with testdata: the documents are reproducible, times and identifiers
// included.
func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		format Format
		file   string
	}{
		{SPDXJSON, "web.spdx.json"},
		{CycloneDXJSON, "web.cdx.json"},
	} {
		t.Run(string(tc.format), func(t *testing.T) {
			o := Options{Format: tc.format, Tool: "nos-test", Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
			var b bytes.Buffer
			if err := Write(&b, fakeInventory(), o); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tc.file)
			if *update {
				if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (go test ./sbom -update writes it)", err)
			}
			if diff := cmp.Diff(string(want), b.String()); diff != "" {
				t.Errorf("%s (-want +got):\n%s", golden, diff)
			}
			var again bytes.Buffer
			if err := Write(&again, fakeInventory(), o); err != nil || !bytes.Equal(again.Bytes(), b.Bytes()) {
				t.Errorf("a second document differs (err %v)", err)
			}
		})
	}
}

// TestParsesBack reads each document back with its format's library.
func TestParsesBack(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, fakeInventory(), Options{}); err != nil {
		t.Fatal(err)
	}
	doc, err := spdxjson.Read(&b)
	if err != nil {
		t.Fatalf("spdx: %v", err)
	}
	var purls []string
	for _, p := range doc.Packages {
		for _, r := range p.PackageExternalReferences {
			purls = append(purls, r.Locator)
		}
	}
	for _, want := range []string{
		"pkg:golang/golang.org/x/sys@v0.50.0",
		"pkg:golang/github.com/vishvananda/netlink@v1.3.1",
		"pkg:golang/github.com/nosproject/nos",
		"pkg:golang/stdlib@go1.26.8",
		"pkg:golang/example.com/web@v1.0.0",
		"pkg:deb/debian/libc6@2.36-9%2Bdeb12u13?arch=amd64",
		"pkg:deb/debian/libpcre2-8-0@10.42-1?arch=amd64",
	} {
		if !slices.Contains(purls, want) {
			t.Errorf("no purl %s in %q", want, purls)
		}
	}
	if doc.CreationInfo.Created != "1970-01-01T00:00:00Z" {
		t.Errorf("created %s, want the epoch by default", doc.CreationInfo.Created)
	}

	b.Reset()
	if err := Write(&b, fakeInventory(), Options{Format: CycloneDXJSON}); err != nil {
		t.Fatal(err)
	}
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(&b, cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		t.Fatalf("cyclonedx: %v", err)
	}
	if bom.Metadata.Component.Name != "web:latest" || len(*bom.Components) == 0 || !strings.HasPrefix(bom.SerialNumber, "urn:uuid:") {
		t.Errorf("bom: %+v", bom.Metadata.Component)
	}
}

func TestNotes(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*image.Config)
		want string
	}{
		{"recorded", func(*image.Config) {}, ""},
		{"old image", func(c *image.Config) { c.Provenance, c.Packages, c.Added = 0, nil, nil }, "predates"},
		{"container image", func(c *image.Config) { c.Packages = nil }, "packages are not listed"},
		{"initramfs image", func(c *image.Config) { c.Packages, c.RootFS = nil, "" }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv := fakeInventory()
			tc.edit(&inv.Config)
			notes := strings.Join(newGraph(inv).notes, " ")
			if tc.want == "" && notes != "" || !strings.Contains(notes, tc.want) {
				t.Errorf("notes %q, want %q", notes, tc.want)
			}
		})
	}
}

func TestParseFormat(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Format
		err  bool
	}{
		{"", SPDXJSON, false},
		{"spdx-json", SPDXJSON, false},
		{"cyclonedx-json", CycloneDXJSON, false},
		{"spdx", "", true},
	} {
		got, err := ParseFormat(tc.in)
		if got != tc.want || (err != nil) != tc.err || err != nil && !errors.Is(err, ErrFormat) {
			t.Errorf("ParseFormat(%q) = %q, %v", tc.in, got, err)
		}
	}
	if SPDXJSON.MediaType() != "application/spdx+json" || CycloneDXJSON.MediaType() != "application/vnd.cyclonedx+json" {
		t.Error("media types")
	}
}

func TestUUID5(t *testing.T) {
	// RFC 9562's example: the v5 UUID of www.example.com in the DNS
	// namespace is 2ed6657d-e927-568b-95e1-2665a8aea6a2.
	dns := [16]byte{0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}
	u := uuid5Bytes(dns, "www.example.com")
	if want := strings.ReplaceAll("2ed6657d-e927-568b-95e1-2665a8aea6a2", "-", ""); hex.EncodeToString(u[:]) != want {
		t.Errorf("uuid5 = %x, want %s", u, want)
	}
}

// storeFake stores an image whose initramfs holds this test binary as
// /init and /app/x (Go programs with build information), and a file
// added with --add; root, when not "", becomes its root disk.
func storeFake(t *testing.T, cfg image.Config, root string) (*store.Store, string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	a := &initramfs.Archive{}
	for _, p := range []string{"/init", "/app/x"} {
		if err := a.AddHostFile(p, exe, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.AddFile("/etc/app/app.conf", 0o644, []byte("x=1\n")); err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(dir, "initrd")
	f, _ := os.Create(initrd)
	if _, err := a.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	kernel := filepath.Join(dir, "kernel")
	os.WriteFile(kernel, []byte("\x7fELF not really a kernel"), 0o644)
	layers := []store.LayerFile{{Path: kernel, MediaType: image.MediaTypeKernel}, {Path: initrd, MediaType: image.MediaTypeInitramfs}}
	if root != "" {
		disk := filepath.Join(dir, "root.erofs")
		if out, err := exec.Command("mkfs.erofs", "-zlz4hc", "-T0", "-U", "6e6f7300-0000-4000-8000-000000000000", "--all-root", disk, root).CombinedOutput(); err != nil {
			t.Fatalf("mkfs.erofs: %v\n%s", err, out)
		}
		layers = append(layers, store.LayerFile{Path: disk, MediaType: image.MediaTypeRootErofs})
		cfg.RootFS = "erofs"
	}
	b, _ := json.Marshal(cfg)
	st, err := store.Open(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	im, err := st.WriteImage(context.Background(), store.ImageParts{Name: "fake", Tag: "latest", Config: b, Layers: layers})
	if err != nil {
		t.Fatal(err)
	}
	return st, im.Manifest.Digest.String()
}

// TestReadImage reads a stored image's Go programs and added files back
// from its layers, and gives the same bytes twice.
func TestReadImage(t *testing.T) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		t.Fatal("no build information in the test binary")
	}
	cfg := image.Config{Entrypoint: []string{"/app/x"}, Provenance: image.ProvenanceV1, Added: []string{"/etc/app"}}
	st, digest := storeFake(t, cfg, "")
	ctx := context.Background()
	a, err := Referrer(ctx, st, "fake", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if a.MediaType != MediaTypeSPDX || a.Subject.Digest.String() != digest {
		t.Errorf("artifact %s for %s, want %s for %s", a.MediaType, a.Subject.Digest, MediaTypeSPDX, digest)
	}
	again, err := Generate(ctx, st, "fake", Options{})
	if err != nil || !bytes.Equal(again, a.Data) {
		t.Errorf("a second SBOM of the same image differs (err %v)", err)
	}

	im, err := loadFake(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := Read(ctx, im, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var roles []string
	for _, p := range inv.Programs {
		roles = append(roles, p.Path+"="+p.Role)
		if p.GoVersion != bi.GoVersion || p.Main.Path != bi.Main.Path || len(p.Deps) != len(bi.Deps) || len(p.SHA256) != 64 {
			t.Errorf("%s: %s %+v with %d deps", p.Path, p.GoVersion, p.Main, len(p.Deps))
		}
	}
	if diff := cmp.Diff([]string{"/app/x=" + RoleApp, "/init=" + RoleInit}, roles); diff != "" {
		t.Errorf("programs (-want +got):\n%s", diff)
	}
	sum := sha256.Sum256([]byte("x=1\n"))
	if len(inv.Added) != 1 || inv.Added[0].Path != "/etc/app/app.conf" || inv.Added[0].SHA256 != hex.EncodeToString(sum[:]) || inv.Added[0].Size != 4 {
		t.Errorf("added: %+v", inv.Added)
	}
}

// TestReadRootDisk reads a Go program and a packaged library from an
// erofs root disk.
func TestReadRootDisk(t *testing.T) {
	if _, err := exec.LookPath("mkfs.erofs"); err != nil {
		t.Fatal("no mkfs.erofs: apt-get install erofs-utils (make test-deps does)")
	}
	if _, err := exec.LookPath("fsck.erofs"); err != nil {
		t.Fatal("no fsck.erofs: apt-get install erofs-utils (make test-deps does)")
	}
	exe, _ := os.Executable()
	root := t.TempDir()
	b, _ := os.ReadFile(exe)
	os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755)
	os.MkdirAll(filepath.Join(root, "usr/lib"), 0o755)
	os.WriteFile(filepath.Join(root, "usr/bin/tool"), b, 0o755)
	os.WriteFile(filepath.Join(root, "usr/lib/libz.so.1"), []byte("not really a library"), 0o644)
	os.Symlink("tool", filepath.Join(root, "usr/bin/link"))
	cfg := image.Config{Entrypoint: []string{"/usr/bin/tool"}, Provenance: image.ProvenanceV1,
		Packages: []image.PackageRef{{Path: "/usr/lib/libz.so.1", Package: "zlib1g", Version: "1:1.2.13", Arch: "amd64"}}}
	st, _ := storeFake(t, cfg, root)
	ctx := context.Background()
	im, err := loadFake(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := Read(ctx, im, ReadOptions{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, p := range inv.Programs {
		if p.Path == "/usr/bin/tool" {
			found = p.Location == LocationRootDisk && p.Role == RoleApp
		}
	}
	if !found {
		t.Errorf("programs %+v: no /usr/bin/tool application on the root disk", inv.Programs)
	}
	if f := inv.Files["/usr/lib/libz.so.1"]; f.Size != 20 || len(f.SHA1) != 40 {
		t.Errorf("library file %+v", f)
	}
	_, err = Read(ctx, im, ReadOptions{FsckErofs: "/no/such/fsck.erofs"})
	if err == nil {
		t.Error("no error without fsck.erofs")
	}
}

func loadFake(ctx context.Context, st *store.Store) (*bootable.Image, error) {
	return bootable.Load(ctx, st, "fake")
}
